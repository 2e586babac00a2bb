/**
 * The one place an onnxruntime session is made for stage 1 (model path → InferenceSession with options), so
 * device, threads and later precision choices change here only.
 *
 * `device: 'cuda'` asks for onnxruntime's CUDA execution provider alone — no silent CPU fallback, since a
 * run that was meant for a GPU and crawls on the CPU is worse than a clear error. It needs onnxruntime-node
 * installed with `ONNXRUNTIME_NODE_INSTALL=cuda12` (this repository skips that download); untested here.
 */
import * as ort from 'onnxruntime-node';
import { ensureInt8Graph, type LarePrecision } from './int8-graph.js';

export type LareDevice = 'cpu' | 'cuda';

export interface SessionOptions {
  device?: LareDevice;
  /** Intra-op threads (default: onnxruntime's choice, all cores). */
  threads?: number;
  /** `int8`: the session runs the cached int8 rewrite of the graph (made first when absent; see int8-graph.ts). */
  precision?: LarePrecision;
  /** int8 only: MatMul weights with fewer elements stay fp32 (default 4096). */
  int8MinElements?: number;
  /** Progress lines (the one-time quantisation). */
  log?: (message: string) => void;
}

export class LareSessionError extends Error {
  override name = 'LareSessionError';
}

export async function createLareSession(path: string, options: SessionOptions = {}): Promise<ort.InferenceSession> {
  const device = options.device ?? 'cpu';
  const sessionOptions: ort.InferenceSession.SessionOptions = {
    executionProviders: [device],
    graphOptimizationLevel: 'all',
  };
  if (options.threads) {
    sessionOptions.intraOpNumThreads = options.threads;
    sessionOptions.interOpNumThreads = 1;
  }
  if (options.precision === 'int8') {
    const built = await ensureInt8Graph(path, { ...(options.int8MinElements ? { minElements: options.int8MinElements } : {}), ...(options.log ? { log: options.log } : {}) });
    path = built.path;
  }
  try {
    return await ort.InferenceSession.create(path, sessionOptions);
  } catch (error) {
    const first = (error as Error).message.split('\n')[0];
    if (device === 'cuda') {
      throw new LareSessionError(
        `cannot open ${path} on CUDA: ${first}. onnxruntime's CUDA provider is not installed or finds no GPU: ` +
          'reinstall onnxruntime-node with ONNXRUNTIME_NODE_INSTALL=cuda12 (CUDA 12 and cuDNN 9 on the machine), or use --device cpu',
      );
    }
    throw new LareSessionError(`cannot load ONNX model ${path}: ${first}`);
  }
}

/** The element type an input expects (`int64`, `int32`, `float32` ...), when the session reports it. */
export function inputType(session: ort.InferenceSession, name: string): string | undefined {
  const meta = session.inputMetadata?.find((m) => m.name === name);
  return meta && meta.isTensor ? meta.type : undefined;
}
