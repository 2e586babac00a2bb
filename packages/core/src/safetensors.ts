/**
 * Safetensors I/O (https://github.com/huggingface/safetensors format): an 8-byte little-endian header
 * length, a JSON header `{name: {dtype, shape, data_offsets}, __metadata__?: {string: string}}`, then the
 * raw little-endian tensor bytes.
 *
 * The reader opens the file, parses only the header, and reads each tensor's byte range on demand into
 * its own buffer, so a 1.7 GB ViT-L/14 checkpoint is never held twice in memory. F16 and BF16 are widened
 * to float32 on read. The writer streams tensor by tensor and renames into place, so a crash never
 * leaves a half-written checkpoint under the final name.
 */
import { closeSync, fstatSync, openSync, readSync } from 'node:fs';
import { open, rename, rm, type FileHandle } from 'node:fs/promises';

export type SafetensorsDType = 'F64' | 'F32' | 'F16' | 'BF16' | 'I64' | 'I32' | 'I16' | 'I8' | 'U8' | 'BOOL';

const BYTES_PER_ELEMENT: Record<SafetensorsDType, number> = {
  F64: 8, F32: 4, F16: 2, BF16: 2, I64: 8, I32: 4, I16: 2, I8: 1, U8: 1, BOOL: 1,
};

export interface TensorInfo {
  dtype: SafetensorsDType;
  shape: number[];
  /** Byte offsets relative to the start of the data section. */
  dataOffsets: [number, number];
}

export type TensorData = Float32Array | Float64Array | Int32Array | Uint8Array | Int8Array | Int16Array | BigInt64Array;

export interface NamedTensor {
  dtype: SafetensorsDType;
  shape: number[];
  data: TensorData;
}

export class SafetensorsError extends Error {
  override name = 'SafetensorsError';
}

/** Upper bound on the header size, as in the reference implementation (100 MB). */
const MAX_HEADER_BYTES = 100_000_000;

/** The parsed header of a safetensors file: which tensors it holds, where, and its metadata. */
abstract class SafetensorsIndex {
  protected constructor(
    readonly path: string,
    protected readonly tensors: Map<string, TensorInfo>,
    readonly metadata: Record<string, string>,
    protected readonly dataStart: number,
  ) {}

  names(): string[] {
    return [...this.tensors.keys()];
  }

  has(name: string): boolean {
    return this.tensors.has(name);
  }

  info(name: string): TensorInfo {
    const info = this.tensors.get(name);
    if (!info) throw new SafetensorsError(`${this.path} has no tensor named '${name}'`);
    return info;
  }
}

export class SafetensorsFile extends SafetensorsIndex {
  private constructor(
    path: string,
    private readonly handle: FileHandle,
    tensors: Map<string, TensorInfo>,
    metadata: Record<string, string>,
    dataStart: number,
  ) {
    super(path, tensors, metadata, dataStart);
  }

  static async open(path: string): Promise<SafetensorsFile> {
    let handle: FileHandle;
    try {
      handle = await open(path, 'r');
    } catch (error) {
      throw new SafetensorsError(`cannot open safetensors file ${path}: ${(error as Error).message}`);
    }
    try {
      const { size } = await handle.stat();
      if (size < 8) throw new SafetensorsError(`${path} is not a safetensors file (only ${size} bytes)`);
      const lengthBytes = Buffer.alloc(8);
      await handle.read(lengthBytes, 0, 8, 0);
      const headerLength = headerLengthOf(lengthBytes, size, path);
      const headerBytes = Buffer.alloc(headerLength);
      await handle.read(headerBytes, 0, headerLength, 8);
      const dataStart = 8 + headerLength;
      const { tensors, metadata } = parseHeader(headerBytes, size - dataStart, path);
      return new SafetensorsFile(path, handle, tensors, metadata, dataStart);
    } catch (error) {
      await handle.close();
      throw error;
    }
  }

