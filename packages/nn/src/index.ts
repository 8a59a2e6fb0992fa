export * from './ops';
export * from './module';
export * from './layers';
export * from './tf-ops';
