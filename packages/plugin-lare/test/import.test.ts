/** Import of existing maps: .pt written by real torch.save (never unpickled by execution), .npy, .safetensors. */
import { copyFile, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { captureCliIo } from '../../../test/support/cli-io.js';
import { ExtrasStore } from '@dfd/dataset-df40';
import { lareCommand } from '../src/index.js';
import { readMapFile } from '../src/stage1/map-files.js';
import { readTorchTensor } from '../src/stage1/torch-pt.js';
import { FIXTURES, IMAGES, reference } from './helpers.js';

const IMPORT = join(FIXTURES, 'import');

describe('torch.save .pt reader', () => {
  for (const name of ['contiguous', 'slice', 'transposed', 'half']) {
    it(`${name}.pt equals the tensor torch saved`, async () => {
      const ours = await readMapFile(join(IMPORT, `${name}.pt`));
      expect(ours.shape).toEqual([4, 8, 8]);
      const expected = await reference(name, 'import/expected.safetensors');
      expect(Array.from(ours.data)).toEqual(Array.from(expected));
    });
  }

  it('refuses a dict and an integer tensor, and anything that is not a torch.save zip', async () => {
    await expect(readMapFile(join(IMPORT, 'dict.pt'))).rejects.toThrow(/holds a dict, not one tensor/);
    await expect(readMapFile(join(IMPORT, 'int.pt'))).rejects.toThrow(/Long tensor; a LaRE map is floating point/);
    expect(() => readTorchTensor(Buffer.concat([Buffer.from([0x80, 0x02]), Buffer.from('a legacy pickle')]), 'x.pt')).toThrow(/legacy/);
    expect(() => readTorchTensor(Buffer.from('hello'), 'x.pt')).toThrow(/not a torch.save file/);
  });

  it('refuses a pickle that calls anything but the tensor constructor (no code runs)', async () => {
    // Turn the rebuild call of a real file's pickle into builtins.exec (same length: the stored zip entry stays valid).
    const bytes = await readFile(join(IMPORT, 'contiguous.pt'));
    const original = 'torch._utils\n_rebuild_tensor_v2';
    const at = bytes.indexOf(original);
    expect(at).toBeGreaterThan(0);
    const evil = Buffer.from(bytes);
    evil.write(`builtins\n${'exec'.padEnd(original.length - 9, ' ')}`, at, 'latin1');
    expect(() => readTorchTensor(evil, 'evil.pt')).toThrow(/a call to builtins\.exec/);
  });

  it('.npy and .safetensors maps read the same values', async () => {
    const a = await reference('contiguous', 'import/expected.safetensors');
    expect(Array.from((await readMapFile(join(IMPORT, 'map.npy'))).data)).toEqual(Array.from(a));
    expect(Array.from((await readMapFile(join(IMPORT, 'map.safetensors'))).data)).toEqual(Array.from(a));
  });
});


describe('dfd lare import', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'dfd-lare-import-'));
    await mkdir(join(dir, 'imgs/real'), { recursive: true });
    await mkdir(join(dir, 'imgs/fake'), { recursive: true });
    await mkdir(join(dir, 'clare'));
    await mkdir(join(dir, 'lare'));
    await copyFile(join(IMAGES, 'rgb-80x48.png'), join(dir, 'imgs/real/face1.png'));
    await copyFile(join(IMAGES, 'gray-64.png'), join(dir, 'imgs/fake/face2.png'));
    await copyFile(join(IMAGES, 'exact-64.jpg'), join(dir, 'imgs/fake/face3.jpg'));
    await writeFile(join(dir, 'images.txt'), ['imgs/real/face1.png', 'imgs/fake/face2.png', 'imgs/fake/face3.jpg'].join('\n'));
    // CLaRE: <cls>_<stem>.pt; one map whose stem matches no image.
    await copyFile(join(IMPORT, 'contiguous.pt'), join(dir, 'clare/real_face1.pt'));
    await copyFile(join(IMPORT, 'transposed.pt'), join(dir, 'clare/fake_face2.pt'));
    await copyFile(join(IMPORT, 'slice.pt'), join(dir, 'clare/fake_nobody.pt'));
    // LaRE: <stem>.pt and its map list "<pt path>\t<label>".
    await copyFile(join(IMPORT, 'contiguous.pt'), join(dir, 'lare/face1.pt'));
    await copyFile(join(IMPORT, 'half.pt'), join(dir, 'lare/face3.pt'));
    await copyFile(join(IMPORT, 'dict.pt'), join(dir, 'lare/face2.pt'));
    await writeFile(join(dir, 'lare/ann.txt'), ['face1.pt\t0', 'face3.pt\t1', 'face2.pt\t1'].join('\n'));
  });
  afterAll(async () => {
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it("CLaRE's <cls>_<stem>.pt names: joined by stem, the unmatched map listed", async () => {
    const io = captureCliIo(dir);
    expect(await lareCommand.run(['import', '--dataset', 'images.txt', '--maps', 'clare', '--names', 'clare', '--out', 'store-clare'], io)).toBe(0);
    expect(io.err()).toMatch(/fake_nobody\.pt: no listed image has the stem 'nobody'/);
    const store = await ExtrasStore.open(join(dir, 'store-clare'));
    expect(store.size).toBe(2);
    const entry = await store.find(join(dir, 'imgs/fake/face2.png'));
    expect(Array.from((await store.read(entry!)).data)).toEqual(Array.from(await reference('transposed', 'import/expected.safetensors')));
    await store.close();
  });

  it("LaRE's map list: labels ignored, a dict .pt refused and listed", async () => {
    const io = captureCliIo(dir);
    expect(await lareCommand.run(['import', '--dataset', 'images.txt', '--map-list', 'lare/ann.txt', '--out', 'store-lare'], io)).toBe(0);
    expect(io.err()).toMatch(/face2\.pt: .*holds a dict/);
    const index = JSON.parse(await readFile(join(dir, 'store-lare/index.import.json'), 'utf8')) as { entries: unknown[]; skipped: unknown[] };
    expect(index.entries).toHaveLength(2);
    expect(index.skipped).toHaveLength(1);
  });
});
