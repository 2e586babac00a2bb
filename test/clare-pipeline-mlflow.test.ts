/**
 * The seed's pipeline end to end, once (the slow test of the CLaRE example): the synthetic mini-DF40, its
 * LaRE maps from the committed tiny SD (examples/models/tiny-sd-df40), CoOp as stage 1, then lare-egre +
 * concat fusion as stage 2 starting from stage 1's frozen context — both stages streamed to the real MLflow
 * server of the global setup. Short epochs: this checks the plumbing, not the numbers (the ablation does).
 */
import { createHash } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, test } from 'vitest';
import { loadRun, readSafetensors, runPipeline, type InitRecord } from '@dfd/core';
import { clarePipeline, CLARE_PLUGINS } from '../examples/src/clare.js';
import { ensureLareMaps, TINY_SD } from '../examples/src/lare-maps.js';
import { TEST_SUBSETS } from '../examples/src/setup.js';
import { miniDf40 } from '../examples/test/support.js';
import { mlflowUri, testClient, unique } from '../packages/tracking-mlflow/test/support/mlflow.js';

async function tensorBytes(checkpoint: string, name: string): Promise<Buffer> {
  const { tensors } = await readSafetensors(checkpoint);
  const tensor = tensors[`model/${name}`];
  if (!tensor) throw new Error(`${checkpoint} has no model/${name}`);
  const data = tensor.data as Float32Array;
  return Buffer.from(data.buffer, data.byteOffset, data.byteLength);
}

describe('CLaRE two-stage pipeline on the mini-DF40 (tiny CLIP, tiny SD, real MLflow)', () => {
  test('stage 2 starts from stage 1 bit for bit, reports the 8 subsets and the family groups, and is stage 1\'s child in MLflow', { timeout: 600_000 }, async () => {
    expect(existsSync(join(TINY_SD, 'unet', 'model.onnx')), `${TINY_SD} (the committed tiny SD)`).toBe(true);
    const root = await miniDf40();
    await ensureLareMaps(root);
    const runsDir = mkdtempSync(join(tmpdir(), 'dfd-clare-runs-'));
    const name = unique('clare-e2e');
    const base = clarePipeline({ root, runsDir, cacheDir: join(runsDir, 'cache'), stage1Epochs: 3, stage2Epochs: 2, name });
    const tracking = [{ use: 'mlflow', config: { trackingUri: mlflowUri(), flushIntervalMs: 200 } }];
    const pipeline = { ...base, stages: base.stages.map((stage) => ({ ...stage, experiment: { ...stage.experiment, tracking } })) };
    const result = await runPipeline(pipeline);
    expect(result.stages.map((s) => [s.stage, s.status])).toEqual([
      ['coop', 'finished'],
      ['lare', 'finished'],
    ]);
    const [stage1, stage2] = result.stages as [(typeof result.stages)[0], (typeof result.stages)[0]];

    // Bit for bit: the context stage 2 was given is the one stage 1 selected, and it stayed frozen.
    const selected = JSON.parse(readFileSync(join(stage1.runDir, 'selected.json'), 'utf8')) as { checkpoint: string };
    const stage1Checkpoint = join(stage1.runDir, 'checkpoints', selected.checkpoint);
    const parent = JSON.parse(readFileSync(join(stage2.runDir, 'parent.json'), 'utf8')) as InitRecord;
    expect(parent).toMatchObject({ runId: stage1.runId, runDir: stage1.runDir, stage: 'coop', checkpoint: stage1Checkpoint, trainable: false });
    expect(parent.sha256).toBe(createHash('sha256').update(readFileSync(stage1Checkpoint)).digest('hex'));
    const ctx = await tensorBytes(stage1Checkpoint, 'prompt_learner.ctx');
    for (const file of ['best.safetensors', 'last.safetensors']) {
      expect((await tensorBytes(join(stage2.runDir, 'checkpoints', file), 'prompt_learner.ctx')).equals(ctx), file).toBe(true);
    }
    const loaded = await loadRun(stage2.runDir, { plugins: CLARE_PLUGINS });
    try {
      const variables = loaded.assembled.detector.trainableVariables();
      const data = await variables['prompt_learner.ctx']!.data();
      expect(Buffer.from(data.buffer, data.byteOffset, data.byteLength).equals(ctx)).toBe(true);
      expect(Object.keys(variables).some((n) => n.startsWith('enhancer0.'))).toBe(true);
    } finally {
      loaded.dispose();
    }

    // Stage 2's report: the 8 unknown test sets, their mean, and the seen/unseen artefact-family means.
    const report = stage2.test!;
    expect(Object.keys(report.subsets).filter((s) => s !== 'mean')).toEqual(TEST_SUBSETS);
    expect(Object.keys(report.groups ?? {})).toEqual(['seen-family', 'unseen-family']);
    const written = JSON.parse(readFileSync(join(stage2.runDir, 'report.json'), 'utf8'));
    expect(written.groups['unseen-family'].auc).toBe(report.groups!['unseen-family']!.auc);
    expect(written.protocol.data).toBe('synthetic mini-DF40 (dfd synth)');

    // MLflow: one experiment, two runs, stage 2 the child of stage 1.
    const client = testClient();
    const experimentId = (await client.getExperimentByName(name))!.experiment_id;
    const { runs } = await client.searchRuns({ experimentIds: [experimentId] });
    expect(runs).toHaveLength(2);
    const byDfdId = new Map(runs.map((run) => [run.data.tags!.find((t) => t.key === 'dfd.runId')!.value, run]));
    const mlflow1 = byDfdId.get(stage1.runId)!;
    const mlflow2 = byDfdId.get(stage2.runId)!;
    const tags2 = Object.fromEntries(mlflow2.data.tags!.map((t) => [t.key, t.value]));
    expect(tags2['mlflow.parentRunId']).toBe(mlflow1.info.run_id);
    expect(tags2).toMatchObject({ 'dfd.stage': 'lare', 'dfd.parent.stage': 'coop', 'dfd.init.variables': 'prompt_learner.ctx' });
    expect(mlflow1.data.tags!.some((t) => t.key === 'mlflow.parentRunId')).toBe(false);
    const unseen = await client.getMetricHistory(mlflow2.info.run_id, 'test/groups/unseen-family/auc');
    expect(unseen).toHaveLength(1);
  });
});
