/**
 * Fusion model folders at run time: validation with one-line errors, a warm ORT session
 * reused across calls, and the deterministic noise a seed stands for.
 */
import { existsSync, readFileSync, statSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { DifFusionError, fusionNoise, imageNoise } from '@dif-fusion/schedules';
import { checkModelFile } from './model-check';
import {
  type FusionModelConfig,
  type HeadBlock,
  MODEL_FORMAT,
  MODEL_FORMAT_VERSION,
  type NetworkBlock,
} from './model-config';

/**
 * The fusion noise for a seed (defined in @dif-fusion/schedules): `imageNoise`, drawn in 64x64
 * cells so that a tiled fusion sees the same noise as a whole one; `fusionNoise` is the plain
 * row-major draw, kept for inputs built by hand.
 */
export { fusionNoise, imageNoise };

import { type Device, OnnxRuntimeError, openSession, ort, type SessionOptions } from './session';
import { graphDigest, makeDirs, writeAtomic } from './write';

export { OnnxRuntimeError } from './session';

/** A problem with a model folder; `message` is one line naming the folder. */
export class ModelFolderError extends DifFusionError {}

export const MODEL_FILE = 'model.onnx';
export const CONFIG_FILE = 'config.json';

/**
 * Parses the network blocks of config.json (`unet`, `head`) with the networks' own parsers
 * (old key names read; throws a one-line Error on a bad block), e.g. @dif-fusion/fusion-head's
 * `parseFusionBlocks`. It keeps the head's time steps.
 */
export type BlocksParser<U extends object, H extends { time_steps: number[] }> = (blocks: {
  unet: NetworkBlock;
  head: HeadBlock;
}) => { unet: U; head: H };

/**
 * Check a model folder before ONNX Runtime sees it and return its config: the folder and
 * both files exist, config.json parses and has the fields the runtime needs. The `unet` and
 * `head` blocks are returned as written (the head's time steps checked), or as `blocks`
 * parses them: this package knows no network.
 */
export function readModelConfig(dir: string): FusionModelConfig;
export function readModelConfig<U extends object, H extends { time_steps: number[] }>(
  dir: string,
  blocks: BlocksParser<U, H>,
): FusionModelConfig<U, H>;
export function readModelConfig(
  dir: string,
  blocks?: BlocksParser<object, { time_steps: number[] }>,
): FusionModelConfig<object, { time_steps: number[] }> {
  const d = resolve(dir);
  const bad = (why: string): never => {
    throw new ModelFolderError(`model folder ${d} is invalid: ${why}`);
  };
  if (!existsSync(d)) throw new ModelFolderError(`model folder ${d} does not exist`);
  if (!statSync(d).isDirectory()) throw new ModelFolderError(`model folder ${d} is not a folder`);
  for (const f of [MODEL_FILE, CONFIG_FILE]) if (!existsSync(join(d, f))) bad(`${f} is missing`);
  let json: any;
  try {
    json = JSON.parse(readFileSync(join(d, CONFIG_FILE), 'utf8'));
  } catch (e) {
    bad(`${CONFIG_FILE} is not valid JSON (${(e as Error).message.split('\n')[0]})`);
  }
  if (typeof json !== 'object' || json === null || Array.isArray(json))
    bad(`${CONFIG_FILE} is not a JSON object`);
  if (json.format !== MODEL_FORMAT)
    bad(
      `${CONFIG_FILE} is not a dif-fusion model config (format is ${JSON.stringify(json.format)}, expected "${MODEL_FORMAT}")`,
    );
  const version = json.format_version;
  if (!Number.isInteger(version) || version < 1)
    bad(
      `${CONFIG_FILE}: format_version must be a positive integer, got ${JSON.stringify(version)}`,
    );
  if (version > MODEL_FORMAT_VERSION)
    bad(
      `${CONFIG_FILE} has format_version ${version}, this version of dif-fusion reads ${MODEL_FORMAT_VERSION} (update @dif-fusion/fuser)`,
    );
  if (typeof json.unet !== 'object' || json.unet === null)
    bad(`${CONFIG_FILE}: unet config missing`);
  if (typeof json.head !== 'object' || json.head === null)
    bad(`${CONFIG_FILE}: head config missing`);
  // The head block is the one source of the time steps and the mode. Folders of format_version
  // 1 repeat them at the top level (`time_steps`, `head_mode`; a head block without time
  // steps has them there only): read into the head block, refused when the time steps
  // disagree (they size the noise input); `head_mode` was never read.
  if (json.time_steps !== undefined) {
    const own = json.head.time_steps ?? json.head.t;
    if (own === undefined) json.head = { ...json.head, time_steps: json.time_steps };
    else if (JSON.stringify(own) !== JSON.stringify(json.time_steps))
      bad(
        `${CONFIG_FILE}: time_steps ${JSON.stringify(json.time_steps)} differs from head.time_steps ${JSON.stringify(own)}`,
      );
  }
  if (json.head_mode !== undefined && json.head.mode === undefined)
    json.head = { ...json.head, mode: json.head_mode };
  delete json.time_steps;
  delete json.head_mode;
  const steps = json.head.time_steps ?? json.head.t;
  if (
    !Array.isArray(steps) ||
    steps.length === 0 ||
    !steps.every((t: unknown) => Number.isInteger(t))
  )
    bad(`${CONFIG_FILE}: head.time_steps must be a non-empty list of integers`);
  // `t` (the official fusion config's name) read as time_steps: the noise input's first axis
  if (json.head.time_steps === undefined) json.head = { ...json.head, time_steps: steps };
  const levels = json.noise_levels;
  if (
    !Array.isArray(levels) ||
    levels.length !== steps.length ||
    !levels.every((l: unknown) => typeof l === 'number' && l > 0 && l <= 1)
  )
    bad(`${CONFIG_FILE}: noise_levels must hold one level in (0, 1] per time step`);
  // The networks' own parsers, given by the caller: one definition of each block.
  if (blocks) {
    let parsed: { unet: object; head: { time_steps: number[] } };
    try {
      parsed = blocks({ unet: json.unet, head: json.head });
    } catch (e) {
      return bad(`${CONFIG_FILE}: ${(e as Error).message.split('\n')[0]}`);
    }
    if (JSON.stringify(parsed.head.time_steps) !== JSON.stringify(steps))
      bad(`${CONFIG_FILE}: the head parser changed the time steps`);
    json.unet = parsed.unet;
    json.head = parsed.head;
  }
  if (!Number.isInteger(json.size_multiple) || json.size_multiple < 1)
    bad(`${CONFIG_FILE}: size_multiple must be a positive integer`);
  if (json.precision !== undefined && json.precision !== 'fp32' && json.precision !== 'int8')
    bad(
      `${CONFIG_FILE}: precision must be "fp32" or "int8", got ${JSON.stringify(json.precision)}`,
    );
  return json;
}

export interface FuseInput {
  /** Infrared, planar [n, 1, height, width], in [-1, 1]. */
  ir: Float32Array;
  /** Visible, planar [n, 3, height, width], in [-1, 1]. */
  vis: Float32Array;
  /**
   * Gaussian noise [K, n, 4, height, width]. Default: `imageNoise(seed, ...)`, the noise
   * `dif-fuse --seed` uses (whole or tiled), so the same inputs and seed give the same output
   * here and on the command line.
   */
  noise?: Float32Array;
  /** Seed of the noise when `noise` is not given (default 0). */
  seed?: number;
  n: number;
  height: number;
  width: number;
}

export interface FusionModel<
  U extends object = NetworkBlock,
  H extends { time_steps: number[] } = HeadBlock,
> {
  readonly dir: string;
  readonly config: FusionModelConfig<U, H>;
  /** The execution provider that actually runs the graph. */
  readonly provider: 'cuda' | 'cpu';
  /** With `cacheDir`: the optimised CPU graph was read from the cache, or written to it. */
  readonly sessionCache?: 'read' | 'written';
  /** The warm ONNX Runtime session (advanced use: profiling, metadata). */
  readonly session: ort.InferenceSession;
  /** Fused image, planar [n, 3, height, width] in [-1, 1]. */
  fuse(input: FuseInput): Promise<Float32Array>;
  /** Free the session. */
  release(): Promise<void>;
}

export interface LoadOptions<
  U extends object = NetworkBlock,
  H extends { time_steps: number[] } = HeadBlock,
> {
  device?: Device;
  /** CPU intra-op threads (default: ORT's choice). */
  threads?: number;
  /** Called once with a line naming the provider that runs the graph (e.g. to print it). */
  log?: (line: string) => void;
  /** Extra ONNX Runtime session options (e.g. `{ enableProfiling: true }`). */
  ort?: SessionOptions['ort'];
  /**
   * A folder for ONNX Runtime's optimised CPU graph of this model (keyed by its graph
   * SHA-256, ORT's version and the machine): later loads skip the optimiser, with
   * bit-identical outputs (SessionOptions.optimizedCache). Off when not given.
   */
  cacheDir?: string;
  /**
   * The networks' parsers of config.json's `unet` and `head` blocks (`readModelConfig`);
   * without, `config` holds them as written.
   */
  blocks?: BlocksParser<U, H>;
}

const EXPECTED_INPUTS = ['ir', 'vis', 'noise'];

/**
 * The record, in a cache folder, that the graph with this SHA-256 passed `checkModelFile`
 * (finite weights, the time steps of its metadata) and opened: `<sha>.checked.json` holding
 * the time steps it was checked against. A config.json edited since (other time steps) is
 * checked again.
 *
 * It also lists the model files (model.onnx and model.onnx.data, by absolute path) that were
 * hashed to this SHA-256, each with its size, inode, mtime and ctime: a file whose figures are
 * all unchanged is not read and hashed again (as make or git's index trust a file's stat).
 * Reading and hashing the paper's 1.6 GB model.onnx took 2-4 CPU-s of every command, and
 * ONNX Runtime reads its optimised graph from the cache anyway. Any write to the file, or a
 * file moved in its place, changes its ctime or inode: it is hashed again.
 */
interface CheckedRecord {
  time_steps: number[];
  files?: Record<string, string>;
}

function checkedRecordPath(cacheDir: string, sha: string): string {
  return join(cacheDir, `${sha}.checked.json`);
}

function readCheckedRecordFile(cacheDir: string, sha: string): CheckedRecord | undefined {
  try {
    const r = JSON.parse(readFileSync(checkedRecordPath(cacheDir, sha), 'utf8'));
    return r && typeof r === 'object' && Array.isArray(r.time_steps) ? r : undefined;
  } catch {
    return undefined;
  }
}

function readCheckedRecord(cacheDir: string, sha: string, timeSteps: number[]): boolean {
  const r = readCheckedRecordFile(cacheDir, sha);
  return r !== undefined && JSON.stringify(r.time_steps) === JSON.stringify(timeSteps);
}

/** A file's size, inode, mtime and ctime (ns), or 'none' when it does not exist. */
export function fileStamp(path: string): string {
  try {
    const s = statSync(path, { bigint: true });
    return `${s.size}:${s.dev}:${s.ino}:${s.mtimeNs}:${s.ctimeNs}`;
  } catch {
    return 'none';
  }
}

/** At most this many model paths per record (copies of one graph in several folders). */
const RECORD_FILES = 16;

function writeCheckedRecord(
  cacheDir: string,
  sha: string,
  timeSteps: number[],
  stamps: Record<string, string> = {},
): void {
  try {
    makeDirs(cacheDir);
    const before = readCheckedRecordFile(cacheDir, sha);
    const files = Object.entries({ ...before?.files, ...stamps }).slice(-RECORD_FILES);
    const record: CheckedRecord = { time_steps: timeSteps };
    if (files.length) record.files = Object.fromEntries(files);
    writeAtomic(checkedRecordPath(cacheDir, sha), [
      new TextEncoder().encode(`${JSON.stringify(record)}\n`),
    ]);
  } catch {
    // best effort, as the optimised-graph cache
  }
}

/** Open a model folder: validate it, create one warm session (CUDA or CPU). */
export async function loadFusionModel<
  U extends object = NetworkBlock,
  H extends { time_steps: number[] } = HeadBlock,
>(dir: string, options: LoadOptions<U, H> = {}): Promise<FusionModel<U, H>> {
  const d = resolve(dir);
  const config = (
    options.blocks ? readModelConfig(d, options.blocks) : readModelConfig(d)
  ) as FusionModelConfig<U, H>;
  const modelPath = join(d, MODEL_FILE);
  const data = join(d, `${MODEL_FILE}.data`);
  const bound = typeof config.graph_sha256 === 'string';
  // The files of a folder loaded before, unchanged since (the record's stamps): not read and
  // hashed again (see CheckedRecord).
  const stamps = { [modelPath]: fileStamp(modelPath), [data]: fileStamp(data) };
  const record =
    bound && options.cacheDir
      ? readCheckedRecordFile(options.cacheDir, config.graph_sha256!)
      : undefined;
  const unchanged =
    record !== undefined &&
    JSON.stringify(record.time_steps) === JSON.stringify(config.head.time_steps) &&
    stamps[modelPath] !== 'none' &&
    record.files?.[modelPath] === stamps[modelPath] &&
    record.files?.[data] === stamps[data];
  let bytes: Uint8Array | undefined;
  if (!unchanged)
    try {
      bytes = readFileSync(modelPath);
    } catch (e) {
      throw new ModelFolderError(
        `model folder ${d} is invalid: ${MODEL_FILE} cannot be read (${(e as Error).message.split('\n')[0]})`,
      );
    }
  const found = unchanged
    ? config.graph_sha256
    : bound
      ? graphDigest(bytes!, existsSync(data) ? [readFileSync(data)] : [])
      : undefined;
  // A graph this machine has checked and opened before (a record in the cache folder, by its
  // SHA-256) is not decoded and scanned again: ~0.1-0.3 s of every dif-fuse command.
  const checkedBefore =
    unchanged ||
    (bound && found === config.graph_sha256 && options.cacheDir
      ? readCheckedRecord(options.cacheDir, found!, config.head.time_steps)
      : false);
  let problems: string[] = [];
  let parsed = checkedBefore;
  if (!checkedBefore)
    try {
      problems = checkModelFile(bytes!, modelPath, config.head.time_steps);
      parsed = true;
    } catch {
      // not a protobuf ONNX Runtime can read either: its own message follows below
    }
  if (problems.length) throw new ModelFolderError(`model folder ${d} is invalid: ${problems[0]}`);
  // config.json is bound to the graph it was exported with (graph_sha256, written by
  // writeModelFolder); folders exported before that field existed load as they are.
  if (parsed && bound && found !== config.graph_sha256)
    throw new ModelFolderError(
      `model folder ${d} is invalid: ${CONFIG_FILE} belongs to another ${MODEL_FILE} (graph sha256 ${config.graph_sha256!.slice(0, 12)}… in ${CONFIG_FILE}, ${found!.slice(0, 12)}… on disk); export the folder again`,
    );

  let opened: Awaited<ReturnType<typeof openSession>>;
  // the cache key: the graph's SHA-256 (weights in external data included, from config.json)
  const key =
    typeof config.graph_sha256 === 'string'
      ? config.graph_sha256
      : parsed && !existsSync(data)
        ? graphDigest(bytes!, [])
        : undefined;
  try {
    // by path: external data sits beside it
    opened = await openSession(modelPath, {
      ...options,
      optimizedCache: options.cacheDir && key ? { dir: options.cacheDir, key } : undefined,
    });
  } catch (e) {
    if (e instanceof OnnxRuntimeError && /could not load the model/.test(e.message))
      throw new ModelFolderError(
        `model folder ${d} is invalid: ${MODEL_FILE} ${e.message.replace(/^ONNX Runtime could not load the model: /, 'does not load: ')}`,
      );
    throw e;
  }
  const { session, provider, cache: sessionCache } = opened;
  options.log?.(
    `ONNX Runtime provider: ${provider}${options.device === 'auto' || options.device === undefined ? ' (auto)' : ''}`,
  );
  const inputs = session.inputNames.slice().sort();
  if (
    inputs.join(',') !== EXPECTED_INPUTS.slice().sort().join(',') ||
    !session.outputNames.includes('fused')
  ) {
    await session.release();
    throw new ModelFolderError(
      `model folder ${d} is invalid: ${MODEL_FILE} has inputs [${session.inputNames.join(', ')}] and outputs [${session.outputNames.join(', ')}], expected inputs [ir, vis, noise] and output fused`,
    );
  }
  // recorded: the graph checked (when it was), and this folder's files as hashed just now
  if (!unchanged && parsed && bound && options.cacheDir)
    writeCheckedRecord(options.cacheDir, found!, config.head.time_steps, stamps);
  const k = config.head.time_steps.length;
  const multiple = config.size_multiple;
  let released = false;
  return {
    dir: d,
    config,
    provider,
    sessionCache,
    session,
    async fuse(input: FuseInput): Promise<Float32Array> {
      if (released) throw new OnnxRuntimeError('fuse() called after release()');
      const { n, height: h, width: w } = input;
      for (const [name, v] of [
        ['n', n],
        ['height', h],
        ['width', w],
      ] as const)
        if (!Number.isInteger(v) || v < 1)
          throw new RangeError(`fuse: ${name} must be a positive integer, got ${v}`);
      if (h % multiple !== 0 || w % multiple !== 0)
        throw new RangeError(
          `fuse: height and width must be multiples of ${multiple}, got ${h}x${w} (pad first)`,
        );
      const px = h * w;
      const want = (name: string, arr: Float32Array, len: number, shape: string) => {
        if (!(arr instanceof Float32Array))
          throw new TypeError(`fuse: ${name} must be a Float32Array`);
        if (arr.length !== len)
          throw new RangeError(
            `fuse: ${name} has ${arr.length} values, expected ${len} (${shape})`,
          );
      };
      want('ir', input.ir, n * px, `[${n},1,${h},${w}]`);
      want('vis', input.vis, n * 3 * px, `[${n},3,${h},${w}]`);
      let noise = input.noise;
      if (noise === undefined) {
        const seed = input.seed ?? 0;
        if (!Number.isInteger(seed))
          throw new RangeError(`fuse: seed must be an integer, got ${seed}`);
        noise = imageNoise(seed, { k, n, height: h, width: w });
      }
      want('noise', noise, k * n * 4 * px, `[${k},${n},4,${h},${w}]`);
      const feeds = {
        ir: new ort.Tensor('float32', input.ir, [n, 1, h, w]),
        vis: new ort.Tensor('float32', input.vis, [n, 3, h, w]),
        noise: new ort.Tensor('float32', noise, [k, n, 4, h, w]),
      };
      let out: Awaited<ReturnType<typeof session.run>>;
      try {
        out = await session.run(feeds);
      } catch (e) {
        // The graph's shapes disagree with config.json (time steps, size multiple): say which
        // folder, in one line, instead of ONNX Runtime's node-level message.
        const first = (e instanceof Error ? e.message : String(e)).split('\n')[0].trim();
        throw new ModelFolderError(
          `model folder ${d}: model.onnx failed on a ${h}x${w} input with ${k} time step(s) and size multiple ${multiple} from config.json; does config.json belong to this model.onnx? (${first})`,
        );
      }
      const fused = out.fused;
      // A graph that pads to a larger multiple than config.json's size_multiple says returns
      // a larger image: name the folder instead of failing later on a buffer size.
      if (fused.data.length !== n * 3 * px)
        throw new ModelFolderError(
          `model folder ${d}: model.onnx returned fused [${fused.dims.join(',')}] for a ${h}x${w} input, expected [${n},3,${h},${w}]; config.json's size_multiple ${multiple} does not match the model (does config.json belong to this model.onnx?)`,
        );
      // onnxruntime-node hands back a fresh JS-owned buffer per run: no copy needed.
      return fused.data as Float32Array;
    },
    async release(): Promise<void> {
      if (released) return;
      released = true;
      await session.release();
    },
  };
}
