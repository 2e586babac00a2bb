/**
 * From videos (a subset, a label, a split and frame paths) to `Sample`s: drop frames not on disk (counted
 * as `missing`), count videos left with none (`empty`), sort frames by integer stem, sample N per video,
 * attach face boxes and extra-file paths. Shared by the JSON and folder datasets.
 */
import { basename, dirname, extname, join, relative, sep } from 'node:path';
import type { FaceBox, Label, Sample, Split } from '@dfd/core';
import { boxesFromLandmarks, templateBoxes } from './boxes.js';
import { sampleFrameIndices, sortFrames, frameNumber, type FrameSampling } from './frames.js';
import type { IssueLog } from './issues.js';
import { labelName } from './labels.js';
import { readNpy } from './npy.js';
import type { DirCache } from './paths.js';
import { mapPool } from './pool.js';

export interface VideoRef {
  subset: string;
  label: Label;
  split: Split;
  /** The video's key (JSON key or folder name); unique within (subset, label). */
  video: string;
  /** Absolute frame paths. */
  frames: string[];
  /** Where the video was listed (a JSON file or a folder), for messages. */
  source: string;
  /** Frames come from a directory listing, so they exist. */
  verified?: boolean;
}

export type FaceBoxMode = 'auto' | 'landmarks' | 'template' | 'none';

export interface ExtraSource {
  /** Folder mirroring the dataset root, or (without `ext`) an extras store (`dfd lare extract` output). */
  root: string;
  /** Extension replacing the image's, e.g. `.safetensors` or `.npy`; absent for an extras store. */
  ext?: string | undefined;
}

export interface ListingOptions {
  root: string;
  framesPerVideo: number;
  sampling: FrameSampling;
  faceBoxes: FaceBoxMode;
  /** Size of the aligned crops template boxes are computed for (DF40: 256). */
  alignedSize: number;
  extras: Record<string, ExtraSource>;
  dirs: DirCache;
  issues: IssueLog;
}

/** DF40 keeps landmarks beside frames: `.../frames/<video>/<n>.png` → `.../landmarks/<video>/<n>.npy`. */
export function landmarkPathFor(framePath: string): string | undefined {
  const marker = `${sep}frames${sep}`;
  const at = framePath.lastIndexOf(marker);
  if (at < 0) return undefined;
  const rest = framePath.slice(at + marker.length);
  return join(framePath.slice(0, at), 'landmarks', rest.slice(0, rest.length - extname(rest).length) + '.npy');
}

export function videoIdOf(subset: string, label: Label, video: string): string {
  return `${subset}/${labelName(label)}/${video}`;
}

const IMAGE_EXT = /\.(png|jpe?g|webp)$/i;

/**
 * The listed frames that exist, and those that do not. An entry naming a folder instead of a file (DF40's
 * `DF40_all.json` lists video folders) stands for the images inside it.
 */
export async function existingFrames(frames: readonly string[], dirs: DirCache): Promise<{ kept: string[]; missing: string[] }> {
  const kept: string[] = [];
  const missing: string[] = [];
  for (const frame of frames) {
    const names = await dirs.list(dirname(frame));
    if (!names?.has(basename(frame))) {
      missing.push(frame);
      continue;
    }
    const inside = IMAGE_EXT.test(frame) ? null : await dirs.list(frame);
    if (inside) kept.push(...[...inside].filter((n) => IMAGE_EXT.test(n)).sort().map((n) => join(frame, n)));
    else kept.push(frame);
  }
  return { kept, missing };
}

async function boxesFor(path: string, options: ListingOptions): Promise<FaceBox[] | undefined> {
  if (options.faceBoxes === 'none') return undefined;
  if (options.faceBoxes !== 'template') {
    const landmarks = landmarkPathFor(path);
    if (landmarks && (await options.dirs.list(dirname(landmarks)))?.has(basename(landmarks))) {
      try {
        const array = await readNpy(landmarks);
        const boxes = boxesFromLandmarks(array.data, array.shape[0] ?? 0);
        if (boxes) return boxes;
        options.issues.note(`${landmarks}: expected [68|81, 2] landmarks, got [${array.shape.join(', ')}]; using template boxes`);
      } catch (error) {
        options.issues.note(`${(error as Error).message}; using template boxes`);
      }
    }
    if (options.faceBoxes === 'landmarks') return undefined;
  }
  return templateBoxes(options.alignedSize, options.alignedSize);
}

