/**
 * @dif-fusion/export: fusion model folders from the networks. `exportFusionModel` runs the
 * UNet's and the head's one definition on @dif-fusion/onnx's `OnnxOps` and writes
 * `model.onnx` + `config.json`; `quantizeModelFolder` makes an int8 (QDQ) folder from a float
 * one; `fusionFlops` counts the graph's arithmetic. Running a folder is @dif-fusion/onnx's
 * (`loadFusionModel`), which knows no network.
 */
export * from './export';
export * from './fusion-flops';
export * from './model-folder';
export * from './quantize-folder';
