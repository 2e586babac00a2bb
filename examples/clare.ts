// `npx dfd run examples/clare.ts`: the two-stage CLaRE pipeline on the synthetic mini-DF40 (see src/clare.ts).
// The export is a function so the data and the LaRE maps are made (once) before the stages run.
import { clarePipeline } from './src/clare.js';
import { ensureLareMaps } from './src/lare-maps.js';
import { DEFAULT_DATA_DIR, ensureMiniDf40 } from './src/setup.js';

export default async function pipeline() {
  const { root } = await ensureMiniDf40(process.env.DFD_DATA ?? DEFAULT_DATA_DIR, console.error);
  await ensureLareMaps(root, { log: console.error });
  return clarePipeline({ root });
}
