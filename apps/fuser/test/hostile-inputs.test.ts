/**
 * Hostile and damaged inputs through the built `dif-fuse`: decompression bombs are refused from
 * their headers (sizes compared, pixel limit checked) before anything is decoded; corrupt data
 * is a one-line error, or a warning with --allow-corrupt.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import sharp from 'sharp';
import { beforeAll, describe, expect, it } from 'vitest';
import { CLI, dif, expectOneLineError, readRgb, tmp, writeTestImage } from './helpers';

let dir: string;
let ir: string;
let vis: string;
let bomb: string;
let corrupt: string;

/** Offset of the JPEG segment with marker `m`. */
function segment(jpg: Buffer, m: number): number {
  for (let i = 2; i < jpg.length; ) {
    if (jpg[i + 1] === m) return i;
    i += 2 + jpg.readUInt16BE(i + 2);
  }
  throw new Error(`no marker ${m.toString(16)}`);
}

beforeAll(async () => {
  dir = tmp('dif-fuse-hostile-');
  ir = join(dir, 'ir.png');
  vis = join(dir, 'vi.jpg');
  await writeTestImage(ir, 96, 64, 1, 1);
  await writeTestImage(vis, 96, 64, 3, 2);
  const jpg = readFileSync(vis);
  // A 65000x65000 claim in front of 96x64 pixels of data: 12 GB if decoded.
  const b = Buffer.from(jpg);
  const sof = segment(b, 0xc0);
  b.writeUInt16BE(65000, sof + 5);
  b.writeUInt16BE(65000, sof + 7);
  bomb = join(dir, 'bomb.jpg');
  writeFileSync(bomb, b);
  // Scan data overwritten by bytes holding a stray marker.
  const c = Buffer.from(jpg);
  const sos = segment(c, 0xda);
  const scan = sos + 2 + c.readUInt16BE(sos + 2);
  for (let k = 0; k < 300; k++) c[scan + 50 + k] = (k * 73 + 5) & 0xfe;
  c[scan + 200] = 0xff;
  c[scan + 201] = 0x17;
  corrupt = join(dir, 'corrupt.jpg');
  writeFileSync(corrupt, c);
});

describe('decompression bombs', () => {
  it('a JPEG claiming 65000x65000 is refused from its header, with the flag that lifts the limit', () => {
    const bomb2 = join(dir, 'bomb2.jpg');
    writeFileSync(bomb2, readFileSync(bomb));
    const r = dif(['--ir', bomb2, '--vis', bomb, '-o', join(dir, 'x.png'), '--method', 'max']);
    expectOneLineError(
      r,
      /bomb2\.jpg: image is 65000x65000 \(4225 MP\), above the limit of 50 MP; not decoded \(--max-pixels 4225 reads it/,
      expect,
    );
  });

  it('pair sizes are compared from the headers, before decoding either image', () => {
    const r = dif(['--ir', ir, '--vis', bomb, '-o', join(dir, 'x.png'), '--method', 'max']);
    expectOneLineError(
      r,
      /bomb\.jpg: size mismatch: .*ir\.png is 96x64 but .*bomb\.jpg is 65000x65000/,
      expect,
    );
  });

  it('--max-pixels lowers and raises the limit (in megapixels)', async () => {
    const bigIr = join(dir, 'big-ir.png');
    const bigVis = join(dir, 'big-vi.png');
    await sharp({ create: { width: 1250, height: 1000, channels: 3, background: '#204080' } })
      .png()
      .toFile(bigVis);
    await sharp({ create: { width: 1250, height: 1000, channels: 3, background: '#808080' } })
      .png()
      .toFile(bigIr);
    const out = join(dir, 'big.png');
    const args = ['--ir', bigIr, '--vis', bigVis, '-o', out, '--method', 'max', '-q'];
    expectOneLineError(
      dif([...args, '--max-pixels', '1']),
      /big-ir\.png: image is 1250x1000 \(1\.3 MP\), above the limit of 1 MP; not decoded \(--max-pixels 1\.3 reads it/,
      expect,
    );
    expect(existsSync(out)).toBe(false);
    const r = dif([...args, '--max-pixels', '2']);
    expect(r.code, r.stderr).toBe(0);
    expect((await readRgb(out)).width).toBe(1250);
  });
});

describe('corrupt images', () => {
  it('a JPEG with a damaged scan is an error naming it, and --allow-corrupt reads it with a warning', async () => {
    const out = join(dir, 'c.png');
    const args = ['--ir', ir, '--vis', corrupt, '-o', out, '--method', 'max', '-q'];
    expectOneLineError(
      dif(args),
      /corrupt\.jpg: corrupt or truncated jpeg image \(Corrupt JPEG data: [^)]*\); --allow-corrupt reads it anyway$/,
      expect,
    );
    expect(existsSync(out)).toBe(false);
    const r = dif([...args, '--allow-corrupt']);
    expect(r.code, r.stderr).toBe(0);
    const lines = r.stderr.trim().split('\n');
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(
      /^warning: .*corrupt\.jpg: corrupt or truncated jpeg image .*read anyway/,
    );
    expect((await readRgb(out)).width).toBe(96);
  });
});

describe('leftovers of killed runs', () => {
  it('temporary files of a killed write in the output folder are removed, live ones kept', () => {
    const outDir = join(dir, 'outdir');
    mkdirSync(outDir, { recursive: true });
    const done = spawnSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))'], {
      encoding: 'utf8',
    });
    const stale = join(outDir, `.fused.png.${done.stdout}.0badf00d.tmp`);
    const live = join(outDir, '.other.png.1.cafebabe.tmp');
    writeFileSync(stale, 'half an image');
    writeFileSync(live, 'being written by PID 1');
    const r = dif([
      '--ir',
      ir,
      '--vis',
      vis,
      '-o',
      join(outDir, 'fused.png'),
      '--method',
      'max',
      '-q',
    ]);
    expect(r.code, r.stderr).toBe(0);
    expect(existsSync(stale)).toBe(false);
    expect(existsSync(live)).toBe(true);
    expect(existsSync(join(outDir, 'fused.png'))).toBe(true);
  });
});

