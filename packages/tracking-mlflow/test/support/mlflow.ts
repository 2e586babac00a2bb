/** Test helpers: the global-setup MLflow server, unique names, a Writable that collects CLI output. */
import { randomBytes } from 'node:crypto';
import { Writable } from 'node:stream';
import { inject } from 'vitest';
import type { CliIO } from '@dfd/core';
import { MlflowClient } from '@dfd/tracking-mlflow';

export function mlflowUri(): string {
  const uri = inject('mlflowUri');
  if (!uri) {
    throw new Error(
      'no MLflow test server: test/global-setup.ts started none for this run (filtered run?). ' +
        'Run `npx vitest run packages/tracking-mlflow`, or set DFD_MLFLOW_SERVER=1 / DFD_TEST_MLFLOW_URI.',
    );
  }
  return uri;
}

export function unique(prefix: string): string {
  return `${prefix}-${Date.now().toString(36)}-${randomBytes(3).toString('hex')}`;
}

/** A client with quick retries, for reading back what the code under test wrote. */
export function testClient(trackingUri = mlflowUri()): MlflowClient {
  return new MlflowClient({ trackingUri, retry: { maxRetries: 2, backoffMs: 50, maxBackoffMs: 200 }, env: {} });
}

export class Collect extends Writable {
  text = '';
  override _write(chunk: Buffer, _encoding: string, done: () => void): void {
    this.text += chunk.toString();
    done();
  }
}

export function cliIO(cwd: string, env: NodeJS.ProcessEnv = {}): CliIO & { stdout: Collect; stderr: Collect } {
  return { stdout: new Collect(), stderr: new Collect(), cwd, env, isTTY: false };
}
