/**
 * The DDPM variants through dif-train: mean types, var types, conditional mode with
 * condition dropout, EMA, on both training backends, and `dif-train sample`.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { readImage } from '@dif-fusion/io';
import { dropConditions, splitConditional, WeightEma } from '@dif-fusion/train';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadCheckpoint } from './checkpoint';
import { validateDdpmConfig } from './config';
import { trainDdpm } from './ddpm';
import { trainHead } from './head-train';
import { writeSyntheticPairs } from './synthetic';
import { runCli, tinyDdpm, tinyHead } from './test-utils';

const quiet = { quiet: true, handleSigint: false } as const;
const maxRel = (a: number[], b: number[]) =>
  Math.max(...a.map((x, i) => Math.abs(x - b[i]) / Math.abs(b[i])));

/** The tiny DDPM with a diffusion block and train.ema_decay. */
function variant(diffusion: Record<string, unknown>, ema = 0, iters = 6) {
  const t = tinyDdpm({ dropout: 0.1, iters });
  const conditional = diffusion.conditional === true;
  return {
    ...t,
    model: {
      ...t.model!,
      unet: { ...t.model!.unet, out_channel: conditional ? 3 : 4 },
      diffusion: { loss: 'l2', ...diffusion },
    },
    train: { ...t.train!, ...(ema ? { ema_decay: ema } : {}) },
  } as Parameters<typeof trainDdpm>[0]['config'];
}

let root: string;
let data: string;
beforeAll(async () => {
  root = mkdtempSync(join(tmpdir(), 'dif-train-variants-'));
  data = await writeSyntheticPairs(join(root, 'data'), { count: 4, width: 24, height: 20 });
});
afterAll(() => rmSync(root, { recursive: true, force: true }));

describe('config keys of the variants', () => {
  const base = () => structuredClone(variant({})) as Record<string, any>;

  it('accepts mean_type, var_type, conditional, drop_prob and train.ema_decay', () => {
    const c = base();
    Object.assign(c.model.diffusion, { mean_type: 'x_prev', var_type: 'fixedlarge' });
    c.train.ema_decay = 0.999;
    const v = validateDdpmConfig(c);
    expect(v.model.diffusion.mean_type).toBe('x_prev');
    expect(v.train.ema_decay).toBe(0.999);
    const d = base();
    d.model.unet.out_channel = 3;
    Object.assign(d.model.diffusion, { conditional: true, drop_prob: 0.1 });
    expect(validateDdpmConfig(d).model.diffusion.drop_prob).toBe(0.1);
  });

  it.each([
    [
      ['model', 'diffusion', 'mean_typ'],
      'x_start',
      /unknown key model.diffusion.mean_typ \(did you mean mean_type\?\)/,
    ],
    [['train', 'ema_decy'], 0.9, /unknown key train.ema_decy \(did you mean ema_decay\?\)/],
    [
      ['model', 'diffusion', 'mean_type'],
      'v',
      /model.diffusion.mean_type must be one of epsilon, x_start, x_prev/,
    ],
    [
      ['model', 'diffusion', 'var_type'],
      'learned',
      /var_type must be one of fixedsmall, fixedlarge/,
    ],
    [['train', 'ema_decay'], 1, /train.ema_decay must be in \[0, 1\)/],
    [['model', 'diffusion', 'drop_prob'], 0.1, /drop_prob needs model.diffusion.conditional: true/],
    [
      ['model', 'diffusion', 'conditional'],
      true,
      /out_channel must be 3 with model.diffusion.conditional/,
    ],
  ] as const)('refuses %j = %j', (path, value, message) => {
    const c = base();
    let o = c;
    for (const k of path.slice(0, -1)) o = o[k];
    o[path[path.length - 1]] = value;
    expect(() => validateDdpmConfig(c, 'cfg.json')).toThrow(message);
  });
});

