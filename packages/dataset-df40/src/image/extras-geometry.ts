/**
 * Per-image maps (LaRE error maps ...) follow the image's geometry. A map `[C, h, w]` covers the whole
 * source image (LaRE computes it on the image squashed to 256×256, so its cells scale with the source in x
 * and y independently). For one transform plan, the output image shows a rectangle of the source (the
 * random-resized-crop region, or the part the resize + center/random crop keeps); the map is cut to that
 * rectangle in map coordinates, resampled back to its native `h × w`, and mirrored when the image is.
 *
 * Resampling is bilinear with half-pixel centres (PyTorch `align_corners=False`, the convention of the image
 * resize here, of torchvision and of `roi_align(aligned=True)`): output cell j samples the map at
 * u = L + (j + ½)·W/w − ½ (index space), clamped to the map's edge (replicate). The window is never larger
 * than the map (it lies inside the source), so this only ever enlarges or keeps the scale and needs no
 * antialiasing. An identity plan returns the map unchanged, value for value.
 */
import type { TransformPlan } from './transform.js';

export interface MapArray {
  shape: number[];
  data: Float32Array;
}

/** The source-pixel rectangle (continuous coordinates) the plan's output shows, before any flip. */
export function sourceWindow(plan: TransformPlan): { left: number; top: number; width: number; height: number } {
  const pre = plan.pre ?? { left: 0, top: 0, width: plan.source.width, height: plan.source.height };
  const sx = plan.resize.width / pre.width;
  const sy = plan.resize.height / pre.height;
  const post = plan.post ?? { left: 0, top: 0 };
  return { left: pre.left + post.left / sx, top: pre.top + post.top / sy, width: plan.output.width / sx, height: plan.output.height / sy };
}

/** For each output index along one axis: the two source indices and the weight of the second. */
function axisTaps(size: number, start: number, extent: number): { i0: Int32Array; i1: Int32Array; f: Float32Array } {
  const i0 = new Int32Array(size);
  const i1 = new Int32Array(size);
  const f = new Float32Array(size);
  const step = extent / size;
  for (let j = 0; j < size; j++) {
    const u = Math.min(Math.max(start + (j + 0.5) * step - 0.5, 0), size - 1);
    const lo = Math.floor(u);
    i0[j] = lo;
    i1[j] = Math.min(lo + 1, size - 1);
    f[j] = u - lo;
  }
  return { i0, i1, f };
}

/**
 * The map as the plan's output image sees it. Accepts `[C, h, w]` or `[h, w]`; the shape is kept.
 */
export function transformMap(map: MapArray, plan: TransformPlan): MapArray {
  if (map.shape.length !== 2 && map.shape.length !== 3) {
    throw new Error(`a spatial extra must be [C, h, w] or [h, w]; got [${map.shape.join(', ')}] (mark it geometry 'none' if it is not a map)`);
  }
  const [channels, h, w] = map.shape.length === 3 ? (map.shape as [number, number, number]) : [1, map.shape[0]!, map.shape[1]!];
  const window = sourceWindow(plan);
  const mx = w / plan.source.width;
  const my = h / plan.source.height;
  const xs = axisTaps(w, window.left * mx, window.width * mx);
  const ys = axisTaps(h, window.top * my, window.height * my);
  const out = new Float32Array(map.data.length);
  const plane = h * w;
  for (let c = 0; c < channels; c++) {
    const base = c * plane;
    for (let y = 0; y < h; y++) {
      const r0 = base + ys.i0[y]! * w;
      const r1 = base + ys.i1[y]! * w;
      const fy = ys.f[y]!;
      for (let x = 0; x < w; x++) {
        const x0 = xs.i0[x]!;
        const x1 = xs.i1[x]!;
        const fx = xs.f[x]!;
        const top = map.data[r0 + x0]! * (1 - fx) + map.data[r0 + x1]! * fx;
        const bottom = map.data[r1 + x0]! * (1 - fx) + map.data[r1 + x1]! * fx;
        // The image is mirrored after the geometry: output column x shows pre-flip column w − 1 − x.
        out[base + y * w + (plan.flip ? w - 1 - x : x)] = top * (1 - fy) + bottom * fy;
      }
    }
  }
  return { shape: [...map.shape], data: out };
}
