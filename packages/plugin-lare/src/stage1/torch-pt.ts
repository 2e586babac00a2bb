/**
 * Reads a `.pt` file written by `torch.save(tensor)` (the zip format, PyTorch ≥ 1.6) when it holds exactly
 * one floating-point tensor — LaRE's and CLaRE's map files. The pickle is *interpreted*, never executed: a
 * small stack machine understands the opcodes `torch.save` emits and only two callables, as data
 * constructors (`torch._utils._rebuild_tensor_v2` and `collections.OrderedDict`); anything else is refused
 * with a message, as is any object that is not a single float tensor (a dict, a model, an int tensor).
 */
import { inflateRawSync } from 'node:zlib';

export class TorchPtError extends Error {
  override name = 'TorchPtError';
}

interface ZipEntry {
  name: string;
  method: number;
  compressedSize: number;
  offset: number;
}

function zipEntries(buf: Buffer, where: string): Map<string, ZipEntry> {
  // End of central directory: signature 0x06054b50 within the last 64 KiB + 22 bytes.
  let eocd = -1;
  for (let i = buf.length - 22; i >= Math.max(0, buf.length - 65557); i--) {
    if (buf.readUInt32LE(i) === 0x06054b50) {
      eocd = i;
      break;
    }
  }
  if (eocd < 0) {
    const legacy = buf.length > 2 && buf[0] === 0x80;
    throw new TorchPtError(
      legacy
        ? `${where} uses torch.save's legacy (pre-1.6, non-zip) format; re-save it with a current torch (torch.save(torch.load(f), f)) and import again`
        : `${where} is not a torch.save file (no zip directory)`,
    );
  }
  let count = buf.readUInt16LE(eocd + 10);
  let dirOffset = buf.readUInt32LE(eocd + 16);
  if (dirOffset === 0xffffffff || count === 0xffff) {
    // ZIP64: locator just before the EOCD points at the ZIP64 EOCD record.
    const locator = eocd - 20;
    if (locator < 0 || buf.readUInt32LE(locator) !== 0x07064b50) throw new TorchPtError(`${where}: damaged zip64 directory`);
    const z64 = Number(buf.readBigUInt64LE(locator + 8));
    count = Number(buf.readBigUInt64LE(z64 + 32));
    dirOffset = Number(buf.readBigUInt64LE(z64 + 48));
  }
  const entries = new Map<string, ZipEntry>();
  let p = dirOffset;
  for (let i = 0; i < count; i++) {
    if (buf.readUInt32LE(p) !== 0x02014b50) throw new TorchPtError(`${where}: damaged zip directory`);
    const method = buf.readUInt16LE(p + 10);
    let compressedSize = buf.readUInt32LE(p + 20);
    const nameLength = buf.readUInt16LE(p + 28);
    const extraLength = buf.readUInt16LE(p + 30);
    const commentLength = buf.readUInt16LE(p + 32);
    let offset = buf.readUInt32LE(p + 42);
    const name = buf.toString('utf8', p + 46, p + 46 + nameLength);
    // ZIP64 extra field (id 1) carries sizes/offset that overflowed 32 bits, in this order.
    let e = p + 46 + nameLength;
    const end = e + extraLength;
    while (e + 4 <= end) {
      const id = buf.readUInt16LE(e);
      const size = buf.readUInt16LE(e + 2);
      if (id === 1) {
        let q = e + 4;
        if (buf.readUInt32LE(p + 24) === 0xffffffff) q += 8;
        if (compressedSize === 0xffffffff) {
          compressedSize = Number(buf.readBigUInt64LE(q));
          q += 8;
        }
        if (offset === 0xffffffff) offset = Number(buf.readBigUInt64LE(q));
      }
      e += 4 + size;
    }
    entries.set(name, { name, method, compressedSize, offset });
    p = end + commentLength;
  }
  return entries;
}

function entryData(buf: Buffer, entry: ZipEntry): Buffer {
  const p = entry.offset;
  const start = p + 30 + buf.readUInt16LE(p + 26) + buf.readUInt16LE(p + 28);
  const raw = buf.subarray(start, start + entry.compressedSize);
  return entry.method === 8 ? inflateRawSync(raw) : raw;
}

const FLOAT_STORAGES: Record<string, { bytes: number; read: (b: Buffer, i: number) => number }> = {
  FloatStorage: { bytes: 4, read: (b, i) => b.readFloatLE(i * 4) },
  DoubleStorage: { bytes: 8, read: (b, i) => b.readDoubleLE(i * 8) },
  HalfStorage: { bytes: 2, read: (b, i) => halfToFloat(b.readUInt16LE(i * 2)) },
  BFloat16Storage: { bytes: 2, read: (b, i) => new Float32Array(new Uint32Array([b.readUInt16LE(i * 2) << 16]).buffer)[0]! },
};

