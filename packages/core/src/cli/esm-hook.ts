/**
 * A module-loader hook (node:module `register`) that loads TypeScript experiment files as ES modules
 * whatever the nearest package.json says. Without it, a `.ts` file in a folder whose package.json lacks
 * `"type": "module"` (or in none) is compiled as CommonJS, and its `import '@dfd/core'` fails with
 * "Cannot require() ES Module ... in a cycle". @dfd is ESM only, so experiment code is too.
 *
 * It covers `.ts`/`.tsx` files outside node_modules (the experiment and the helpers it imports); packages
 * keep their own format.
 */
import type { LoadHook, ResolveHook } from 'node:module';

const TYPESCRIPT = /\.tsx?$/;

function forced(url: string): boolean {
  if (!url.startsWith('file:')) return false;
  const path = new URL(url).pathname;
  return TYPESCRIPT.test(path) && !path.includes('/node_modules/');
}

export const resolve: ResolveHook = async (specifier, context, nextResolve) => {
  const resolved = await nextResolve(specifier, context);
  return forced(resolved.url) ? { ...resolved, format: 'module' } : resolved;
};

export const load: LoadHook = async (url, context, nextLoad) => {
  if (!forced(url)) return nextLoad(url, context);
  const loaded = await nextLoad(url, { ...context, format: 'module' });
  return { ...loaded, format: 'module' };
};
