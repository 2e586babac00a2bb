/**
 * DF40 method names and their aliases. DF40's folders, zip files, JSON keys and paper tables spell the
 * same method differently (`whichfaceisreal` folder vs `whichisreal` key, `MRAA` vs `mraa`, `PixArt` vs
 * `pixart`, ...). Every name that enters this package goes through `canonicalMethod`, so a user can type
 * any spelling and two spellings never become two subsets.
 */

/** Canonical spelling → other spellings seen in DF40's folders, JSONs, zips and paper. */
export const METHOD_ALIASES: Readonly<Record<string, readonly string[]>> = {
  // the 9 "unknown" sets (P3); canonical spellings are the ones the evaluation reports use
  heygen: ['HeyGen'],
  MidJourney: ['midjourney', 'MidJourney6', 'mj'],
  whichfaceisreal: ['whichisreal', 'WhichisReal', 'which_face_is_real', 'wfir'],
  stargan: ['StarGAN'],
  starganv2: ['StarGANv2', 'stargan_v2', 'StarGAN2'],
  styleclip: ['StyleCLIP'],
  e4e: ['E4E'],
  CollabDiff: ['collabdiff', 'collaborative_diffusion'],
  deepfacelab: ['DeepFaceLab', 'dfl'],
  // face swapping (FS)
  fsgan: ['FSGAN'],
  faceswap: ['FaceSwap'],
  simswap: ['SimSwap'],
  inswap: ['inswapper', 'InSwapper', 'insightface_swap'],
  blendface: ['BlendFace'],
  uniface: ['UniFace'],
  mobileswap: ['MobileSwap', 'mobile_faceswap'],
  e4s: ['E4S'],
  facedancer: ['FaceDancer'],
  // face reenactment (FR)
  fomm: ['FOMM', 'first_order_motion'],
  facevid2vid: ['FS_vid2vid', 'fs_vid2vid', 'face_vid2vid'],
  wav2lip: ['Wav2Lip'],
  mraa: ['MRAA'],
  one_shot_free: ['OneShot', 'oneshot', 'one_shot'],
  pirender: ['PIRender'],
  tpsm: ['TPSM'],
  lia: ['LIA'],
  danet: ['DaGAN', 'dagan'],
  sadtalker: ['SadTalker'],
  mcnet: ['MCNet'],
  hyperreenact: ['HyperReenact'],
  // entire face synthesis (EFS)
  VQGAN: ['vqgan'],
  StyleGAN2: ['stylegan2'],
  StyleGAN3: ['stylegan3'],
  StyleGANXL: ['stylegan_xl', 'StyleGAN-XL', 'styleganxl'],
  'sd2.1': ['sd21', 'SD-2.1', 'sd2_1', 'stable_diffusion_2.1'],
  ddim: ['DDPM', 'ddpm', 'DDIM'],
  rddm: ['RDDM'],
  pixart: ['PixArt', 'PixArt-α', 'pixart_alpha', 'PixArt-alpha'],
  DiT: ['dit', 'DiT-XL/2', 'DiT-XL-2'],
  SiT: ['sit', 'SiT-XL/2', 'SiT-XL-2'],
};

/**
 * The 8 unknown-type test subsets the seed protocol evaluates (DF40 P3 without deepfacelab). One list,
 * owned by core's df40 evaluator, so dataset subset names and evaluator subsets cannot drift apart.
 */
export { DF40_TEST_SUBSETS } from '@dfd/core';

/** Domains of the known methods: FaceForensics++ (c23) and Celeb-DF. */
export const DOMAINS = ['ff', 'cdf'] as const;

/** Lower case, letters and digits only: `PixArt-α` and `pixart_alpha` compare by this key. */
export function nameKey(name: string): string {
  return name.toLowerCase().replace(/[^a-z0-9]/g, '');
}

const byKey = new Map<string, string>();
for (const [canonical, aliases] of Object.entries(METHOD_ALIASES)) {
  byKey.set(nameKey(canonical), canonical);
  for (const alias of aliases) byKey.set(nameKey(alias), canonical);
}

/** The canonical method spelling, or the input unchanged when it is not a DF40 method (e.g. `FSAll_ff`). */
export function canonicalMethod(name: string): string {
  return byKey.get(nameKey(name)) ?? name;
}

/** Whether `name` is a known DF40 method under any spelling. */
export function isKnownMethod(name: string): boolean {
  return byKey.has(nameKey(name));
}

/**
 * Canonical subset name of a DF40 dataset key or folder: `SimSwap_ff` → `simswap_ff`, `whichisreal` →
 * `whichfaceisreal`. A `_ff`/`_cdf` domain suffix is kept; names that are not methods are returned as given.
 */
export function canonicalSubset(name: string): string {
  const match = /^(.*?)[_-](ff|cdf)$/i.exec(name);
  if (match && isKnownMethod(match[1]!)) return `${canonicalMethod(match[1]!)}_${match[2]!.toLowerCase()}`;
  return canonicalMethod(name);
}

/** True when two spellings name the same subset. */
export function sameSubset(a: string, b: string): boolean {
  return nameKey(canonicalSubset(a)) === nameKey(canonicalSubset(b));
}
