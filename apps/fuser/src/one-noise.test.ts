/**
 * One noise definition (issue #25 item 5): the library's `loadFusionModel(dir).fuse({ seed })`
 * and `dif-fuse --seed` (openFuser + fusePlanar, whole or tiled) give the same bytes for the
 * same seed. Before the two were unified the library drew `fusionNoise` (one row-major draw)
 * and the CLI 64x64 cells, so these outputs differed; the CLI's definition was kept, so the
 * shipped model's outputs of `dif-fuse` did not change.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { fusionNoise, imageNoise, loadFusionModel } from '@dif-fusion/onnx';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type OpenedFuser, openFuser } from './fuse';
import { fusePlanar } from './pipeline';

const MODEL = join(import.meta.dirname, '..', '..', '..', 'models', 'default');
const H = 80;
const W = 96;

function ramp(len: number, a: number): Float32Array {
  const x = new Float32Array(len);
  for (let i = 0; i < len; i++) x[i] = Math.sin(i * a) * 0.8;
  return x;
}

const bytes = (x: Float32Array) => Buffer.from(x.buffer, x.byteOffset, x.byteLength);

describe.skipIf(!existsSync(join(MODEL, 'model.onnx')))('one fusion noise', () => {
  let lib: Awaited<ReturnType<typeof loadFusionModel>>;
  let cli: OpenedFuser;
  const ir = ramp(H * W, 0.013);
  const vis = ramp(3 * H * W, 0.007);
  beforeAll(async () => {
    lib = await loadFusionModel(MODEL, { device: 'cpu', threads: 1 });
    cli = await openFuser({ model: MODEL, device: 'cpu', threads: 1, seed: 5 });
  });
  afterAll(async () => {
    await lib?.release();
    await cli?.release();
  });

  it('imageNoise is the cells the CLI draws, and not the row-major fusionNoise', () => {
    const k = lib.config.head.time_steps.length;
    const window = cli.fuser.noise!.window(0, 0, H, W);
    expect(bytes(imageNoise(5, { k, n: 1, height: H, width: W })).equals(bytes(window))).toBe(true);
    expect(bytes(fusionNoise(5, { k, n: 1, height: H, width: W })).equals(bytes(window))).toBe(
      false,
    );
  });

  it('library fuse({ seed }) equals the CLI path, whole and in tiles', async () => {
    const fromLib = await lib.fuse({ ir, vis, seed: 5, n: 1, height: H, width: W });
    const whole = await fusePlanar(
      { width: W, height: H, channels: 1, data: ir },
      { width: W, height: H, channels: 3, data: vis },
      cli.fuser,
      { tile: 'off' },
    );
    expect(bytes(whole.data).equals(bytes(fromLib))).toBe(true);
    // The row-major draw (the library's default before) gives another image.
    const k = lib.config.head.time_steps.length;
    const old = await lib.fuse({
      ir,
      vis,
      noise: fusionNoise(5, { k, n: 1, height: H, width: W }),
      n: 1,
      height: H,
      width: W,
    });
    expect(bytes(old).equals(bytes(fromLib))).toBe(false);
    // A batch of two is each image fused alone: byte for byte with a float graph; with the
    // shipped int8 graph within one float rounding (ONNX Runtime's kernels for a batch of two
    // round some float ops differently: 3e-7 at most, measured). dif-fuse runs one image (or
    // tile) per run, so its outputs are not affected.
    const two = await lib.fuse({
      ir: new Float32Array([...ir, ...ir]),
      vis: new Float32Array([...vis, ...vis]),
      seed: 5,
      n: 2,
      height: H,
      width: W,
    });
    const second = two.subarray(3 * H * W);
    if (lib.config.precision === 'int8') {
      let worst = 0;
      for (let i = 0; i < fromLib.length; i++)
        worst = Math.max(worst, Math.abs(second[i] - fromLib[i]));
      expect(worst).toBeLessThanOrEqual(1e-6);
    } else expect(bytes(second).equals(bytes(fromLib))).toBe(true);
  });
});
