/**
 * Ctrl-C at a chosen moment, for kill-and-resume tests: a tracker that aborts the run's signal at the first
 * event `when` accepts. Pass both to `runExperiment(experiment, { signal, trackers: [tracker] })`.
 */
import type { RunEvent, Tracker } from '@dfd/core';

export function stopWhen(when: (event: RunEvent) => boolean): { signal: AbortSignal; tracker: Tracker } {
  const controller = new AbortController();
  const tracker: Tracker = {
    name: 'ctrl-c',
    attach(events) {
      events.subscribe((event) => {
        if (!controller.signal.aborted && when(event)) controller.abort();
      });
    },
    async close() {},
  };
  return { signal: controller.signal, tracker };
}

/** After the first epoch ends. */
export const afterFirstEpoch = (event: RunEvent): boolean => event.type === 'epoch';

/** When training step `step` is done. */
export const atStep =
  (step: number) =>
  (event: RunEvent): boolean =>
    event.type === 'step' && event.step === step;
