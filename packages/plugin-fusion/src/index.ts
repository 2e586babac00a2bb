/**
 * @dfd/plugin-fusion: fusers that combine the CLIP image embedding with FeatureEnhancer outputs — `concat`
 * (with CLaRE's FusionCLIP image side as the `fusion-clip` preset), `sum`, `attention` (enhancer tokens attend
 * over patch tokens) and `roi` (face-region features attended by the global feature).
 */
import { definePlugin } from '@dfd/core';
import { AttentionFuser } from './attention.js';
import { ConcatFuser } from './concat.js';
import { AttentionConfigSchema, ConcatConfigSchema, RoiFuserConfigSchema, SumConfigSchema } from './config.js';
import { FUSION_CLIP_PRESET } from './presets.js';
import { RoiFuser } from './roi.js';
import { SumFuser } from './sum.js';

export * from './config.js';
export * from './common.js';
export * from './concat.js';
export * from './sum.js';
export * from './attention.js';
export * from './roi.js';
export * from './presets.js';

export const fusionPlugin = definePlugin({
  name: '@dfd/plugin-fusion',
  version: '0.1.0',
  register(r) {
    r.add({
      kind: 'fuser',
      name: 'concat',
      description: "Concatenation of the (optionally projected) image embedding and the enhancer features; preset 'fusion-clip' = CLaRE's FusionCLIP image side",
      config: ConcatConfigSchema,
      useClass: ConcatFuser,
      presets: { 'fusion-clip': FUSION_CLIP_PRESET },
    });
    r.add({ kind: 'fuser', name: 'sum', description: 'Learned projections of every input to one width, summed', config: SumConfigSchema, useClass: SumFuser });
    r.add({
      kind: 'fuser',
      name: 'attention',
      description: 'Multi-head cross-attention: one token per enhancer queries the patch tokens; [image, tokens]',
      config: AttentionConfigSchema,
      useClass: AttentionFuser,
    });
    r.add({
      kind: 'fuser',
      name: 'roi',
      description: 'Face-region features (RoI Align of the patch tokens) attended by the image embedding, appended to [image, enhancers]',
      config: RoiFuserConfigSchema,
      useClass: RoiFuser,
    });
  },
});

export default fusionPlugin;
