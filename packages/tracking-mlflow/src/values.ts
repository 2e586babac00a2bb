/**
 * Turning our values into what MLflow accepts: keys matching `^[/\w.\- ]*$` within 250 characters, values
 * within the param/tag limits (truncated on the client with a hash suffix, never left to the server), a
 * nested config flattened to `a.b.c` params, and non-finite metric values encoded as protobuf-JSON strings.
 */
import { createHash } from 'node:crypto';
import { LIMITS } from './limits.js';

export function shortHash(value: string, length = 8): string {
  return createHash('sha256').update(value).digest('hex').slice(0, length);
}

/**
 * Cuts `value` to `max` characters, ending in `…[sha256:xxxxxxxx]` so two long values that share a prefix
 * stay distinguishable and the full value can be matched against the artifact that keeps it.
 */
export function truncateValue(value: string, max: number): { value: string; truncated: boolean } {
  if (value.length <= max) return { value, truncated: false };
  const suffix = `...[sha256:${shortHash(value)}]`;
  return { value: value.slice(0, max - suffix.length) + suffix, truncated: true };
}

/** A valid MLflow key: disallowed characters become `_`, path tricks are flattened, long keys are hashed. */
export function sanitizeKey(key: string): string {
  let clean = key.replace(/[^/\w.\- ]/g, '_');
  // Keys must not normalise to a different path: no `..` segments, no leading `/`, no `//`.
  clean = clean.replace(/\/{2,}/g, '/').replace(/^\/+/, '').replace(/(^|\/)\.\.(?=\/|$)/g, '$1__');
  if (clean === '') clean = '_';
  if (clean.length > LIMITS.keyLength) {
    const suffix = `_${shortHash(key)}`;
    clean = clean.slice(0, LIMITS.keyLength - suffix.length) + suffix;
  }
  return clean;
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function stringify(value: unknown): string {
  if (typeof value === 'string') return value;
  if (value === undefined) return 'undefined';
  return JSON.stringify(value) ?? String(value);
}

/**
 * Flattens a resolved config into `a.b.c` → string. Objects recurse; arrays of objects recurse by index
 * (`enhancers.0.use`), so each component setting is its own param; arrays of scalars stay one JSON value.
 */
export function flattenConfig(config: Record<string, unknown>, prefix = ''): Record<string, string> {
  const out: Record<string, string> = {};
  const visit = (value: unknown, key: string) => {
    if (isPlainObject(value)) {
      const entries = Object.entries(value);
      if (entries.length === 0) {
        if (key) out[key] = '{}';
        return;
      }
      for (const [k, v] of entries) visit(v, key ? `${key}.${k}` : k);
    } else if (Array.isArray(value) && value.some((item) => isPlainObject(item) || Array.isArray(item))) {
      value.forEach((item, index) => visit(item, `${key}.${index}`));
    } else if (key) {
      out[key] = stringify(value);
    }
  };
  visit(config, prefix);
  return out;
}

export interface PreparedParams {
  params: Array<{ key: string; value: string }>;
  /** Params whose value was cut: key → full value (uploaded as an artifact). */
  truncated: Record<string, string>;
}

/** Sanitised keys (collisions disambiguated), values cut to 6000 characters. */
export function prepareParams(flat: Record<string, string>): PreparedParams {
  const params: PreparedParams['params'] = [];
  const truncated: Record<string, string> = {};
  const used = new Set<string>();
  for (const [rawKey, rawValue] of Object.entries(flat)) {
    let key = sanitizeKey(rawKey);
    if (used.has(key)) key = sanitizeKey(`${key}_${shortHash(rawKey, 6)}`);
    used.add(key);
    const { value, truncated: cut } = truncateValue(rawValue, LIMITS.paramValue);
    if (cut) truncated[key] = rawValue;
    params.push({ key, value });
  }
  return { params, truncated };
}

export function prepareTag(key: string, value: string): { key: string; value: string } {
  return { key: sanitizeKey(key), value: truncateValue(value, LIMITS.tagValue).value };
}

/** A metric value as MLflow's protobuf JSON accepts it: finite doubles as numbers, the rest as strings. */
export type WireValue = number | 'NaN' | 'Infinity' | '-Infinity';

export function toWireValue(value: number): WireValue {
  if (Number.isNaN(value)) return 'NaN';
  if (value === Infinity) return 'Infinity';
  if (value === -Infinity) return '-Infinity';
  return value;
}

/** Reads a metric value back from the server (numbers, or the strings above). */
export function fromWireValue(value: unknown): number {
  if (typeof value === 'number') return value;
  if (value === 'NaN') return NaN;
  if (value === 'Infinity') return Infinity;
  if (value === '-Infinity') return -Infinity;
  if (value === null || value === undefined) return NaN;
  return Number(value);
}
