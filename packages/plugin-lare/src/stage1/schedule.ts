/**
 * The DDPM noise schedule of a Stable Diffusion folder (`scheduler/scheduler_config.json`), computed as
 * diffusers' `DDPMScheduler` computes it, in float32: betas from `torch.linspace(..., dtype=float32)`
 * (squared for `scaled_linear`), `alphas = 1 - betas`, `alphas_cumprod = torch.cumprod(alphas)` (which
 * accumulates in double on CPU and rounds each prefix to float32), and `add_noise`'s coefficients
 * `alphas_cumprod[t] ** 0.5` and `(1 - alphas_cumprod[t]) ** 0.5` in float32.
 *
 * Only what LaRE uses is supported: epsilon prediction and the linear, scaled-linear and
 * squaredcos_cap_v2 beta schedules (or explicit `trained_betas`).
 */
import { readFile } from 'node:fs/promises';

export class ScheduleError extends Error {
  override name = 'ScheduleError';
}

export interface ScheduleConfig {
  numTrainTimesteps: number;
  betaStart: number;
  betaEnd: number;
  betaSchedule: 'linear' | 'scaled_linear' | 'squaredcos_cap_v2';
  predictionType: 'epsilon';
  trainedBetas?: number[];
}

const f32 = Math.fround;

/** Reads diffusers' scheduler config (DDPM, PNDM, DDIM ... all share these keys; other keys are ignored). */
export async function readScheduleConfig(path: string): Promise<ScheduleConfig> {
  let raw: Record<string, unknown>;
  try {
    raw = JSON.parse(await readFile(path, 'utf8')) as Record<string, unknown>;
  } catch (error) {
    throw new ScheduleError(`cannot read the scheduler config ${path}: ${(error as Error).message}`);
  }
  return scheduleFromJson(raw, path);
}

export function scheduleFromJson(raw: Record<string, unknown>, where = 'scheduler config'): ScheduleConfig {
  const num = (key: string, fallback: number): number => {
    const value = raw[key] ?? fallback;
    if (typeof value !== 'number' || !Number.isFinite(value)) throw new ScheduleError(`${where}: ${key} must be a number, got ${JSON.stringify(value)}`);
    return value;
  };
  const schedule = (raw.beta_schedule ?? 'linear') as string;
  if (!['linear', 'scaled_linear', 'squaredcos_cap_v2'].includes(schedule)) {
    throw new ScheduleError(`${where}: beta_schedule '${schedule}' is not supported (linear, scaled_linear, squaredcos_cap_v2)`);
  }
  const prediction = (raw.prediction_type ?? 'epsilon') as string;
  if (prediction !== 'epsilon') {
    throw new ScheduleError(`${where}: prediction_type '${prediction}' is not supported; LaRE compares the UNet's output with the noise (epsilon prediction)`);
  }
  const config: ScheduleConfig = {
    numTrainTimesteps: num('num_train_timesteps', 1000),
    betaStart: num('beta_start', 0.0001),
    betaEnd: num('beta_end', 0.02),
    betaSchedule: schedule as ScheduleConfig['betaSchedule'],
    predictionType: 'epsilon',
  };
  if (!Number.isInteger(config.numTrainTimesteps) || config.numTrainTimesteps < 2) {
    throw new ScheduleError(`${where}: num_train_timesteps must be an integer >= 2, got ${config.numTrainTimesteps}`);
  }
  if (Array.isArray(raw.trained_betas)) config.trainedBetas = raw.trained_betas as number[];
  return config;
}

/** `torch.linspace(start, end, steps, dtype=torch.float32)` (CPU kernel: from both ends towards the middle). */
export function linspaceF32(start: number, end: number, steps: number): Float32Array {
  const out = new Float32Array(steps);
  const s = f32(start);
  const e = f32(end);
  const step = f32(f32(e - s) / (steps - 1));
  const halfway = Math.floor(steps / 2);
  for (let i = 0; i < steps; i++) {
    out[i] = i < halfway ? f32(s + f32(step * i)) : f32(e - f32(step * (steps - i - 1)));
  }
  return out;
}

/** diffusers' `betas_for_alpha_bar` (cosine), computed in float64 and stored as float32. */
function cosineBetas(steps: number, maxBeta = 0.999): Float32Array {
  const alphaBar = (t: number): number => Math.cos(((t + 0.008) / 1.008) * Math.PI * 0.5) ** 2;
  const out = new Float32Array(steps);
  for (let i = 0; i < steps; i++) out[i] = Math.min(1 - alphaBar((i + 1) / steps) / alphaBar(i / steps), maxBeta);
  return out;
}

export function betas(config: ScheduleConfig): Float32Array {
  const n = config.numTrainTimesteps;
  if (config.trainedBetas) {
    if (config.trainedBetas.length !== n) throw new ScheduleError(`trained_betas has ${config.trainedBetas.length} values for ${n} timesteps`);
    return Float32Array.from(config.trainedBetas);
  }
  if (config.betaSchedule === 'linear') return linspaceF32(config.betaStart, config.betaEnd, n);
  if (config.betaSchedule === 'scaled_linear') {
    // Python computes beta_start ** 0.5 in double before torch rounds it to float32.
    const roots = linspaceF32(Math.sqrt(config.betaStart), Math.sqrt(config.betaEnd), n);
    return roots.map((r) => f32(r * r));
  }
  return cosineBetas(n);
}

export function alphasCumprod(config: ScheduleConfig): Float32Array {
  const b = betas(config);
  const out = new Float32Array(b.length);
  let product = 1; // torch's CPU cumprod accumulates float32 inputs in double
  for (let i = 0; i < b.length; i++) {
    product *= f32(1 - b[i]!);
    out[i] = product;
  }
  return out;
}

export interface NoiseCoefficients {
  /** √ᾱ_t (float32). */
  signal: number;
  /** √(1 − ᾱ_t) (float32). */
  noise: number;
}

/** `add_noise`'s coefficients at timestep `t`, in float32. */
export function noiseCoefficients(cumprod: Float32Array, t: number): NoiseCoefficients {
  if (!Number.isInteger(t) || t < 0 || t >= cumprod.length) {
    throw new ScheduleError(`timestep ${t} is outside the schedule's 0..${cumprod.length - 1} (num_train_timesteps ${cumprod.length})`);
  }
  const a = cumprod[t]!;
  return { signal: f32(Math.sqrt(a)), noise: f32(Math.sqrt(f32(1 - a))) };
}

/** `z_t = √ᾱ_t·z0 + √(1−ᾱ_t)·ε` element-wise, float32 as torch computes it. */
export function addNoise(z0: Float32Array, eps: Float32Array, c: NoiseCoefficients, out: Float32Array, outOffset = 0): void {
  for (let i = 0; i < z0.length; i++) out[outOffset + i] = f32(f32(c.signal * z0[i]!) + f32(c.noise * eps[i]!));
}
