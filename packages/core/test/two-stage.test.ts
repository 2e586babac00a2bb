/**
 * Two-stage runs with core's toy plugin: stage 2 starts from exactly the named tensors of stage 1's selected
 * checkpoint (bit for bit), keeps them frozen or trains them on, records its parent, resumes, and fails
 * clearly on a missing name or a shape mismatch. Pipelines run both stages from one definition.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, test } from 'vitest';
import { stopWhen, afterFirstEpoch } from '../../../test/support/stop-when.js';
import {
  applyInit,
  readEvents,
  readSafetensors,
  resolveInitNames,
  resumeRun,
  runExperiment,
  runPipeline,
  tf,
  loadRun,
  type InitRecord,
  type RunStartEvent,
} from '@dfd/core';
import { toyExperiment, toyPlugin } from './support/toy-plugin.js';

const coreDir = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const tempRuns = () => mkdtempSync(join(tmpdir(), 'dfd-two-stage-'));

/** The raw float32 bytes of each `model/` tensor of a checkpoint. */
async function modelBytes(path: string): Promise<Record<string, Buffer>> {
  const { tensors } = await readSafetensors(path);
  return Object.fromEntries(
    Object.entries(tensors)
      .filter(([name]) => name.startsWith('model/'))
      .map(([name, t]) => {
        const data = t.data as Float32Array;
        return [name.slice(6), Buffer.from(data.buffer, data.byteOffset, data.byteLength)];
      }),
  );
}

const selectedCheckpoint = (runDir: string) =>
  join(runDir, 'checkpoints', (JSON.parse(readFileSync(join(runDir, 'selected.json'), 'utf8')) as { checkpoint: string }).checkpoint);

const stage2 = (runsDir: string, from: string, overrides: Record<string, unknown> = {}) =>
  toyExperiment(runsDir, {
    name: 'toy-stage2',
    detector: { use: 'toy-linear', config: { head: true } },
    init: { from, variables: ['weight', 'bias'], ...overrides },
  });

