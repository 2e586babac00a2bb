/**
 * Face regions as boxes. DF40's faces are aligned 256×256 crops (DeepfakeBench's `img_align_crop`: the
 * ArcFace 5-point template, +8 px x-shift, scaled to 256 with a 1.3 margin), so when no landmark file
 * exists the regions sit at known template places. With DF40's 81-point dlib landmarks (`.npy`) the boxes
 * come from the points themselves. Regions use image orientation: `left_eye` is the eye on the image's
 * left (dlib points 36–41, DeepfakeBench's `leye`).
 */
import type { FaceBox } from '@dfd/core';

export const FACE_REGIONS = ['left_eye', 'right_eye', 'nose', 'mouth', 'jaw'] as const;
export type FaceRegion = (typeof FACE_REGIONS)[number];

/** The size of the aligned crops DF40 ships. */
export const DF40_FACE_SIZE = 256;

/**
 * DeepfakeBench's alignment destination points (left eye, right eye, nose tip, left and right mouth
 * corner) for a `size`×`size` crop with margin scale 1.3, computed exactly as `img_align_crop` does.
 */
export function alignmentTemplate(size = DF40_FACE_SIZE, scale = 1.3): Array<[number, number]> {
  const base: Array<[number, number]> = [
    [30.2946, 51.6963],
    [65.5318, 51.5014],
    [48.0252, 71.7366],
    [33.5493, 92.3655],
    [62.7299, 92.2041],
  ];
  const margin = (size * (scale - 1)) / 2;
  return base.map(([x, y]) => {
    const sx = ((x + 8) * size) / 112;
    const sy = (y * size) / 112;
    return [((sx + margin) * size) / (size + 2 * margin), ((sy + margin) * size) / (size + 2 * margin)];
  });
}

/** Template region boxes for an aligned face crop of `width`×`height` (any size: scaled from 256). */
export function templateBoxes(width = DF40_FACE_SIZE, height = width): FaceBox[] {
  const [le, re, nose, ml, mr] = alignmentTemplate(DF40_FACE_SIZE);
  const d = re![0] - le![0];
  const eyeW = 0.3 * d;
  const eyeH = 0.18 * d;
  const mouthY = (ml![1] + mr![1]) / 2;
  const raw: FaceBox[] = [
    { region: 'left_eye', x1: le![0] - eyeW, y1: le![1] - eyeH, x2: le![0] + eyeW, y2: le![1] + eyeH },
    { region: 'right_eye', x1: re![0] - eyeW, y1: re![1] - eyeH, x2: re![0] + eyeW, y2: re![1] + eyeH },
    { region: 'nose', x1: nose![0] - 0.3 * d, y1: le![1] + 0.05 * d, x2: nose![0] + 0.3 * d, y2: nose![1] + 0.2 * d },
    { region: 'mouth', x1: ml![0] - 0.2 * d, y1: mouthY - 0.28 * d, x2: mr![0] + 0.2 * d, y2: mouthY + 0.28 * d },
    { region: 'jaw', x1: le![0] - 0.75 * d, y1: nose![1], x2: re![0] + 0.75 * d, y2: mouthY + 0.85 * d },
  ];
  return clipBoxes(scaleBoxes(raw, width / DF40_FACE_SIZE, height / DF40_FACE_SIZE), width, height);
}

/** dlib 68-point index ranges (inclusive) of each region; the 81-point model adds 13 forehead points. */
const LANDMARK_RANGES: Record<FaceRegion, [number, number]> = {
  left_eye: [36, 41],
  right_eye: [42, 47],
  nose: [27, 35],
  mouth: [48, 67],
  jaw: [0, 16],
};

/**
 * Region boxes from dlib landmarks (`[n, 2]` x,y pixels, n ≥ 68), padded by `pad` pixels as CLaRE does
 * (±5 px). Returns undefined when the array has too few points.
 */
export function boxesFromLandmarks(points: Float32Array, count: number, pad = 5): FaceBox[] | undefined {
  if (count < 68 || points.length < count * 2) return undefined;
  return FACE_REGIONS.map((region) => {
    const [from, to] = LANDMARK_RANGES[region];
    let x1 = Infinity;
    let y1 = Infinity;
    let x2 = -Infinity;
    let y2 = -Infinity;
    for (let i = from; i <= to; i++) {
      const x = points[2 * i]!;
      const y = points[2 * i + 1]!;
      x1 = Math.min(x1, x);
      y1 = Math.min(y1, y);
      x2 = Math.max(x2, x);
      y2 = Math.max(y2, y);
    }
    return { region, x1: x1 - pad, y1: y1 - pad, x2: x2 + pad, y2: y2 + pad };
  });
}

export function scaleBoxes(boxes: readonly FaceBox[], sx: number, sy: number): FaceBox[] {
  return boxes.map((b) => ({ region: b.region, x1: b.x1 * sx, y1: b.y1 * sy, x2: b.x2 * sx, y2: b.y2 * sy }));
}

export function clipBoxes(boxes: readonly FaceBox[], width: number, height: number): FaceBox[] {
  const cx = (v: number) => Math.min(Math.max(v, 0), width);
  const cy = (v: number) => Math.min(Math.max(v, 0), height);
  return boxes.map((b) => ({ region: b.region, x1: cx(b.x1), y1: cy(b.y1), x2: cx(b.x2), y2: cy(b.y2) }));
}

/**
 * Boxes in a fixed region order as a flat `[R*4]` array (x1, y1, x2, y2). A region the sample lacks is
 * `fallback`'s box, or a zero box when there is none.
 */
export function boxesToArray(boxes: readonly FaceBox[], regions: readonly string[], fallback?: readonly FaceBox[]): Float32Array {
  const out = new Float32Array(regions.length * 4);
  regions.forEach((region, r) => {
    const box = boxes.find((b) => b.region === region) ?? fallback?.find((b) => b.region === region);
    if (!box) return;
    out[r * 4] = box.x1;
    out[r * 4 + 1] = box.y1;
    out[r * 4 + 2] = box.x2;
    out[r * 4 + 3] = box.y2;
  });
  return out;
}
