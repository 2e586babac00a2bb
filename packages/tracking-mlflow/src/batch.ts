/**
 * Splits one logical log-batch into requests within the server's limits: ≤ 1000 metrics, ≤ 100 params,
 * ≤ 100 tags, ≤ 1000 entities and ≤ 1 MB of JSON per request. Order is kept (metrics append in order).
 */
import { LIMITS } from './limits.js';
import type { KeyValue, LogBatchPayload, Metric } from './types.js';

export interface ChunkLimits {
  metrics: number;
  params: number;
  tags: number;
  entities: number;
  bytes: number;
}

export const DEFAULT_CHUNK_LIMITS: ChunkLimits = {
  metrics: LIMITS.batchMetrics,
  params: LIMITS.batchParams,
  tags: LIMITS.batchTags,
  entities: LIMITS.batchEntities,
  // The envelope (`{"run_id":"...","metrics":[...],...}`) adds well under 1 kB; keep 10 kB to spare.
  bytes: LIMITS.batchBytes - 10_000,
};

const byteLength = (item: unknown) => Buffer.byteLength(JSON.stringify(item), 'utf8') + 1; // + the comma

export function chunkBatch(batch: LogBatchPayload, limits: ChunkLimits = DEFAULT_CHUNK_LIMITS): LogBatchPayload[] {
  const chunks: LogBatchPayload[] = [];
  let current: { metrics: Metric[]; params: KeyValue[]; tags: KeyValue[] } = { metrics: [], params: [], tags: [] };
  let bytes = 0;
  const flush = () => {
    if (current.metrics.length + current.params.length + current.tags.length === 0) return;
    const chunk: LogBatchPayload = {};
    if (current.metrics.length) chunk.metrics = current.metrics;
    if (current.params.length) chunk.params = current.params;
    if (current.tags.length) chunk.tags = current.tags;
    chunks.push(chunk);
    current = { metrics: [], params: [], tags: [] };
    bytes = 0;
  };
  const add = <K extends 'metrics' | 'params' | 'tags'>(kind: K, item: (typeof current)[K][number], max: number) => {
    const size = byteLength(item);
    if (size > limits.bytes) throw new Error(`one ${kind.slice(0, -1)} (${size} bytes) exceeds the ${limits.bytes}-byte request limit`);
    const entities = current.metrics.length + current.params.length + current.tags.length;
    if (current[kind].length >= max || entities >= limits.entities || bytes + size > limits.bytes) flush();
    (current[kind] as unknown[]).push(item);
    bytes += size;
  };
  // Params first: they are immutable and small, and the UI shows them from the first request on.
  for (const param of batch.params ?? []) add('params', param, limits.params);
  for (const tag of batch.tags ?? []) add('tags', tag, limits.tags);
  for (const metric of batch.metrics ?? []) add('metrics', metric, limits.metrics);
  flush();
  return chunks;
}
