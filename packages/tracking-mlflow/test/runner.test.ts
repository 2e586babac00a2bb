/**
 * End to end with core's real runner (its toy plugin trains a linear model in a second): the experiment
 * names `tracking: [{ use: 'mlflow' }]`, is killed after the first epoch as Ctrl-C would (the runner's
 * abort signal), shows as KILLED, and `dfd resume` continues the same MLflow run to FINISHED with every
 * step logged exactly once. A two-stage pipeline shows as parent and child runs.
 */
import { describe, expect, it } from 'vitest';
import { stopWhen, afterFirstEpoch } from '../../../test/support/stop-when.js';
import { readEvents, resumeRun, runExperiment, runPipeline, RunRecordError, type RunEvent, type Tracker } from '@dfd/core';
import { existsSync, mkdtempSync, readdirSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { mlflowPlugin, mlflowRunLocator, REJECTED_FILE } from '@dfd/tracking-mlflow';
import { toyExperiment, toyPlugin } from '../../core/test/support/toy-plugin.js';
import { mountSmallDisk } from '../../core/test/support/tmpfs.js';
import { tempRunsDir } from './support/run-dir.js';
import { mlflowUri, testClient, unique } from './support/mlflow.js';

describe('with the core runner', () => {
  it('marks a Ctrl-C run KILLED and continues the same MLflow run on resume, each step once', async () => {
    const runsDir = tempRunsDir();
    const name = unique('runner');
    const tracking = [{ use: 'mlflow', config: { trackingUri: mlflowUri(), flushIntervalMs: 200 } }];
    const { signal, tracker: ctrlC } = stopWhen(afterFirstEpoch);
    const experiment = { ...toyExperiment(runsDir, { name, tracking }), pluginObjects: [toyPlugin, mlflowPlugin] };
    const killed = await runExperiment(experiment, { signal, trackers: [ctrlC] });
    expect(killed.status).toBe('killed');

    const client = testClient();
    const experimentId = (await client.getExperimentByName(name))!.experiment_id;
    const [first] = (await client.searchRuns({ experimentIds: [experimentId] })).runs;
    expect(first!.info.status).toBe('KILLED');
    const params = Object.fromEntries(first!.data.params!.map((p) => [p.key, p.value]));
    expect(params['detector.use']).toBe('toy-linear');
    expect(params['tracking.0.use']).toBe('mlflow');

    const resumed = await resumeRun(killed.runDir, { plugins: [toyPlugin, mlflowPlugin] });
    expect(resumed.status).toBe('finished');
    const { runs } = await client.searchRuns({ experimentIds: [experimentId] });
    expect(runs).toHaveLength(1);
    const run = runs[0]!;
    expect(run.info.run_id).toBe(first!.info.run_id);
    expect(run.info.status).toBe('FINISHED');
    const loss = await client.getMetricHistory(run.info.run_id, 'train/loss');
    expect(loss.map((m) => Number(m.step)).sort((a, b) => a - b)).toEqual(Array.from({ length: resumed.steps }, (_, i) => i + 1));
    const testAuc = await client.getMetricHistory(run.info.run_id, 'test/auc');
    expect(testAuc).toHaveLength(1);
    expect(existsSync(join(killed.runDir, REJECTED_FILE))).toBe(false); // the resumed run re-logged identical params
    const events = readEvents(killed.runDir);
    expect(events.filter((e) => e.type === 'run-start')).toHaveLength(2);
    const artifacts = (await client.listArtifacts(run.info.run_id)).map((f) => f.path);
    expect(artifacts).toEqual(expect.arrayContaining(['config.json', 'selected.json', 'test-scores.csv', 'checkpoints']));
  });

  it('marks the MLflow run FAILED when a checkpoint cannot be written (a real full disk); resume finishes it with each step once', async () => {
    const disk = mountSmallDisk(3);
    try {
      const name = unique('full-disk');
      const tracking = [{ use: 'mlflow', config: { trackingUri: mlflowUri(), flushIntervalMs: 200 } }];
      const data = mkdtempSync(join(tmpdir(), 'dfd-mlflow-data-'));
      const experiment = {
        ...toyExperiment(join(disk.dir, 'runs'), { name, tracking, dataset: { use: 'toy', config: { root: data } } }),
        pluginObjects: [toyPlugin, mlflowPlugin],
      };
      let freed = false;
      const switcher: Tracker = {
        name: 'disk-switch',
        attach(events) {
          events.subscribe((event: RunEvent) => {
            if (event.type === 'checkpoint' && event.kind === 'last' && event.step === 4) disk.fill();
            if (event.type === 'warning' && event.source === 'runner' && !freed) {
              freed = true;
              disk.free();
            }
          });
        },
        async close() {},
      };
      await expect(runExperiment(experiment, { trackers: [switcher] })).rejects.toThrow(RunRecordError);
      disk.free();
      const client = testClient();
      const experimentId = (await client.getExperimentByName(name))!.experiment_id;
      const [failed] = (await client.searchRuns({ experimentIds: [experimentId] })).runs;
      expect(failed!.info.status).toBe('FAILED');

      const runDir = join(disk.dir, 'runs', name, readdirSync(join(disk.dir, 'runs', name))[0]!);
      const resumed = await resumeRun(runDir, { plugins: [toyPlugin, mlflowPlugin] });
      expect(resumed.status).toBe('finished');
      const { runs } = await client.searchRuns({ experimentIds: [experimentId] });
      expect(runs).toHaveLength(1);
      expect(runs[0]!.info.status).toBe('FINISHED');
      // Steps 5.. were logged before the failure and replayed by the resume: each is in MLflow once.
      const loss = await client.getMetricHistory(runs[0]!.info.run_id, 'train/loss');
      expect(loss.map((m) => Number(m.step)).sort((a, b) => a - b)).toEqual(Array.from({ length: resumed.steps }, (_, i) => i + 1));
    } finally {
      disk.unmount();
    }
  });
});

describe('two-stage runs in MLflow', () => {
  it('shows stage 2 as the child of stage 1 (mlflow.parentRunId), and init.from mlflow:<run-id> finds stage 1', async () => {
    const runsDir = tempRunsDir();
    const name = unique('two-stage');
    const tracking = [{ use: 'mlflow', config: { trackingUri: mlflowUri(), flushIntervalMs: 200 } }];
    const { name: _n, ...base } = toyExperiment(runsDir, { tracking });
    const pipeline = await runPipeline(
      {
        name,
        stages: [
          { name: 'linear', experiment: base },
          { name: 'head', experiment: { ...base, detector: { use: 'toy-linear', config: { head: true } }, init: { from: 'stage:linear', variables: ['weight', 'bias'] } } },
        ],
      },
      { plugins: [toyPlugin, mlflowPlugin] },
    );
    expect(pipeline.status).toBe('finished');
    const client = testClient();
    const experimentId = (await client.getExperimentByName(name))!.experiment_id;
    const [stage1] = await client.findRunsByTag(experimentId, 'dfd.runId', pipeline.stages[0]!.runId);
    const [stage2] = await client.findRunsByTag(experimentId, 'dfd.runId', pipeline.stages[1]!.runId);
    const tagsOf = (run: typeof stage1) => Object.fromEntries(run!.data.tags!.map((t) => [t.key, t.value]));
    expect(tagsOf(stage2)['mlflow.parentRunId']).toBe(stage1!.info.run_id);
    expect(tagsOf(stage2)).toMatchObject({ 'dfd.stage': 'head', 'dfd.parent.stage': 'linear', 'dfd.init.variables': 'weight,bias' });
    expect(tagsOf(stage1)['mlflow.parentRunId']).toBeUndefined();
    // One tree: two runs in the experiment, no placeholder parent.
    expect((await client.searchRuns({ experimentIds: [experimentId] })).runs).toHaveLength(2);
    const artifacts = (await client.listArtifacts(stage2!.info.run_id)).map((f) => f.path);
    expect(artifacts).toContain('parent.json');

    // Named by its MLflow run id, with the local run directory out of reach: the locator downloads
    // config.json, selected.json and the selected checkpoint, and the copy is the same bytes.
    const previous = process.env.MLFLOW_TRACKING_URI;
    process.env.MLFLOW_TRACKING_URI = mlflowUri();
    try {
      const cacheDir = join(runsDir, 'mlflow-cache');
      const located = await mlflowRunLocator({ cacheDir }).locate(stage1!.info.run_id, { cwd: runsDir });
      expect(located).toBe(pipeline.stages[0]!.runDir); // its dfd.runDir is on this machine
      const { rmSync, renameSync } = await import('node:fs');
      renameSync(pipeline.stages[0]!.runDir, `${pipeline.stages[0]!.runDir}.moved`);
      const downloaded = await mlflowRunLocator({ cacheDir }).locate(stage1!.info.run_id, { cwd: runsDir });
      expect(downloaded).toBe(join(cacheDir, pipeline.stages[0]!.runId));
      const again = await runExperiment(
        { ...base, name: unique('from-mlflow'), tracking: [], detector: { use: 'toy-linear', config: { head: true } }, init: { from: `mlflow:${stage1!.info.run_id}`, variables: ['weight'] }, pluginObjects: [toyPlugin, mlflowPlugin] },
      );
      expect(again.status).toBe('finished');
      const record = JSON.parse(readFileSync(join(again.runDir, 'parent.json'), 'utf8'));
      const original = JSON.parse(readFileSync(join(pipeline.stages[1]!.runDir, 'parent.json'), 'utf8'));
      expect(record.runId).toBe(pipeline.stages[0]!.runId);
      expect(record.sha256).toBe(original.sha256);
      rmSync(cacheDir, { recursive: true, force: true });
    } finally {
      if (previous === undefined) delete process.env.MLFLOW_TRACKING_URI;
      else process.env.MLFLOW_TRACKING_URI = previous;
    }
  });
});
