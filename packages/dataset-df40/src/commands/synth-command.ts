/** `dfd synth [OUT] [--videos N] [--frames F] [--size S] [--seed K] [--force]`. */
import { resolve } from 'node:path';
import type { CliCommand, CliIO } from '@dfd/core';
import { UsageError } from '@dfd/core';
import { generateMiniDf40, SynthError } from '../synth/generate.js';
import { intOption, parseArgs } from './args.js';

export const DEFAULT_SYNTH_DIR = 'data/mini-df40';

const usage = `Usage: dfd synth [OUT] [--videos N] [--frames F] [--size S] [--seed K] [--force]

Writes a synthetic mini-DF40 (procedural faces; each fake "method" leaves its own generator fingerprint)
in DF40's layout with DeepfakeBench JSONs: 4 training methods with FF++-style reals (train/val/test) and
the 8 unknown test sets (heygen, MidJourney, whichfaceisreal, stargan, starganv2, styleclip, e4e,
CollabDiff) with their own reals. Same options and seed, same bytes.

  OUT           output folder (default ${DEFAULT_SYNTH_DIR})
  --videos N    fake videos per training method (val/test: a quarter); videos per label per test set (default 8)
  --frames F    frames per video (default 4)
  --size S      image side in pixels (default 64)
  --seed K      seed (default 0)
  --force       replace an existing synthetic tree in OUT`;

export const synthCommand: CliCommand = {
  name: 'synth',
  summary: 'write a synthetic mini-DF40 (DF40 layout + JSONs) for quickstarts, tests and benchmarks',
  usage,
  async run(args: string[], io: CliIO): Promise<number> {
    if (args.includes('--help') || args.includes('-h')) {
      io.stdout.write(usage + '\n');
      return 0;
    }
    const parsed = parseArgs(args, { flags: ['force'], values: ['videos', 'frames', 'size', 'seed'] });
    if (parsed.positionals.length > 1) throw new UsageError('dfd synth takes at most one OUT folder');
    const out = resolve(io.cwd, parsed.positionals[0] ?? DEFAULT_SYNTH_DIR);
    const videos = intOption(parsed, 'videos', 1);
    const frames = intOption(parsed, 'frames', 1);
    const size = intOption(parsed, 'size', 16);
    const seed = intOption(parsed, 'seed', 0);
    try {
      const result = await generateMiniDf40({
        out,
        ...(videos !== undefined ? { videos } : {}),
        ...(frames !== undefined ? { frames } : {}),
        ...(size !== undefined ? { size } : {}),
        ...(seed !== undefined ? { seed } : {}),
        overwrite: parsed.flags.has('force'),
      });
      io.stdout.write(
        `wrote ${result.images} images in ${result.videos} videos and ${result.jsonFiles.length} JSONs to ${out} ` +
          `(${result.seconds.toFixed(1)} s)\n` +
          `datasets: ${result.datasets.join(', ')}\n` +
          `use it with { dataset: { use: 'df40', config: { root: '${out}' } } }\n`,
      );
      return 0;
    } catch (error) {
      if (error instanceof SynthError) {
        io.stderr.write(`dfd synth: ${error.message}\n`);
        return 1;
      }
      throw error;
    }
  },
};
