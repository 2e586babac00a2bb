/**
 * What `npm pack` would publish for each @dfd package: built JS, type declarations, README, LICENSE
 * (and core's bin shim) — nothing else — and every `exports`/`bin` target is inside the package.
 * Runs after `npm run build` (the `pretest` script).
 */
import { execFileSync } from 'node:child_process';
import { readFileSync, readdirSync } from 'node:fs';
import { describe, expect, test } from 'vitest';

const packages = readdirSync(new URL('../packages/', import.meta.url));

describe.each(packages)('npm pack @dfd/%s', (dir) => {
  test('contains only built JS, types, README, LICENSE and package.json', () => {
    const manifest = JSON.parse(readFileSync(new URL(`../packages/${dir}/package.json`, import.meta.url), 'utf8'));
    const out = execFileSync('npm', ['pack', '--dry-run', '--json', '--ignore-scripts', '-w', manifest.name], {
      cwd: new URL('..', import.meta.url),
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'ignore'],
    });
    const files: string[] = JSON.parse(out)[0].files.map((f: { path: string }) => f.path);
    const unexpected = files.filter((f) => !/^dist\/.*\.(js|d\.ts)$/.test(f) && !['README.md', 'LICENSE', 'package.json', 'bin/dfd.js'].includes(f));
    expect(unexpected).toEqual([]);
    expect(files).toContain('README.md');
    expect(files).toContain('LICENSE');
    expect(files.some((f) => /(^|\/)test\/|\.test\.|\.tsbuildinfo$/.test(f))).toBe(false);
    const entry = manifest.exports['.'];
    for (const target of [entry.types, entry.default]) expect(files).toContain(target.replace(/^\.\//, ''));
    for (const target of Object.values(manifest.bin ?? {}) as string[]) expect(files).toContain(target.replace(/^\.\//, ''));
    expect(manifest.license).toBe('MIT');
    if (dir !== 'core') expect(manifest.peerDependencies['@dfd/core']).toBeDefined();
  });
});
