/**
 * NumPy `.npy` reader and writer (format versions 1–3). DF40 ships landmarks as `.npy`; per-image extras
 * (e.g. LaRE maps exported from Python) are often `.npy` too. Values come back as float32 — what every
 * consumer here feeds to tfjs — whatever the stored dtype.
 */
import { readFile, writeFile } from 'node:fs/promises';

export class NpyError extends Error {
  override name = 'NpyError';
}

export interface NpyArray {
  shape: number[];
  /** The stored dtype, e.g. `<f4`. */
  dtype: string;
  data: Float32Array;
}

const MAGIC = Buffer.from([0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59]); // \x93NUMPY

export function parseNpy(bytes: Buffer, where = '(buffer)'): NpyArray {
  if (bytes.length < 10 || !bytes.subarray(0, 6).equals(MAGIC)) {
    throw new NpyError(`${where} is not a .npy file (bad magic); re-save it with numpy.save`);
  }
  const major = bytes[6]!;
  const headerLength = major === 1 ? bytes.readUInt16LE(8) : bytes.readUInt32LE(8);
  const headerStart = major === 1 ? 10 : 12;
  const header = bytes.subarray(headerStart, headerStart + headerLength).toString(major === 3 ? 'utf8' : 'latin1');
  const descr = /'descr':\s*'([^']+)'/.exec(header)?.[1];
  const fortran = /'fortran_order':\s*True/.test(header);
  const shapeText = /'shape':\s*\(([^)]*)\)/.exec(header)?.[1];
  if (!descr || shapeText === undefined) throw new NpyError(`${where}: unreadable .npy header ${header.trim()}`);
  const shape = shapeText
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s !== '')
    .map((s) => Number.parseInt(s, 10));
  const count = shape.reduce((a, b) => a * b, 1);
  const body = bytes.subarray(headerStart + headerLength);
  const data = decode(descr, body, count, where);
  return { shape, dtype: descr, data: fortran && shape.length > 1 ? fromFortran(data, shape) : data };
}

function decode(descr: string, body: Buffer, count: number, where: string): Float32Array {
  const order = descr[0];
  const kind = descr.slice(1);
  if (order === '>' && kind !== 'u1' && kind !== 'i1' && kind !== 'b1') {
    throw new NpyError(`${where}: big-endian dtype ${descr} is not supported; save with arr.astype('<f4')`);
  }
  const sizes: Record<string, number> = { f4: 4, f8: 8, f2: 2, i4: 4, i8: 8, i2: 2, u2: 2, u4: 4, u1: 1, i1: 1, b1: 1 };
  const size = sizes[kind];
  if (size === undefined) throw new NpyError(`${where}: dtype ${descr} is not supported (use float32)`);
  if (body.length < count * size) {
    throw new NpyError(`${where}: truncated .npy (${body.length} data bytes for ${count} × ${descr})`);
  }
  const out = new Float32Array(count);
  for (let i = 0; i < count; i++) {
    const at = i * size;
    switch (kind) {
      case 'f4': out[i] = body.readFloatLE(at); break;
      case 'f8': out[i] = body.readDoubleLE(at); break;
      case 'f2': out[i] = halfToFloat(body.readUInt16LE(at)); break;
      case 'i4': out[i] = body.readInt32LE(at); break;
      case 'i8': out[i] = Number(body.readBigInt64LE(at)); break;
      case 'i2': out[i] = body.readInt16LE(at); break;
      case 'u2': out[i] = body.readUInt16LE(at); break;
      case 'u4': out[i] = body.readUInt32LE(at); break;
      case 'u1': case 'b1': out[i] = body[at]!; break;
      case 'i1': out[i] = body.readInt8(at); break;
    }
  }
  return out;
}

function halfToFloat(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const exponent = (h >> 10) & 0x1f;
  const fraction = h & 0x3ff;
  if (exponent === 0) return sign * 2 ** -14 * (fraction / 1024);
  if (exponent === 31) return fraction ? Number.NaN : sign * Number.POSITIVE_INFINITY;
  return sign * 2 ** (exponent - 15) * (1 + fraction / 1024);
}

/** Column-major → row-major. */
function fromFortran(data: Float32Array, shape: number[]): Float32Array {
  const out = new Float32Array(data.length);
  const strides = shape.map((_, d) => shape.slice(0, d).reduce((a, b) => a * b, 1));
  const index = new Array<number>(shape.length).fill(0);
  for (let i = 0; i < data.length; i++) {
    let src = 0;
    for (let d = 0; d < shape.length; d++) src += index[d]! * strides[d]!;
    out[i] = data[src]!;
    for (let d = shape.length - 1; d >= 0; d--) {
      index[d]!++;
      if (index[d]! < shape[d]!) break;
      index[d] = 0;
    }
  }
  return out;
}

export async function readNpy(path: string): Promise<NpyArray> {
  let bytes: Buffer;
  try {
    bytes = await readFile(path);
  } catch (error) {
    throw new NpyError(`cannot read ${path}: ${(error as Error).message}`);
  }
  return parseNpy(bytes, path);
}

/** Encodes a float32 array as a version-1 `.npy` (`<f4`, C order), byte-identical to `numpy.save`. */
export function encodeNpy(data: Float32Array, shape: number[]): Buffer {
  const shapeText = shape.length === 1 ? `(${shape[0]},)` : `(${shape.join(', ')})`;
  let header = `{'descr': '<f4', 'fortran_order': False, 'shape': ${shapeText}, }`;
  // numpy pads the header with spaces so that magic + lengths + header + '\n' is a multiple of 64.
  const total = 10 + header.length + 1;
  header += ' '.repeat((64 - (total % 64)) % 64) + '\n';
  const head = Buffer.alloc(10);
  MAGIC.copy(head, 0);
  head[6] = 1;
  head[7] = 0;
  head.writeUInt16LE(header.length, 8);
  const body = Buffer.from(data.buffer, data.byteOffset, data.byteLength);
  return Buffer.concat([head, Buffer.from(header, 'latin1'), body]);
}

export async function writeNpy(path: string, data: Float32Array, shape: number[]): Promise<void> {
  await writeFile(path, encodeNpy(data, shape));
}