  /** Reads a tensor's raw bytes in the stored dtype. */
  async readRaw(name: string): Promise<{ info: TensorInfo; bytes: Buffer }> {
    const info = this.info(name);
    const [begin, end] = info.dataOffsets;
    // Allocate a fresh (not pooled) buffer so typed-array views start at offset 0 and are aligned.
    const bytes = Buffer.alloc(end - begin);
    if (bytes.length > 0) await this.handle.read(bytes, 0, bytes.length, this.dataStart + begin);
    return { info, bytes };
  }

  /** A tensor's raw bytes, `chunkBytes` at a time (default 64 MiB): for copying tensors larger than memory. */
  async *chunks(name: string, chunkBytes = 64 * 1024 * 1024): AsyncIterable<Buffer> {
    const [begin, end] = this.info(name).dataOffsets;
    for (let at = begin; at < end; at += chunkBytes) {
      const bytes = Buffer.alloc(Math.min(chunkBytes, end - at));
      const { bytesRead } = await this.handle.read(bytes, 0, bytes.length, this.dataStart + at);
      if (bytesRead !== bytes.length) throw new SafetensorsError(`${this.path} is truncated: tensor '${name}' ends past the end of the file`);
      yield bytes;
    }
  }

  /** Reads a floating-point tensor as float32 (F16/BF16/F64 are converted). */
  async readFloat32(name: string): Promise<{ shape: number[]; data: Float32Array }> {
    const { info, bytes } = await this.readRaw(name);
    return { shape: info.shape, data: toFloat32(info.dtype, bytes, `${this.path}:${name}`) };
  }

  /** Reads a tensor in its own dtype (floats as float32/float64, integers as their typed array). */
  async read(name: string): Promise<NamedTensor> {
    const { info, bytes } = await this.readRaw(name);
    const buffer = bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength);
    switch (info.dtype) {
      case 'F64':
        return { dtype: 'F64', shape: info.shape, data: new Float64Array(buffer) };
      case 'I64':
        return { dtype: 'I64', shape: info.shape, data: new BigInt64Array(buffer) };
      case 'I32':
        return { dtype: 'I32', shape: info.shape, data: new Int32Array(buffer) };
      case 'I16':
        return { dtype: 'I16', shape: info.shape, data: new Int16Array(buffer) };
      case 'I8':
        return { dtype: 'I8', shape: info.shape, data: new Int8Array(buffer) };
      case 'U8':
      case 'BOOL':
        return { dtype: info.dtype, shape: info.shape, data: new Uint8Array(buffer) };
      default:
        return { dtype: 'F32', shape: info.shape, data: toFloat32(info.dtype, bytes, `${this.path}:${name}`) };
    }
  }

  async close(): Promise<void> {
    await this.handle.close();
  }
}

/** Reads every tensor of a file (for small files such as checkpoints of prompt learners). */
export async function readSafetensors(path: string): Promise<{ tensors: Record<string, NamedTensor>; metadata: Record<string, string> }> {
  const file = await SafetensorsFile.open(path);
  try {
    const tensors: Record<string, NamedTensor> = {};
    for (const name of file.names()) tensors[name] = await file.read(name);
    return { tensors, metadata: file.metadata };
  } finally {
    await file.close();
  }
}

function dtypeOf(data: TensorData): SafetensorsDType {
  if (data instanceof Float32Array) return 'F32';
  if (data instanceof Float64Array) return 'F64';
  if (data instanceof Int32Array) return 'I32';
  if (data instanceof Int16Array) return 'I16';
  if (data instanceof Int8Array) return 'I8';
  if (data instanceof BigInt64Array) return 'I64';
  return 'U8';
}

/** The tensors' layout in a file being written: names sorted, as the reference writer does. */
interface TensorLayout {
  name: string;
  dtype: SafetensorsDType;
  shape: number[];
  byteLength: number;
}

