/**
 * Reads selected members out of a zip file (a Python wheel) with Node's zlib, so the native-backend
 * installer needs no `unzip` tool. Only what wheels use is supported: stored or deflated members, with
 * sizes read from the central directory (zip64 extra fields included, since a TensorFlow wheel holds a
 * member close to half a gigabyte).
 */
import { createReadStream, createWriteStream, mkdirSync, openSync, readSync, closeSync, fstatSync, renameSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { createInflateRaw } from 'node:zlib';

export interface ZipMember {
  name: string;
  method: number;
  compressedSize: number;
  size: number;
  localHeaderOffset: number;
}

export class ZipError extends Error {
  override name = 'ZipError';
}

function readAt(fd: number, position: number, length: number): Buffer {
  const buffer = Buffer.alloc(length);
  const read = readSync(fd, buffer, 0, length, position);
  return buffer.subarray(0, read);
}

/** Finds the end-of-central-directory record (and its zip64 twin) and returns the central directory span. */
function centralDirectory(fd: number, fileSize: number, path: string): { offset: number; size: number } {
  const tailLength = Math.min(fileSize, 65_557);
  const tail = readAt(fd, fileSize - tailLength, tailLength);
  const eocd = tail.lastIndexOf(Buffer.from([0x50, 0x4b, 0x05, 0x06]));
  if (eocd < 0) throw new ZipError(`${path} is not a zip file (no end of central directory): a truncated download? Delete it and retry.`);
  let size = tail.readUInt32LE(eocd + 12);
  let offset = tail.readUInt32LE(eocd + 16);
  if (offset === 0xffffffff || size === 0xffffffff) {
    const locator = eocd - 20;
    if (locator < 0 || tail.readUInt32LE(locator) !== 0x07064b50) throw new ZipError(`${path}: zip64 locator missing`);
    const record = readAt(fd, Number(tail.readBigUInt64LE(locator + 8)), 56);
    size = Number(record.readBigUInt64LE(40));
    offset = Number(record.readBigUInt64LE(48));
  }
  return { offset, size };
}

/** Applies a zip64 extra field to the sizes/offset that were saturated at 0xffffffff. */
function applyZip64(extra: Buffer, member: ZipMember): void {
  for (let at = 0; at + 4 <= extra.length; ) {
    const id = extra.readUInt16LE(at);
    const length = extra.readUInt16LE(at + 2);
    if (id === 0x0001) {
      let field = at + 4;
      const next = (): number => {
        const value = Number(extra.readBigUInt64LE(field));
        field += 8;
        return value;
      };
      if (member.size === 0xffffffff) member.size = next();
      if (member.compressedSize === 0xffffffff) member.compressedSize = next();
      if (member.localHeaderOffset === 0xffffffff) member.localHeaderOffset = next();
      return;
    }
    at += 4 + length;
  }
}

/** Lists the members of a zip file from its central directory. */
export function listZip(path: string): ZipMember[] {
  const fd = openSync(path, 'r');
  try {
    const { offset, size } = centralDirectory(fd, fstatSync(fd).size, path);
    const directory = readAt(fd, offset, size);
    const members: ZipMember[] = [];
    for (let at = 0; at + 46 <= directory.length; ) {
      if (directory.readUInt32LE(at) !== 0x02014b50) throw new ZipError(`${path}: corrupt central directory at entry ${members.length}`);
      const nameLength = directory.readUInt16LE(at + 28);
      const extraLength = directory.readUInt16LE(at + 30);
      const commentLength = directory.readUInt16LE(at + 32);
      const member: ZipMember = {
        method: directory.readUInt16LE(at + 10),
        compressedSize: directory.readUInt32LE(at + 20),
        size: directory.readUInt32LE(at + 24),
        localHeaderOffset: directory.readUInt32LE(at + 42),
        name: directory.toString('utf8', at + 46, at + 46 + nameLength),
      };
      applyZip64(directory.subarray(at + 46 + nameLength, at + 46 + nameLength + extraLength), member);
      members.push(member);
      at += 46 + nameLength + extraLength + commentLength;
    }
    return members;
  } finally {
    closeSync(fd);
  }
}

/**
 * Extracts `member` of `zipPath` to `destination` (streamed, written to a temporary name and renamed, so
 * an interrupted extraction never leaves a half file under the final name).
 */
export async function extractMember(zipPath: string, member: ZipMember, destination: string): Promise<void> {
  if (member.method !== 0 && member.method !== 8) {
    throw new ZipError(`${zipPath}: ${member.name} uses compression method ${member.method} (only stored and deflate are supported)`);
  }
  const fd = openSync(zipPath, 'r');
  let dataStart: number;
  try {
    const header = readAt(fd, member.localHeaderOffset, 30);
    if (header.readUInt32LE(0) !== 0x04034b50) throw new ZipError(`${zipPath}: bad local header for ${member.name}`);
    dataStart = member.localHeaderOffset + 30 + header.readUInt16LE(26) + header.readUInt16LE(28);
  } finally {
    closeSync(fd);
  }
  mkdirSync(dirname(destination), { recursive: true });
  const partial = join(dirname(destination), `.${process.pid}.partial`);
  if (member.compressedSize === 0) {
    writeFileSync(partial, '');
  } else {
    const input = createReadStream(zipPath, { start: dataStart, end: dataStart + member.compressedSize - 1 });
    if (member.method === 8) await pipeline(input, createInflateRaw(), createWriteStream(partial));
    else await pipeline(input, createWriteStream(partial));
  }
  renameSync(partial, destination);
}
