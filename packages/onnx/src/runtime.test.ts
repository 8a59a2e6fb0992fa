import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import {
  copyFileSync,
  existsSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { attr, GraphBuilder } from './graph';
import { MODEL_FORMAT } from './model-config';
import {
  fileStamp,
  fusionNoise,
  imageNoise,
  loadFusionModel,
  ModelFolderError,
  readModelConfig,
} from './runtime';
import { OnnxRuntimeError, openSession, runFloat } from './session';
import { randn } from './test-utils';
import { writeModelFolder } from './write';

const root = mkdtempSync(join(tmpdir(), 'dif-onnx-rt-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));

/**
 * A stand-in fusion graph with the real interface: fused = tanh(vis + ir + mean_k(noise)[:, :3]).
 * Small and exact, so the runtime plumbing is tested without the UNet.
 */
function toyModel(
  options: {
    external?: boolean;
    inputNames?: string[];
    /** A value to put into weight `big` (e.g. NaN: a diverged export). */
    poison?: number;
    /** A Reshape to [fixedK, -1] of the noise that fails unless K * 4 * H * W divides by it. */
    fixedK?: number;
    metadata?: Record<string, string>;
    /** Pad the output by this many pixels at the bottom and right (a graph of another multiple). */
    padOut?: number;
  } = {},
) {
  const g = new GraphBuilder('toy');
  const [irName, visName, noiseName] = options.inputNames ?? ['ir', 'vis', 'noise'];
  const ir = g.input(irName, ['N', 1, 'H', 'W']);
  const vis = g.input(visName, ['N', 3, 'H', 'W']);
  const noise = g.input(noiseName, ['K', 'N', 4, 'H', 'W']);
  const meanK = g.node('ReduceMean', [noise], { axes: attr.ints([0]), keepdims: attr.int(0) });
  const n3 = g.node('Slice', [meanK, g.constI64([0]), g.constI64([3]), g.constI64([1])]);
  // A weight big enough to be stored externally (>= 1 KiB) that is all ones.
  const ones = g.initializer('w', [1, 3, 1, 1], new Float32Array(3).fill(1));
  const bigData = new Float32Array(512);
  if (options.poison !== undefined) bigData[300] = options.poison;
  const big = g.initializer('big', [512], bigData);
  let bigSum = g.node('ReduceSum', [big], { keepdims: attr.int(0) }); // 0
  if (options.fixedK) {
    const r = g.node('Reshape', [noise, g.constI64([options.fixedK, -1])]);
    const zero = g.node('Mul', [
      g.node('ReduceSum', [r], { keepdims: attr.int(0) }),
      g.constF32([0], []),
    ]);
    bigSum = g.node('Add', [bigSum, zero]);
  }
  const sum = g.node('Add', [g.node('Add', [g.node('Mul', [vis, ones]), ir]), n3]);
  let fused = g.node('Tanh', [g.node('Add', [sum, bigSum])]);
  if (options.padOut)
    fused = g.node('Pad', [fused, g.constI64([0, 0, 0, 0, 0, 0, options.padOut, options.padOut])]);
  g.output(fused, 'fused', ['N', 3, 'H', 'W']);
  return g.serialize({
    externalData: options.external ? 'always' : 'never',
    metadata: options.metadata,
  });
}

const config = (extra: Record<string, unknown> = {}) => ({
  format: MODEL_FORMAT,
  format_version: 1,
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
  head: { feat_scales: [2, 0], time_steps: [5, 50], out_channels: 3, mode: 'full' },
  time_steps: [5, 50],
  noise_levels: [0.99, 0.9],
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
  provenance: { source: 'test' },
  created: new Date(0).toISOString(),
  ...extra,
});

function expected(
  ir: Float32Array,
  vis: Float32Array,
  noise: Float32Array,
  n: number,
  k: number,
  px: number,
) {
  const out = new Float32Array(n * 3 * px);
  for (let b = 0; b < n; b++)
    for (let c = 0; c < 3; c++)
      for (let p = 0; p < px; p++) {
        let m = 0;
        for (let t = 0; t < k; t++) m += noise[((t * n + b) * 4 + c) * px + p];
        out[(b * 3 + c) * px + p] = Math.tanh(vis[(b * 3 + c) * px + p] + ir[b * px + p] + m / k);
      }
  return out;
}

describe('runtime: model folders and sessions', () => {
  it("ONNX Runtime's .ses and mat-debug-<pid>.log go to a private folder, not $TMPDIR", async () => {
    const dir = join(root, 'tmp-clean');
    writeModelFolder(dir, toyModel(), config());
    const userTmp = mkdtempSync(join(tmpdir(), 'dif-user-tmp-'));
    const before = process.env.TMPDIR;
    process.env.TMPDIR = userTmp;
    try {
      const model = await loadFusionModel(dir, { device: 'cpu', threads: 1 });
      const noise = fusionNoise(7, { k: 2, n: 1, height: 16, width: 16 });
      const fused = await model.fuse({
        ...{ ir: randn([256], 1), vis: randn([768], 2), noise },
        ...{ n: 1, height: 16, width: 16 },
      });
      expect(fused.length).toBe(768);
      await model.release();
      expect(process.env.TMPDIR).toBe(userTmp);
      // Only the private folder (removed at exit: the fuser's CLI test checks that), holding
      // whatever ONNX Runtime wrote.
      const left = readdirSync(userTmp);
      expect(left).toHaveLength(1);
      expect(left[0]).toMatch(/^dif-onnx-/);
    } finally {
      // assigning undefined would store the string "undefined" for every later test
      if (before === undefined) delete process.env.TMPDIR;
      else process.env.TMPDIR = before;
    }
  });

  it('loads a folder, reports the provider, fuses several calls on one warm session', async () => {
    const dir = join(root, 'ok');
    writeModelFolder(dir, toyModel(), config());
    const model = await loadFusionModel(dir, { device: 'cpu', threads: 1 });
    expect(model.provider).toBe('cpu');
    expect(model.config.head.time_steps).toEqual([5, 50]);
    for (const [n, h, w] of [
      [1, 16, 32],
      [2, 32, 16],
    ]) {
      const px = h * w;
      const ir = randn([n * px], 1);
      const vis = randn([n * 3 * px], 2);
      const noise = fusionNoise(7, { k: 2, n, height: h, width: w });
      const fused = await model.fuse({ ir, vis, noise, n, height: h, width: w });
      expect(fused.length).toBe(n * 3 * px);
      const want = expected(ir, vis, noise, n, 2, px);
      let err = 0;
      for (let i = 0; i < want.length; i++) err = Math.max(err, Math.abs(fused[i] - want[i]));
      expect(err).toBeLessThan(1e-5);
    }
    await expect(
      model.fuse({
        ir: new Float32Array(10),
        vis: new Float32Array(30),
        noise: new Float32Array(80),
        n: 1,
        height: 10,
        width: 1,
      }),
    ).rejects.toThrow(/multiples of 16/);
    await expect(
      model.fuse({
        ir: new Float32Array(256),
        vis: new Float32Array(768),
        noise: new Float32Array(10),
        n: 1,
        height: 16,
        width: 16,
      }),
    ).rejects.toThrow(/noise has 10 values, expected 2048/);
    await model.release();
  });

  it('without noise, fuse draws imageNoise(seed): same seed same bytes', async () => {
    const dir = join(root, 'seeded');
    writeModelFolder(dir, toyModel(), config());
    const lines: string[] = [];
    const model = await loadFusionModel(dir, {
      device: 'cpu',
      threads: 1,
      log: (l) => lines.push(l),
    });
    expect(lines).toEqual(['ONNX Runtime provider: cpu']);
    const [n, h, w] = [1, 16, 16];
    const ir = randn([h * w], 5);
    const vis = randn([3 * h * w], 6);
    const a = await model.fuse({ ir, vis, seed: 9, n, height: h, width: w });
    const b = await model.fuse({ ir, vis, seed: 9, n, height: h, width: w });
    const explicit = await model.fuse({
      ir,
      vis,
      noise: imageNoise(9, { k: 2, n, height: h, width: w }),
      n,
      height: h,
      width: w,
    });
    const other = await model.fuse({ ir, vis, seed: 10, n, height: h, width: w });
    const zero = await model.fuse({ ir, vis, n, height: h, width: w });
    const zeroExplicit = await model.fuse({ ir, vis, seed: 0, n, height: h, width: w });
    const bytes = (x: Float32Array) => Buffer.from(x.buffer, x.byteOffset, x.byteLength);
    expect(bytes(a).equals(bytes(b))).toBe(true);
    expect(bytes(a).equals(bytes(explicit))).toBe(true);
    expect(bytes(a).equals(bytes(other))).toBe(false);
    expect(bytes(zero).equals(bytes(zeroExplicit))).toBe(true);
    await model.release();
  });

  it('auto falls back to CPU when CUDA is not available', async () => {
    const dir = join(root, 'auto');
    writeModelFolder(dir, toyModel(), config());
    const model = await loadFusionModel(dir, { device: 'auto' });
    expect(['cpu', 'cuda']).toContain(model.provider);
    await model.release();
  });

  it('--device cuda fails with one clear line when CUDA is unavailable', async () => {
    const { model } = toyModel();
    let err: unknown = null;
    try {
      const s = await openSession(model, { device: 'cuda' });
      await s.session.release();
    } catch (e) {
      err = e;
    }
    if (err === null) return; // a machine with working CUDA: nothing to check
    expect(err).toBeInstanceOf(OnnxRuntimeError);
    const msg = (err as Error).message;
    expect(msg).not.toContain('\n');
    expect(msg).toMatch(/^CUDA is unavailable for ONNX Runtime \(.+\); .*--device cpu$/);
  });

  it('external data: model.onnx + model.onnx.data load and give the same result', async () => {
    const dir = join(root, 'ext');
    const m = toyModel({ external: true });
    expect(m.externalData).not.toBeNull();
    writeModelFolder(dir, m, config({ external_data: true }));
    expect(readFileSync(join(dir, 'model.onnx.data')).byteLength).toBeGreaterThanOrEqual(2048);
    const model = await loadFusionModel(dir, { device: 'cpu' });
    const n = 1;
    const px = 16 * 16;
    const ir = randn([px], 3);
    const vis = randn([3 * px], 4);
    const noise = fusionNoise(1, { k: 2, n, height: 16, width: 16 });
    const fused = await model.fuse({ ir, vis, noise, n, height: 16, width: 16 });
    const want = expected(ir, vis, noise, n, 2, px);
    for (let i = 0; i < want.length; i += 97) expect(fused[i]).toBeCloseTo(want[i], 5);
    await model.release();
  });

  it("the network blocks: as written, or as the caller's parser reads them (this package knows no network)", () => {
    const dir = join(root, 'blocks');
    writeModelFolder(
      dir,
      toyModel(),
      config({ head: { feat_scales: [2, 0], t: [5, 50], out_channels: 3, mode: 'full' } }),
    );
    // as written; the official `t` read as the head's time_steps (the noise input's first axis)
    const raw = readModelConfig(dir);
    expect(raw.unet).toEqual(config().unet);
    expect(raw.head).toMatchObject({ t: [5, 50], time_steps: [5, 50] });
    // a parser (e.g. @dif-fusion/fusion-head's parseFusionBlocks) gets both blocks
    const seen: unknown[] = [];
    const parsed = readModelConfig(dir, (b) => {
      seen.push(b);
      return {
        unet: { inner: b.unet.inner_channel as number },
        head: { time_steps: b.head.time_steps },
      };
    });
    expect(seen).toEqual([{ unet: raw.unet, head: raw.head }]);
    expect(parsed.unet).toEqual({ inner: 4 });
    expect(parsed.head).toEqual({ time_steps: [5, 50] });
  });

  it('one-line errors for invalid folders', async () => {
    const oneLine = (f: () => unknown, re: RegExp) => {
      let err: Error | null = null;
      try {
        f();
      } catch (e) {
        err = e as Error;
      }
      expect(err).toBeInstanceOf(ModelFolderError);
      expect(err!.message).not.toContain('\n');
      expect(err!.message).toMatch(re);
    };
    oneLine(() => readModelConfig(join(root, 'nope')), /does not exist$/);
    const empty = join(root, 'empty');
    writeModelFolder(empty, toyModel(), config());
    rmSync(join(empty, 'model.onnx'));
    oneLine(() => readModelConfig(empty), /model\.onnx is missing$/);
    const noCfg = join(root, 'nocfg');
    writeModelFolder(noCfg, toyModel(), config());
    rmSync(join(noCfg, 'config.json'));
    oneLine(() => readModelConfig(noCfg), /config\.json is missing$/);
    const badJson = join(root, 'badjson');
    writeModelFolder(badJson, toyModel(), config());
    writeFileSync(join(badJson, 'config.json'), '{"format": ');
    oneLine(() => readModelConfig(badJson), /config\.json is not valid JSON/);
    const other = join(root, 'other');
    writeModelFolder(other, toyModel(), { hello: 1 });
    oneLine(() => readModelConfig(other), /not a dif-fusion model config/);
    const levels = join(root, 'levels');
    writeModelFolder(levels, toyModel(), config({ noise_levels: [0.5] }));
    oneLine(() => readModelConfig(levels), /noise_levels/);
    // the head block is the one source of the time steps and the mode (format_version 2);
    // version 1 folders repeat them at the top level, some hold them there only
    const read = (name: string, c: Record<string, unknown>) => {
      const dir = join(root, name);
      writeModelFolder(dir, toyModel(), c);
      return readModelConfig(dir);
    };
    const { time_steps: _t, head_mode: _m, ...v2 } = config({ format_version: 2 });
    for (const c of [
      v2,
      config(),
      config({ head: { feat_scales: [2, 0], out_channels: 3 }, head_mode: 'full' }),
    ]) {
      const cfg = read('head-block', c) as unknown as Record<string, unknown>;
      expect(cfg.head).toMatchObject({ time_steps: [5, 50], mode: 'full' });
      expect([cfg.time_steps, cfg.head_mode]).toEqual([undefined, undefined]);
    }
    oneLine(
      () => read('steps-differ', config({ time_steps: [5, 60] })),
      /config\.json: time_steps \[5,60\] differs from head\.time_steps \[5,50\]$/,
    );
    oneLine(
      () => read('no-steps', { ...v2, head: { feat_scales: [2, 0], time_steps: [] } }),
      /head\.time_steps must be a non-empty list of integers$/,
    );
    // a block the caller's parser refuses: its message, in the folder's one line
    const badBlock = join(root, 'bad-block');
    writeModelFolder(badBlock, toyModel(), config());
    const refuse = () => {
      throw new Error('UNet config: norm_groups 3 must divide inner_channel\n(detail)');
    };
    oneLine(
      () => readModelConfig(badBlock, refuse),
      /invalid: config\.json: UNet config: norm_groups 3 must divide inner_channel$/,
    );
    oneLine(
      () => readModelConfig(badBlock, (b) => ({ unet: b.unet, head: { time_steps: [1] } })),
      /the head parser changed the time steps$/,
    );

    // Not an ONNX file at all.
    const garbage = join(root, 'garbage');
    writeModelFolder(garbage, toyModel(), config());
    writeFileSync(join(garbage, 'model.onnx'), 'not a model');
    const e1 = await loadFusionModel(garbage, { device: 'cpu' }).catch((e) => e);
    expect(e1).toBeInstanceOf(ModelFolderError);
    expect(e1.message).not.toContain('\n');
    expect(e1.message).toMatch(/model\.onnx does not load/);

    // An ONNX model with the wrong inputs.
    const wrong = join(root, 'wrong');
    writeModelFolder(wrong, toyModel({ inputNames: ['a', 'b', 'c'] }), config());
    const e2 = await loadFusionModel(wrong, { device: 'cpu' }).catch((e) => e);
    expect(e2).toBeInstanceOf(ModelFolderError);
    expect(e2.message).toMatch(/has inputs \[a, b, c\].*expected inputs \[ir, vis, noise\]/);
  });

  it('refuses NaN weights, unknown format versions and a config.json from another graph', async () => {
    const refused = async (name: string, model: ReturnType<typeof toyModel>, cfg: object) => {
      const dir = join(root, name);
      writeModelFolder(dir, model, cfg);
      const e = await loadFusionModel(dir, { device: 'cpu' }).catch((x) => x);
      expect(e).toBeInstanceOf(ModelFolderError);
      expect(e.message).not.toContain('\n');
      return e.message as string;
    };
    for (const external of [false, true])
      expect(
        await refused(`nan-${external}`, toyModel({ poison: Number.NaN, external }), config()),
      ).toBe(
        `model folder ${join(root, `nan-${external}`)} is invalid: model.onnx weight 'big' holds 1 NaN/Inf value (first at index 300); the weights diverged, export from an earlier checkpoint`,
      );
    expect(await refused('inf', toyModel({ poison: -Infinity }), config())).toMatch(
      /weight 'big' holds 1 NaN\/Inf/,
    );
    expect(await refused('v99', toyModel(), config({ format_version: 99 }))).toMatch(
      /config\.json has format_version 99, this version of dif-fusion reads 2 \(update @dif-fusion\/fuser\)$/,
    );
    expect(await refused('vabc', toyModel(), config({ format_version: 'abc' }))).toMatch(
      /format_version must be a positive integer, got "abc"$/,
    );
    expect(
      await refused('steps', toyModel({ metadata: { time_steps: '[5,50,100]' } }), config()),
    ).toMatch(
      /config\.json has time_steps \[5,50\] but model\.onnx was exported with \[5,50,100\]/,
    );

    // config.json is bound to its graph: another export's model.onnx beside it is refused,
    // a folder without graph_sha256 (exported before it existed) still loads.
    const a = join(root, 'bound-a');
    const b = join(root, 'bound-b');
    writeModelFolder(a, toyModel(), config());
    writeModelFolder(b, toyModel({ inputNames: ['ir', 'vis', 'noise'], poison: 0.5 }), config());
    const cfgA = JSON.parse(readFileSync(join(a, 'config.json'), 'utf8'));
    expect(cfgA.graph_sha256).toBe(
      createHash('sha256')
        .update(readFileSync(join(a, 'model.onnx')))
        .digest('hex'),
    );
    copyFileSync(join(b, 'model.onnx'), join(a, 'model.onnx'));
    const be = await loadFusionModel(a, { device: 'cpu' }).catch((x) => x);
    expect(be).toBeInstanceOf(ModelFolderError);
    expect(be.message).toMatch(
      new RegExp(
        `^model folder ${a} is invalid: config\\.json belongs to another model\\.onnx \\(graph sha256 ${cfgA.graph_sha256.slice(0, 12)}… in config\\.json, [0-9a-f]{12}… on disk\\); export the folder again$`,
      ),
    );
    const { graph_sha256: _g, ...old } = cfgA;
    writeFileSync(join(a, 'config.json'), JSON.stringify(old));
    const oldModel = await loadFusionModel(a, { device: 'cpu' });
    expect(oldModel.config.graph_sha256).toBeUndefined();
    await oldModel.release();

    // No metadata to compare: ONNX Runtime's error at the first run, as one line naming the folder.
    const dir = join(root, 'k3');
    writeModelFolder(dir, toyModel({ fixedK: 3 }), config());
    const model = await loadFusionModel(dir, { device: 'cpu' });
    const e = await model
      .fuse({ ir: new Float32Array(256), vis: new Float32Array(768), n: 1, height: 16, width: 16 })
      .catch((x) => x);
    await model.release();
    expect(e).toBeInstanceOf(ModelFolderError);
    expect(e.message).not.toContain('\n');

    // A graph of another size multiple (it pads its output): one line naming the folder.
    const padded = join(root, 'padded');
    writeModelFolder(padded, toyModel({ padOut: 2 }), config());
    const pm = await loadFusionModel(padded, { device: 'cpu' });
    const pe = await pm
      .fuse({ ir: new Float32Array(256), vis: new Float32Array(768), n: 1, height: 16, width: 16 })
      .catch((x) => x);
    await pm.release();
    expect(pe).toBeInstanceOf(ModelFolderError);
    expect(pe.message).toBe(
      `model folder ${padded}: model.onnx returned fused [1,3,18,18] for a 16x16 input, expected [1,3,16,16]; config.json's size_multiple 16 does not match the model (does config.json belong to this model.onnx?)`,
    );
    expect(e.message).toMatch(
      new RegExp(
        `^model folder ${dir}: model\\.onnx failed on a 16x16 input with 2 time step\\(s\\) and size multiple 16 from config\\.json; does config\\.json belong to this model\\.onnx\\? \\(`,
      ),
    );
  });

  it('fusionNoise is deterministic per seed and shape', () => {
    const a = fusionNoise(42, { k: 3, n: 1, height: 16, width: 16 });
    const b = fusionNoise(42, { k: 3, n: 1, height: 16, width: 16 });
    const c = fusionNoise(43, { k: 3, n: 1, height: 16, width: 16 });
    expect(a.length).toBe(3 * 4 * 256);
    expect(Buffer.from(a.buffer).equals(Buffer.from(b.buffer))).toBe(true);
    expect(Buffer.from(a.buffer).equals(Buffer.from(c.buffer))).toBe(false);
    let m = 0;
    let v = 0;
    for (const x of a) m += x / a.length;
    for (const x of a) v += (x - m) ** 2 / a.length;
    expect(Math.abs(m)).toBeLessThan(0.1);
    expect(Math.abs(v - 1)).toBeLessThan(0.1);
  });

  it('runFloat works on in-memory models', async () => {
    const { session } = await openSession(toyModel().model, { device: 'cpu', threads: 1 });
    const out = await runFloat(session, {
      ir: { data: new Float32Array(256), dims: [1, 1, 16, 16] },
      vis: { data: new Float32Array(768), dims: [1, 3, 16, 16] },
      noise: { data: new Float32Array(2048), dims: [2, 1, 4, 16, 16] },
    });
    expect(out.fused.dims).toEqual([1, 3, 16, 16]);
    await session.release();
  });
});

describe('the optimised-graph cache (cacheDir)', () => {
  // The shipped default model: a real graph, whose optimised form has NCHWc layouts.
  const shipped = join(__dirname, '..', '..', '..', 'models', 'default');
  const fuseOnce = async (cacheDir?: string) => {
    const model = await loadFusionModel(shipped, { device: 'cpu', threads: 1, cacheDir });
    const fused = await model.fuse({
      ir: randn([32 * 48], 3),
      vis: randn([3 * 32 * 48], 4),
      seed: 5,
      n: 1,
      height: 32,
      width: 48,
    });
    await model.release();
    return { fused, cache: model.sessionCache };
  };

  it('writes the optimised graph once, reads it after, bit-identical outputs; a damaged file is written again', async () => {
    const dir = join(root, 'ort-cache');
    const plain = await fuseOnce();
    expect(plain.cache).toBeUndefined();
    const first = await fuseOnce(dir);
    expect(first.cache).toBe('written');
    const files = readdirSync(dir).filter((f) => f.endsWith('.ort'));
    expect(files).toHaveLength(1);
    const config = JSON.parse(readFileSync(join(shipped, 'config.json'), 'utf8'));
    expect(files[0].startsWith(`${config.graph_sha256}-ort`)).toBe(true);
    const second = await fuseOnce(dir);
    expect(second.cache).toBe('read');
    expect(Buffer.from(first.fused.buffer).equals(Buffer.from(plain.fused.buffer))).toBe(true);
    expect(Buffer.from(second.fused.buffer).equals(Buffer.from(plain.fused.buffer))).toBe(true);
    writeFileSync(join(dir, files[0]), 'not a model');
    const again = await fuseOnce(dir);
    expect(again.cache).toBe('written');
    expect(Buffer.from(again.fused.buffer).equals(Buffer.from(plain.fused.buffer))).toBe(true);
    // no .part left behind; beside the graph, the record that it was checked
    expect(readdirSync(dir).sort()).toEqual(
      [...files, `${config.graph_sha256}.checked.json`].sort(),
    );
  }, 120_000);

  it.runIf(process.platform === 'linux')(
    'a cache folder that cannot be made (under /proc) is passed over at once, not waited on',
    () => {
      // In a child with a time limit: Node's recursive mkdirSync never returns there, and a
      // hang in this process could not be timed out.
      const dist = join(__dirname, '..', 'dist', 'index.js');
      const code = `const { loadFusionModel } = await import(${JSON.stringify(dist)});
        const m = await loadFusionModel(${JSON.stringify(shipped)}, { device: 'cpu', threads: 1, cacheDir: '/proc/dif-no/cache' });
        console.log(String(m.sessionCache)); await m.release();`;
      const r = spawnSync(process.execPath, ['--input-type=module', '-e', code], {
        encoding: 'utf8',
        timeout: 60_000,
      });
      expect(r.status, r.stderr).toBe(0);
      expect(r.stdout.trim()).toBe('undefined');
    },
    90_000,
  );

  it('a graph checked once is not decoded and scanned again; a config.json edited since is', async () => {
    const cache = join(root, 'checked-cache');
    const load = (dir: string) =>
      loadFusionModel(dir, { device: 'cpu', threads: 1, cacheDir: cache }).then(
        async (m) => {
          await m.release();
          return 'loaded';
        },
        (e: Error) => e.message,
      );
    // a healthy graph: checked, opened, recorded with the time steps it was checked against
    const ok = join(root, 'checked-ok');
    const bound = writeModelFolder(ok, toyModel({ metadata: { time_steps: '[5,50]' } }), config());
    expect(await load(ok)).toBe('loaded');
    const record = join(cache, `${bound.graph_sha256}.checked.json`);
    expect(JSON.parse(readFileSync(record, 'utf8')).time_steps).toEqual([5, 50]);
    expect(await load(ok)).toBe('loaded');
    // config.json edited to other time steps: the record does not cover it, the check runs
    writeFileSync(
      join(ok, 'config.json'),
      JSON.stringify({
        ...bound,
        time_steps: [5],
        head: { ...(bound.head as object), time_steps: [5] },
        noise_levels: [0.99],
      }),
    );
    expect(await load(ok)).toMatch(
      /config\.json has time_steps \[5\] but model\.onnx was exported with \[5,50\]/,
    );
    // a NaN graph is refused and leaves no record
    const nan = join(root, 'checked-nan');
    const bad = writeModelFolder(nan, toyModel({ poison: Number.NaN }), config());
    expect(await load(nan)).toMatch(/holds 1 NaN\/Inf value/);
    expect(existsSync(join(cache, `${bad.graph_sha256}.checked.json`))).toBe(false);
    // the record is what is trusted: planted for the NaN graph, its weights are not scanned
    writeFileSync(join(cache, `${bad.graph_sha256}.checked.json`), '{"time_steps":[5,50]}');
    expect(await load(nan)).toBe('loaded');
  });

  it('a model file unchanged since it was hashed (size, inode, mtime, ctime) is not read again; a changed one is', async () => {
    const cache = join(root, 'stamp-cache');
    const load = (dir: string) =>
      loadFusionModel(dir, { device: 'cpu', threads: 1, cacheDir: cache }).then(
        async (m) => {
          await m.release();
          return 'loaded';
        },
        (e: Error) => e.message,
      );
    const dir = join(root, 'stamp-ok');
    const bound = writeModelFolder(dir, toyModel({ metadata: { time_steps: '[5,50]' } }), config());
    const model = join(dir, 'model.onnx');
    expect(await load(dir)).toBe('loaded');
    const record = join(cache, `${bound.graph_sha256}.checked.json`);
    // the record lists the files hashed to this graph's SHA-256 with their stamps
    const files = JSON.parse(readFileSync(record, 'utf8')).files;
    expect(files[model]).toBe(fileStamp(model));
    expect(files[`${model}.data`]).toBe('none');
    // another graph written over model.onnx (a new ctime): hashed, and refused
    const other = join(root, 'stamp-other');
    writeModelFolder(other, toyModel({ poison: 2, metadata: { time_steps: '[5,50]' } }), config());
    copyFileSync(join(other, 'model.onnx'), model);
    expect(await load(dir)).toMatch(/config\.json belongs to another model\.onnx/);
    // the stamp is what is trusted: recorded for the file as it is now, it is not hashed
    writeFileSync(
      record,
      JSON.stringify({
        time_steps: [5, 50],
        files: { [model]: fileStamp(model), [`${model}.data`]: 'none' },
      }),
    );
    expect(await load(dir)).toBe('loaded');
  });
});
