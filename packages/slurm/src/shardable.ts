/**
 * Commands that split over an array job. Each needs only two things of the real command: `--shard K/N`
 * (0-based K, the task id) and a merge that joins all N shard outputs into `--out`. Task K writes its own
 * shard output beside the final one (`<out>.shards/K-of-N...`), resumable, so a retried task continues.
 */
import { UsageError } from '@dfd/core';

export interface ShardableCommand {
  kind: 'encode' | 'lare-extract';
  /** The dfd words that run one shard, e.g. `['lare', 'extract']`. */
  words: string[];
  /** What follows `<out>.shards/K-of-N` in a shard's output (`.safetensors`, or nothing for a folder). */
  suffix: string;
  /** The dfd words of the merge. */
  merge(out: string, shardOuts: string[]): string[];
}

export const SHARDABLE: Record<ShardableCommand['kind'], ShardableCommand> = {
  encode: {
    kind: 'encode',
    words: ['encode'],
    suffix: '.safetensors',
    merge: (out, shards) => ['encode', 'merge', '--out', out, ...shards],
  },
  // `dfd lare extract --shard K/N --out DIR` and `dfd lare merge OUT SHARD...` (@dfd/plugin-lare).
  'lare-extract': {
    kind: 'lare-extract',
    words: ['lare', 'extract'],
    suffix: '',
    merge: (out, shards) => ['lare', 'merge', out, ...shards],
  },
};

/** Shard K's output beside the final one. */
export function shardOut(command: ShardableCommand, out: string, k: number | string, n: number): string {
  return `${out}.shards/${k}-of-${n}${command.suffix}`;
}

/** Takes `--out` out of the pass-through arguments (the launcher gives each task its own). */
export function extractOut(args: string[]): { out: string; rest: string[] } {
  const rest: string[] = [];
  let out: string | undefined;
  for (let i = 0; i < args.length; i++) {
    const arg = args[i]!;
    if (arg === '--shard' || arg.startsWith('--shard=')) throw new UsageError('do not pass --shard: each array task gets its own --shard K/N (use --shards N)');
    if (arg === '--out') {
      out = args[++i];
      if (out === undefined) throw new UsageError('--out needs a value');
    } else if (arg.startsWith('--out=')) {
      out = arg.slice('--out='.length);
    } else {
      rest.push(arg);
    }
  }
  if (!out) throw new UsageError('--out is required: the merged output (shards go to <out>.shards/)');
  return { out, rest };
}
