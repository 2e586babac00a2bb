/**
 * The outside tools the native-backend installer runs, found up front so that a machine missing several
 * gets one error naming each missing tool and how to get it, before anything is downloaded or built.
 */
import { execFileSync, spawn } from 'node:child_process';
import { existsSync, realpathSync } from 'node:fs';
import { delimiter, dirname, join } from 'node:path';

export class NativeInstallError extends Error {
  override name = 'NativeInstallError';
}

export interface Tool {
  /** What the installer calls it in messages. */
  name: string;
  /** The command to run: an executable, or `node` plus a script for node-gyp. */
  command: string[];
}

interface ToolSpec {
  name: string;
  why: string;
  fix: string;
  find(env: NodeJS.ProcessEnv): string[] | undefined;
}

/** The first executable named `candidates` on PATH. */
export function which(candidates: string[], env: NodeJS.ProcessEnv = process.env): string | undefined {
  for (const candidate of candidates) {
    for (const dir of (env.PATH ?? '').split(delimiter)) {
      if (dir && existsSync(join(dir, candidate))) return join(dir, candidate);
    }
  }
  return undefined;
}

/** npm's bundled node-gyp (every npm ships one), else a node-gyp on PATH. */
function findNodeGyp(env: NodeJS.ProcessEnv): string[] | undefined {
  const npm = which(['npm'], env);
  const npmRoots = [
    env.npm_execpath ? dirname(dirname(env.npm_execpath)) : undefined,
    npm ? dirname(dirname(realpathSync(npm))) : undefined,
    join(dirname(dirname(process.execPath)), 'lib/node_modules/npm'),
  ];
  for (const root of npmRoots) {
    const script = root && join(root, 'node_modules/node-gyp/bin/node-gyp.js');
    if (script && existsSync(script)) return [process.execPath, script];
  }
  const onPath = which(['node-gyp'], env);
  return onPath ? [onPath] : undefined;
}

function pythonHasPip(python: string): boolean {
  try {
    execFileSync(python, ['-m', 'pip', '--version'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

const single = (names: string[]) => (env: NodeJS.ProcessEnv) => {
  const path = which(names, env);
  return path ? [path] : undefined;
};

const SPECS: Record<string, ToolSpec> = {
  npm: { name: 'npm', why: 'installs @tensorflow/tfjs-node without its download script', fix: 'it comes with Node.js', find: single(['npm']) },
  'node-gyp': { name: 'node-gyp', why: 'compiles the tfjs-node addon', fix: 'it comes with npm; or `npm install -g node-gyp`', find: findNodeGyp },
  python3: { name: 'python3', why: 'node-gyp runs gyp, which is Python', fix: 'apt install python3 (or your distribution\'s python3)', find: single(['python3']) },
  'c++': { name: 'C++ compiler', why: 'compiles the tfjs-node addon', fix: 'apt install g++ (build-essential)', find: single(['c++', 'g++', 'clang++']) },
  cc: { name: 'C compiler', why: 'compiles the CPython stub library', fix: 'apt install gcc (build-essential)', find: single(['cc', 'gcc', 'clang']) },
  make: { name: 'make', why: 'node-gyp drives the compile with make', fix: 'apt install make (build-essential)', find: single(['make']) },
  nm: { name: 'nm', why: 'lists the CPython symbols the TensorFlow library expects', fix: 'apt install binutils', find: single(['nm']) },
  pip: {
    name: 'pip',
    why: 'downloads the tensorflow wheel from PyPI (not needed with --wheel or a cached wheel)',
    fix: 'apt install python3-pip, or download the wheel elsewhere and pass --wheel PATH',
    find: (env) => {
      const python = which(['python3'], env);
      return python && pythonHasPip(python) ? [python, '-m', 'pip'] : undefined;
    },
  },
};

export type ToolName = keyof typeof SPECS;

/** Finds every tool in `names`; throws one error listing all that are missing, each with why and how. */
export function requireTools(names: ToolName[], env: NodeJS.ProcessEnv = process.env): Record<string, Tool> {
  const found: Record<string, Tool> = {};
  const missing: string[] = [];
  for (const key of names) {
    const spec = SPECS[key]!;
    const command = spec.find(env);
    if (command) found[key] = { name: spec.name, command };
    else missing.push(`  - ${spec.name}: needed because it ${spec.why}. Fix: ${spec.fix}.`);
  }
  if (missing.length > 0) {
    throw new NativeInstallError(`the native TensorFlow backend cannot be installed; missing tools:\n${missing.join('\n')}`);
  }
  return found;
}

/**
 * Runs a tool, streaming its output lines to `log`; rejects with the tail of its output on failure.
 */
export function runTool(
  tool: Tool,
  args: string[],
  options: { cwd: string; env: NodeJS.ProcessEnv; log: (line: string) => void; what: string },
): Promise<void> {
  const [file, ...prefix] = tool.command;
  return new Promise((resolve, reject) => {
    const child = spawn(file!, [...prefix, ...args], { cwd: options.cwd, env: options.env, stdio: ['ignore', 'pipe', 'pipe'] });
    const tail: string[] = [];
    const onData = (chunk: Buffer) => {
      for (const line of chunk.toString().split('\n')) {
        if (!line.trim()) continue;
        tail.push(line);
        if (tail.length > 40) tail.shift();
        options.log(`    ${line}`);
      }
    };
    child.stdout.on('data', onData);
    child.stderr.on('data', onData);
    child.on('error', (error) => reject(new NativeInstallError(`${options.what}: could not start ${tool.name}: ${error.message}`)));
    child.on('close', (code) => {
      if (code === 0) resolve();
      else reject(new NativeInstallError(`${options.what} failed (${tool.name} exited with ${code}). Its last output:\n${tail.join('\n')}`));
    });
  });
}
