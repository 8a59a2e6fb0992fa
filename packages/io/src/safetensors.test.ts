import {
  closeSync,
  ftruncateSync,
  mkdirSync,
  mkdtempSync,
  openSync,
  readdirSync,
  rmSync,
  writeFileSync,
  writeSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { GOLDEN_DIR, hasGolden, noteSkip } from '../../../test/shared';
import { writeFileAtomic, writeFileAtomicSync } from './atomic';
import { DifFusionError } from './errors';
import {
  floatToHalf,
  halfToFloat,
  readSafetensors,
  SafetensorsReader,
  serializeSafetensors,
  writeSafetensors,
  writeSafetensorsSync,
} from './safetensors';

const dir = mkdtempSync(join(tmpdir(), 'dif-io-st-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function rawFile(
  name: string,
  header: unknown,
  data: Uint8Array = new Uint8Array(0),
  lenOverride?: bigint,
) {
  const h = Buffer.from(typeof header === 'string' ? header : JSON.stringify(header));
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(lenOverride ?? BigInt(h.length));
  const p = join(dir, name);
  writeFileSync(p, Buffer.concat([len, h, data]));
  return p;
}

describe('safetensors write/read round trip', () => {
  it('keeps every dtype, shape and metadata', async () => {
    const p = join(dir, 'all.safetensors');
    await writeSafetensors(
      p,
      {
        f32: { dtype: 'F32', shape: [2, 3], data: [1.5, -2, 3.25, 0, 1e-8, -1e8] },
        f64: { dtype: 'F64', shape: [3], data: new Float64Array([Math.PI, -0, 1e-300]) },
        f16: { dtype: 'F16', shape: [4], data: [1, -2.5, 65504, 0.000061035156] },
        bf16: { dtype: 'BF16', shape: [3], data: [1, -3.140625, 1e30] },
        i64: { dtype: 'I64', shape: [3], data: [0, -5, 2 ** 40] },
        i32: { dtype: 'I32', shape: [2], data: [-7, 123456] },
        u8: { dtype: 'U8', shape: [2, 2], data: [0, 1, 254, 255] },
        empty: { dtype: 'F32', shape: [0, 4], data: [] },
        scalar: { dtype: 'F32', shape: [], data: [42] },
      },
      { format: 'pt', config: '{"a":1}' },
    );
    const f = readSafetensors(p);
    expect(f.metadata).toEqual({ format: 'pt', config: '{"a":1}' });
    const get = (n: string) => f.tensors.get(n)!;
    expect(get('f32').shape).toEqual([2, 3]);
    expect(Array.from(get('f32').data)).toEqual(
      Array.from(Float32Array.from([1.5, -2, 3.25, 0, 1e-8, -1e8])),
    );
    expect(Array.from(get('f64').data)).toEqual([Math.PI, -0, 1e-300]);
    expect(Array.from(get('f16').data)).toEqual([1, -2.5, 65504, 0.00006103515625]);
    // 1e30 is 0x7149F2CA in float32: the low half 0xF2CA rounds the bf16 up to 0x714A.
    const bf = new DataView(new ArrayBuffer(4));
    bf.setUint32(0, 0x714a0000);
    expect(Array.from(get('bf16').data)).toEqual([1, -3.140625, bf.getFloat32(0)]);
    expect(Array.from(get('i64').data)).toEqual([0, -5, 2 ** 40]);
    expect(get('i32').data).toBeInstanceOf(Int32Array);
    expect(Array.from(get('u8').data)).toEqual([0, 1, 254, 255]);
    expect(get('empty').data.length).toBe(0);
    expect(get('scalar').shape).toEqual([]);
    // the lazy reader agrees
    const r = SafetensorsReader.open(p);
    expect(r.names()).toEqual(['f32', 'f64', 'f16', 'bf16', 'i64', 'i32', 'u8', 'empty', 'scalar']);
    expect(Array.from(r.read('f64').data)).toEqual([Math.PI, -0, 1e-300]);
    expect(r.info('u8')).toMatchObject({ dtype: 'U8', shape: [2, 2] });
    expect(() => r.read('nope')).toThrow(/no tensor named 'nope'/);
    r.close();
    // header padded to 8 bytes
    const chunks = serializeSafetensors({ a: { dtype: 'U8', shape: [1], data: [1] } });
    expect(chunks[1].byteLength % 8).toBe(0);
  });

  it('writes synchronously and atomically (no temp files left)', () => {
    const p = join(dir, 'sync.safetensors');
    writeSafetensorsSync(p, new Map([['x', { dtype: 'F32', shape: [1], data: [7] }]]));
    writeSafetensorsSync(p, new Map([['x', { dtype: 'F32', shape: [1], data: [8] }]]));
    expect(readSafetensors(p).tensors.get('x')!.data[0]).toBe(8);
    expect(readdirSync(dir).filter((f) => f.endsWith('.tmp'))).toEqual([]);
  });

  it('rejects values that do not fit the shape', () => {
    expect(() => serializeSafetensors({ a: { dtype: 'F32', shape: [2], data: [1] } })).toThrow(
      /1 values but shape \[2\]/,
    );
    expect(() => serializeSafetensors({ a: { dtype: 'I64', shape: [1], data: [0.5] } })).toThrow(
      /not an integer/,
    );
  });
});

describe('half precision', () => {
  it('known bit patterns', () => {
    expect(floatToHalf(1)).toBe(0x3c00);
    expect(floatToHalf(-2)).toBe(0xc000);
    expect(floatToHalf(65504)).toBe(0x7bff);
    expect(floatToHalf(65520)).toBe(0x7c00); // rounds to inf
    expect(floatToHalf(2 ** -24)).toBe(0x0001); // smallest subnormal
    expect(floatToHalf(2 ** -26)).toBe(0); // underflow
    expect(floatToHalf(Number.NaN) & 0x7c00).toBe(0x7c00);
    expect(floatToHalf(1 + 2 ** -11)).toBe(0x3c00); // tie → even
    expect(floatToHalf(1 + 3 * 2 ** -11)).toBe(0x3c02); // tie → even (up)
    expect(halfToFloat(0x3555)).toBeCloseTo(0.33325195, 8);
    expect(halfToFloat(0xfc00)).toBe(Number.NEGATIVE_INFINITY);
    for (let h = 0; h < 0x7c00; h += 37) expect(floatToHalf(halfToFloat(h))).toBe(h);
  });
});

describe('lazy reads of large files', () => {
  it('reads the header and one tensor of a 3 GiB file without loading it', () => {
    const big = 3 * 1024 ** 3;
    const header = JSON.stringify({
      __metadata__: { note: 'sparse' },
      small: { dtype: 'F32', shape: [2], data_offsets: [0, 8] },
      huge: { dtype: 'U8', shape: [big], data_offsets: [8, 8 + big] },
    });
    const p = join(dir, 'big.safetensors');
    const fd = openSync(p, 'w');
    const len = Buffer.alloc(8);
    len.writeBigUInt64LE(BigInt(header.length));
    writeSync(fd, len, 0, 8, 0);
    writeSync(fd, Buffer.from(header), 0, header.length, 8);
    writeSync(fd, Buffer.from(new Float32Array([1.25, -4]).buffer), 0, 8, 8 + header.length);
    ftruncateSync(fd, 8 + header.length + 8 + big); // sparse: no disk space used
    closeSync(fd);
    const before = process.memoryUsage().rss;
    const r = SafetensorsReader.open(p);
    expect(r.metadata).toEqual({ note: 'sparse' });
    expect(Array.from(r.read('small').data)).toEqual([1.25, -4]);
    expect(r.info('huge').shape).toEqual([big]);
    r.close();
    expect(process.memoryUsage().rss - before).toBeLessThan(256 * 1024 ** 2);
  });
});

describe('malformed safetensors are one-line errors naming the file', () => {
  const expectErr = (fn: () => unknown, re: RegExp, path: string) => {
    let err: unknown;
    try {
      fn();
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(DifFusionError);
    const msg = (err as Error).message;
    expect(msg).toMatch(re);
    expect(msg.startsWith(path)).toBe(true);
    expect(msg).not.toContain('\n');
  };
  const both = (p: string, re: RegExp) => {
    expectErr(() => readSafetensors(p), re, p);
    expectErr(() => SafetensorsReader.open(p), re, p);
  };
  it('missing file', () => both(join(dir, 'missing.safetensors'), /no such file/));
  it('too short', () => {
    const p = join(dir, 'short.safetensors');
    writeFileSync(p, Buffer.from([1, 2, 3]));
    both(p, /too short/);
  });
  it('bad header length', () =>
    both(
      rawFile('badlen.safetensors', '{}', undefined, 1n << 40n),
      /bad header length 1099511627776/,
    ));
  it('header not JSON', () => both(rawFile('badjson.safetensors', '{not json'), /not valid JSON/));
  it('unknown dtype', () =>
    both(
      rawFile(
        'dtype.safetensors',
        { a: { dtype: 'F8_E4M3', shape: [1], data_offsets: [0, 1] } },
        new Uint8Array(1),
      ),
      /tensor 'a' has unknown dtype "F8_E4M3"/,
    ));
  it('offsets out of range (truncated data)', () =>
    both(
      rawFile(
        'range.safetensors',
        { a: { dtype: 'F32', shape: [4], data_offsets: [0, 16] } },
        new Uint8Array(8),
      ),
      /out of range/,
    ));
  it('overlapping tensors', () =>
    both(
      rawFile(
        'overlap.safetensors',
        {
          a: { dtype: 'F32', shape: [2], data_offsets: [0, 8] },
          b: { dtype: 'F32', shape: [2], data_offsets: [4, 12] },
        },
        new Uint8Array(12),
      ),
      /tensors 'a' \[0, 8\] and 'b' \[4, 12\] overlap/,
    ));
  it('size not matching shape', () =>
    both(
      rawFile(
        'size.safetensors',
        { a: { dtype: 'F32', shape: [3], data_offsets: [0, 8] } },
        new Uint8Array(8),
      ),
      /has 8 bytes but shape \[3\] of F32 needs 12/,
    ));
  it('bad shape and offsets', () => {
    both(
      rawFile(
        'shape.safetensors',
        { a: { dtype: 'U8', shape: [-1], data_offsets: [0, 1] } },
        new Uint8Array(1),
      ),
      /invalid shape/,
    );
    both(
      rawFile(
        'offs.safetensors',
        { a: { dtype: 'U8', shape: [1], data_offsets: [1, 0] } },
        new Uint8Array(1),
      ),
      /invalid data_offsets/,
    );
  });
});

describe.skipIf(!hasGolden)('reads every golden file', () => {
  noteSkip(hasGolden, 'golden');
  it('all of ../shared/golden/*.safetensors, whole and lazily', async () => {
    const { readdirSync: ls } = await import('node:fs');
    const files = ls(GOLDEN_DIR).filter((f) => f.endsWith('.safetensors'));
    expect(files.length).toBeGreaterThan(0);
    for (const f of files) {
      const p = join(GOLDEN_DIR, f);
      const whole = readSafetensors(p);
      expect(whole.tensors.size).toBeGreaterThan(0);
      const r = SafetensorsReader.open(p);
      expect(r.names().sort()).toEqual([...whole.tensors.keys()].sort());
      const name = r.names()[r.names().length - 1];
      expect(Array.from(r.read(name).data)).toEqual(Array.from(whole.tensors.get(name)!.data));
      r.close();
      // and rewriting gives the same tensors back
      const copy = join(dir, `copy-${f}`);
      await writeSafetensors(copy, whole.tensors, whole.metadata);
      const again = readSafetensors(copy);
      expect(again.metadata).toEqual(whole.metadata);
      for (const [k, t] of whole.tensors) {
        const u = again.tensors.get(k)!;
        expect(u.dtype).toBe(t.dtype);
        expect(u.shape).toEqual(t.shape);
        expect(Buffer.from(u.data.buffer).equals(Buffer.from(t.data.buffer))).toBe(true);
      }
    }
  });
});

describe('writeFileAtomic', () => {
  it('replaces the file and creates parent folders', async () => {
    const p = join(dir, 'nested', 'deeper', 'a.txt');
    await writeFileAtomic(p, 'one');
    await writeFileAtomic(p, [Buffer.from('tw'), Buffer.from('o')]);
    writeFileAtomicSync(join(dir, 'nested', 'b.txt'), new Uint8Array([65]));
    const { readFileSync } = await import('node:fs');
    expect(readFileSync(p, 'utf8')).toBe('two');
    expect(readFileSync(join(dir, 'nested', 'b.txt'), 'utf8')).toBe('A');
    expect(readdirSync(join(dir, 'nested', 'deeper'))).toEqual(['a.txt']);
  });
  it('fails with one line naming the path', async () => {
    writeFileSync(join(dir, 'afile'), 'x');
    // the file in the way of the output's folder is what the message names
    await expect(writeFileAtomic(join(dir, 'afile', 'sub', 'x.txt'), 'y')).rejects.toThrow(
      new RegExp(`^${join(dir, 'afile')}: not a folder \\(a file is in the way\\)$`),
    );
    // an unwritable target itself: named with the problem
    mkdirSync(join(dir, 'adir', 'x.txt'), { recursive: true });
    await expect(writeFileAtomic(join(dir, 'adir', 'x.txt'), 'y')).rejects.toThrow(
      /adir\/x\.txt: /,
    );
  });
});
