/**
 * The run record is not best-effort: a full disk (a real 3 MB tmpfs, filled) while writing config.json, a
 * checkpoint or the report fails the run with the path, the OS error and what to do; the run is recorded
 * as failed, a start-up failure leaves no half run, and `dfd resume` continues to the uninterrupted result.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { readEvents, readSafetensors, resumeRun, runExperiment, RunRecordError, type RunEvent, type Tracker } from '@dfd/core';
import { mountSmallDisk, type SmallDisk } from './support/tmpfs.js';
import { toyExperiment, toyPlugin } from './support/toy-plugin.js';

const coreDir = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const data = mkdtempSync(join(tmpdir(), 'dfd-record-data-'));

let disk: SmallDisk;
beforeAll(() => {
  disk = mountSmallDisk(3);
});
afterAll(() => disk?.unmount());

/** The toy experiment with its runs on the small disk and its data elsewhere. */
function onSmallDisk(name: string, overrides: Record<string, unknown> = {}) {
  return toyExperiment(join(disk.dir, 'runs'), { name, dataset: { use: 'toy', config: { root: data } }, ...overrides });
}

/** A tracker that reacts to events: fills or frees the disk at chosen moments. */
function onEvents(react: (event: RunEvent) => void): Tracker {
  return { name: 'disk-switch', attach: (events) => void events.subscribe(react), close: async () => undefined };
}

async function modelWeights(path: string): Promise<Record<string, Float32Array>> {
  const { tensors } = await readSafetensors(path);
  return Object.fromEntries(Object.entries(tensors).filter(([k]) => k.startsWith('model/')).map(([k, t]) => [k, t.data as Float32Array]));
}

const runFolders = (name: string) => (existsSync(join(disk.dir, 'runs', name)) ? readdirSync(join(disk.dir, 'runs', name)) : []);

describe('run record on a full disk', () => {
  test('full at start: fails naming config.json and ENOSPC, leaves no run folder; with space back it runs', async () => {
    disk.fill();
    try {
      const failed = runExperiment(onSmallDisk('full-at-start'));
      await expect(failed).rejects.toThrow(RunRecordError);
      await expect(failed).rejects.toThrow(/could not write (config\.json|the run directory) .*full-at-start.*ENOSPC.*the disk is full: free space .*then start the run again with dfd run/);
    } finally {
      disk.free();
    }
    expect(runFolders('full-at-start')).toEqual([]);
    const result = await runExperiment(onSmallDisk('full-at-start'));
    expect(result.status).toBe('finished');
    expect(JSON.parse(readFileSync(join(result.runDir, 'config.json'), 'utf8')).name).toBe('full-at-start');
    expect(readEvents(result.runDir)[0]!.type).toBe('run-start');
  });

  test('full during training: the checkpoint write fails the run (path, ENOSPC, dfd resume), recorded as failed; resume gives the same weights', async () => {
    const straight = await runExperiment(onSmallDisk('straight'));
    let freed = false;
    const switcher = onEvents((event) => {
      if (event.type === 'checkpoint' && event.kind === 'last' && event.step === 4) disk.fill();
      // Space comes back once the run has failed (as in the drill): the failure is then on disk.
      if (event.type === 'warning' && event.source === 'runner' && !freed) {
        freed = true;
        disk.free();
      }
    });
    let error: Error | undefined;
    try {
      await runExperiment(onSmallDisk('full-mid-run'), { trackers: [switcher] });
    } catch (caught) {
      error = caught as Error;
    } finally {
      disk.free();
    }
    const [runId] = runFolders('full-mid-run');
    const runDir = join(disk.dir, 'runs', 'full-mid-run', runId!);
    expect(error).toBeInstanceOf(RunRecordError);
    expect(error!.message).toMatch(/could not write checkpoint .*checkpoints\/(best|last)\.safetensors: ENOSPC/);
    expect(error!.message).toContain(`then continue the run with: dfd resume ${runDir}`);
    const events = readEvents(runDir);
    expect(events.at(-1)).toMatchObject({ type: 'end', status: 'failed', error: error!.message });
    // Nothing recorded while the disk was full was lost: the appends were retried.
    expect(events.filter((e) => e.type === 'step').map((e) => (e as { step: number }).step)).toEqual([1, 2, 3, 4, 5, 6, 7, 8]);
    expect(readdirSync(join(runDir, 'checkpoints')).filter((n) => n.includes('.tmp'))).toEqual([]);

    const resumed = await resumeRun(runDir, { plugins: [toyPlugin] });
    expect(resumed.status).toBe('finished');
    expect(await modelWeights(join(runDir, 'checkpoints', 'last.safetensors'))).toEqual(await modelWeights(join(straight.runDir, 'checkpoints', 'last.safetensors')));
    expect(resumed.test).toEqual(straight.test);
  });

  test('full while writing the report: fails naming the report folder and ENOSPC; resume writes it', async () => {
    let freed = false;
    const switcher = onEvents((event) => {
      if (event.type === 'eval' && event.split === 'test') disk.fill();
      if (event.type === 'warning' && event.source === 'runner' && !freed) {
        freed = true;
        disk.free();
      }
    });
    const failed = runExperiment(onSmallDisk('full-at-report', { evaluator: { use: 'binary', config: { bootstrap: 0, png: false } } }), { trackers: [switcher] });
    await expect(failed).rejects.toThrow(/could not write the evaluation report in .*full-at-report.*ENOSPC.*then continue the run with: dfd resume/);
    disk.free();
    const [runId] = runFolders('full-at-report');
    const runDir = join(disk.dir, 'runs', 'full-at-report', runId!);
    expect(readEvents(runDir).at(-1)).toMatchObject({ type: 'end', status: 'failed' });
    const resumed = await resumeRun(runDir, { plugins: [toyPlugin] });
    expect(resumed.status).toBe('finished');
    expect(JSON.parse(readFileSync(join(runDir, 'report.json'), 'utf8')).format).toBe('dfd-evaluation-report/1');
  });
});

