/**
 * report.html: one self-contained page (no scripts, no external resources; a CSP forbids fetching any), so
 * it opens from a run directory, an artifact store or an e-mail attachment alike.
 */
import type { Coverage, CoverageCounts, EvaluationReport, MetricValues } from '../contracts.js';
import { dropSummary, incompleteSubsets, isSubsetComplete } from './coverage.js';
import { MEAN_KEY } from './evaluate.js';
import { escapeXml } from './svg.js';

export interface HtmlPlot {
  /** Row name: a subset, `overall`. */
  name: string;
  /** The SVG markup, or undefined when the set has one class and no curve exists. */
  svg?: string;
  /** Relative path of the PNG copy, when written. */
  png?: string;
}

interface Column {
  header: string;
  title: string;
  cell(values: MetricValues): string;
}

function num(value: number | undefined, digits = 4): string {
  return value === undefined || !Number.isFinite(value) ? '—' : value.toFixed(digits);
}

const COLUMNS: Column[] = [
  { header: 'n (real / fake)', title: 'frames evaluated', cell: (v) => `${v.n ?? '—'} (${v.n_real ?? '—'} / ${v.n_fake ?? '—'})` },
  { header: 'AUC', title: 'frame-level ROC AUC (scikit-learn roc_auc_score)', cell: (v) => num(v.auc) },
  {
    header: 'AUC 95% CI',
    title: 'seeded percentile bootstrap interval',
    cell: (v) => (v.auc_ci_low === undefined ? '—' : `${num(v.auc_ci_low)}–${num(v.auc_ci_high)}`),
  },
  { header: 'AP', title: 'average precision (scikit-learn, step definition)', cell: (v) => num(v.ap) },
  { header: 'EER', title: 'equal error rate as DeepfakeBench computes it', cell: (v) => num(v.eer) },
  { header: 'ACC@0.5', title: 'accuracy, fake iff p > 0.5', cell: (v) => num(v.acc) },
  { header: 'real acc', title: 'accuracy on real samples at p > 0.5', cell: (v) => num(v.real_acc) },
  { header: 'fake acc', title: 'accuracy on fake samples at p > 0.5', cell: (v) => num(v.fake_acc) },
  { header: 'macro-F1', title: 'macro-F1 of argmax predictions', cell: (v) => num(v.macro_f1) },
  {
    header: 'video AUC (videos)',
    title: 'ROC AUC of mean frame scores per video',
    cell: (v) => (v.video_auc === undefined ? '—' : `${num(v.video_auc)} (${v.video_n})`),
  },
  {
    header: 'best-thr acc (oracle)',
    title: 'accuracy at the best threshold chosen on this very data: an oracle, not comparable to ACC@0.5',
    cell: (v) => (v.oracle_acc === undefined ? '—' : `${num(v.oracle_acc)} @ ${num(v.oracle_threshold, 3)}`),
  },
];

/** The coverage cell beside `n`: frames and videos scored of those listed, and why the rest were dropped. */
function coverageCell(counts: CoverageCounts | undefined): string {
  if (!counts) return '<td class="coverage">—</td>';
  const reasons = dropSummary(counts);
  const complete = isSubsetComplete(counts);
  const text = `${counts.frames.scored} / ${counts.frames.listed} frames · ${counts.videos.scored} / ${counts.videos.listed} videos`;
  return `<td class="coverage${complete ? '' : ' incomplete'}">${escapeXml(text)}${reasons ? `<br><span class="dropped">dropped: ${escapeXml(reasons)}</span>` : ''}</td>`;
}

function row(name: string, values: MetricValues, cls: string, coverage?: Coverage, key?: string): string {
  const [first, ...rest] = COLUMNS.map((c) => `<td>${escapeXml(c.cell(values))}</td>`);
  const counts = key === undefined ? undefined : key === 'overall' ? coverage?.overall : coverage?.subsets[key];
  const cells = coverage ? [first, coverageCell(counts), ...rest].join('') : [first, ...rest].join('');
  return `<tr class="${cls}"><th scope="row">${escapeXml(name)}</th>${cells}</tr>`;
}

/** A notice above the table when the numbers do not cover every listed frame. */
function coverageNotice(coverage: Coverage | undefined): string {
  if (!coverage || coverage.complete) return '';
  const lines = incompleteSubsets(coverage).map((l) => `<li>${escapeXml(l)}</li>`).join('');
  return `<div class="coverage-notice"><b>Coverage below 100%:</b> these numbers leave out listed frames. Runs on different copies of the data are not comparable unless their coverage matches. The dropped files are listed in test-dropped.csv.<ul>${lines}</ul></div>`;
}

