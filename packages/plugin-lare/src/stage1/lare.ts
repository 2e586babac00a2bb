/**
 * LaRE stage 1 on onnxruntime: per image, `[C, size/8, size/8]` float32 latent reconstruction error.
 *
 *   x ∈ [−1, 1]^{3×S×S} → VAE → (mean, logvar);  z0 = (mean + exp(logvar/2)·η) · scaling_factor
 *   z_t = √ᾱ_t·z0 + √(1−ᾱ_t)·ε_e  (e = 1..E)      ε̂_e = UNet(z_t, t, text)
 *   LaRE = mean_e (ε̂_e − ε_e)²
 *
 * The text embedding is computed once per extractor. The API takes images (bytes and their content hash),
 * never labels: the prompt is a fixed setting, so nothing about a sample's class can reach its map.
 */
import * as ort from 'onnxruntime-node';
import { addNoise, noiseCoefficients, type NoiseCoefficients } from './schedule.js';
import { readNoiseFile, seededNoise, NOISE_VERSION, type ImageNoise, type LatentShape } from './noise.js';
import type { SdOnnxModel } from './sd-model.js';

export class LareSettingsError extends Error {
  override name = 'LareSettingsError';
}

export interface LareSettings {
  /** Diffusion timestep (LaRE²: 200). */
  timestep: number;
  /** Noise copies averaged per image (LaRE²: 4). */
  ensemble: number;
  /** Side the image is resized to (LaRE²: 256), a multiple of the VAE's downsampling (8). */
  size: number;
  /** The fixed text condition. */
  prompt: string;
  /** Seed of the per-image noise (ignored with `noiseFile`). */
  seed: number;
  /** A safetensors file with `image_noise` and `eps` used for every image instead of seeded noise. */
  noiseFile?: string;
}

export const DEFAULT_PROMPT = 'a photo of a face';

export interface LareImage {
  /** `[3, size, size]` in [−1, 1] (see `larePixels`). */
  pixels: Float32Array;
  /** SHA-256 of the file's bytes: keys the seeded noise. */
  hash: string;
}

export interface StageTimes {
  textMs: number;
  vaeMs: number;
  unetMs: number;
}

/** What identifies the maps a run produces; stored in the index and compared on resume and merge. */
export interface LareRecipe {
  method: 'lare';
  modelDigest: string;
  /** The UNet's precision: fp32 and int8 maps never share a store (resume and merge compare the recipe). */
  precision: SdOnnxModel['precision'];
  quantization: string | null;
  timestep: number;
  ensemble: number;
  size: number;
  prompt: string;
  noise: { kind: 'seeded'; seed: number; version: number } | { kind: 'file'; sha256: string };
  scalingFactor: number;
  schedule: SdOnnxModel['schedule'];
}

/** Sees every output of each VAE and UNet run (static int8 calibration reads its range probes this way). */
export type RunObserver = (graph: 'vae_encoder' | 'unet', outputs: ort.InferenceSession.OnnxValueMapType) => void;

async function run(session: ort.InferenceSession, feeds: Record<string, ort.Tensor>, names: string[], observe?: (outputs: ort.InferenceSession.OnnxValueMapType) => void): Promise<Float32Array[]> {
  const outputs = await session.run(feeds, observe ? session.outputNames : names);
  observe?.(outputs);
  const result = names.map((n) => (outputs[n]!.data as Float32Array).slice());
  for (const t of Object.values(outputs)) t.dispose?.();
  for (const t of Object.values(feeds)) t.dispose?.();
  return result;
}

/** The text encoder's `last_hidden_state` for one prompt: `[L·D]`, and D. */
export async function encodePrompt(model: SdOnnxModel, prompt: string): Promise<{ embedding: Float32Array; length: number; width: number }> {
  const { ids } = model.tokenizer.tokenize([prompt]);
  const L = ids.length;
  const input =
    model.idsType === 'int32' ? new ort.Tensor('int32', Int32Array.from(ids), [1, L]) : new ort.Tensor('int64', BigInt64Array.from(ids, (v) => BigInt(v)), [1, L]);
  const [hidden] = await run(model.textEncoder, { input_ids: input }, [model.textEncoder.outputNames.includes('last_hidden_state') ? 'last_hidden_state' : model.textEncoder.outputNames[0]!]);
  return { embedding: hidden!, length: L, width: hidden!.length / L };
}

/** The VAE encoder's mean and log-variance for `count` images `[count, 3, S, S]`. */
export async function encodeImages(
  model: SdOnnxModel,
  pixels: Float32Array,
  count: number,
  size: number,
  observe?: RunObserver,
): Promise<{ mean: Float32Array; logvar: Float32Array }> {
  const sample = new ort.Tensor('float32', pixels, [count, 3, size, size]);
  const [mean, logvar] = await run(model.vaeEncoder, { sample }, ['latent_mean', 'latent_logvar'], observe && ((outputs) => observe('vae_encoder', outputs)));
  return { mean: mean!, logvar: logvar! };
}

export class LareExtractor {
  readonly times: StageTimes = { textMs: 0, vaeMs: 0, unetMs: 0 };
  private readonly coefficients: NoiseCoefficients;

  private constructor(
    readonly model: SdOnnxModel,
    readonly settings: LareSettings,
    readonly recipe: LareRecipe,
    readonly latent: LatentShape,
    private readonly text: { embedding: Float32Array; length: number; width: number },
    private readonly fixedNoise: ImageNoise | undefined,
    private readonly observe: RunObserver | undefined,
  ) {
    this.coefficients = noiseCoefficients(model.alphasCumprod, settings.timestep);
  }

