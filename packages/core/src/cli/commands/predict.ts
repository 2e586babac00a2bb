/** `dfd predict --run RUN_DIR IMAGE...`: P(fake) per image from a trained run. */
import { resolve } from 'node:path';
import { parseArgs } from 'node:util';
import type { Plugin } from '../../plugin.js';
import { loadRun } from '../../run/load-run.js';
import { UsageError, type CliCommand } from '../command.js';

export function predictCommand(plugins: () => Plugin[]): CliCommand {
  return {
    name: 'predict',
    summary: 'print P(fake) per image with a trained run (its selected checkpoint)',
    usage:
      'dfd predict --run <runs/<experiment>/<run-id>> IMAGE... [--extra KEY=PATH]... [--extras-cache DIR] [--checkpoint best|last] [--json]\n\n' +
      '  --extra        an extra input the model needs (e.g. a LaRE map: --extra lare=maps/x.safetensors), once per\n' +
      '                 image in image order; without it the run\'s dataset maps are used, else the run\'s\n' +
      '                 predict.extras settings compute it (e.g. with the LaRE stage-1 model)\n' +
      '  --extras-cache where computed extras are kept (default $DFD_CACHE_DIR/predict-extras, ~/.cache/dfd/predict-extras)\n' +
      '  --checkpoint   which weights (default: the checkpoint the run selected, see selected.json)\n' +
      '  --json         one JSON line per image: {"path": ..., "p_fake": ...} or {"path": ..., "error": ...}\n\n' +
      'An image that is missing or does not decode is reported on stderr and the others are still scored; the exit status is then 1.',
    async run(args, io) {
      const { values, positionals } = parseArgs({
        args,
        allowPositionals: true,
        options: { run: { type: 'string' }, checkpoint: { type: 'string' }, json: { type: 'boolean', default: false }, extra: { type: 'string', multiple: true }, 'extras-cache': { type: 'string' } },
      });
      if (!values.run) throw new UsageError('--run RUN_DIR is required');
      if (!positionals.length) throw new UsageError('give at least one image path');
      if (values.checkpoint && !['best', 'last'].includes(values.checkpoint)) throw new UsageError('--checkpoint must be best or last');
      perImageExtras(values.extra ?? [], positionals.length, io.cwd); // usage errors before loading the run
      const loaded = await loadRun(resolve(io.cwd, values.run), { plugins: plugins(), checkpoint: values.checkpoint as 'best' | 'last' | undefined, cwd: io.cwd });
      try {
        const paths = positionals.map((p) => resolve(io.cwd, p));
        const extras = perImageExtras(values.extra ?? [], paths.length, io.cwd);
        const cacheDir = values['extras-cache'] ? resolve(io.cwd, values['extras-cache']) : undefined;
        // Each image on its own: a corrupt or missing one is reported and the others are still scored.
        const results = await loaded.predictEach(paths, { ...(extras ? { extras } : {}), ...(cacheDir ? { extrasCacheDir: cacheDir } : {}) });
        results.forEach((result, i) => {
          const shown = positionals[i]!;
          if (result.error !== undefined) {
            if (values.json) io.stdout.write(`${JSON.stringify({ path: shown, error: result.error })}\n`);
            io.stderr.write(`dfd predict: ${shown}: ${result.error}\n`);
            return;
          }
          io.stdout.write(values.json ? `${JSON.stringify({ path: shown, p_fake: result.score })}\n` : `${result.score.toFixed(6)}  ${shown}\n`);
        });
        const failed = results.filter((r) => r.error !== undefined).length;
        if (failed) io.stderr.write(`dfd predict: ${failed} of ${results.length} images could not be scored (listed above); the others were\n`);
        return failed ? 1 : 0;
      } finally {
        loaded.dispose();
      }
    },
  };
}

/** `--extra KEY=PATH` given once per image for each key, in image order → one record per image. */
function perImageExtras(flags: string[], images: number, cwd: string): Array<Record<string, string>> | undefined {
  if (!flags.length) return undefined;
  const byKey = new Map<string, string[]>();
  for (const flag of flags) {
    const at = flag.indexOf('=');
    if (at <= 0 || at === flag.length - 1) throw new UsageError(`--extra ${flag}: expected KEY=PATH, e.g. --extra lare=maps/img.safetensors`);
    const key = flag.slice(0, at);
    byKey.set(key, [...(byKey.get(key) ?? []), resolve(cwd, flag.slice(at + 1))]);
  }
  for (const [key, files] of byKey) {
    if (files.length !== images) throw new UsageError(`--extra ${key}=... is given ${files.length} times for ${images} images: give it once per image, in image order`);
  }
  return Array.from({ length: images }, (_, i) => Object.fromEntries([...byKey].map(([key, files]) => [key, files[i]!])));
}
