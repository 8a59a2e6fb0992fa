/**
 * What `dif-fuse serve` does with an uploaded pair: decode it in memory (headers and pixel
 * limit first, then pixels), fuse it with the chosen method through the CLI's pipeline (one
 * opened fuser, so one ONNX Runtime session, per method, each behind a one-at-a-time lane),
 * encode the PNG and compute the metrics against the sources.
 */
import {
  checkPixelLimit,
  decodeImage,
  decodeImageHeader,
  floatToImage,
  formatError,
  type Image,
  ImageTooLargeError,
  imageToFloat,
  type Mat3,
  megapixels,
  pixelScale,
  toGray,
} from '@dif-fusion/io';
import type { Image8, MetricValues } from '@dif-fusion/metrics';
import sharp from 'sharp';
import { alignPair, checkImage, describeTransform } from '../align/apply';
import { FuseError } from '../errors';
import { fuseImages, type OpenedFuser, type OpenOptions, openFuser } from '../fuse';
import { infraredToPlanar, type Planar } from '../images';
import { isBaseline, METHODS, type Method } from '../methods';
import { evaluateInThread, registerInThread } from './eval-thread';
import { Lane, type Ticket } from './queue';

/** An HTTP-facing error: one line for the page, and its status code. */
export class ServeError extends FuseError {
  constructor(
    message: string,
    readonly status = 400,
  ) {
    super(message);
  }
}

export interface Upload {
  /** The name the browser sent (shown in errors, never used as a path). */
  filename: string;
  data: Buffer;
}

export interface DecodedPair {
  ir: Planar;
  vis: Planar;
  /** 8-bit interleaved copies for the metrics. */
  ir8: Image8;
  vis8: Image8;
  /** Aligned pairs: puts the infrared back where the visible camera saw nothing. */
  finish?: (fused: Planar) => Planar;
  /** Aligned pairs: what was done (one line). */
  note?: string;
}

/** How an uploaded pair is aligned: registered here, resized, or a given vis -> ir matrix. */
export type AlignRequest = 'auto' | 'resize' | Mat3;

/** The `align` field of a request: auto, resize, or a JSON array of 9 numbers (row-major vis -> ir). */
export function parseAlign(v: string | undefined): AlignRequest | undefined {
  if (v === undefined || v === '' || v === 'none') return undefined;
  if (v === 'auto' || v === 'resize') return v;
  let m: unknown;
  try {
    m = JSON.parse(v);
  } catch {
    m = undefined;
  }
  if (
    !Array.isArray(m) ||
    m.length !== 9 ||
    !m.every((x) => typeof x === 'number' && Number.isFinite(x))
  )
    throw new ServeError(
      `align must be auto, resize or a JSON array of 9 numbers (the row-major visible -> infrared matrix), not "${v.slice(0, 40)}"`,
    );
  return m as Mat3;
}

/** The result of an align step: the transform, its quality and the check image. */
export interface AlignOutcome {
  visToIr: Mat3;
  /** "scale ..., rotation ... deg, shift (...) px". */
  transform: string;
  /** Edge correlation over the overlap before (frames stretched) and after. */
  scoreBefore: number | null;
  scoreAfter: number | null;
  /** Share of the infrared frame the visible image covers. */
  coverage: number;
  irSize: [number, number];
  visSize: [number, number];
  /** Infrared | visible checkerboard on the infrared grid. */
  check: Image8;
}

/**
 * Estimates the vis -> ir transform of a decoded pair (`auto`: in a worker thread; `resize`:
 * from the sizes). An unreliable estimate is a 422 naming the reason, never a silent bad warp.
 */
export async function estimateAlignment(
  pair: DecodedPair,
  how: 'auto' | 'resize',
  names: { ir: string; vis: string },
): Promise<AlignOutcome> {
  const { ir, vis } = pair;
  let visToIr: Mat3;
  let before: number | null = null;
  let after: number | null = null;
  let coverage: number;
  if (how === 'resize') {
    visToIr = pixelScale(ir.width / vis.width, ir.height / vis.height);
    coverage = 1;
  } else {
    const r = await registerInThread({ ir: toGray(ir), vis: toGray(vis) });
    if (!r.reliable)
      throw new ServeError(
        `${names.vis} cannot be aligned with ${names.ir}: ${r.reason}; use a pair with more common structure, or calibrate the rig with dif-fuse align (--points for hand-picked points)`,
        422,
      );
    visToIr = r.visToIr;
    before = r.scoreBefore;
    after = r.scoreAfter;
    coverage = r.overlap;
  }
  return {
    visToIr,
    transform: describeTransform(visToIr),
    scoreBefore: before,
    scoreAfter: after,
    coverage,
    irSize: [ir.width, ir.height],
    visSize: [vis.width, vis.height],
    check: planarTo8(checkImage(ir, vis, visToIr)),
  };
}

