/**
 * Fusion model folders with their network blocks typed: @dif-fusion/onnx reads the folder
 * (its envelope: format, time steps, noise levels, size multiple) and knows no network;
 * here the `unet` and `head` blocks are the networks' own configs, read by their parsers
 * (@dif-fusion/fusion-head's `parseFusionBlocks`).
 */
import { type FusionBlocks, parseFusionBlocks } from '@dif-fusion/fusion-head';
import { type FusionModelConfig, readModelConfig } from '@dif-fusion/onnx';

/** A model folder's config.json with the UNet's and the head's config blocks. */
export type ModelFolderConfig = FusionModelConfig<FusionBlocks['unet'], FusionBlocks['head']>;

/**
 * `readModelConfig` of @dif-fusion/onnx with the blocks parsed: old key names read
 * (`channel_mults`, a head block with a copy of the UNet's keys), one-line
 * `ModelFolderError`s naming the folder for a bad block.
 */
export function readFusionModelConfig(dir: string): ModelFolderConfig {
  return readModelConfig(dir, parseFusionBlocks);
}
