/**
 * Per-image extra inputs (LaRE maps ...) from `.safetensors` (core's reader) or `.npy`, as float32, or from an
 * extras store (a folder with `index.json`, see extra-store.ts). A safetensors file holds the tensor named
 * after the extra's key, or exactly one tensor.
 */
import { extname } from 'node:path';
import { SafetensorsFile } from '@dfd/core';
import { readNpy } from './npy.js';
import { extrasStoreAt, isExtrasStore } from './extra-store.js';

export interface ExtraArray {
  shape: number[];
  data: Float32Array;
}

export class ExtraFileError extends Error {
  override name = 'ExtraFileError';
}

/**
 * `path` is the extra's file, or an extras store root; then `imagePath` (the sample's image) selects the map.
 * A map with NaN or infinite values is refused, naming the file: it would turn the loss into NaN steps later,
 * far from its cause (maps imported from other tools are not checked when they are written).
 */
export async function loadExtra(path: string, key: string, imagePath?: string): Promise<ExtraArray> {
  const extra = await readExtra(path, key, imagePath);
  let bad = 0;
  for (let i = 0; i < extra.data.length; i++) if (!Number.isFinite(extra.data[i]!)) bad++;
  if (bad > 0) {
    const where = imagePath !== undefined && isExtrasStoreCached(path) ? `the map of ${imagePath} in the store ${path}` : path;
    throw new ExtraFileError(`${where}: ${bad} of ${extra.data.length} values of extra '${key}' are NaN or infinite; re-extract it (dfd lare verify lists such maps)`);
  }
  return extra;
}

async function readExtra(path: string, key: string, imagePath?: string): Promise<ExtraArray> {
  if (imagePath !== undefined && isExtrasStoreCached(path)) {
    const store = await extrasStoreAt(path);
    const entry = await store.find(imagePath);
    if (!entry) {
      throw new ExtraFileError(
        `no '${key}' map for ${imagePath} in the store ${path} (neither its path nor its content hash is indexed); ` +
          `extract it with dfd lare extract, or check coverage with dfd lare verify`,
      );
    }
    return store.read(entry);
  }
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

const storeRoots = new Map<string, boolean>();

function isExtrasStoreCached(path: string): boolean {
  let known = storeRoots.get(path);
  if (known === undefined) {
    known = isExtrasStore(path);
    storeRoots.set(path, known);
  }
  return known;
}
