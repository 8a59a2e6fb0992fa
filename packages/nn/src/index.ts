export * from './fast-conv';
export * from './init';
export * from './layers';
export * from './module';
export * from './ops';
export * from './param-store';
export * from './tf-ops';
