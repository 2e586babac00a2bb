/**
 * Optimizers with PyTorch's update rules, written against named variables so that their state (momentum
 * buffers, Adam moments, step counts) is plain named tensors that go into checkpoints: a resumed run
 * continues bit-for-bit. (tfjs' built-in optimizers keep state we cannot serialise portably, and their
 * weight-decay semantics differ from PyTorch's.)
 */
import * as tf from '@tensorflow/tfjs';
import type { OptimizerConfig } from '../experiment.js';
import { uniqueVariableName } from '../variables.js';

export interface Optimizer {
  readonly type: OptimizerConfig['type'];
  /** Applies one update with learning rate `lr`. Gradients are not disposed here. */
  apply(variables: Record<string, tf.Variable>, gradients: Record<string, tf.Tensor>, lr: number): void;
  /** Slot tensors by name (`<slot>/<variable>`) plus scalar state, for checkpoints. */
  state(): { tensors: Record<string, tf.Tensor>; scalars: Record<string, number> };
  loadState(state: { tensors: Record<string, tf.Tensor>; scalars: Record<string, number> }): void;
  dispose(): void;
}

function slotName(key: string): string {
  return uniqueVariableName(`optim.${key}`);
}

abstract class SlottedOptimizer {
  protected readonly slots = new Map<string, tf.Variable>();

  protected slot(slot: string, name: string, like: tf.Tensor): tf.Variable {
    const key = `${slot}/${name}`;
    let variable = this.slots.get(key);
    if (!variable) {
      variable = tf.variable(tf.zerosLike(like), false, slotName(key));
      this.slots.set(key, variable);
    }
    return variable;
  }

  protected tensorsState(): Record<string, tf.Tensor> {
    return Object.fromEntries(this.slots);
  }

  protected loadTensors(tensors: Record<string, tf.Tensor>): void {
    for (const variable of this.slots.values()) variable.dispose();
    this.slots.clear();
    for (const [key, value] of Object.entries(tensors)) {
      this.slots.set(key, tf.variable(value.clone(), false, slotName(key)));
    }
  }

  dispose(): void {
    for (const variable of this.slots.values()) variable.dispose();
    this.slots.clear();
  }
}

/** torch.optim.SGD: d = g + wd·p; buf = μ·buf + (1−τ)·d (buf = d on the first step); p −= lr·(nesterov ? d + μ·buf : buf). */
export class Sgd extends SlottedOptimizer implements Optimizer {
  readonly type = 'sgd' as const;
  private readonly started = new Set<string>();

  constructor(private readonly config: Extract<OptimizerConfig, { type: 'sgd' }>) {
    super();
  }

  apply(variables: Record<string, tf.Variable>, gradients: Record<string, tf.Tensor>, lr: number): void {
    const { momentum, dampening, weightDecay, nesterov } = this.config;
    for (const [name, variable] of Object.entries(variables)) {
      const gradient = gradients[name];
      if (!gradient) continue;
      tf.tidy(() => {
        let d: tf.Tensor = weightDecay ? tf.add(gradient, tf.mul(variable, weightDecay)) : gradient;
        if (momentum) {
          const buffer = this.slot('momentum_buffer', name, variable);
          const next = this.started.has(name) ? tf.add(tf.mul(buffer, momentum), tf.mul(d, 1 - dampening)) : d;
          buffer.assign(next);
          this.started.add(name);
          d = nesterov ? tf.add(d, tf.mul(buffer, momentum)) : buffer;
        }
        variable.assign(tf.sub(variable, tf.mul(d, lr)));
      });
    }
  }

  state() {
    return { tensors: this.tensorsState(), scalars: Object.fromEntries([...this.started].map((n) => [`started/${n}`, 1])) };
  }

  loadState(state: { tensors: Record<string, tf.Tensor>; scalars: Record<string, number> }): void {
    this.loadTensors(state.tensors);
    this.started.clear();
    for (const key of Object.keys(state.scalars)) if (key.startsWith('started/')) this.started.add(key.slice(8));
  }
}

