/** The @dfd/slurm plugin: no components, one command (`dfd slurm`). */
import { definePlugin } from '@dfd/core';
import { slurmCommand } from './cli.js';

export const slurmPlugin = definePlugin({
  name: '@dfd/slurm',
  version: '0.1.0',
  register(registrar) {
    registrar.command(slurmCommand);
  },
});

export default slurmPlugin;
