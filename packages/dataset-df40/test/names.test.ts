import { describe, expect, it } from 'vitest';
import { canonicalMethod, canonicalSubset, DF40_TEST_SUBSETS, isKnownMethod, labelOf, METHOD_ALIASES, sameSubset } from '@dfd/dataset-df40';

describe('DF40 name aliases', () => {
  it('maps every alias of every method to its canonical name', () => {
    let checked = 0;
    for (const [canonical, aliases] of Object.entries(METHOD_ALIASES)) {
      expect(canonicalMethod(canonical)).toBe(canonical);
      for (const alias of aliases) {
        expect(canonicalMethod(alias), alias).toBe(canonical);
        checked++;
      }
    }
    expect(checked).toBeGreaterThan(40);
  });

  it.each([
    ['whichisreal', 'whichfaceisreal'],
    ['WhichisReal', 'whichfaceisreal'],
    ['inswapper', 'inswap'],
    ['FS_vid2vid', 'facevid2vid'],
    ['OneShot', 'one_shot_free'],
    ['DaGAN', 'danet'],
    ['MRAA', 'mraa'],
    ['PixArt', 'pixart'],
    ['PixArt-α', 'pixart'],
    ['RDDM', 'rddm'],
    ['DDPM', 'ddim'],
    ['SD-2.1', 'sd2.1'],
    ['StyleGAN-XL', 'StyleGANXL'],
    ['midjourney', 'MidJourney'],
    ['collabdiff', 'CollabDiff'],
  ])('%s → %s', (alias, canonical) => {
    expect(canonicalMethod(alias)).toBe(canonical);
  });

  it('keeps the domain suffix and canonicalises the method part', () => {
    expect(canonicalSubset('PixArt_ff')).toBe('pixart_ff');
    expect(canonicalSubset('FS_vid2vid_cdf')).toBe('facevid2vid_cdf');
    expect(canonicalSubset('MRAA-ff')).toBe('mraa_ff');
    expect(canonicalSubset('whichisreal')).toBe('whichfaceisreal');
    // grouped sets and non-methods pass through
    expect(canonicalSubset('FSAll_ff')).toBe('FSAll_ff');
    expect(canonicalSubset('FaceForensics++')).toBe('FaceForensics++');
    expect(sameSubset('whichisreal', 'whichfaceisreal')).toBe(true);
    expect(sameSubset('stargan', 'starganv2')).toBe(false);
  });

  it('knows the 8 test subsets', () => {
    expect(DF40_TEST_SUBSETS).toHaveLength(8);
    for (const name of DF40_TEST_SUBSETS) expect(isKnownMethod(name)).toBe(true);
  });
});

describe('labels', () => {
  it('maps _Real/_Fake suffixes and DeepfakeBench label_dict entries', () => {
    expect(labelOf('heygen_Real')).toBe(0);
    expect(labelOf('heygen_Fake')).toBe(1);
    expect(labelOf('simswap_ff_Fake')).toBe(1);
    expect(labelOf('FF-real')).toBe(0);
    expect(labelOf('FF-DF')).toBe(1);
    expect(labelOf('CelebDFv2_fake')).toBe(1);
    expect(labelOf('weird', { weird: 1 })).toBe(1);
  });

  it('rejects an unknown label with the fix in the message', () => {
    expect(() => labelOf('FF-XYZ', {}, 'a.json')).toThrow(/FF-XYZ.*a\.json.*labelMap/);
  });
});
