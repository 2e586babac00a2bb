/**
 * LaRE's two random draws per image: η, the VAE sample's noise `[4, h, w]`, and ε, the diffusion noise of
 * each ensemble copy `[E, 4, h, w]`.
 *
 * Seeded noise is keyed by (seed, image content hash) alone — not by position, batch, shard or path — so
 * an image's map is the same whichever run, shard or batch computes it, and a duplicate file gets the same
 * map. Definition (version 1, kept stable because stored maps depend on it): the xoshiro128** state is the
 * first 16 bytes of SHA-256(`dfd-lare-noise/1:<seed>:<sha256 hex of the file>`); η then ε are drawn in
 * row-major order, each value `√(−2 ln u)·cos(2πv)` with `u = (a + 0.5)/2³²`, `v = (b + 0.5)/2³²` from two
 * consecutive uint32s `a, b`, rounded to float32.
 *
 * A noise file (`--noise FILE.safetensors` with `image_noise [4, h, w]` and `eps [E', 4, h, w]`, E' ≥ E)
 * replaces both draws for every image, for exact comparisons with a reference implementation.
 */
import { createHash } from 'node:crypto';
import { Rng, SafetensorsFile, type RngState } from '@dfd/core';

export const NOISE_VERSION = 1;

export class NoiseError extends Error {
  override name = 'NoiseError';
}

export interface ImageNoise {
  /** `[4·h·w]`: the VAE sample's noise. */
  eta: Float32Array;
  /** `[E·4·h·w]`: the diffusion noise of the E copies. */
  eps: Float32Array;
}

export interface LatentShape {
  channels: number;
  height: number;
  width: number;
}

export function contentHash(bytes: Uint8Array): string {
  return createHash('sha256').update(bytes).digest('hex');
}

function stateFor(seed: number, hash: string): RngState {
  const digest = createHash('sha256').update(`dfd-lare-noise/${NOISE_VERSION}:${seed}:${hash}`).digest();
  const state: RngState = [digest.readUInt32LE(0), digest.readUInt32LE(4), digest.readUInt32LE(8), digest.readUInt32LE(12)];
  if (state.every((w) => w === 0)) state[0] = 1;
  return state;
}

function fillNormal(rng: Rng, out: Float32Array): void {
  const scale = 1 / 4294967296;
  for (let i = 0; i < out.length; i++) {
    const u = (rng.nextUint32() + 0.5) * scale;
    const v = (rng.nextUint32() + 0.5) * scale;
    out[i] = Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * v);
  }
}

/** The seeded noise of one image. */
export function seededNoise(seed: number, hash: string, ensemble: number, shape: LatentShape): ImageNoise {
  const rng = new Rng(stateFor(seed, hash));
  const per = shape.channels * shape.height * shape.width;
  const eta = new Float32Array(per);
  const eps = new Float32Array(ensemble * per);
  fillNormal(rng, eta);
  fillNormal(rng, eps);
  return { eta, eps };
}

/** A noise file's η and the first `ensemble` copies of its ε, checked against the latent shape. */
export async function readNoiseFile(path: string, ensemble: number, shape: LatentShape): Promise<ImageNoise> {
  const file = await SafetensorsFile.open(path);
  try {
    for (const name of ['image_noise', 'eps']) {
      if (!file.has(name)) throw new NoiseError(`${path} has no '${name}' tensor; a LaRE noise file holds image_noise [4, h, w] and eps [E, 4, h, w]`);
    }
    const eta = await file.readFloat32('image_noise');
    const eps = await file.readFloat32('eps');
    const want = [shape.channels, shape.height, shape.width];
    if (eta.shape.join('x') !== want.join('x')) {
      throw new NoiseError(`${path}: image_noise has shape [${eta.shape.join(', ')}], these settings need [${want.join(', ')}] (size / 8)`);
    }
    if (eps.shape.length !== 4 || eps.shape.slice(1).join('x') !== want.join('x') || eps.shape[0]! < ensemble) {
      throw new NoiseError(`${path}: eps has shape [${eps.shape.join(', ')}], these settings need [${ensemble}, ${want.join(', ')}] (at least --ensemble copies)`);
    }
    const per = want[0]! * want[1]! * want[2]!;
    return { eta: eta.data, eps: eps.data.slice(0, ensemble * per) };
  } finally {
    await file.close();
  }
}
