export * from './config.js';
export * from './groups.js';
export * from './evaluate.js';
export * from './svg.js';
export * from './html.js';
export * from './report-writer.js';
export * from './binary-evaluator.js';
export * from './df40-evaluator.js';
