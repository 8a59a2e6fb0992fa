import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { evaluateFusion, METRIC_NAMES } from '@dif-fusion/metrics';
import { Command } from 'commander';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { registerEvalCommand, runEval } from './index';

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
    expect(err.find((l) => l.startsWith('bad/b:'))).toMatch(
      /size mismatch: fused 50x40, sources 48x40/,
    );
    expect(err.find((l) => l.startsWith('bad/c:'))).toMatch(/cannot read/);
    for (const l of err) expect(l).not.toContain('\n');

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
    expect(err).toHaveLength(2);
    expect(err[0]).toMatch(/^partial\/a: missing fused image/);
  });

  it('fails with one line when nothing can be evaluated or a folder is missing', async () => {
    await expect(
      runEval({ pairs: join(dir, 'nope'), fused: [join(dir, 'good')], progress: false }),
    ).rejects.toThrow(/--pairs .*no such folder/);
    mkdirSync(join(dir, 'empty'));
    await expect(
      runEval({
        pairs: join(dir, 'pairs'),
        fused: [join(dir, 'empty')],
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
    await program.parseAsync(
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
      {
        from: 'user',
      },
    );
    expect(Object.keys(JSON.parse(readFileSync(join(dir, 'cli.json'), 'utf8')))).toEqual([
      'good',
      'bad',
    ]);
    const help = program.commands.find((c) => c.name() === 'eval')!.helpInformation();
    for (const flag of ['--pairs', '--fused', '--csv', '--json', '--chart'])
      expect(help).toContain(flag);
  });
});