describe('start-up failures and bad places', () => {
  test('a run that fails at start-up leaves no folder behind', async () => {
    const runsDir = mkdtempSync(join(tmpdir(), 'dfd-startup-'));
    const notAFolder = join(runsDir, 'data-is-a-file');
    writeFileSync(notAFolder, 'x');
    const failed = runExperiment(toyExperiment(runsDir, { name: 'bad-start', dataset: { use: 'toy', config: { root: join(notAFolder, 'sub') } } }));
    await expect(failed).rejects.toThrow(/ENOTDIR/);
    expect(readdirSync(join(runsDir, 'bad-start'))).toEqual([]);
  });

  test('run folders on procfs or sysfs are refused at once, also by `dfd run` (which used to hang at 100% CPU)', async () => {
    await expect(runExperiment(toyExperiment('/proc/dfd-runs'))).rejects.toThrow(/\/proc\/dfd-runs is on procfs, a kernel pseudo-filesystem .*--runs-dir/);
    await expect(runExperiment(toyExperiment('/sys/kernel/dfd-runs'))).rejects.toThrow(/is on sysfs/);
    let failure: { status: number; stderr: string } | undefined;
    try {
      execFileSync('node', [join(coreDir, 'bin/dfd.js'), 'run', 'test/fixtures/toy-experiment.ts', '--runs-dir', '/proc/self/dfd-runs', '--no-progress'], {
        cwd: coreDir,
        timeout: 60_000,
        stdio: 'pipe',
      });
    } catch (error) {
      failure = error as { status: number; stderr: string };
    }
    expect(failure?.status).toBe(1);
    expect(String(failure?.stderr)).toMatch(/is on procfs/);
  });

  test('a damaged config.json (from an older version on a full disk) is named as such, not "Unexpected end of JSON input"', async () => {
    const runDir = join(mkdtempSync(join(tmpdir(), 'dfd-damaged-')), 'toy', 'run-1');
    mkdirSync(join(runDir, 'checkpoints'), { recursive: true });
    writeFileSync(join(runDir, 'config.json'), '');
    await expect(resumeRun(runDir)).rejects.toThrow(/config\.json is damaged \(0 bytes.*Start the experiment again with dfd run/);
  });
});
