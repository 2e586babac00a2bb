/** A small `--flag value` parser for the encode command (no dependency needed for a handful of flags). */
import { UsageError } from '@dfd/core';

export interface FlagSpec {
  /** Flags that take a value. */
  values: string[];
  /** Boolean flags. */
  booleans: string[];
}

export function parseFlags(args: string[], spec: FlagSpec): { values: Map<string, string>; booleans: Set<string> } {
  const values = new Map<string, string>();
  const booleans = new Set<string>();
  for (let i = 0; i < args.length; i++) {
    const arg = args[i]!;
    if (!arg.startsWith('--')) throw new UsageError(`unexpected argument '${arg}'`);
    const [name, inline] = arg.slice(2).split(/=(.*)/s, 2) as [string, string | undefined];
    if (spec.booleans.includes(name)) {
      booleans.add(name);
    } else if (spec.values.includes(name)) {
      const value = inline ?? args[++i];
      if (value === undefined || (inline === undefined && value.startsWith('--'))) throw new UsageError(`--${name} needs a value`);
      values.set(name, value);
    } else {
      throw new UsageError(`unknown option --${name}; options: ${[...spec.values, ...spec.booleans].map((f) => `--${f}`).join(', ')}`);
    }
  }
  return { values, booleans };
}

export function positiveInt(value: string | undefined, name: string, fallback: number): number {
  if (value === undefined) return fallback;
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1) throw new UsageError(`--${name} must be a positive integer, got '${value}'`);
  return n;
}
