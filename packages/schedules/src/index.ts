export * from './beta';
export * from './cell-noise';
export * from './draws';
export * from './errors';
export * from './fast-rng';
export * from './noise-schedule';
export * from './rng';
export * from './seeds';
