/**
 * The MLflow UI, opened in headless Chromium (Debian's chromium through playwright-core), shows the run's
 * metric chart. The screenshot is saved with the test output (.vitest-output/tracking-mlflow/, gitignored).
 */
import { mkdirSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { MlflowTracker } from '@dfd/tracking-mlflow';
import { launchChromium } from '../../../test/support/chromium.js';
import { HandRun, tempRunsDir } from './support/run-dir.js';
import { mlflowUri, testClient, unique } from './support/mlflow.js';

const outputDir = fileURLToPath(new URL('../../../.vitest-output/tracking-mlflow/', import.meta.url));

describe('MLflow UI (headless Chromium)', () => {
  it('draws the train/loss chart of a tracked run on its run page', async () => {
    const experiment = unique('ui');
    const run = new HandRun(tempRunsDir(), experiment);
    const tracker = new MlflowTracker({ trackingUri: mlflowUri(), flushIntervalMs: 100, logger: () => {} });
    tracker.attach(run.bus.events$, { runId: run.runId, experiment, runDir: run.runDir });
    run.start();
    run.steps(1, 60, { loss: (step) => 1 / Math.sqrt(step) });
    run.evalAt(60, 'test');
    run.end('finished', 60);
    await tracker.close();
    expect((await testClient().getMetricHistory(tracker.mlflowRunId!, 'train/loss')).length).toBe(60);

    const browser = await launchChromium();
    try {
      const page = await browser.newPage({ viewport: { width: 1400, height: 1000 } });
      await page.goto(`${tracker.runUrl}/model-metrics`, { waitUntil: 'load' });
      await page.getByPlaceholder('Search metric charts').fill('train/loss', { timeout: 60_000 });
      // Plotly draws each series as one SVG path (simplified: collinear points are merged).
      const line = page.locator('.js-plotly-plot .scatterlayer path.js-line').first();
      await line.waitFor({ timeout: 60_000 });
      await page.waitForTimeout(1000); // let the chart finish its transition before the picture
      mkdirSync(outputDir, { recursive: true });
      await page.screenshot({ path: `${outputDir}/mlflow-run-page.png` });
      const d = (await line.getAttribute('d')) ?? '';
      expect(d.split(/[LM]/).filter(Boolean).length).toBeGreaterThanOrEqual(10);
      const box = (await line.boundingBox())!;
      expect(box.width).toBeGreaterThan(100); // drawn across the step axis
      expect(box.height).toBeGreaterThan(100); // and falling, as 1/sqrt(step) does
      await expect(page.getByText('loss', { exact: true }).first().isVisible()).resolves.toBe(true);
    } finally {
      await browser.close();
    }
  });
});
