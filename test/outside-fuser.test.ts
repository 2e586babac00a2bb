/**
 * A fuser from outside the repository: a temporary package that depends on the packed @dfd/core (the
 * tarball `npm pack` makes, installed from npm's cache: `--prefer-offline`, nothing else of this repository)
 * defines a fuser in ≤ 30 lines (test/fixtures/outside-fuser/fuser.mjs), with small toy parts of its own
 * (toy-parts.mjs: data, loader, frozen encoder, prompt learner, an enhancer), and trains it through the
 * `dfd run experiment.json` CLI of its own node_modules. Runs after `npm run build` (the `pretest` script).
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, test } from 'vitest';
import { readSafetensors } from '@dfd/core';

const root = fileURLToPath(new URL('..', import.meta.url));
const fixtures = join(root, 'test/fixtures/outside-fuser');
const work = mkdtempSync(join(tmpdir(), 'dfd-outside-fuser-'));
afterAll(() => rmSync(work, { recursive: true, force: true }));

function npm(args: string[], cwd: string): string {
  return execFileSync('npm', args, { cwd, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, npm_config_update_notifier: 'false' } });
}

describe('a fuser defined outside the repository', () => {
  test('is ≤ 30 lines, installs against the packed @dfd/core offline, and trains through `dfd run experiment.json`', { timeout: 300_000 }, () => {
    if (!existsSync(join(root, 'packages/core/dist/index.js'))) throw new Error('@dfd/core is not built: run npm run build first (npm test does)');
    const fuserSource = readFileSync(join(fixtures, 'fuser.mjs'), 'utf8');
    expect(fuserSource.trimEnd().split('\n').length).toBeLessThanOrEqual(30);

    const [packed] = JSON.parse(npm(['pack', '-w', '@dfd/core', '--pack-destination', work, '--json', '--ignore-scripts'], root)) as Array<{ filename: string }>;
    const pkg = join(work, 'my-fusion');
    execFileSync('mkdir', ['-p', pkg]);
    const coreManifest = JSON.parse(readFileSync(join(root, 'packages/core/package.json'), 'utf8'));
    writeFileSync(
      join(pkg, 'package.json'),
      JSON.stringify({
        name: 'my-fusion',
        version: '1.0.0',
        private: true,
        type: 'module',
        exports: { '.': './index.mjs' },
        dependencies: { '@dfd/core': `file:../${packed!.filename}`, zod: coreManifest.dependencies.zod },
      }),
    );
    copyFileSync(join(fixtures, 'fuser.mjs'), join(pkg, 'fuser.mjs'));
    copyFileSync(join(fixtures, 'toy-parts.mjs'), join(pkg, 'toy-parts.mjs'));
    writeFileSync(join(pkg, 'index.mjs'), "export { myFusion } from './fuser.mjs';\nexport { toyParts } from './toy-parts.mjs';\n");
    const experiment = {
      name: 'outside-fuser',
      seed: 5,
      backend: 'cpu',
      plugins: ['my-fusion'],
      dataset: { use: 'toy-vectors', config: { root: 'data' } },
      loader: { use: 'toy-vectors' },
      encoder: { use: 'toy-encoder' },
      promptLearner: { use: 'toy-prompt' },
      enhancers: [{ use: 'map-mean' }],
      fuser: { use: 'gated-sum' },
      detector: { use: 'clip-prompt', config: { imageInput: 'features' } },
      evaluator: { use: 'binary' },
      trainer: { epochs: 4, batchSize: 8, evalBatchSize: 24, optimizer: { type: 'adam', lr: 0.05 } },
      runsDir: 'runs',
    };
    writeFileSync(join(pkg, 'experiment.json'), JSON.stringify(experiment, null, 2));

    // From npm's cache (filled by `npm ci`): no registry round trips, no audit.
    npm(['install', '--prefer-offline', '--no-audit', '--no-fund', '--ignore-scripts', '--loglevel=error'], pkg);
    expect(readdirSync(join(pkg, 'node_modules/@dfd'))).toEqual(['core']);

    const run = spawnSync(join(pkg, 'node_modules/.bin/dfd'), ['run', 'experiment.json', '--json', '--no-progress'], { cwd: pkg, encoding: 'utf8' });
    expect(run.stderr + run.stdout).not.toMatch(/Error/);
    expect(run.status).toBe(0);
    const result = JSON.parse(run.stdout.trim().split('\n').at(-1)!) as { status: string; runDir: string; test: { overall: { auc: number } } };
    expect(result.status).toBe('finished');
    expect(result.test.overall.auc).toBeGreaterThan(0.8);
    return readSafetensors(join(result.runDir, 'checkpoints/last.safetensors')).then(({ tensors }) => {
      // The outside fuser's weights were trained with the rest (named by the enhancer's component name).
      expect(Object.keys(tensors).filter((k) => k.startsWith('model/fuser.')).sort()).toEqual(['model/fuser.gate', 'model/fuser.proj.map-mean']);
      const config = JSON.parse(readFileSync(join(result.runDir, 'config.json'), 'utf8'));
      expect(config.fuser).toMatchObject({ use: 'gated-sum', plugin: 'my-fusion' });
    });
  });
});
