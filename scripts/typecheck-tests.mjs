// Type-checks every test folder that has a tsconfig.json (tests run from source through vitest, which
// strips types without checking them; `tsc -b` builds only the packages' src).
import { execFileSync } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';

const projects = [
  ...readdirSync('packages').map((dir) => `packages/${dir}/test/tsconfig.json`),
  'examples/test/tsconfig.json',
  'test/tsconfig.json',
].filter((path) => existsSync(path));
let failed = 0;
for (const project of projects) {
  try {
    execFileSync('npx', ['--no-install', 'tsc', '-p', project], { stdio: 'inherit' });
  } catch {
    failed += 1;
  }
}
console.log(`type-checked ${projects.length} test projects, ${failed} with errors`);
process.exit(failed ? 1 : 0);