/**
 * torch.optim.Adam (L2 added to the gradient) and torch.optim.AdamW (decoupled decay p −= lr·wd·p),
 * with bias correction; one step counter per variable, as in PyTorch.
 */
export class Adam extends SlottedOptimizer implements Optimizer {
  readonly type: 'adam' | 'adamw';
  private readonly steps = new Map<string, number>();

  constructor(private readonly config: Extract<OptimizerConfig, { type: 'adam' | 'adamw' }>) {
    super();
    this.type = config.type;
  }

  apply(variables: Record<string, tf.Variable>, gradients: Record<string, tf.Tensor>, lr: number): void {
    const { beta1, beta2, epsilon } = this.config;
    const decoupled = this.config.type === 'adamw';
    const weightDecay = this.config.weightDecay ?? (decoupled ? 0.01 : 0);
    for (const [name, variable] of Object.entries(variables)) {
      const gradient = gradients[name];
      if (!gradient) continue;
      const step = (this.steps.get(name) ?? 0) + 1;
      this.steps.set(name, step);
      tf.tidy(() => {
        let g: tf.Tensor = gradient;
        if (decoupled && weightDecay) variable.assign(tf.mul(variable, 1 - lr * weightDecay));
        if (!decoupled && weightDecay) g = tf.add(g, tf.mul(variable, weightDecay));
        const m = this.slot('exp_avg', name, variable);
        const v = this.slot('exp_avg_sq', name, variable);
        m.assign(tf.add(tf.mul(m, beta1), tf.mul(g, 1 - beta1)));
        v.assign(tf.add(tf.mul(v, beta2), tf.mul(tf.square(g), 1 - beta2)));
        const biasCorrection1 = 1 - beta1 ** step;
        const biasCorrection2 = 1 - beta2 ** step;
        const denominator = tf.add(tf.div(tf.sqrt(v), Math.sqrt(biasCorrection2)), epsilon);
        variable.assign(tf.sub(variable, tf.mul(tf.div(m, denominator), lr / biasCorrection1)));
      });
    }
  }

  state() {
    return { tensors: this.tensorsState(), scalars: Object.fromEntries([...this.steps].map(([n, s]) => [`step/${n}`, s])) };
  }

  loadState(state: { tensors: Record<string, tf.Tensor>; scalars: Record<string, number> }): void {
    this.loadTensors(state.tensors);
    this.steps.clear();
    for (const [key, value] of Object.entries(state.scalars)) if (key.startsWith('step/')) this.steps.set(key.slice(5), value);
  }
}

export function createOptimizer(config: OptimizerConfig): Optimizer {
  return config.type === 'sgd' ? new Sgd(config) : new Adam(config);
}

/**
 * torch.nn.utils.clip_grad_norm_: scales all gradients by max/(‖g‖+1e-6) when the global L2 norm exceeds
 * `maxNorm`. Returns the norm before clipping and the (possibly new) gradients; replaced tensors are disposed.
 */
export function clipGradientsByGlobalNorm(
  gradients: Record<string, tf.Tensor>,
  maxNorm: number,
): { norm: number; gradients: Record<string, tf.Tensor> } {
  const norm = globalNorm(gradients);
  const coefficient = maxNorm / (norm + 1e-6);
  if (coefficient >= 1) return { norm, gradients };
  const clipped: Record<string, tf.Tensor> = {};
  for (const [name, gradient] of Object.entries(gradients)) {
    clipped[name] = tf.mul(gradient, coefficient);
    gradient.dispose();
  }
  return { norm, gradients: clipped };
}

export function globalNorm(gradients: Record<string, tf.Tensor>): number {
  return tf.tidy(() => {
    const squares = Object.values(gradients).map((g) => tf.sum(tf.square(g)));
    if (!squares.length) return 0;
    return Math.sqrt(tf.addN(squares).dataSync()[0]!);
  });
}