describe('conditional batches, condition dropout, EMA', () => {
  it('splitConditional: planes 0-2 are x_0, plane 3 the condition, per sample', () => {
    const pairs = Float32Array.from({ length: 2 * 4 * 2 }, (_, i) => i); // [2, 4, 1, 2]
    const { x, condition } = splitConditional(pairs, 2);
    expect([...x]).toEqual([0, 1, 2, 3, 4, 5, 8, 9, 10, 11, 12, 13]);
    expect([...condition]).toEqual([6, 7, 14, 15]);
  });

  it('dropConditions zeroes whole samples, deterministically per step seed', () => {
    const c = new Float32Array(64 * 3).fill(1);
    const a = dropConditions(c, 64, 0.25, 7);
    expect([...dropConditions(c, 64, 0.25, 7)]).toEqual([...a]);
    const dropped = Array.from({ length: 64 }, (_, i) => a[i * 3] === 0);
    for (let i = 0; i < 64; i++) expect(a[i * 3 + 2] === 0).toBe(dropped[i]);
    const k = dropped.filter(Boolean).length;
    expect(k).toBeGreaterThan(5); // ~16 of 64
    expect(k).toBeLessThan(30);
    expect(dropConditions(c, 64, 0, 7)).toBe(c);
  });

  it('WeightEma: ema = d ema + (1 - d) w', () => {
    const w = new Map([['a', { shape: [2], data: Float32Array.from([1, 2]) }]]);
    const ema = new WeightEma(0.9, w);
    ema.update(new Map([['a', { shape: [2], data: Float32Array.from([11, -8]) }]]));
    expect([...ema.weights.get('a')!.data]).toEqual([Math.fround(2), Math.fround(1)]);
    expect([...w.get('a')!.data]).toEqual([1, 2]); // a copy
  });
});

describe('training the variants on both backends', () => {
  it.each([
    [{ mean_type: 'x_start' }],
    [{ mean_type: 'x_prev', var_type: 'fixedlarge' }],
    [{ conditional: true, drop_prob: 0.5 }],
  ])(
    '%j: onnxruntime losses = wasm losses (1e-3), EMA kept and equal',
    async (diffusion) => {
      const config = variant(diffusion, 0.9);
      const o = { ...quiet, config, data };
      const tag = Object.values(diffusion).join('-');
      const ort = await trainDdpm({ ...o, out: join(root, `o-${tag}`), backend: 'onnxruntime' });
      const wasm = await trainDdpm({
        ...o,
        out: join(root, `w-${tag}`),
        backend: 'wasm',
        workers: 2,
      });
      expect(ort.losses).toHaveLength(6);
      expect(maxRel(ort.losses, wasm.losses)).toBeLessThan(1e-3);
      const a = loadCheckpoint(ort.checkpoint!, 'ddpm');
      const b = loadCheckpoint(wasm.checkpoint!, 'ddpm');
      expect(a.ema?.size).toBe(a.weights.size);
      const name = [...a.weights.keys()][0];
      // the EMA lags the weights, and matches across backends
      expect(a.ema!.get(name)!.data).not.toEqual(a.weights.get(name)!.data);
      const ea = a.ema!.get(name)!.data;
      const eb = b.ema!.get(name)!.data;
      expect(maxRel(Array.from(ea.slice(0, 16)), Array.from(eb.slice(0, 16)))).toBeLessThan(1e-3);
      expect([
        ...loadCheckpoint(ort.checkpoint!, 'ddpm', { ema: true }).weights.get(name)!.data,
      ]).toEqual([...ea]);
    },
    240_000,
  );
});