function halfToFloat(h: number): number {
  const s = h & 0x8000 ? -1 : 1;
  const e = (h >> 10) & 0x1f;
  const f = h & 0x3ff;
  if (e === 0) return s * 2 ** -14 * (f / 1024);
  if (e === 31) return f ? Number.NaN : s * Number.POSITIVE_INFINITY;
  return s * 2 ** (e - 15) * (1 + f / 1024);
}

class Global {
  constructor(readonly module: string, readonly name: string) {}
  get full(): string {
    return `${this.module}.${this.name}`;
  }
}
class StorageRef {
  constructor(readonly type: string, readonly key: string, readonly numel: number) {}
}
class TensorRef {
  constructor(readonly storage: StorageRef, readonly offset: number, readonly size: number[], readonly stride: number[]) {}
}
const MARK = Symbol('mark');
const ALLOWED = new Set(['torch._utils._rebuild_tensor_v2', 'collections.OrderedDict']);

/** Interprets torch.save's pickle (protocol 2) into plain values; refuses any callable outside ALLOWED. */
function unpickle(data: Buffer, where: string): unknown {
  const stack: unknown[] = [];
  const memo = new Map<number, unknown>();
  let p = 0;
  const popMark = (): unknown[] => {
    const at = stack.lastIndexOf(MARK);
    if (at < 0) throw new TorchPtError(`${where}: damaged pickle (no mark)`);
    const items = stack.splice(at);
    return items.slice(1);
  };
  const refuse = (what: string): never => {
    throw new TorchPtError(`${where} holds ${what}; only a single float tensor saved with torch.save(tensor) can be imported (no pickle is executed)`);
  };
  while (p < data.length) {
    const op = data[p++]!;
    switch (op) {
      case 0x80: p++; break; // PROTO
      case 0x95: p += 8; break; // FRAME
      case 0x63: { // GLOBAL "module\nname\n"
        const nl1 = data.indexOf(0x0a, p);
        const nl2 = data.indexOf(0x0a, nl1 + 1);
        stack.push(new Global(data.toString('utf8', p, nl1), data.toString('utf8', nl1 + 1, nl2)));
        p = nl2 + 1;
        break;
      }
      case 0x93: { const name = stack.pop() as string; const mod = stack.pop() as string; stack.push(new Global(mod, name)); break; } // STACK_GLOBAL
      case 0x58: { const n = data.readUInt32LE(p); p += 4; stack.push(data.toString('utf8', p, p + n)); p += n; break; } // BINUNICODE
      case 0x8c: { const n = data[p++]!; stack.push(data.toString('utf8', p, p + n)); p += n; break; } // SHORT_BINUNICODE
      case 0x4a: stack.push(data.readInt32LE(p)); p += 4; break; // BININT
      case 0x4b: stack.push(data[p++]); break; // BININT1
      case 0x4d: stack.push(data.readUInt16LE(p)); p += 2; break; // BININT2
      case 0x8a: { // LONG1
        const n = data[p++]!;
        let v = 0n;
        for (let i = n - 1; i >= 0; i--) v = (v << 8n) | BigInt(data[p + i]!);
        if (n && data[p + n - 1]! & 0x80) v -= 1n << BigInt(8 * n);
        stack.push(Number(v));
        p += n;
        break;
      }
      case 0x47: stack.push(data.readDoubleBE(p)); p += 8; break; // BINFLOAT
      case 0x28: stack.push(MARK); break; // MARK
      case 0x74: stack.push(popMark()); break; // TUPLE
      case 0x29: stack.push([]); break; // EMPTY_TUPLE
      case 0x85: stack.push([stack.pop()]); break; // TUPLE1
      case 0x86: { const b = stack.pop(); const a = stack.pop(); stack.push([a, b]); break; } // TUPLE2
      case 0x87: { const c = stack.pop(); const b = stack.pop(); const a = stack.pop(); stack.push([a, b, c]); break; } // TUPLE3
      case 0x4e: stack.push(null); break; // NONE
      case 0x88: stack.push(true); break; // NEWTRUE
      case 0x89: stack.push(false); break; // NEWFALSE
      case 0x7d: stack.push(new Map()); break; // EMPTY_DICT
      case 0x5d: stack.push([]); break; // EMPTY_LIST
      case 0x75: { // SETITEMS
        const items = popMark();
        const dict = stack[stack.length - 1];
        if (!(dict instanceof Map)) refuse('a malformed dictionary');
        for (let i = 0; i < items.length; i += 2) (dict as Map<unknown, unknown>).set(items[i], items[i + 1]);
        break;
      }
      case 0x73: { const v = stack.pop(); const k = stack.pop(); (stack[stack.length - 1] as Map<unknown, unknown>).set(k, v); break; } // SETITEM
      case 0x65: { const items = popMark(); (stack[stack.length - 1] as unknown[]).push(...items); break; } // APPENDS
      case 0x61: { const v = stack.pop(); (stack[stack.length - 1] as unknown[]).push(v); break; } // APPEND
      case 0x71: memo.set(data[p++]!, stack[stack.length - 1]); break; // BINPUT
      case 0x72: memo.set(data.readUInt32LE(p), stack[stack.length - 1]); p += 4; break; // LONG_BINPUT
      case 0x94: memo.set(memo.size, stack[stack.length - 1]); break; // MEMOIZE
      case 0x68: stack.push(memo.get(data[p++]!)); break; // BINGET
      case 0x6a: stack.push(memo.get(data.readUInt32LE(p))); p += 4; break; // LONG_BINGET
      case 0x51: { // BINPERSID: ('storage', <Storage class>, key, location, numel)
        const pid = stack.pop() as unknown[];
        if (!Array.isArray(pid) || pid[0] !== 'storage' || !(pid[1] instanceof Global)) refuse('an unknown persistent object');
        stack.push(new StorageRef((pid[1] as Global).name, String(pid[2]), Number(pid[4])));
        break;
      }
      case 0x52: { // REDUCE
        const args = stack.pop() as unknown[];
        const fn = stack.pop();
        if (!(fn instanceof Global) || !ALLOWED.has(fn.full)) refuse(`a call to ${fn instanceof Global ? fn.full : 'an unknown callable'}`);
        if ((fn as Global).name === 'OrderedDict') stack.push(new Map());
        else {
          const [storage, offset, size, stride] = args as [StorageRef, number, number[], number[]];
          if (!(storage instanceof StorageRef)) refuse('a tensor without storage');
          stack.push(new TensorRef(storage, offset, size, stride));
        }
        break;
      }
      case 0x62: stack.pop(); break; // BUILD (state of an OrderedDict / tensor: ignored)
      case 0x2e: return stack.pop(); // STOP
      default:
        throw new TorchPtError(`${where}: pickle opcode 0x${op.toString(16)} is not one torch.save(tensor) writes; only a single float tensor can be imported`);
    }
  }
  throw new TorchPtError(`${where}: the pickle has no STOP (truncated file?)`);
}

