import { existsSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { readSafetensors } from '@dif-fusion/io';
import { describe, expect, it } from 'vitest';
import {
  PickledTensor,
  PyDict,
  PyTuple,
  TorchCheckpoint,
  TorchImportError,
  torchPickleHooks,
  unpickle,
} from './index';

const FIX = join(__dirname, '..', 'fixtures');
const fixture = (name: string) => join(FIX, name);
/** What the malicious fixtures' payload would create if it ever ran (see make-fixtures.py). */
const PWNED = '/tmp/dif-fusion-torch-import-pwned';

const open = (name: string) => TorchCheckpoint.open(fixture(name));

async function refusal(name: string): Promise<string> {
  const err = await open(name).then(
    () => null,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(TorchImportError);
  return (err as Error).message;
}

describe('TorchCheckpoint: values equal what PyTorch saved', () => {
  it('misc.pth: every dtype, views, shared storages, parameters, nested data', async () => {
    const ck = await open('misc.pth');
    const expected = readSafetensors(fixture('misc_expected.safetensors')).tensors;
    const root = ck.root as PyDict;
    expect(root).toBeInstanceOf(PyDict);
    expect(root.ordered).toBe(true);
    const tensors = [...root].filter(([, v]) => v instanceof PickledTensor) as Array<
      [string, PickledTensor]
    >;
    expect(tensors.map(([k]) => k).sort()).toEqual([...expected.keys()].sort());
    for (const [k, t] of tensors) {
      const want = expected.get(k)!;
      expect(t.shape, k).toEqual(want.shape);
      const got = await ck.float64(t);
      expect(Array.from(got), k).toEqual(Array.from(want.data));
      if (t.dtype !== 'float64' && t.dtype !== 'int64')
        expect(Array.from(await ck.float32(t)), k).toEqual(
          Array.from(Float32Array.from(want.data)),
        );
    }
    const dtypes = Object.fromEntries(tensors.map(([k, t]) => [k, t.dtype]));
    expect(dtypes).toMatchObject({
      f16: 'float16',
      bf16: 'bfloat16',
      f64: 'float64',
      i64: 'int64',
      bool: 'bool',
    });
    expect((root.get('transposed') as PickledTensor).contiguous).toBe(false);
    expect((root.get('sliced') as PickledTensor).storageOffset).toBe(8);
    expect((root.get('shared_a') as PickledTensor).storage).toBe(
      (root.get('shared_b') as PickledTensor).storage,
    );

    const nested = root.get('nested') as PyDict;
    expect(nested.get('list')).toEqual([1, -2, 3.5, null, true, false]);
    const tup = nested.get('tuple') as PyTuple;
    expect(tup).toBeInstanceOf(PyTuple);
    expect([...tup]).toEqual([1, 'two', 2n ** 70n]);
    expect(nested.get('str')).toBe('héllo ✓');
    expect(Array.from(nested.get('bytes') as Uint8Array)).toEqual([0, 1, 114, 97, 119]);
    expect(nested.get('float')).toBe(-0.125);
    expect(nested.get('big')).toBe(-(2n ** 63n));
    const inner = nested.get('tensors') as unknown[];
    expect(Array.from(await ck.float32(inner[0] as PickledTensor))).toEqual([1, 1]);
    ck.close();
  });

  it('ddpm_gen.pth, df_head_gen.pth: state_dicts with _metadata, every tensor matches the PyTorch checksums', async () => {
    const sums = JSON.parse(readSafetensors(fixture('reference.safetensors')).metadata.checksums);
    for (const [file, part] of [
      ['ddpm_gen.pth', 'ddpm'],
      ['df_head_gen.pth', 'head'],
    ] as const) {
      const ck = await open(file);
      const root = ck.root as PyDict;
      expect(root.attrs._metadata).toBeInstanceOf(PyDict);
      const want = sums[part] as Record<string, { shape: number[]; sum: number; sumsq: number }>;
      expect([...root.keys()]).toEqual(Object.keys(want));
      for (const [k, t] of root as Map<string, PickledTensor>) {
        expect(t.shape, k).toEqual(want[k].shape);
        const v = await ck.float64(t);
        let s = 0;
        let s2 = 0;
        for (const x of v) {
          s += x;
          s2 += x * x;
        }
        expect(Math.abs(s - want[k].sum), k).toBeLessThanOrEqual(
          1e-9 * Math.max(1, Math.abs(want[k].sumsq)),
        );
        expect(Math.abs(s2 - want[k].sumsq), k).toBeLessThanOrEqual(
          1e-9 * Math.max(1, want[k].sumsq),
        );
      }
      ck.close();
    }
  });

  it('df_head_gen_fp16.pth: float16 weights widen to float32 (the fp16-rounded fp32 values)', async () => {
    const full = await open('df_head_gen.pth');
    const half = await open('df_head_gen_fp16.pth');
    const a = full.root as Map<string, PickledTensor>;
    const b = half.root as Map<string, PickledTensor>;
    expect([...b.keys()]).toEqual([...a.keys()]);
    for (const [k, t] of b) {
      expect(t.dtype).toBe('float16');
      const x = await full.float32(a.get(k)!);
      const y = await half.float32(t);
      // float16 has 11 significant bits; below 2^-14 it is subnormal (absolute step 2^-24)
      let worst = 0;
      for (let i = 0; i < x.length; i++)
        worst = Math.max(
          worst,
          Math.abs(x[i] - y[i]) / Math.max(Math.abs(x[i]) * 2 ** -11, 2 ** -24),
        );
      expect(worst, k).toBeLessThanOrEqual(1);
    }
    full.close();
    half.close();
  });
});

describe('TorchCheckpoint: refusals, one line each', () => {
  it('refuses a GLOBAL os.system payload by name, and runs nothing', async () => {
    rmSync(PWNED, { force: true });
    const msg = await refusal('malicious.pth');
    expect(msg).toMatch(/refused: the pickle refers to the Python global os\.system/);
    expect(msg).toContain('malicious.pth');
    expect(msg).not.toContain('\n');
    expect(existsSync(PWNED)).toBe(false);
  });

  it('refuses a STACK_GLOBAL builtins.eval payload in a bare pickle', async () => {
    rmSync(PWNED, { force: true });
    const msg = await refusal('malicious_stack_global.pkl');
    expect(msg).toMatch(/Python global builtins\.eval/);
    expect(existsSync(PWNED)).toBe(false);
  });

  it('refuses at the GLOBAL opcode, before REDUCE', () => {
    const evil = Uint8Array.from(
      Buffer.from('\x80\x02c__builtin__\neval\nX\x01\x00\x00\x001\x85R.', 'latin1'),
    );
    expect(() =>
      unpickle(evil, {
        resolveGlobal: (m, n) => {
          throw new TorchImportError(`no ${m}.${n}`);
        },
      }),
    ).toThrow('no __builtin__.eval');
    // even an allowed global cannot be called unless it says how to rebuild its value
    expect(() =>
      unpickle(evil, {
        resolveGlobal: (module, name) => ({ module, name }),
      }),
    ).toThrow(/__builtin__\.eval cannot be called/);
  });

  it('names the legacy format and how to re-save', async () => {
    const msg = await refusal('legacy.pth');
    expect(msg).toMatch(/legacy \(pre-1\.6, non-zip\)/);
    expect(msg).toContain('_use_new_zipfile_serialization=True');
    expect(msg).not.toContain('\n');
  });

  it('names an unsupported opcode', () => {
    // EXT1 (extension registry) is never used by torch.save
    expect(() =>
      unpickle(
        Uint8Array.from([0x80, 0x02, 0x82, 0x01, 0x2e]),
        { resolveGlobal: () => ({ module: '', name: '' }) },
        'x.pkl',
      ),
    ).toThrow('x.pkl: unsupported pickle opcode EXT1 (0x82) at offset 2');
    expect(() =>
      unpickle(
        Uint8Array.from([0x80, 0x02, 0xff]),
        { resolveGlobal: () => ({ module: '', name: '' }) },
        'x.pkl',
      ),
    ).toThrow(/unknown pickle opcode 0xff/);
  });

  it('rejects files that are not checkpoints', async () => {
    const msg = await refusal('misc_expected.safetensors');
    expect(msg).toMatch(/not a PyTorch checkpoint/);
  });
});

describe('unpickle: every protocol, the checkpoint allow-list', () => {
  // pickle.dumps(OrderedDict([('a', [1, -2, 3.5, None, True]), ('b', (1, 'té', b'\x00\xff')),
  //   ('c', {'n': 2**70, 'm': -5})]), protocol=p) for p = 0..5 (CPython 3)
  const PICKLES = [
    'Y2NvbGxlY3Rpb25zCk9yZGVyZWREaWN0CnAwCih0UnAxClZhCnAyCihscDMKSTEKYUktMgphRjMuNQphTmFJMDEKYXNWYgpwNAooSTEKVnTpCnA1CmNfY29kZWNzCmVuY29kZQpwNgooVlx1MDAwMP8KcDcKVmxhdGluMQpwOAp0cDkKUnAxMAp0cDExCnNWYwpwMTIKKGRwMTMKVm4KcDE0CkwxMTgwNTkxNjIwNzE3NDExMzAzNDI0TApzVm0KcDE1CkktNQpzcy4=',
    'Y2NvbGxlY3Rpb25zCk9yZGVyZWREaWN0CnEAKVJxAShYAQAAAGFxAl1xAyhLAUr+////R0AMAAAAAAAATkkwMQplWAEAAABicQQoSwFYAwAAAHTDqXEFY19jb2RlY3MKZW5jb2RlCnEGKFgDAAAAAMO/cQdYBgAAAGxhdGluMXEIdHEJUnEKdHELWAEAAABjcQx9cQ0oWAEAAABucQ5MMTE4MDU5MTYyMDcxNzQxMTMwMzQyNEwKWAEAAABtcQ9K+////3V1Lg==',
    'gAJjY29sbGVjdGlvbnMKT3JkZXJlZERpY3QKcQApUnEBKFgBAAAAYXECXXEDKEsBSv7///9HQAwAAAAAAABOiGVYAQAAAGJxBEsBWAMAAAB0w6lxBWNfY29kZWNzCmVuY29kZQpxBlgDAAAAAMO/cQdYBgAAAGxhdGluMXEIhnEJUnEKh3ELWAEAAABjcQx9cQ0oWAEAAABucQ6KCQAAAAAAAAAAQFgBAAAAbXEPSvv///91dS4=',
    'gANjY29sbGVjdGlvbnMKT3JkZXJlZERpY3QKcQApUnEBKFgBAAAAYXECXXEDKEsBSv7///9HQAwAAAAAAABOiGVYAQAAAGJxBEsBWAMAAAB0w6lxBUMCAP9xBodxB1gBAAAAY3EIfXEJKFgBAAAAbnEKigkAAAAAAAAAAEBYAQAAAG1xC0r7////dXUu',
    'gASVcQAAAAAAAACMC2NvbGxlY3Rpb25zlIwLT3JkZXJlZERpY3SUk5QpUpQojAFhlF2UKEsBSv7///9HQAwAAAAAAABOiGWMAWKUSwGMA3TDqZRDAgD/lIeUjAFjlH2UKIwBbpSKCQAAAAAAAAAAQIwBbZRK+////3V1Lg==',
    'gAWVcQAAAAAAAACMC2NvbGxlY3Rpb25zlIwLT3JkZXJlZERpY3SUk5QpUpQojAFhlF2UKEsBSv7///9HQAwAAAAAAABOiGWMAWKUSwGMA3TDqZRDAgD/lIeUjAFjlH2UKIwBbpSKCQAAAAAAAAAAQIwBbZRK+////3V1Lg==',
  ];

  for (const [p, b64] of PICKLES.entries())
    it(`protocol ${p}`, () => {
      const v = unpickle(Buffer.from(b64, 'base64'), torchPickleHooks(`p${p}.pkl`)) as PyDict;
      expect(v).toBeInstanceOf(PyDict);
      expect(v.ordered).toBe(true);
      expect([...v.keys()]).toEqual(['a', 'b', 'c']);
      expect(v.get('a')).toEqual([1, -2, 3.5, null, true]);
      const b = v.get('b') as PyTuple;
      expect(b).toBeInstanceOf(PyTuple);
      expect(b[0]).toBe(1);
      expect(b[1]).toBe('té');
      expect(Array.from(b[2] as Uint8Array)).toEqual([0, 255]);
      const c = v.get('c') as PyDict;
      expect([...c]).toEqual([
        ['n', 2n ** 70n],
        ['m', -5],
      ]);
    });

  it('refuses a set built by calling builtins (protocol 2), by name', () => {
    // pickle.dumps({1, 2}, protocol=2): REDUCE of __builtin__.set
    const bytes = Buffer.from('gAJjX19idWlsdGluX18Kc2V0CnEAXXEBKEsBSwJlhXECUnEDLg==', 'base64');
    expect(() => unpickle(bytes, torchPickleHooks('set.pkl'), 'set.pkl')).toThrow(
      'set.pkl: refused: the pickle refers to the Python global __builtin__.set, which is not a tensor, storage or ordered dict (nothing was executed)',
    );
  });
});
