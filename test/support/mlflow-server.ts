/**
 * A real MLflow tracking server for tests: installs MLflow with pip into a virtual environment outside the
 * repository (a cache directory, reused when present), starts `mlflow server` with a sqlite backend and
 * proxied artifacts (`--serve-artifacts`) on 127.0.0.1 on a free port, waits until it answers, and stops it.
 *
 * Used by test/global-setup.ts (one server for the whole test run) and by tests that need a server of their
 * own (the outage test stops and restarts one mid-run). Nothing here downloads from anywhere but PyPI.
 *
 * Install line (what `ensureMlflow()` runs, once per machine):
 *   python3 -m venv ~/.cache/dfd/mlflow-venv && ~/.cache/dfd/mlflow-venv/bin/pip install 'mlflow==3.17.2'
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync, openSync, closeSync } from 'node:fs';
import { createServer } from 'node:net';
import { homedir, tmpdir } from 'node:os';
import { join } from 'node:path';

/** The MLflow release the tests run against. Bump it here; the venv is reinstalled when it changes. */
export const MLFLOW_PIP_SPEC = process.env.DFD_MLFLOW_PIP_SPEC ?? 'mlflow==3.17.2';

export function cacheRoot(): string {
  return process.env.DFD_CACHE_DIR ?? join(process.env.XDG_CACHE_HOME ?? join(homedir(), '.cache'), 'dfd');
}

export function mlflowVenvDir(): string {
  return process.env.DFD_MLFLOW_VENV ?? join(cacheRoot(), 'mlflow-venv');
}

function findPython(): string {
  for (const candidate of [process.env.DFD_PYTHON, 'python3', 'python'].filter(Boolean) as string[]) {
    const probe = spawnSync(candidate, ['-c', 'import sys, venv; print(sys.version_info[0])'], { encoding: 'utf8' });
    if (probe.status === 0 && probe.stdout.trim() === '3') return candidate;
  }
  throw new Error(
    'The MLflow test server needs Python 3 with the venv module, and none was found (tried $DFD_PYTHON, python3, python). ' +
      'Install it: `apt-get install -y python3 python3-venv python3-pip` (Debian/Ubuntu), or point DFD_PYTHON at a python3 binary.',
  );
}

export interface EnsureResult {
  venv: string;
  mlflowBin: string;
  /** True when this call installed MLflow (a cold start). */
  installed: boolean;
  seconds: number;
}

/**
 * Makes sure the MLflow venv exists and holds `MLFLOW_PIP_SPEC`. Concurrent test runs (several engineers on
 * one machine) serialise on a flock so that two pips never write one venv.
 */
export function ensureMlflow(log: (line: string) => void = () => {}): EnsureResult {
  const started = Date.now();
  const venv = mlflowVenvDir();
  const mlflowBin = join(venv, 'bin', 'mlflow');
  const marker = join(venv, '.dfd-installed');
  const ready = () => existsSync(mlflowBin) && existsSync(marker) && readFileSync(marker, 'utf8').trim() === MLFLOW_PIP_SPEC;
  if (ready()) return { venv, mlflowBin, installed: false, seconds: (Date.now() - started) / 1000 };

  const python = findPython();
  mkdirSync(cacheRoot(), { recursive: true });
  log(`installing ${MLFLOW_PIP_SPEC} into ${venv} (first run on this machine; takes a few minutes)`);
  // One shell under flock: create the venv if needed, pip install, then write the marker last, so an
  // interrupted install is retried next time rather than trusted.
  const script = [
    'set -e',
    `if [ -f "$MARKER" ] && [ "$(cat "$MARKER")" = "$SPEC" ] && [ -x "$VENV/bin/mlflow" ]; then exit 0; fi`,
    `[ -x "$VENV/bin/python" ] || "$PYTHON" -m venv "$VENV"`,
    `"$VENV/bin/python" -m pip install --quiet --upgrade pip`,
    `"$VENV/bin/python" -m pip install --quiet "$SPEC"`,
    `printf '%s\\n' "$SPEC" > "$MARKER"`,
  ].join('\n');
  const result = spawnSync('flock', [join(cacheRoot(), 'mlflow-venv.lock'), 'sh', '-c', script], {
    env: { ...process.env, VENV: venv, MARKER: marker, SPEC: MLFLOW_PIP_SPEC, PYTHON: python },
    stdio: ['ignore', 'inherit', 'inherit'],
  });
  if (result.error) throw new Error(`could not run flock/sh to install MLflow: ${result.error.message} (install util-linux)`);
  if (result.status !== 0) {
    throw new Error(
      `pip install ${MLFLOW_PIP_SPEC} into ${venv} failed (exit ${result.status}); see the pip output above. ` +
        `Delete ${venv} and rerun to retry from scratch.`,
    );
  }
  if (!ready()) throw new Error(`MLflow install finished but ${mlflowBin} is missing`);
  return { venv, mlflowBin, installed: true, seconds: (Date.now() - started) / 1000 };
}

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.unref();
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      const port = typeof address === 'object' && address ? address.port : 0;
      server.close(() => resolve(port));
    });
  });
}

export interface MlflowServerOptions {
  /** Directory for mlflow.db and artifacts; a fresh temp dir by default. Reuse it to restart the same server. */
  dataDir?: string;
  port?: number;
  /** How long to wait for the server to answer /health. */
  startTimeoutMs?: number;
}

/** A running `mlflow server` child process (its own process group, so stop() ends the workers too). */
export class MlflowServer {
  private child: ChildProcess | undefined;
  private exited: Promise<void> = Promise.resolve();
  readonly dataDir: string;
  readonly logFile: string;
  /** A temp dir we made: the orphan watchdog removes it too. */
  ownsDataDir = false;
  port: number;