describe('two-stage runs (init from a run directory)', () => {
  test('stage 2 starts from stage 1 bit for bit, keeps frozen tensors fixed, trains the rest and records its parent', async () => {
    const runsDir = tempRuns();
    const first = await runExperiment(toyExperiment(runsDir, { name: 'toy-stage1' }));
    expect(first.status).toBe('finished');
    const stage1 = await modelBytes(selectedCheckpoint(first.runDir));

    const second = await runExperiment(stage2(runsDir, first.runDir));
    expect(second.status).toBe('finished');
    const stage2Last = await modelBytes(join(second.runDir, 'checkpoints/last.safetensors'));
    // Frozen: saved with the run, byte-identical to what stage 1 selected.
    expect(stage2Last.weight!.equals(stage1.weight!)).toBe(true);
    expect(stage2Last.bias!.equals(stage1.bias!)).toBe(true);
    // The new head trained away from its zero init.
    expect(new Float32Array(stage2Last['head.weight']!.buffer.slice(stage2Last['head.weight']!.byteOffset)).some((v) => v !== 0)).toBe(true);

    const parent = JSON.parse(readFileSync(join(second.runDir, 'parent.json'), 'utf8')) as InitRecord;
    expect(parent).toMatchObject({
      from: first.runDir,
      runId: first.runId,
      runDir: first.runDir,
      experiment: 'toy-stage1',
      checkpoint: selectedCheckpoint(first.runDir),
      variables: { weight: [8, 2], bias: [2] },
      trainable: false,
    });
    expect(parent.sha256).toMatch(/^[0-9a-f]{64}$/);
    const start = readEvents(second.runDir)[0] as RunStartEvent;
    expect(start.parentRunId).toBe(first.runId);
    expect(start.parentRunDir).toBe(first.runDir);
    expect(start.tags).toMatchObject({ 'dfd.parent.runId': first.runId, 'dfd.init.variables': 'weight,bias', 'dfd.init.trainable': 'false' });
    const config = JSON.parse(readFileSync(join(second.runDir, 'config.json'), 'utf8'));
    expect(config.init).toEqual({ from: first.runDir, checkpoint: 'selected', variables: ['weight', 'bias'], trainable: false });

    // The stage-2 run directory is complete on its own: loadRun predicts without reading stage 1.
    const loaded = await loadRun(second.runDir, { plugins: [toyPlugin] });
    try {
      const variables = loaded.assembled.detector.trainableVariables();
      expect(Buffer.from((await variables.weight!.data()).buffer).equals(stage1.weight!)).toBe(true);
    } finally {
      loaded.dispose();
    }
  });

  test('the copy is exact before any step, and init.trainable trains the copied tensors on', async () => {
    const runsDir = tempRuns();
    const first = await runExperiment(toyExperiment(runsDir, { name: 'toy-stage1' }));
    const stage1 = await modelBytes(selectedCheckpoint(first.runDir));
    // applyInit on fresh variables of another shape family: exactly the named tensors change, bit for bit.
    const fresh = { weight: tf.variable(tf.randomNormal([8, 2])), bias: tf.variable(tf.ones([2])), 'head.weight': tf.variable(tf.zeros([2, 2])) };
    const record = await applyInit({ from: first.runDir, checkpoint: 'selected', variables: ['weight'], trainable: true }, fresh, { plugins: [], cwd: runsDir });
    expect(record.variables).toEqual({ weight: [8, 2] });
    expect(Buffer.from((await fresh.weight.data()).buffer).equals(stage1.weight!)).toBe(true);
    expect(Array.from(await fresh.bias.data())).toEqual([1, 1]);
    Object.values(fresh).forEach((v) => v.dispose());

    const second = await runExperiment(stage2(runsDir, first.runDir, { trainable: true }));
    const trained = await modelBytes(join(second.runDir, 'checkpoints/last.safetensors'));
    expect(trained.weight!.equals(stage1.weight!)).toBe(false);
    expect(readEvents(second.runDir)[0]).toMatchObject({ tags: { 'dfd.init.trainable': 'true' } });
  });

  test('a missing name, an ambiguous suffix and a shape mismatch fail before training, listing what the checkpoint holds', async () => {
    const runsDir = tempRuns();
    const first = await runExperiment(toyExperiment(runsDir, { name: 'toy-stage1', detector: { use: 'toy-linear', config: { head: true } } }));
    await expect(runExperiment(toyExperiment(runsDir, { name: 'bad', init: { from: first.runDir, variables: ['ctx'] } }))).rejects.toThrow(
      /has no tensor 'ctx'\. It holds: bias \[2\], head\.weight \[2, 2\], weight \[8, 2\]/,
    );
    await expect(
      runExperiment(toyExperiment(runsDir, { name: 'bad', detector: { use: 'toy-linear', config: { dim: 6 } }, dataset: { use: 'toy', config: { root: join(runsDir, 'toy6'), dim: 6 } }, loader: { use: 'toy-features', config: { dim: 6 } }, init: { from: first.runDir, variables: ['weight'] } })),
    ).rejects.toThrow(/holds weight with shape \[8, 2\] but this run's detector expects \[6, 2\].*The checkpoint holds: bias \[2\], head\.weight \[2, 2\], weight \[8, 2\]/);
    // `weight` is exact; the suffix `weight` would also match head.weight, so the exact name wins — an
    // unknown variable on the receiving side is reported with the detector's variables.
    await expect(runExperiment(toyExperiment(runsDir, { name: 'bad', init: { from: first.runDir, variables: ['head.weight'] } }))).rejects.toThrow(
      /detector has no variable head\.weight to receive.*Its variables: weight \[8, 2\], bias \[2\]/,
    );
    // Suffixes: `ctx` finds prompt_learner.ctx; a suffix two names share is refused.
    const held = { 'prompt_learner.ctx': { shape: [4, 8] }, 'enhancer0.fc.weight': { shape: [2] }, 'fuser.fc.weight': { shape: [2] } };
    expect(resolveInitNames(['ctx'], held, 'ckpt')).toEqual(['prompt_learner.ctx']);
    expect(() => resolveInitNames(['fc.weight'], held, 'ckpt')).toThrow(/'fc.weight' is ambiguous in ckpt: enhancer0.fc.weight, fuser.fc.weight/);
    expect(() => resolveInitNames(['ctx', 'prompt_learner.ctx'], held, 'ckpt')).toThrow(/names prompt_learner.ctx more than once/);
    await expect(runExperiment(toyExperiment(runsDir, { name: 'bad', init: { from: join(runsDir, 'nope'), variables: ['weight'] } }))).rejects.toThrow(
      /run directory .*nope does not exist/,
    );
    await expect(runExperiment(toyExperiment(runsDir, { name: 'bad', init: { from: 'mlflow:abc', variables: ['weight'] } }))).rejects.toThrow(
      /no loaded plugin resolves 'mlflow:'/,
    );
  });

  test('a killed stage-2 run resumes to the same weights as an uninterrupted one, frozen tensors untouched', async () => {
    const runsDir = tempRuns();
    const first = await runExperiment(toyExperiment(runsDir, { name: 'toy-stage1' }));
    const whole = await runExperiment(stage2(runsDir, first.runDir));
    const { signal, tracker: ctrlC } = stopWhen(afterFirstEpoch);
    const killed = await runExperiment(stage2(runsDir, first.runDir), { signal, trackers: [ctrlC] });
    expect(killed.status).toBe('killed');
    const resumed = await resumeRun(killed.runDir, { plugins: [toyPlugin] });
    expect(resumed.status).toBe('finished');
    const a = await modelBytes(join(whole.runDir, 'checkpoints/last.safetensors'));
    const b = await modelBytes(join(killed.runDir, 'checkpoints/last.safetensors'));
    for (const name of ['weight', 'bias', 'head.weight']) expect(b[name]!.equals(a[name]!)).toBe(true);
    const starts = readEvents(killed.runDir).filter((e): e is RunStartEvent => e.type === 'run-start');
    expect(starts.map((s) => s.parentRunId)).toEqual([first.runId, first.runId]);
  });
});

describe('pipelines', () => {
  test('runPipeline runs both stages from one definition; stage:<name> resolves to the earlier run', async () => {
    const runsDir = tempRuns();
    const { name: _n, ...base } = toyExperiment(runsDir);
    const result = await runPipeline({
      name: 'toy-pipe',
      stages: [
        { name: 'linear', experiment: base },
        { name: 'head', experiment: { ...base, detector: { use: 'toy-linear', config: { head: true } }, init: { from: 'stage:linear', variables: ['weight', 'bias'] } } },
      ],
    });
    expect(result.status).toBe('finished');
    const [one, two] = result.stages;
    expect(dirname(one!.runDir)).toBe(dirname(two!.runDir)); // siblings under runs/toy-pipe/
    expect(readEvents(two!.runDir)[0]).toMatchObject({ parentRunId: one!.runId, runName: `toy-pipe-head-${two!.runId}`, tags: { 'dfd.stage': 'head', 'dfd.parent.stage': 'linear' } });
    await expect(runPipeline({ name: 'bad', stages: [{ name: 'a', experiment: { ...base, init: { from: 'stage:b', variables: ['weight'] } } }] })).rejects.toThrow(
      /starts from 'stage:b', which is not an earlier stage/,
    );
  });

  test('`dfd run pipeline.ts` runs both stages and prints them; `dfd resume` takes either stage directory', () => {
    const runs = mkdtempSync(join(tmpdir(), 'dfd-cli-pipeline-'));
    const bin = resolve(coreDir, 'bin/dfd.js');
    const env = { ...process.env, DFD_TEST_RUNS: runs, TSX_TSCONFIG_PATH: resolve(coreDir, 'test/tsconfig.json') };
    const out = execFileSync('node', [bin, 'run', 'test/fixtures/toy-pipeline.ts', '--set', 'trainer.epochs=1', '--json', '--no-progress'], { cwd: coreDir, encoding: 'utf8', env });
    const result = JSON.parse(out.trim().split('\n').at(-1)!);
    expect(result).toMatchObject({ pipeline: 'toy-pipeline', status: 'finished' });
    expect(result.stages.map((s: { stage: string; steps: number }) => [s.stage, s.steps])).toEqual([
      ['linear', 4],
      ['head', 4],
    ]);
    const parent = JSON.parse(readFileSync(join(result.stages[1].runDir, 'parent.json'), 'utf8'));
    expect(parent.runDir).toBe(result.stages[0].runDir);
    for (const stage of result.stages) {
      let failure: { status: number; stderr: string } | undefined;
      try {
        execFileSync('node', [bin, 'resume', stage.runDir], { cwd: coreDir, encoding: 'utf8', stdio: 'pipe', env });
      } catch (error) {
        failure = error as { status: number; stderr: string };
      }
      expect(failure?.stderr).toMatch(/already finished; nothing to resume/);
    }
  });
});
