/**
 * Reading `torch.save` files without Python.
 *
 * Since PyTorch 1.6 `torch.save` writes a zip archive (members stored, not compressed):
 * `<archive>/data.pkl` (a pickle of the saved object, tensors replaced by persistent ids
 * `('storage', torch.FloatStorage, key, location, numel)`), `<archive>/data/<key>` (the raw
 * bytes of each storage), `<archive>/byteorder` and `<archive>/version`. The pickle is read by
 * the restricted reader in ./pickle.ts with an allow-list that only rebuilds tensors,
 * storages and (ordered) dicts; every other Python global is refused by name.
 */
import { open, readFile } from 'node:fs/promises';
import { basename } from 'node:path';
import {
  PyDict,
  type PyGlobal,
  PyTuple,
  TorchImportError,
  type UnpickleHooks,
  unpickle,
} from './pickle';
import { ZipReader } from './zip';

export type TorchDtype =
  | 'float32'
  | 'float16'
  | 'bfloat16'
  | 'float64'
  | 'int64'
  | 'int32'
  | 'int16'
  | 'int8'
  | 'uint8'
  | 'bool';

/** torch.<Name>Storage -> element type. */
const STORAGE_DTYPES: Record<string, TorchDtype> = {
  FloatStorage: 'float32',
  HalfStorage: 'float16',
  BFloat16Storage: 'bfloat16',
  DoubleStorage: 'float64',
  LongStorage: 'int64',
  IntStorage: 'int32',
  ShortStorage: 'int16',
  CharStorage: 'int8',
  ByteStorage: 'uint8',
  BoolStorage: 'bool',
};

export const DTYPE_BYTES: Record<TorchDtype, number> = {
  float32: 4,
  float16: 2,
  bfloat16: 2,
  float64: 8,
  int64: 8,
  int32: 4,
  int16: 2,
  int8: 1,
  uint8: 1,
  bool: 1,
};

/** A storage referenced by the pickle: `<archive>/data/<key>`, numel elements of dtype. */
export interface StorageRef {
  readonly key: string;
  readonly dtype: TorchDtype;
  readonly numel: number;
  readonly location: string;
}

/** A tensor as torch._utils._rebuild_tensor_v2 describes it: a strided view of a storage. */
export class PickledTensor {
  constructor(
    readonly storage: StorageRef,
    readonly storageOffset: number,
    readonly shape: number[],
    readonly stride: number[],
    readonly requiresGrad: boolean,
  ) {}

  get dtype(): TorchDtype {
    return this.storage.dtype;
  }

  get numel(): number {
    return this.shape.reduce((a, b) => a * b, 1);
  }

  /** Row-major contiguous (dimensions of size 1 may have any stride). */
  get contiguous(): boolean {
    let expected = 1;
    for (let d = this.shape.length - 1; d >= 0; d--) {
      if (this.shape[d] !== 1 && this.stride[d] !== expected) return false;
      expected *= this.shape[d];
    }
    return true;
  }
}

const LEGACY_MAGIC = [0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19];

/** How to re-save a legacy or otherwise unreadable checkpoint with PyTorch. */
export const RESAVE_HINT =
  "re-save it with PyTorch: torch.save(torch.load('in.pth', map_location='cpu', weights_only=True), 'out.pth', _use_new_zipfile_serialization=True)";

const isInt = (v: unknown): v is number => typeof v === 'number' && Number.isInteger(v);
const intList = (v: unknown): v is number[] =>
  Array.isArray(v) && v.every((x) => isInt(x) && x >= 0);

/** A global the reader lets through, with how to rebuild its value from plain data. */
function allowed(
  module: string,
  name: string,
  impl: Omit<PyGlobal, 'module' | 'name'> = {},
): PyGlobal {
  return { module, name, ...impl };
}

interface StorageType extends PyGlobal {
  dtype: TorchDtype;
}

function isStorageType(v: unknown): v is StorageType {
  return !!v && typeof v === 'object' && 'dtype' in v && 'module' in v;
}

/**
 * The allow-list. Everything here only arranges data the pickle already holds; nothing reads
 * files, imports modules or evaluates code.
 */
