/** The test server setup fails with what to install when Python is missing; it never skips. */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ensureMlflow } from '../../../test/support/mlflow-server.js';

describe('MLflow test setup', () => {
  it('fails with what to install when no python3 is found', () => {
    const venv = mkdtempSync(join(tmpdir(), 'dfd-no-venv-'));
    const saved = { PATH: process.env.PATH, DFD_PYTHON: process.env.DFD_PYTHON, DFD_MLFLOW_VENV: process.env.DFD_MLFLOW_VENV };
    try {
      process.env.PATH = '/nonexistent';
      process.env.DFD_MLFLOW_VENV = venv;
      delete process.env.DFD_PYTHON;
      expect(() => ensureMlflow()).toThrow(/needs Python 3 with the venv module.*apt-get install -y python3 python3-venv/);
    } finally {
      for (const [key, value] of Object.entries(saved)) {
        if (value === undefined) delete process.env[key];
        else process.env[key] = value;
      }
      rmSync(venv, { recursive: true, force: true });
    }
  });
});
