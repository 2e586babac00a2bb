/**
 * Label strings → 0 (real) / 1 (fake). DeepfakeBench keeps a `label_dict` in its YAML; DF40's JSONs use
 * `<name>_Real` / `<name>_Fake`, and the FaceForensics++ family uses `FF-real`, `FF-DF`, ... An unknown
 * label is an error that names the file and the fix (the `labelMap` config), never a silent guess.
 */
import type { Label } from '@dfd/core';

/** DeepfakeBench's `label_dict` entries that do not follow the `_Real`/`_Fake` suffix rule. */
export const DEEPFAKEBENCH_LABELS: Readonly<Record<string, Label>> = {
  'FF-real': 0,
  'FF-DF': 1,
  'FF-F2F': 1,
  'FF-FS': 1,
  'FF-NT': 1,
  'FF-FH': 1,
  FaceShifter: 1,
  DFD_real: 0,
  DFD_fake: 1,
  CelebDFv1_real: 0,
  CelebDFv1_fake: 1,
  CelebDFv2_real: 0,
  CelebDFv2_fake: 1,
  DFDCP_Real: 0,
  DFDCP_FakeA: 1,
  DFDCP_FakeB: 1,
  DFDC_Real: 0,
  DFDC_Fake: 1,
  DF_real: 0,
  DF_fake: 1,
  UADFV_Real: 0,
  UADFV_Fake: 1,
};

export class LabelError extends Error {
  override name = 'LabelError';
}

/**
 * Maps a label string. Order: the user's `labelMap`, DeepfakeBench's table, then the suffix rule
 * (`…real` → 0, `…fake` → 1, case-insensitive, `_`/`-` separated).
 */
export function labelOf(key: string, labelMap: Record<string, Label> = {}, where = ''): Label {
  if (key in labelMap) return labelMap[key]!;
  if (key in DEEPFAKEBENCH_LABELS) return DEEPFAKEBENCH_LABELS[key]!;
  if (/(^|[_\-\s])real$/i.test(key) || /^real$/i.test(key)) return 0;
  if (/(^|[_\-\s])fake$/i.test(key) || /^fake$/i.test(key)) return 1;
  throw new LabelError(
    `unknown label '${key}'${where ? ` in ${where}` : ''}: it ends neither in _Real nor _Fake. ` +
      `Add it to the dataset config's labelMap, e.g. labelMap: { "${key}": 1 }`,
  );
}

export function labelName(label: Label): 'real' | 'fake' {
  return label === 0 ? 'real' : 'fake';
}