export function reportHtml(report: EvaluationReport, plots: HtmlPlot[], meta: { evaluator: string; created: string }): string {
  const subsetNames = Object.keys(report.subsets).filter((s) => s !== MEAN_KEY);
  const coverage = report.coverage;
  const rows = [
    ...subsetNames.map((s) => row(s, report.subsets[s]!, 'subset', coverage, s)),
    ...(report.subsets[MEAN_KEY] ? [row(`mean of ${subsetNames.length} subsets`, report.subsets[MEAN_KEY], 'mean', coverage)] : []),
    // Declared groups (e.g. test sets whose artefact family training saw / did not see), each its own mean.
    ...Object.entries(report.groups ?? {}).map(([group, values]) => row(`mean of ${group}`, values, 'mean group', coverage)),
    row('overall (all frames pooled)', report.overall, 'overall', coverage, 'overall'),
  ];
  const headers = COLUMNS.map((c) => `<th scope="col" title="${escapeXml(c.title)}">${escapeXml(c.header)}</th>`);
  const coverageHeader = `<th scope="col" title="frames and videos scored of those the dataset listed; dropped ones by reason (missing, empty, corrupt, no-extras)">coverage</th>`;
  const header = (coverage ? [headers[0], coverageHeader, ...headers.slice(1)] : headers).join('');
  const figures = plots.map((p) => {
    const body = p.svg ?? `<p class="no-curve">no ROC curve: this set has a single class</p>`;
    const link = p.png ? ` · <a href="${escapeXml(p.png)}">PNG</a>` : '';
    return `<figure class="roc-figure" data-name="${escapeXml(p.name)}">${body}<figcaption>${escapeXml(p.name)}${link}</figcaption></figure>`;
  });
  const protocol = Object.entries(report.protocol)
    .map(([k, v]) => `<tr><th scope="row">${escapeXml(k)}</th><td>${escapeXml(String(v))}</td></tr>`)
    .join('\n');
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'; img-src data:">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Evaluation report (${escapeXml(meta.evaluator)})</title>
<style>
body { font-family: "DejaVu Sans", Arial, sans-serif; margin: 24px; color: #1a1a1a; background: #fff; }
h1 { font-size: 22px; margin: 0 0 4px; } h2 { font-size: 17px; margin: 28px 0 10px; }
.meta { color: #555; font-size: 13px; margin: 0 0 16px; }
table { border-collapse: collapse; font-size: 13px; }
th, td { border: 1px solid #d5d5d5; padding: 4px 8px; text-align: right; white-space: nowrap; }
th[scope=row], thead th:first-child { text-align: left; } thead th { background: #f1f4f8; }
tr.mean { font-weight: bold; background: #f6f8fb; } tr.overall { background: #fbfbf3; }
table.protocol td { text-align: left; white-space: normal; }
/* The metrics table has a dozen columns: it scrolls inside its box on narrow windows, the page does not. */
.wide { overflow-x: auto; max-width: 100%; }
td.coverage.incomplete { background: #fdecea; color: #8a1c12; } .dropped { font-size: 11px; }
.coverage-notice { border: 1px solid #e0a39b; background: #fdf3f1; padding: 8px 12px; margin: 0 0 12px; font-size: 13px; max-width: 900px; }
.note { font-size: 12px; color: #555; max-width: 900px; }
.plots { display: flex; flex-wrap: wrap; gap: 12px; }
figure { margin: 0; border: 1px solid #e2e2e2; padding: 6px; }
figcaption { font-size: 12px; text-align: center; color: #333; }
.no-curve { width: 362px; height: 376px; display: flex; align-items: center; justify-content: center; color: #888; margin: 0; }
</style>
</head>
<body>
<h1>Evaluation report</h1>
<p class="meta">evaluator <b>${escapeXml(meta.evaluator)}</b> · written ${escapeXml(meta.created)} · labels 0 = real, 1 = fake; scores are P(fake)</p>
${coverageNotice(coverage)}
<div class="wide">
<table class="metrics">
<thead><tr><th scope="col">set</th>${header}</tr></thead>
<tbody>
${rows.join('\n')}
</tbody>
</table>
</div>
<p class="note">AUC, AP and EER are threshold-free; ACC@0.5 uses the fixed threshold p &gt; 0.5. The best-threshold accuracy picks its threshold on the evaluated data itself, so it is an oracle and is not comparable to fixed-threshold accuracies. The mean row averages subsets with equal weight.</p>
<h2>ROC curves</h2>
<div class="plots">
${figures.join('\n')}
</div>
<h2>Protocol</h2>
<table class="protocol">
${protocol}
</table>
</body>
</html>
`;
}
