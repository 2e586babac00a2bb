/**
 * Procedural aligned faces. Features sit where DF40's alignment puts them (the DeepfakeBench 5-point
 * template of boxes.ts, in units of the image side), so template boxes and RoI pooling line up with the
 * synthetic faces as they do with DF40's crops. Identities vary skin tone, face shape, hair, eyes, mouth,
 * background and light; frames of one video vary pose and light slightly.
 */
import type { Rng } from '@dfd/core';
import { alignmentTemplate } from '../boxes.js';
import { Canvas } from './canvas.js';

const SKIN_TONES: ReadonlyArray<readonly number[]> = [
  [255, 224, 196], [241, 194, 167], [224, 172, 135], [198, 134, 100], [161, 102, 70], [120, 75, 50], [89, 56, 38],
];
const HAIR: ReadonlyArray<readonly number[]> = [
  [30, 22, 18], [70, 45, 28], [120, 80, 40], [200, 160, 90], [150, 60, 30], [110, 110, 110], [20, 20, 25],
];
const IRIS: ReadonlyArray<readonly number[]> = [[70, 45, 25], [40, 90, 140], [60, 110, 70], [100, 70, 40], [30, 30, 30]];

export interface FaceIdentity {
  skin: number[];
  hair: number[];
  hairHeight: number;
  iris: readonly number[];
  lips: number[];
  bgA: number[];
  bgB: number[];
  bgAngle: number;
  faceWidth: number;
  faceHeight: number;
  mouthWidth: number;
  browTilt: number;
  lightAngle: number;
  lightStrength: number;
}

export interface FramePose {
  dx: number;
  dy: number;
  lightAngle: number;
  mouthOpen: number;
}

const jitter = (rng: Rng, color: readonly number[], amount: number) => color.map((c) => Math.min(255, Math.max(0, c + rng.uniform(-amount, amount))));

export function randomIdentity(rng: Rng): FaceIdentity {
  const skin = jitter(rng, SKIN_TONES[rng.int(SKIN_TONES.length)]!, 12);
  return {
    skin,
    hair: jitter(rng, HAIR[rng.int(HAIR.length)]!, 15),
    hairHeight: rng.uniform(0.26, 0.36),
    iris: IRIS[rng.int(IRIS.length)]!,
    lips: jitter(rng, [skin[0]! * 0.8 + 30, skin[1]! * 0.55, skin[2]! * 0.55], 10),
    bgA: [rng.uniform(20, 235), rng.uniform(20, 235), rng.uniform(20, 235)],
    bgB: [rng.uniform(20, 235), rng.uniform(20, 235), rng.uniform(20, 235)],
    bgAngle: rng.uniform(0, 2 * Math.PI),
    faceWidth: rng.uniform(0.25, 0.3),
    faceHeight: rng.uniform(0.33, 0.38),
    mouthWidth: rng.uniform(0.085, 0.12),
    browTilt: rng.uniform(-0.15, 0.15),
    lightAngle: rng.uniform(0, 2 * Math.PI),
    lightStrength: rng.uniform(0.05, 0.25),
  };
}

export function randomPose(rng: Rng): FramePose {
  return { dx: rng.uniform(-0.015, 0.015), dy: rng.uniform(-0.015, 0.015), lightAngle: rng.uniform(-0.3, 0.3), mouthOpen: rng.uniform(0, 1) };
}

/** Feature positions in units of the side (from the 256-px alignment template). */
function geometry(id: FaceIdentity, pose: FramePose) {
  const t = alignmentTemplate(256).map(([x, y]) => [x / 256 + pose.dx, y / 256 + pose.dy] as const);
  const [le, re, nose, ml, mr] = t;
  return {
    le: le!, re: re!, nose: nose!, ml: ml!, mr: mr!,
    mouth: [(ml![0] + mr![0]) / 2, (ml![1] + mr![1]) / 2] as const,
    face: [0.5 + pose.dx, 0.56 + pose.dy, id.faceWidth, id.faceHeight] as const,
  };
}

export interface RenderedFace {
  canvas: Canvas;
  /** Coverage of the inner face (skin ellipse), 0–1 per pixel: where face swaps act. */
  faceMask: Float32Array;
  /** Coverage of the mouth region (talking-head methods act there). */
  mouthMask: Float32Array;
  /** 81 dlib-style landmarks in pixels, `[x0, y0, x1, y1, ...]`. */
  landmarks: Float32Array;
}