function makeHooks(where: string, storage: ((pid: unknown) => StorageRef) | null): UnpickleHooks {
  const fail = (msg: string): never => {
    throw new TorchImportError(`${where}: ${msg}`);
  };
  const rebuildTensor = (args: unknown[]): PickledTensor => {
    const [st, offset, size, stride, requiresGrad] = args;
    if (!st || typeof st !== 'object' || !('key' in st))
      fail('_rebuild_tensor_v2 without a storage');
    if (!isInt(offset) || offset < 0) fail('_rebuild_tensor_v2: bad storage offset');
    if (!intList(size) || !intList(stride) || size.length !== stride.length)
      fail('_rebuild_tensor_v2: bad size or stride');
    const s = st as StorageRef;
    const sz = size as number[];
    const sd = stride as number[];
    const numel = sz.reduce((a, b) => a * b, 1);
    const last =
      numel === 0 ? 0 : sz.reduce((acc, n, d) => acc + (n - 1) * sd[d], offset as number);
    if (numel > 0 && last >= s.numel)
      fail(
        `tensor view [${sz}] (stride [${sd}], offset ${offset}) reaches past its storage of ${s.numel} elements`,
      );
    return new PickledTensor(s, offset as number, sz.slice(), sd.slice(), requiresGrad === true);
  };
  const tensorArg = (v: unknown, fn: string): PickledTensor =>
    v instanceof PickledTensor ? v : fail(`${fn} of something that is not a tensor`);

  const table = new Map<string, PyGlobal>();
  const add = (g: PyGlobal) => table.set(`${g.module}.${g.name}`, g);
  add(
    allowed('collections', 'OrderedDict', {
      call: (args) => {
        const d = new PyDict(true);
        const items = args[0];
        if (args.length > 1) fail('OrderedDict with more than one argument');
        if (Array.isArray(items))
          for (const kv of items) {
            if (!Array.isArray(kv) || kv.length !== 2) fail('OrderedDict items must be pairs');
            d.set(kv[0], kv[1]);
          }
        else if (items !== undefined)
          fail('OrderedDict from something that is not a list of pairs');
        return d;
      },
      // state_dict()._metadata and other instance attributes
      build: (target, state) => {
        if (!(state instanceof PyDict)) fail('OrderedDict state must be a dict');
        for (const [k, v] of state as PyDict)
          if (typeof k === 'string') (target as PyDict).attrs[k] = v;
      },
    }),
  );
  add(allowed('torch._utils', '_rebuild_tensor_v2', { call: rebuildTensor, build: () => {} }));
  add(allowed('torch._utils', '_rebuild_tensor', { call: rebuildTensor }));
  add(
    allowed('torch._utils', '_rebuild_parameter', {
      call: (args) => tensorArg(args[0], '_rebuild_parameter'),
    }),
  );
  add(
    allowed('torch._utils', '_rebuild_parameter_with_state', {
      call: (args) => tensorArg(args[0], '_rebuild_parameter_with_state'),
    }),
  );
  const tensorTypes = [allowed('torch', 'Tensor'), allowed('torch.nn.parameter', 'Parameter')];
  for (const t of tensorTypes) add(t);
  add(
    allowed('torch._tensor', '_rebuild_from_type_v2', {
      call: (args) => {
        const [fn, type, fnArgs] = args;
        const g = fn as PyGlobal;
        if (!g || !table.has(`${g.module}.${g.name}`) || !g.call)
          fail('_rebuild_from_type_v2 with a function that is not allowed');
        if (!tensorTypes.includes(type as PyGlobal))
          fail('_rebuild_from_type_v2 of a type that is not a tensor');
        if (!(fnArgs instanceof PyTuple)) fail('_rebuild_from_type_v2 without an argument tuple');
        return tensorArg(g.call!([...(fnArgs as PyTuple)]), '_rebuild_from_type_v2');
      },
    }),
  );
  for (const [name, dtype] of Object.entries(STORAGE_DTYPES))
    add({ ...allowed('torch', name), dtype } as StorageType);
  // Protocol 2 pickles bytes objects as _codecs.encode(text, 'latin1').
  add(
    allowed('_codecs', 'encode', {
      call: (args) => {
        const [text, enc] = args;
        if (typeof text !== 'string' || (enc !== 'latin1' && enc !== 'latin-1'))
          fail("_codecs.encode is only allowed as encode(str, 'latin1')");
        return Uint8Array.from(text as string, (c) => c.charCodeAt(0) & 0xff);
      },
    }),
  );

  return {
    resolveGlobal(module, name) {
      const g = table.get(`${module}.${name}`);
      if (!g)
        throw new TorchImportError(
          `${where}: refused: the pickle refers to the Python global ${module}.${name}, which is not a tensor, storage or ordered dict (nothing was executed)`,
        );
      return g;
    },
    persistentLoad: storage ?? undefined,
  };
}