/** The pair with its visible image warped onto the infrared grid (and its 8-bit copies). */
export function alignDecoded(
  pair: DecodedPair,
  visToIr: Mat3,
  how: string,
  visName: string,
): DecodedPair {
  let a: ReturnType<typeof alignPair>;
  try {
    a = alignPair(pair.ir, pair.vis, visToIr, 'ir', false, how, visName);
  } catch (err) {
    throw new ServeError(formatError(err));
  }
  return {
    ir: a.ir,
    vis: a.vis,
    ir8: planarTo8(a.ir),
    vis8: planarTo8(a.vis),
    finish: a.finish,
    note: a.note,
  };
}

/** A file name fit for a one-line message: its last path segment, printable, at most 80 characters. */
export function displayName(name: string | undefined, role: string): string {
  const base = (name ?? '').split(/[\\/]/).pop() ?? '';
  // biome-ignore lint/suspicious/noControlCharactersInRegex: strips control characters from a user-supplied name
  const clean = base.replace(/[\u0000-\u001f\u007f]/g, '').slice(0, 80);
  return clean ? `${clean} (${role})` : `the ${role} image`;
}

function to8(img: Image): Image8 {
  const f = floatToImage(imageToFloat(img), 8);
  return { data: f.data as Uint8Array, width: f.width, height: f.height, channels: f.channels };
}

function planarTo8(p: Planar): Image8 {
  const f = floatToImage(p, 8);
  return { data: f.data as Uint8Array, width: f.width, height: f.height, channels: f.channels };
}

/**
 * Decodes an uploaded pair: both headers are read and compared, and checked against
 * `maxPixels`, before any pixel is decoded. Errors are ServeErrors naming the upload.
 */
export async function decodePair(
  irUp: Upload,
  visUp: Upload,
  maxPixels: number,
  /** The pair will be aligned: its sizes may differ. */
  aligning = false,
  /** Called with the pair's pixel count once the headers passed, before any pixel is decoded. */
  beforeDecode?: (pixels: number) => void,
): Promise<DecodedPair> {
  const irName = displayName(irUp.filename, 'infrared');
  const visName = displayName(visUp.filename, 'visible');
  try {
    const [hi, hv] = await Promise.all([
      decodeImageHeader(irUp.data, irName),
      decodeImageHeader(visUp.data, visName),
    ]);
    checkPixelLimit(hi, irName, maxPixels);
    checkPixelLimit(hv, visName, maxPixels);
    if (!aligning && (hi.width !== hv.width || hi.height !== hv.height))
      throw new ServeError(
        `size mismatch: ${irName} is ${hi.width}x${hi.height} but ${visName} is ${hv.width}x${hv.height}: align the pair first (the page's Align step; the API's field align=auto, resize or the 9 numbers of a vis -> ir matrix)`,
      );
    beforeDecode?.(Math.max(hi.width * hi.height, hv.width * hv.height));
    const irImg = await decodeImage(irUp.data, irName, { channels: 1, maxPixels });
    const visImg = await decodeImage(visUp.data, visName, { channels: 3, maxPixels });
    const ir = infraredToPlanar(irImg);
    return { ir, vis: imageToFloat(visImg), ir8: planarTo8(ir), vis8: to8(visImg) };
  } catch (err) {
    if (err instanceof ServeError) throw err;
    if (err instanceof ImageTooLargeError)
      throw new ServeError(
        `${err.message} (this server takes at most ${megapixels(maxPixels)} MP per image; dif-fuse serve --max-pixels raises it)`,
        413,
      );
    throw new ServeError(formatError(err));
  }
}

/** Decodes an uploaded fused image (3 channels) for /api/eval. */
export async function decodeFused(up: Upload, maxPixels: number): Promise<Image8> {
  const name = displayName(up.filename, 'fused');
  try {
    return to8(await decodeImage(up.data, name, { channels: 3, maxPixels }));
  } catch (err) {
    if (err instanceof ImageTooLargeError) throw new ServeError(err.message, 413);
    throw new ServeError(formatError(err));
  }
}

/** The metrics of a fused image against its sources, computed in a worker thread. */
export function metricsOf(pair: DecodedPair, fused8: Image8): Promise<MetricValues> {
  if (fused8.width !== pair.ir8.width || fused8.height !== pair.ir8.height)
    throw new ServeError(
      `size mismatch: the fused image is ${fused8.width}x${fused8.height} but the sources are ${pair.ir8.width}x${pair.ir8.height}`,
    );
  return evaluateInThread(pair.ir8, pair.vis8, fused8);
}

export async function encodePng(img: Image8): Promise<Buffer> {
  return sharp(Buffer.from(img.data.buffer, img.data.byteOffset, img.data.byteLength), {
    raw: { width: img.width, height: img.height, channels: img.channels as 1 | 3 },
  })
    .png()
    .toBuffer();
}

export function parseMethod(v: string | undefined, field: string, fallback: Method): Method {
  if (v === undefined || v === '') return fallback;
  if (!(METHODS as readonly string[]).includes(v))
    throw new ServeError(`unknown ${field} "${v.slice(0, 40)}": use ${METHODS.join(', ')}`);
  return v as Method;
}

