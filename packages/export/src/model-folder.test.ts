import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  GraphBuilder,
  MODEL_FORMAT,
  ModelFolderError,
  readModelConfig,
  writeModelFolder,
} from '@dif-fusion/onnx';
import { afterAll, describe, expect, it } from 'vitest';
import { readFusionModelConfig } from './model-folder';

const root = mkdtempSync(join(tmpdir(), 'dif-export-mf-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));

/** A graph with the fusion interface (config.json is what these tests read). */
function tinyModel() {
  const g = new GraphBuilder('tiny');
  const ir = g.input('ir', ['N', 1, 'H', 'W']);
  const vis = g.input('vis', ['N', 3, 'H', 'W']);
  g.input('noise', ['K', 'N', 4, 'H', 'W']);
  g.output(g.node('Add', [vis, ir]), 'fused', ['N', 3, 'H', 'W']);
  return g.serialize({ externalData: 'never' });
}

const unet = {
  in_channel: 4,
  out_channel: 4,
  inner_channel: 4,
  norm_groups: 2,
  channel_multiplier: [1, 2],
  attn_res: [],
  res_blocks: 1,
  dropout: 0,
  image_size: 16,
};
const head = { feat_scales: [2, 0], time_steps: [5, 50], out_channels: 3, mode: 'full' };
const config = (extra: Record<string, unknown> = {}) => ({
  format: MODEL_FORMAT,
  format_version: 2,
  unet,
  head,
  noise_levels: [0.99, 0.9],
  noise_level_rule: 'midpoint',
  beta_schedule: null,
  seed: null,
  size_multiple: 16,
  feature_indices: [],
  inputs: { ir: '[N,1,H,W]', vis: '[N,3,H,W]', noise: '[2,N,4,H,W]' },
  output: '[N,3,H,W]',
  opset: 17,
  external_data: false,
  provenance: { source: 'test' },
  created: new Date(0).toISOString(),
  ...extra,
});

function folder(name: string, c: Record<string, unknown>): string {
  const dir = join(root, name);
  writeModelFolder(dir, tinyModel(), c);
  return dir;
}

describe('model folders with their network blocks (readFusionModelConfig)', () => {
  it('reads folders written before the one UNet config (channel_mults, a head with a copy of the UNet keys)', () => {
    const { channel_multiplier, ...rest } = unet;
    const dir = folder(
      'old-keys',
      config({
        format_version: 1,
        unet: { ...rest, channel_mults: channel_multiplier },
        head: { ...head, inner_channel: 4, channel_multiplier, res_blocks: 1 },
        time_steps: [5, 50],
        head_mode: 'full',
      }),
    );
    const cfg = readFusionModelConfig(dir);
    expect(cfg.unet).toEqual({ ...unet, with_noise_level_emb: true, use_affine_level: false });
    expect(cfg.head).toEqual({
      feat_scales: [2, 0],
      time_steps: [5, 50],
      out_channels: 3,
      mode: 'full',
    });
    // @dif-fusion/onnx alone returns the blocks as written
    expect(readModelConfig(dir).unet).toHaveProperty('channel_mults', [1, 2]);
  });

  it("one-line errors naming the folder for a block the network's parser refuses", () => {
    const oneLine = (dir: string, re: RegExp) => {
      let err: Error | null = null;
      try {
        readFusionModelConfig(dir);
      } catch (e) {
        err = e as Error;
      }
      expect(err).toBeInstanceOf(ModelFolderError);
      expect(err!.message).not.toContain('\n');
      expect(err!.message).toContain(dir);
      expect(err!.message).toMatch(re);
    };
    oneLine(
      folder('bad-unet', config({ unet: { ...unet, norm_groups: 3 } })),
      /config\.json: UNet config: norm_groups 3 must divide/,
    );
    oneLine(
      folder('bad-head', config({ head: { ...head, inner_channel: 8 } })),
      /inner_channel 8 differs from the UNet's 4/,
    );
  });
});
