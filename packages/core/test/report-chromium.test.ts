/**
 * report.html in a real browser: headless Chromium (Debian's package, driven by playwright-core) opens the
 * report of a real run (the toy experiment trained by the runner, evaluated by `df40`) and the report of
 * the 8 default DF40 subsets; a screenshot of each ROC figure must show the drawn curves, and the page must
 * load without console errors (the CSP would report any attempt to fetch something).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { pathToFileURL } from 'node:url';
import sharp from 'sharp';
import type { Browser } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cliMain, CURVE_COLORS, DF40_TEST_SUBSETS, Df40Evaluator, Df40EvaluatorConfigSchema, Rng, runExperiment } from '@dfd/core';
import { launchChromium } from '../../../test/support/chromium.js';
import { toyExperiment } from './support/toy-plugin.js';

function scoredSet() {
  const rng = new Rng(5);
  const out = { scores: [] as number[], labels: [] as number[], subsets: [] as string[], videoIds: [] as string[] };
  DF40_TEST_SUBSETS.forEach((name, k) => {
    for (let v = 0; v < 30; v++) {
      const label = v % 2;
      for (let f = 0; f < 4; f++) {
        out.scores.push(1 / (1 + Math.exp(-((label - 0.5) * (0.4 + 0.4 * k) + rng.normal()))));
        out.labels.push(label);
        out.subsets.push(name);
        out.videoIds.push(`${name}/${label}/v${v}`);
      }
    }
  });
  return out;
}

async function colorPixels(png: Buffer, color: string): Promise<number> {
  const { data } = await sharp(png).removeAlpha().raw().toBuffer({ resolveWithObject: true });
  const [r, g, b] = [1, 3, 5].map((i) => parseInt(color.slice(i, i + 2), 16)) as [number, number, number];
  let count = 0;
  for (let i = 0; i < data.length; i += 3) {
    if (Math.abs(data[i]! - r) + Math.abs(data[i + 1]! - g) + Math.abs(data[i + 2]! - b) < 60) count++;
  }
  return count;
}

describe('report.html in headless Chromium', () => {
  let browser: Browser;
  let dir: string;
  beforeAll(async () => {
    browser = await launchChromium();
    dir = mkdtempSync(join(tmpdir(), 'dfd-report-chromium-'));
  });
  afterAll(async () => {
    await browser?.close();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  /** Opens a report, checks every ROC figure's screenshot for both curves; returns the table rows. */
  async function checkReport(path: string, figuresExpected: number): Promise<string[]> {
    const page = await browser.newPage({ viewport: { width: 1400, height: 900 } });
    const problems: string[] = [];
    page.on('console', (m) => {
      if (m.type() === 'error') problems.push(m.text());
    });
    page.on('pageerror', (e) => problems.push(e.message));
    await page.goto(pathToFileURL(path).href, { waitUntil: 'load' });
    const figures = page.locator('figure.roc-figure');
    expect(await figures.count()).toBe(figuresExpected);
    for (let i = 0; i < figuresExpected; i++) {
      const figure = figures.nth(i);
      const name = await figure.getAttribute('data-name');
      const box = await figure.locator('svg').boundingBox();
      expect(box!.width, `${name}: plot width`).toBeGreaterThan(300);
      const shot = await figure.screenshot();
      // a 2.5 px curve spanning a 290 px plot covers hundreds of pixels; an empty plot has none of these colours
      expect(await colorPixels(shot, CURVE_COLORS.frame), `${name}: frame ROC pixels in the screenshot`).toBeGreaterThan(300);
      expect(await colorPixels(shot, CURVE_COLORS.video), `${name}: video ROC pixels in the screenshot`).toBeGreaterThan(300);
    }
    const rows = await page.locator('table.metrics tbody tr').allInnerTexts();
    await page.screenshot({ path: join(path, '..', 'report-screenshot.png'), fullPage: true });
    expect(problems).toEqual([]);
    await page.close();
    return rows;
  }

  it("a run's report.html shows the ROC plots of its test subsets; dfd metrics agrees on its test-scores.csv", async () => {
    const runsDir = join(dir, 'runs');
    const experiment = toyExperiment(runsDir, {
      name: 'toy-report',
      dataset: { use: 'toy', config: { root: join(runsDir, 'toy-data'), perSplit: { train: 64, val: 32, test: 120 } } },
      evaluator: { use: 'df40', config: { subsets: ['a', 'b'], bootstrap: 200 } },
      trainer: { epochs: 2, batchSize: 16, evalBatchSize: 32, optimizer: { type: 'sgd', lr: 0.1, momentum: 0.9 } },
    });
    const result = await runExperiment(experiment as never);
    expect(result.status).toBe('finished');
    const rows = await checkReport(join(result.runDir, 'report.html'), 3);
    expect(rows.map((r) => r.split('\t')[0])).toEqual(['a', 'b', 'mean of 2 subsets', 'overall (all frames pooled)']);
    expect(rows[3]).toContain(result.test!.overall.auc!.toFixed(4));

    // The run's test-scores.csv read back by `dfd metrics` gives the evaluator's numbers.
    let out = '';
    const stdout = new PassThrough().on('data', (d) => (out += d));
    const code = await cliMain(['metrics', join(result.runDir, 'test-scores.csv'), '--json'], { stdout, stderr: new PassThrough(), cwd: dir, env: {}, isTTY: false });
    expect(code).toBe(0);
    const json = JSON.parse(out);
    for (const key of ['auc', 'ap', 'eer', 'acc', 'real_acc', 'fake_acc', 'n'] as const) {
      expect(json.overall[key]).toBe(result.test!.overall[key]);
      expect(json.subsets.a[key]).toBe(result.test!.subsets.a![key]);
    }
    expect(json.video).toEqual({ auc: result.test!.overall.video_auc, n: result.test!.overall.video_n });
  });

  it('shows the metrics table and one drawn ROC plot per subset plus overall', async () => {
    const evaluator = new Df40Evaluator(Df40EvaluatorConfigSchema.parse({ bootstrap: 200 }));
    const scored = scoredSet();
    const report = evaluator.evaluate(scored, { split: 'test', selection: 'val', frames_per_video: 4, sampling: 'even' });
    await evaluator.writeReport(report, scored, dir);

    const rows = await checkReport(join(dir, 'report.html'), 9);
    expect(rows).toHaveLength(10);
    expect(rows[0]).toContain('heygen');
    expect(rows[0]).toContain(report.subsets.heygen!.auc!.toFixed(4));
    expect(rows[8]).toContain('mean of 8 subsets');
  });
});
