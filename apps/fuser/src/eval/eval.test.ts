import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { evaluateFusion, METRIC_NAMES } from '@dif-fusion/metrics';
import { Command } from 'commander';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  comparableMethods,
  formatTable,
  registerEvalCommand,
  runEval,
  summarize,
  toCsv,
} from './index';
import { formatStd } from './report';

const W = 48;
const H = 40;

function pattern(channels: 1 | 3, seed: number, w = W, h = H): Buffer {
  const buf = Buffer.alloc(w * h * channels);
  for (let y = 0; y < h; y++)
    for (let x = 0; x < w; x++)
      for (let c = 0; c < channels; c++)
        buf[(y * w + x) * channels + c] =
          (x * (3 + seed) + y * (5 + c) + ((x * y * seed) % 17)) & 255;
  return buf;
}

async function png(path: string, channels: 1 | 3, seed: number, w = W, h = H): Promise<void> {
  await sharp(pattern(channels, seed, w, h), { raw: { width: w, height: h, channels } })
    .png()
    .toFile(path);
}

describe('dif-fuse eval end to end (runEval)', () => {
  let dir: string;
  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'dif-eval-'));
    for (const d of ['pairs/ir', 'pairs/vi', 'good', 'bad'])
      mkdirSync(join(dir, d), { recursive: true });
    for (const [i, stem] of ['a', 'b', 'c'].entries()) {
      await png(join(dir, 'pairs/ir', `${stem}.png`), 1, i + 1);
      await png(join(dir, 'pairs/vi', `${stem}.png`), 3, i + 7);
      await png(join(dir, 'good', `${stem}.png`), 3, i + 13);
    }
    await png(join(dir, 'bad', 'a.png'), 1, 3); // fine
    await png(join(dir, 'bad', 'b.png'), 3, 4, W + 2, H); // size mismatch
    writeFileSync(join(dir, 'bad', 'c.png'), 'not a png'); // unreadable
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('writes CSV, JSON and chart, and reports each problem on one line', async () => {
    const out: string[] = [];
    const err: string[] = [];
    const res = await runEval({
      pairs: join(dir, 'pairs'),
      fused: [join(dir, 'good'), join(dir, 'bad'), join(dir, 'good')],
      csv: join(dir, 'o/metrics.csv'),
      json: join(dir, 'o/summary.json'),
      chart: join(dir, 'o/chart.png'),
      out: (s) => out.push(s),
      err: (s) => err.push(s),
      progress: false,
    });
    // good: 3 images, bad: only a.png, good-2 (same folder again): 3 images
    expect(res.rows.length).toBe(7);
    expect(err).toHaveLength(2);
    expect(err).toContain(
      `error: ${join(dir, 'bad', 'b.png')}: size mismatch: fused 50x40, sources 48x40`,
    );
    expect(err.find((l) => l.startsWith(`error: ${join(dir, 'bad', 'c.png')}: `))).toMatch(
      /not an image|unsupported|unrecognised/,
    );
    for (const l of err) expect(l).not.toContain('\n');
    expect(res.problems.map((p) => `${p.method}/${p.image}`).sort()).toEqual(['bad/b', 'bad/c']);

    const csv = readFileSync(join(dir, 'o/metrics.csv'), 'utf8').trim().split('\n');
    expect(csv[0]).toBe(['image', 'method', ...METRIC_NAMES].join(','));
    expect(csv).toHaveLength(8);
    const rowA = csv.find((l) => l.startsWith('a,good,'))!.split(',');
    // The CSV values are the metrics package's values for the same files.
    const read = async (p: string) => {
      const { data, info } = await sharp(p).raw().toBuffer({ resolveWithObject: true });
      return {
        data: new Uint8Array(data),
        width: info.width,
        height: info.height,
        channels: info.channels,
      };
    };
    const want = evaluateFusion(
      await read(join(dir, 'pairs/ir/a.png')),
      await read(join(dir, 'pairs/vi/a.png')),
      await read(join(dir, 'good/a.png')),
    );
    for (const [i, m] of METRIC_NAMES.entries()) {
      expect(Number(rowA[i + 2]), m).toBeCloseTo(want[m], 10);
    }

    const json = JSON.parse(readFileSync(join(dir, 'o/summary.json'), 'utf8'));
    expect(Object.keys(json)).toEqual(['good', 'bad', 'good-2']);
    for (const method of Object.keys(json)) {
      expect(Object.keys(json[method])).toEqual([...METRIC_NAMES]);
      for (const m of METRIC_NAMES) expect(Object.keys(json[method][m])).toEqual(['mean', 'std']);
    }
    // 'bad' has one image: its mean is that image's value and its std 0.
    expect(json.bad.EN.std).toBe(0);
    const goodEn = res.rows.filter((r) => r.method === 'good').map((r) => r.values.EN);
    expect(json.good.EN.mean).toBeCloseTo(goodEn.reduce((a, b) => a + b) / 3, 12);
    expect(json['good-2']).toEqual(json.good);

    const meta = await sharp(join(dir, 'o/chart.png')).metadata();
    expect(meta.format).toBe('png');
    expect(meta.width).toBeGreaterThan(500);

    const table = out.join('\n');
    expect(table).toContain('good');
    expect(table).toMatch(/±/);
    expect(table).toContain('* best per column');
    expect(out.some((l) => l.includes('wrote') && l.includes('summary.json'))).toBe(true);
  });

  it('reports a missing fused image and evaluates the rest', async () => {
    mkdirSync(join(dir, 'partial'));
    await png(join(dir, 'partial', 'b.webp'), 3, 5).catch(async () =>
      png(join(dir, 'partial', 'b.png'), 3, 5),
    );
    const err: string[] = [];
    const res = await runEval({
      pairs: join(dir, 'pairs'),
      fused: [join(dir, 'partial')],
      out: () => {},
      err: (s) => err.push(s),
      progress: false,
    });
    expect(res.rows.map((r) => r.image)).toEqual(['b']);
    expect(err).toEqual([
      `error: ${join(dir, 'partial', 'a.*')}: missing fused image`,
      `error: ${join(dir, 'partial', 'c.*')}: missing fused image`,
    ]);
  });

  it('fails with one line when nothing can be evaluated or a folder is missing', async () => {
    await expect(
      runEval({ pairs: join(dir, 'nope'), fused: [join(dir, 'good')], progress: false }),
    ).rejects.toThrow(/nope: --pairs: no such folder/);
    mkdirSync(join(dir, 'empty'));
    writeFileSync(join(dir, 'empty', 'notes.txt'), 'not an image');
    await expect(
      runEval({
        pairs: join(dir, 'pairs'),
        fused: [join(dir, 'good'), join(dir, 'empty')],
        out: () => {},
        err: () => {},
        progress: false,
      }),
    ).rejects.toThrow(
      `${join(dir, 'empty')}: --fused folder holds no images (.png, .jpg, .tif, .webp or .bmp); fuse into it first with dif-fuse --pairs ... -o ${join(dir, 'empty')}`,
    );
    mkdirSync(join(dir, 'junk'));
    writeFileSync(join(dir, 'junk', 'a.png'), 'not a png');
    await expect(
      runEval({
        pairs: join(dir, 'pairs'),
        fused: [join(dir, 'junk')],
        out: () => {},
        err: () => {},
        progress: false,
      }),
    ).rejects.toThrow(/no fused image could be evaluated/);
  });

  it('registers as a commander subcommand with repeatable --fused', async () => {
    const program = new Command('dif-fuse').exitOverride();
    const out: string[] = [];
    registerEvalCommand(program, {
      out: (s) => out.push(s),
      err: () => {},
      progressStream: undefined,
    });
    // 'bad' has two broken images: the JSON is still written, then the command fails.
    await expect(
      program.parseAsync(
        [
          'eval',
          '--pairs',
          join(dir, 'pairs'),
          '--fused',
          join(dir, 'good'),
          '--fused',
          join(dir, 'bad'),
          '--json',
          join(dir, 'cli.json'),
        ],
        { from: 'user' },
      ),
    ).rejects.toThrow(/^2 problem\(s\) reported above; the results cover the 4 fused image\(s\)/);
    expect(Object.keys(JSON.parse(readFileSync(join(dir, 'cli.json'), 'utf8')))).toEqual([
      'good',
      'bad',
    ]);
    const help = program.commands.find((c) => c.name() === 'eval')!.helpInformation();
    for (const flag of ['--pairs', '--fused', '--csv', '--json', '--chart'])
      expect(help).toContain(flag);
  });

  it('runs as `dif-fuse eval` through the main program: one-line errors, exit status', async () => {
    const { main } = await import('../program');
    const out: string[] = [];
    const err: string[] = [];
    const io = { out: (s: string) => out.push(s), err: (s: string) => err.push(s) };
    const ok = await main(
      [
        'eval',
        '--pairs',
        join(dir, 'pairs'),
        '--fused',
        join(dir, 'good'),
        '--csv',
        join(dir, 'm.csv'),
      ],
      io,
    );
    expect(ok).toBe(0);
    expect(err).toEqual([]);
    expect(readFileSync(join(dir, 'm.csv'), 'utf8').trim().split('\n')).toHaveLength(4);
    err.length = 0;
    const bad = await main(
      ['eval', '--pairs', join(dir, 'pairs'), '--fused', join(dir, 'bad')],
      io,
    );
    expect(bad).toBe(1);
    expect(err).toHaveLength(3);
    expect(err[0]).toMatch(new RegExp(`^error: ${join(dir, 'bad')}/b\\.png: size mismatch`));
    expect(err[1]).toMatch(new RegExp(`^error: ${join(dir, 'bad')}/c\\.png: `));
    expect(err[2]).toBe(
      'error: 2 problem(s) reported above; the results cover the 1 fused image(s) that could be evaluated',
    );
    err.length = 0;
    expect(
      await main(['eval', '--pairs', join(dir, 'nope'), '--fused', join(dir, 'good')], io),
    ).toBe(1);
    expect(err).toEqual([`error: ${join(dir, 'nope')}: --pairs: no such folder`]);
  });
});

