export * from './beta';
export * from './noise-schedule';
export * from './rng';
