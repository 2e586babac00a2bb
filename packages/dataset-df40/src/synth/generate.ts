/**
 * `generateMiniDf40`: a synthetic DF40 in DF40's layout, with DeepfakeBench JSONs, for the quickstart,
 * the tests and the benchmarks. Same options and seed → same bytes (PNG encoding by the same sharp).
 *
 *   dataset_json/<key>.json                                   one per dataset, authors' prefixes kept
 *   FaceForensics++/original_sequences/youtube/c23/{frames,landmarks}/<vid>/<n>.png|.npy   FF++ reals
 *   DF40_train/<method>/ff/{frames,landmarks}/<vid>/<n>.*      training fakes (train + val)
 *   DF40/<method>/ff/frames/<vid>/<n>.png                      known-method test fakes
 *   DF40/<set>/{fake,real}/frames/<vid>/<n>.png                the 8 unknown test sets with their reals
 *
 * On purpose, like DF40: JSON keys differ from folders (`whichisreal` vs `whichfaceisreal`, `PixArt_ff`
 * vs `pixart`, `FS_vid2vid_ff` vs `facevid2vid`), FF++ reals sit under a `c23` level, EFS fakes reuse the
 * real videos' folder names, and unknown sets name real and fake videos alike.
 */
import { mkdir, readdir, rm, stat, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import sharp from 'sharp';
import { rngFor } from '@dfd/core';
import { encodeNpy } from '../npy.js';
import { mapPool } from '../pool.js';
import { randomIdentity, randomPose, renderFace } from './face.js';
import { applyDomain, SYNTH_DOMAINS, METHODS, synthSubsetGroups, type MethodSpec } from './methods.js';

export interface SynthOptions {
  /** Output folder (the dataset root). */
  out: string;
  /** Fake videos per training method in train (val and test get a quarter); fake and real videos per test set. */
  videos?: number;
  /** Frames per video. */
  frames?: number;
  /** Image side in pixels. */
  size?: number;
  seed?: number;
  /** Replace an existing synthetic tree in `out` (one with synth.json). */
  overwrite?: boolean;
}

export interface SynthResult {
  out: string;
  images: number;
  videos: number;
  jsonFiles: string[];
  datasets: string[];
  seconds: number;
}

/** The authors' prefixes the JSONs are written with (rewritten on load). */
export const SYNTH_PREFIX_DF40 = '/data/home/zhiyuanyan/deepfake_detection_datasets';
export const SYNTH_PREFIX_FF = 'deepfakes_detection_datasets';
const FF_REAL_DIR = 'FaceForensics++/original_sequences/youtube/c23';
const MANAGED = ['dataset_json', 'FaceForensics++', 'DF40_train', 'DF40', 'synth.json'];

/**
 * The generator's layout/content version, recorded in synth.json: 2 added artefact families and gave three
 * test sets families absent from training. Consumers regenerate an older tree rather than mix versions.
 */
export const SYNTH_VERSION = 2;

export class SynthError extends Error {
  override name = 'SynthError';
}

interface ImageTask {
  rel: string;
  landmarksRel?: string;
  method?: MethodSpec;
  domain: keyof typeof SYNTH_DOMAINS;
  identityKey: string;
  frameKey: string;
}

interface VideoListing {
  video: string;
  frames: string[];
}

const pad3 = (n: number) => String(n).padStart(3, '0');

export async function generateMiniDf40(options: SynthOptions): Promise<SynthResult> {
  const started = Date.now();
  const videos = options.videos ?? 8;
  const frames = options.frames ?? 4;
  const size = options.size ?? 64;
  const seed = options.seed ?? 0;
  if (!(videos >= 1 && frames >= 1 && size >= 16)) throw new SynthError(`synth needs videos ≥ 1, frames ≥ 1 and size ≥ 16 (got ${videos}, ${frames}, ${size})`);
  await prepareOut(options.out, options.overwrite ?? false);

  const small = Math.max(1, Math.ceil(videos / 4));
  const trainMethods = METHODS.filter((m) => m.role === 'train');
  const testSets = METHODS.filter((m) => m.role === 'test');
  const tasks: ImageTask[] = [];
  const frameNames = Array.from({ length: frames }, (_, f) => pad3(f));

  const addVideo = (dir: string, video: string, spec: Omit<ImageTask, 'rel' | 'frameKey' | 'landmarksRel'>, landmarks: boolean): VideoListing => {
    const listed: string[] = [];
    for (const f of frameNames) {
      const rel = `${dir}/frames/${video}/${f}.png`;
      listed.push(rel);
      tasks.push({ ...spec, rel, frameKey: `${spec.identityKey}/${f}`, ...(landmarks ? { landmarksRel: `${dir}/landmarks/${video}/${f}.npy` } : {}) });
    }
    return { video, frames: listed };
  };

  // FF++ reals: sequential ids, train first; each split big enough to pair with every method's fakes.
  const realCount = { train: videos * trainMethods.length, val: small * trainMethods.length, test: small * trainMethods.length };
  const ffReals: Record<'train' | 'val' | 'test', VideoListing[]> = { train: [], val: [], test: [] };
  let next = 0;
  for (const split of ['train', 'val', 'test'] as const) {
    for (let i = 0; i < realCount[split]; i++) {
      const video = pad3(next++);
      ffReals[split].push(addVideo(FF_REAL_DIR, video, { domain: 'ff', identityKey: `ff/${video}` }, true));
    }
  }

  const jsons: Record<string, unknown> = {};
  const ffPath = (rel: string) => `${SYNTH_PREFIX_FF}/${rel}`;
  const dfPath = (rel: string) => `${SYNTH_PREFIX_DF40}/${rel}`;
  const asEntries = (list: VideoListing[], label: string, toPath: (rel: string) => string) =>
    Object.fromEntries(list.map((v) => [v.video, { label, frames: v.frames.map(toPath) }]));

  trainMethods.forEach((method, m) => {
    const fakes: Record<string, VideoListing[]> = { train: [], val: [], test: [] };
    for (const split of ['train', 'val', 'test'] as const) {
      const count = split === 'train' ? videos : small;
      const reals = ffReals[split];
      for (let i = 0; i < count; i++) {
        const target = reals[(m * count + i) % reals.length]!.video;
        const source = reals[(m * count + i + 1) % reals.length]!.video;
        // EFS (pixart) fakes reuse the real video's folder name, as in DF40; swaps/reenactments are target_source.
        const video = method.folder === 'pixart' ? target : `${target}_${source}`;
        const dir = `${split === 'test' ? 'DF40' : 'DF40_train'}/${method.folder}/ff`;
        // The fake keeps the target video's identity: real and fake differ by the method's fingerprint.
        fakes[split]!.push(addVideo(dir, video, { method, domain: 'ff', identityKey: `ff/${target}` }, method.folder !== 'pixart'));
      }
    }
    const real = `${method.jsonKey}_Real`;
    const fake = `${method.jsonKey}_Fake`;
    jsons[method.jsonKey] = {
      [method.jsonKey]: {
        [real]: Object.fromEntries((['train', 'val', 'test'] as const).map((s) => [s, { c23: asEntries(ffReals[s], real, ffPath) }])),
        [fake]: Object.fromEntries((['train', 'val', 'test'] as const).map((s) => [s, asEntries(fakes[s]!, fake, dfPath)])),
      },
    };
  });

  for (const set of testSets) {
    const lists: Record<'fake' | 'real', VideoListing[]> = { fake: [], real: [] };
    for (const label of ['fake', 'real'] as const) {
      for (let i = 0; i < videos; i++) {
        const video = pad3(i);
        lists[label].push(
          addVideo(`DF40/${set.folder}/${label}`, video, {
            ...(label === 'fake' ? { method: set } : {}),
            domain: set.domain,
            identityKey: `${set.folder}/${label}/${video}`,
          }, false),
        );
      }
    }
    jsons[set.jsonKey] = {
      [set.jsonKey]: {
        [`${set.jsonKey}_Real`]: { train: {}, val: {}, test: asEntries(lists.real, `${set.jsonKey}_Real`, dfPath) },
        [`${set.jsonKey}_Fake`]: { train: {}, val: {}, test: asEntries(lists.fake, `${set.jsonKey}_Fake`, dfPath) },
      },
    };
  }

  await mapPool(tasks, 4, (task) => writeImage(options.out, task, size, seed));

  const jsonFiles: string[] = [];
  await mkdir(join(options.out, 'dataset_json'), { recursive: true });
  for (const key of Object.keys(jsons).sort()) {
    const file = join(options.out, 'dataset_json', `${key}.json`);
    await writeFile(file, JSON.stringify(jsons[key], null, 1) + '\n');
    jsonFiles.push(file);
  }
  const manifest = {
    generator: '@dfd/dataset-df40 synth',
    version: SYNTH_VERSION,
    options: { videos, frames, size, seed },
    images: tasks.length,
    domains: Object.fromEntries(Object.entries(SYNTH_DOMAINS).map(([k, v]) => [k, v.description])),
    methods: METHODS.map((m) => ({ folder: m.folder, jsonKey: m.jsonKey, role: m.role, domain: m.domain, family: m.family, fingerprint: m.fingerprint })),
    // Test sets whose artefact family the training methods show, and those whose family they do not.
    subsetGroups: synthSubsetGroups(),
  };
  await writeFile(join(options.out, 'synth.json'), JSON.stringify(manifest, null, 2) + '\n');
  const videoCount = new Set(tasks.map((t) => dirname(t.rel))).size;
  return { out: options.out, images: tasks.length, videos: videoCount, jsonFiles, datasets: Object.keys(jsons).sort(), seconds: (Date.now() - started) / 1000 };
}

async function prepareOut(out: string, overwrite: boolean): Promise<void> {
  const existing = await readdir(out).catch(() => undefined);
  if (existing && existing.length > 0) {
    if (!existing.includes('synth.json')) {
      throw new SynthError(`${out} exists and is not a synthetic mini-DF40 (no synth.json); choose an empty or new folder`);
    }
    if (!overwrite) throw new SynthError(`${out} already holds a synthetic mini-DF40; pass --force (overwrite) to regenerate it`);
    for (const name of MANAGED) await rm(join(out, name), { recursive: true, force: true });
  }
  await mkdir(out, { recursive: true });
  if (!(await stat(out)).isDirectory()) throw new SynthError(`${out} is not a folder`);
}

async function writeImage(out: string, task: ImageTask, size: number, seed: number): Promise<void> {
  const identity = randomIdentity(rngFor(seed, `identity/${task.identityKey}`));
  const frameRng = rngFor(seed, `frame/${task.frameKey}/${task.method?.folder ?? 'real'}`);
  const face = renderFace(size, identity, randomPose(frameRng));
  if (task.method) task.method.apply(face, rngFor(seed, `fingerprint/${task.method.folder}/${task.identityKey}`));
  applyDomain(face.canvas, task.domain, task.method ? task.method.noise : 1, frameRng);
  const file = join(out, task.rel);
  await mkdir(dirname(file), { recursive: true });
  const png = await sharp(face.canvas.toBytes(), { raw: { width: size, height: size, channels: 3 } })
    .png({ compressionLevel: 6, adaptiveFiltering: false })
    .toBuffer();
  await writeFile(file, png);
  if (task.landmarksRel) {
    const npy = join(out, task.landmarksRel);
    await mkdir(dirname(npy), { recursive: true });
    await writeFile(npy, encodeNpy(face.landmarks, [face.landmarks.length / 2, 2]));
  }
}
