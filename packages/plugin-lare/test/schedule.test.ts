import { describe, expect, it } from 'vitest';
import { alphasCumprod, noiseCoefficients, scheduleFromJson, ScheduleError } from '../src/stage1/schedule.js';
import { reference } from './helpers.js';

describe('DDPM schedule = diffusers DDPMScheduler.alphas_cumprod', () => {
  const configs = {
    sd: { num_train_timesteps: 1000, beta_start: 0.00085, beta_end: 0.012, beta_schedule: 'scaled_linear' },
    linear500: { num_train_timesteps: 500, beta_start: 0.0001, beta_end: 0.02, beta_schedule: 'linear' },
    cosine: { num_train_timesteps: 1000, beta_schedule: 'squaredcos_cap_v2' },
  };
  for (const [name, json] of Object.entries(configs)) {
    it(`${name}: every timestep within 1 float32 ulp`, async () => {
      const ours = alphasCumprod(scheduleFromJson(json));
      const theirs = await reference(`${name}.alphas_cumprod`, 'schedules.safetensors');
      expect(ours.length).toBe(theirs.length);
      let worst = 0;
      for (let i = 0; i < ours.length; i++) worst = Math.max(worst, Math.abs(ours[i]! - theirs[i]!) / Math.abs(theirs[i]!));
      expect(worst).toBeLessThan(2.5e-7);
    });
  }

  it('t = 0 and t = N−1 are valid; t = N and fractional t are refused with the range', () => {
    const cumprod = alphasCumprod(scheduleFromJson(configs.sd));
    expect(noiseCoefficients(cumprod, 0).signal).toBeGreaterThan(0.99);
    expect(noiseCoefficients(cumprod, 999).noise).toBeGreaterThan(0.99);
    expect(() => noiseCoefficients(cumprod, 1000)).toThrow(/outside the schedule's 0..999/);
    expect(() => noiseCoefficients(cumprod, 1.5)).toThrow(ScheduleError);
  });

  it('refuses v-prediction and unknown beta schedules instead of computing a wrong target', () => {
    expect(() => scheduleFromJson({ prediction_type: 'v_prediction' })).toThrow(/epsilon/);
    expect(() => scheduleFromJson({ beta_schedule: 'sigmoid' })).toThrow(/not supported/);
  });
});