  private constructor(
    private readonly mlflowBin: string,
    dataDir: string,
    port: number,
  ) {
    this.dataDir = dataDir;
    this.port = port;
    this.logFile = join(dataDir, 'server.log');
  }

  get uri(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  get running(): boolean {
    return this.child !== undefined;
  }

  static async start(options: MlflowServerOptions = {}): Promise<MlflowServer> {
    const { mlflowBin } = ensureMlflow((line) => process.stderr.write(`[mlflow-setup] ${line}\n`));
    const dataDir = options.dataDir ?? mkdtempSync(join(tmpdir(), 'dfd-mlflow-'));
    const server = new MlflowServer(mlflowBin, dataDir, options.port ?? (await freePort()));
    server.ownsDataDir = options.dataDir === undefined;
    await server.startProcess(options.startTimeoutMs ?? 300_000);
    return server;
  }

  /** Starts (again) on the same port with the same database and artifacts. */
  async restart(timeoutMs = 300_000): Promise<void> {
    if (this.child) await this.stop('SIGKILL');
    await this.startProcess(timeoutMs);
  }

  private async startProcess(timeoutMs: number): Promise<void> {
    mkdirSync(join(this.dataDir, 'artifacts'), { recursive: true });
    const log = openSync(this.logFile, 'a');
    const args = [
      'server',
      '--backend-store-uri', `sqlite:///${join(this.dataDir, 'mlflow.db')}`,
      '--serve-artifacts',
      '--artifacts-destination', join(this.dataDir, 'artifacts'),
      '--host', '127.0.0.1',
      '--port', String(this.port),
      '--workers', '1',
    ];
    const child = spawn(this.mlflowBin, args, {
      detached: true,
      stdio: ['ignore', log, log],
      // No telemetry or update checks: the only network here is the package registries.
      env: { ...process.env, MLFLOW_DISABLE_TELEMETRY: 'true', DO_NOT_TRACK: '1', PYTHONUNBUFFERED: '1' },
    });
    closeSync(log);
    this.child = child;
    this.guardOrphan(child);
    this.exited = new Promise((resolve) => child.once('exit', () => resolve()));
    let exitCode: number | null = null;
    child.once('exit', (code) => {
      exitCode = code ?? -1;
      if (this.child === child) this.child = undefined;
    });
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline) {
      if (exitCode !== null) {
        throw new Error(`mlflow server exited with code ${exitCode} before answering; log:\n${this.tail()}`);
      }
      try {
        const response = await fetch(`${this.uri}/health`, { signal: AbortSignal.timeout(2000) });
        if (response.ok) return;
      } catch {
        // not listening yet
      }
      await new Promise((r) => setTimeout(r, 250));
    }
    await this.stop();
    throw new Error(`mlflow server did not answer ${this.uri}/health within ${timeoutMs} ms; log:\n${this.tail()}`);
  }

  /**
   * The server runs in its own process group (so stop() reaches its workers), which also means it would
   * outlive a test process that dies. Stop it when this process exits, and — for a SIGKILLed test
   * process — have a tiny shell watchdog stop that group once our pid is gone.
   */
  private guardOrphan(child: ChildProcess): void {
    const pgid = child.pid;
    if (pgid === undefined) return;
    const onExit = () => {
      try {
        process.kill(-pgid, 'SIGKILL');
      } catch {
        // already gone
      }
    };
    process.once('exit', onExit);
    child.once('exit', () => process.removeListener('exit', onExit));
    const watchdog = spawn(
      'sh',
      [
        '-c',
        `while kill -0 ${process.pid} 2>/dev/null && kill -0 ${pgid} 2>/dev/null; do sleep 2; done; ` +
          `if ! kill -0 ${process.pid} 2>/dev/null; then kill -KILL -${pgid} 2>/dev/null; ` +
          `if [ "$OWNED" = 1 ]; then sleep 1; rm -rf "$DATA_DIR"; fi; fi; exit 0`,
      ],
      { detached: true, stdio: 'ignore', env: { ...process.env, OWNED: this.ownsDataDir ? '1' : '0', DATA_DIR: this.dataDir } },
    );
    watchdog.unref();
  }

  tail(lines = 40): string {
    try {
      return readFileSync(this.logFile, 'utf8').split('\n').slice(-lines).join('\n');
    } catch {
      return '(no log)';
    }
  }

  /**
   * Stops the server: SIGTERM to its process group (SIGKILL after 10 s), or SIGKILL at once to simulate a
   * crash or a pulled network cable (`stop('SIGKILL')`).
   */
  async stop(first: 'SIGTERM' | 'SIGKILL' = 'SIGTERM'): Promise<void> {
    const child = this.child;
    if (!child || child.pid === undefined) return;
    const pid = child.pid;
    const signal = (sig: NodeJS.Signals) => {
      try {
        process.kill(-pid, sig); // the group: uvicorn/gunicorn workers are children of the CLI process
      } catch {
        // already gone
      }
    };
    signal(first);
    const timer = setTimeout(() => signal('SIGKILL'), 10_000);
    await this.exited;
    clearTimeout(timer);
    // Workers may outlive the parent by a moment; make sure nothing holds the port.
    signal('SIGKILL');
    this.child = undefined;
  }

  /** Stops the server and removes its data directory. */
  async dispose(): Promise<void> {
    await this.stop();
    rmSync(this.dataDir, { recursive: true, force: true });
  }
}

/** Writes a small JSON file of facts about the setup (used to report cold/warm timings). */
export function writeSetupTiming(path: string, facts: Record<string, unknown>): void {
  mkdirSync(join(path, '..'), { recursive: true });
  writeFileSync(path, `${JSON.stringify(facts, null, 2)}\n`);
}
