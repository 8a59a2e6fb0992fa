export * from './batch-norm';
export * from './init';
export * from './layers';
export * from './module';
export * from './ops';
export * from './optim';
export * from './weights';
