/**
 * Vitest global setup: a real MLflow tracking server for the tests that talk to one.
 *
 * It installs MLflow with pip into a virtual environment outside the repository (~/.cache/dfd/mlflow-venv,
 * reused when present; a fresh machine installs it, which takes about a minute), starts `mlflow server`
 * with a sqlite backend and proxied artifacts on 127.0.0.1 on a free port, waits for it, hands its URI to
 * the tests (`inject('mlflowUri')`), and stops it after the run. Without Python it fails with what to install.
 *
 * A run filtered to other packages (`vitest run packages/core`) starts no server. DFD_TEST_MLFLOW_URI
 * points the tests at a server you already run; DFD_MLFLOW_SERVER=1 forces a start.
 */
import { existsSync, readdirSync } from 'node:fs';
import { join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { TestProject } from 'vitest/node';
import { ensureMlflow, MlflowServer, writeSetupTiming } from './support/mlflow-server.js';

declare module 'vitest' {
  export interface ProvidedContext {
    /** The test MLflow server, e.g. http://127.0.0.1:41234; '' when this run started none. */
    mlflowUri: string;
  }
}

const root = fileURLToPath(new URL('..', import.meta.url));

/** Test files that need the server: every test of @dfd/tracking-mlflow and root tests named *mlflow*. */
function serverTests(): string[] {
  const files: string[] = [];
  const pkg = join(root, 'packages/tracking-mlflow/test');
  if (existsSync(pkg)) files.push(...readdirSync(pkg).filter((f) => f.endsWith('.test.ts')).map((f) => join(pkg, f)));
  // @dfd/slurm's sweep test checks the MLflow parent and child runs its array tasks create.
  const slurm = join(root, 'packages/slurm/test');
  if (existsSync(slurm)) files.push(...readdirSync(slurm).filter((f) => f.endsWith('.test.ts') && f.includes('mlflow')).map((f) => join(slurm, f)));
  const top = join(root, 'test');
  if (existsSync(top)) files.push(...readdirSync(top).filter((f) => f.endsWith('.test.ts') && f.includes('mlflow')).map((f) => join(top, f)));
  return files;
}

function needsServer(project: TestProject): boolean {
  if (process.env.DFD_MLFLOW_SERVER === '1') return true;
  // Vitest keeps the CLI filters here (the same substring match it applies to test files).
  const filters = (project.vitest as unknown as { filenamePattern?: string[] }).filenamePattern;
  if (!filters || filters.length === 0) return true;
  const files = serverTests();
  return filters.some((filter) => {
    const absolute = resolve(filter);
    return files.some((file) => file.includes(filter) || relative(root, file).includes(filter) || file.startsWith(absolute));
  });
}

export default async function setup(project: TestProject): Promise<(() => Promise<void>) | void> {
  if (process.env.DFD_TEST_MLFLOW_URI) {
    project.provide('mlflowUri', process.env.DFD_TEST_MLFLOW_URI);
    return;
  }
  if (!needsServer(project)) {
    project.provide('mlflowUri', '');
    return;
  }
  const started = Date.now();
  const install = ensureMlflow((line) => process.stderr.write(`[mlflow-setup] ${line}\n`));
  const serverStarted = Date.now();
  const server = await MlflowServer.start();
  const facts = {
    uri: server.uri,
    venv: install.venv,
    cold: install.installed,
    installSeconds: install.seconds,
    serverStartSeconds: (Date.now() - serverStarted) / 1000,
    totalSeconds: (Date.now() - started) / 1000,
    at: new Date().toISOString(),
  };
  writeSetupTiming(join(root, '.vitest-output/tracking-mlflow/mlflow-setup.json'), facts);
  process.stderr.write(
    `[mlflow-setup] MLflow server at ${server.uri} (${install.installed ? `cold: installed in ${install.seconds.toFixed(1)} s` : 'warm venv'}, ` +
      `server up in ${facts.serverStartSeconds.toFixed(1)} s)\n`,
  );
  project.provide('mlflowUri', server.uri);
  return async () => {
    await server.dispose();
  };
}
