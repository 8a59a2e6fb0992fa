export * from './beta';
export * from './errors';
export * from './noise-schedule';
export * from './rng';