describe('dif-train sample', () => {
  let ckpt: string;
  let cond: string;
  beforeAll(async () => {
    const r = await trainDdpm({
      ...quiet,
      config: variant({}, 0.5, 2),
      data,
      out: join(root, 's'),
      backend: 'onnxruntime',
    });
    ckpt = r.checkpoint!;
    const c = await trainDdpm({
      ...quiet,
      config: variant({ conditional: true, drop_prob: 0.2 }, 0, 2),
      data,
      out: join(root, 'c'),
      backend: 'onnxruntime',
    });
    cond = c.checkpoint!;
  }, 120_000);

  it('writes a labelled RGB | IR grid, the same bytes for the same seed', async () => {
    const args = (seed: number, out: string, more: string[] = []) => [
      'sample',
      ...['--ddpm', ckpt, '-n', '3', '--steps', '5', '--sampler', 'ddim'],
      ...['--seed', String(seed), '-o', join(root, out), ...more],
    ];
    const a = await runCli(args(0, 'a.png'));
    expect(a.code).toBe(0);
    expect(a.err).toMatch(/5 steps, ddim eta 0, seed 0/);
    expect(a.err).toMatch(/step 5\/5/);
    expect((await runCli(args(0, 'b.png'))).code).toBe(0);
    expect((await runCli(args(1, 'c.png'))).code).toBe(0);
    expect((await runCli(args(0, 'e.png', ['--ema']))).code).toBe(0);
    const bytes = (f: string) => readFileSync(join(root, f));
    expect(bytes('a.png').equals(bytes('b.png'))).toBe(true);
    expect(bytes('a.png').equals(bytes('c.png'))).toBe(false);
    expect(bytes('a.png').equals(bytes('e.png'))).toBe(false);
    // 16 px tiles are drawn 4x (labelled grids zoom tiles under 64 px, so the labels are
    // readable): 2 columns of 64 px + 3 pads; a 20 px label row (2x font) + 3 rows + 4 pads
    const img = await readImage(join(root, 'a.png'));
    expect([img.width, img.height]).toEqual([2 * 64 + 3 * 2, 20 + 3 * 64 + 4 * 2]);
  }, 120_000);

  it('--size other than the training crop: the UNet keeps its trained attention levels', async () => {
    // Trained on 16 px crops with attn_res [8]: at 32 px a UNet built for 32 would attend at
    // no level and refuse the checkpoint's attention weights.
    const out = join(root, 'size32.png');
    const r = await runCli([
      'sample',
      ...['--ddpm', ckpt, '-n', '2', '--steps', '3', '--size', '32', '-o', out],
    ]);
    expect(r.err).not.toMatch(/unexpected key/);
    expect(r.code).toBe(0);
    const img = await readImage(out);
    // 32 px tiles drawn 2x; a 20 px label row
    expect([img.width, img.height]).toEqual([2 * 64 + 3 * 2, 20 + 2 * 64 + 3 * 2]);
  }, 120_000);

  it('--size WxH: non-square samples; N and NxN at the training crop give the same bytes', async () => {
    const run = (out: string, more: string[]) =>
      runCli([
        'sample',
        ...['--ddpm', ckpt, '-n', '2', '--steps', '3', '--seed', '4', '-o', join(root, out)],
        ...more,
      ]);
    const wide = await run('wide.png', ['--size', '96x64']);
    expect(wide.err).toMatch(/2 x 96x64 from/);
    expect(wide.code).toBe(0);
    const img = await readImage(join(root, 'wide.png'));
    // 96x64 tiles (short side 64: no zoom), RGB | IR, 2 rows, a 20 px label row
    expect([img.width, img.height]).toEqual([2 * 96 + 3 * 2, 20 + 2 * 64 + 3 * 2]);
    const tall = await run('tall.png', ['--size', '16x48']);
    expect(tall.code).toBe(0);
    const t = await readImage(join(root, 'tall.png'));
    expect([t.width, t.height]).toEqual([2 * 64 + 3 * 2, 20 + 2 * 192 + 3 * 2]); // 4x zoom
    // The training crop (16) three ways: the same bytes (the square path is unchanged).
    for (const [out, more] of [
      ['sq-default.png', []],
      ['sq-n.png', ['--size', '16']],
      ['sq-nxn.png', ['--size', '16x16']],
    ] as const)
      expect((await run(out, [...more])).code).toBe(0);
    const bytes = (f: string) => readFileSync(join(root, f));
    expect(bytes('sq-n.png').equals(bytes('sq-default.png'))).toBe(true);
    expect(bytes('sq-nxn.png').equals(bytes('sq-default.png'))).toBe(true);
    const bad = await run('bad.png', ['--size', '16x15']);
    expect(bad.code).toBe(1);
    expect(bad.err).toMatch(/--size 16x15: width and height must be multiples of 2/);
    expect((await run('bad.png', ['--size', '16y16'])).err).toMatch(
      /--size must be N or WIDTHxHEIGHT/,
    );
  }, 120_000);

  it('--intermediate: x_T and every 1|(steps//10) steps (official continous); the last is the sample', async () => {
    const run = (out: string, more: string[]) =>
      runCli([
        'sample',
        ...['--ddpm', ckpt, '-n', '2', '--steps', '20', '--seed', '3', '-o', join(root, out)],
        ...more,
      ]);
    expect((await run('final.png', [])).code).toBe(0);
    const r = await run('chain.png', ['--intermediate']);
    expect(r.code).toBe(0);
    const chain = await readImage(join(root, 'chain.png'));
    const final = await readImage(join(root, 'final.png'));
    // 20 steps: interval 1|2 = 3, states x_T, 18, 15, 12, 9, 6, 3, 0 (8 columns of 16 px
    // tiles drawn 4x), per sample an RGB row and an IR row
    const tile = 64;
    const pad = 2;
    expect(chain.width).toBe(8 * tile + 9 * pad);
    const header = chain.height - (4 * tile + 5 * pad);
    expect(header).toBe(20);
    // The last column (i = 0) is the sample: its RGB tiles equal the plain grid's RGB column,
    // its IR tiles the plain grid's IR column.
    const fHeader = final.height - (2 * tile + 3 * pad);
    const px = (img: typeof chain, x: number, y: number) =>
      [0, 1, 2].map((k) => img.data[(y * img.width + x) * 3 + k]);
    for (let sample = 0; sample < 2; sample++)
      for (const [col, row] of [
        [0, 0],
        [1, 1],
      ])
        for (let y = 0; y < tile; y += 5)
          for (let x = 0; x < tile; x += 5) {
            const a = px(
              chain,
              pad + 7 * (tile + pad) + x,
              header + pad + (2 * sample + row) * (tile + pad) + y,
            );
            const b = px(
              final,
              pad + col * (tile + pad) + x,
              fHeader + pad + sample * (tile + pad) + y,
            );
            expect(a).toEqual(b);
          }
  }, 120_000);

  it('conditional: IR | RGB | REAL from --cond pairs, with guidance; refusals are one line', async () => {
    const out = join(root, 'cond.png');
    const r = await runCli([
      'sample',
      ...['--ddpm', cond, '-n', '2', '--steps', '3', '--cond', data, '--guidance', '1', '-o', out],
    ]);
    expect(r.code).toBe(0);
    const img = await readImage(out);
    expect(img.width).toBe(3 * 64 + 4 * 2); // 16 px tiles drawn 4x
    const noCond = await runCli(['sample', '--ddpm', cond, '-o', join(root, 'x.png')]);
    expect(noCond.code).toBe(1);
    expect(noCond.err).toMatch(/conditional DDPM .*pass --cond DIR/);
    const noEma = await runCli(['sample', '--ddpm', cond, '--ema', '-o', join(root, 'x.png')]);
    expect(noEma.err).toMatch(/holds no EMA weights/);
  }, 120_000);
});

