/**
 * `defineExperiment`: the typed, JSON-serialisable description of one experiment. The same object is
 * what `dfd run experiment.json` reads and what a sweep varies; `resolveExperiment` validates it and fills
 * in defaults, and the resolved form is what the run directory records as `config.json`.
 */
import { z } from 'zod';
import type { Plugin } from './plugin.js';
import { ConfigError } from './plugin.js';

export const ComponentRefSchema = z
  .object({
    /** Registered component name, e.g. `coop`. */
    use: z.string().min(1),
    /** A named preset of that component (e.g. `clipping`), applied before `config`. */
    preset: z.string().optional(),
    config: z.record(z.string(), z.unknown()).default({}),
  })
  .strict();
export type ComponentRef = z.input<typeof ComponentRefSchema>;

const SgdSchema = z
  .object({
    type: z.literal('sgd'),
    lr: z.number().positive(),
    momentum: z.number().min(0).default(0),
    dampening: z.number().min(0).default(0),
    weightDecay: z.number().min(0).default(0),
    nesterov: z.boolean().default(false),
  })
  .strict();
const AdamSchema = z
  .object({
    type: z.enum(['adam', 'adamw']),
    lr: z.number().positive(),
    beta1: z.number().min(0).max(1).default(0.9),
    beta2: z.number().min(0).max(1).default(0.999),
    epsilon: z.number().positive().default(1e-8),
    /** Adam: L2 added to the gradient (PyTorch semantics); AdamW: decoupled decay (default 0.01 as in PyTorch). */
    weightDecay: z.number().min(0).optional(),
  })
  .strict();
export const OptimizerSchema = z.discriminatedUnion('type', [SgdSchema, AdamSchema]);
export type OptimizerConfig = z.output<typeof OptimizerSchema>;

export const ScheduleSchema = z.discriminatedUnion('type', [
  z.object({ type: z.literal('constant') }).strict(),
  z
    .object({
      type: z.literal('cosine'),
      /** Dassl semantics: during warm-up the lr is `warmupLr` (constant) or ramps linearly to it. */
      warmupEpochs: z.number().int().min(0).default(0),
      warmupType: z.enum(['constant', 'linear']).default('constant'),
      warmupLr: z.number().min(0).default(1e-5),
      minLr: z.number().min(0).default(0),
    })
    .strict(),
  z
    .object({ type: z.literal('step'), stepSize: z.number().int().positive(), gamma: z.number().positive().default(0.1) })
    .strict(),
  z
    .object({
      type: z.literal('plateau'),
      mode: z.enum(['min', 'max']).default('max'),
      factor: z.number().positive().lt(1).default(0.1),
      patience: z.number().int().min(0).default(10),
      threshold: z.number().min(0).default(1e-4),
      minLr: z.number().min(0).default(0),
    })
    .strict(),
]);
export type ScheduleConfig = z.output<typeof ScheduleSchema>;

export const TrainerSchema = z
  .object({
    epochs: z.number().int().positive().default(1),
    /** Stop after this many optimizer steps in total (whatever `epochs` says). */
    maxSteps: z.number().int().positive().optional(),
    batchSize: z.number().int().positive().default(32),
    evalBatchSize: z.number().int().positive().default(64),
    optimizer: OptimizerSchema.default({ type: 'sgd', lr: 0.002, momentum: 0.9, dampening: 0, weightDecay: 5e-4, nesterov: false }),
    schedule: ScheduleSchema.default({ type: 'constant' }),
    /** Clip the global gradient norm to this value (PyTorch `clip_grad_norm_`). */
    clipGradNorm: z.number().positive().optional(),
    /** Validate every N epochs and/or every N steps (both may be set). */
    evalEveryEpochs: z.number().int().positive().optional().default(1),
    evalEverySteps: z.number().int().positive().optional(),
    /**
     * Which checkpoint is evaluated on test: `val` = best on validation by `selectMetric` (never on test),
     * `last` = the last step. Recorded on the run as the protocol.
     */
    select: z.enum(['val', 'last']).default('val'),
    selectMetric: z.string().default('auc'),
    selectMode: z.enum(['max', 'min']).default('max'),
    /** Emit a step event (and a metrics.jsonl line) every N steps. */
    logEverySteps: z.number().int().positive().default(1),
    /** Write the resumable `last` checkpoint every N steps (always at epoch ends). */
    checkpointEverySteps: z.number().int().positive().optional(),
  })
  .strict();
export type TrainerConfig = z.output<typeof TrainerSchema>;

export const DataSelectionSchema = z
  .object({
    /** Subsets (methods/datasets) to use; default: all the dataset offers for the split. */
    subsets: z.array(z.string()).optional(),
    /** Cap on samples (a smoke-test knob); the first `limit` in a seeded shuffle, recorded on the run. */
    limit: z.number().int().positive().optional(),
  })
  .strict();

