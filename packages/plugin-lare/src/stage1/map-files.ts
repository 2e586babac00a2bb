/** One existing map file (`.pt` from torch.save, `.npy`, `.safetensors`) → float32 with its shape. */
import { readFile } from 'node:fs/promises';
import { extname } from 'node:path';
import { SafetensorsFile } from '@dfd/core';
import { parseNpy } from '@dfd/dataset-df40';
import { readTorchTensor } from './torch-pt.js';

export class MapFileError extends Error {
  override name = 'MapFileError';
}

export const MAP_EXTENSIONS = ['.pt', '.pth', '.npy', '.safetensors'];

export async function readMapFile(path: string): Promise<{ shape: number[]; data: Float32Array }> {
  const ext = extname(path).toLowerCase();
  if (ext === '.pt' || ext === '.pth') return readTorchTensor(await readFile(path), path);
  if (ext === '.npy') {
    const array = parseNpy(await readFile(path), path);
    return { shape: array.shape, data: array.data };
  }
  if (ext === '.safetensors') {
    const file = await SafetensorsFile.open(path);
    try {
      const names = file.names();
      const name = names.length === 1 ? names[0]! : ['lare', 'maps', 'map'].find((n) => names.includes(n));
      if (!name) throw new MapFileError(`${path} holds ${names.length} tensors (${names.slice(0, 5).join(', ')}); save the map alone or as 'lare'`);
      return await file.readFloat32(name);
    } finally {
      await file.close();
    }
  }
  throw new MapFileError(`${path}: a map file must be .pt (torch.save of one tensor), .npy or .safetensors`);
}
