/**
 * Small building blocks for trainable heads (enhancers, fusers): PyTorch-layout `Linear` and `LayerNorm`
 * parameters with PyTorch's initialisations drawn from a seeded `Rng`, and seeded dropout. Weights are stored
 * as `[in, out]` (already transposed from PyTorch's `[out, in]`) so the forward is a plain `matMul` — on wasm a
 * transposed operand is ~10x slower. Fixture scripts transpose when they copy weights across.
 */
import * as tf from '@tensorflow/tfjs';
import type { Rng } from '../rng.js';
import { uniqueVariableName } from '../variables.js';

/** A named set of trainable variables, so a module lists them in one place and disposes them together. */
export class ParameterSet {
  private readonly vars: Record<string, tf.Variable> = {};

  constructor(private readonly prefix: string) {}

  add(name: string, values: Float32Array, shape: number[]): tf.Variable {
    if (this.vars[name]) throw new Error(`${this.prefix}: parameter '${name}' defined twice`);
    const v = tf.variable(tf.tensor(values, shape, 'float32'), true, uniqueVariableName(`${this.prefix}.${name}`));
    this.vars[name] = v;
    return v;
  }

  get(name: string): tf.Variable {
    const v = this.vars[name];
    if (!v) throw new Error(`${this.prefix}: no parameter '${name}'`);
    return v;
  }

  all(): Record<string, tf.Variable> {
    return { ...this.vars };
  }

  dispose(): void {
    for (const v of Object.values(this.vars)) v.dispose();
  }
}

/**
 * `a · b` for 2-D tensors whose gradient also avoids transposed-operand matMuls: tfjs' own matMul gradient
 * computes `dy · bᵀ` and `aᵀ · dy` with transpose flags, which the wasm backend runs on a slow path (≈ 10–19×
 * the plain product, shared/reference/measured.md); here the operands are transposed explicitly instead.
 * Same values as `tf.matMul` (the same products, in the same order).
 */
export const matMulPlainGrad = tf.customGrad(((...args: Array<tf.Tensor | tf.GradSaveFunc>) => {
  const [a, b, save] = args as [tf.Tensor2D, tf.Tensor2D, tf.GradSaveFunc];
  save([a, b]);
  return {
    value: tf.matMul(a, b),
    gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => {
      const [sa, sb] = saved as [tf.Tensor2D, tf.Tensor2D];
      return [tf.matMul(dy as tf.Tensor2D, tf.transpose(sb)), tf.matMul(tf.transpose(sa), dy as tf.Tensor2D)];
    },
  };
}) as Parameters<typeof tf.customGrad>[0]) as (a: tf.Tensor2D, b: tf.Tensor2D) => tf.Tensor2D;

export type LinearInit = 'torch' | 'xavier' | 'zeros';

/** A fully connected layer `y = x·W + b` with `W` `[in, out]`. */
export class Linear {
  readonly weight: tf.Variable;
  readonly bias?: tf.Variable;

  /**
   * `torch`: nn.Linear's default, U(±1/√in) for weight and bias; `xavier`: Xavier-uniform weight, zero bias
   * (LaRE's attention); `zeros`: all zero.
   */
  constructor(params: ParameterSet, name: string, readonly inDim: number, readonly outDim: number, rng: Rng, options: { bias?: boolean; init?: LinearInit } = {}) {
    const init = options.init ?? 'torch';
    const size = inDim * outDim;
    const r = rng.fork(name);
    let w: Float32Array;
    if (init === 'zeros') w = new Float32Array(size);
    else {
      const bound = init === 'xavier' ? Math.sqrt(6 / (inDim + outDim)) : 1 / Math.sqrt(inDim);
      w = r.uniformArray(size, -bound, bound);
    }
    this.weight = params.add(`${name}.weight`, w, [inDim, outDim]);
    if (options.bias ?? true) {
      const b = init === 'torch' ? r.uniformArray(outDim, -1 / Math.sqrt(inDim), 1 / Math.sqrt(inDim)) : new Float32Array(outDim);
      this.bias = params.add(`${name}.bias`, b, [outDim]);
    }
  }

