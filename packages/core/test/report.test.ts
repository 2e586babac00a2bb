/**
 * report.json / report.html / roc/*.png as written by the evaluators, read back from disk: JSON parsed,
 * PNGs decoded with sharp and checked for drawn curves (pixels of the curve colours).
 */
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import sharp from 'sharp';
import { afterAll, describe, expect, it } from 'vitest';
import {
  COMPONENT_KINDS,
  configToken,
  corePlugin,
  CURVE_COLORS,
  DF40_TEST_SUBSETS,
  ExperimentContainer,
  ROC_SVG_SIZE,
  PluginRegistry,
  Rng,
  rocCurve,
  simplifyPolyline,
  type Evaluator,
  type ScoredSet,
} from '@dfd/core';

function evaluatorFor(name: string, config: Record<string, unknown> = {}): Evaluator {
  const registry = new PluginRegistry([corePlugin]);
  const container = ExperimentContainer.create();
  container.registerValue(configToken('evaluator'), registry.resolveConfig('evaluator', name, config));
  container.registerClass(COMPONENT_KINDS.evaluator, registry.get('evaluator', name).useClass as never);
  return container.resolve<Evaluator>(COMPONENT_KINDS.evaluator);
}

function scoredSet(subsets: Array<{ name: string; real: number; fake: number; separation: number }>, frames = 3): ScoredSet {
  const rng = new Rng(11);
  const out = { scores: [] as number[], labels: [] as number[], subsets: [] as string[], videoIds: [] as string[] };
  for (const s of subsets) {
    for (const [label, count] of [[0, s.real], [1, s.fake]] as const) {
      for (let v = 0; v < count; v++) {
        for (let f = 0; f < frames; f++) {
          out.scores.push(1 / (1 + Math.exp(-((label - 0.5) * s.separation + rng.normal()))));
          out.labels.push(label);
          out.subsets.push(s.name);
          out.videoIds.push(`${s.name}/${label}/v${v}`);
        }
      }
    }
  }
  return out;
}

function hex(color: string): [number, number, number] {
  return [1, 3, 5].map((i) => parseInt(color.slice(i, i + 2), 16)) as [number, number, number];
}

/** Pixels within a small distance of `color` in a decoded RGB(A) raster. */
export async function countColor(png: Buffer | string, color: string): Promise<{ count: number; width: number; height: number }> {
  const { data, info } = await sharp(png).removeAlpha().raw().toBuffer({ resolveWithObject: true });
  const [r, g, b] = hex(color);
  let count = 0;
  for (let i = 0; i < data.length; i += 3) {
    if (Math.abs(data[i]! - r) + Math.abs(data[i + 1]! - g) + Math.abs(data[i + 2]! - b) < 60) count++;
  }
  return { count, width: info.width, height: info.height };
}

const dirs: string[] = [];
function tempDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'dfd-report-'));
  dirs.push(dir);
  return dir;
}
afterAll(() => {
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
});