describe('eval report', () => {
  const values = (v: number) =>
    Object.fromEntries(METRIC_NAMES.map((m) => [m, v])) as Record<
      (typeof METRIC_NAMES)[number],
      number
    >;
  const rows = [
    { image: 'x', method: 'a', values: values(1) },
    { image: 'y', method: 'a', values: values(3) },
    { image: 'x', method: 'b,"q"', values: values(4) },
  ];

  it('mean and population std per method and metric', () => {
    const s = summarize(rows, ['a', 'b,"q"', 'none']);
    expect(Object.keys(s)).toEqual(['a', 'b,"q"']);
    expect(s.a.EN).toEqual({ mean: 2, std: 1 });
    expect(s['b,"q"'].MSE).toEqual({ mean: 4, std: 0 });
  });

  it('marks the best mean per column; lower is better for MSE, Nabf and DeltaE', () => {
    const same = [...rows, { image: 'y', method: 'b,"q"', values: values(4) }];
    const methods = ['a', 'b,"q"'];
    const table = formatTable(
      summarize(same, methods),
      false,
      comparableMethods(same, methods),
    ).split('\n');
    const header = table[0].split(/\s{2,}/);
    const a = table[2].split(/\s{2,}/);
    const b = table[3].split(/\s{2,}/);
    expect(header).toHaveLength(METRIC_NAMES.length + 1);
    for (const [i, h] of header.entries()) {
      if (i === 0) continue;
      const lower = /^(MSE|Nabf|DeltaE)↓$/.test(h);
      expect(h.endsWith(lower ? '↓' : '↑'), h).toBe(true);
      expect(a[i].trim(), h).toBe(lower ? '2.000±1*' : '2.000±1');
      expect(b[i].trim(), h).toBe(lower ? '4.000±0' : '4.000±0*');
    }
    expect(table.at(-1)).toBe('* best per column (↑ higher is better, ↓ lower is better)');
    expect(formatStd(0.0809)).toBe('0.081');
    expect(formatStd(1.94e-7)).toBe('1.9e-7');
  });

  it('marks a best value only among methods evaluated on the same images', () => {
    // a: x and y; b: x only (its y is missing), so b's mean is over other images
    const methods = ['a', 'b,"q"'];
    expect([...comparableMethods(rows, methods)]).toEqual(['a']);
    const two = formatTable(summarize(rows, methods), false, comparableMethods(rows, methods));
    expect(two).not.toContain('*');
    expect(two.split('\n').at(-1)).toMatch(
      /^no best marked: the methods were evaluated on different images/,
    );
    // c matches a's images: a and c are ranked, b is not
    const withC = [
      ...rows,
      { image: 'x', method: 'c', values: values(0) },
      { image: 'y', method: 'c', values: values(0) },
    ];
    const three = ['a', 'b,"q"', 'c'];
    const lines = formatTable(
      summarize(withC, three),
      false,
      comparableMethods(withC, three),
    ).split('\n');
    const cell = (row: number, col: number) => lines[row].split(/\s{2,}/)[col].trim();
    expect(cell(2, 1)).toBe('2.000±1*'); // a: EN higher is better, 2 > 0
    expect(cell(3, 1)).toBe('4.000±0'); // b has the highest EN, but is not ranked
    expect(cell(4, 13)).toBe('0.0000±0*'); // c: MSE lower is better
    expect(lines.at(-1)).toBe(
      '* best per column (↑ higher is better, ↓ lower is better); not ranked, evaluated on other images: b,"q"',
    );
  });

  it('CSV: header, one row per image and method, quoted names', () => {
    const csv = toCsv(rows).split('\n');
    expect(csv[0]).toBe(['image', 'method', ...METRIC_NAMES].join(','));
    expect(csv[3]).toBe(['x', '"b,""q"""', ...METRIC_NAMES.map(() => '4')].join(','));
  });
});
