import { describe, expect, it } from 'vitest';
import { ExperimentContainer, PluginRegistry, type Resolver } from '@dfd/core';
import defaultPlugin, { Df40JsonDataset, FolderDataset, ImageBatchLoader, df40Plugin } from '@dfd/dataset-df40';

const noResolver: Resolver = { resolve: () => { throw new Error('unused'); }, isRegistered: () => false };

describe('@dfd/dataset-df40 plugin', () => {
  it('is exported by name and as default, with its components and commands', () => {
    expect(defaultPlugin).toBe(df40Plugin);
    const registry = new PluginRegistry([df40Plugin]);
    expect(registry.namesOf('dataset')).toEqual(['df40', 'folder']);
    expect(registry.namesOf('loader')).toEqual(['images']);
    expect(registry.commands().map((c) => c.name).sort()).toEqual(['df40', 'synth']);
  });

  it('validates configs (defaults filled, unknown keys rejected) and builds the components', () => {
    const registry = new PluginRegistry([df40Plugin]);
    const config = registry.resolveConfig('dataset', 'df40', { root: '/data/df40' });
    expect(config).toMatchObject({ root: '/data/df40', sampling: 'even', framesPerVideo: { train: 8, val: 8, test: 8 }, compression: 'c23' });
    expect(() => registry.resolveConfig('dataset', 'df40', { root: '/x', frames: 8 })).toThrow(/unknown key 'frames'/);
    // `--set dataset.config.framesPerVideo=abc` used to say only "Invalid input".
    expect(() => registry.resolveConfig('dataset', 'df40', { root: '/x', framesPerVideo: 'abc' })).toThrow(
      /framesPerVideo: expected a whole number of frames per video \(0 = all\), or one per split: \{"train": 8, "val": 8, "test": 8\}; got "abc"/,
    );
    const ds = registry.get('dataset', 'df40').useFactory!(config, noResolver);
    expect(ds).toBeInstanceOf(Df40JsonDataset);
    const folder = registry.get('dataset', 'folder').useFactory!(registry.resolveConfig('dataset', 'folder', { root: '/x', layout: 'ufd' }), noResolver);
    expect(folder).toBeInstanceOf(FolderDataset);
  });

  it('offers loader presets with separate train and eval transforms', () => {
    const registry = new PluginRegistry([df40Plugin]);
    const ufd = registry.resolveConfig('loader', 'images', { size: 64 }, 'ufd');
    const loader = registry.get('loader', 'images').useFactory!(ufd, noResolver) as ImageBatchLoader;
    expect(loader.trainSpec).toMatchObject({ size: 64, crop: 'random', resize: 256, flip: 0.5, blur: { p: 0.5 }, jpeg: { p: 0.5, quality: [30, 100] } });
    expect(loader.evalSpec).toMatchObject({ size: 64, crop: 'center', resize: 0 });
    const plain = new ImageBatchLoader({ train: { flip: 0 } });
    expect(plain.trainSpec).toMatchObject({ crop: 'random-resized', flip: 0, size: 224, normalize: 'clip' });
    expect(() => registry.resolveConfig('loader', 'images', { train: { flips: 1 } })).toThrow(/flips/);
    expect(() => registry.resolveConfig('loader', 'images', {}, 'nope')).toThrow(/Presets: clip, ufd, df40, clare, lare/);
  });

  it('plugs into an experiment container through a factory', () => {
    const container = ExperimentContainer.create();
    container.registerFactory(Symbol.for('test.dataset'), () => new Df40JsonDataset({ root: '/r' }));
    expect(container.resolve<Df40JsonDataset>(Symbol.for('test.dataset')).name).toBe('df40');
  });
});
