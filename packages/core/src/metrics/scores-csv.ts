/**
 * Scores CSV, the exchange format for scores from any detector (`dfd metrics`, and what a run writes as
 * test-scores.csv): a header naming at least `label` and `score`, optionally `subset` and `video`, other
 * columns ignored. RFC 4180 quoting (fields with commas, quotes or line breaks in double quotes, `""` for a
 * quote); LF or CRLF line ends; a UTF-8 BOM is ignored. Every problem is reported with its line number.
 */
import { readFile } from 'node:fs/promises';

export class ScoresCsvError extends Error {
  override name = 'ScoresCsvError';
}

export interface ScoresTable {
  labels: number[];
  scores: number[];
  /** Present when the CSV has a `subset` column. */
  subsets?: string[];
  /** Present when the CSV has a `video` column. */
  videos?: string[];
  /** Line number (1-based) of each data row, for messages. */
  lines: number[];
}

interface Record_ {
  fields: string[];
  line: number;
}

/** Splits CSV text into records, tracking the line each record starts on. */
export function csvRecords(text: string, file: string): Record_[] {
  const records: Record_[] = [];
  let fields: string[] = [];
  let field = '';
  let quoted = false;
  let afterQuote = false; // just closed a quoted field: only a separator or line end may follow
  let line = 1;
  let recordLine = 1;
  let i = text.charCodeAt(0) === 0xfeff ? 1 : 0;
  const endRecord = () => {
    fields.push(field);
    if (!(fields.length === 1 && fields[0] === '')) records.push({ fields, line: recordLine });
    fields = [];
    field = '';
    afterQuote = false;
  };
  for (; i < text.length; i++) {
    const c = text[i]!;
    if (quoted) {
      if (c === '"') {
        if (text[i + 1] === '"') {
          field += '"';
          i++;
        } else {
          quoted = false;
          afterQuote = true;
        }
      } else {
        if (c === '\n') line++;
        field += c;
      }
      continue;
    }
    if (c === ',') {
      fields.push(field);
      field = '';
      afterQuote = false;
    } else if (c === '\n' || c === '\r') {
      if (c === '\r' && text[i + 1] === '\n') i++;
      endRecord();
      line++;
      recordLine = line;
    } else if (c === '"' && field === '' && !afterQuote) {
      quoted = true;
    } else if (afterQuote) {
      throw new ScoresCsvError(`${file}:${line}: unexpected character '${c}' after a closing quote; a quote inside a quoted field is written ""`);
    } else {
      field += c;
    }
  }
  if (quoted) throw new ScoresCsvError(`${file}:${recordLine}: a quoted field is not closed before the end of the file`);
  if (field !== '' || fields.length > 0) endRecord();
  return records;
}

const REQUIRED = ['label', 'score'] as const;
const OPTIONAL = ['subset', 'video'] as const;

export function parseScoresCsv(text: string, file = 'scores.csv'): ScoresTable {
  const records = csvRecords(text, file);
  if (records.length === 0) throw new ScoresCsvError(`${file}: empty file; expected a header line such as 'label,score,subset,video'`);
  const header = records[0]!;
  const names = header.fields.map((f) => f.trim().toLowerCase());
  const column = new Map<string, number>();
  names.forEach((name, i) => {
    if ((REQUIRED as readonly string[]).includes(name) || (OPTIONAL as readonly string[]).includes(name)) {
      if (column.has(name)) throw new ScoresCsvError(`${file}:${header.line}: column '${name}' appears twice in the header`);
      column.set(name, i);
    }
  });
  const missing = REQUIRED.filter((name) => !column.has(name));
  if (missing.length > 0) {
    throw new ScoresCsvError(
      `${file}:${header.line}: the header has no ${missing.map((m) => `'${m}'`).join(' or ')} column ` +
        `(found: ${header.fields.map((f) => `'${f}'`).join(', ')}); the first line must name the columns, e.g. 'label,score,subset,video'`,
    );
  }
  const table: ScoresTable = { labels: [], scores: [], lines: [] };
  if (column.has('subset')) table.subsets = [];
  if (column.has('video')) table.videos = [];
  for (let r = 1; r < records.length; r++) {
    const { fields, line } = records[r]!;
    if (fields.length !== names.length) {
      throw new ScoresCsvError(`${file}:${line}: ${fields.length} fields, but the header has ${names.length} (${header.fields.join(',')})`);
    }
    const labelText = fields[column.get('label')!]!.trim();
    const label = labelText === '' ? NaN : Number(labelText);
    if (label !== 0 && label !== 1) {
      throw new ScoresCsvError(`${file}:${line}: label '${labelText}' is not 0 (real) or 1 (fake)`);
    }
    const scoreText = fields[column.get('score')!]!.trim();
    const score = scoreText === '' ? NaN : Number(scoreText);
    if (!Number.isFinite(score)) {
      throw new ScoresCsvError(`${file}:${line}: score '${scoreText}' is not a finite number; scores are P(fake)`);
    }
    table.labels.push(label);
    table.scores.push(score);
    table.lines.push(line);
    for (const name of OPTIONAL) {
      const target = name === 'subset' ? table.subsets : table.videos;
      if (!target) continue;
      const value = fields[column.get(name)!]!.trim();
      if (value === '') throw new ScoresCsvError(`${file}:${line}: empty ${name}; every row needs one when the header has a '${name}' column`);
      target.push(value);
    }
  }
  if (table.labels.length === 0) throw new ScoresCsvError(`${file}: a header but no data rows`);
  return table;
}

export async function readScoresCsv(path: string): Promise<ScoresTable> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (error) {
    throw new ScoresCsvError(`cannot read ${path}: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`);
  }
  return parseScoresCsv(text, path);
}
