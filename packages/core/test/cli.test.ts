import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, test } from 'vitest';
import { cliMain } from '@dfd/core';
import { captureIo } from './support/capture-io.js';

const coreDir = resolve(dirname(fileURLToPath(import.meta.url)), '..');

/** A user project on disk with @dfd/core and one third-party plugin package installed in node_modules. */
function projectWithPlugin(): string {
  const project = mkdtempSync(join(tmpdir(), 'dfd-project-'));
  mkdirSync(join(project, 'node_modules', '@dfd'), { recursive: true });
  symlinkSync(coreDir, join(project, 'node_modules', '@dfd', 'core'));
  const pkg = join(project, 'node_modules', '@dfd', 'plugin-demo');
  mkdirSync(pkg, { recursive: true });
  writeFileSync(join(pkg, 'package.json'), JSON.stringify({ name: '@dfd/plugin-demo', version: '1.2.3', type: 'module', exports: './index.js' }));
  writeFileSync(
    join(pkg, 'index.js'),
    `import { definePlugin } from '@dfd/core';
import { z } from 'zod';
export const demo = definePlugin({ name: '@dfd/plugin-demo', version: '1.2.3', register(r) {
  r.add({ kind: 'fuser', name: 'demo-sum', description: 'sums features', config: z.object({ scale: z.number().default(1) }), useFactory: () => ({}) });
  r.command({ name: 'demo', summary: 'a demo command', usage: 'dfd demo', async run(args, io) { io.stdout.write('demo ran ' + args.join(' ') + '\\n'); return 0; } });
} });
export default demo;
`,
  );
  // zod must resolve from the plugin package: link the workspace's copy.
  symlinkSync(resolve(coreDir, '../../node_modules/zod'), join(project, 'node_modules', 'zod'));
  return project;
}

describe('dfd CLI', () => {
  test('`dfd plugins` lists core and discovered plugin components; `--json` gives their schemas', async () => {
    const project = projectWithPlugin();
    const text = captureIo();
    expect(await cliMain(['plugins'], { ...text.io, cwd: project, env: {} })).toBe(0);
    expect(text.out()).toMatch(/@dfd\/core@0\.1\.0/);
    expect(text.out()).toMatch(/detector\s+clip-prompt/);
    expect(text.out()).toMatch(/@dfd\/plugin-demo@1\.2\.3\s+\(commands: demo\)/);
    expect(text.out()).toMatch(/fuser\s+demo-sum\s+sums features/);

    const json = captureIo();
    expect(await cliMain(['plugins', '--json'], { ...json.io, cwd: project, env: {} })).toBe(0);
    const parsed = JSON.parse(json.out());
    const demo = parsed.components.find((c: { name: string }) => c.name === 'demo-sum');
    expect(demo).toMatchObject({ kind: 'fuser', plugin: '@dfd/plugin-demo' });
    expect(demo.config.properties.scale).toMatchObject({ type: 'number', default: 1 });
  });

  test('plugin commands are reachable; unknown commands and bad arguments exit 2 with a message', async () => {
    const project = projectWithPlugin();
    const ok = captureIo();
    expect(await cliMain(['demo', 'a', 'b'], { ...ok.io, cwd: project, env: {} })).toBe(0);
    expect(ok.out()).toBe('demo ran a b\n');
    const bad = captureIo();
    expect(await cliMain(['dmeo'], { ...bad.io, cwd: project, env: {} })).toBe(2);
    expect(bad.err()).toMatch(/unknown command 'dmeo'\. Commands: run, resume, predict, plugins, .*demo/);
    const usage = captureIo();
    expect(await cliMain(['run'], { ...usage.io, cwd: project, env: {} })).toBe(2);
    expect(usage.err()).toMatch(/expected exactly one experiment file[\s\S]*dfd run <experiment/);
  });

  test('the installed `dfd` binary runs (npx dfd plugins)', () => {
    const out = execFileSync('npx', ['--no-install', 'dfd', 'plugins'], { cwd: resolve(coreDir, '../..'), encoding: 'utf8' });
    expect(out).toMatch(/detector\s+clip-prompt/);
  });
});

describe('dfd run / resume as a user runs them', () => {
  test('`dfd run experiment.ts` trains through tsx with --set overrides and prints the result', () => {
    const runs = mkdtempSync(join(tmpdir(), 'dfd-cli-runs-'));
    const bin = resolve(coreDir, 'bin/dfd.js');
    const out = execFileSync('node', [bin, 'run', 'test/fixtures/toy-experiment.ts', '--set', 'trainer.epochs=1', '--json', '--no-progress'], {
      cwd: coreDir,
      encoding: 'utf8',
      // tsx reads the tsconfig from the cwd, whose `include` (src/) does not cover the test files.
      env: { ...process.env, DFD_TEST_RUNS: runs, TSX_TSCONFIG_PATH: resolve(coreDir, 'test/tsconfig.json') },
    });
    const result = JSON.parse(out.trim().split('\n').at(-1)!);
    expect(result).toMatchObject({ status: 'finished', steps: 4, selected: { by: 'val' } });
    expect(result.runDir.startsWith(runs)).toBe(true);
    expect(result.test.overall.auc).toBeGreaterThan(0.7);
    let failure: { status: number; stderr: string } | undefined;
    try {
      execFileSync('node', [bin, 'resume', result.runDir], { cwd: coreDir, encoding: 'utf8', stdio: 'pipe' });
    } catch (error) {
      failure = error as { status: number; stderr: string };
    }
    expect(failure?.status).toBe(1);
    expect(failure?.stderr).toMatch(/already finished; nothing to resume/);
  });

  test('`dfd run file.ts` loads it as an ES module wherever it is (a CommonJS package, another folder)', () => {
    // A user folder outside any "type": "module" package: its package.json says nothing about the type, so
    // Node treats .ts there as CommonJS ("Cannot require() ES Module ... in a cycle" before the fix).
    const project = mkdtempSync(join(tmpdir(), 'dfd-cjs-project-'));
    writeFileSync(join(project, 'package.json'), JSON.stringify({ name: 'my-experiments', version: '1.0.0' }));
    mkdirSync(join(project, 'node_modules', '@dfd'), { recursive: true });
    symlinkSync(coreDir, join(project, 'node_modules', '@dfd', 'core'));
    writeFileSync(join(project, 'settings.ts'), `export const epochs: number = 1;\n`);
    writeFileSync(
      join(project, 'experiment.ts'),
      `import { defineExperiment } from '@dfd/core';
import { epochs } from './settings.ts';
import { toyExperiment } from ${JSON.stringify(join(coreDir, 'test/support/toy-plugin.ts'))};
export default defineExperiment(toyExperiment(${JSON.stringify(join(project, 'runs'))}, { name: 'cjs-folder', trainer: { epochs, batchSize: 16 } }));
`,
    );
    const out = execFileSync('node', [resolve(coreDir, 'bin/dfd.js'), 'run', 'experiment.ts', '--json', '--no-progress'], {
      cwd: project,
      encoding: 'utf8',
      // the toy plugin's parameter decorators need the test tsconfig's compiler options
      env: { ...process.env, TSX_TSCONFIG_PATH: resolve(coreDir, 'test/tsconfig.json') },
    });
    expect(JSON.parse(out.trim().split('\n').at(-1)!)).toMatchObject({ status: 'finished', steps: 4 });
  });
});
