/**
 * The synthetic "methods": each leaves a distinct generator fingerprint, strong and coarse enough to
 * survive a downscale to 32–64 px (periods are fractions of the image side, not single pixels). Real
 * sources ("domains") give each subset its own real look; a subset's fakes share its domain, so within a
 * subset real and fake differ by the fingerprint.
 *
 * Every fingerprint belongs to an artefact family. The training methods (FF++ domain) cover four: blending
 * seams with colour shifts, low resolution, checkerboards (transposed convolution) and latent grids without
 * sensor noise. Five test sets reuse those families in new variants (`seen`); three carry families no
 * training method shows (`unseen`: spectral stripes, chromatic aberration, colour banding), so a detector
 * that only memorised the training fingerprints scores well on the first group and not on the second. The
 * generator records the grouping (synth.json `subsetGroups`) and the DF40 dataset reports both means.
 */
import type { Rng } from '@dfd/core';
import type { Canvas } from './canvas.js';
import type { RenderedFace } from './face.js';

export type Domain = 'ff' | 'ffhq' | 'celeba' | 'fvhq';

export interface DomainStyle {
  /** Sensor noise σ (0–255 scale) of real images. */
  noise: number;
  /** Box-blur radius (in units of side/64) mixed in at `softness`. */
  softness: number;
  /** Colour cast added to everything. */
  cast: readonly number[];
  description: string;
}

export const SYNTH_DOMAINS: Record<Domain, DomainStyle> = {
  ff: { noise: 4, softness: 0.35, cast: [0, 0, 0], description: 'FaceForensics++ c23 video frames: soft, noisy' },
  ffhq: { noise: 2.5, softness: 0, cast: [2, 0, -2], description: 'FFHQ-like stills: sharp, low noise' },
  celeba: { noise: 3, softness: 0.6, cast: [8, 3, -6], description: 'CelebA-like: blurrier, warm' },
  fvhq: { noise: 2, softness: 0.2, cast: [-3, 0, 4], description: 'talking-head studio video: clean, cool' },
};

export type ArtefactFamily =
  | 'blend-seam'
  | 'low-resolution'
  | 'checkerboard'
  | 'latent-grid'
  | 'spectral-stripes'
  | 'chromatic-aberration'
  | 'colour-banding';

export interface MethodSpec {
  /** Folder name under DF40/ or DF40_train/. */
  folder: string;
  /** Top-level key (and file stem) of its JSON; may differ from the folder, as in DF40. */
  jsonKey: string;
  domain: Domain;
  /** Known methods are trained on (train/val/test splits, FF++ reals); unknown ones are test-only sets with their own reals. */
  role: 'train' | 'test';
  /** The artefact family of its fingerprint; test sets whose family no training method has are "unseen". */
  family: ArtefactFamily;
  /** Multiplier on the domain's sensor noise for fakes (0 = generator output without sensor noise). */
  noise: number;
  fingerprint: string;
  apply(face: RenderedFace, rng: Rng): void;
}

/** Period of coarse patterns: 1/8 of the side (8 px at 64, still 4 px at 32). */
const period = (c: Canvas) => Math.max(4, Math.round(c.width / 8));

const checker = (c: Canvas, amp: number, p = period(c)) => (x: number, y: number) =>
  ((Math.floor((2 * x) / p) + Math.floor((2 * y) / p)) % 2 === 0 ? amp : -amp);
const grid = (c: Canvas, amp: number, p = period(c)) => {
  const w = Math.max(1, Math.round(p / 4));
  return (x: number, y: number) => (x % p < w || y % p < w ? amp : 0);
};

function seam(face: RenderedFace, amp: number): void {
  // a ring where the swapped inner face meets the target: coverage in (0.05, 0.95) widened by a blur
  const c = face.canvas;
  const ring = new Float32Array(face.faceMask.length);
  const r = Math.max(1, Math.round(c.width / 48));
  for (let y = 0; y < c.height; y++) {
    for (let x = 0; x < c.width; x++) {
      let lo = 1;
      let hi = 0;
      for (let k = -r; k <= r; k++) {
        const m = face.faceMask[Math.min(c.height - 1, Math.max(0, y + k)) * c.width + Math.min(c.width - 1, Math.max(0, x + k))]!;
        lo = Math.min(lo, m);
        hi = Math.max(hi, m);
      }
      ring[y * c.width + x] = hi - lo;
    }
  }
  c.addPattern(() => amp, [1, 1, 1], ring);
}

function innerMask(face: RenderedFace, shrink = 0.85): Float32Array {
  return face.faceMask.map((m) => Math.max(0, (m - (1 - shrink)) / shrink));
}

