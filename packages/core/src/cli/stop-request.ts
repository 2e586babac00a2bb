/**
 * Ctrl-C or SIGTERM (Slurm's `scancel`, a job's time limit) for a batch command that writes its output in
 * pieces (`dfd encode`, `dfd lare extract`): the first signal asks the loop to finish the batch in flight,
 * write what it has and exit 130, so a rerun resumes from there; a second signal exits at once. Without
 * it, Node dies on SIGTERM and every batch since the last periodic rewrite is lost.
 */
import type { CliIO } from './command.js';

export interface StopRequest {
  /** True once a stop signal arrived: save, then return `STOPPED_EXIT_CODE`. */
  readonly requested: boolean;
  /** The signal's name (for the closing line). */
  readonly signal: NodeJS.Signals | undefined;
  /** Removes the handlers (call in `finally`). */
  release(): void;
}

/** What a command returns after stopping on request (the shell's code for an interrupted job). */
export const STOPPED_EXIT_CODE = 130;

export function watchStopSignals(io: CliIO, command: string): StopRequest {
  const state: { signal: NodeJS.Signals | undefined } = { signal: undefined };
  const onSignal = (name: NodeJS.Signals) => {
    if (state.signal) process.exit(STOPPED_EXIT_CODE);
    state.signal = name;
    io.stderr.write(`\n${command}: ${name}: saving after the batch in flight, then exiting (again to exit now); rerun the same command to resume\n`);
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  return {
    get requested() {
      return state.signal !== undefined;
    },
    get signal() {
      return state.signal;
    },
    release() {
      process.off('SIGINT', onSignal);
      process.off('SIGTERM', onSignal);
    },
  };
}
