/**
 * @dfd/slurm: long dfd commands as Slurm job arrays. `dfd slurm encode|lare-extract` shards a command over
 * array tasks and merges after them; `dfd slurm sweep` runs one configuration per task under one parent run,
 * ranked on validation; `dfd slurm status|retry` read Slurm's own records and resubmit only what failed.
 */
export { slurmPlugin, slurmPlugin as default } from './plugin.js';
export { slurmCommand } from './cli.js';
export { renderScript, directives, shellQuote, commandLine, type Resources, type ScriptSpec } from './script.js';
export { SHARDABLE, shardOut, extractOut, type ShardableCommand } from './shardable.js';
export { loadLaunch, arraySpec, stateRoot, type LaunchRecord, type Submission } from './launch.js';
export { launchStatus, retryLaunch, formatStatus, type LaunchStatus, type TaskView, type RetryOutcome } from './manage.js';
export { jobStates, accounting, RETRYABLE, ACTIVE, type TaskState, type JobStates, type Accounting } from './states.js';
export { expandGrid, childRunDirs, readSweepFile, type SweepConfiguration, type SweepFile } from './sweep.js';
export { SlurmError, slurm, sbatch } from './slurm-exec.js';
