import { copyFileSync, existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FusionHead } from '@dif-fusion/fusion-head';
import { readSafetensors } from '@dif-fusion/io';
import { loadFusionModel, readModelConfig } from '@dif-fusion/onnx';
import { nchwToNhwc, nhwcToNchw, TfOps, TfParamStore, useBackend } from '@dif-fusion/tfjs';
import { UNet } from '@dif-fusion/unet';
import * as tf from '@tensorflow/tfjs-core';
import { afterAll, describe, expect, it } from 'vitest';
import { relErr } from '../../../../test/shared';
import { loadCheckpoint } from '../checkpoint';
import { runCli } from '../test-utils';
import { runExport } from './export';
import { runImportTorch, stepFromOfficialName } from './import-torch';

/** PyTorch-made fixtures of @dif-fusion/torch-import (tiny official-layout checkpoints). */
const FIX = join(__dirname, '..', '..', '..', '..', 'packages', 'torch-import', 'fixtures');
const root = mkdtempSync(join(tmpdir(), 'dif-train-import-torch-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));
const quiet = () => {};

const cli = (args: string[]) => runCli(['import-torch', ...args]);

describe('dif-train import-torch', () => {
  // Official file names carry the iteration and epoch.
  const ddpmPth = join(root, 'I1200_E3_gen.pth');
  const headPth = join(root, 'df_model_E7_gen.pth');
  copyFileSync(join(FIX, 'ddpm_gen.pth'), ddpmPth);
  copyFileSync(join(FIX, 'df_head_gen.pth'), headPth);
  const dir = join(root, 'imported');

  it('writes trainer checkpoints that dif-train export turns into the PyTorch model', async () => {
    const lines: string[] = [];
    const r = await runImportTorch({
      ddpm: ddpmPth,
      head: headPth,
      out: dir,
      normGroups: 2,
      log: (l) => lines.push(l),
    });
    expect(r.ddpm).toBe(join(dir, 'ddpm', 'ddpm-00001200.safetensors'));
    expect(r.head).toBe(join(dir, 'head', 'head-00000000.safetensors'));
    expect(lines.at(-1)).toBe(
      `next: dif-train export --ddpm ${dir}/ddpm --head ${dir}/head -o MODEL`,
    );

    const ddpm = loadCheckpoint(join(dir, 'ddpm'), 'ddpm');
    const head = loadCheckpoint(join(dir, 'head'), 'head');
    expect([ddpm.step, ddpm.epoch, head.step, head.epoch]).toEqual([1200, 3, 0, 7]);
    expect(ddpm.model).toMatchObject({
      inner_channel: 4,
      channel_multiplier: [1, 2, 2, 4, 4],
      norm_groups: 2,
    });
    expect(head.model).toMatchObject({ mode: 'reference', feat_scales: [14, 11, 8, 5, 2] });
    const schedule = { schedule: 'linear', n_timestep: 2000, linear_start: 1e-6, linear_end: 1e-2 };
    expect(head.extra.schedule).toEqual(schedule);
    expect([...ddpm.weights.keys()].some((k) => k.startsWith('denoise_fn.') || k === 'betas')).toBe(
      false,
    );
    const unet = new UNet(ddpm.model as never);
    const fh = new FusionHead(head.model as never, ddpm.model as never);
    expect(ddpm.weights.size).toBe(unet.params().length);
    expect(head.weights.size).toBe(fh.params().length);

    // export, unchanged, from the imported folders
    const model = join(root, 'model');
    await runExport({ ddpm: join(dir, 'ddpm'), head: join(dir, 'head'), out: model, log: quiet });
    expect(readModelConfig(model).beta_schedule).toEqual(schedule);

    // fuse with the same noise as PyTorch did
    const ref = readSafetensors(join(FIX, 'reference.safetensors'));
    const get = (k: string) => Float32Array.from(ref.tensors.get(k)!.data);
    const [, , height, width] = ref.tensors.get('input.vis')!.shape;
    const fm = await loadFusionModel(model, { device: 'cpu', threads: 1 });
    const fused = await fm.fuse({
      vis: get('input.vis'),
      ir: get('input.ir'),
      noise: get('input.noise'),
      n: 1,
      height,
      width,
    });
    await fm.release();

    // the tfjs forward of the same (imported) weights
    await useBackend('cpu');
    const unetOps = new TfOps(TfParamStore.fromTorch(unet.params(), ddpm.weights));
    const headOps = new TfOps(TfParamStore.fromTorch(fh.params(), head.weights));
    const tfFused = tf.tidy(() => {
      const t = (k: string) => tf.tensor(get(k), ref.tensors.get(k)!.shape);
      const feats = fh.config.time_steps.map(
        (s) => unet.features(unetOps, nchwToNhwc(t(`t${s}.x_noisy`)), t(`t${s}.level`)).fd,
      );
      return nhwcToNchw(fh.forward(headOps, feats)).dataSync().slice();
    });
    tf.disposeVariables();
    const vsTorch = relErr(fused, ref.tensors.get('output.fused')!.data);
    const vsTfjs = relErr(fused, tfFused);
    console.log(
      `[import-torch] ONNX fused vs PyTorch ${vsTorch.toExponential(2)}, vs tfjs ${vsTfjs.toExponential(2)}`,
    );
    expect(vsTorch).toBeLessThan(1e-3);
    expect(vsTfjs).toBeLessThan(1e-4);
  });

  it('refuses to overwrite an earlier import unless --force', async () => {
    const again = await cli([
      '--ddpm',
      ddpmPth,
      '--head',
      headPth,
      '-o',
      dir,
      '--norm-groups',
      '2',
    ]);
    expect(again.code).toBe(1);
    expect(again.err).toMatch(
      /^error: .*ddpm: already holds ddpm checkpoints \(ddpm-00001200\.safetensors\); .*--force to replace them\n$/,
    );
    const other = join(root, 'I5_E1_gen.pth');
    copyFileSync(join(FIX, 'ddpm_gen.pth'), other);
    const forced = await cli(['--ddpm', other, '-o', dir, '--norm-groups', '2', '--force']);
    expect(forced.code).toBe(0);
    expect(existsSync(join(dir, 'ddpm', 'ddpm-00000005.safetensors'))).toBe(true);
    expect(existsSync(join(dir, 'ddpm', 'ddpm-00001200.safetensors'))).toBe(false);
  });

  it('one line per refusal: malicious pickle, legacy format, missing --norm-groups', async () => {
    const out = join(root, 'refused');
    for (const [file, extra, want] of [
      [
        'malicious.pth',
        [],
        /^error: malicious\.pth:malicious\/data\.pkl: refused: the pickle refers to the Python global os\.system/,
      ],
      [
        'legacy.pth',
        [],
        /^error: legacy\.pth: this is PyTorch's legacy \(pre-1\.6, non-zip\) checkpoint format/,
      ],
      [
        'ddpm_gen.pth',
        [],
        /^error: .*ddpm_gen\.pth: norm_groups 32 does not divide .*--norm-groups\)\n$/,
      ],
      // A bad option value is a usage error (exit code 2), the rest failures (1).
      ['ddpm_gen.pth', ['--schedule', '{"schedule":"nope"}'], /^error: .*unknown schedule 'nope'/],
    ] as const) {
      const r = await cli(['--ddpm', join(FIX, file), '-o', out, ...extra]);
      expect(r.code, file).toBe(extra.length ? 2 : 1);
      expect(r.err, file).toMatch(want);
      expect(r.err.trimEnd().split('\n'), file).toHaveLength(1);
    }
    expect(existsSync(out)).toBe(false);
  });

  it('reads iteration and epoch from official names', () => {
    expect(stepFromOfficialName('/x/I640000_E32_gen.pth')).toEqual({ step: 640000, epoch: 32 });
    expect(stepFromOfficialName('df_model_E1000_gen.pth')).toEqual({ step: 0, epoch: 1000 });
    expect(stepFromOfficialName('model.pth')).toEqual({ step: 0, epoch: 0 });
  });
});
