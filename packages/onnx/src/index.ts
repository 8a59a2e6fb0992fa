export * from './flops';
export * from './graph';
export * from './model-config';
export * from './onnx-ops';
export * from './proto';
export * from './runtime';
export * from './session';
export * from './write';
