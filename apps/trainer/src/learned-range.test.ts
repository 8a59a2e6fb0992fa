/**
 * `model.diffusion.var_type: "learned_range"` (Improved DDPM) through dif-train: the config
 * keys, training on both backends with the vb term logged, the doubled final conv in the
 * checkpoint, `dif-train sample`, and the fusion stage (head, export) on such a DDPM.
 */
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
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

/** The tiny DDPM with var_type learned_range (and optional other diffusion keys). */
function learned(diffusion: Record<string, unknown> = {}, iters = 4) {
  const t = tinyDdpm({ dropout: 0.1, iters });
  return {
    ...t,
    model: { ...t.model!, diffusion: { loss: 'l2', var_type: 'learned_range', ...diffusion } },
  } as Parameters<typeof trainDdpm>[0]['config'];
}

const stepRecords = (out: string) =>
  readFileSync(join(out, 'log.jsonl'), 'utf8')
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l))
    .filter((l) => l.loss !== undefined);

let root: string;
let data: string;
beforeAll(async () => {
  root = mkdtempSync(join(tmpdir(), 'dif-train-learned-'));
  data = await writeSyntheticPairs(join(root, 'data'), { count: 4, width: 24, height: 20 });
});
afterAll(() => rmSync(root, { recursive: true, force: true }));

describe('config', () => {
  it('accepts var_type learned_range with vlb_weight; out_channel stays the data channels', () => {
    const c = learned({ vlb_weight: 0.01 }) as Record<string, any>;
    const v = validateDdpmConfig(c);
    expect(v.model.diffusion.var_type).toBe('learned_range');
    expect(v.model.diffusion.vlb_weight).toBe(0.01);
    expect(v.model.unet.out_channel).toBe(4);
  });

  it.each([
    [{ var_type: 'fixedlarge', vlb_weight: 0.001 }, /vlb_weight needs model.diffusion.var_type/],
    [{ vlb_weight: -1 }, /vlb_weight must be a non-negative number/],
    [{ vlb_weigth: 0.1 }, /unknown key model.diffusion.vlb_weigth \(did you mean vlb_weight\?\)/],
  ])('refuses %j with one line', (diffusion, message) => {
    const c = learned(diffusion) as Record<string, any>;
    expect(() => validateDdpmConfig(c, 'cfg.json')).toThrow(message);
    try {
      validateDdpmConfig(c, 'cfg.json');
    } catch (e) {
      expect((e as Error).message).not.toContain('\n');
      expect((e as Error).message).toMatch(/^cfg.json: /);
    }
  });
});

