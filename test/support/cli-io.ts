/** The `io` a `dfd` command gets when a test runs it in-process, with stdout and stderr captured in memory. */
import { PassThrough } from 'node:stream';
import type { CliIO, PluginRegistry } from '@dfd/core';

export type CapturedIo = CliIO & { out: () => string; err: () => string };

export function captureCliIo(cwd: string, options: { env?: NodeJS.ProcessEnv; registry?: PluginRegistry } = {}): CapturedIo {
  const stdout = new PassThrough();
  const stderr = new PassThrough();
  let out = '';
  let err = '';
  stdout.on('data', (d) => (out += String(d)));
  stderr.on('data', (d) => (err += String(d)));
  return { stdout, stderr, cwd, env: options.env ?? {}, isTTY: false, ...(options.registry ? { registry: options.registry } : {}), out: () => out, err: () => err };
}