function extrasFor(path: string, options: ListingOptions): Record<string, string> | undefined {
  const keys = Object.keys(options.extras);
  if (keys.length === 0) return undefined;
  const rel = relative(options.root, path);
  const stem = rel.slice(0, rel.length - extname(rel).length);
  // An extras store is one folder for all images: the sample carries the store root, and loadExtra looks
  // the image up in its index (by path, then by content hash).
  return Object.fromEntries(
    keys.map((key) => {
      const source = options.extras[key]!;
      return [key, source.ext === undefined ? source.root : join(source.root, stem + source.ext)];
    }),
  );
}

/** Frames the protocol takes from a video with `available` frame files (0 per video = all). */
function framesTaken(available: number, framesPerVideo: number): number {
  return framesPerVideo > 0 ? Math.min(framesPerVideo, available) : available;
}

/**
 * Records what listing left out of a video, for the evaluation's coverage: a video with no frame on disk
 * costs the frames the protocol would have taken from it (`missing` when its folder is absent, `empty`
 * when it is there without images); missing frames of a video cost only what sampling could not replace.
 */
async function recordListingDrops(ref: VideoRef, kept: readonly string[], absent: readonly string[], options: ListingOptions): Promise<void> {
  const videoId = videoIdOf(ref.subset, ref.label, ref.video);
  const base = { split: ref.split, subset: ref.subset, videoId };
  const listedImages = ref.frames.filter((f) => IMAGE_EXT.test(f)).length;
  if (kept.length === 0) {
    const folder = ref.frames[0] ? (IMAGE_EXT.test(ref.frames[0]) ? dirname(ref.frames[0]) : ref.frames[0]) : ref.source;
    const exists = ref.verified || Boolean(await options.dirs.list(folder));
    const frames = listedImages > 0 ? framesTaken(listedImages, options.framesPerVideo) : options.framesPerVideo;
    options.issues.drops.push({ ...base, path: folder, reason: exists ? 'empty' : 'missing', frames, message: exists ? 'no image in the video folder' : 'video folder not on disk' });
    return;
  }
  let cost = framesTaken(listedImages || kept.length + absent.length, options.framesPerVideo) - framesTaken(kept.length, options.framesPerVideo);
  for (const path of absent) {
    const frames = cost > 0 ? 1 : 0;
    cost -= frames;
    options.issues.drops.push({ ...base, path, reason: 'missing', frames, message: frames ? 'frame not on disk' : 'frame not on disk; sampling took another frame of the video' });
  }
}

export async function samplesFromVideos(refs: readonly VideoRef[], options: ListingOptions): Promise<Sample[]> {
  const perVideo = await mapPool(refs, 32, async (ref) => {
    const { kept: existing, missing: absent } = ref.verified ? { kept: ref.frames, missing: [] } : await existingFrames(ref.frames, options.dirs);
    const missing = absent.length;
    const listed = existing.length + missing;
    options.issues.missing += missing;
    await recordListingDrops(ref, existing, absent, options);
    const videoId = videoIdOf(ref.subset, ref.label, ref.video);
    if (existing.length === 0) {
      options.issues.empty++;
      const where = ref.frames[0] ? dirname(ref.frames[0]) : '(no frames listed)';
      options.issues.note(
        `${videoId} (${ref.split}, listed in ${ref.source}): no frame on disk of ${ref.frames.length} listed, e.g. ${where}; ` +
          `check the prefix rewriting (prefixes) or re-download this video`,
      );
      return [];
    }
    if (missing > 0) {
      options.issues.note(`${videoId} (${ref.source}): ${missing} of ${listed} listed frames missing, e.g. ${absent[0]}`);
    }
    const sorted = sortFrames(existing);
    const picked = sampleFrameIndices(sorted.length, options.framesPerVideo, options.sampling);
    return Promise.all(
      picked.map(async (index): Promise<Sample> => {
        const path = sorted[index]!;
        const boxes = await boxesFor(path, options);
        const extras = extrasFor(path, options);
        return {
          id: `${ref.subset}:${relative(options.root, path).split(sep).join('/')}`,
          path,
          label: ref.label,
          subset: ref.subset,
          split: ref.split,
          videoId,
          frameIndex: frameNumber(path) ?? index,
          ...(boxes ? { boxes } : {}),
          ...(extras ? { extras } : {}),
        };
      }),
    );
  });
  return perVideo.flat();
}
