export * from './config';
export * from './head';
export * from './loss';
export * from './train';
