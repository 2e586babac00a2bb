/** The run's abort signal (Ctrl-C, SIGTERM) fired during a long step: listing, scoring, filling a cache. */
export class RunInterrupted extends Error {
  override name = 'RunInterrupted';
  constructor(where: string) {
    super(`interrupted (Ctrl-C or SIGTERM) while ${where}`);
  }
}

export function throwIfAborted(signal: AbortSignal | undefined, where: string): void {
  if (signal?.aborted) throw new RunInterrupted(where);
}
