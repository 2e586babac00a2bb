/**
 * `dfd slurm sweep` against a real one-node Slurm (slurm-setup.ts) and the test MLflow server
 * (test/global-setup.ts): three configurations as array tasks, each a normal run and an MLflow child run of
 * one parent; the summary job ranks them on validation only and records the chosen child's test metrics.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, inject, test } from 'vitest';
import { readEvents, runExperiment, type EvalEvent, type SweepSummary } from '@dfd/core';
import { MlflowClient } from '@dfd/tracking-mlflow';
import { sweepBase } from './fixtures/sweep-experiment.js';
import { submittedJob, waitForLaunch } from './support/wait.js';

declare module 'vitest' {
  export interface ProvidedContext {
    /** From test/global-setup.ts. */
    mlflowUri: string;
  }
}

const REPO = fileURLToPath(new URL('../../../', import.meta.url));
const DFD = join(REPO, 'packages/core/bin/dfd.js');
const conf = inject('slurmConf');
const mlflowUri = inject('mlflowUri');

describe('dfd slurm sweep on a real Slurm and MLflow', () => {
  test('3 configurations as array tasks, each a child run of one parent; the summary selects on validation', async () => {
    expect(conf, 'slurm-setup.ts provides the cluster').toMatch(/slurm\.conf$/);
    expect(mlflowUri, 'test/global-setup.ts provides the MLflow server').toMatch(/^http/);
    const dir = mkdtempSync(join(tmpdir(), 'dfd-slurm-sweep-'));
    const runs = join(dir, 'runs');
    // The toy data is written on first use: write it once here, not by three tasks at once.
    await runExperiment({ ...sweepBase(runs, 'toy-warmup'), trainer: { epochs: 1, batchSize: 16 } });
    const experimentName = `slurm-sweep-${Date.now()}`;
    const sweepEnv = { ...process.env, SLURM_CONF: conf, MLFLOW_TRACKING_URI: mlflowUri, MLFLOW_EXPERIMENT_NAME: experimentName, DFD_TEST_RUNS: runs, TSX_TSCONFIG_PATH: resolve(REPO, 'packages/core/test/tsconfig.json') /* the toy plugin's decorators */ };
    const experiment = join(REPO, 'packages/slurm/test/fixtures/sweep-experiment.ts');
    // Submitted as a user does: the built dfd, in a process with this environment.
    const out = execFileSync(process.execPath, [DFD, 'slurm', 'sweep', experiment, '--grid', 'trainer.optimizer.lr=0.3,0.03,0.003', '--cpus', '1', '--mem', '500M'], {
      cwd: dir,
      env: sweepEnv,
      encoding: 'utf8',
    });
    const job = submittedJob(out);
    const status = await waitForLaunch(job, dir, sweepEnv);
    expect(status.tasks.map((t) => t.state)).toEqual(['COMPLETED', 'COMPLETED', 'COMPLETED']);
    expect(status.after).toMatchObject({ name: 'summary', state: 'COMPLETED' });

    const parentDir = status.record.output;
    const sweepId = parentDir.split('/').pop()!;
    const summary = JSON.parse(readFileSync(join(parentDir, 'sweep-summary.json'), 'utf8')) as SweepSummary;
    // Each configuration is its own run (own directory), a child of the parent.
    const children = ['lr-0.3', 'lr-0.03', 'lr-0.003'].map((name) => {
      const folder = join(runs, `toy-sweep.${name}`);
      const [id] = readdirSync(folder);
      const runDir = join(folder, id!);
      expect(readEvents(runDir)[0]).toMatchObject({ type: 'run-start', parentRunId: sweepId });
      expect(JSON.parse(readFileSync(join(runDir, 'config.json'), 'utf8')).trainer.optimizer.lr).toBe(Number(name.slice(3)));
      const selected = JSON.parse(readFileSync(join(runDir, 'selected.json'), 'utf8'));
      const test = readEvents(runDir).find((e): e is EvalEvent => e.type === 'eval' && e.split === 'test')!;
      return { name, runDir, val: selected.value as number, test: test.report.overall };
    });
    // Ranked by each child's own validation AUC (what it selected its checkpoint on), best first.
    expect(summary.selection).toEqual({ metric: 'auc', mode: 'max', split: 'val' });
    const byVal = [...children].sort((a, b) => b.val - a.val);
    expect(summary.ranking.map((r) => r.val)).toEqual(byVal.map((c) => c.val));
    expect(new Set(children.map((c) => c.val)).size, 'the configurations end at different validation AUCs').toBe(3);
    const chosen = children.find((c) => c.name === summary.chosen!.name)!;
    expect(chosen.val).toBe(Math.max(...children.map((c) => c.val)));
    expect(summary.chosen!.runDir).toBe(chosen.runDir);
    // Its test metrics are reported; no other child's test metric reaches the parent.
    expect(summary.chosen!.test!.overall).toEqual(chosen.test);
    const parentEvents = readEvents(parentDir);
    const parentTests = parentEvents.filter((e): e is EvalEvent => e.type === 'eval' && e.split === 'test');
    expect(parentTests).toHaveLength(1);
    expect(parentTests[0]!.report.overall).toEqual(chosen.test);
    expect(parentEvents.at(-1)).toMatchObject({ type: 'end', status: 'finished' });
    const summaryLog = readdirSync(join(status.record.dir, 'logs')).find((f) => f.endsWith('-summary.out'))!;
    expect(readFileSync(join(status.record.dir, 'logs', summaryLog), 'utf8')).toContain(`chosen: ${summary.chosen!.name} (val/auc=`);

    // MLflow: one parent (the sweep's own run, not a placeholder) and the three children under it.
    const client = new MlflowClient({ trackingUri: mlflowUri, env: {} });
    const experimentId = (await client.getExperimentByName(experimentName))!.experiment_id;
    const [parent, ...others] = await client.findRunsByTag(experimentId, 'dfd.runId', sweepId);
    expect(others).toHaveLength(0);
    const tag = (run: typeof parent, key: string) => run!.data.tags?.find((t) => t.key === key)?.value;
    expect(tag(parent, 'dfd.sweepParent')).not.toBe('placeholder'); // made at submission, before any child
    expect(tag(parent, 'dfd.sweep')).toBe('parent');
    expect(parent!.info.status).toBe('FINISHED');
    const childRuns = await client.findRunsByTag(experimentId, 'mlflow.parentRunId', parent!.info.run_id);
    expect(childRuns.map((r) => tag(r, 'dfd.runId')).sort()).toEqual(children.map((c) => c.runDir.split('/').pop()).sort());
    expect(childRuns.every((r) => r.info.status === 'FINISHED')).toBe(true);
    const parentMetrics = Object.fromEntries((parent!.data.metrics ?? []).map((m) => [m.key, m.value]));
    expect(parentMetrics['test/auc']).toBeCloseTo(chosen.test.auc!, 12);
    for (const c of children) expect(parentMetrics[`val/${c.name}/auc`]).toBeCloseTo(c.val, 12);
  }, 300_000);
});
