/**
 * Tags recorded on every run: who, from where, which code (git commit, dirty flag) and which plugin
 * versions. MLflow's system tag names are used so its UI shows them in the usual places.
 */
import { execFileSync } from 'node:child_process';
import { userInfo } from 'node:os';
import type { Plugin } from '../plugin.js';

function git(args: string[], cwd: string): string | undefined {
  try {
    return execFileSync('git', args, { cwd, stdio: ['ignore', 'pipe', 'ignore'], timeout: 5000 }).toString().trim();
  } catch {
    return undefined;
  }
}

export async function collectRunTags(plugins: Plugin[], cwd = process.cwd()): Promise<Record<string, string>> {
  const tags: Record<string, string> = {
    'mlflow.source.type': 'LOCAL',
    'mlflow.source.name': process.argv[1] ?? 'node',
    'dfd.node': process.version,
  };
  try {
    tags['mlflow.user'] = userInfo().username;
  } catch {
    // no passwd entry (containers): leave the user unset
  }
  const commit = git(['rev-parse', 'HEAD'], cwd);
  if (commit) {
    tags['mlflow.source.git.commit'] = commit;
    const branch = git(['rev-parse', '--abbrev-ref', 'HEAD'], cwd);
    if (branch) tags['mlflow.source.git.branch'] = branch;
    tags['mlflow.source.git.dirty'] = String(Boolean(git(['status', '--porcelain', '--untracked-files=no'], cwd)));
  }
  for (const plugin of plugins) tags[`dfd.version.${plugin.name.replace(/^@/, '')}`] = plugin.version;
  return tags;
}
