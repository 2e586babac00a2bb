/**
 * `dfd sync RUN_DIR... [--to URI]` against the real server: runs recorded with no tracking at all are
 * replayed from events.jsonl, and syncing again — even after the local sync state is lost, or after an
 * answer was lost mid-request — creates no second run and no duplicate metric point.
 */
import { readFileSync, rmSync, writeFileSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { STATE_FILE, syncCommand, syncRunDir, parseSyncArgs, LOCK_FILE } from '@dfd/tracking-mlflow';
import { UsageError } from '@dfd/core';
import { HandRun, tempRunsDir } from './support/run-dir.js';
import { cliIO, mlflowUri, testClient, unique } from './support/mlflow.js';

/** A complete run recorded with no tracker attached (what `dfd run` writes without tracking). */
function untrackedRun(runsDir: string, experiment: string, steps = 50): HandRun {
  const run = new HandRun(runsDir, experiment);
  run.start();
  run.steps(1, steps);
  run.evalAt(steps, 'val');
  run.bestCheckpoint(steps, Buffer.from('weights'));
  run.evalAt(steps, 'test');
  run.artifact('report.html', '<h1>report</h1>');
  run.end('finished', steps);
  return run;
}

async function pointsPerKey(runId: string, keys: string[]): Promise<Record<string, number[]>> {
  const client = testClient();
  const out: Record<string, number[]> = {};
  for (const key of keys) out[key] = (await client.getMetricHistory(runId, key)).map((m) => Number(m.step));
  return out;
}

const steps = (n: number) => Array.from({ length: n }, (_, i) => i + 1);

describe('dfd sync (real server)', () => {
  it('replays a run made with no tracking; a second sync creates no second run and no duplicate point', async () => {
    const runsDir = tempRunsDir();
    const experiment = unique('sync');
    const run = untrackedRun(runsDir, experiment);
    const io = cliIO(runsDir);
    expect(await syncCommand.run([join(experiment, run.runId), '--to', mlflowUri()], io)).toBe(0);
    expect(io.stdout.text).toMatch(new RegExp(`→ ${mlflowUri()}/#/experiments/\\d+/runs/\\w+: 56/56 events, `));

    const state = JSON.parse(readFileSync(join(run.runDir, STATE_FILE), 'utf8'));
    const target = state.targets[mlflowUri()];
    expect(target.sentEvents).toBe(56);
    const client = testClient();
    const mlflowRun = await client.getRun(target.runId);
    expect(mlflowRun.info.status).toBe('FINISHED');
    expect(mlflowRun.info.start_time).toBe(run.emitted[0]!.time);
    const before = await pointsPerKey(target.runId, ['train/loss', 'val/auc', 'test/heygen/auc']);
    expect(before['train/loss']).toEqual(steps(50));

    const again = cliIO(runsDir);
    expect(await syncCommand.run([run.runDir, `--to=${mlflowUri()}`], again)).toBe(0);
    expect(again.stdout.text).toContain('already up to date');
    const experimentId = (await client.getExperimentByName(experiment))!.experiment_id;
    expect((await client.searchRuns({ experimentIds: [experimentId] })).runs).toHaveLength(1);
    expect(await pointsPerKey(target.runId, ['train/loss', 'val/auc', 'test/heygen/auc'])).toEqual(before);
  });

  it('stays idempotent when mlflow-sync.json is lost: finds the run by its dfd.runId tag and skips points already there', async () => {
    const runsDir = tempRunsDir();
    const experiment = unique('sync-lost-state');
    const run = untrackedRun(runsDir, experiment, 30);
    const first = await syncRunDir(run.runDir, { trackingUri: mlflowUri(), env: {} });
    rmSync(join(run.runDir, STATE_FILE));
    const second = await syncRunDir(run.runDir, { trackingUri: mlflowUri(), env: {} });
    expect(second.mlflowRunId).toBe(first.mlflowRunId);
    expect(second.metricPoints).toBe(0);
    expect(second.reconciledPoints).toBe(first.metricPoints);
    expect((await pointsPerKey(first.mlflowRunId!, ['train/loss']))['train/loss']).toEqual(steps(30));
  });

  it('sends each point once after a request that landed but whose answer was lost', async () => {
    const runsDir = tempRunsDir();
    const experiment = unique('sync-lost-answer');
    const run = untrackedRun(runsDir, experiment, 40);
    const first = await syncRunDir(run.runDir, { trackingUri: mlflowUri(), env: {} });
    // What the writer records when a log-batch may have been applied without an answer: the cursor stays
    // before those events and they are marked uncertain. Roll the cursor back to the middle of the steps.
    const path = join(run.runDir, STATE_FILE);
    const state = JSON.parse(readFileSync(path, 'utf8'));
    const target = state.targets[mlflowUri()];
    target.sentEvents = 20;
    target.lastEvent = { type: run.emitted[19]!.type, time: run.emitted[19]!.time };
    target.uncertainUntil = run.emitted.length;
    target.ended = false;
    writeFileSync(path, JSON.stringify(state));
    const second = await syncRunDir(run.runDir, { trackingUri: mlflowUri(), env: {} });
    expect(second.sentEvents).toBe(run.emitted.length - 20);
    expect(second.reconciledPoints).toBeGreaterThan(0);
    expect((await pointsPerKey(first.mlflowRunId!, ['train/loss', 'train/lr']))).toEqual({ 'train/loss': steps(40), 'train/lr': steps(40) });
  });

  it('syncs every run below an experiment folder, and to the experiment named with --experiment', async () => {
    const runsDir = tempRunsDir();
    const experiment = unique('sync-folder');
    const target = unique('sync-target');
    const runs = [untrackedRun(runsDir, experiment, 3), untrackedRun(runsDir, experiment, 4)];
    const io = cliIO(runsDir, { MLFLOW_TRACKING_URI: mlflowUri() });
    expect(await syncCommand.run([experiment, '--experiment', target, '--json'], io)).toBe(0);
    const lines = io.stdout.text.trim().split('\n').map((l) => JSON.parse(l));
    expect(lines.map((l) => l.runDir).sort()).toEqual(runs.map((r) => r.runDir).sort());
    const client = testClient();
    const experimentId = (await client.getExperimentByName(target))!.experiment_id;
    expect((await client.searchRuns({ experimentIds: [experimentId] })).runs).toHaveLength(2);
  });

  it('fails clearly on bad input, and refuses a run directory another process is sending', async () => {
    const runsDir = tempRunsDir();
    const notARun = join(runsDir, 'empty-folder');
    mkdirSync(notARun);
    const io = cliIO(runsDir);
    expect(await syncCommand.run([notARun, '--to', mlflowUri()], io)).toBe(1);
    expect(io.stderr.text).toMatch(/holds no run directory \(no events.jsonl found\)/);

    const torn = join(runsDir, 'exp', 'bad-run');
    mkdirSync(torn, { recursive: true });
    writeFileSync(join(torn, 'events.jsonl'), '{"type":"run-start"\n{"type":"step"}\n');
    const io2 = cliIO(runsDir);
    expect(await syncCommand.run([torn, '--to', mlflowUri()], io2)).toBe(1);
    expect(io2.stderr.text).toMatch(/events.jsonl: line 1 is not a run event/);

    const run = untrackedRun(runsDir, unique('locked'), 2);
    writeFileSync(join(run.runDir, LOCK_FILE), JSON.stringify({ pid: process.ppid, holder: 'live MLflow tracker' }));
    await expect(syncRunDir(run.runDir, { trackingUri: mlflowUri(), env: {} })).rejects.toThrow(/being sent to MLflow by process/);

    expect(() => parseSyncArgs([])).toThrow(UsageError);
    expect(() => parseSyncArgs(['a', '--bogus'])).toThrow(/unknown option --bogus/);
    await expect(syncCommand.run(['somewhere'], cliIO(runsDir))).rejects.toThrow(/--to URI or set MLFLOW_TRACKING_URI/);
  });
});
