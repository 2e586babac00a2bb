/**
 * The `encoder: clip` component as an experiment builds it: with engine 'onnx' it offers the onnxruntime
 * frozen path (what core's feature cache encodes with), and that path agrees with its own tfjs tower.
 */
import { describe, expect, test, beforeAll } from 'vitest';
import { ExperimentContainer, PluginRegistry, TOKENS, configToken, ensureBackend, tf, type Encoder } from '@dfd/core';
import { clipPlugin } from '@dfd/encoder-clip';
import { TINY_CLIP } from './helpers.js';

function buildEncoder(config: Record<string, unknown>): Encoder {
  const registry = new PluginRegistry([clipPlugin]);
  const definition = registry.get('encoder', 'clip');
  const resolved = registry.resolveConfig('encoder', 'clip', config);
  const container = ExperimentContainer.create();
  container.registerValue(configToken('encoder'), resolved);
  container.registerFactory(TOKENS.Encoder, (r) => definition.useFactory!(resolved, r) as Encoder);
  return container.resolve<Encoder>(TOKENS.Encoder);
}

beforeAll(async () => {
  await ensureBackend('cpu');
});

describe('encoder: clip component', () => {
  test("engine 'onnx' offers the onnxruntime frozen path, equal to the tfjs tower", async () => {
    const encoder = buildEncoder({ model: TINY_CLIP, engine: 'onnx' });
    expect(encoder.frozenImageEncoder).toBeTypeOf('function');
    const frozen = await encoder.frozenImageEncoder!();
    expect(frozen.engine).toBe('onnxruntime-cpu');
    const size = encoder.info.imageSize;
    const pixels = new Float32Array(2 * 3 * size * size).map((_, i) => Math.sin(i * 0.37));
    const { embeds } = await frozen.embed(pixels, 2);
    const reference = tf.tidy(() => encoder.encodeImage(tf.tensor4d(pixels, [2, 3, size, size])).embeds.dataSync());
    expect(embeds.length).toBe(reference.length);
    const maxError = Math.max(...Array.from(embeds, (v, i) => Math.abs(v - reference[i]!)));
    expect(maxError).toBeLessThan(1e-4);
    await frozen.dispose();
    encoder.dispose();
  });

  test("engine 'tfjs' (default) leaves frozen extraction to the encoder's own tower", () => {
    const encoder = buildEncoder({ model: TINY_CLIP });
    expect(encoder.frozenImageEncoder).toBeUndefined();
    encoder.dispose();
  });
});
