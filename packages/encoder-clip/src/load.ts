/**
 * `loadClip(dir)`: a Hugging Face CLIP folder → a ready tfjs `ClipEncoder`, without DI. The prompt-learner
 * plugins, the quickstart and `dfd encode` call it.
 */
import { ensureBackend, type BackendChoice } from '@dfd/core';
import { readClipConfigSync } from './config.js';
import { ClipEncoder } from './clip-encoder.js';
import { ClipTokenizer } from './tokenizer.js';
import { ClipWeightsError, findWeightsFile, loadClipWeights } from './weights.js';

export interface LoadClipOptions {
  /** tfjs backend (default: `DFD_BACKEND` or auto). */
  backend?: BackendChoice;
}

/** Selects the tfjs backend (once per process), then loads. */
export async function loadClip(dir: string, options: LoadClipOptions = {}): Promise<ClipEncoder> {
  await ensureBackend(options.backend ?? 'auto');
  return loadClipSync(dir);
}

/**
 * Synchronous load on the tfjs backend already selected (the experiment runner selects it before it
 * assembles components); used by the `encoder: clip` component's factory.
 */
export function loadClipSync(dir: string): ClipEncoder {
  const config = readClipConfigSync(dir);
  const weightsPath = findWeightsFile(dir);
  const tokenizer = ClipTokenizer.fromFolderSync(dir, { contextLength: config.text.maxPositions });
  if (tokenizer.vocabSize > config.text.vocabSize) {
    throw new ClipWeightsError(
      `${dir}: vocab.json has ${tokenizer.vocabSize} tokens but config.json's text_config.vocab_size is ${config.text.vocabSize}; ` +
        'the tokenizer files belong to another checkpoint',
    );
  }
  if (tokenizer.eotId !== config.text.eosTokenId && config.text.eosTokenId !== 2) {
    // eos_token_id 2 is the value of configs written before transformers fixed it; anything else must agree.
    throw new ClipWeightsError(
      `${dir}: vocab.json's <|endoftext|> id is ${tokenizer.eotId} but config.json's text_config.eos_token_id is ${config.text.eosTokenId}`,
    );
  }
  const { tensors } = loadClipWeights(weightsPath, config);
  return new ClipEncoder(config, tensors, tokenizer, dir);
}
