/**
 * The backend-sensitive suites again, on the native backend: `npm run test:tensorflow` (after
 * `npm run setup:tensorflow`). `npm test` runs everything on the default backend (wasm on a fresh clone);
 * this run repeats what depends on tensor numerics — encoder parity, CoOp/CoCoOp parity and finite
 * differences, optimisers, exact resume, the examples end to end (once, as in `npm test`) — with
 * DFD_BACKEND=tensorflow, which fails loudly if tfjs-node cannot load instead of falling back.
 */
import { defineConfig } from 'vitest/config';
import base from './vitest.config.js';

export const BACKEND_SENSITIVE = [
  'packages/core/test/backend.test.ts',
  'packages/core/test/optim.test.ts',
  'packages/core/test/runner.test.ts',
  'packages/core/test/features.test.ts',
  'packages/encoder-clip/test/tiny-parity.test.ts',
  'packages/encoder-clip/test/b16w-parity.test.ts',
  'packages/encoder-clip/test/onnx.test.ts',
  'packages/encoder-clip/test/component.test.ts',
  'packages/encoder-clip/test/encode-cli.test.ts',
  'packages/dataset-df40/test/loader.test.ts',
  'packages/plugin-coop/test/**/*.test.ts',
  'packages/plugin-cocoop/test/**/*.test.ts',
  'packages/plugin-ufd/test/**/*.test.ts',
  'packages/plugin-fusion/test/**/*.test.ts',
  // plugin-lare: add its stage-2 (tfjs) test files here; stage 1 runs on onnxruntime, not on the tfjs backend.
  'examples/test/**/*.test.ts',
];

export default defineConfig({
  ...base,
  test: {
    ...base.test,
    include: BACKEND_SENSITIVE,
    // None of these talk to MLflow: no server to start.
    globalSetup: [],
    env: { DFD_BACKEND: 'tensorflow' },
  },
});
