/**
 * A minimal float RGB raster for the synthetic faces: anti-aliased ellipses and a few filters. Values are
 * 0–255 floats until `toBytes` rounds and clamps them, so effects compose without 8-bit banding.
 */
export class Canvas {
  readonly data: Float32Array;

  constructor(readonly width: number, readonly height: number) {
    this.data = new Float32Array(width * height * 3);
  }

  clone(): Canvas {
    const copy = new Canvas(this.width, this.height);
    copy.data.set(this.data);
    return copy;
  }

  /** Vertical-ish linear gradient between two colours along direction `angle` (radians). */
  gradient(a: readonly number[], b: readonly number[], angle: number): void {
    const { width: W, height: H } = this;
    const dx = Math.cos(angle);
    const dy = Math.sin(angle);
    for (let y = 0; y < H; y++) {
      for (let x = 0; x < W; x++) {
        const t = Math.min(1, Math.max(0, 0.5 + ((x / W - 0.5) * dx + (y / H - 0.5) * dy)));
        const i = (y * W + x) * 3;
        for (let c = 0; c < 3; c++) this.data[i + c] = a[c]! * (1 - t) + b[c]! * t;
      }
    }
  }

  /**
   * Blends `color` into an ellipse (centre, radii in pixels, rotation) with a soft 1-px edge and opacity
   * `alpha`. `mask`, when given, receives the coverage (max-combined) for later region effects.
   */
  ellipse(cx: number, cy: number, rx: number, ry: number, color: readonly number[], alpha = 1, rotation = 0, mask?: Float32Array): void {
    const { width: W, height: H } = this;
    const reach = Math.max(rx, ry) + 2;
    const cos = Math.cos(rotation);
    const sin = Math.sin(rotation);
    const x0 = Math.max(0, Math.floor(cx - reach));
    const x1 = Math.min(W - 1, Math.ceil(cx + reach));
    const y0 = Math.max(0, Math.floor(cy - reach));
    const y1 = Math.min(H - 1, Math.ceil(cy + reach));
    const soft = 1 / Math.max(0.5, Math.min(rx, ry));
    for (let y = y0; y <= y1; y++) {
      for (let x = x0; x <= x1; x++) {
        const px = x + 0.5 - cx;
        const py = y + 0.5 - cy;
        const u = (px * cos + py * sin) / rx;
        const v = (-px * sin + py * cos) / ry;
        const d = Math.sqrt(u * u + v * v);
        const coverage = Math.min(1, Math.max(0, (1 - d) / soft + 0.5));
        if (coverage <= 0) continue;
        const a = coverage * alpha;
        const i = (y * W + x) * 3;
        for (let c = 0; c < 3; c++) this.data[i + c] = this.data[i + c]! * (1 - a) + color[c]! * a;
        if (mask) mask[y * W + x] = Math.max(mask[y * W + x]!, coverage);
      }
    }
  }

  /** Multiplies by a directional light: 1 + strength·(position · direction), centred. */
  light(angle: number, strength: number): void {
    const { width: W, height: H } = this;
    const dx = Math.cos(angle);
    const dy = Math.sin(angle);
    for (let y = 0; y < H; y++) {
      for (let x = 0; x < W; x++) {
        const f = 1 + strength * ((x / W - 0.5) * dx + (y / H - 0.5) * dy) * 2;
        const i = (y * W + x) * 3;
        for (let c = 0; c < 3; c++) this.data[i + c] = this.data[i + c]! * f;
      }
    }
  }

  /** Separable box blur of radius r, mixed with the original by `amount` (1 = fully blurred), inside `mask`. */
  boxBlur(r: number, amount = 1, mask?: Float32Array): void {
    if (r <= 0 || amount <= 0) return;
    const { width: W, height: H } = this;
    const tmp = new Float32Array(this.data.length);
    const out = new Float32Array(this.data.length);
    const pass = (src: Float32Array, dst: Float32Array, horizontal: boolean) => {
      for (let y = 0; y < H; y++) {
        for (let x = 0; x < W; x++) {
          for (let c = 0; c < 3; c++) {
            let sum = 0;
            for (let k = -r; k <= r; k++) {
              const xx = horizontal ? Math.min(W - 1, Math.max(0, x + k)) : x;
              const yy = horizontal ? y : Math.min(H - 1, Math.max(0, y + k));
              sum += src[(yy * W + xx) * 3 + c]!;
            }
            dst[(y * W + x) * 3 + c] = sum / (2 * r + 1);
          }
        }
      }
    };
    pass(this.data, tmp, true);
    pass(tmp, out, false);
    for (let p = 0; p < W * H; p++) {
      const a = amount * (mask ? mask[p]! : 1);
      for (let c = 0; c < 3; c++) this.data[p * 3 + c] = this.data[p * 3 + c]! * (1 - a) + out[p * 3 + c]! * a;
    }
  }

