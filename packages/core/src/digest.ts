/**
 * SHA-256 of a file as lowercase hex: read whole when small (an image: one read, no stream machinery),
 * streamed in 4 MiB chunks when large (model weights run to gigabytes).
 */
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { readFile, stat } from 'node:fs/promises';

const CHUNK_BYTES = 1 << 22;

export async function sha256File(path: string): Promise<string> {
  const hash = createHash('sha256');
  if ((await stat(path)).size <= CHUNK_BYTES) return hash.update(await readFile(path)).digest('hex');
  for await (const chunk of createReadStream(path, { highWaterMark: CHUNK_BYTES })) hash.update(chunk as Buffer);
  return hash.digest('hex');
}
