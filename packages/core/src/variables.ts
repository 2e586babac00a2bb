/**
 * tfjs variable names are global to the engine, and two experiments in one process create variables
 * with the same logical names. `uniqueVariableName` gives each a unique engine name; our stable names
 * (used for checkpoints and optimizer state) are the keys of `Module.trainableVariables()`.
 */
let counter = 0;

export function uniqueVariableName(logicalName: string): string {
  counter += 1;
  return `${logicalName}__${counter}`;
}
