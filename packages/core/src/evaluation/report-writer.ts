/**
 * Writes an evaluation into a directory: report.json (numbers, protocol, thinned ROC points), report.html
 * (table + inline SVG ROC curves) and, optionally, roc/<set>.png copies rasterised with sharp for trackers
 * that display images.
 */
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import sharp from 'sharp';
import type { EvaluationReport, ScoredSet } from '../contracts.js';
import { classCounts } from '../metrics/errors.js';
import { rocCurve, type RocCurve } from '../metrics/roc.js';
import { videoScores } from '../metrics/video.js';
import { overallGroup, subsetGroups, type ScoredGroup, type SubsetNaming } from './groups.js';
import { reportHtml, type HtmlPlot } from './html.js';
import { simplifyPolyline } from './polyline.js';
import { rocSvg, type CurveSeries } from './svg.js';

export interface WriteReportOptions extends SubsetNaming {
  evaluator: string;
  videoLevel: boolean;
  png: boolean;
  /** Render scale of the PNGs (2 = 724×752 px for the 362×376 px SVG). */
  pngScale?: number;
}

interface SetCurves {
  name: string;
  frame?: RocCurve;
  video?: RocCurve;
  auc?: number;
  videoAuc?: number;
}

function curvesOf(group: ScoredGroup, auc?: number, videoAuc?: number): SetCurves {
  const counts = classCounts(group.labels);
  if (counts.real === 0 || counts.fake === 0) return { name: group.name };
  const result: SetCurves = { name: group.name, frame: rocCurve(group, { where: group.name }), auc, videoAuc };
  if (group.videoIds) {
    const videos = videoScores({ ...group, videoIds: group.videoIds }, group.name);
    result.video = rocCurve({ labels: videos.labels, scores: videos.scores }, { where: `${group.name} (video level)` });
  }
  return result;
}

/** File-name-safe and unique: `MidJourney` → `MidJourney`, `a/b c` → `a_b_c`. */
function fileNames(names: string[]): Map<string, string> {
  const used = new Set<string>();
  const out = new Map<string, string>();
  for (const name of names) {
    const base = name.replace(/[^A-Za-z0-9._-]+/g, '_').replace(/^[._]+/, '') || 'set';
    let candidate = base;
    for (let k = 2; used.has(candidate.toLowerCase()); k++) candidate = `${base}-${k}`;
    used.add(candidate.toLowerCase());
    out.set(name, candidate);
  }
  return out;
}

/**
 * ROC points for report.json, for re-plotting: 3 decimals (a 1000 px plot), simplified (polyline.ts), so
 * a curve of 10^5 test frames stays a few thousand points. The metrics themselves are exact.
 */
function thin(curve: RocCurve): { fpr: number[]; tpr: number[] } {
  const { x, y } = simplifyPolyline(curve.fpr, curve.tpr, (v) => Math.round(v * 1e3) / 1e3);
  return { fpr: x, tpr: y };
}

function seriesOf(set: SetCurves): CurveSeries[] {
  const series: CurveSeries[] = [];
  if (set.frame) {
    series.push({ label: `frames AUC ${set.auc?.toFixed(4) ?? ''}`.trim(), fpr: set.frame.fpr, tpr: set.frame.tpr, kind: 'frame' });
  }
  if (set.video) {
    series.push({ label: `videos AUC ${set.videoAuc?.toFixed(4) ?? ''}`.trim(), fpr: set.video.fpr, tpr: set.video.tpr, kind: 'video' });
  }
  return series;
}

export async function writeEvaluationReport(
  report: EvaluationReport,
  scored: ScoredSet,
  dir: string,
  options: WriteReportOptions,
): Promise<string[]> {
  await mkdir(dir, { recursive: true });
  const created = new Date().toISOString();
  const sets: SetCurves[] = [
    ...subsetGroups(scored, options, options.videoLevel).map((g) =>
      curvesOf(g, report.subsets[g.name]?.auc, report.subsets[g.name]?.video_auc),
    ),
    curvesOf({ ...overallGroup(scored, options.videoLevel), name: 'overall' }, report.overall.auc, report.overall.video_auc),
  ];
  const files = fileNames(sets.map((s) => s.name));
  const written: string[] = [];
  const plots: HtmlPlot[] = [];
  if (options.png) await mkdir(join(dir, 'roc'), { recursive: true });
  for (const set of sets) {
    const series = seriesOf(set);
    if (series.length === 0) {
      plots.push({ name: set.name });
      continue;
    }
    const svg = rocSvg(set.name, series);
    const plot: HtmlPlot = { name: set.name, svg };
    if (options.png) {
      const relative = `roc/${files.get(set.name)!}.png`;
      const path = join(dir, relative);
      // librsvg renders at 72 dpi; the density scales the SVG to a sharper raster.
      await sharp(Buffer.from(svg), { density: 72 * (options.pngScale ?? 2) }).png().toFile(path);
      plot.png = relative;
      written.push(path);
    }
    plots.push(plot);
  }
  const json = {
    format: 'dfd-evaluation-report/1',
    evaluator: options.evaluator,
    created,
    overall: report.overall,
    subsets: report.subsets,
    ...(report.groups ? { groups: report.groups } : {}),
    protocol: report.protocol,
    ...(report.coverage ? { coverage: report.coverage } : {}),
    roc: Object.fromEntries(
      sets
        .filter((s) => s.frame)
        .map((s) => [s.name, { frame: thin(s.frame!), ...(s.video ? { video: thin(s.video) } : {}) }]),
    ),
    files: Object.fromEntries(plots.filter((p) => p.png).map((p) => [p.name, p.png])),
  };
  const jsonPath = join(dir, 'report.json');
  // Indented for people, except the long ROC point arrays, which stay one line per curve.
  const { roc, ...rest } = json;
  const rocText = Object.entries(roc)
    .map(([name, curves]) => `    ${JSON.stringify(name)}: ${JSON.stringify(curves)}`)
    .join(',\n');
  const text = JSON.stringify(rest, null, 2).replace(/\n}$/, `,\n  "roc": {\n${rocText}\n  }\n}`);
  await writeFile(jsonPath, `${text}\n`);
  const htmlPath = join(dir, 'report.html');
  await writeFile(htmlPath, reportHtml(report, plots, { evaluator: options.evaluator, created }));
  return [jsonPath, htmlPath, ...written];
}
