/**
 * Learning-rate schedules, stepped once per epoch as in Dassl/CoOp (and PyTorch's epoch schedulers).
 *
 * Cosine follows Dassl's warm-up wrapper exactly (shared/reference/methods.md §2.2): while
 * `epoch < warmupEpochs` the lr is the constant `warmupLr` (or a linear ramp); after warm-up the cosine
 * restarts from the base lr, indexed from the end of warm-up, over `totalEpochs`. With 2 epochs and one
 * warm-up epoch (CLIPping): epoch 1 at 1e-5, epoch 2 at the base lr.
 */
import type { ScheduleConfig } from '../experiment.js';

export interface ScheduleState {
  /** ReduceLROnPlateau only: current lr, best value, evaluations without improvement. */
  plateau?: { lr: number; best: number | null; bad: number };
}

export interface LrSchedule {
  /** The lr for a 0-based epoch. */
  lrAt(epoch: number): number;
  /** Feed a validation value (ReduceLROnPlateau); other schedules ignore it. */
  observe(value: number): void;
  state(): ScheduleState;
  loadState(state: ScheduleState): void;
}

export function createSchedule(config: ScheduleConfig, baseLr: number, totalEpochs: number): LrSchedule {
  switch (config.type) {
    case 'constant':
      return stateless(() => baseLr);
    case 'step':
      return stateless((epoch) => baseLr * config.gamma ** Math.floor(epoch / config.stepSize));
    case 'cosine':
      return stateless((epoch) => {
        const { warmupEpochs, warmupType, warmupLr, minLr } = config;
        if (epoch < warmupEpochs) {
          // Dassl's LinearWarmupScheduler: min lr at epoch 0, then base·epoch/warmup.
          if (warmupType === 'linear') return epoch === 0 ? warmupLr : (baseLr * epoch) / warmupEpochs;
          return warmupLr;
        }
        const index = epoch - warmupEpochs;
        return minLr + ((baseLr - minLr) * (1 + Math.cos((Math.PI * index) / totalEpochs))) / 2;
      });
    case 'plateau':
      return new Plateau(config, baseLr);
  }
}

function stateless(lrAt: (epoch: number) => number): LrSchedule {
  return { lrAt, observe() {}, state: () => ({}), loadState() {} };
}

/** torch.optim.lr_scheduler.ReduceLROnPlateau with threshold_mode 'rel' and no cooldown. */
class Plateau implements LrSchedule {
  private lr: number;
  private best: number | null = null;
  private bad = 0;

  constructor(private readonly config: Extract<ScheduleConfig, { type: 'plateau' }>, baseLr: number) {
    this.lr = baseLr;
  }

  lrAt(): number {
    return this.lr;
  }

  observe(value: number): void {
    if (!Number.isFinite(value)) return;
    const { mode, threshold, patience, factor, minLr } = this.config;
    const better =
      this.best === null || (mode === 'max' ? value > this.best * (1 + threshold) : value < this.best * (1 - threshold));
    if (better) {
      this.best = value;
      this.bad = 0;
      return;
    }
    this.bad += 1;
    if (this.bad > patience) {
      this.lr = Math.max(this.lr * factor, minLr);
      this.bad = 0;
    }
  }

  state(): ScheduleState {
    return { plateau: { lr: this.lr, best: this.best, bad: this.bad } };
  }

  loadState(state: ScheduleState): void {
    if (!state.plateau) return;
    this.lr = state.plateau.lr;
    this.best = state.plateau.best;
    this.bad = state.plateau.bad;
  }
}