describe('EMA weights for the fusion features (dif-train head --ema)', () => {
  it('features from the EMA differ from the trained weights; kept on resume; refused without EMA', async () => {
    const r = await trainDdpm({
      ...quiet,
      config: variant({}, 0.5, 2),
      data,
      out: join(root, 'h-ddpm'),
      backend: 'wasm',
      workers: 1,
    });
    const head = tinyHead({ n_epoch: 1, optimizer: { type: 'adam', lr: 1e-3 } });
    const o = { ...quiet, config: head, ddpm: r.checkpoint!, data, backend: 'wasm' as const };
    const plain = await trainHead({ ...o, out: join(root, 'h-plain') });
    const ema = await trainHead({ ...o, out: join(root, 'h-ema'), ema: true });
    expect(ema.losses).toHaveLength(plain.losses.length);
    expect(ema.losses[0]).not.toBe(plain.losses[0]);
    expect(loadCheckpoint(ema.checkpoint!, 'head').extra.ddpm_ema).toBe(true);
    const resumed = await trainHead({
      ...quiet,
      out: join(root, 'h-ema'),
      resume: true,
      epochs: 2,
      backend: 'wasm',
    });
    expect(loadCheckpoint(resumed.checkpoint!, 'head').extra.ddpm_ema).toBe(true);
    const noEma = await trainDdpm({
      ...quiet,
      config: variant({}, 0, 1),
      data,
      out: join(root, 'h-noema'),
      backend: 'wasm',
      workers: 1,
    });
    await expect(
      trainHead({ ...o, ddpm: noEma.checkpoint!, out: join(root, 'h-x'), ema: true }),
    ).rejects.toThrow(/holds no EMA weights/);
    // export: --ema writes the EMA weights into the model, which then differs
    const exp = (out: string, more: string[] = []) =>
      runCli([
        'export',
        '--ddpm',
        r.checkpoint!,
        '--head',
        ema.checkpoint!,
        '-o',
        join(root, out),
        ...more,
      ]);
    expect((await exp('m-ema', ['--ema'])).code).toBe(0);
    expect((await exp('m-plain')).code).toBe(0);
    const onnx = (d: string) => readFileSync(join(root, d, 'model.onnx'));
    expect(onnx('m-ema').equals(onnx('m-plain'))).toBe(false);
    expect(onnx('m-ema').length).toBe(onnx('m-plain').length);
  }, 180_000);
});