describe('training, sampling and fusion on a learned_range DDPM', () => {
  let ort: Awaited<ReturnType<typeof trainDdpm>>;
  beforeAll(async () => {
    ort = await trainDdpm({
      ...quiet,
      config: learned(),
      data,
      out: join(root, 'ort'),
      backend: 'onnxruntime',
    });
  }, 120_000);

  it('onnxruntime and wasm (2 workers) give the same losses and vb terms (1e-3); vb is logged', async () => {
    const wasm = await trainDdpm({
      ...quiet,
      config: learned(),
      data,
      out: join(root, 'wasm'),
      backend: 'wasm',
      workers: 2,
    });
    expect(ort.losses).toHaveLength(4);
    expect(maxRel(ort.losses, wasm.losses)).toBeLessThan(1e-3);
    const a = stepRecords(join(root, 'ort'));
    const b = stepRecords(join(root, 'wasm'));
    expect(a.map((r) => Object.keys(r).slice(0, 4))).toEqual(
      a.map(() => ['step', 'loss', 'vb', 'lr']),
    );
    const vbA = a.map((r) => r.vb as number);
    expect(vbA.every((v) => Number.isFinite(v) && v > 0)).toBe(true);
    expect(
      maxRel(
        vbA,
        b.map((r) => r.vb as number),
      ),
    ).toBeLessThan(1e-3);
    // loss = L_simple + lambda T vb with lambda T = 0.001 x 100: the vb share is below the loss
    for (const r of a) expect(0.1 * r.vb).toBeLessThan(r.loss);
  }, 240_000);

  it('the checkpoint holds the doubled final conv ([eps, v]: 2 x 4 outputs), config unchanged', () => {
    const ck = loadCheckpoint(ort.checkpoint!, 'ddpm');
    expect(ck.weights.get('final_conv.block.3.weight')?.shape).toEqual([8, 8, 3, 3]);
    expect(ck.weights.get('final_conv.block.3.bias')?.shape).toEqual([8]);
    const cfg = ck.config as { model: { unet: { out_channel: number } } };
    expect(cfg.model.unet.out_channel).toBe(4);
  });

  it('dif-train sample (ancestral, strided): the same bytes per seed, other bytes for another', async () => {
    const args = (seed: number, out: string) => [
      'sample',
      ...['--ddpm', ort.checkpoint!, '-n', '2', '--steps', '4', '--seed', String(seed)],
      ...['-o', join(root, out)],
    ];
    const a = await runCli(args(0, 'a.png'));
    expect(a.code, a.err).toBe(0);
    expect(a.err).toMatch(/4 steps, ancestral, seed 0/);
    expect((await runCli(args(0, 'b.png'))).code).toBe(0);
    expect((await runCli(args(1, 'c.png'))).code).toBe(0);
    const bytes = (f: string) => readFileSync(join(root, f));
    expect(bytes('a.png').equals(bytes('b.png'))).toBe(true);
    expect(bytes('a.png').equals(bytes('c.png'))).toBe(false);
    const ddim = await runCli([...args(0, 'd.png'), '--sampler', 'ddim']);
    expect(ddim.code).toBe(0);
    expect(bytes('a.png').equals(bytes('d.png'))).toBe(false);
  }, 120_000);

  it('dif-train head on both backends and dif-train export load the doubled final conv', async () => {
    const head = tinyHead({ n_epoch: 1, optimizer: { type: 'adam', lr: 1e-3 } });
    const o = { ...quiet, config: head, ddpm: ort.checkpoint!, data };
    const w = await trainHead({ ...o, out: join(root, 'h-wasm'), backend: 'wasm' });
    const x = await trainHead({ ...o, out: join(root, 'h-ort'), backend: 'onnxruntime' });
    expect(w.losses.length).toBeGreaterThan(0);
    expect(maxRel(x.losses, w.losses)).toBeLessThan(1e-3);
    const r = await runCli([
      'export',
      ...['--ddpm', ort.checkpoint!, '--head', w.checkpoint!, '-o', join(root, 'model')],
    ]);
    expect(r.code, r.err).toBe(0);
    expect(existsSync(join(root, 'model', 'model.onnx'))).toBe(true);
    const cfg = JSON.parse(readFileSync(join(root, 'model', 'config.json'), 'utf8'));
    expect(cfg.unet.out_channel).toBe(8);
    // fusion reads decoder features: the final conv (and with it v) is not in the graph
    const onnx = readFileSync(join(root, 'model', 'model.onnx'));
    expect(onnx.includes('final_conv')).toBe(false);
    expect(onnx.includes('init_conv')).toBe(true);
  }, 240_000);

  it('--resume continues exactly (the same losses as one straight run)', async () => {
    const straight = await trainDdpm({
      ...quiet,
      config: learned({}, 6),
      data,
      out: join(root, 'ort6'),
      backend: 'onnxruntime',
    });
    const resumed = await trainDdpm({
      ...quiet,
      data,
      out: join(root, 'ort'),
      iters: 6,
      resume: true,
      backend: 'onnxruntime',
    });
    expect(resumed.step).toBe(6);
    expect(resumed.losses).toEqual(straight.losses.slice(4));
  }, 120_000);
});
