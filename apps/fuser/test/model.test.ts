/**
 * The model path of the BUILT `dif-fuse` binary, on a stand-in model folder with the real
 * interface (inputs ir [N,1,H,W], vis [N,3,H,W], noise [K,N,4,H,W]; output fused):
 * fused = tanh(vis + ir + mean_k(noise)[:, :3]). Pointwise and exact, so the expected pixels
 * are computed here from the inputs and the seed's noise, which checks the noise layout too.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { attr, fusionNoise, GraphBuilder, MODEL_FORMAT, writeModelFolder } from '@dif-fusion/onnx';
import { beforeAll, describe, expect, it } from 'vitest';
import { cellNoise } from '../src/pipeline';
import { dif, expectOneLineError, readRgb, tmp, writeTestImage } from './helpers';

const K = 2;
const W = 50;
const H = 37;
let dir: string;
let model: string;
let ir: string;
let vis: string;
let irPx: Uint8Array;
let visPx: Uint8Array;

function writeToyModel(folder: string): void {
  const g = new GraphBuilder('toy-fusion');
  const irIn = g.input('ir', ['N', 1, 'H', 'W']);
  const visIn = g.input('vis', ['N', 3, 'H', 'W']);
  const noise = g.input('noise', ['K', 'N', 4, 'H', 'W']);
  const meanK = g.node('ReduceMean', [noise], { axes: attr.ints([0]), keepdims: attr.int(0) });
  const n3 = g.node('Slice', [meanK, g.constI64([0]), g.constI64([3]), g.constI64([1])]);
  const sum = g.node('Add', [g.node('Add', [visIn, irIn]), n3]);
  g.output(g.node('Tanh', [sum]), 'fused', ['N', 3, 'H', 'W']);
  writeModelFolder(folder, g.serialize({ externalData: 'never' }), {
    format: MODEL_FORMAT,
    format_version: 1,
    // a tiny UNet's block and a head for it (the stand-in graph computes neither)
    unet: {
      in_channel: 4,
      out_channel: 4,
      inner_channel: 4,
      norm_groups: 2,
      channel_multiplier: [1, 2],
      attn_res: [],
      res_blocks: 1,
      dropout: 0,
      image_size: 16,
    },
    head: { feat_scales: [2, 0], time_steps: [5, 50].slice(0, K), mode: 'full' },
    time_steps: [5, 50].slice(0, K),
    noise_levels: [0.99, 0.9].slice(0, K),
    noise_level_rule: 'midpoint',
    beta_schedule: null,
    head_mode: 'reference',
    seed: null,
    size_multiple: 16,
    feature_indices: [],
    inputs: { ir: '[N,1,H,W]', vis: '[N,3,H,W]', noise: '[K,N,4,H,W]' },
    output: '[N,3,H,W]',
    opset: 17,
    external_data: false,
    provenance: { source: 'fuser test stand-in' },
    created: new Date(0).toISOString(),
  });
}

/** The expected 8-bit output of the stand-in model for a seed (interleaved RGB). */
function expected(seed: number): Uint8Array {
  const Hp = Math.ceil(H / 16) * 16;
  const Wp = Math.ceil(W / 16) * 16;
  const noise = cellNoise(seed, K, 4, (s, count) =>
    fusionNoise(s, { k: 1, n: 1, height: 1, width: count / 4 }),
  )(0, 0, Hp, Wp);
  const out = new Uint8Array(W * H * 3);
  const n = Hp * Wp;
  for (let y = 0; y < H; y++)
    for (let x = 0; x < W; x++)
      for (let c = 0; c < 3; c++) {
        let m = 0;
        for (let k = 0; k < K; k++) m += noise[(k * 4 + c) * n + y * Wp + x];
        const v = (visPx[(y * W + x) * 3 + c] / 255) * 2 - 1 + (irPx[y * W + x] / 255) * 2 - 1;
        const f = Math.tanh(v + m / K);
        out[(y * W + x) * 3 + c] = Math.round(((f + 1) / 2) * 255);
      }
  return out;
}

beforeAll(async () => {
  dir = tmp();
  model = join(dir, 'model');
  writeToyModel(model);
  ir = join(dir, 'ir.png');
  vis = join(dir, 'vi.png');
  irPx = (await writeTestImage(ir, W, H, 1, 11)) as Uint8Array;
  visPx = (await writeTestImage(vis, W, H, 3, 12)) as Uint8Array;
});

describe('dif-fuse --method model (stand-in model folder)', () => {
  it('fuses with the seed noise laid out as [K,N,4,H,W], on the CPU provider', async () => {
    const out = join(dir, 'm-seed3.png');
    const r = dif([
      '--ir',
      ir,
      '--vis',
      vis,
      '-o',
      out,
      '--model',
      model,
      '--seed',
      '3',
      '--device',
      'cpu',
      '--threads',
      '1',
    ]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toMatch(/provider cpu/);
    expect(r.stdout).toMatch(/fused 1 image in [\d.]+ s/);
    const img = await readRgb(out);
    expect([img.width, img.height, img.channels]).toEqual([W, H, 3]);
    const want = expected(3);
    let maxDiff = 0;
    for (let i = 0; i < want.length; i++)
      maxDiff = Math.max(maxDiff, Math.abs(img.data[i] - want[i]));
    expect(maxDiff).toBeLessThanOrEqual(1);
  });

  it('same inputs and seed give byte-identical output, tiled or not; another seed differs', () => {
    const run = (name: string, extra: string[]) => {
      const out = join(dir, name);
      const r = dif(['--ir', ir, '--vis', vis, '-o', out, '--model', model, '-q', ...extra]);
      expect(r.code, r.stderr).toBe(0);
      return readFileSync(out);
    };
    const a = run('d-a.png', ['--seed', '7']);
    const b = run('d-b.png', ['--seed', '7']);
    const tiled = run('d-t.png', ['--seed', '7', '--tile', '32', '--overlap', '8']);
    const other = run('d-c.png', ['--seed', '8']);
    expect(b.equals(a)).toBe(true);
    expect(tiled.equals(a)).toBe(true);
    expect(other.equals(a)).toBe(false);
  });

  it('a model folder whose config is not a dif-fusion config is one line', () => {
    const bad = join(dir, 'bad-model');
    writeToyModel(bad);
    writeFileSync(join(bad, 'config.json'), '{"format": "something-else"}');
    expectOneLineError(
      dif(['--ir', ir, '--vis', vis, '-o', join(dir, 'x.png'), '--model', bad]),
      /model folder .* invalid: config\.json is not a dif-fusion model config/,
      expect,
    );
  });
});
