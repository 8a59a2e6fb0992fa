/**
 * ONNX Runtime session helpers: execution-provider choice (auto | cuda | cpu) with one-line
 * errors, session options tuned for this workload, and small run helpers.
 */
import { existsSync, mkdtempSync, readFileSync, renameSync, rmSync, statSync } from 'node:fs';
import { createRequire } from 'node:module';
import { arch, cpus, tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { DifFusionError, formatError } from '@dif-fusion/schedules';
import ort from 'onnxruntime-node';
import { makeDirs } from './write';

export type Device = 'auto' | 'cuda' | 'cpu';

export interface SessionOptions {
  device?: Device;
  /** Intra-op threads for the CPU provider (default: ORT's choice, one per physical core). */
  threads?: number;
  /** Extra ONNX Runtime session options (profiling, optimisation level...), merged last. */
  ort?: ort.InferenceSession.SessionOptions;
  /**
   * Keep ONNX Runtime's optimised graph for the CPU provider in `dir` under `key` (e.g. the
   * model's graph SHA-256), and open it from there next time with graph optimisation off:
   * session creation is ORT's optimiser for the most part (0.3-0.6 s of the default model's
   * whole command). The file names ORT's version, the CPU model and architecture as well,
   * since the optimised graph holds kernels chosen for this machine (NCHWc layouts); the
   * outputs are bit-identical (tested). Best effort: a file that does not load is replaced, a
   * folder that cannot be written is passed over. Only for a model given by path.
   *
   * The file is in ORT format (a flatbuffer, `.ort`), opened from its bytes with ORT's
   * `session.use_ort_model_bytes_directly` and `use_ort_model_bytes_for_initializers`: the
   * weights stay where they were read instead of being parsed out of a protobuf and copied
   * (the paper's 1.6 GB model: 13.6 CPU-s from an optimised .onnx, 5.8 CPU-s this way, most
   * of it reading the file; peak RSS of the creation 1.7 GB). The bytes are tied to the
   * session's lifetime (ORT reads them for as long as it runs).
   */
  optimizedCache?: { dir: string; key: string };
}

export interface OpenedSession {
  session: ort.InferenceSession;
  /** The execution provider that actually runs the graph. */
  provider: 'cuda' | 'cpu';
  /** With `optimizedCache`: the optimised graph was read from the cache, or written to it. */
  cache?: 'read' | 'written';
}

/** The cache file of a model's optimised CPU graph (see SessionOptions.optimizedCache). */
export function optimizedCachePath(dir: string, key: string, threads?: number): string {
  const machine = `${arch()}-${(cpus()[0]?.model ?? 'cpu').replace(/[^A-Za-z0-9]+/g, '_')}`;
  const version = String(ort.env.versions?.common ?? 'ort').replace(/[^0-9.]+/g, '');
  return join(dir, `${key}-ort${version}-${machine}-t${threads ?? 'auto'}.ort`);
}

/** Raised for problems a user can fix; `message` is one line. */
export class OnnxRuntimeError extends DifFusionError {}

function baseOptions(threads?: number): ort.InferenceSession.SessionOptions {
  const o: ort.InferenceSession.SessionOptions = {
    graphOptimizationLevel: 'all',
    executionMode: 'sequential',
    enableCpuMemArena: true,
    // Memory patterns make the second run of a shape allocate its planned block while the
    // first run's allocations stay in the arena: a 768 px tile of the default model peaked at
    // 1.54 GB on its first run and 2.68 GB from its second on; without them every run stays
    // at 1.55 GB and is no slower (a 4K pair with --tile auto runs 18 such tiles).
    enableMemPattern: false,
    logSeverityLevel: 3,
  };
  if (threads !== undefined) {
    if (!Number.isInteger(threads) || threads < 1)
      throw new OnnxRuntimeError(`threads must be a positive integer, got ${threads}`);
    o.intraOpNumThreads = threads;
    o.interOpNumThreads = 1;
  }
  return o;
}

let privateTmp: string | undefined;

/**
 * Runs `create` (a session's creation) with $TMPDIR pointing at a folder of this process's
 * own: ONNX Runtime leaves files there (`.ses`, an empty `mat-debug-<pid>.log`) that would
 * otherwise pile up in the user's temp folder, one pair per run. The folder is removed when
 * the process exits; $TMPDIR is restored as soon as the session exists.
 */
export async function inPrivateTmp<T>(create: () => Promise<T>): Promise<T> {
  if (!privateTmp) {
    const dir = mkdtempSync(join(tmpdir(), 'dif-onnx-'));
    privateTmp = dir;
    process.once('exit', () => rmSync(dir, { recursive: true, force: true }));
  }
  const before = process.env.TMPDIR;
  process.env.TMPDIR = privateTmp;
  try {
    return await create();
  } finally {
    if (before === undefined) delete process.env.TMPDIR;
    else process.env.TMPDIR = before;
  }
}

/**
 * Whether the CUDA provider library of onnxruntime-node is installed (it is downloaded by
 * onnxruntime-node's install script, by default under npm only with ONNXRUNTIME_NODE_INSTALL=cuda12). Its presence
 * does not prove CUDA works (driver, CUDA 12 and cuDNN 9 libraries): `openSession` tells.
 */
export function cudaInstalled(): boolean {
  try {
    const main = createRequire(import.meta.url).resolve('onnxruntime-node');
    const bin = join(dirname(main), '..', 'bin', 'napi-v6', process.platform, process.arch);
    const lib =
      process.platform === 'win32'
        ? 'onnxruntime_providers_cuda.dll'
        : 'libonnxruntime_providers_cuda.so';
    // An empty file is the placeholder scripts/cpu-default.cjs leaves so that npm's install
    // does not download the CUDA libraries: not installed.
    const file = join(bin, lib);
    return existsSync(file) && statSync(file).size > 0;
  } catch {
    return false;
  }
}

/**
 * Open a session on a model file (or bytes). `auto` tries CUDA and falls back to CPU;
 * `cuda` throws one clear line when the CUDA provider cannot be used.
 */
export async function openSession(
  model: string | Uint8Array,
  options: SessionOptions = {},
): Promise<OpenedSession> {
  // ORT logs a multi-line error when the CUDA provider library is missing; we report that
  // case ourselves in one line. Only the default level is changed (before ORT initialises).
  if (ort.env.logLevel === undefined || ort.env.logLevel === 'warning') ort.env.logLevel = 'fatal';
  const device = options.device ?? 'auto';
  if (device !== 'auto' && device !== 'cuda' && device !== 'cpu')
    throw new OnnxRuntimeError(`unknown device '${String(device)}' (use auto, cuda or cpu)`);
  const create = (
    eps: ort.InferenceSession.SessionOptions['executionProviders'],
    source: string | Uint8Array = model,
    extra: ort.InferenceSession.SessionOptions = {},
  ) => {
    const o: ort.InferenceSession.SessionOptions = {
      ...baseOptions(options.threads),
      ...options.ort,
      ...extra,
      executionProviders: eps,
    };
    // session config entries of both (e.g. the cache's ORT-format entries beside a caller's)
    const entries = mergeExtra(options.ort?.extra, extra.extra);
    if (entries) o.extra = entries;
    return inPrivateTmp(() =>
      typeof source === 'string'
        ? ort.InferenceSession.create(source, o)
        : ort.InferenceSession.create(source, o),
    );
  };
  if (device === 'cuda' && !cudaInstalled())
    throw new OnnxRuntimeError(
      'CUDA is unavailable for ONNX Runtime (the CUDA provider library is not installed); install it with `ONNXRUNTIME_NODE_INSTALL=cuda12 npm rebuild onnxruntime-node` (README, GPU section) or use --device cpu',
    );
  // auto: only try CUDA when its provider library is there (saves a failing load).
  if (device === 'cuda' || (device === 'auto' && cudaInstalled())) {
    try {
      const session = await create([{ name: 'cuda' }]);
      return { session, provider: 'cuda' };
    } catch (e) {
      if (device === 'cuda')
        throw new OnnxRuntimeError(
          `CUDA is unavailable for ONNX Runtime (${formatError(e)}); install the CUDA provider (README, GPU section) or use --device cpu`,
        );
    }
  }
  if (options.optimizedCache && typeof model === 'string') {
    const opened = await openCached(model, options.optimizedCache, options.threads, (src, extra) =>
      create(['cpu'], src, extra),
    );
    if (opened) return opened;
  }
  try {
    const session = await create(['cpu']);
    return { session, provider: 'cpu' };
  } catch (e) {
    throw new OnnxRuntimeError(`ONNX Runtime could not load the model: ${formatError(e)}`);
  }
}

/** The model bytes a session opened with use_ort_model_bytes_directly reads from. */
const heldBytes = new WeakMap<ort.InferenceSession, Uint8Array>();

type SessionExtra = ort.InferenceSession.SessionOptions['extra'];

/** Session config entries (`extra`) of two option sets, nested keys merged. */
function mergeExtra(a: SessionExtra, b: SessionExtra): SessionExtra {
  if (!a || !b) return a ?? b;
  const out: Record<string, unknown> = { ...a };
  for (const [k, v] of Object.entries(b))
    out[k] =
      typeof v === 'object' && v !== null && typeof out[k] === 'object' && out[k] !== null
        ? mergeExtra(out[k] as SessionExtra, v as SessionExtra)
        : v;
  return out as SessionExtra;
}

/** The CPU session through the optimised-graph cache; null when the cache cannot serve. */
async function openCached(
  model: string,
  cache: { dir: string; key: string },
  threads: number | undefined,
  open: (
    src: string | Uint8Array,
    extra: ort.InferenceSession.SessionOptions,
  ) => Promise<ort.InferenceSession>,
): Promise<OpenedSession | null> {
  const file = optimizedCachePath(cache.dir, cache.key, threads);
  if (existsSync(file)) {
    try {
      const bytes = readFileSync(file);
      const session = await open(bytes, {
        graphOptimizationLevel: 'disabled',
        extra: {
          session: { use_ort_model_bytes_directly: '1', use_ort_model_bytes_for_initializers: '1' },
        },
      });
      // ORT keeps pointers into `bytes` (graph and weights): they live as long as the session
      heldBytes.set(session, bytes);
      return { session, provider: 'cpu', cache: 'read' };
    } catch {
      rmSync(file, { force: true }); // damaged or from another build: written again below
    }
  }
  // ORT writes the optimised graph while it creates the session: to a temporary name,
  // renamed when complete, so a reader never sees half a file.
  const part = `${file}.${process.pid}.part`;
  try {
    makeDirs(cache.dir); // not mkdirSync's recursive form: it hangs under /proc
  } catch {
    return null;
  }
  try {
    // ORT format whatever the name's extension (ORT picks the format from it otherwise)
    const session = await open(model, {
      optimizedModelFilePath: part,
      extra: { session: { save_model_format: 'ORT' } },
    });
    try {
      renameSync(part, file);
      return { session, provider: 'cpu', cache: 'written' };
    } catch {
      rmSync(part, { force: true });
      return { session, provider: 'cpu' };
    }
  } catch {
    rmSync(part, { force: true });
    return null; // the plain path below reports the model's own problem
  }
}

/** Run a session on float32 inputs; returns the named outputs' data. */
export async function runFloat(
  session: ort.InferenceSession,
  feeds: Record<string, { data: Float32Array; dims: number[] }>,
): Promise<Record<string, { data: Float32Array; dims: number[] }>> {
  const t: Record<string, ort.Tensor> = {};
  for (const [k, v] of Object.entries(feeds)) t[k] = new ort.Tensor('float32', v.data, v.dims);
  const out = await session.run(t);
  const res: Record<string, { data: Float32Array; dims: number[] }> = {};
  for (const [k, v] of Object.entries(out))
    res[k] = { data: v.data as Float32Array, dims: v.dims.slice() as number[] };
  return res;
}

export { ort };
