/**
 * Shrinking a ROC polyline for display and storage without changing its drawn shape: coordinates are
 * rounded to a grid, repeated points are dropped, and the interior points of straight horizontal or
 * vertical runs (most of a staircase ROC once rounded) are removed.
 */
export function simplifyPolyline(xs: ArrayLike<number>, ys: ArrayLike<number>, round: (v: number) => number): { x: number[]; y: number[] } {
  const x: number[] = [];
  const y: number[] = [];
  for (let i = 0; i < xs.length; i++) {
    const px = round(xs[i]!);
    const py = round(ys[i]!);
    const n = x.length;
    if (n > 0 && x[n - 1] === px && y[n - 1] === py) continue;
    // The last point is interior to an axis-aligned run when it lines up with both neighbours.
    if (n >= 2 && ((x[n - 2] === x[n - 1] && x[n - 1] === px) || (y[n - 2] === y[n - 1] && y[n - 1] === py))) {
      x[n - 1] = px;
      y[n - 1] = py;
      continue;
    }
    x.push(px);
    y.push(py);
  }
  return { x, y };
}
