/**
 * Per-image extra inputs (LaRE maps ...) from `.safetensors` (core's reader) or `.npy`, as float32.
 * A safetensors file holds the tensor named after the extra's key, or exactly one tensor.
 */
import { extname } from 'node:path';
import { SafetensorsFile } from '@dfd/core';
import { readNpy } from './npy.js';

export interface ExtraArray {
  shape: number[];
  data: Float32Array;
}

export class ExtraFileError extends Error {
  override name = 'ExtraFileError';
}

export async function loadExtra(path: string, key: string): Promise<ExtraArray> {
  const ext = extname(path).toLowerCase();
  if (ext === '.npy') {
    const array = await readNpy(path);
    return { shape: array.shape, data: array.data };
  }
  if (ext === '.safetensors') {
    const file = await SafetensorsFile.open(path);
    try {
      const names = file.names();
      const name = names.includes(key) ? key : names.length === 1 ? names[0]! : undefined;
      if (!name) {
        throw new ExtraFileError(
          `${path} holds ${names.length} tensors (${names.slice(0, 5).join(', ')}) and none is named '${key}'; ` +
            `save the '${key}' map under that name or alone in its file`,
        );
      }
      const { shape, data } = await file.readFloat32(name);
      return { shape, data };
    } finally {
      await file.close();
    }
  }
  throw new ExtraFileError(`${path}: extra '${key}' must be a .safetensors or .npy file`);
}
