/**
 * CoCoOp's Meta-Net: Linear(vis → vis/16) → ReLU → Linear(vis/16 → ctx_dim), both with bias and PyTorch's
 * default nn.Linear init (weights and biases U(−1/√fan_in, 1/√fan_in)). Weights are stored `[in, out]`.
 */
import { tf, uniqueVariableName, type Rng } from '@dfd/core';

export class MetaNet {
  readonly linear1Weight: tf.Variable;
  readonly linear1Bias: tf.Variable;
  readonly linear2Weight: tf.Variable;
  readonly linear2Bias: tf.Variable;

  constructor(
    readonly inputDim: number,
    readonly hiddenDim: number,
    readonly outputDim: number,
    rng: Rng,
  ) {
    const uniform = (label: string, shape: number[], fanIn: number) => {
      const bound = 1 / Math.sqrt(fanIn);
      const data = rng.fork(label).uniformArray(shape.reduce((a, b) => a * b, 1), -bound, bound);
      return tf.variable(tf.tensor(data, shape, 'float32'), true, uniqueVariableName(`cocoop.meta_net.${label}`));
    };
    this.linear1Weight = uniform('linear1.weight', [inputDim, hiddenDim], inputDim);
    this.linear1Bias = uniform('linear1.bias', [hiddenDim], inputDim);
    this.linear2Weight = uniform('linear2.weight', [hiddenDim, outputDim], hiddenDim);
    this.linear2Bias = uniform('linear2.bias', [outputDim], hiddenDim);
  }

  /** `[B, inputDim]` → `[B, outputDim]`. */
  apply(x: tf.Tensor2D): tf.Tensor2D {
    return tf.tidy(() => {
      const hidden = tf.relu(tf.add(tf.matMul(x, this.linear1Weight as tf.Tensor2D), this.linear1Bias));
      return tf.add(tf.matMul(hidden as tf.Tensor2D, this.linear2Weight as tf.Tensor2D), this.linear2Bias) as tf.Tensor2D;
    });
  }

  variables(): Record<string, tf.Variable> {
    return {
      'meta_net.linear1.weight': this.linear1Weight,
      'meta_net.linear1.bias': this.linear1Bias,
      'meta_net.linear2.weight': this.linear2Weight,
      'meta_net.linear2.bias': this.linear2Bias,
    };
  }

  dispose(): void {
    tf.dispose([this.linear1Weight, this.linear1Bias, this.linear2Weight, this.linear2Bias]);
  }
}