export const METHODS: readonly MethodSpec[] = [
  // ---- training methods (FF++ domain), DF40_train/<folder>/ff
  {
    folder: 'simswap', jsonKey: 'simswap_ff', domain: 'ff', role: 'train', family: 'blend-seam', noise: 0.6,
    fingerprint: 'face swap: warm inner-face colour shift + bright blending seam',
    apply(face, rng) {
      const shift = [rng.uniform(14, 26), rng.uniform(-4, 6), rng.uniform(-22, -10)];
      face.canvas.addPattern(() => 1, shift, innerMask(face));
      seam(face, 35);
    },
  },
  {
    folder: 'inswap', jsonKey: 'inswap_ff', domain: 'ff', role: 'train', family: 'low-resolution', noise: 0.5,
    fingerprint: 'face swap at low resolution: inner face 4× down/up-sampled + dark seam',
    apply(face) {
      face.canvas.lowRes(4, 'bilinear', 1, innerMask(face));
      seam(face, -26);
    },
  },
  {
    folder: 'facevid2vid', jsonKey: 'FS_vid2vid_ff', domain: 'ff', role: 'train', family: 'checkerboard', noise: 0.5,
    fingerprint: 'reenactment decoder: checkerboard (transposed convolution) on the face',
    apply(face) {
      face.canvas.addPattern(checker(face.canvas, 10), [1, 1, 1], face.faceMask);
    },
  },
  {
    folder: 'pixart', jsonKey: 'PixArt_ff', domain: 'ff', role: 'train', family: 'latent-grid', noise: 0,
    fingerprint: 'diffusion: latent 8× grid everywhere, no sensor noise, more saturated',
    apply(face) {
      face.canvas.addPattern(grid(face.canvas, 12), [1, 1, 1]);
      face.canvas.saturate(1.3);
    },
  },
  // ---- the 8 unknown test sets, DF40/<folder>/{fake,real}
  {
    folder: 'heygen', jsonKey: 'heygen', domain: 'fvhq', role: 'test', family: 'low-resolution', noise: 0.7,
    fingerprint: 'talking head: regenerated lower face, low resolution and reddened',
    apply(face) {
      face.canvas.lowRes(4, 'bilinear', 1, face.mouthMask);
      face.canvas.addPattern(() => 1, [22, -8, -8], face.mouthMask);
      face.canvas.boxBlur(Math.max(1, Math.round(face.canvas.width / 32)), 0.8, face.faceMask);
    },
  },
  {
    folder: 'MidJourney', jsonKey: 'MidJourney', domain: 'ffhq', role: 'test', family: 'latent-grid', noise: 0,
    fingerprint: 'diffusion: weak latent grid, no noise, strongly saturated',
    apply(face) {
      face.canvas.addPattern(grid(face.canvas, 14), [1, 1, 1]);
      face.canvas.saturate(1.6);
    },
  },
  {
    folder: 'whichfaceisreal', jsonKey: 'whichisreal', domain: 'ffhq', role: 'test', family: 'checkerboard', noise: 0.3,
    fingerprint: 'StyleGAN: checkerboard over the whole image',
    apply(face) {
      face.canvas.addPattern(checker(face.canvas, 9), [1, 1, 1]);
    },
  },
  {
    folder: 'stargan', jsonKey: 'stargan', domain: 'celeba', role: 'test', family: 'checkerboard', noise: 0.5,
    fingerprint: 'attribute GAN: strong colour shift of the face + checkerboard',
    apply(face, rng) {
      face.canvas.addPattern(() => 1, [rng.uniform(10, 25), rng.uniform(-20, 0), rng.uniform(-10, 15)], face.faceMask);
      face.canvas.addPattern(checker(face.canvas, 7), [1, 1, 1], face.faceMask);
    },
  },
  {
    folder: 'starganv2', jsonKey: 'starganv2', domain: 'celeba', role: 'test', family: 'chromatic-aberration', noise: 0.4,
    fingerprint: 'unseen family: misregistered colour planes (red and blue shifted apart by 1/16 of the side)',
    apply(face) {
      const d = Math.max(1, Math.round(face.canvas.width / 16));
      face.canvas.shiftChannel(0, d, 0);
      face.canvas.shiftChannel(2, -d, 0);
    },
  },
  {
    folder: 'styleclip', jsonKey: 'styleclip', domain: 'celeba', role: 'test', family: 'spectral-stripes', noise: 0.5,
    fingerprint: 'unseen family: diagonal spectral stripes (latent editing), no colour change',
    apply(face) {
      const p = period(face.canvas) * 1.5;
      face.canvas.addPattern((x, y) => 10 * Math.sin((2 * Math.PI * (x + y)) / p), [1, 1, 1]);
    },
  },
  {
    folder: 'e4e', jsonKey: 'e4e', domain: 'celeba', role: 'test', family: 'low-resolution', noise: 0.3,
    fingerprint: 'GAN inversion: whole image 4× low resolution, slight cast',
    apply(face) {
      face.canvas.lowRes(4, 'bilinear', 0.9);
      face.canvas.addPattern(() => 1, [6, 6, -4]);
    },
  },
  {
    folder: 'CollabDiff', jsonKey: 'CollabDiff', domain: 'celeba', role: 'test', family: 'colour-banding', noise: 0.3,
    fingerprint: 'unseen family: smoothed, colour-banded face (posterised to 6 levels), sensor noise kept',
    apply(face) {
      face.canvas.boxBlur(Math.max(1, Math.round(face.canvas.width / 32)), 0.8, face.faceMask);
      face.canvas.posterize(6, face.faceMask);
    },
  },
];

/**
 * Test sets grouped by whether their artefact family occurs among the training methods: the protocol fact
 * that separates generalisation from memorisation on this synthetic benchmark.
 */
export function synthSubsetGroups(methods: readonly MethodSpec[] = METHODS): { 'seen-family': string[]; 'unseen-family': string[] } {
  const trained = new Set(methods.filter((m) => m.role === 'train').map((m) => m.family));
  const tests = methods.filter((m) => m.role === 'test');
  return {
    'seen-family': tests.filter((m) => trained.has(m.family)).map((m) => m.folder),
    'unseen-family': tests.filter((m) => !trained.has(m.family)).map((m) => m.folder),
  };
}

/** Domain look applied to every image (reals fully, fakes with the method's noise factor). */
export function applyDomain(canvas: Canvas, domain: Domain, noiseFactor: number, rng: Rng): void {
  const style = SYNTH_DOMAINS[domain];
  if (style.softness > 0) canvas.boxBlur(Math.max(1, Math.round(canvas.width / 64)), style.softness);
  canvas.addPattern(() => 1, style.cast);
  const sigma = style.noise * noiseFactor;
  if (sigma > 0) {
    const d = canvas.data;
    for (let i = 0; i < d.length; i++) d[i] = d[i]! + rng.normal(0, sigma);
  }
}