/**
 * The checkpoint allow-list for `unpickle` on a pickle without storages (persistent ids are
 * refused): e.g. to inspect a bare pickle safely.
 */
export function torchPickleHooks(where: string): UnpickleHooks {
  return makeHooks(where, null);
}

function storageLoader(
  where: string,
  zip: ZipReader,
  prefix: string,
): (pid: unknown) => StorageRef {
  const refs = new Map<string, StorageRef>();
  return (pid) => {
    const fail = (msg: string): never => {
      throw new TorchImportError(`${where}: ${msg}`);
    };
    if (!(pid instanceof PyTuple) || pid[0] !== 'storage' || pid.length !== 5)
      fail(
        `unsupported persistent id ${JSON.stringify(Array.isArray(pid) ? pid[0] : typeof pid)} (only storages are supported)`,
      );
    const [, type, key, location, numel] = pid as PyTuple;
    if (!isStorageType(type)) fail('persistent id without a storage type');
    if (typeof key !== 'string' || !isInt(numel) || numel < 0)
      fail('malformed storage persistent id');
    const st = type as StorageType;
    const k = key as string;
    const member = zip.member(`${prefix}data/${k}`);
    if (!member) fail(`storage ${k} is missing from the archive (${prefix}data/${k})`);
    const bytes = (numel as number) * DTYPE_BYTES[st.dtype];
    if (member!.size < bytes) fail(`storage ${k} holds ${member!.size} bytes, ${bytes} expected`);
    let ref = refs.get(k);
    if (!ref) {
      ref = { key: k, dtype: st.dtype, numel: numel as number, location: String(location) };
      refs.set(k, ref);
    } else if (ref.dtype !== st.dtype) fail(`storage ${k} is used with two dtypes`);
    return ref;
  };
}

async function readHead(path: string, n: number): Promise<Uint8Array> {
  const fh = await open(path, 'r');
  try {
    const buf = new Uint8Array(n);
    const { bytesRead } = await fh.read(buf, 0, n, 0);
    return buf.subarray(0, bytesRead);
  } finally {
    await fh.close();
  }
}

/** Largest pickle we read (a bare one, only to report what it refers to; or a zip's data.pkl). */
const MAX_BARE_PICKLE = 64 << 20;

/** A torch.save zip checkpoint: the unpickled object plus lazy access to tensor data. */
export class TorchCheckpoint {
  /** Storage bytes kept while more tensors still need them (views sharing a storage). */
  private readonly cache = new Map<string, { bytes: Uint8Array; users: number }>();
  private readonly users = new Map<string, number>();

  private constructor(
    readonly path: string,
    private readonly zip: ZipReader,
    /** Member prefix, e.g. `ddpm_gen/`. */
    readonly prefix: string,
    readonly littleEndian: boolean,
    /** The saved object: PyDict, arrays, primitives and PickledTensor leaves. */
    readonly root: unknown,
  ) {
    for (const t of tensorsIn(root))
      this.users.set(t.storage.key, (this.users.get(t.storage.key) ?? 0) + 1);
  }

