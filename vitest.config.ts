import { defineConfig } from 'vitest/config';
import { fileURLToPath } from 'node:url';
import { readdirSync, existsSync } from 'node:fs';

// Tests run against each package's TypeScript source, not its build, so `@dfd/<pkg>` is aliased to
// `packages/<pkg>/src/index.ts`. Published packages resolve through their `exports` maps as usual.
const packagesDir = fileURLToPath(new URL('./packages/', import.meta.url));
const alias = readdirSync(packagesDir)
  .filter((dir) => existsSync(`${packagesDir}${dir}/src/index.ts`))
  .map((dir) => ({ find: new RegExp(`^@dfd/${dir}$`), replacement: `${packagesDir}${dir}/src/index.ts` }));

export default defineConfig({
  resolve: { alias },
  // Test files live outside the packages' tsconfig `include`, so tell the transformer directly that
  // we use TypeScript's legacy (parameter) decorators, as tsyringe's @inject needs.
  oxc: { decorator: { legacy: true, emitDecoratorMetadata: false } },
  test: {
    include: ['packages/*/test/**/*.test.ts', 'examples/test/**/*.test.ts', 'test/**/*.test.ts'],
    globalSetup: [
      ...(existsSync(fileURLToPath(new URL('./test/global-setup.ts', import.meta.url))) ? ['./test/global-setup.ts'] : []),
      // One local Slurm for the @dfd/slurm tests (started only when they run).
      './packages/slurm/test/slurm-setup.ts',
    ],
    testTimeout: 120_000,
    hookTimeout: 600_000,
    // 2-core CI machine: tfjs and sharp are CPU-heavy, so keep the worker count small.
    maxWorkers: 2,
    pool: 'forks',
  },
});