export function renderFace(size: number, id: FaceIdentity, pose: FramePose): RenderedFace {
  const S = size;
  const c = new Canvas(S, S);
  const g = geometry(id, pose);
  const faceMask = new Float32Array(S * S);
  const mouthMask = new Float32Array(S * S);
  c.gradient(id.bgA, id.bgB, id.bgAngle);
  const [fx, fy, fw, fh] = g.face;
  // hair behind the head, neck below it
  c.ellipse(fx * S, (fy - 0.1) * S, (fw + 0.04) * S, (id.hairHeight + 0.04) * S, id.hair);
  const neck = id.skin.map((v) => v * 0.85);
  c.ellipse(fx * S, (fy + fh + 0.05) * S, fw * 0.55 * S, 0.14 * S, neck);
  c.ellipse(fx * S, fy * S, fw * S, fh * S, id.skin, 1, 0, faceMask);
  // fringe over the forehead
  c.ellipse(fx * S, (fy - fh * 0.92) * S, fw * 0.95 * S, fh * 0.28 * S, id.hair, 0.95);
  const white = [245, 245, 240];
  for (const [eye, tilt] of [[g.le, id.browTilt], [g.re, -id.browTilt]] as const) {
    c.ellipse(eye[0] * S, eye[1] * S, 0.05 * S, 0.024 * S, white);
    c.ellipse(eye[0] * S, eye[1] * S, 0.022 * S, 0.022 * S, id.iris);
    c.ellipse(eye[0] * S, eye[1] * S, 0.01 * S, 0.01 * S, [10, 10, 10]);
    c.ellipse(eye[0] * S, (eye[1] - 0.055) * S, 0.06 * S, 0.012 * S, id.hair, 0.9, tilt);
  }
  const shade = id.skin.map((v) => v * 0.78);
  c.ellipse(g.nose[0] * S, (g.nose[1] - 0.05) * S, 0.025 * S, 0.07 * S, shade, 0.45);
  c.ellipse((g.nose[0] - 0.022) * S, (g.nose[1] + 0.008) * S, 0.011 * S, 0.008 * S, shade.map((v) => v * 0.6), 0.8);
  c.ellipse((g.nose[0] + 0.022) * S, (g.nose[1] + 0.008) * S, 0.011 * S, 0.008 * S, shade.map((v) => v * 0.6), 0.8);
  const mouthH = (0.018 + 0.02 * pose.mouthOpen) * S;
  c.ellipse(g.mouth[0] * S, g.mouth[1] * S, id.mouthWidth * S * 0.9, mouthH, id.lips, 1, 0);
  if (pose.mouthOpen > 0.4) c.ellipse(g.mouth[0] * S, g.mouth[1] * S, id.mouthWidth * S * 0.6, mouthH * 0.45, [60, 20, 25], 0.9);
  // the region a lip-sync method regenerates
  const scratch = new Canvas(S, S);
  scratch.ellipse(g.mouth[0] * S, (g.mouth[1] + 0.03) * S, id.mouthWidth * S * 1.6, 0.09 * S, [0, 0, 0], 1, 0, mouthMask);
  c.light(id.lightAngle + pose.lightAngle, id.lightStrength);
  return { canvas: c, faceMask, mouthMask, landmarks: landmarks81(S, id, pose) };
}

/** dlib 68-point layout (plus 13 forehead points) placed on the drawn features. */
export function landmarks81(S: number, id: FaceIdentity, pose: FramePose): Float32Array {
  const g = geometry(id, pose);
  const pts: Array<[number, number]> = [];
  const [fx, fy, fw, fh] = g.face;
  for (let i = 0; i < 17; i++) {
    const t = Math.PI - 0.25 - (i * (Math.PI - 0.5)) / 16;
    pts.push([fx + fw * Math.cos(t), fy + fh * Math.sin(t)]);
  }
  for (const eye of [g.le, g.re]) {
    for (let i = 0; i < 5; i++) pts.push([eye[0] - 0.06 + 0.03 * i, eye[1] - 0.055 - 0.008 * Math.sin((i * Math.PI) / 4)]);
  }
  for (let i = 0; i < 4; i++) pts.push([g.nose[0], g.le[1] + ((g.nose[1] - g.le[1]) * i) / 3]);
  for (let i = 0; i < 5; i++) pts.push([g.nose[0] - 0.035 + 0.0175 * i, g.nose[1] + 0.012]);
  for (const eye of [g.le, g.re]) {
    const ring = [[-1, 0], [-0.5, -1], [0.5, -1], [1, 0], [0.5, 1], [-0.5, 1]];
    for (const [u, v] of ring) pts.push([eye[0] + 0.05 * u!, eye[1] + 0.024 * v!]);
  }
  const mw = id.mouthWidth * 0.9;
  const mh = 0.018 + 0.02 * pose.mouthOpen;
  for (let i = 0; i < 12; i++) {
    const t = Math.PI + (i * 2 * Math.PI) / 12;
    pts.push([g.mouth[0] + mw * Math.cos(t), g.mouth[1] + mh * Math.sin(t)]);
  }
  for (let i = 0; i < 8; i++) {
    const t = Math.PI + (i * 2 * Math.PI) / 8;
    pts.push([g.mouth[0] + mw * 0.6 * Math.cos(t), g.mouth[1] + mh * 0.45 * Math.sin(t)]);
  }
  for (let i = 0; i < 13; i++) {
    const t = Math.PI + 0.3 + (i * (Math.PI - 0.6)) / 12;
    pts.push([fx + fw * Math.cos(t), fy + fh * Math.sin(t)]);
  }
  const out = new Float32Array(pts.length * 2);
  pts.forEach(([x, y], i) => {
    out[2 * i] = x * S;
    out[2 * i + 1] = y * S;
  });
  return out;
}
