/**
 * `dfd` in a child process, for tests that need a real process: signals (Ctrl-C, Slurm's scancel), exit
 * codes. Optionally sends `signal` once the child's output matches `when`.
 */
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';

export const DFD_BIN = fileURLToPath(new URL('../../packages/core/bin/dfd.js', import.meta.url));

export function runDfd(cwd: string, args: string[], when?: RegExp, signal?: NodeJS.Signals): Promise<{ code: number | null; output: string }> {
  return new Promise((done) => {
    const child = spawn(process.execPath, [DFD_BIN, ...args], { cwd, stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    let sent = false;
    const onData = (d: Buffer) => {
      output += String(d);
      if (when && signal && !sent && when.test(output)) sent = child.kill(signal);
    };
    child.stdout.on('data', onData);
    child.stderr.on('data', onData);
    child.on('exit', (code) => done({ code, output }));
  });
}