describe('messages that name the right thing', () => {
  it('-o pointing at a folder says so and suggests a file name', () => {
    const folder = join(dir, 'some-folder');
    mkdirSync(folder, { recursive: true });
    expectOneLineError(
      dif(['--ir', ir, '--vis', vis, '-o', folder, '--method', 'max']),
      new RegExp(
        `some-folder: is a folder; with --ir/--vis, -o takes an image file name such as ${join(folder, 'ir.png').replace(/[.*+?^${}()|[\]\\]/g, '\\$&')} \\(--pairs writes into a folder\\)$`,
      ),
      expect,
    );
  });

  it('an output under a folder that cannot be created (/proc) is one line at once, not a hang', () => {
    if (!existsSync('/proc/self')) return;
    // Node's recursive mkdir never returns here; these runs are bounded by the time-out.
    const bounded = (args: string[]) => {
      const r = spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8', timeout: 60_000 });
      return { code: r.status ?? -1, stdout: r.stdout, stderr: r.stderr };
    };
    expectOneLineError(
      bounded(['--ir', ir, '--vis', vis, '-o', '/proc/forbidden/x.png', '--method', 'max']),
      /^error: \/proc\/forbidden: cannot create the folder \(ENOENT\)$/,
      expect,
    );
    const pp = join(dir, 'pp');
    mkdirSync(join(pp, 'ir'), { recursive: true });
    mkdirSync(join(pp, 'vi'), { recursive: true });
    writeFileSync(join(pp, 'ir', 'a.png'), readFileSync(ir));
    writeFileSync(join(pp, 'vi', 'a.jpg'), readFileSync(vis));
    expectOneLineError(
      bounded(['--pairs', pp, '-o', '/proc/forbidden/out', '--method', 'max']),
      /^error: \/proc\/forbidden: cannot create the folder \(ENOENT\)$/,
      expect,
    );
    expectOneLineError(
      bounded([
        'queue',
        'add',
        '--pairs',
        pp,
        '--out',
        '/proc/forbidden',
        '--redis',
        'redis://127.0.0.1:1',
      ]),
      /^error: \/proc\/forbidden: cannot create the folder \(ENOENT\)$/,
      expect,
    );
  });

  it('a model run leaves nothing in $TMPDIR (no .ses, no mat-debug-<pid>.log)', () => {
    const userTmp = tmp('dif-user-tmp-');
    const r = spawnSync(
      process.execPath,
      [CLI, '--ir', ir, '--vis', vis, '-o', join(dir, 'tmp-clean.png'), '-q'],
      { encoding: 'utf8', timeout: 120_000, env: { ...process.env, TMPDIR: userTmp } },
    );
    expect(r.status, r.stderr).toBe(0);
    expect(readdirSync(userTmp)).toEqual([]);
  });

  it('eval with an empty --fused folder names it', () => {
    const pairs = join(dir, 'pairs');
    mkdirSync(join(pairs, 'ir'), { recursive: true });
    mkdirSync(join(pairs, 'vi'), { recursive: true });
    writeFileSync(join(pairs, 'ir', 'a.png'), readFileSync(ir));
    writeFileSync(join(pairs, 'vi', 'a.jpg'), readFileSync(vis));
    const empty = join(dir, 'fused-empty');
    mkdirSync(empty, { recursive: true });
    expectOneLineError(
      dif(['eval', '--pairs', pairs, '--fused', empty]),
      /fused-empty: --fused folder holds no images/,
      expect,
    );
  });
});
