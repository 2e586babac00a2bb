/**
 * CLIP's byte-level BPE tokenizer, read from a Hugging Face folder's `vocab.json` + `merges.txt` (or from
 * OpenAI's `bpe_simple_vocab_16e6.txt.gz`, which holds the same merges). It reproduces the ids of Hugging
 * Face's `CLIPTokenizer`: NFC normalisation, whitespace runs collapsed to one space, lower-casing, CLIP's
 * pre-tokenisation regex, byte-to-unicode mapping, `</w>` on the last symbol of each word, then SOS + tokens
 * + EOT, truncated so that SOS and EOT always fit in the context length.
 */
import { readFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { gunzipSync } from 'node:zlib';
import { join } from 'node:path';

export const SOS_TOKEN = '<|startoftext|>';
export const EOT_TOKEN = '<|endoftext|>';

/** CLIP's pre-tokenisation pattern (case-insensitive, as in OpenAI's `clip/simple_tokenizer.py`). */
const WORD_PATTERN = /<\|startoftext\|>|<\|endoftext\|>|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+/giu;

/** GPT-2's reversible byte → printable-unicode-character table. */
export function bytesToUnicode(): string[] {
  const bs: number[] = [];
  for (let b = 0x21; b <= 0x7e; b++) bs.push(b);
  for (let b = 0xa1; b <= 0xac; b++) bs.push(b);
  for (let b = 0xae; b <= 0xff; b++) bs.push(b);
  const cs = [...bs];
  let n = 0;
  for (let b = 0; b < 256; b++) {
    if (!bs.includes(b)) {
      bs.push(b);
      cs.push(256 + n);
      n++;
    }
  }
  const table = new Array<string>(256);
  bs.forEach((b, i) => (table[b] = String.fromCodePoint(cs[i]!)));
  return table;
}

/**
 * The 256 byte symbols in the order OpenAI's (and Hugging Face's) vocabulary lists them: the printable
 * bytes first (`!`..`~`, `¡`..`¬`, `®`..`ÿ`), then the remapped ones. Token ids 0..255 follow this order.
 */
export function byteSymbolsInVocabOrder(): string[] {
  const table = bytesToUnicode();
  const printable: number[] = [];
  for (let b = 0x21; b <= 0x7e; b++) printable.push(b);
  for (let b = 0xa1; b <= 0xac; b++) printable.push(b);
  for (let b = 0xae; b <= 0xff; b++) printable.push(b);
  const rest = [...Array(256).keys()].filter((b) => !printable.includes(b));
  return [...printable, ...rest].map((b) => table[b]!);
}

export class TokenizerError extends Error {
  override name = 'TokenizerError';
}

export interface TokenizeOutput {
  /** Row-major `[texts.length, contextLength]` ids, padded with `padId`. */
  ids: Int32Array;
  eotIndices: number[];
  /** BPE tokens per text without SOS/EOT, after truncation. */
  lengths: number[];
  /** True for texts whose tokens were cut to fit the context. */
  truncated: boolean[];
}

export interface ClipTokenizerOptions {
  contextLength?: number;
  /** Id used after EOT. Hugging Face's CLIP checkpoints pad with EOT; OpenAI's `clip.tokenize` pads with 0. */
  padId?: number;
}

export class ClipTokenizer {
  readonly sosId: number;
  readonly eotId: number;
  readonly padId: number;
  readonly contextLength: number;
  private readonly ranks: Map<string, number>;
  private readonly byteTable = bytesToUnicode();
  private readonly cache = new Map<string, number[]>();
  private readonly encoder = new TextEncoder();

  constructor(
    readonly vocab: Map<string, number>,
    merges: Array<[string, string]>,
    options: ClipTokenizerOptions = {},
  ) {
    this.ranks = new Map(merges.map(([a, b], i) => [`${a} ${b}`, i]));
    const sos = vocab.get(SOS_TOKEN);
    const eot = vocab.get(EOT_TOKEN);
    if (sos === undefined || eot === undefined) {
      throw new TokenizerError(`the vocabulary has no ${sos === undefined ? SOS_TOKEN : EOT_TOKEN} token: not a CLIP vocabulary`);
    }
    this.sosId = sos;
    this.eotId = eot;
    this.padId = options.padId ?? eot;
    this.contextLength = options.contextLength ?? 77;
    if (this.contextLength < 2) throw new TokenizerError(`context length ${this.contextLength} leaves no room for SOS and EOT`);
  }

  get vocabSize(): number {
    return this.vocab.size;
  }

  /**
   * Loads `vocab.json` and `merges.txt` from a Hugging Face CLIP folder. The pad id comes from
   * `special_tokens_map.json`/`tokenizer_config.json` when they name a pad token, else EOT.
   */
  static async fromFolder(dir: string, options: ClipTokenizerOptions = {}): Promise<ClipTokenizer> {
    return ClipTokenizer.fromFolderSync(dir, options);
  }

  /** Synchronous `fromFolder` (two small files), for DI factories. */
  static fromFolderSync(dir: string, options: ClipTokenizerOptions = {}): ClipTokenizer {
    const vocabPath = join(dir, 'vocab.json');
    const mergesPath = join(dir, 'merges.txt');
    let vocabText: string;
    let mergesText: string;
    try {
      vocabText = readFileSync(vocabPath, 'utf8');
      mergesText = readFileSync(mergesPath, 'utf8');
    } catch (error) {
      throw new TokenizerError(
        `${dir} has no CLIP tokenizer files (${(error as Error).message}); a Hugging Face CLIP folder holds vocab.json and merges.txt`,
      );
    }
    let parsed: Record<string, number>;
    try {
      parsed = JSON.parse(vocabText) as Record<string, number>;
    } catch {
      throw new TokenizerError(`${vocabPath} is not valid JSON; expected CLIP's token → id map`);
    }
    const vocab = new Map(Object.entries(parsed));
    const merges = parseMerges(mergesText, mergesPath);
    const padToken = readPadToken(dir);
    const padId = options.padId ?? (padToken !== undefined ? vocab.get(padToken) : undefined);
    return new ClipTokenizer(vocab, merges, { ...options, ...(padId !== undefined ? { padId } : {}) });
  }

  /**
   * Builds the tokenizer from OpenAI's `bpe_simple_vocab_16e6.txt.gz` (shipped by the `clip` and `open_clip`
   * Python packages), the same way Hugging Face's conversion builds `vocab.json`: 256 byte symbols, the
   * same with `</w>`, one token per merge (the first 49152 − 256 − 2 merges), then SOS and EOT.
   */
  static async fromOpenAIBpe(gzPath: string, options: ClipTokenizerOptions = {}): Promise<ClipTokenizer> {
    const text = gunzipSync(await readFile(gzPath)).toString('utf8');
    const lines = text.split('\n');
    const merges = lines
      .slice(1, 49152 - 256 - 2 + 1)
      .map((line) => line.split(' ') as [string, string]);
    const symbols = byteSymbolsInVocabOrder();
    const tokens = [...symbols, ...symbols.map((s) => `${s}</w>`), ...merges.map(([a, b]) => a + b), SOS_TOKEN, EOT_TOKEN];
    return new ClipTokenizer(new Map(tokens.map((t, i) => [t, i])), merges, options);
  }

  /** CLIP's text clean-up: NFC, whitespace runs → one space, trimmed, lower-cased. */
  static normalize(text: string): string {
    return text.normalize('NFC').replace(/\s+/gu, ' ').trim().toLowerCase();
  }

  /** BPE token ids of one text, without SOS/EOT and without truncation. */
  encode(text: string): number[] {
    const out: number[] = [];
    const normalized = ClipTokenizer.normalize(text);
    for (const match of normalized.matchAll(WORD_PATTERN)) {
      const word = match[0];
      if (word === SOS_TOKEN) out.push(this.sosId);
      else if (word === EOT_TOKEN) out.push(this.eotId);
      else out.push(...this.encodeWord(word));
    }
    return out;
  }

  /** Texts → `[N, contextLength]` ids with SOS, EOT and padding; long texts are cut to fit. */
  tokenize(texts: string[]): TokenizeOutput {
    const L = this.contextLength;
    const ids = new Int32Array(texts.length * L).fill(this.padId);
    const eotIndices: number[] = [];
    const lengths: number[] = [];
    const truncated: boolean[] = [];
    texts.forEach((text, row) => {
      const tokens = this.encode(text);
      const kept = tokens.slice(0, L - 2);
      const base = row * L;
      ids[base] = this.sosId;
      kept.forEach((id, i) => (ids[base + 1 + i] = id));
      ids[base + 1 + kept.length] = this.eotId;
      eotIndices.push(1 + kept.length);
      lengths.push(kept.length);
      truncated.push(kept.length < tokens.length);
    });
    return { ids, eotIndices, lengths, truncated };
  }

  /** Token strings (for debugging and for checking that words stay whole). */
  tokenStrings(text: string): string[] {
    const inverse = new Map([...this.vocab].map(([t, i]) => [i, t]));
    return this.encode(text).map((id) => inverse.get(id) ?? `<${id}>`);
  }

  private encodeWord(word: string): number[] {
    const cached = this.cache.get(word);
    if (cached) return cached;
    const bytes = this.encoder.encode(word);
    const symbols = Array.from(bytes, (b) => this.byteTable[b]!);
    const pieces = this.bpe(symbols);
    const ids = pieces.map((piece) => {
      const id = this.vocab.get(piece);
      if (id === undefined) throw new TokenizerError(`BPE piece '${piece}' of '${word}' is not in the vocabulary: vocab.json and merges.txt do not match`);
      return id;
    });
    if (this.cache.size < 100_000) this.cache.set(word, ids);
    return ids;
  }

  /** Greedy lowest-rank merging, the last symbol carrying the `</w>` word end. */
  private bpe(symbols: string[]): string[] {
    if (symbols.length === 0) return [];
    let word = [...symbols.slice(0, -1), `${symbols.at(-1)}</w>`];
    while (word.length > 1) {
      let best = -1;
      let bestRank = Number.POSITIVE_INFINITY;
      for (let i = 0; i < word.length - 1; i++) {
        const rank = this.ranks.get(`${word[i]} ${word[i + 1]}`);
        if (rank !== undefined && rank < bestRank) {
          bestRank = rank;
          best = i;
        }
      }
      if (best < 0) break;
      const first = word[best]!;
      const second = word[best + 1]!;
      // Merge every occurrence of the pair, left to right, as the reference does.
      const next: string[] = [];
      for (let i = 0; i < word.length; ) {
        if (i < word.length - 1 && word[i] === first && word[i + 1] === second) {
          next.push(first + second);
          i += 2;
        } else {
          next.push(word[i]!);
          i += 1;
        }
      }
      word = next;
    }
    return word;
  }
}

function parseMerges(text: string, path: string): Array<[string, string]> {
  const merges: Array<[string, string]> = [];
  const lines = text.split('\n');
  lines.forEach((line, index) => {
    if (index === 0 && line.startsWith('#version')) return;
    if (line.trim() === '') return;
    const parts = line.split(' ');
    if (parts.length !== 2) throw new TokenizerError(`${path}:${index + 1}: expected two symbols per merge line, got '${line}'`);
    merges.push([parts[0]!, parts[1]!]);
  });
  return merges;
}

function readPadToken(dir: string): string | undefined {
  for (const file of ['special_tokens_map.json', 'tokenizer_config.json']) {
    try {
      const json = JSON.parse(readFileSync(join(dir, file), 'utf8')) as { pad_token?: string | { content?: string } };
      const pad = json.pad_token;
      if (typeof pad === 'string') return pad;
      if (pad && typeof pad.content === 'string') return pad.content;
    } catch {
      // optional files
    }
  }
  return undefined;
}