/**
 * The 8-byte length and the JSON header (padded with spaces to a multiple of 8, so the data is aligned).
 * A header past the 100 MB every reader accepts is refused before anything is written.
 */
function encodeHeader(path: string, layout: TensorLayout[], metadata: Record<string, string>): [Buffer, Buffer] {
  const header: Record<string, unknown> = {};
  if (Object.keys(metadata).length) header.__metadata__ = metadata;
  let offset = 0;
  for (const { name, dtype, shape, byteLength } of layout) {
    header[name] = { dtype, shape, data_offsets: [offset, offset + byteLength] };
    offset += byteLength;
  }
  let headerJson = JSON.stringify(header);
  headerJson += ' '.repeat((8 - (Buffer.byteLength(headerJson) % 8)) % 8);
  const headerBytes = Buffer.from(headerJson, 'utf8');
  if (headerBytes.length > MAX_HEADER_BYTES) {
    throw new SafetensorsError(`${path}: its header would be ${headerBytes.length} bytes, past the ${MAX_HEADER_BYTES}-byte limit of safetensors readers (this one and the reference); keep less metadata, or split the tensors over several files`);
  }
  const lengthBytes = Buffer.alloc(8);
  lengthBytes.writeBigUInt64LE(BigInt(headerBytes.length));
  return [lengthBytes, headerBytes];
}

/**
 * Writes the header's length and JSON (two writes: the kill drill in core's tests recognises the JSON write)
 * and then the tensors as `write` produces them, to a temporary file renamed to `path` when whole.
 */
async function writeThroughTemporary(path: string, header: [Buffer, Buffer], write: (handle: FileHandle) => Promise<void>): Promise<void> {
  const temporary = `${path}.tmp-${process.pid}-${Date.now()}`;
  const handle = await open(temporary, 'w');
  try {
    for (const part of header) await handle.write(part);
    await write(handle);
    await handle.sync();
  } catch (error) {
    await handle.close();
    await rm(temporary, { force: true });
    throw error;
  }
  await handle.close();
  await rename(temporary, path);
}

/**
 * Writes tensors (keys sorted, as the reference writer does) and string metadata. Writes to
 * `<path>.tmp-<pid>` and renames, so readers never see a partial file.
 */
export async function writeSafetensors(
  path: string,
  tensors: Record<string, { shape: number[]; data: TensorData; dtype?: SafetensorsDType }>,
  metadata: Record<string, string> = {},
): Promise<void> {
  const names = Object.keys(tensors).sort();
  const layout = names.map((name) => {
    const tensor = tensors[name]!;
    const elements = tensor.shape.reduce((a, b) => a * b, 1);
    if (elements !== tensor.data.length) {
      throw new SafetensorsError(`tensor ${name}: shape ${JSON.stringify(tensor.shape)} needs ${elements} values, got ${tensor.data.length}`);
    }
    return { name, dtype: tensor.dtype ?? dtypeOf(tensor.data), shape: tensor.shape, byteLength: tensor.data.byteLength };
  });
  await writeThroughTemporary(path, encodeHeader(path, layout, metadata), async (handle) => {
    for (const name of names) {
      const data = tensors[name]!.data;
      await handle.write(new Uint8Array(data.buffer, data.byteOffset, data.byteLength));
    }
  });
}

/**
 * Writes to `path` the row-wise concatenation (along axis 0) of the same-named tensors of `sources`, in
 * order, with `metadata`: the file `writeSafetensors` would write for the concatenated tensors, byte for
 * byte, but copied `chunkBytes` at a time, so outputs far larger than memory (a million images' patch
 * tokens) can be joined. Every source must hold the same tensor names, dtypes and trailing dimensions.
 * One source is open at a time, so thousands of sources stay within the open-file limit.
 */