  /**
   * Open a checkpoint: reads the zip directory and the pickle (not the tensor data). Throws a
   * one-line TorchImportError for the legacy format, refused globals and unsupported opcodes.
   */
  static async open(path: string): Promise<TorchCheckpoint> {
    const name = basename(path);
    const head = await readHead(path, 16);
    const isZip = head[0] === 0x50 && head[1] === 0x4b && (head[2] === 3 || head[2] === 5);
    if (!isZip) {
      if (
        head[0] === 0x80 &&
        head[2] === 0x8a &&
        head[3] === 0x0a &&
        LEGACY_MAGIC.every((b, i) => head[4 + i] === b)
      )
        throw new TorchImportError(
          `${name}: this is PyTorch's legacy (pre-1.6, non-zip) checkpoint format, which is not read here; ${RESAVE_HINT}`,
        );
      if (head[0] === 0x80) {
        // A bare pickle: interpret it (refusing any global by name), then say what it is not.
        const fh = await open(path, 'r');
        const size = (await fh.stat()).size;
        await fh.close();
        if (size <= MAX_BARE_PICKLE) {
          unpickle(new Uint8Array(await readFile(path)), makeHooks(name, null), name);
        }
        throw new TorchImportError(
          `${name}: a bare pickle, not a torch.save checkpoint (zip archive); ${RESAVE_HINT}`,
        );
      }
      throw new TorchImportError(
        `${name}: not a PyTorch checkpoint (expected a torch.save zip archive)`,
      );
    }
    let zip: ZipReader;
    try {
      zip = await ZipReader.open(path);
    } catch (e) {
      throw new TorchImportError(`${name}: cannot read the zip archive: ${(e as Error).message}`);
    }
    try {
      const pkls = zip.names().filter((n) => /^[^/]+\/data\.pkl$/.test(n));
      if (pkls.length !== 1)
        throw new TorchImportError(
          `${name}: ${pkls.length === 0 ? 'no' : 'more than one'} <archive>/data.pkl in the zip: not a torch.save checkpoint`,
        );
      const prefix = pkls[0].slice(0, -'data.pkl'.length);
      let littleEndian = true;
      if (zip.member(`${prefix}byteorder`)) {
        const order = new TextDecoder().decode(await zip.read(`${prefix}byteorder`)).trim();
        if (order !== 'little' && order !== 'big')
          throw new TorchImportError(`${name}: unknown byteorder '${order}'`);
        littleEndian = order === 'little';
      }
      const where = `${name}:${pkls[0]}`;
      // The pickle only describes the tensors (tens of kB for a 370 M-parameter state_dict):
      // a huge one is not a checkpoint, and is not read into memory.
      const pklSize = zip.member(pkls[0])!.size;
      if (pklSize > MAX_BARE_PICKLE)
        throw new TorchImportError(
          `${where}: the pickle is ${pklSize} bytes, more than a checkpoint's tensor index holds (limit ${MAX_BARE_PICKLE})`,
        );
      const root = unpickle(
        await zip.read(pkls[0]),
        makeHooks(where, storageLoader(where, zip, prefix)),
        where,
      );
      return new TorchCheckpoint(path, zip, prefix, littleEndian, root);
    } catch (e) {
      zip.close();
      throw e;
    }
  }

  /** Tensor values as float32 (half, bfloat16, double and integer types converted). */
  async float32(t: PickledTensor): Promise<Float32Array> {
    const src = decode(await this.storageBytes(t.storage), t.dtype, this.littleEndian, 'float32');
    return gather(src, t) as Float32Array;
  }

  /** Tensor values as float64 (exact for every dtype but int64 beyond 2^53). */
  async float64(t: PickledTensor): Promise<Float64Array> {
    const src = decode(await this.storageBytes(t.storage), t.dtype, this.littleEndian, 'float64');
    return gather(src, t) as Float64Array;
  }

  close(): void {
    this.cache.clear();
    this.zip.close();
  }

  private async storageBytes(ref: StorageRef): Promise<Uint8Array> {
    const cached = this.cache.get(ref.key);
    if (cached) {
      if (--cached.users <= 0) this.cache.delete(ref.key);
      return cached.bytes;
    }
    const all = await this.zip.read(`${this.prefix}data/${ref.key}`);
    const bytes = all.subarray(0, ref.numel * DTYPE_BYTES[ref.dtype]);
    const users = (this.users.get(ref.key) ?? 1) - 1;
    if (users > 0) this.cache.set(ref.key, { bytes, users });
    return bytes;
  }
}

/** Every PickledTensor in a nested value (dicts, lists, tuples). */
export function* tensorsIn(v: unknown, seen = new Set<unknown>()): Generator<PickledTensor> {
  if (v instanceof PickledTensor) {
    yield v;
    return;
  }
  if (!v || typeof v !== 'object' || seen.has(v)) return;
  seen.add(v);
  if (v instanceof Map) for (const x of v.values()) yield* tensorsIn(x, seen);
  else if (Array.isArray(v)) for (const x of v) yield* tensorsIn(x, seen);
}