/** The tensor of a `torch.save(tensor)` file as float32, laid out contiguously (views and strides resolved). */
export function readTorchTensor(buf: Buffer, where: string): { shape: number[]; data: Float32Array } {
  const entries = zipEntries(buf, where);
  const pkl = [...entries.keys()].find((n) => n.endsWith('/data.pkl') || n === 'data.pkl');
  if (!pkl) throw new TorchPtError(`${where} has no data.pkl: not a torch.save file`);
  const prefix = pkl.slice(0, pkl.length - 'data.pkl'.length);
  const byteorder = entries.get(`${prefix}byteorder`);
  if (byteorder && entryData(buf, byteorder).toString().trim() !== 'little') throw new TorchPtError(`${where} was saved big-endian; re-save it on a little-endian machine`);
  let value: unknown;
  try {
    value = unpickle(entryData(buf, entries.get(pkl)!), where);
  } catch (error) {
    if (error instanceof TorchPtError) throw error;
    throw new TorchPtError(`${where}: damaged or unsupported pickle (${(error as Error).message}); only a single float tensor saved with torch.save can be imported`);
  }
  if (!(value instanceof TensorRef)) {
    const what = value instanceof Map ? 'a dict' : Array.isArray(value) ? 'a list or tuple' : `a ${typeof value}`;
    throw new TorchPtError(`${where} holds ${what}, not one tensor; save the map alone with torch.save(map_tensor)`);
  }
  const kind = FLOAT_STORAGES[value.storage.type];
  if (!kind) throw new TorchPtError(`${where} holds a ${value.storage.type.replace('Storage', '')} tensor; a LaRE map is floating point (float32/16/64, bfloat16)`);
  const storageEntry = entries.get(`${prefix}data/${value.storage.key}`);
  if (!storageEntry) throw new TorchPtError(`${where}: storage ${value.storage.key} is missing from the archive`);
  const storage = entryData(buf, storageEntry);
  const { size, stride, offset } = value;
  const numel = size.reduce((a, b) => a * b, 1);
  const out = new Float32Array(numel);
  const index = new Array<number>(size.length).fill(0);
  for (let i = 0; i < numel; i++) {
    let at = offset;
    for (let d = 0; d < size.length; d++) at += index[d]! * stride[d]!;
    if ((at + 1) * kind.bytes > storage.length) throw new TorchPtError(`${where}: the tensor reaches past its storage (damaged file)`);
    out[i] = kind.read(storage, at);
    for (let d = size.length - 1; d >= 0; d--) {
      if (++index[d]! < size[d]!) break;
      index[d] = 0;
    }
  }
  return { shape: [...size], data: out };
}
