/**
 * What has been sent where, kept in the run directory (`mlflow-sync.json`), so a live run that lost its
 * server, a crash, or `dfd sync` run twice all continue from the same point and never send twice.
 *
 * The record is events.jsonl; the state is a cursor into it, per tracking server:
 *   sentEvents   events [0, sentEvents) are fully applied on that server
 *   lastEvent    type and time of event sentEvents-1, to detect an events.jsonl that changed under us
 *   uncertainUntil  events before this index may already be on the server without our knowing (a reset
 *                connection, a 5xx, a partial batch, or a run adopted by its dfd.runId tag): their metric
 *                points are first reconciled with the server's history, so no point is logged twice
 */
import { existsSync, readFileSync, renameSync, writeFileSync, unlinkSync, openSync, closeSync, writeSync } from 'node:fs';
import { join } from 'node:path';

export const STATE_FILE = 'mlflow-sync.json';
export const LOCK_FILE = 'mlflow-sync.lock';
export const REJECTED_FILE = 'mlflow-rejected.jsonl';

export interface TargetState {
  experimentId?: string;
  experimentName?: string;
  runId?: string;
  artifactUri?: string;
  sentEvents: number;
  lastEvent?: { type: string; time: number };
  uncertainUntil?: number;
  /** Metric points this client sent to this server (for reports; the server is the truth). */
  sentMetricPoints: number;
  ended?: boolean;
  updatedAt?: string;
}

export interface SyncStateFile {
  version: 1;
  /** Keyed by the normalised tracking URI: one run directory can be mirrored to several servers. */
  targets: Record<string, TargetState>;
}

export function emptyTarget(): TargetState {
  return { sentEvents: 0, sentMetricPoints: 0 };
}

export class SyncState {
  private file: SyncStateFile;
  readonly path: string;

  constructor(readonly runDir: string) {
    this.path = join(runDir, STATE_FILE);
    this.file = { version: 1, targets: {} };
    if (existsSync(this.path)) {
      try {
        const parsed = JSON.parse(readFileSync(this.path, 'utf8')) as SyncStateFile;
        if (parsed && parsed.version === 1 && typeof parsed.targets === 'object') this.file = parsed;
        else throw new Error('unknown format');
      } catch (error) {
        throw new Error(
          `${this.path} is unreadable (${(error as Error).message}). Delete it to resync from scratch: ` +
            `runs already on the server are found again by their dfd.runId tag and metric points are reconciled.`,
        );
      }
    }
  }

  target(uri: string): TargetState {
    let target = this.file.targets[uri];
    if (!target) {
      target = emptyTarget();
      this.file.targets[uri] = target;
    }
    return target;
  }

  /** Why the last save could not reach the disk (full, read-only), while the cursor lives in memory only. */
  unsavedBecause?: Error;

  /**
   * Atomic write (temp file + rename): a crash leaves the old state or the new one, never half. A disk that
   * refuses the write (full, read-only) is this machine's problem, not the server's: the cursor stays in memory
   * and the next save tries again, so a full disk never detaches a live run from MLflow (which must still learn
   * that the run failed). Should the process end first, `dfd sync` finds the run again by its dfd.runId tag and
   * reconciles the points already sent, so nothing is sent twice.
   */
  save(): void {
    const tmp = `${this.path}.${process.pid}.tmp`;
    try {
      writeFileSync(tmp, `${JSON.stringify(this.file, null, 2)}\n`);
      renameSync(tmp, this.path);
      this.unsavedBecause = undefined;
    } catch (error) {
      if (!isDiskRefusal(error)) throw error;
      this.unsavedBecause = error as Error;
      try {
        unlinkSync(tmp);
      } catch {
        // the temp file was never created, or the disk refuses that too: nothing more to do
      }
    }
  }
}

/** Write errors that mean "this disk cannot take it now" (space, quota, read-only), as opposed to a bug. */
function isDiskRefusal(error: unknown): boolean {
  return ['ENOSPC', 'EDQUOT', 'EROFS', 'EIO'].includes((error as NodeJS.ErrnoException).code ?? '');
}

const heldInProcess = new Set<string>();

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * One writer per run directory: the live tracker holds the lock while the run goes on, so a `dfd sync`
 * started meanwhile refuses instead of sending the same events twice. A lock left by a dead process is taken over.
 */
export class RunLock {
  private constructor(private readonly path: string) {}

  static acquire(runDir: string, holder: string): RunLock {
    const path = join(runDir, LOCK_FILE);
    if (heldInProcess.has(path)) throw new Error(`${runDir} is already being sent to MLflow by this process (${holder})`);
    for (let attempt = 0; attempt < 2; attempt++) {
      try {
        const fd = openSync(path, 'wx');
        writeSync(fd, JSON.stringify({ pid: process.pid, holder, since: new Date().toISOString() }));
        closeSync(fd);
        heldInProcess.add(path);
        return new RunLock(path);
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
        let owner: { pid?: number; holder?: string } = {};
        try {
          owner = JSON.parse(readFileSync(path, 'utf8')) as typeof owner;
        } catch {
          // torn lock file: treat as stale
        }
        if (owner.pid && owner.pid !== process.pid && pidAlive(owner.pid)) {
          throw new Error(
            `${runDir} is being sent to MLflow by process ${owner.pid} (${owner.holder ?? 'unknown'}); wait for it to end, ` +
              `or remove ${path} if that process is not a dfd run.`,
          );
        }
        unlinkSync(path); // stale: its process is gone
      }
    }
    throw new Error(`could not take ${path}`);
  }

  release(): void {
    heldInProcess.delete(this.path);
    try {
      unlinkSync(this.path);
    } catch {
      // already gone
    }
  }
}
