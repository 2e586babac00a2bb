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
      'dfd predict --run <runs/<experiment>/<run-id>> IMAGE... [--checkpoint best|last] [--json]\n\n' +
      '  --checkpoint   which weights (default: the checkpoint the run selected, see selected.json)\n' +
      '  --json         one JSON line per image: {"path": ..., "p_fake": ...} or {"path": ..., "error": ...}\n\n' +
      'An image that is missing or does not decode is reported on stderr and the others are still scored; the exit status is then 1.',
    async run(args, io) {
      const { values, positionals } = parseArgs({
        args,
        allowPositionals: true,
        options: { run: { type: 'string' }, checkpoint: { type: 'string' }, json: { type: 'boolean', default: false } },
      });
      if (!values.run) throw new UsageError('--run RUN_DIR is required');
      if (!positionals.length) throw new UsageError('give at least one image path');
      if (values.checkpoint && !['best', 'last'].includes(values.checkpoint)) throw new UsageError('--checkpoint must be best or last');
      const loaded = await loadRun(resolve(io.cwd, values.run), { plugins: plugins(), checkpoint: values.checkpoint as 'best' | 'last' | undefined, cwd: io.cwd });
      try {
        const paths = positionals.map((p) => resolve(io.cwd, p));
        // Each image on its own: a corrupt or missing one is reported and the others are still scored.
        const results = await loaded.predictEach(paths);
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
