/**
 * End-to-end tests of the BUILT `dif-fuse` binary (node dist/cli.js): every error case is one
 * line on stderr with a non-zero exit and no stack trace; the baselines produce the
 * hand-checkable results; batch mode, formats, odd sizes, tiling and determinism.
 */
import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { main } from '../src/program';
import { dif, expectOneLineError, readRgb, tmp, writeTestImage } from './helpers';

let dir: string;
let ir: string;
let vis: string;
let irPx: Uint8Array;
let visPx: Uint8Array;
const W = 45;
const H = 30;

beforeAll(async () => {
  dir = tmp();
  ir = join(dir, 'ir.png');
  vis = join(dir, 'vi.png');
  irPx = (await writeTestImage(ir, W, H, 1, 1)) as Uint8Array;
  visPx = (await writeTestImage(vis, W, H, 3, 2)) as Uint8Array;
});

describe('dif-fuse baselines end to end', () => {
  it('average and max give the hand-computed pixels', async () => {
    for (const method of ['average', 'max'] as const) {
      const out = join(dir, `${method}.png`);
      const r = dif(['--ir', ir, '--vis', vis, '-o', out, '--method', method]);
      expect(r.code, r.stderr).toBe(0);
      expect(r.stdout).toMatch(/fused 1 image in [\d.]+ s \([\d.]+ MP\/s\)/);
      const img = await readRgb(out);
      expect([img.width, img.height, img.channels]).toEqual([W, H, 3]);
      for (let i = 0; i < W * H; i++)
        for (let c = 0; c < 3; c++) {
          const a = visPx[i * 3 + c];
          const b = irPx[i];
          const got = img.data[i * 3 + c];
          if (method === 'max') expect(got).toBe(Math.max(a, b));
          // (a + b) / 2 exactly, or one of its two neighbours when a + b is odd (a tie)
          else expect(Math.abs(got - (a + b) / 2)).toBeLessThanOrEqual(0.5);
        }
    }
  });

  it('ycbcr-max keeps a gray visible image gray and takes the brighter of Y and IR', async () => {
    const gvis = join(dir, 'gray-vis.png');
    const g = (await writeTestImage(gvis, W, H, 1, 3)) as Uint8Array;
    const out = join(dir, 'ycbcr-max.png');
    const r = dif(['--ir', ir, '--vis', gvis, '-o', out, '--method', 'ycbcr-max']);
    expect(r.code, r.stderr).toBe(0);
    const img = await readRgb(out);
    for (let i = 0; i < W * H; i++) {
      const want = Math.max(g[i], irPx[i]);
      for (let c = 0; c < 3; c++)
        expect(Math.abs(img.data[i * 3 + c] - want)).toBeLessThanOrEqual(1);
    }
  });

  it('fuses a folder of pairs with a summary, writing OUTDIR/<stem>.<ext>', async () => {
    const pairs = join(dir, 'pairs');
    mkdirSync(join(pairs, 'ir'), { recursive: true });
    mkdirSync(join(pairs, 'vi'), { recursive: true });
    for (const [k, name] of ['a', 'b', 'c'].entries()) {
      await writeTestImage(join(pairs, 'ir', `${name}.png`), 40 + k, 24, 1, 10 + k);
      await writeTestImage(
        join(pairs, 'vi', `${name}.${k === 1 ? 'jpg' : 'png'}`),
        40 + k,
        24,
        3,
        20 + k,
      );
    }
    const out = join(dir, 'batch');
    const r = dif(['--pairs', pairs, '-o', out, '--method', 'ycbcr-average', '--ext', 'jpg']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/fused 3 images in [\d.]+ s \([\d.]+ MP\/s\)/);
    for (const [k, name] of ['a', 'b', 'c'].entries()) {
      const img = await readRgb(join(out, `${name}.jpg`));
      expect([img.width, img.height]).toEqual([40 + k, 24]);
    }
    // default extension is png
    const r2 = dif(['--pairs', pairs, '-o', join(dir, 'batch-png'), '--method', 'max', '-q']);
    expect(r2.code, r2.stderr).toBe(0);
    expect(r2.stdout).toBe('');
    expect(existsSync(join(dir, 'batch-png', 'b.png'))).toBe(true);
  });

  it('accepts a gray visible image, a 16-bit IR and odd sizes, in every output format', async () => {
    const ir16 = join(dir, 'ir16.png');
    await writeTestImage(ir16, 37, 23, 1, 5, 16);
    const gvis = join(dir, 'gv.tif');
    await writeTestImage(gvis, 37, 23, 1, 6);
    for (const ext of ['png', 'jpg', 'tif', 'webp']) {
      const out = join(dir, `odd.${ext}`);
      const r = dif(['--ir', ir16, '--vis', gvis, '-o', out, '--method', 'average']);
      expect(r.code, r.stderr).toBe(0);
      const img = await readRgb(out);
      expect([img.width, img.height]).toEqual([37, 23]);
    }
    // the 16-bit IR is stretched to the full range: max(vis, ir) reaches 255 somewhere
    const r = dif(['--ir', ir16, '--vis', gvis, '-o', join(dir, 'odd-max.png'), '--method', 'max']);
    expect(r.code, r.stderr).toBe(0);
    const img = await readRgb(join(dir, 'odd-max.png'));
    expect(Math.max(...img.data)).toBe(255);
  });

  it('tiling gives byte-identical output for a pointwise method, and repeated runs are identical', () => {
    const a = join(dir, 't-off.png');
    const b = join(dir, 't-64.png');
    const c = join(dir, 't-64-again.png');
    const big = ['--ir', ir, '--vis', vis, '--method', 'ycbcr-average'];
    expect(dif([...big, '-o', a, '--tile', 'off']).code).toBe(0);
    expect(dif([...big, '-o', b, '--tile', '32', '--overlap', '8']).code).toBe(0);
    expect(dif([...big, '-o', c, '--tile', '32', '--overlap', '8']).code).toBe(0);
    expect(readFileSync(b).equals(readFileSync(a))).toBe(true);
    expect(readFileSync(c).equals(readFileSync(b))).toBe(true);
  });

  it('writes a side-by-side image: fused | visible | infrared, under a label strip', async () => {
    const out = join(dir, 'sbs-fused.png');
    const sbs = join(dir, 'sub', 'side.png');
    const r = dif(['--ir', ir, '--vis', vis, '-o', out, '--side-by-side', sbs, '--method', 'max']);
    expect(r.code, r.stderr).toBe(0);
    const s = await readRgb(sbs);
    const f = await readRgb(out);
    // 45 x 30 panels: the short labels (fused | vis | ir) at 1x, a 10-pixel strip
    const top = 10;
    expect([s.width, s.height]).toEqual([3 * W, H + top]);
    const px = (x: number, y: number) =>
      Array.from(s.data.subarray((y * 3 * W + x) * 3, (y * 3 * W + x) * 3 + 3));
    expect(px(5, top + 7)).toEqual(
      Array.from(f.data.subarray((7 * W + 5) * 3, (7 * W + 5) * 3 + 3)),
    );
    expect(px(W + 5, top + 7)).toEqual(
      Array.from(visPx.subarray((7 * W + 5) * 3, (7 * W + 5) * 3 + 3)),
    );
    const t = irPx[7 * W + 5];
    expect(px(2 * W + 5, top + 7)).toEqual([t, t, t]);
    // the strip: black with white text on rows 2..8 of each panel, nothing else
    for (let p = 0; p < 3; p++) {
      const rows = new Set<number>();
      for (let y = 0; y < top; y++)
        for (let x = p * W; x < (p + 1) * W; x++) {
          const v = px(x, y);
          expect(v[0] === 0 || v[0] === 255, `${x},${y}`).toBe(true);
          if (v[0] === 255) rows.add(y);
        }
      expect([...rows].sort((a, b) => a - b)).toEqual([2, 3, 4, 5, 6, 7, 8]);
    }
  });

  it('prints help and exits 0', () => {
    const r = dif(['--help']);
    expect(r.code).toBe(0);
    for (const flag of [
      '--ir',
      '--vis',
      '--pairs',
      '--ext',
      '--method',
      '--model',
      '--seed',
      '--device',
      '--threads',
      '--tile',
      '--overlap',
      '--side-by-side',
    ])
      expect(r.stdout).toContain(flag);
  });
});