export const EvaluationSchema = z
  .object({
    /**
     * Fail the run when an evaluation could not score every listed frame (a missing video, a corrupt frame,
     * a missing extra). Off: such frames are dropped, counted per subset in the report's coverage and listed
     * in `<split>-dropped.csv`.
     */
    requireComplete: z.boolean().default(false),
  })
  .strict();
/**
 * Stage-1 weights a run starts from (two-stage training): exactly the named tensors are copied, bit for bit,
 * from a finished run's checkpoint into the variables of the same name, before the first step.
 */
export const InitSchema = z
  .object({
    /**
     * The run to start from: its run directory (`runs/coop/<run-id>`, relative to the working directory), a
     * pipeline's earlier stage (`stage:<name>`), or a scheme a loaded plugin resolves (`mlflow:<run-id>`).
     */
    from: z.string().min(1),
    /** Which checkpoint of that run: the one it selected (`selected.json`), `best` on validation, or `last`. */
    checkpoint: z.enum(['selected', 'best', 'last']).default('selected'),
    /** Tensor names as the checkpoint holds them (`prompt_learner.ctx`) or a unique dotted suffix (`ctx`). */
    variables: z.array(z.string().min(1)).min(1),
    /** Train the copied tensors further in this run (default: frozen, still saved in this run's checkpoints). */
    trainable: z.boolean().default(false),
  })
  .strict();
export type InitConfig = z.output<typeof InitSchema>;

export const ExperimentSchema = z
  .object({
    name: z.string().regex(/^[\w.\- ]+$/, 'letters, digits, _ . - and spaces only').max(200),
    description: z.string().optional(),
    seed: z.number().int().min(0).default(1),
    /** Plugin package names imported by the CLI for a JSON experiment (code may pass plugin objects). */
    plugins: z.array(z.string()).default([]),
    /** `auto` picks tensorflow (tfjs-node[-gpu] if installed) → wasm → cpu; `DFD_BACKEND` overrides. */
    backend: z.enum(['auto', 'tensorflow', 'wasm', 'cpu']).default('auto'),
    dataset: ComponentRefSchema,
    loader: ComponentRefSchema.optional(),
    encoder: ComponentRefSchema.optional(),
    promptLearner: ComponentRefSchema.optional(),
    enhancers: z.array(ComponentRefSchema).default([]),
    fuser: ComponentRefSchema.optional(),
    /** Default: `clip-prompt` (encoder + prompt learner [+ enhancers + fuser], logits = scale · cos). */
    detector: ComponentRefSchema.default({ use: 'clip-prompt', config: {} }),
    evaluator: ComponentRefSchema.default({ use: 'binary', config: {} }),
    data: z
      .object({
        train: DataSelectionSchema.default({}),
        val: DataSelectionSchema.default({}),
        test: DataSelectionSchema.default({}),
      })
      .strict()
      .default({ train: {}, val: {}, test: {} }),
    trainer: TrainerSchema.default(TrainerSchema.parse({})),
    evaluation: EvaluationSchema.default({ requireComplete: false }),
    tracking: z.array(ComponentRefSchema).default([]),
    /** Root of run directories: `<runsDir>/<experiment>/<run-id>/`. */
    runsDir: z.string().default('runs'),
    /** Start from another run's learned tensors (stage 2 of a two-stage pipeline); that run is recorded as the parent. */
    init: InitSchema.optional(),
    /** This experiment's stage name within a pipeline (recorded; part of the run name). */
    stage: z.string().regex(/^[\w.\-]+$/, 'letters, digits, _ . - only').optional(),
  })
  .strict();

export type ExperimentDefinition = z.input<typeof ExperimentSchema>;
export type ResolvedExperiment = z.output<typeof ExperimentSchema>;

/** An experiment in code: the JSON shape plus plugin objects (which a JSON file names by package). */
export type ExperimentInCode = ExperimentDefinition & { pluginObjects?: Plugin[] };

/** Identity with types: `export default defineExperiment({...})`. */
export function defineExperiment<T extends ExperimentInCode>(definition: T): T {
  return definition;
}

export function resolveExperiment(definition: ExperimentDefinition): ResolvedExperiment {
  const { pluginObjects: _ignored, ...plain } = definition as ExperimentInCode;
  const parsed = ExperimentSchema.safeParse(plain);
  if (!parsed.success) {
    const lines = parsed.error.issues.map((issue) => {
      const at = issue.path.length ? issue.path.join('.') : '(root)';
      if (issue.code === 'unrecognized_keys') return `  - ${at}: unknown key(s) ${issue.keys.join(', ')}`;
      return `  - ${at}: ${issue.message}`;
    });
    throw new ConfigError(`experiment definition is invalid:\n${lines.join('\n')}`);
  }
  return parsed.data;
}