  static async create(model: SdOnnxModel, settings: LareSettings, noiseDigest?: string, options: { observe?: RunObserver } = {}): Promise<LareExtractor> {
    const { timestep, ensemble, size } = settings;
    const steps = model.alphasCumprod.length;
    if (!Number.isInteger(timestep) || timestep < 0 || timestep >= steps) {
      throw new LareSettingsError(`timestep ${timestep} is outside 0..${steps - 1} (the scheduler's num_train_timesteps is ${steps})`);
    }
    if (!Number.isInteger(ensemble) || ensemble < 1) throw new LareSettingsError(`ensemble must be a positive integer, got ${ensemble}`);
    if (!Number.isInteger(size) || size < model.downsample || size % model.downsample !== 0) {
      throw new LareSettingsError(`size ${size} must be a positive multiple of ${model.downsample} (the VAE's downsampling)`);
    }
    const latent: LatentShape = { channels: model.latentChannels, height: size / model.downsample, width: size / model.downsample };
    const fixedNoise = settings.noiseFile ? await readNoiseFile(settings.noiseFile, ensemble, latent) : undefined;
    const started = performance.now();
    const text = await encodePrompt(model, settings.prompt);
    const recipe: LareRecipe = {
      method: 'lare',
      modelDigest: model.digest,
      precision: model.precision,
      quantization: model.quantization,
      timestep,
      ensemble,
      size,
      prompt: settings.prompt,
      noise: settings.noiseFile ? { kind: 'file', sha256: noiseDigest ?? 'unknown' } : { kind: 'seeded', seed: settings.seed, version: NOISE_VERSION },
      scalingFactor: model.scalingFactor,
      schedule: model.schedule,
    };
    const extractor = new LareExtractor(model, settings, recipe, latent, text, fixedNoise, options.observe);
    extractor.times.textMs += performance.now() - started;
    return extractor;
  }

  get mapShape(): number[] {
    return [this.latent.channels, this.latent.height, this.latent.width];
  }

  noiseFor(hash: string): ImageNoise {
    return this.fixedNoise ?? seededNoise(this.settings.seed, hash, this.settings.ensemble, this.latent);
  }

  /**
   * One map per image, `[C·h·w]` each, in input order. With dynamic int8 (`model.batchDependent`) the images
   * go one per call, so a map never depends on the images sharing its batch.
   */
  async maps(images: LareImage[]): Promise<Float32Array[]> {
    if (this.model.batchDependent && images.length > 1) {
      const maps: Float32Array[] = [];
      for (const image of images) maps.push(...(await this.batchMaps([image])));
      return maps;
    }
    return this.batchMaps(images);
  }

  private async batchMaps(images: LareImage[]): Promise<Float32Array[]> {
    if (!images.length) return [];
    const { size, ensemble: E } = this.settings;
    const B = images.length;
    const per = this.latent.channels * this.latent.height * this.latent.width;
    const pixels = new Float32Array(B * 3 * size * size);
    images.forEach((img, i) => pixels.set(img.pixels, i * 3 * size * size));
    let started = performance.now();
    const { mean, logvar } = await encodeImages(this.model, pixels, B, size, this.observe);
    this.times.vaeMs += performance.now() - started;

    const f32 = Math.fround;
    const sf = f32(this.model.scalingFactor);
    const noisy = new Float32Array(B * E * per);
    const noises = images.map((img) => this.noiseFor(img.hash));
    const z0 = new Float32Array(per);
    for (let b = 0; b < B; b++) {
      const { eta, eps } = noises[b]!;
      for (let i = 0; i < per; i++) {
        const std = f32(Math.exp(f32(0.5 * logvar[b * per + i]!)));
        z0[i] = f32(f32(mean[b * per + i]! + f32(std * eta[i]!)) * sf);
      }
      for (let e = 0; e < E; e++) addNoise(z0, eps.subarray(e * per, (e + 1) * per), this.coefficients, noisy, (b * E + e) * per);
    }
    const { length: L, width: D, embedding } = this.text;
    const hidden = new Float32Array(B * E * L * D);
    for (let k = 0; k < B * E; k++) hidden.set(embedding, k * L * D);
    const t = this.settings.timestep;
    const timestep =
      this.model.timestepType === 'float32'
        ? new ort.Tensor('float32', new Float32Array(B * E).fill(t), [B * E])
        : this.model.timestepType === 'int32'
          ? new ort.Tensor('int32', new Int32Array(B * E).fill(t), [B * E])
          : new ort.Tensor('int64', new BigInt64Array(B * E).fill(BigInt(t)), [B * E]);
    started = performance.now();
    const [predicted] = await run(
      this.model.unet,
      {
        sample: new ort.Tensor('float32', noisy, [B * E, this.latent.channels, this.latent.height, this.latent.width]),
        timestep,
        encoder_hidden_states: new ort.Tensor('float32', hidden, [B * E, L, D]),
      },
      [this.model.unet.outputNames[0]!],
      this.observe && ((outputs) => this.observe!('unet', outputs)),
    );
    this.times.unetMs += performance.now() - started;
    return images.map((_, b) => {
      const { eps } = noises[b]!;
      const map = new Float32Array(per);
      for (let i = 0; i < per; i++) {
        let sum = 0;
        for (let e = 0; e < E; e++) {
          const d = f32(predicted![(b * E + e) * per + i]! - eps[e * per + i]!);
          sum += f32(d * d);
        }
        map[i] = sum / E;
      }
      return map;
    });
  }
}
