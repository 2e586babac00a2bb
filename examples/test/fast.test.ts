/** Every example runs in its fast mode (a few steps) and writes a complete run directory. */
import { existsSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { beforeAll, describe, expect, test } from 'vitest';
import { runExperiment } from '@dfd/core';
import { ClipTokenizer } from '@dfd/encoder-clip';
import { cocoopExperiment } from '../src/cocoop.js';
import { coopExperiment } from '../src/coop.js';
import { formatTable, TINY_CLIP } from '../src/setup.js';
import { ufdExperiment } from '../src/ufd.js';
import { miniDf40 } from './support.js';

let root: string;
beforeAll(async () => {
  root = await miniDf40();
});

describe('examples in fast mode', () => {
  test.each([
    ['coop', coopExperiment],
    ['cocoop', cocoopExperiment],
    ['ufd', ufdExperiment],
  ] as const)('%s runs and writes the report', async (_name, experiment) => {
    const runsDir = mkdtempSync(join(tmpdir(), 'dfd-examples-fast-'));
    const result = await runExperiment(experiment({ root, fast: true, runsDir, cacheDir: join(runsDir, 'cache') }));
    expect(result.status).toBe('finished');
    expect(result.steps).toBe(3);
    for (const file of ['config.json', 'events.jsonl', 'metrics.jsonl', 'test-scores.csv', 'report.html', 'report.json', 'selected.json']) {
      expect(existsSync(join(result.runDir, file)), file).toBe(true);
    }
    const table = formatTable(result.test!);
    // header, rule, 8 subsets, their mean, and the seen-/unseen-family means of the synthetic set
    expect(table.split('\n')).toHaveLength(2 + 8 + 1 + 2);
    expect(table).toMatch(/\nmean seen-family\s+\d\.\d{3}/);
    expect(table).toMatch(/\nmean unseen-family\s+\d\.\d{3}/);
    expect(table).toMatch(/^subset\s+AUC\s+AP\s+EER\s+acc@0\.5\s+video AUC/);
    expect(table).toMatch(/\nmean\s+\d\.\d{3}/);
  });

  test('the tiny CLIP tokenises the prompts and class names into distinct whole tokens', async () => {
    const tokenizer = await ClipTokenizer.fromFolder(TINY_CLIP);
    const real = tokenizer.encode('real');
    const fake = tokenizer.encode('fake');
    expect(real).toHaveLength(1);
    expect(fake).toHaveLength(1);
    expect(real[0]).not.toBe(fake[0]);
    expect(tokenizer.encode('a photo of a')).toHaveLength(4);
    expect(new Set(tokenizer.encode('X X X X real.')).size).toBe(3);
  });

  test('the quickstart runs from the built files on a folder without data (fast mode)', () => {
    const cwd = mkdtempSync(join(tmpdir(), 'dfd-quickstart-'));
    const script = fileURLToPath(new URL('../dist/quickstart.js', import.meta.url));
    if (!existsSync(script)) throw new Error(`${script} is missing: npm test builds first (pretest); run npm run build`);
    const out = execFileSync(process.execPath, [script], { cwd, env: { ...process.env, DFD_QUICKSTART_FAST: '1', MLFLOW_TRACKING_URI: '' }, encoding: 'utf8' });
    expect(out).toMatch(/generating the synthetic mini-DF40/);
    expect(out).toMatch(/\nmean\s+\d\.\d{3}/);
    const report = out.match(/report:\s+(\S+)/)![1]!;
    expect(existsSync(report)).toBe(true);
    expect(existsSync(join(cwd, 'data/mini-df40/synth.json'))).toBe(true);
  }, 180_000);
});
