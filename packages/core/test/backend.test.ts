/**
 * The backend picker's order (tfjs-node-gpu → tfjs-node → wasm → cpu) and its errors. Each test holds
 * whether or not the native backend is installed here: the loaders below simulate what is missing, and
 * the tests that use the real loader read what is installed before they assert.
 */
import { createRequire } from 'node:module';
import { describe, expect, test } from 'vitest';
import { cliMain, describeBackend, selectBackend, tf, type ModuleLoader } from '@dfd/core';
import { captureIo } from './support/capture-io.js';

const missing = (specifier: string) =>
  Object.assign(new Error(`Cannot find package '${specifier}'`), { code: 'ERR_MODULE_NOT_FOUND' });

/** A loader that behaves as Node does for packages in `absent` and loads the rest for real. */
function loaderWithout(absent: (specifier: string) => boolean, attempted: string[]): ModuleLoader {
  return async (specifier) => {
    attempted.push(specifier);
    if (absent(specifier)) throw missing(specifier);
    return import(specifier);
  };
}

function installed(pkg: string): boolean {
  try {
    // Resolved from core, as the picker does.
    createRequire(new URL('../src/backend.ts', import.meta.url)).resolve(pkg);
    return true;
  } catch {
    return false;
  }
}

const nativeInstalled = installed('@tensorflow/tfjs-node') || installed('@tensorflow/tfjs-node-gpu');

describe('backend picker', () => {
  test('without tfjs-node and tfjs-node-gpu, auto tries both, then selects wasm, which computes', async () => {
    const attempted: string[] = [];
    const selection = await selectBackend('auto', loaderWithout((s) => s.startsWith('@tensorflow/tfjs-node'), attempted));
    expect(attempted).toEqual(['@tensorflow/tfjs-node-gpu', '@tensorflow/tfjs-node', '@tensorflow/tfjs-backend-wasm']);
    expect(selection.name).toBe('wasm');
    expect(tf.getBackend()).toBe('wasm');
    expect(selection.tried.map((t) => t.name)).toEqual(['@tensorflow/tfjs-node-gpu', '@tensorflow/tfjs-node', 'wasm']);
    expect(selection.tried[0]!.outcome).toMatch(/^failed to load: Cannot find package/);
    expect(Array.from(tf.matMul(tf.tensor2d([[1, 2]]), tf.tensor2d([[3], [4]])).dataSync())).toEqual([11]);
  });

  test('without any tfjs-node and wasm, auto falls through to cpu', async () => {
    const attempted: string[] = [];
    const selection = await selectBackend('auto', loaderWithout(() => true, attempted));
    expect(attempted).toEqual(['@tensorflow/tfjs-node-gpu', '@tensorflow/tfjs-node', '@tensorflow/tfjs-backend-wasm']);
    expect(selection.name).toBe('cpu');
    expect(tf.getBackend()).toBe('cpu');
  });

  test('an explicit wasm request never tries the native packages', async () => {
    const attempted: string[] = [];
    const selection = await selectBackend('wasm', loaderWithout(() => false, attempted));
    expect(attempted).toEqual(['@tensorflow/tfjs-backend-wasm']);
    expect(selection.name).toBe('wasm');
  });

  test('an explicit tensorflow request without tfjs-node is a clear error naming the installer', async () => {
    await expect(selectBackend('tensorflow', loaderWithout((s) => s.startsWith('@tensorflow/tfjs-node'), []))).rejects.toThrow(
      /neither @tensorflow\/tfjs-node-gpu nor @tensorflow\/tfjs-node could be loaded.*dfd backend install tensorflow.*DFD_BACKEND=wasm/,
    );
  });

  test('a package that is present but fails to load is reported with its error, and the picker moves on', async () => {
    const loader: ModuleLoader = async (specifier) => {
      if (specifier === '@tensorflow/tfjs-node-gpu') throw new Error('libcudart.so.11.0: cannot open shared object file\nmore detail');
      if (specifier === '@tensorflow/tfjs-node') throw missing(specifier);
      return import(specifier);
    };
    const selection = await selectBackend('auto', loader);
    expect(selection.tried[0]).toEqual({ name: '@tensorflow/tfjs-node-gpu', outcome: 'failed to load: libcudart.so.11.0: cannot open shared object file' });
    expect(selection.name).toBe('wasm');
  });

  test('with the real loader, auto picks tensorflow exactly when tfjs-node is installed here, else wasm', async () => {
    const selection = await selectBackend('auto');
    expect(selection.name).toBe(nativeInstalled ? 'tensorflow' : 'wasm');
    expect(tf.getBackend()).toBe(selection.name);
    if (!installed('@tensorflow/tfjs-node-gpu')) expect(selection.tried[0]).toEqual({ name: '@tensorflow/tfjs-node-gpu', outcome: 'not installed' });
    if (nativeInstalled) {
      // The native backend computes, and has what wasm lacks: a gradient for gather.
      const grad = tf.grad((x: tf.Tensor) => tf.gather(x, tf.tensor1d([2, 2, 0], 'int32')).sum())(tf.tensor1d([1, 2, 3]));
      expect(Array.from(grad.dataSync())).toEqual([1, 0, 2]);
    }
  });

  test.runIf(!nativeInstalled)('without tfjs-node installed, an explicit tensorflow request is an error', async () => {
    await expect(selectBackend('tensorflow')).rejects.toThrow(/Install one/);
  });

  test('the report says what a run records: backend, threads, batch invariance; and a hint when not native', async () => {
    const wasm = describeBackend(await selectBackend('wasm'));
    expect(wasm.protocolFacts).toEqual({ backend: 'wasm' });
    expect(wasm.hint).toMatch(/dfd backend install tensorflow/);
    const native = describeBackend({ name: 'tensorflow', tried: [{ name: '@tensorflow/tfjs-node', outcome: 'selected' }] });
    expect(native.protocolFacts).toMatchObject({ backend: 'tensorflow', backend_batch_invariant: false });
    expect(native.protocolFacts.backend_intra_op_threads).toBeGreaterThan(0);
    expect(native.settings.package).toBe('@tensorflow/tfjs-node');
    expect(native.hint).toBeUndefined();
  });

  test('`dfd backend` prints the backend a run will use and why, as text and as JSON', async () => {
    const text = captureIo();
    expect(await cliMain(['backend'], { ...text.io, cwd: process.cwd(), env: { DFD_BACKEND: 'wasm' } })).toBe(0);
    expect(text.out()).toMatch(/^backend: wasm \(DFD_BACKEND=wasm\)\n\s+wasm\s+selected\n/);
    expect(text.out()).toMatch(/dfd backend install tensorflow/);
    const json = captureIo();
    expect(await cliMain(['backend', '--json'], { ...json.io, cwd: process.cwd(), env: {} })).toBe(0);
    const report = JSON.parse(json.out());
    expect(report.name).toBe(nativeInstalled ? 'tensorflow' : 'wasm');
    expect(report.tried.at(-1)).toEqual({ name: nativeInstalled ? '@tensorflow/tfjs-node' : 'wasm', outcome: 'selected' });
    expect(report.protocolFacts.backend).toBe(report.name);
  });

  test('cpu can be forced and unknown names are rejected', async () => {
    expect((await selectBackend('cpu')).name).toBe('cpu');
    await expect(selectBackend('gpu' as never)).rejects.toThrow(/unknown backend 'gpu'/);
  });
});