  /** Box-downsamples by `factor` and upsamples back (nearest or bilinear): a low-resolution look. */
  lowRes(factor: number, mode: 'nearest' | 'bilinear', amount = 1, mask?: Float32Array): void {
    const { width: W, height: H } = this;
    const w = Math.max(1, Math.floor(W / factor));
    const h = Math.max(1, Math.floor(H / factor));
    const small = new Float32Array(w * h * 3);
    for (let y = 0; y < h; y++) {
      for (let x = 0; x < w; x++) {
        for (let c = 0; c < 3; c++) {
          let sum = 0;
          for (let j = 0; j < factor; j++) for (let i = 0; i < factor; i++) sum += this.data[((y * factor + j) * W + x * factor + i) * 3 + c] ?? 0;
          small[(y * w + x) * 3 + c] = sum / (factor * factor);
        }
      }
    }
    for (let y = 0; y < H; y++) {
      for (let x = 0; x < W; x++) {
        const p = y * W + x;
        const a = amount * (mask ? mask[p]! : 1);
        if (a <= 0) continue;
        for (let c = 0; c < 3; c++) {
          let v: number;
          if (mode === 'nearest') {
            v = small[(Math.min(h - 1, Math.floor(y / factor)) * w + Math.min(w - 1, Math.floor(x / factor))) * 3 + c]!;
          } else {
            const fx = Math.min(w - 1, Math.max(0, (x + 0.5) / factor - 0.5));
            const fy = Math.min(h - 1, Math.max(0, (y + 0.5) / factor - 0.5));
            const x0 = Math.floor(fx);
            const y0 = Math.floor(fy);
            const x1 = Math.min(w - 1, x0 + 1);
            const y1 = Math.min(h - 1, y0 + 1);
            const tx = fx - x0;
            const ty = fy - y0;
            const at = (xx: number, yy: number) => small[(yy * w + xx) * 3 + c]!;
            v = (at(x0, y0) * (1 - tx) + at(x1, y0) * tx) * (1 - ty) + (at(x0, y1) * (1 - tx) + at(x1, y1) * tx) * ty;
          }
          this.data[p * 3 + c] = this.data[p * 3 + c]! * (1 - a) + v * a;
        }
      }
    }
  }

  /** Adds `fn(x, y)` (per channel weights) inside `mask` (or everywhere). */
  addPattern(fn: (x: number, y: number) => number, weights: readonly number[] = [1, 1, 1], mask?: Float32Array): void {
    const { width: W, height: H } = this;
    for (let y = 0; y < H; y++) {
      for (let x = 0; x < W; x++) {
        const p = y * W + x;
        const m = mask ? mask[p]! : 1;
        if (m <= 0) continue;
        const v = fn(x, y) * m;
        for (let c = 0; c < 3; c++) this.data[p * 3 + c] = this.data[p * 3 + c]! + v * weights[c]!;
      }
    }
  }

  /** Saturation scale around the per-pixel grey level, inside `mask`. */
  saturate(factor: number, mask?: Float32Array): void {
    for (let p = 0; p < this.width * this.height; p++) {
      const m = mask ? mask[p]! : 1;
      if (m <= 0) continue;
      const i = p * 3;
      const grey = 0.299 * this.data[i]! + 0.587 * this.data[i + 1]! + 0.114 * this.data[i + 2]!;
      const f = 1 + (factor - 1) * m;
      for (let c = 0; c < 3; c++) this.data[i + c] = grey + (this.data[i + c]! - grey) * f;
    }
  }

  /** Unsharp masking: `x + amount · (x − blur_r(x))` inside `mask`; bright and dark halos along edges. */
  sharpen(r: number, amount: number, mask?: Float32Array): void {
    const blurred = this.clone();
    blurred.boxBlur(r, 1);
    for (let p = 0; p < this.width * this.height; p++) {
      const m = amount * (mask ? mask[p]! : 1);
      if (m === 0) continue;
      for (let c = 0; c < 3; c++) {
        const i = p * 3 + c;
        this.data[i] = this.data[i]! + m * (this.data[i]! - blurred.data[i]!);
      }
    }
  }

  /** Quantises every channel to `levels` values (colour banding) inside `mask`. */
  posterize(levels: number, mask?: Float32Array): void {
    const step = 255 / (levels - 1);
    for (let p = 0; p < this.width * this.height; p++) {
      const m = mask ? mask[p]! : 1;
      if (m <= 0) continue;
      for (let c = 0; c < 3; c++) {
        const i = p * 3 + c;
        const v = Math.round(Math.min(255, Math.max(0, this.data[i]!)) / step) * step;
        this.data[i] = this.data[i]! * (1 - m) + v * m;
      }
    }
  }

  /** Moves one colour channel by (dx, dy) pixels (edge-clamped): chromatic aberration / misregistered planes. */
  shiftChannel(channel: 0 | 1 | 2, dx: number, dy: number): void {
    const { width: W, height: H } = this;
    const source = this.clone().data;
    for (let y = 0; y < H; y++) {
      for (let x = 0; x < W; x++) {
        const sx = Math.min(W - 1, Math.max(0, x - dx));
        const sy = Math.min(H - 1, Math.max(0, y - dy));
        this.data[(y * W + x) * 3 + channel] = source[(sy * W + sx) * 3 + channel]!;
      }
    }
  }

  toBytes(): Buffer {
    const out = Buffer.alloc(this.data.length);
    for (let i = 0; i < this.data.length; i++) out[i] = Math.min(255, Math.max(0, Math.round(this.data[i]!)));
    return out;
  }
}
