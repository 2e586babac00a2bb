/** The pure parts: config flattening, key and value limits, chunking, backoff, events.jsonl reading. */
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import {
  backoffDelay,
  chunkBatch,
  flattenConfig,
  fromWireValue,
  parseRetryAfter,
  prepareParams,
  readEventsFile,
  sanitizeKey,
  toWireValue,
  truncateValue,
} from '@dfd/tracking-mlflow';

describe('values', () => {
  it('flattens a resolved config to a.b.c params; arrays of objects by index, arrays of scalars as JSON', () => {
    expect(
      flattenConfig({ seed: 1, trainer: { optimizer: { type: 'sgd', lr: 0.002 } }, enhancers: [{ use: 'egre', config: {} }], subsets: ['a', 'b'], none: null }),
    ).toEqual({
      seed: '1',
      'trainer.optimizer.type': 'sgd',
      'trainer.optimizer.lr': '0.002',
      'enhancers.0.use': 'egre',
      'enhancers.0.config': '{}',
      subsets: '["a","b"]',
      none: 'null',
    });
  });

  it('makes keys valid for MLflow and keeps colliding keys apart', () => {
    expect(sanitizeKey('val/heygen/auc')).toBe('val/heygen/auc');
    expect(sanitizeKey('a:b(c)')).toBe('a_b_c_');
    expect(sanitizeKey('/lead//x/../y')).toBe('lead/x/__/y');
    const long = sanitizeKey('k'.repeat(400));
    expect(long).toHaveLength(250);
    expect(long).not.toBe(sanitizeKey(`${'k'.repeat(399)}j`));
    const { params } = prepareParams({ 'a:b': '1', 'a_b': '2' });
    expect(new Set(params.map((p) => p.key)).size).toBe(2);
  });

  it('truncates on the client with a hash suffix', () => {
    const cut = truncateValue('x'.repeat(7000), 6000);
    expect(cut.truncated).toBe(true);
    expect(cut.value).toHaveLength(6000);
    expect(cut.value).toMatch(/\.\.\.\[sha256:[0-9a-f]{8}\]$/);
    expect(truncateValue('short', 6000)).toEqual({ value: 'short', truncated: false });
  });

  it('encodes non-finite metric values as protobuf JSON strings and reads them back', () => {
    expect([NaN, Infinity, -Infinity, 1.5].map(toWireValue)).toEqual(['NaN', 'Infinity', '-Infinity', 1.5]);
    expect(['NaN', 'Infinity', '-Infinity', 2].map(fromWireValue)).toEqual([NaN, Infinity, -Infinity, 2]);
  });
});

describe('chunkBatch', () => {
  it('respects every limit and keeps order', () => {
    const metrics = Array.from({ length: 2345 }, (_, i) => ({ key: 'm', value: i, timestamp: i, step: i }));
    const params = Array.from({ length: 250 }, (_, i) => ({ key: `p${i}`, value: 'v' }));
    const tags = Array.from({ length: 120 }, (_, i) => ({ key: `t${i}`, value: 'v' }));
    const chunks = chunkBatch({ metrics, params, tags });
    for (const chunk of chunks) {
      const sizes = [chunk.metrics?.length ?? 0, chunk.params?.length ?? 0, chunk.tags?.length ?? 0];
      expect(sizes[0]).toBeLessThanOrEqual(1000);
      expect(sizes[1]).toBeLessThanOrEqual(100);
      expect(sizes[2]).toBeLessThanOrEqual(100);
      expect(sizes[0]! + sizes[1]! + sizes[2]!).toBeLessThanOrEqual(1000);
      expect(Buffer.byteLength(JSON.stringify(chunk))).toBeLessThan(1_000_000);
    }
    expect(chunks.flatMap((c) => c.metrics ?? []).map((m) => m.step)).toEqual(metrics.map((m) => m.step));
    expect(chunks.flatMap((c) => c.params ?? [])).toEqual(params);
    expect(chunks.flatMap((c) => c.tags ?? [])).toEqual(tags);
  });

  it('splits by bytes when values are large', () => {
    const params = Array.from({ length: 100 }, (_, i) => ({ key: `p${i}`, value: 'x'.repeat(6000) }));
    const tags = Array.from({ length: 100 }, (_, i) => ({ key: `t${i}`, value: 'y'.repeat(5000) }));
    const chunks = chunkBatch({ params, tags });
    expect(chunks.length).toBe(2);
    for (const chunk of chunks) expect(Buffer.byteLength(JSON.stringify(chunk))).toBeLessThan(1_000_000);
  });
});

describe('retry timing', () => {
  it('backs off exponentially with jitter, capped', () => {
    const retry = { maxRetries: 5, backoffMs: 100, maxBackoffMs: 1000, jitter: 1 };
    expect(backoffDelay(retry, 0, () => 0)).toBe(100);
    expect(backoffDelay(retry, 2, () => 0)).toBe(400);
    expect(backoffDelay(retry, 2, () => 0.5)).toBe(600);
    expect(backoffDelay(retry, 10, () => 1)).toBe(1000);
  });

  it('reads Retry-After as seconds or an HTTP date', () => {
    expect(parseRetryAfter('2')).toBe(2000);
    expect(parseRetryAfter(new Date(10_000).toUTCString(), 4000)).toBe(6000);
    expect(parseRetryAfter(null)).toBeUndefined();
    expect(parseRetryAfter('soon')).toBeUndefined();
  });
});

describe('readEventsFile', () => {
  it('ignores a torn last line and names the file and line of a bad one', () => {
    const dir = mkdtempSync(join(tmpdir(), 'dfd-events-'));
    writeFileSync(join(dir, 'events.jsonl'), '{"type":"run-start","time":1}\n{"type":"step","time":2}\n{"type":"st');
    expect(readEventsFile(dir).map((e) => e.type)).toEqual(['run-start', 'step']);
    writeFileSync(join(dir, 'events.jsonl'), '{"type":"run-start","time":1}\nnot json\n{"type":"end","time":3}\n');
    expect(() => readEventsFile(dir)).toThrow(/events.jsonl: line 2 is not a run event/);
    expect(() => readEventsFile(join(dir, 'nope'), { required: true })).toThrow(/not found: pass a run directory/);
  });
});
