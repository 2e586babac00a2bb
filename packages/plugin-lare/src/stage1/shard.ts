/**
 * `--shard K/N`: image i belongs to shard `uint32(first 4 bytes of its SHA-256) mod N`. Keyed by content, so
 * the partition does not depend on the listing's order or paths, and it is balanced (SHA-256 is uniform).
 * K counts from 0 (a Slurm array `--array=0-(N-1)` passes its task id straight through).
 */
export interface Shard {
  index: number;
  count: number;
}

export class ShardError extends Error {
  override name = 'ShardError';
}

export function parseShard(text: string): Shard {
  const match = /^(\d+)\/(\d+)$/.exec(text.trim());
  if (!match) throw new ShardError(`--shard must be K/N (e.g. 3/16), got '${text}'`);
  const index = Number(match[1]);
  const count = Number(match[2]);
  if (count < 1 || index >= count) throw new ShardError(`--shard ${text}: K counts from 0 and must be below N (0/${count} .. ${count - 1}/${count})`);
  return { index, count };
}

export function shardOf(hash: string, count: number): number {
  return Number.parseInt(hash.slice(0, 8), 16) % count;
}

export function shardTag(shard: Shard): string {
  return `shard-${shard.index}-of-${shard.count}`;
}