export async function concatSafetensors(path: string, sources: string[], metadata: Record<string, string>, options: { chunkBytes?: number } = {}): Promise<{ rows: number }> {
  if (!sources.length) throw new SafetensorsError(`concatSafetensors: no source files for ${path}`);
  const headers: Array<{ path: string; tensors: Map<string, TensorInfo> }> = [];
  for (const source of sources) {
    const file = await SafetensorsFile.open(source);
    headers.push({ path: source, tensors: new Map(file.names().map((name) => [name, file.info(name)])) });
    await file.close();
  }
  const layout = joinedLayout(headers);
  await writeThroughTemporary(path, encodeHeader(path, layout, metadata), async (handle) => {
    for (const { name } of layout) {
      for (const source of sources) {
        const file = await SafetensorsFile.open(source);
        try {
          for await (const chunk of file.chunks(name, options.chunkBytes)) await handle.write(chunk);
        } finally {
          await file.close();
        }
      }
    }
  });
  return { rows: layout[0]?.shape[0] ?? 0 };
}

/** The layout of the row-wise join of files with these headers, or an error naming the file that does not fit. */
function joinedLayout(headers: Array<{ path: string; tensors: Map<string, TensorInfo> }>): TensorLayout[] {
  const first = headers[0]!;
  return [...first.tensors.keys()].sort().map((name) => {
    const { dtype, shape } = first.tensors.get(name)!;
    let rows = 0;
    let byteLength = 0;
    for (const header of headers) {
      const info = header.tensors.get(name);
      if (!info || info.dtype !== dtype || JSON.stringify(info.shape.slice(1)) !== JSON.stringify(shape.slice(1)) || header.tensors.size !== first.tensors.size) {
        throw new SafetensorsError(`cannot join ${header.path} to ${first.path}: tensor '${name}' is ${info ? `${info.dtype} ${JSON.stringify(info.shape)}` : 'missing'}, not ${dtype} [n, ${shape.slice(1).join(', ')}]`);
      }
      rows += info.shape[0]!;
      byteLength += info.dataOffsets[1] - info.dataOffsets[0];
    }
    return { name, dtype, shape: [rows, ...shape.slice(1)], byteLength };
  });
}

/** IEEE half → float32. */
function halfToFloat(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const exponent = (h >> 10) & 0x1f;
  const fraction = h & 0x3ff;
  if (exponent === 0) return sign * 2 ** -14 * (fraction / 1024);
  if (exponent === 0x1f) return fraction ? Number.NaN : sign * Number.POSITIVE_INFINITY;
  return sign * 2 ** (exponent - 15) * (1 + fraction / 1024);
}

function toFloat32(dtype: SafetensorsDType, bytes: Buffer, where: string): Float32Array {
  const buffer = bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength);
  switch (dtype) {
    case 'F32':
      return new Float32Array(buffer);
    case 'F64':
      return Float32Array.from(new Float64Array(buffer));
    case 'F16': {
      const halves = new Uint16Array(buffer);
      const out = new Float32Array(halves.length);
      for (let i = 0; i < halves.length; i++) out[i] = halfToFloat(halves[i]!);
      return out;
    }
    case 'BF16': {
      // bfloat16 is the top 16 bits of a float32.
      const halves = new Uint16Array(buffer);
      const words = new Uint32Array(halves.length);
      for (let i = 0; i < halves.length; i++) words[i] = halves[i]! << 16;
      return new Float32Array(words.buffer);
    }
    default:
      throw new SafetensorsError(`${where}: dtype ${dtype} is not a floating-point type`);
  }
}

/**
 * Synchronous reader, for code that must build a model inside a synchronous DI factory (e.g. the CLIP
 * encoder component). Same checks and same one-tensor-at-a-time reads as `SafetensorsFile`.
 */
export class SafetensorsFileSync extends SafetensorsIndex {
  private constructor(
    path: string,
    private fd: number | undefined,
    tensors: Map<string, TensorInfo>,
    metadata: Record<string, string>,
    dataStart: number,
  ) {
    super(path, tensors, metadata, dataStart);
  }

