import { describe, expect, test } from 'vitest';
import { selectBackend, tf } from '@dfd/core';

describe('backend picker', () => {
  test('falls back to wasm when tfjs-node and tfjs-node-gpu are absent', async () => {
    const attempted: string[] = [];
    // A loader that behaves as Node does when a package is not installed, and loads the rest for real.
    const loader = async (specifier: string) => {
      attempted.push(specifier);
      if (specifier.startsWith('@tensorflow/tfjs-node')) {
        throw Object.assign(new Error(`Cannot find package '${specifier}'`), { code: 'ERR_MODULE_NOT_FOUND' });
      }
      return import(specifier);
    };
    const selection = await selectBackend('auto', loader);
    expect(attempted).toEqual(['@tensorflow/tfjs-node-gpu', '@tensorflow/tfjs-node', '@tensorflow/tfjs-backend-wasm']);
    expect(selection.name).toBe('wasm');
    expect(tf.getBackend()).toBe('wasm');
    expect(selection.tried.map((t) => t.name)).toEqual(['@tensorflow/tfjs-node-gpu', '@tensorflow/tfjs-node', 'wasm']);
    // And it computes: the wasm backend really runs a matmul.
    expect(Array.from(tf.matMul(tf.tensor2d([[1, 2]]), tf.tensor2d([[3], [4]])).dataSync())).toEqual([11]);
  });

  test('on this machine, auto detection without tfjs-node installed picks wasm', async () => {
    const selection = await selectBackend('auto');
    expect(selection.name).toBe('wasm');
    expect(selection.tried[0]).toEqual({ name: '@tensorflow/tfjs-node-gpu', outcome: 'not installed' });
  });

  test('an explicit tensorflow request without tfjs-node is a clear error', async () => {
    await expect(selectBackend('tensorflow')).rejects.toThrow(/Install one, or use DFD_BACKEND=wasm/);
  });

  test('cpu can be forced and unknown names are rejected', async () => {
    expect((await selectBackend('cpu')).name).toBe('cpu');
    await expect(selectBackend('gpu' as never)).rejects.toThrow(/unknown backend 'gpu'/);
  });
});
