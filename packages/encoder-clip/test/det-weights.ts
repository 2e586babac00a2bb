/**
 * The deterministic weight rule of tools/fixtures/clip/make_fixtures.py (`det_uniform`, `det_tensor`),
 * bit for bit: the ViT-B/16-width fixture's weights are a function of the tensor name, so they are
 * regenerated here instead of being committed (tens of MB).
 */
export function fnv1a(text: string): number {
  let h = 0x811c9dc5;
  for (const byte of new TextEncoder().encode(text)) {
    h ^= byte;
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return h >>> 0;
}

/** Uniform [-1, 1) as float64, from a hash of (name, index). */
export function detUniform(name: string, n: number): Float64Array {
  const seed = fnv1a(name);
  const out = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    let h = (Math.imul(i, 0x9e3779b1) + seed) >>> 0;
    h = (h ^ (h >>> 16)) >>> 0;
    h = Math.imul(h, 0x85ebca6b) >>> 0;
    h = (h ^ (h >>> 13)) >>> 0;
    h = Math.imul(h, 0xc2b2ae35) >>> 0;
    h = (h ^ (h >>> 16)) >>> 0;
    out[i] = ((h >>> 8) / 16777216) * 2 - 1;
  }
  return out;
}

export function detTensor(name: string, shape: number[]): Float32Array {
  const n = shape.reduce((a, b) => a * b, 1);
  const u = detUniform(name, n);
  const out = new Float32Array(n);
  if (name === 'logit_scale') {
    out.fill(Math.log(100));
    return out;
  }
  let offset = 0;
  let scale: number;
  if (name.includes('norm') && name.endsWith('.weight')) {
    offset = 1;
    scale = 0.2;
  } else if (name.endsWith('.bias')) scale = 0.05;
  else if (name.includes('embedding')) scale = 0.5;
  else scale = Math.sqrt(3 / shape.slice(1).reduce((a, b) => a * b, 1));
  for (let i = 0; i < n; i++) out[i] = offset + u[i]! * scale;
  return out;
}

/** `values.astype(float32)` of `det_uniform(name, n) * factor`. */
export function detScaled(name: string, n: number, factor: number): Float32Array {
  return Float32Array.from(detUniform(name, n), (u) => u * factor);
}