describe('dif-fuse errors: one line, non-zero exit, no stack trace', () => {
  const base = () => ['--method', 'average'];

  it('missing input file', () => {
    expectOneLineError(
      dif(['--ir', join(dir, 'nope.png'), '--vis', vis, '-o', join(dir, 'x.png'), ...base()]),
      /nope\.png: no such file/,
      expect,
    );
  });

  it('corrupt and truncated images', () => {
    const junk = join(dir, 'junk.png');
    writeFileSync(junk, 'this is not an image');
    expectOneLineError(
      dif(['--ir', junk, '--vis', vis, '-o', join(dir, 'x.png'), ...base()]),
      /junk\.png: .*(unsupported|unrecognised)/,
      expect,
    );
    const trunc = join(dir, 'trunc.png');
    writeFileSync(trunc, readFileSync(vis).subarray(0, 200));
    expectOneLineError(
      dif(['--ir', ir, '--vis', trunc, '-o', join(dir, 'x.png'), ...base()]),
      /trunc\.png: .*(corrupt|truncated)/,
      expect,
    );
    const empty = join(dir, 'empty.jpg');
    writeFileSync(empty, '');
    expectOneLineError(
      dif(['--ir', empty, '--vis', vis, '-o', join(dir, 'x.png'), ...base()]),
      /empty\.jpg/,
      expect,
    );
  });

  it('size mismatch names both files and sizes', async () => {
    const small = join(dir, 'small.png');
    await writeTestImage(small, 20, 10, 3, 4);
    expectOneLineError(
      dif(['--ir', ir, '--vis', small, '-o', join(dir, 'x.png'), ...base()]),
      /size mismatch: .*ir\.png is 45x30 but .*small\.png is 20x10/,
      expect,
    );
  });

  it('unsupported output format, and unsupported --ext', () => {
    expectOneLineError(
      dif(['--ir', ir, '--vis', vis, '-o', join(dir, 'x.gifx'), ...base()]),
      /unsupported image format/,
      expect,
    );
    expectOneLineError(
      dif(['--ir', ir, '--vis', vis, '-o', join(dir, 'noext'), ...base()]),
      /unsupported image format/,
      expect,
    );
    expectOneLineError(
      dif(['--pairs', dir, '-o', join(dir, 'o'), '--ext', 'xyz', ...base()]),
      /unsupported --ext xyz/,
      expect,
    );
  });

  it('output folder not writable', () => {
    const file = join(dir, 'a-file');
    writeFileSync(file, 'x');
    expectOneLineError(
      dif(['--ir', ir, '--vis', vis, '-o', join(file, 'out.png'), ...base()]),
      /not (a folder|writable)/,
      expect,
    );
    expectOneLineError(dif(['--pairs', dir, '-o', file, ...base()]), /not a folder/, expect);
  });

  it.skipIf(process.getuid?.() === 0)('output folder without write permission', () => {
    const ro = join(dir, 'readonly');
    mkdirSync(ro, { recursive: true });
    chmodSync(ro, 0o500);
    expectOneLineError(
      dif(['--ir', ir, '--vis', vis, '-o', join(ro, 'out.png'), ...base()]),
      /not writable/,
      expect,
    );
  });

  it('never overwrites an input', () => {
    expectOneLineError(
      dif(['--ir', ir, '--vis', vis, '-o', vis, ...base()]),
      /refusing to overwrite an input/,
      expect,
    );
    expectOneLineError(
      dif(['--ir', ir, '--vis', vis, '-o', join(dir, 'ok.png'), '--side-by-side', ir, ...base()]),
      /refusing to overwrite an input/,
      expect,
    );
  });

  it('model folder invalid', () => {
    const empty = tmp('dif-fuse-model-');
    expectOneLineError(
      dif(['--ir', ir, '--vis', vis, '-o', join(dir, 'm.png'), '--model', empty]),
      /model folder .* invalid: model\.onnx is missing/,
      expect,
    );
    expectOneLineError(
      dif(['--ir', ir, '--vis', vis, '-o', join(dir, 'm.png'), '--model', join(dir, 'none')]),
      /model folder .* does not exist/,
      expect,
    );
    const broken = tmp('dif-fuse-model-');
    writeFileSync(join(broken, 'model.onnx'), 'not onnx');
    writeFileSync(join(broken, 'config.json'), '{ nope');
    expectOneLineError(
      dif(['--ir', ir, '--vis', vis, '-o', join(dir, 'm.png'), '--model', broken]),
      /model folder .* invalid/,
      expect,
    );
  });

  it('conflicting and missing flags', async () => {
    const o = join(dir, 'c.png');
    const cases: [string[], RegExp][] = [
      [['--ir', ir, '--vis', vis, '--pairs', dir, '-o', o], /--pairs cannot be combined/],
      [['--ir', ir, '-o', o], /--vis is missing/],
      [['--vis', vis, '-o', o], /--ir is missing/],
      [['--ir', ir, '--vis', vis], /-o FILE is required/],
      [[], /give --ir and --vis/],
      [['--ir', ir, '--vis', vis, '-o', o, '--ext', 'jpg'], /--ext applies to --pairs only/],
      [
        ['--pairs', dir, '-o', join(dir, 'o'), '--side-by-side', o],
        /--side-by-side applies to a single pair/,
      ],
      [
        ['--ir', ir, '--vis', vis, '-o', o, '--method', 'max', '--model', dir],
        /--model applies to --method model only/,
      ],
      [
        ['--ir', ir, '--vis', vis, '-o', o, '--tile', 'off', '--overlap', '8'],
        /--overlap needs tiling/,
      ],
      [
        ['--ir', ir, '--vis', vis, '-o', o, '--tile', '64', '--overlap', '32'],
        /less than half the tile/,
      ],
      [['--ir', ir, '--vis', vis, '-o', o, '--tile', '100'], /--tile must be a multiple of 16/],
      [['--ir', ir, '--vis', vis, '-o', o, '--seed', 'abc'], /--seed must be an integer/],
      [['--ir', ir, '--vis', vis, '-o', o, '--threads', '0'], /--threads must be at least 1/],
      [
        ['--ir', ir, '--vis', vis, '-o', o, '--method', 'median'],
        /Allowed choices are model, average/,
      ],
      [
        ['--ir', ir, '--vis', vis, '-o', o, '--device', 'gpu'],
        /Allowed choices are auto, cuda, cpu/,
      ],
      [['--ir', ir, '--vis', vis, '-o', o, '--bogus'], /unknown option '--bogus'/],
    ];
    // Argument errors are found before any work, so they run in-process (the same main() the
    // binary runs; the first case also goes through the binary).
    const first = dif(cases[0][0]);
    expectOneLineError(first, cases[0][1], expect);
    expect(first.code).toBe(2);
    for (const [args, re] of cases) {
      const out: string[] = [];
      const err: string[] = [];
      const code = await main(args, { out: (l) => out.push(l), err: (l) => err.push(l) });
      expectOneLineError({ code, stdout: out.join('\n'), stderr: err.join('\n') }, re, expect);
      expect(code, args.join(' ')).toBe(2);
    }
  });

  it('a folder without pairs', () => {
    const d = tmp();
    expectOneLineError(dif(['--pairs', d, '-o', join(d, 'o'), ...base()]), /ir\/ and vi\//, expect);
    mkdirSync(join(d, 'ir'));
    mkdirSync(join(d, 'vi'));
    expectOneLineError(
      dif(['--pairs', d, '-o', join(d, 'o'), ...base()]),
      /no infrared\/visible pairs/,
      expect,
    );
  });

  it('in a batch, a bad pair is reported on its own line and the rest is still fused', async () => {
    const d = tmp();
    mkdirSync(join(d, 'ir'));
    mkdirSync(join(d, 'vi'));
    await writeTestImage(join(d, 'ir', 'good.png'), 20, 20, 1, 1);
    await writeTestImage(join(d, 'vi', 'good.png'), 20, 20, 3, 2);
    writeFileSync(join(d, 'ir', 'bad.png'), 'garbage');
    await writeTestImage(join(d, 'vi', 'bad.png'), 20, 20, 3, 2);
    const r = dif(['--pairs', d, '-o', join(d, 'out'), '-q', ...base()]);
    expect(r.code).toBe(1);
    expect(existsSync(join(d, 'out', 'good.png'))).toBe(true);
    const lines = r.stderr.trim().split('\n');
    expect(lines).toHaveLength(2);
    expect(lines[0]).toMatch(/^error: bad: .*bad\.png/);
    expect(lines[1]).toMatch(/^error: 1 of 2 pairs failed/);
  });
});

describe('dif-fuse --version', () => {
  it('prints the package version and exits 0', () => {
    const { version } = JSON.parse(readFileSync(join(__dirname, '..', 'package.json'), 'utf8'));
    const r = dif(['--version']);
    expect(r.code).toBe(0);
    expect(r.stdout.trim()).toBe(version);
  });
});