describe('evaluation report files', () => {
  const scored = scoredSet(DF40_TEST_SUBSETS.map((name, k) => ({ name, real: 12, fake: 12, separation: 0.3 + 0.5 * k })));
  const evaluator = evaluatorFor('df40', { bootstrap: 100 });
  const report = evaluator.evaluate(scored, { split: 'test', selection: 'val', frames_per_video: 3, sampling: 'even' });

  it('writes report.json, report.html and one ROC PNG per subset plus overall', async () => {
    const dir = tempDir();
    const written = await evaluator.writeReport!(report, scored, dir);
    expect(written.map((p) => p.slice(dir.length + 1)).sort()).toEqual(
      ['report.html', 'report.json', ...[...DF40_TEST_SUBSETS, 'overall'].map((s) => `roc/${s}.png`)].sort(),
    );

    const json = JSON.parse(readFileSync(join(dir, 'report.json'), 'utf8'));
    expect(json.format).toBe('dfd-evaluation-report/1');
    expect(json.overall).toEqual(report.overall);
    expect(json.subsets).toEqual(report.subsets);
    expect(json.protocol).toMatchObject({ selection: 'val', frames_per_video: 3, sampling: 'even', evaluator: 'df40' });
    expect(Object.keys(json.roc)).toEqual([...DF40_TEST_SUBSETS, 'overall']);
    for (const curve of Object.values<{ frame: { fpr: number[]; tpr: number[] }; video: unknown }>(json.roc)) {
      expect(curve.frame.fpr[0]).toBe(0);
      expect(curve.frame.tpr[0]).toBe(0);
      expect(curve.frame.fpr.at(-1)).toBe(1);
      expect(curve.frame.tpr.at(-1)).toBe(1);
      expect(curve.video).toBeDefined();
    }

    const html = readFileSync(join(dir, 'report.html'), 'utf8');
    expect(html.match(/<svg /g)).toHaveLength(9);
    expect(html).toContain('best-thr acc (oracle)');
    expect(html).toContain(`mean of 8 subsets`);
    expect(html).toContain("Content-Security-Policy");
    expect(html).not.toMatch(/<script|(src|href)="https?:/);
    for (const name of DF40_TEST_SUBSETS) expect(html).toContain(`data-name="${name}"`);
    expect(html).toContain(report.subsets.heygen!.auc!.toFixed(4));
  });

  it('the PNG copies are 2× rasters with both curves drawn', async () => {
    const dir = tempDir();
    await evaluator.writeReport!(report, scored, dir);
    const pngs = readdirSync(join(dir, 'roc'));
    expect(pngs).toHaveLength(9);
    for (const file of pngs) {
      const frame = await countColor(join(dir, 'roc', file), CURVE_COLORS.frame);
      const video = await countColor(join(dir, 'roc', file), CURVE_COLORS.video);
      expect([frame.width, frame.height]).toEqual([ROC_SVG_SIZE.width * 2, ROC_SVG_SIZE.height * 2]);
      // A curve from (0,0) to (1,1) in the 580 px plot is at least ~830 px long and 5 px wide; the dashed
      // video curve is drawn over the frame curve where they coincide, so each alone is checked loosely.
      expect(frame.count, `${file}: frame curve pixels`).toBeGreaterThan(1000);
      expect(video.count, `${file}: video curve pixels`).toBeGreaterThan(1000);
      expect(frame.count + video.count, `${file}: curve pixels`).toBeGreaterThan(4000);
    }
  });

  it('a one-class validation subset gets a placeholder instead of a curve; odd names become safe file names', async () => {
    const val = scoredSet([
      { name: 'FF real/c23', real: 5, fake: 0, separation: 1 },
      { name: 'pixart', real: 5, fake: 5, separation: 1 },
      { name: '../up', real: 5, fake: 5, separation: 1 },
    ]);
    const binary = evaluatorFor('binary', { bootstrap: 0 });
    const valReport = binary.evaluate(val, { split: 'val' });
    const dir = tempDir();
    const written = await binary.writeReport!(valReport, val, dir);
    expect(written.map((p) => p.slice(dir.length + 1)).sort()).toEqual(['report.html', 'report.json', 'roc/overall.png', 'roc/pixart.png', 'roc/up.png']);
    const html = readFileSync(join(dir, 'report.html'), 'utf8');
    expect(html).toContain('no ROC curve: this set has a single class');
    expect(html).toContain('FF real/c23 (real only: 15)');
  });

  it('subsets the df40 protocol left out are not plotted either', async () => {
    const dir = tempDir();
    const withExtra = scoredSet([...DF40_TEST_SUBSETS.map((name) => ({ name, real: 4, fake: 4, separation: 1 })), { name: 'simswap_ff', real: 4, fake: 4, separation: 1 }]);
    const df40 = evaluatorFor('df40', { bootstrap: 0 });
    const extraReport = df40.evaluate(withExtra, { split: 'test' });
    const written = await df40.writeReport!(extraReport, withExtra, dir);
    expect(written.some((p) => p.includes('simswap'))).toBe(false);
    const json = JSON.parse(readFileSync(join(dir, 'report.json'), 'utf8'));
    expect(Object.keys(json.roc)).toEqual([...DF40_TEST_SUBSETS, 'overall']);
    expect(json.protocol.excluded_subsets).toBe('simswap_ff (24 frames)');
    expect(readFileSync(join(dir, 'report.html'), 'utf8')).toContain('simswap_ff (24 frames)');
  });

  it('png: false writes only the JSON and the HTML', async () => {
    const dir = tempDir();
    const noPng = evaluatorFor('df40', { bootstrap: 0, png: false });
    const written = await noPng.writeReport!(noPng.evaluate(scored, { split: 'test' }), scored, dir);
    expect(written.map((p) => p.slice(dir.length + 1))).toEqual(['report.json', 'report.html']);
  });
});

describe('ROC polyline simplification', () => {
  it('drops only points inside straight axis-aligned runs: every rounded point stays on the path', () => {
    const rng = new Rng(4);
    const labels = Array.from({ length: 3000 }, (_, i) => i % 2);
    const scores = labels.map((y) => Math.round((0.5 + 0.15 * (y - 0.5) + 0.2 * rng.normal()) * 200) / 200); // ties
    const roc = rocCurve({ labels, scores }, { dropIntermediate: false });
    const round = (v: number) => Math.round(v * 1e3) / 1e3;
    const { x, y } = simplifyPolyline(roc.fpr, roc.tpr, round);
    expect(x.length).toBeLessThan(roc.fpr.length);
    expect([x[0], y[0], x.at(-1), y.at(-1)]).toEqual([0, 0, 1, 1]);
    const onPath = (px: number, py: number) =>
      x.some((_, i) => {
        if (i === 0) return x[0] === px && y[0] === py;
        const [x0, y0, x1, y1] = [x[i - 1]!, y[i - 1]!, x[i]!, y[i]!];
        const within = px >= Math.min(x0, x1) && px <= Math.max(x0, x1) && py >= Math.min(y0, y1) && py <= Math.max(y0, y1);
        return within && Math.abs((x1 - x0) * (py - y0) - (y1 - y0) * (px - x0)) < 1e-12;
      });
    for (let i = 0; i < roc.fpr.length; i++) expect(onPath(round(roc.fpr[i]!), round(roc.tpr[i]!)), `point ${i}`).toBe(true);
  });
});
