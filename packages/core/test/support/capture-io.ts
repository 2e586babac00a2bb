/** The `io` a CLI command gets, with stdout and stderr captured in memory (for calling `cliMain` in-process). */
import { PassThrough } from 'node:stream';

export function captureIo() {
  const stdout = new PassThrough();
  const stderr = new PassThrough();
  let out = '';
  let err = '';
  stdout.on('data', (d) => (out += d));
  stderr.on('data', (d) => (err += d));
  return { io: { stdout, stderr, isTTY: false }, out: () => out, err: () => err };
}