export interface FuseOutcome {
  method: Method;
  fused: Image8;
  ms: number;
  /** Tiles the image was fused in (1: whole). */
  tiles: number;
}

export interface EngineOptions extends Pick<OpenOptions, 'model' | 'device' | 'threads' | 'seed'> {
  /** Called when a fusion is tiled, with the reason in words (as the CLI's "tiling:" line). */
  onTiling?: (why: string) => void;
}

/**
 * Opened methods, each with its lane. The model is opened on first use and stays open (one
 * ONNX Runtime session); a failed open is retried by the next request.
 */
export class Engine {
  private readonly opened = new Map<Method, Promise<OpenedFuser>>();
  /** One lane per method, one ('eval') for /api/eval's metrics, one ('align') for registrations. */
  private readonly lanes = new Map<Method | 'eval' | 'align', Lane>();
  /** Milliseconds per megapixel of the last run of each method, for the page's estimate. */
  private readonly msPerMp = new Map<Method, number>();

  private draining: (() => Error) | undefined;

  constructor(readonly options: EngineOptions = {}) {}

  lane(method: Method | 'eval' | 'align'): Lane {
    let l = this.lanes.get(method);
    if (!l) {
      l = new Lane();
      if (this.draining) void l.drain(this.draining);
      this.lanes.set(method, l);
    }
    return l;
  }

  /** Requests waiting in every lane. */
  waiting(): number {
    let n = 0;
    for (const l of this.lanes.values()) n += l.length;
    return n;
  }

  /** Tasks running in every lane. */
  running(): number {
    let n = 0;
    for (const l of this.lanes.values()) if (l.busy) n++;
    return n;
  }

  /** The metrics of an uploaded fused image, in the eval lane (one at a time, off the event loop). */
  evaluate(
    pair: DecodedPair,
    fused8: Image8,
    onTicket?: (t: Ticket) => void,
  ): Promise<MetricValues> {
    return this.lane('eval').run(() => metricsOf(pair, fused8), onTicket);
  }

  /**
   * Stops taking work: waiting tasks are refused with `reason()` (503 for the page), later
   * ones too; resolves once the running tasks have finished.
   */
  async drain(reason: () => Error): Promise<void> {
    this.draining = reason;
    await Promise.all([...this.lanes.values()].map((l) => l.drain(reason)));
  }

  /** The align step of an uploaded pair, in the align lane (one registration at a time, off the event loop). */
  align(
    pair: DecodedPair,
    how: 'auto' | 'resize',
    names: { ir: string; vis: string },
  ): Promise<AlignOutcome> {
    return this.lane('align').run(() => estimateAlignment(pair, how, names));
  }

  estimateMs(method: Method, pixels: number): number | undefined {
    const r = this.msPerMp.get(method);
    return r === undefined ? undefined : (r * pixels) / 1e6;
  }

  open(method: Method): Promise<OpenedFuser> {
    let p = this.opened.get(method);
    if (!p) {
      p = openFuser({
        method,
        ...(isBaseline(method) ? {} : this.options),
        seed: this.options.seed,
      });
      this.opened.set(method, p);
      p.catch(() => this.opened.delete(method));
    }
    return p;
  }

  /**
   * Fuses a decoded pair with `method` in its lane. `onTicket` gets the place in the queue at
   * once; `onStart` and `onProgress` (tiles done of total) follow while it runs.
   */
  fuse(
    pair: DecodedPair,
    method: Method,
    hooks: {
      onTicket?: (t: Ticket) => void;
      onStart?: () => void;
      onProgress?: (done: number, total: number) => void;
    } = {},
  ): Promise<FuseOutcome> {
    return this.lane(method).run(async () => {
      hooks.onStart?.();
      let opened: OpenedFuser;
      try {
        opened = await this.open(method);
      } catch (err) {
        throw new ServeError(`cannot open the ${method}: ${formatError(err)}`, 500);
      }
      const t0 = performance.now();
      let tiles = 1;
      // As the CLI's default (--tile auto): the whole image when the model's estimate fits
      // the memory available now, else the largest tiles that fit, blended.
      let fused = await fuseImages(pair.ir, pair.vis, opened, {
        tile: 'auto',
        onTiling: this.options.onTiling,
        onProgress: (done, total) => {
          tiles = total;
          hooks.onProgress?.(done, total);
        },
      });
      if (pair.finish) fused = pair.finish(fused);
      const ms = performance.now() - t0;
      this.msPerMp.set(method, (ms * 1e6) / (fused.width * fused.height));
      return { method, fused: planarTo8(fused), ms, tiles };
    }, hooks.onTicket);
  }

  async close(): Promise<void> {
    const all = [...this.opened.values()];
    this.opened.clear();
    await Promise.allSettled(all.map(async (p) => (await p).release()));
  }
}
