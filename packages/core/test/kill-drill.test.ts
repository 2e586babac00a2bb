/**
 * The kill-and-resume drill: `dfd run` in a child process is killed with SIGKILL at a chosen moment (in the
 * middle of writing a checkpoint: a real half-written temporary file; in the middle of the test evaluation),
 * then `dfd resume` continues it. The weights and test scores must be bit-identical to an uninterrupted run,
 * each step recorded once in events.jsonl and metrics.jsonl, and no temporary file left behind.
 */
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, test } from 'vitest';
import { readEvents, readSafetensors, resumeRun, runExperiment } from '@dfd/core';
import { drillExperiment } from './support/drill.js';
import { toyPlugin } from './support/toy-plugin.js';

const coreDir = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const dfd = join(coreDir, 'bin', 'dfd.js');
const fixture = join(coreDir, 'test', 'fixtures', 'drill-experiment.ts');

async function modelWeights(path: string): Promise<Record<string, Float32Array>> {
  const { tensors } = await readSafetensors(path);
  return Object.fromEntries(Object.entries(tensors).filter(([k]) => k.startsWith('model/')).map(([k, t]) => [k, t.data as Float32Array]));
}

/** Starts `dfd run` on the drill experiment, waits until it reaches the pause, kills it with SIGKILL. */
async function runAndKill(runsDir: string, dataDir: string, pause: string): Promise<string> {
  const marker = join(runsDir, 'paused');
  const child = spawn(process.execPath, [dfd, 'run', fixture, '--no-progress'], {
    env: { ...process.env, DFD_DRILL_RUNS: runsDir, DFD_DRILL_DATA: dataDir, DFD_DRILL_PAUSE: pause, DFD_DRILL_MARKER: marker, DFD_BACKEND: 'cpu' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  child.stdout.on('data', (d) => (output += d));
  child.stderr.on('data', (d) => (output += d));
  const exited = new Promise<number | null>((done) => child.on('exit', (code, signal) => done(signal ? null : code)));
  const deadline = Date.now() + 90_000;
  while (!existsSync(marker)) {
    if (child.exitCode !== null) throw new Error(`the drill run exited (${child.exitCode}) before the pause ${pause}:\n${output}`);
    if (Date.now() > deadline) {
      child.kill('SIGKILL');
      throw new Error(`the drill run never reached the pause ${pause}:\n${output}`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  expect(child.kill('SIGKILL')).toBe(true);
  expect(await exited).toBeNull(); // killed by the signal, not exited
  const experimentDir = join(runsDir, 'drill');
  const [runId] = readdirSync(experimentDir);
  return join(experimentDir, runId!);
}

function recordedSteps(runDir: string): { events: number[]; metrics: number[] } {
  const events = readEvents(runDir).flatMap((e) => (e.type === 'step' ? [e.step] : []));
  const metrics = readFileSync(join(runDir, 'metrics.jsonl'), 'utf8')
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l) as { key: string; step: number })
    .filter((m) => m.key === 'train/loss')
    .map((m) => m.step);
  return { events, metrics };
}

function temporaries(runDir: string): string[] {
  return [...readdirSync(runDir), ...readdirSync(join(runDir, 'checkpoints')).map((n) => `checkpoints/${n}`)].filter((n) => /\.tmp/.test(n));
}

describe('kill -9 and resume (the drill)', () => {
  test('killed mid-checkpoint and mid-evaluation, resumed runs equal an uninterrupted one bit for bit', async () => {
    const root = mkdtempSync(join(tmpdir(), 'dfd-drill-'));
    const dataDir = join(root, 'data');
    const straight = await runExperiment(drillExperiment(join(root, 'straight'), dataDir, 'drill'));
    expect(straight.status).toBe('finished');
    const expectedWeights = await modelWeights(join(straight.runDir, 'checkpoints', 'last.safetensors'));
    const expectedScores = readFileSync(join(straight.runDir, 'test-scores.csv'), 'utf8');
    const allSteps = Array.from({ length: straight.steps }, (_, i) => i + 1);

    for (const pause of ['checkpoint:6', 'test:2']) {
      const runDir = await runAndKill(join(root, pause.replace(':', '-')), dataDir, pause);
      if (pause.startsWith('checkpoint')) {
        // The kill left a half-written checkpoint under its temporary name; `last` is still the step-4 one.
        expect(temporaries(runDir).some((n) => /^checkpoints\/last\.safetensors\.tmp-/.test(n))).toBe(true);
        expect(recordedSteps(runDir).events).toEqual([1, 2, 3, 4, 5, 6]);
      } else {
        expect(readEvents(runDir).some((e) => e.type === 'eval' && e.split === 'test')).toBe(false);
      }
      const resumed = await resumeRun(runDir, { plugins: [toyPlugin] });
      expect(resumed.status, pause).toBe('finished');
      expect(await modelWeights(join(runDir, 'checkpoints', 'last.safetensors')), pause).toEqual(expectedWeights);
      expect(readFileSync(join(runDir, 'test-scores.csv'), 'utf8'), pause).toBe(expectedScores);
      expect(resumed.test, pause).toEqual(straight.test);
      // Replayed steps replace the ones the kill cut off: each step once in both files.
      expect(recordedSteps(runDir), pause).toEqual({ events: allSteps, metrics: allSteps });
      expect(temporaries(runDir), pause).toEqual([]);
    }
  });
});

describe('Ctrl-C and SIGTERM end the process within a few seconds, whatever it is doing', () => {
  test.each([
    ['SIGTERM', 'test:2'],
    ['SIGINT', 'checkpoint:6'],
  ] as const)('%s while stuck in %s', async (signal, pause) => {
    const runsDir = mkdtempSync(join(tmpdir(), 'dfd-signal-'));
    const marker = join(runsDir, 'paused');
    const child = spawn(process.execPath, [dfd, 'run', fixture, '--no-progress'], {
      env: { ...process.env, DFD_DRILL_RUNS: runsDir, DFD_DRILL_DATA: join(runsDir, 'data'), DFD_DRILL_PAUSE: pause, DFD_DRILL_MARKER: marker, DFD_BACKEND: 'cpu', DFD_STOP_GRACE_S: '2' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stderr = '';
    child.stderr.on('data', (d) => (stderr += d));
    const exited = new Promise<number | null>((done) => child.on('exit', (code) => done(code)));
    while (!existsSync(marker)) {
      if (child.exitCode !== null) throw new Error(`exited before the pause: ${stderr}`);
      await new Promise((r) => setTimeout(r, 50));
    }
    const sent = Date.now();
    child.kill(signal);
    const code = await Promise.race([exited, new Promise<'hung'>((r) => setTimeout(() => r('hung'), 15_000))]);
    if (code === 'hung') child.kill('SIGKILL');
    expect(code).toBe(130);
    expect(Date.now() - sent).toBeLessThan(8_000);
    expect(stderr).toMatch(/did not stop within 2 s; exiting\. The last checkpoint is intact: continue with dfd resume/);
  });
});