let HALF_TABLE: Float32Array | null = null;
/** float16 bit pattern -> float32 value, for all 65536 patterns. */
function halfTable(): Float32Array {
  if (HALF_TABLE) return HALF_TABLE;
  const t = new Float32Array(65536);
  for (let h = 0; h < 65536; h++) {
    const s = h & 0x8000 ? -1 : 1;
    const e = (h >> 10) & 0x1f;
    const m = h & 0x3ff;
    t[h] =
      e === 0
        ? s * m * 2 ** -24
        : e === 31
          ? m
            ? Number.NaN
            : s * Number.POSITIVE_INFINITY
          : s * (1 + m / 1024) * 2 ** (e - 15);
  }
  HALF_TABLE = t;
  return t;
}

/** Storage bytes -> numbers. */
function decode(
  bytes: Uint8Array,
  dtype: TorchDtype,
  littleEndian: boolean,
  out: 'float32' | 'float64',
): Float32Array | Float64Array {
  const size = DTYPE_BYTES[dtype];
  const n = bytes.byteLength / size;
  const Out = out === 'float32' ? Float32Array : Float64Array;
  const aligned = bytes.byteOffset % size === 0;
  const native = littleEndian && aligned;
  if (dtype === 'float32' && native)
    return out === 'float32'
      ? new Float32Array(bytes.buffer, bytes.byteOffset, n)
      : Float64Array.from(new Float32Array(bytes.buffer, bytes.byteOffset, n));
  if (dtype === 'float64' && native && out === 'float64')
    return new Float64Array(bytes.buffer, bytes.byteOffset, n);
  const r = new Out(n);
  if (dtype === 'float16' && native) {
    const t = halfTable();
    const h = new Uint16Array(bytes.buffer, bytes.byteOffset, n);
    for (let i = 0; i < n; i++) r[i] = t[h[i]];
    return r;
  }
  if (dtype === 'bfloat16' && native) {
    const h = new Uint16Array(bytes.buffer, bytes.byteOffset, n);
    const bits = new Uint32Array(1);
    const f = new Float32Array(bits.buffer);
    for (let i = 0; i < n; i++) {
      bits[0] = h[i] << 16;
      r[i] = f[0];
    }
    return r;
  }
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const le = littleEndian;
  const t = dtype === 'float16' ? halfTable() : null;
  const bits = new Uint32Array(1);
  const f = new Float32Array(bits.buffer);
  for (let i = 0; i < n; i++) {
    const o = i * size;
    switch (dtype) {
      case 'float32':
        r[i] = dv.getFloat32(o, le);
        break;
      case 'float64':
        r[i] = dv.getFloat64(o, le);
        break;
      case 'float16':
        r[i] = t![dv.getUint16(o, le)];
        break;
      case 'bfloat16':
        bits[0] = dv.getUint16(o, le) << 16;
        r[i] = f[0];
        break;
      case 'int64':
        r[i] = Number(dv.getBigInt64(o, le));
        break;
      case 'int32':
        r[i] = dv.getInt32(o, le);
        break;
      case 'int16':
        r[i] = dv.getInt16(o, le);
        break;
      case 'int8':
        r[i] = dv.getInt8(o);
        break;
      case 'uint8':
      case 'bool':
        r[i] = dv.getUint8(o);
        break;
    }
  }
  return r;
}

/** The tensor's elements in row-major order, in an array of their own. */
function gather(src: Float32Array | Float64Array, t: PickledTensor): Float32Array | Float64Array {
  const n = t.numel;
  if (t.contiguous) return src.slice(t.storageOffset, t.storageOffset + n);
  const out = new (src.constructor as Float32ArrayConstructor | Float64ArrayConstructor)(n);
  const rank = t.shape.length;
  const idx = new Array<number>(rank).fill(0);
  let p = t.storageOffset;
  for (let i = 0; i < n; i++) {
    out[i] = src[p];
    for (let d = rank - 1; d >= 0; d--) {
      idx[d]++;
      p += t.stride[d];
      if (idx[d] < t.shape[d]) break;
      p -= t.stride[d] * t.shape[d];
      idx[d] = 0;
    }
  }
  return out;
}

export { PyDict, PyTuple, TorchImportError };
