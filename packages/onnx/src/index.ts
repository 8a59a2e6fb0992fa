export * from './flops';
export * from './graph';
export * from './model-config';
export * from './onnx-ops';
export * from './proto';
export {
  type CalibrationInput,
  calibrationGraph,
  calibrationTensors,
  type QuantizationRecord,
  type QuantizeReport,
  quantizeConvs,
  type Range,
  RangeRecorder,
  uint8Params,
} from './quantize';
export * from './runtime';
export * from './session';
export * from './write';
