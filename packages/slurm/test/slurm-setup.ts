/**
 * Vitest global setup for @dfd/slurm: one local Slurm cluster (support/local-slurm.ts) shared by every Slurm
 * test of the run, stopped afterwards (with a timeout). A run filtered to other packages starts none. If
 * Slurm cannot start, the setup fails with the reason: these tests are never skipped.
 * DFD_TEST_SLURM_CONF points the tests at a cluster you already run instead.
 */
import { existsSync, readdirSync } from 'node:fs';
import { join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { TestProject } from 'vitest/node';
import { startLocalSlurm } from './support/local-slurm.js';

declare module 'vitest' {
  export interface ProvidedContext {
    /** slurm.conf of the test cluster; '' when this run started none. */
    slurmConf: string;
  }
}

const root = fileURLToPath(new URL('../../../', import.meta.url));
const testDir = fileURLToPath(new URL('.', import.meta.url));

function wanted(project: TestProject): boolean {
  const filters = (project.vitest as unknown as { filenamePattern?: string[] }).filenamePattern;
  if (!filters || filters.length === 0) return true;
  const files = readdirSync(testDir).filter((f) => f.endsWith('.test.ts')).map((f) => join(testDir, f));
  return filters.some((filter) => files.some((file) => file.includes(filter) || relative(root, file).includes(filter) || file.startsWith(resolve(filter))));
}

export default async function setup(project: TestProject): Promise<(() => Promise<void>) | void> {
  if (process.env.DFD_TEST_SLURM_CONF) {
    if (!existsSync(process.env.DFD_TEST_SLURM_CONF)) throw new Error(`DFD_TEST_SLURM_CONF=${process.env.DFD_TEST_SLURM_CONF} does not exist`);
    project.provide('slurmConf', process.env.DFD_TEST_SLURM_CONF);
    return;
  }
  if (!wanted(project)) {
    project.provide('slurmConf', '');
    return;
  }
  const started = Date.now();
  const cluster = await startLocalSlurm();
  process.stderr.write(`[slurm-setup] one-node Slurm up in ${((Date.now() - started) / 1000).toFixed(1)} s (${cluster.conf}, ${cluster.cpus} CPUs)\n`);
  project.provide('slurmConf', cluster.conf);
  return () => cluster.stop();
}