  /** `[..., in]` → `[..., out]`. */
  apply(x: tf.Tensor): tf.Tensor {
    const lead = x.shape.slice(0, -1);
    const flat = x.rank === 2 ? x : x.reshape([-1, this.inDim]);
    let y: tf.Tensor = matMulPlainGrad(flat as tf.Tensor2D, this.weight as tf.Tensor2D);
    if (this.bias) y = tf.add(y, this.bias);
    return x.rank === 2 ? y : y.reshape([...lead, this.outDim]);
  }
}

/** nn.LayerNorm over the last axis (weight 1, bias 0, eps 1e-5, biased variance as PyTorch). */
export class LayerNorm {
  readonly weight: tf.Variable;
  readonly bias: tf.Variable;

  constructor(params: ParameterSet, name: string, readonly dim: number, readonly eps = 1e-5) {
    this.weight = params.add(`${name}.weight`, new Float32Array(dim).fill(1), [dim]);
    this.bias = params.add(`${name}.bias`, new Float32Array(dim), [dim]);
  }

  apply(x: tf.Tensor): tf.Tensor {
    const mean = tf.mean(x, -1, true);
    const centred = tf.sub(x, mean);
    const variance = tf.mean(tf.square(centred), -1, true);
    return tf.add(tf.mul(tf.mul(centred, tf.rsqrt(tf.add(variance, this.eps))), this.weight), this.bias);
  }
}

/** Suffix of a dropout's call counter among a module's state tensors (see `Dropout`). */
export const DROPOUT_COUNTER = 'dropout_calls';
/** Counters stay exact integers in float32 below 2^24; past it they wrap (masks then repeat the first ones'). */
const COUNTER_WRAP = 2 ** 24;

/**
 * Inverted dropout (PyTorch's: zero with probability `rate`, scale the rest by 1/(1−rate)). Each training call's
 * mask is a pure function of (the module's forked `Rng` — the experiment seed and the module's label — and this
 * dropout's call count), and the count is a non-trainable state tensor the owning module lists in
 * `stateTensors()` (`dropoutState`). Checkpoints store it, so a killed and resumed run draws exactly the masks
 * an uninterrupted one draws (a stream advanced in memory would restart at the seed on resume). Identity outside
 * training or at rate 0; at rate 0 there is no counter, so such a module's checkpoints hold no dropout state.
 */
export class Dropout {
  /** Training calls so far (float32 scalar); absent at rate 0. */
  readonly calls?: tf.Variable;

  constructor(readonly rate: number, private readonly rng: Rng, name = 'dropout') {
    if (!(rate >= 0 && rate < 1)) throw new Error(`dropout rate must be in [0, 1), got ${rate}`);
    if (rate > 0) this.calls = tf.variable(tf.scalar(0), false, uniqueVariableName(`${name}.${DROPOUT_COUNTER}`));
  }

  apply(x: tf.Tensor, training: boolean): tf.Tensor {
    if (!training || !this.calls) return x;
    const call = this.calls.dataSync()[0]!;
    tf.tidy(() => this.calls!.assign(tf.scalar((call + 1) % COUNTER_WRAP)));
    // fork() does not advance the stream: the seed of call n is the same in every run from the same seed.
    return tf.dropout(x, this.rate, undefined, this.rng.fork(`mask.${call}`).nextUint32());
  }

  dispose(): void {
    this.calls?.dispose();
  }
}

/** The call counters of a module's dropouts as state tensors, `<name>.dropout_calls` (none at rate 0). */
export function dropoutState(dropouts: Record<string, Dropout>): Record<string, tf.Variable> {
  return Object.fromEntries(Object.entries(dropouts).flatMap(([name, d]) => (d.calls ? [[`${name}.${DROPOUT_COUNTER}`, d.calls]] : [])));
}
