/**
 * The assembly-time probe of a fuser: one call with zero inputs of the declared widths (batch of 1), so a
 * fuser whose `build` accepted widths it cannot combine fails now — with the parts and widths named —
 * rather than with a raw tfjs shape error at the first training step. The probe sees zero patch tokens /
 * hidden states when some part asked for them and no extras. A fuser that needs boxes is not probed: how
 * many regions a batch carries is the loader's setting, unknown here, and a probe with a made-up count
 * would reject a correct fuser — such a fuser checks the widths in its own `build`.
 */
import * as tf from '@tensorflow/tfjs';
import type { Fuser, FusionDims } from '../contracts.js';

export class CompositionError extends Error {
  override name = 'CompositionError';
}

export interface ProbeContext {
  /** The fuser's component name. */
  name: string;
  /** The inputs and their widths, as words (for messages). */
  inputs: string;
  patchTokens: boolean;
  /** Hidden layers some part asked for (`[1, 1 + grid², visionWidth]` zeros each). */
  hiddenLayers: number[];
}

export function probeFuser(fuser: Fuser, dims: FusionDims, fusedDim: number, context: ProbeContext): void {
  if (fuser.needsBoxes) return;
  let shape: number[];
  try {
    shape = tf.tidy(() => {
      const image = tf.zeros([1, dims.image]) as tf.Tensor2D;
      const patchTokens = context.patchTokens ? (tf.zeros([1, dims.gridSize, dims.gridSize, dims.visionWidth]) as tf.Tensor4D) : undefined;
      const out = fuser.fuse({
        image,
        enhanced: dims.enhanced.map(({ name, dim }) => ({ name, features: tf.zeros([1, dim]) as tf.Tensor2D })),
        imageFeatures: {
          embeds: image,
          ...(patchTokens ? { patchTokens } : {}),
          ...(context.hiddenLayers.length
            ? { hiddenStates: Object.fromEntries(context.hiddenLayers.map((l) => [l, tf.zeros([1, 1 + dims.gridSize ** 2, dims.visionWidth]) as tf.Tensor3D])) }
            : {}),
        },
        extras: {},
        imageSize: dims.imageSize,
        training: false,
      });
      const result = [...out.shape];
      out.dispose();
      return result;
    });
  } catch (error) {
    throw new CompositionError(`fuser ${context.name} cannot fuse ${context.inputs}: a probe call with these widths failed: ${(error as Error).message}`);
  }
  if (shape.length !== 2 || shape[0] !== 1 || shape[1] !== fusedDim) {
    throw new CompositionError(`fuser ${context.name} built for ${context.inputs} declared a fused width of ${fusedDim} but returned [${shape.join(', ')}] for one image`);
  }
}
