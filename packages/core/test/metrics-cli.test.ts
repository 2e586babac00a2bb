/**
 * `dfd metrics FILE.csv [--json]` on real files: the fixture CSV written by
 * tools/fixtures/metrics/make_fixtures.py (quoted fields, CRLF, extra column) against the values scikit-learn
 * computed for it, the exact JSON shape, and malformed files reported with their line numbers.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { captureIo } from './support/capture-io.js';
import { cliMain, parseScoresCsv } from '@dfd/core';

const here = dirname(fileURLToPath(import.meta.url));
const fixtures = resolve(here, '../../../tools/fixtures/metrics');
const expected = JSON.parse(readFileSync(join(fixtures, 'cli-expected.json'), 'utf8'));
const FIELDS = ['auc', 'ap', 'eer', 'acc', 'real_acc', 'fake_acc', 'n'];

const tmp = mkdtempSync(join(tmpdir(), 'dfd-metrics-cli-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

async function dfd(args: string[]): Promise<{ code: number; out: string; err: string }> {
  const captured = captureIo();
  const code = await cliMain(args, { ...captured.io, cwd: tmp, env: {} });
  return { code, out: captured.out(), err: captured.err() };
}

function csv(name: string, text: string): string {
  const path = join(tmp, name);
  writeFileSync(path, text);
  return path;
}

function closeTo(actual: Record<string, number>, wanted: Record<string, number>, where: string): void {
  expect(Object.keys(actual), `${where}: fields`).toEqual(FIELDS);
  for (const key of FIELDS) {
    expect(Math.abs(actual[key]! - wanted[key]!), `${where}.${key}: ${actual[key]} vs scikit-learn ${wanted[key]}`).toBeLessThanOrEqual(1e-12);
  }
}

describe('dfd metrics', () => {
  it('--json matches scikit-learn on the fixture CSV, in exactly the documented shape', async () => {
    const { code, out, err } = await dfd(['metrics', join(fixtures, 'cli-scores.csv'), '--json']);
    expect(err).toBe('');
    expect(code).toBe(0);
    const json = JSON.parse(out);
    expect(Object.keys(json)).toEqual(['overall', 'subsets', 'video']);
    closeTo(json.overall, expected.overall, 'overall');
    expect(Object.keys(json.subsets).sort()).toEqual(Object.keys(expected.subsets).sort());
    for (const name of Object.keys(expected.subsets)) closeTo(json.subsets[name], expected.subsets[name], name);
    expect(Object.keys(json.video)).toEqual(['auc', 'n']);
    expect(json.video.n).toBe(expected.video.n);
    expect(Math.abs(json.video.auc - expected.video.auc)).toBeLessThanOrEqual(1e-12);
  });

  it('omits subsets and video without those columns', async () => {
    const file = csv('plain.csv', 'score,label\n0.9,1\n0.2,0\n0.6,0\n0.55,1\n');
    const { code, out } = await dfd(['metrics', file, '--json']);
    expect(code).toBe(0);
    const json = JSON.parse(out);
    expect(Object.keys(json)).toEqual(['overall']);
    // scikit-learn: roc_auc_score 0.75, average_precision_score 0.8333333333333333, DeepfakeBench EER 0.5
    expect(json.overall).toEqual({ auc: 0.75, ap: 0.8333333333333333, eer: 0.5, acc: 0.75, real_acc: 0.5, fake_acc: 1, n: 4 });
  });

  it('keeps a real and a fake video with the same name apart', async () => {
    // Videos: real v1 (0.1, 0.3) → 0.2, fake v1 (0.8, 0.6) → 0.7, real v2 0.4, fake v3 0.2, i.e.
    // roc_auc_score([0, 1, 0, 1], [0.2, 0.7, 0.4, 0.2]) = 0.625 in scikit-learn. DeepfakeBench would merge
    // the two `v1` folders into one video (mean 0.45) labelled real, and report 0.
    const file = csv('videos.csv', 'label,score,video\n0,0.1,v1\n0,0.3,v1\n1,0.8,v1\n1,0.6,v1\n0,0.4,v2\n1,0.2,v3\n');
    const json = JSON.parse((await dfd(['metrics', file, '--json'])).out);
    expect(json.video).toEqual({ auc: 0.625, n: 4 });
  });

  it('prints a table by default', async () => {
    const { code, out } = await dfd(['metrics', join(fixtures, 'cli-scores.csv')]);
    expect(code).toBe(0);
    expect(out).toMatch(/550 scores \(\d+ real, \d+ fake\)/);
    expect(out).toMatch(/^set\s+n\s+AUC\s+AP\s+EER\s+ACC@0\.5\s+real acc\s+fake acc$/m);
    expect(out).toContain(`heygen`);
    expect(out).toContain(`say "cheese"`);
    expect(out).toMatch(/^mean of 3\s+550\s/m);
    expect(out).toMatch(new RegExp(`^overall\\s+550\\s+${expected.overall.auc.toFixed(4)}`, 'm'));
    expect(out).toContain(`video level: AUC ${expected.video.auc.toFixed(4)} over ${expected.video.n} videos`);
  });

  it('the installed binary runs it (npx dfd metrics)', () => {
    const out = execFileSync('npx', ['--no-install', 'dfd', 'metrics', join(fixtures, 'cli-scores.csv'), '--json'], {
      cwd: resolve(here, '../../..'),
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    expect(JSON.parse(out).overall.n).toBe(550);
  });

  const malformed: Array<[string, string, RegExp]> = [
    ['no-score.csv', 'label,prob\n0,0.1\n', /no-score\.csv:1: the header has no 'score' column \(found: 'label', 'prob'\)/],
    ['bad-label.csv', 'label,score\n0,0.1\n2,0.3\n', /bad-label\.csv:3: label '2' is not 0 \(real\) or 1 \(fake\)/],
    ['nan.csv', 'label,score\n0,0.1\n1,0.5\n1,nan\n', /nan\.csv:4: score 'nan' is not a finite number/],
    ['fields.csv', 'label,score,subset\n0,0.1,a\n1,0.5\n', /fields\.csv:3: 2 fields, but the header has 3/],
    ['quote.csv', 'label,score,subset\n0,0.1,a\n1,0.5,"b\n', /quote\.csv:3: a quoted field is not closed/],
    ['after-quote.csv', 'label,score,subset\n0,0.1,"a"x\n', /after-quote\.csv:2: unexpected character 'x' after a closing quote/],
    ['multiline.csv', 'label,score,subset\n0,0.1,"a\nb"\n1,0.9,a\n1,,a\n', /multiline\.csv:5: score '' is not a finite number/],
    ['empty.csv', '', /empty\.csv: empty file/],
    ['header-only.csv', 'label,score\n', /header-only\.csv: a header but no data rows/],
    ['dup.csv', 'label,score,Label\n0,0.1,0\n', /dup\.csv:1: column 'label' appears twice/],
    ['one-class.csv', 'label,score\n1,0.1\n1,0.9\n', /one-class\.csv: all 2 labels are 1 \(fake\); AUC needs both/],
    ['subset-one-class.csv', 'label,score,subset\n0,0.1,a\n1,0.9,a\n1,0.4,b\n', /subset 'b': all 1 labels are 1 \(fake\)/],
  ];
  for (const [name, text, message] of malformed) {
    it(`reports ${name} with where it went wrong`, async () => {
      const { code, out, err } = await dfd(['metrics', csv(name, text), '--json']);
      expect(code).toBe(1);
      expect(out).toBe('');
      expect(err).toMatch(message);
    });
  }

  it('a missing file, no file or two files are clear errors', async () => {
    const missing = await dfd(['metrics', 'nope.csv']);
    expect(missing.code).toBe(1);
    expect(missing.err).toMatch(/cannot read .*nope\.csv: ENOENT/);
    const none = await dfd(['metrics']);
    expect(none.code).toBe(2);
    expect(none.err).toMatch(/give the scores CSV file[\s\S]*usage|dfd metrics FILE\.csv/);
    expect((await dfd(['metrics', 'a.csv', 'b.csv'])).err).toMatch(/one CSV file at a time, got 2/);
  });

  it('warns when scores are not probabilities', async () => {
    const { code, err } = await dfd(['metrics', csv('logits.csv', 'label,score\n0,-2.5\n1,3.1\n0,0.2\n'), '--json']);
    expect(code).toBe(0);
    expect(err).toMatch(/2 of 3 scores lie outside \[0, 1\]/);
  });
});

describe('scores CSV parser', () => {
  it('handles BOM, CRLF, quotes, embedded newlines and blank lines, keeping line numbers', () => {
    const table = parseScoresCsv('\ufeffLabel , Score,subset\r\n0,0.25,"a,b"\r\n\r\n1,0.75,"multi\nline ""x"""\r\n', 't.csv');
    expect(table).toEqual({ labels: [0, 1], scores: [0.25, 0.75], subsets: ['a,b', 'multi\nline "x"'], lines: [2, 4] });
  });
});
