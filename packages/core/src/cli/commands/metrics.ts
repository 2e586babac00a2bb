/**
 * `dfd metrics FILE.csv [--json]`: scikit-learn-exact metrics for scores from any detector. The CSV format
 * is described in metrics/scores-csv.ts; with `--json` the output is exactly
 * `{"overall": {auc, ap, eer, acc, real_acc, fake_acc, n}, "subsets": {...}, "video": {auc, n}}`, where
 * `subsets` appears only with a `subset` column and `video` only with a `video` column.
 */
import { resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { accuracyAt } from '../../metrics/accuracy.js';
import { averagePrecision } from '../../metrics/average-precision.js';
import { eerFromRoc } from '../../metrics/eer.js';
import { checkBothClasses } from '../../metrics/errors.js';
import { rocCurve, trapezoidArea } from '../../metrics/roc.js';
import { readScoresCsv, type ScoresTable } from '../../metrics/scores-csv.js';
import { videoScores } from '../../metrics/video.js';
import { UsageError, type CliCommand } from '../command.js';

export interface CsvMetricFields {
  auc: number;
  ap: number;
  eer: number;
  acc: number;
  real_acc: number;
  fake_acc: number;
  n: number;
}

export interface CsvMetrics {
  overall: CsvMetricFields;
  subsets?: Record<string, CsvMetricFields>;
  video?: { auc: number; n: number };
}

function fields(labels: number[], scores: number[], where: string): CsvMetricFields {
  const inputs = { labels, scores };
  checkBothClasses(inputs, where, 'AUC');
  const roc = rocCurve(inputs, { where });
  const acc = accuracyAt(inputs, undefined, where);
  return {
    auc: trapezoidArea(roc.fpr, roc.tpr),
    ap: averagePrecision(inputs, where),
    eer: eerFromRoc(roc),
    acc: acc.acc,
    real_acc: acc.realAcc,
    fake_acc: acc.fakeAcc,
    n: labels.length,
  };
}

/** The `--json` document for a parsed scores table. */
export function csvMetrics(table: ScoresTable, file: string): CsvMetrics {
  const result: CsvMetrics = { overall: fields(table.labels, table.scores, file) };
  if (table.subsets) {
    const groups = new Map<string, { labels: number[]; scores: number[] }>();
    table.subsets.forEach((subset, i) => {
      let group = groups.get(subset);
      if (!group) groups.set(subset, (group = { labels: [], scores: [] }));
      group.labels.push(table.labels[i]!);
      group.scores.push(table.scores[i]!);
    });
    result.subsets = {};
    for (const [name, group] of groups) {
      result.subsets[name] = fields(group.labels, group.scores, `${file}: subset '${name}'`);
    }
  }
  if (table.videos) {
    // A video is (subset, label, video): a real and a fake video with the same folder name stay apart.
    const keys = table.videos.map((v, i) => `${table.subsets?.[i] ?? ''}\u0000${table.labels[i]}\u0000${v}`);
    const videos = videoScores({ labels: table.labels, scores: table.scores, videoIds: keys }, file);
    const videoInputs = { labels: videos.labels, scores: videos.scores };
    const where = `${file} (video level)`;
    const roc = rocCurve(videoInputs, { where });
    result.video = { auc: trapezoidArea(roc.fpr, roc.tpr), n: videos.ids.length };
  }
  return result;
}

function formatTable(metrics: CsvMetrics, file: string, table: ScoresTable): string {
  const rows: Array<[string, CsvMetricFields]> = [];
  if (metrics.subsets) {
    for (const [name, values] of Object.entries(metrics.subsets)) rows.push([name, values]);
  }
  const header = ['set', 'n', 'AUC', 'AP', 'EER', 'ACC@0.5', 'real acc', 'fake acc'];
  const cells = (name: string, v: CsvMetricFields) => [
    name,
    String(v.n),
    ...[v.auc, v.ap, v.eer, v.acc, v.real_acc, v.fake_acc].map((x) => x.toFixed(4)),
  ];
  const body = rows.map(([name, v]) => cells(name, v));
  if (metrics.subsets && rows.length > 1) {
    const mean = (key: keyof CsvMetricFields) => rows.reduce((sum, [, v]) => sum + v[key], 0) / rows.length;
    body.push([
      `mean of ${rows.length}`,
      String(rows.reduce((sum, [, v]) => sum + v.n, 0)),
      ...(['auc', 'ap', 'eer', 'acc', 'real_acc', 'fake_acc'] as const).map((k) => mean(k).toFixed(4)),
    ]);
  }
  body.push(cells('overall', metrics.overall));
  const all = [header, ...body];
  const widths = header.map((_, c) => Math.max(...all.map((r) => r[c]!.length)));
  const format = (r: string[]) => r.map((cell, c) => (c === 0 ? cell.padEnd(widths[c]!) : cell.padStart(widths[c]!))).join('  ');
  const nFake = table.labels.reduce((a, b) => a + b, 0);
  const lines = [
    `${file}: ${table.labels.length} scores (${table.labels.length - nFake} real, ${nFake} fake)`,
    format(header),
    ...body.map(format),
  ];
  if (metrics.video) {
    lines.push(`video level: AUC ${metrics.video.auc.toFixed(4)} over ${metrics.video.n} videos (mean frame score per (subset, label, video))`);
  }
  lines.push('ACC@0.5: fake iff score > 0.5; EER as DeepfakeBench (fpr at argmin |fnr - fpr| over the ROC points)');
  return `${lines.join('\n')}\n`;
}

export const metricsCommand: CliCommand = {
  name: 'metrics',
  summary: 'AUC, AP, EER and accuracy (scikit-learn-exact) of a scores CSV from any detector',
  usage: [
    'dfd metrics FILE.csv [--json]',
    '',
    '  FILE.csv   a header naming the columns, then one row per image: label (0 = real, 1 = fake) and',
    '             score (P(fake)) are required; subset and video are optional; other columns are ignored',
    '             (a run\'s test-scores.csv works as it is)',
    '  --json     print {"overall": {auc, ap, eer, acc, real_acc, fake_acc, n}, "subsets": {<name>: {...}},',
    '             "video": {auc, n}}; subsets only with a subset column, video only with a video column',
    '',
    'Video-level scores are the mean frame score per (subset, label, video).',
  ].join('\n'),
  async run(args, io) {
    const { values, positionals } = parseArgs({ args, options: { json: { type: 'boolean', default: false } }, allowPositionals: true, strict: true });
    if (positionals.length !== 1) throw new UsageError(positionals.length === 0 ? 'give the scores CSV file' : `one CSV file at a time, got ${positionals.length}`);
    const file = positionals[0]!;
    const table = await readScoresCsv(resolve(io.cwd, file));
    const metrics = csvMetrics(table, file);
    const outside = table.scores.filter((s) => s < 0 || s > 1).length;
    if (outside > 0) {
      io.stderr.write(`dfd metrics: ${outside} of ${table.scores.length} scores lie outside [0, 1]; AUC/AP/EER are fine for any score, but acc/real_acc/fake_acc assume P(fake) with threshold 0.5\n`);
    }
    io.stdout.write(values.json ? `${JSON.stringify(metrics)}\n` : formatTable(metrics, file, table));
    return 0;
  },
};
