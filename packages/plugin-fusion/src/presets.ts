/**
 * CLaRE's FusionCLIP head (shared/reference/methods.md §8.2) as a preset, not a second head:
 *
 *   CLaRE FusionCLIP                                   @dfd
 *   image_proj = Linear(768, 1024) on the CLS embedding  concat fuser, imageProjection 'visionWidth'
 *   conv + MultiHeadMapAttention (EGSR), spatial 16     enhancer lare-egre (output [s, c])
 *   ChannelAlignLayer(4, 128, 1024) (EGCR)              … the `c` half of lare-egre
 *   roi_align + GAP + mean over RoIs (optional, 4096)   enhancer lare-roi (aggregate 'mean'), after lare-egre
 *   text_proj = Linear(768, 3072) on text features      clip-prompt's text_projection (embedDim → fused width)
 *   logits = exp(logit_scale) · cos(image, text)        clip-prompt's logits
 *
 * The experiment: `enhancers: [{ use: 'lare-egre' }]` (plus `{ use: 'lare-roi' }` for the RoI variant),
 * `fuser: { use: 'concat', preset: 'fusion-clip' }`, `detector: clip-prompt`, promptLearner `coop`/`cocoop`.
 * Differences, on purpose: every module trains (CLaRE's optimiser held only the prompt learner); `text_proj`
 * has no bias (clip-prompt's projection; CLaRE's nn.Linear had one, a constant offset shared by both classes);
 * the RoI boxes are scaled to the patch grid; CLaRE's default "v2" attention (a conv stack lifting the map to
 * the query) is not provided — `lare-egre` is LaRE's V6 attention, which CLaRE also offers.
 */
import type { ConcatConfig } from './config.js';

export const FUSION_CLIP_PRESET = { imageProjection: 'visionWidth' } satisfies Partial<ConcatConfig>;
