/**
 * `mlflow:<run-id>` in an experiment's `init.from`: the MLflow run's own run directory when it is on this
 * machine (tag `dfd.runDir`), else a copy of what a stage-2 run needs from its artifacts — config.json,
 * selected.json and the selected checkpoint — under `~/.cache/dfd/mlflow-runs/<run-id>/`.
 */
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { dfdCacheDir, type RunLocator } from '@dfd/core';
import { MlflowClient } from './client.js';

export interface MlflowRunLocatorOptions {
  trackingUri?: string;
  /** Where downloaded runs are kept (default `~/.cache/dfd/mlflow-runs`). */
  cacheDir?: string;
}

export function mlflowRunLocator(options: MlflowRunLocatorOptions = {}): RunLocator {
  return {
    scheme: 'mlflow',
    async locate(reference) {
      const runId = reference.replace(/^\/+/, '');
      if (!/^[\w-]+$/.test(runId)) throw new Error(`mlflow:${reference}: expected an MLflow run id (mlflow:<run-id>)`);
      let client: MlflowClient;
      try {
        client = new MlflowClient({ trackingUri: options.trackingUri });
      } catch (error) {
        throw new Error(`init.from mlflow:${runId}: ${(error as Error).message}`);
      }
      const run = await client.getRun(runId);
      const runDir = run.data.tags?.find((t) => t.key === 'dfd.runDir')?.value;
      if (runDir && existsSync(join(runDir, 'config.json'))) return runDir;
      // Named by the dfd run id (the folder name is a run directory's id), so the stage-2 run's parent is
      // that id and its tracker finds the same MLflow run again by the dfd.runId tag.
      const dfdRunId = run.data.tags?.find((t) => t.key === 'dfd.runId')?.value ?? runId;
      const target = join(options.cacheDir ?? join(dfdCacheDir(), 'mlflow-runs'), dfdRunId);
      mkdirSync(join(target, 'checkpoints'), { recursive: true });
      const artifactUri = run.info.artifact_uri;
      const fetch = async (name: string) => {
        try {
          writeFileSync(join(target, name), await client.downloadArtifact(artifactUri, name));
        } catch (error) {
          throw new Error(
            `init.from mlflow:${runId}: the run's directory ${runDir ?? '(not recorded)'} is not on this machine and its artifact ${name} ` +
              `could not be downloaded (${(error as Error).message}); was it logged by @dfd/tracking-mlflow with uploadCheckpoint?`,
          );
        }
      };
      await fetch('config.json');
      // Runs uploaded before selected.json existed only have the best checkpoint.
      let checkpoint = 'best.safetensors';
      try {
        const selected = await client.downloadArtifact(artifactUri, 'selected.json');
        writeFileSync(join(target, 'selected.json'), selected);
        checkpoint = (JSON.parse(selected.toString('utf8')) as { checkpoint: string }).checkpoint;
      } catch {
        writeFileSync(join(target, 'selected.json'), `${JSON.stringify({ checkpoint })}\n`);
      }
      await fetch(`checkpoints/${checkpoint}`);
      return target;
    },
  };
}
