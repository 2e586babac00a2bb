export * from './content-hash.js';
export * from './digest-index.js';
export * from './store.js';
export * from './encoder-image-path.js';
export * from './feature-cache-loader.js';
export * from './component.js';
export * from './float16.js';
