/**
 * ROC curves as standalone SVG: inlined in report.html and rasterised to PNG by sharp (librsvg), so it
 * uses only plain SVG 1.1 (no CSS classes for styling, no external fonts or references).
 */
import { simplifyPolyline } from './polyline.js';

export interface CurveSeries {
  label: string;
  fpr: ArrayLike<number>;
  tpr: ArrayLike<number>;
  /** `frame` is drawn solid, `video` dashed. */
  kind: 'frame' | 'video';
}

export const CURVE_COLORS = { frame: '#1f5fbf', video: '#e0701a' } as const;

const PAD = { left: 52, right: 20, top: 34, bottom: 52 };
const PLOT = 290; // square plot area
/** Size of the SVG in CSS pixels (the PNG is this times the render scale). */
export const ROC_SVG_SIZE = { width: PAD.left + PLOT + PAD.right, height: PAD.top + PLOT + PAD.bottom } as const;
const { width: WIDTH, height: HEIGHT } = ROC_SVG_SIZE;

export function escapeXml(text: string): string {
  return text.replace(/[<>&"']/g, (c) => ({ '<': '&lt;', '>': '&gt;', '&': '&amp;', '"': '&quot;', "'": '&#39;' })[c]!);
}

/**
 * Plot coordinates on a 0.25 px grid, simplified (see polyline.ts): a ROC of 10^5 distinct scores becomes
 * a path of a few hundred to a few thousand points with no visible difference, even in the 2× PNG.
 */
export function curvePath(fpr: ArrayLike<number>, tpr: ArrayLike<number>): string {
  const px = Array.from(fpr, (v) => PAD.left + v * PLOT);
  const py = Array.from(tpr, (v) => PAD.top + (1 - v) * PLOT);
  const { x, y } = simplifyPolyline(px, py, (v) => Math.round(v * 4) / 4);
  return x.map((xi, i) => `${i === 0 ? 'M' : 'L'}${xi},${y[i]}`).join(' ');
}

export function rocSvg(title: string, series: CurveSeries[]): string {
  const x0 = PAD.left;
  const y0 = PAD.top;
  const x1 = PAD.left + PLOT;
  const y1 = PAD.top + PLOT;
  const grid: string[] = [];
  for (let k = 0; k <= 5; k++) {
    const t = k / 5;
    const gx = (x0 + t * PLOT).toFixed(1);
    const gy = (y1 - t * PLOT).toFixed(1);
    grid.push(`<line x1="${gx}" y1="${y0}" x2="${gx}" y2="${y1}" stroke="#e3e3e3" stroke-width="1"/>`);
    grid.push(`<line x1="${x0}" y1="${gy}" x2="${x1}" y2="${gy}" stroke="#e3e3e3" stroke-width="1"/>`);
    grid.push(`<text x="${gx}" y="${y1 + 16}" font-size="11" text-anchor="middle" fill="#444" font-family="DejaVu Sans, Arial, sans-serif">${t.toFixed(1)}</text>`);
    grid.push(`<text x="${x0 - 6}" y="${(Number(gy) + 4).toFixed(1)}" font-size="11" text-anchor="end" fill="#444" font-family="DejaVu Sans, Arial, sans-serif">${t.toFixed(1)}</text>`);
  }
  const curves = series.map((s) => {
    const dash = s.kind === 'video' ? ' stroke-dasharray="6 4"' : '';
    return `<path d="${curvePath(s.fpr, s.tpr)}" fill="none" stroke="${CURVE_COLORS[s.kind]}" stroke-width="2.5"${dash} data-kind="${s.kind}"/>`;
  });
  const legend = series.map((s, i) => {
    const ly = y1 - 14 - (series.length - 1 - i) * 16;
    const dash = s.kind === 'video' ? ' stroke-dasharray="6 4"' : '';
    return (
      `<line x1="${x1 - 150}" y1="${ly - 4}" x2="${x1 - 130}" y2="${ly - 4}" stroke="${CURVE_COLORS[s.kind]}" stroke-width="2.5"${dash}/>` +
      `<text x="${x1 - 125}" y="${ly}" font-size="11" fill="#222" font-family="DejaVu Sans, Arial, sans-serif">${escapeXml(s.label)}</text>`
    );
  });
  return [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${WIDTH}" height="${HEIGHT}" viewBox="0 0 ${WIDTH} ${HEIGHT}" role="img" aria-label="ROC curve: ${escapeXml(title)}">`,
    `<rect x="0" y="0" width="${WIDTH}" height="${HEIGHT}" fill="#ffffff"/>`,
    `<text x="${WIDTH / 2}" y="20" font-size="14" font-weight="bold" text-anchor="middle" fill="#111" font-family="DejaVu Sans, Arial, sans-serif">${escapeXml(title)}</text>`,
    ...grid,
    `<line x1="${x0}" y1="${y1}" x2="${x1}" y2="${y0}" stroke="#9a9a9a" stroke-width="1" stroke-dasharray="3 3"/>`,
    `<rect x="${x0}" y="${y0}" width="${PLOT}" height="${PLOT}" fill="none" stroke="#555" stroke-width="1"/>`,
    ...curves,
    ...legend,
    `<text x="${(x0 + x1) / 2}" y="${HEIGHT - 10}" font-size="12" text-anchor="middle" fill="#222" font-family="DejaVu Sans, Arial, sans-serif">false positive rate (real called fake)</text>`,
    `<text x="14" y="${(y0 + y1) / 2}" font-size="12" text-anchor="middle" fill="#222" font-family="DejaVu Sans, Arial, sans-serif" transform="rotate(-90 14 ${(y0 + y1) / 2})">true positive rate (fake caught)</text>`,
    '</svg>',
  ].join('\n');
}
