/** The kill drill's experiment: shared by the child process (fixtures/drill-experiment.ts) and the test. */
import { toyExperiment, type ToyPause } from './toy-plugin.js';

export function drillExperiment(runsDir: string, dataDir: string, name: string, pause?: ToyPause) {
  return toyExperiment(runsDir, {
    name,
    dataset: { use: 'toy', config: { root: dataDir } },
    loader: { use: 'toy-features', config: pause ? { pause } : {} },
    trainer: {
      epochs: 3,
      batchSize: 16,
      evalBatchSize: 8,
      checkpointEverySteps: 2,
      optimizer: { type: 'adamw' as const, lr: 0.05, weightDecay: 0.01 },
      schedule: { type: 'cosine' as const, warmupEpochs: 1 },
    },
  });
}