  static open(path: string): SafetensorsFileSync {
    let fd: number;
    try {
      fd = openSync(path, 'r');
    } catch (error) {
      throw new SafetensorsError(`cannot open safetensors file ${path}: ${(error as Error).message}`);
    }
    try {
      const { size } = fstatSync(fd);
      if (size < 8) throw new SafetensorsError(`${path} is not a safetensors file (only ${size} bytes)`);
      const lengthBytes = Buffer.alloc(8);
      readSync(fd, lengthBytes, 0, 8, 0);
      const headerLength = headerLengthOf(lengthBytes, size, path);
      const headerBytes = Buffer.alloc(headerLength);
      readSync(fd, headerBytes, 0, headerLength, 8);
      const { tensors, metadata } = parseHeader(headerBytes, size - 8 - headerLength, path);
      return new SafetensorsFileSync(path, fd, tensors, metadata, 8 + headerLength);
    } catch (error) {
      closeSync(fd);
      throw error;
    }
  }

  readRaw(name: string): { info: TensorInfo; bytes: Buffer } {
    if (this.fd === undefined) throw new SafetensorsError(`${this.path} is closed`);
    const info = this.info(name);
    const [begin, end] = info.dataOffsets;
    const bytes = Buffer.alloc(end - begin);
    if (bytes.length > 0) readSync(this.fd, bytes, 0, bytes.length, this.dataStart + begin);
    return { info, bytes };
  }

  readFloat32(name: string): { shape: number[]; data: Float32Array } {
    const { info, bytes } = this.readRaw(name);
    return { shape: info.shape, data: toFloat32(info.dtype, bytes, `${this.path}:${name}`) };
  }

  close(): void {
    if (this.fd !== undefined) closeSync(this.fd);
    this.fd = undefined;
  }
}

/** The header length from the first 8 bytes, checked against the file size. */
function headerLengthOf(lengthBytes: Buffer, size: number, path: string): number {
  const headerLength = Number(lengthBytes.readBigUInt64LE(0));
  if (headerLength > MAX_HEADER_BYTES || 8 + headerLength > size) {
    throw new SafetensorsError(`${path} is not a safetensors file (header length ${headerLength} does not fit a ${size}-byte file)`);
  }
  return headerLength;
}

function parseHeader(headerBytes: Buffer, dataLength: number, path: string): { tensors: Map<string, TensorInfo>; metadata: Record<string, string> } {
  let header: Record<string, unknown>;
  try {
    header = JSON.parse(headerBytes.toString('utf8')) as Record<string, unknown>;
  } catch {
    throw new SafetensorsError(`${path} has a corrupt safetensors header (not JSON)`);
  }
  const tensors = new Map<string, TensorInfo>();
  let metadata: Record<string, string> = {};
  for (const [name, raw] of Object.entries(header)) {
    if (name === '__metadata__') {
      metadata = (raw ?? {}) as Record<string, string>;
      continue;
    }
    const entry = raw as { dtype: SafetensorsDType; shape: number[]; data_offsets: [number, number] };
    const bytes = BYTES_PER_ELEMENT[entry.dtype];
    if (bytes === undefined) throw new SafetensorsError(`${path}: tensor ${name} has unsupported dtype ${entry.dtype}`);
    const [begin, end] = entry.data_offsets;
    const elements = entry.shape.reduce((a, b) => a * b, 1);
    if (end - begin !== elements * bytes || end > dataLength || begin < 0) {
      throw new SafetensorsError(
        `${path}: tensor ${name} (${entry.dtype} ${JSON.stringify(entry.shape)}) has byte range [${begin}, ${end}) ` +
          `that does not match its shape or the file size; the file is truncated or corrupt`,
      );
    }
    tensors.set(name, { dtype: entry.dtype, shape: entry.shape, dataOffsets: [begin, end] });
  }
  return { tensors, metadata };
}
