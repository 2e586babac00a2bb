/**
 * One way to open an onnxruntime session for a frozen tower (CLIP vision, and any other frozen ONNX model a
 * package runs, e.g. Stable Diffusion for LaRE stage 1): device and thread settings, the optimisation level,
 * and an error that names the file and the fix.
 *
 * Precision is decided by the graph itself (an int8 graph holds `DynamicQuantizeMatMul` nodes); this
 * function only refuses what onnxruntime's CPU kernels cannot do well, so every caller says the same thing.
 */
import * as ort from 'onnxruntime-node';

export type FrozenPrecision = 'fp32' | 'bf16' | 'int8';
export const FROZEN_PRECISIONS: readonly FrozenPrecision[] = ['fp32', 'bf16', 'int8'];

export class OnnxSessionError extends Error {
  override name = 'OnnxSessionError';
}

/**
 * Why bf16 is refused on onnxruntime's CPU provider (measured with onnxruntime 1.32 on this project's
 * Sapphire Rapids machines, see packages/encoder-clip/README.md): MatMul has no bfloat16 CPU kernel
 * (NOT_IMPLEMENTED) and float16 MatMul runs at 0.46× float32. int8 is the fast CPU path.
 */
export const BF16_UNAVAILABLE =
  "precision 'bf16' has no fast path on onnxruntime's CPU provider (no bfloat16 MatMul kernel; float16 measured 2.2× slower than fp32): use --precision int8 for speed or fp32 for exactness";

export interface OnnxSessionOptions {
  /** `cpu` (default) or `cuda` (needs onnxruntime-node installed with ONNXRUNTIME_NODE_INSTALL=cuda12). */
  device?: 'cpu' | 'cuda';
  /** Intra-op threads (default: onnxruntime's choice, all cores). */
  threads?: number;
  /** Checked against what the device can run fast (bf16 is refused on CPU). */
  precision?: FrozenPrecision;
}

export function checkPrecision(precision: FrozenPrecision, device: 'cpu' | 'cuda'): void {
  if (!FROZEN_PRECISIONS.includes(precision)) throw new OnnxSessionError(`precision must be one of ${FROZEN_PRECISIONS.join(', ')}, got '${String(precision)}'`);
  if (precision === 'bf16' && device === 'cpu') throw new OnnxSessionError(BF16_UNAVAILABLE);
  if (precision === 'bf16') throw new OnnxSessionError("precision 'bf16' is not built for CUDA yet: use fp32 or int8");
}

/** Opens `path` (a file, or the bytes of a model) with the project's settings. */
export async function createOnnxSession(path: string, options: OnnxSessionOptions = {}): Promise<ort.InferenceSession> {
  const device = options.device ?? 'cpu';
  if (options.precision) checkPrecision(options.precision, device);
  const sessionOptions: ort.InferenceSession.SessionOptions = {
    executionProviders: device === 'cuda' ? ['cuda', 'cpu'] : ['cpu'],
    graphOptimizationLevel: 'all',
  };
  if (options.threads) sessionOptions.intraOpNumThreads = options.threads;
  try {
    return await ort.InferenceSession.create(path, sessionOptions);
  } catch (error) {
    const hint = device === 'cuda' ? ' For CUDA, reinstall onnxruntime-node with ONNXRUNTIME_NODE_INSTALL=cuda12, or use device cpu.' : '';
    throw new OnnxSessionError(`cannot load ONNX model ${path}: ${(error as Error).message.split('\n')[0]}.${hint}`);
  }
}
