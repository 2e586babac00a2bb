/** One cache root for every package: DFD_CACHE_DIR, the older DFD_CACHE, or ~/.cache/dfd. */
import { homedir } from 'node:os';
import { join } from 'node:path';
import { expect, test } from 'vitest';
import { dfdCacheDir, predictExtrasCacheDir } from '@dfd/core';

test('DFD_CACHE_DIR moves every cache; DFD_CACHE is still read; the default is ~/.cache/dfd', () => {
  expect(dfdCacheDir({ DFD_CACHE_DIR: '/scratch/dfd' })).toBe('/scratch/dfd');
  expect(dfdCacheDir({ DFD_CACHE: '/scratch/old' })).toBe('/scratch/old');
  expect(dfdCacheDir({ DFD_CACHE_DIR: '/scratch/dfd', DFD_CACHE: '/scratch/old' })).toBe('/scratch/dfd');
  expect(dfdCacheDir({})).toBe(join(homedir(), '.cache', 'dfd'));
  expect(predictExtrasCacheDir({ DFD_CACHE_DIR: '/scratch/dfd' })).toBe('/scratch/dfd/predict-extras');
});
