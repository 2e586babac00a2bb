// How `dfd encode` saves its rows: the old way (all rows in memory, the whole file rewritten at every
// checkpoint) against parts plus one streamed join at the end (src/cli/encode-output.ts), same rows, same
// checkpoints, each in its own child process so its peak RSS is its own. Run after `npm run build`:
//
//   npm run bench:encode-output -w @dfd/encoder-clip     (BENCH_ROWS, BENCH_WIDTH, BENCH_EVERY to change)
//
// Rows are random floats (the tower is not the point); 16 rows per batch, a checkpoint every 20 batches,
// as `dfd encode`'s defaults.
import { fork } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { writeSafetensors } from '@dfd/core';
import { concatFloat32 } from '../dist/float32.js';
import { EncodeOutput } from '../dist/cli/encode-output.js';

const ROWS = Number(process.env.BENCH_ROWS ?? 20000);
const WIDTH = Number(process.env.BENCH_WIDTH ?? 768);
const BATCH = 16;
const EVERY = Number(process.env.BENCH_EVERY ?? 20);

async function child(strategy, dir) {
  const out = join(dir, `${strategy}.safetensors`);
  const facts = { model: 'bench', weights_digest: 'bench', patch_tokens: 'false' };
  const started = performance.now();
  const output = strategy === 'parts' ? await EncodeOutput.open(out, () => facts, { embeds: [WIDTH] }, () => undefined) : undefined;
  const held = { paths: [], rows: [] };
  for (let batch = 0; batch * BATCH < ROWS; batch++) {
    const n = Math.min(BATCH, ROWS - batch * BATCH);
    const rows = Float32Array.from({ length: n * WIDTH }, () => Math.random());
    const paths = Array.from({ length: n }, (_, k) => `/data/frames/${batch * BATCH + k}.png`);
    const checkpoint = (batch + 1) % EVERY === 0;
    if (output) {
      output.add(paths, rows);
      if (checkpoint) await output.checkpoint();
    } else {
      held.paths.push(...paths);
      held.rows.push(rows);
      if (checkpoint) await rewrite(out, held, facts);
    }
  }
  if (output) await output.finish({}, []);
  else await rewrite(out, held, facts);
  process.send({ seconds: (performance.now() - started) / 1000, maxRssMb: process.resourceUsage().maxRSS / 1024 });
}

/** The old save: every row so far, concatenated and written whole. */
async function rewrite(out, held, facts) {
  held.rows = [concatFloat32(held.rows)];
  await writeSafetensors(out, { embeds: { shape: [held.paths.length, WIDTH], data: held.rows[0] } }, { ...facts, paths: JSON.stringify(held.paths) });
}

if (process.argv[2]) {
  await child(process.argv[2], process.argv[3]);
} else {
  const dir = await mkdtemp(join(tmpdir(), 'dfd-bench-encode-output-'));
  console.log(`dfd encode output: ${ROWS} rows × ${WIDTH} floats (${((ROWS * WIDTH * 4) / 2 ** 20).toFixed(0)} MiB), batch ${BATCH}, checkpoint every ${EVERY} batches; load average ${loadavg().map((l) => l.toFixed(2)).join(' ')}`);
  const results = {};
  try {
    for (const strategy of ['rewrite', 'parts']) {
      results[strategy] = await new Promise((resolve, reject) => {
        const proc = fork(fileURLToPath(import.meta.url), [strategy, dir]);
        proc.on('message', resolve);
        proc.on('exit', (code) => code && reject(new Error(`${strategy} exited ${code}`)));
      });
      console.log(`  ${strategy.padEnd(8)} ${results[strategy].seconds.toFixed(2)} s, peak RSS ${results[strategy].maxRssMb.toFixed(0)} MB`);
    }
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
  console.log(`  parts vs rewrite: ${(results.rewrite.seconds / results.parts.seconds).toFixed(1)}× faster, peak RSS ${(results.parts.maxRssMb / results.rewrite.maxRssMb).toFixed(2)}× (load average ${loadavg().map((l) => l.toFixed(2)).join(' ')})`);
}
