/**
 * `dif-fuse serve`: a fastify server with the page and its API.
 *
 *   GET  /                      the page (and /app.js, /style.css, /samples/{ir,vi}.png)
 *   GET  /api/info              methods, limits, queue length
 *   POST /api/jobs              multipart ir, vis, method, baseline -> 202 {id, place}
 *   GET  /api/jobs/:id          {state, place, progress, ...; metrics when done}
 *   GET  /api/jobs/:id/fused.png, /api/jobs/:id/baseline.png
 *   POST /api/fuse              multipart ir, vis, method -> the fused PNG
 *   POST /api/eval              multipart ir, vis, fused -> {width, height, metrics}
 *   POST /api/align             multipart ir, vis, mode (auto|resize) -> {visToIr, transform,
 *                               scoreBefore, scoreAfter, coverage, irSize, visSize, check (PNG
 *                               data URL)}: the align step of a rig's pair, before fusing
 *
 * The pair endpoints take a field `align` (auto, resize, or the JSON array of a vis -> ir
 * matrix, as /api/align returns it): the visible image is warped onto the infrared grid first,
 * so the two may differ in size; without it they must be one size.
 *
 * Uploads are held in memory (bounded by the size limit) and never written to disk; errors
 * are JSON `{error: "<one line>"}` with a 4xx/5xx status, never a stack trace.
 *
 * Nothing waits for ever: request headers must arrive within `headersTimeoutMs`, the whole
 * request within `requestTimeoutMs`, an upload that stalls for `idleTimeoutMs` is dropped,
 * an idle keep-alive connection is closed after `keepAliveTimeoutMs`; at most `maxUploads`
 * uploads are read at once and at most MAX_WAITING requests wait (uploads being read count,
 * so racing uploads cannot overshoot). `drain()` (SIGTERM) finishes the running work and
 * refuses the rest with 503.
 */

import { randomUUID } from 'node:crypto';
import type http from 'node:http';
import { formatError } from '@dif-fusion/io';
import { METRIC_NAMES, type MetricValues } from '@dif-fusion/metrics';
import multipart from '@fastify/multipart';
import Fastify, { type FastifyInstance, type FastifyRequest } from 'fastify';
import { gb, memoryBudget } from '../memory';
import { BASELINES, METHODS, type Method } from '../methods';
import { loadAssets } from './assets';
import {
  alignDecoded,
  type DecodedPair,
  decodeFused,
  decodePair,
  displayName,
  Engine,
  type EngineOptions,
  encodePng,
  metricsOf,
  parseAlign,
  parseMethod,
  ServeError,
  type Upload,
} from './engine';
import type { Ticket } from './queue';

export const DEFAULT_MAX_UPLOAD_MB = 50;
/**
 * Bytes a request holds per pixel of its pair, from decoding to the encoded result: the
 * decoded pair (planar float IR + RGB, 8-bit copies: 20 B), the fused planar image and the
 * tile blender's sums (28 B), its 8-bit copy and PNG, and the metrics' working arrays in their
 * thread (~60 B), rounded up. The model's own working memory is apart: tiling keeps it within
 * what is available when the fusion starts (as the CLI's --tile auto).
 */
export const SERVE_BYTES_PER_PIXEL = 120;
/** The default pixel limit is never below this (the old fixed default) ... */
export const SERVE_MIN_MP = 4;
/** ... nor above this (a 24 MP camera photo); `--max-pixels` sets any limit. */
export const SERVE_MAX_MP = 24;

/**
 * The default largest image, in pixels: what two requests of that size hold at once fits the
 * memory budget (`memoryBytes`, default: the CLI's --tile auto budget, a share of the memory
 * available now, under the cgroup limit if any), between SERVE_MIN_MP and SERVE_MAX_MP.
 * 12 MP photos need a budget of about 2.9 GB.
 */
export function defaultServeMaxPixels(memoryBytes = memoryBudget().bytes): number {
  const fit = Math.floor(memoryBytes / (2 * SERVE_BYTES_PER_PIXEL) / 1e5) * 1e5;
  return Math.max(SERVE_MIN_MP * 1e6, Math.min(SERVE_MAX_MP * 1e6, fit));
}
/** Requests that may wait at once; more are refused with 503 (each holds its decoded pair). */
export const MAX_WAITING = 16;
/** Finished jobs are kept this long for the page to fetch their images. */
const JOB_TTL_MS = 15 * 60_000;
const MAX_FINISHED_JOBS = 64;
export const DEFAULT_BASELINE: Method = 'ycbcr-max';
/** Time-outs and the limit on uploads in progress (defaults of `ServeOptions`). */
export const SERVE_LIMITS = {
  headersTimeoutMs: 20_000,
  requestTimeoutMs: 120_000,
  idleTimeoutMs: 15_000,
  keepAliveTimeoutMs: 5_000,
  maxUploads: 4,
};

export interface ServeOptions extends EngineOptions {
  /** Largest accepted file, bytes. */
  maxUploadBytes?: number;
  /** Largest accepted image, pixels (default: {@link defaultServeMaxPixels}). */
  maxPixels?: number;
  /**
   * Memory the limits are derived from, bytes (default: a share of what is available at
   * start-up, as the CLI's --tile auto budget): the default `maxPixels`, and the pixels the
   * requests waiting and running may hold together (`memoryBytes / SERVE_BYTES_PER_PIXEL`, at
   * least one `maxPixels` image); a pair past that gets 503 (busy) before it is decoded.
   */
  memoryBytes?: number;
  /** Folder of the page's built files (default: <package>/dist/public). */
  publicDir?: string;
  /** Host names accepted in the Host header besides localhost forms (DNS rebinding guard). */
  allowedHosts?: string[];
  /** Called with one line per server-side failure (default: none). */
  log?: (line: string) => void;
  /** The request line and headers must arrive within this (ms; default 20 s). */
  headersTimeoutMs?: number;
  /** The whole request, body included, must arrive within this (ms; default 120 s). */
  requestTimeoutMs?: number;
  /** An upload that sends nothing for this long is dropped (ms; default 15 s). */
  idleTimeoutMs?: number;
  /** An idle keep-alive connection is closed after this (ms; default 5 s). */
  keepAliveTimeoutMs?: number;
  /** Uploads read at once; more are refused with 503 before their body is read (default 4). */
  maxUploads?: number;
}

type JobState = 'queued' | 'running' | 'done' | 'error';

interface Job {
  id: string;
  method: Method;
  baseline?: Method;
  state: JobState;
  ticket?: Ticket;
  width: number;
  height: number;
  startedAt?: number;
  finishedAt?: number;
  progress: { done: number; total: number };
  estimateMs?: number;
  error?: string;
  ms?: number;
  fused?: Buffer;
  baselinePng?: Buffer;
  /** Aligned pairs: what was done, and the visible image on the infrared grid. */
  note?: string;
  visPng?: Buffer;
  metrics?: Record<string, MetricValues>;
}

interface Parsed {
  files: Map<string, Upload>;
  fields: Map<string, string>;
}

const FILE_FIELDS = new Set(['ir', 'vis', 'fused']);
const ROLE: Record<string, string> = { ir: 'infrared', vis: 'visible', fused: 'fused' };

function mb(bytes: number): string {
  return bytes >= 1e6
    ? `${Math.round((bytes / 1e6) * 10) / 10} MB`
    : `${Math.ceil(bytes / 1e3)} kB`;
}

/** Reads a multipart body: files into memory up to the size limit, fields as strings. */
async function readParts(req: FastifyRequest, maxBytes: number): Promise<Parsed> {
  if (!req.isMultipart())
    throw new ServeError(
      'send the images as multipart/form-data with file fields ir and vis (see the fuser README)',
      415,
    );
  const files = new Map<string, Upload>();
  const fields = new Map<string, string>();
  try {
    for await (const part of req.parts()) {
      if (files.has(part.fieldname) || fields.has(part.fieldname)) {
        if (part.type === 'file') part.file.resume();
        throw new ServeError(
          `the field "${part.fieldname.slice(0, 40)}" was sent twice: send each of ir, vis (fused), method once`,
        );
      }
      if (part.type === 'file') {
        if (!FILE_FIELDS.has(part.fieldname)) {
          part.file.resume();
          throw new ServeError(
            `unexpected file field "${part.fieldname.slice(0, 40)}": use ir, vis (and fused for /api/eval)`,
          );
        }
        try {
          files.set(part.fieldname, { filename: part.filename, data: await part.toBuffer() });
        } catch (err) {
          if ((err as { code?: string }).code === 'FST_REQ_FILE_TOO_LARGE')
            throw new ServeError(
              `${displayName(part.filename, ROLE[part.fieldname])}: file too large, this server takes at most ${mb(maxBytes)} per image`,
              413,
            );
          throw err;
        }
      } else fields.set(part.fieldname, String(part.value ?? ''));
    }
  } catch (err) {
    if (err instanceof ServeError || (err as { code?: string }).code?.startsWith('FST_')) throw err;
    // busboy's parse errors (a missing boundary, a truncated part, bad part headers) are the
    // client's: 400 with the parser's words.
    throw new ServeError(`malformed multipart body: ${formatError(err).split('\n')[0]}`);
  }
  return { files, fields };
}

function need(p: Parsed, field: 'ir' | 'vis' | 'fused'): Upload {
  const f = p.files.get(field);
  if (!f) throw new ServeError(`the ${ROLE[field]} image (file field "${field}") is missing`);
  return f;
}

/** One line for the page from any error: ours as they are, fastify's and multipart's reworded. */
function toHttpError(err: unknown): { status: number; message: string } {
  if (err instanceof ServeError) return { status: err.status, message: err.message };
  const e = err as { code?: string; statusCode?: number };
  switch (e.code) {
    case 'FST_FILES_LIMIT':
    case 'FST_PARTS_LIMIT':
    case 'FST_FIELDS_LIMIT':
      return { status: 413, message: 'too many parts: send the fields ir, vis (fused), method' };
    case 'FST_ERR_CTP_BODY_TOO_LARGE':
      return { status: 413, message: 'request body too large' };
    case 'FST_ERR_CTP_INVALID_MEDIA_TYPE':
      return { status: 415, message: 'unsupported content type: send multipart/form-data' };
  }
  const status = e.statusCode && e.statusCode >= 400 && e.statusCode < 600 ? e.statusCode : 500;
  return { status, message: formatError(err).split('\n')[0] };
}

const LOOPBACK = new Set(['localhost', '127.0.0.1', '[::1]', '::1']);

export interface Served {
  app: FastifyInstance;
  engine: Engine;
  /**
   * Stops taking work: new and waiting requests get 503 (the server is shutting down); resolves
   * when the running fusions have finished. `close` drains first.
   */
  drain(): Promise<void>;
  close(): Promise<void>;
}

export function createServer(options: ServeOptions = {}): Served {
  const maxBytes = options.maxUploadBytes ?? DEFAULT_MAX_UPLOAD_MB * 1e6;
  const memoryBytes = options.memoryBytes ?? memoryBudget().bytes;
  const maxPixels = options.maxPixels ?? defaultServeMaxPixels(memoryBytes);
  const heldLimit = Math.max(maxPixels, Math.floor(memoryBytes / SERVE_BYTES_PER_PIXEL));
  /** Pixels of the pairs decoded and not yet done with (waiting, running, being evaluated). */
  let held = 0;
  const assets = loadAssets(options.publicDir);
  const engine = new Engine({ ...options, onTiling: (why) => options.log?.(`tiling: ${why}`) });
  const jobs = new Map<string, Job>();
  const log = options.log ?? (() => {});
  const allowed = new Set([...LOOPBACK, ...(options.allowedHosts ?? [])]);

  const limits = { ...SERVE_LIMITS };
  for (const k of Object.keys(limits) as (keyof typeof SERVE_LIMITS)[])
    if (options[k] !== undefined) limits[k] = options[k];
  const app = Fastify({
    logger: false,
    bodyLimit: 1e6,
    requestTimeout: limits.requestTimeoutMs,
    keepAliveTimeout: limits.keepAliveTimeoutMs,
    http: {
      headersTimeout: Math.min(limits.headersTimeoutMs, limits.requestTimeoutMs),
      // How often Node checks the two time-outs above (its default, 30 s, would let a
      // short time-out run that much longer).
      connectionsCheckingInterval: Math.max(
        50,
        Math.min(1000, limits.headersTimeoutMs / 4, limits.requestTimeoutMs / 4),
      ),
    } as http.ServerOptions,
  });
  let uploads = 0;
  let reserved = 0;
  let draining = false;
  const shuttingDown = () => new ServeError('the server is shutting down; try again later', 503);
  app.register(multipart, {
    limits: { fileSize: maxBytes, files: 3, fields: 8, parts: 11, fieldSize: 1000 },
  });

  app.addHook('onRequest', async (req, reply) => {
    if (draining && req.method !== 'GET') {
      reply.header('Connection', 'close');
      throw shuttingDown();
    }
    // DNS rebinding guard: a page on another site cannot reach this server through a name
    // that resolves to 127.0.0.1 (its Host header would carry that name).
    const host = (req.headers.host ?? '').replace(/:\d+$/, '').toLowerCase();
    if (!allowed.has(host) && !allowed.has('*')) {
      reply.code(421).send({ error: `host ${host.slice(0, 60)} is not served here` });
      return reply;
    }
    reply.header('X-Content-Type-Options', 'nosniff');
    reply.header('Referrer-Policy', 'no-referrer');
    reply.header(
      'Content-Security-Policy',
      "default-src 'self'; img-src 'self' blob: data:; style-src 'self'; script-src 'self'; frame-ancestors 'none'",
    );
  });

  app.setErrorHandler((err, _req, reply) => {
    const { status, message } = toHttpError(err);
    if (status >= 500 && status !== 503) log(`error: ${message}`);
    reply.code(status).type('application/json').send({ error: message });
  });
  app.setNotFoundHandler((req, reply) => {
    reply.code(404).send({ error: `not found: ${req.url.slice(0, 100)}` });
  });

  for (const [url, a] of assets)
    app.get(url, (_req, reply) => {
      reply.type(a.type).header('Cache-Control', 'no-cache').send(a.body);
    });

  app.get('/api/info', async () => ({
    methods: METHODS,
    baselines: BASELINES,
    defaultBaseline: DEFAULT_BASELINE,
    metrics: METRIC_NAMES,
    limits: { maxUploadBytes: maxBytes, maxPixels },
    waiting: engine.waiting(),
    running: engine.running(),
    uploading: uploads,
  }));

  /**
   * Reads a request's parts with the upload limits: at most `maxUploads` at once (more are
   * refused before their body is read) and none that stalls for `idleTimeoutMs`.
   */
  async function readUpload(req: FastifyRequest): Promise<Parsed> {
    if (uploads >= limits.maxUploads)
      throw new ServeError(
        `the server is busy: ${uploads} uploads are in progress; try again in a moment`,
        503,
      );
    uploads++;
    const socket = req.raw.socket;
    const stalled = () => {
      log(`dropped an upload that sent nothing for ${limits.idleTimeoutMs / 1000} s`);
      socket.destroy();
    };
    socket.setTimeout(limits.idleTimeoutMs, stalled);
    try {
      return await readParts(req, maxBytes);
    } finally {
      uploads--;
      socket.setTimeout(0);
      socket.off('timeout', stalled);
    }
  }

  /**
   * Parses and decodes a request's pair, aligned when it has the field `align`; every problem
   * is a 4xx ServeError, and 503 when the pairs held already would take its pixels past the
   * memory bound. `release` (call it once the pair is done with) gives its pixels back.
   */
  async function readPairRequest(req: FastifyRequest) {
    const parsed = await readUpload(req);
    const align = parseAlign(parsed.fields.get('align'));
    const irUp = need(parsed, 'ir');
    const visUp = need(parsed, 'vis');
    let pixels = 0;
    const release = () => {
      held -= pixels;
      pixels = 0;
    };
    try {
      let pair = await decodePair(irUp, visUp, maxPixels, align !== undefined, (n) => {
        if (held + n > heldLimit)
          throw new ServeError(
            `the server is busy: the images waiting and being fused hold ${(held / 1e6).toFixed(1)} MP, and this pair's ${(n / 1e6).toFixed(1)} MP would pass its memory bound (${(heldLimit / 1e6).toFixed(0)} MP, ${gb(memoryBytes)}); try again in a minute`,
            503,
          );
        held += n;
        pixels = n;
      });
      if (align !== undefined) {
        const names = {
          ir: displayName(irUp.filename, 'infrared'),
          vis: displayName(visUp.filename, 'visible'),
        };
        const visToIr =
          typeof align === 'string' ? (await engine.align(pair, align, names)).visToIr : align;
        const how =
          align === 'resize'
            ? `resized ${pair.vis.width}x${pair.vis.height} -> ${pair.ir.width}x${pair.ir.height}`
            : align === 'auto'
              ? 'aligned automatically'
              : 'aligned with the given transform';
        pair = alignDecoded(pair, visToIr, how, names.vis);
      }
      return { parsed, pair, release };
    } catch (err) {
      release();
      throw err;
    }
  }

  /**
   * Admits a request to the line before its upload is read: the requests waiting in the
   * lanes plus those admitted and still uploading may not exceed MAX_WAITING. The returned
   * function gives the place back (once the request has joined a lane, or failed).
   */
  function admit(reply: { header(k: string, v: string): unknown }): () => void {
    const n = engine.waiting() + reserved;
    if (draining || n >= MAX_WAITING) {
      // The body is not read: close the connection rather than drain it.
      reply.header('Connection', 'close');
      if (draining) throw shuttingDown();
      throw new ServeError(
        `the server is busy: ${n} requests are waiting; try again in a minute`,
        503,
      );
    }
    reserved++;
    let held = true;
    return () => {
      if (held) reserved--;
      held = false;
    };
  }

  /** Forgets finished jobs older than the TTL, and all but the newest MAX_FINISHED_JOBS. */
  function prune(): void {
    const now = Date.now();
    const finished = [...jobs.values()]
      .filter((j) => j.finishedAt !== undefined)
      .sort((a, b) => (a.finishedAt ?? 0) - (b.finishedAt ?? 0));
    finished.forEach((j, i) => {
      if (now - (j.finishedAt ?? now) > JOB_TTL_MS || finished.length - i > MAX_FINISHED_JOBS)
        jobs.delete(j.id);
    });
  }

  async function runJob(job: Job, pair: DecodedPair): Promise<void> {
    const pixels = job.width * job.height;
    const main = await engine.fuse(pair, job.method, {
      onTicket: (t) => {
        job.ticket = t;
      },
      onStart: () => {
        job.state = 'running';
        job.startedAt = Date.now();
        job.estimateMs = engine.estimateMs(job.method, pixels);
      },
      onProgress: (done, total) => {
        job.progress = { done, total };
      },
    });
    const metrics: Record<string, MetricValues> = {
      [job.method]: await metricsOf(pair, main.fused),
    };
    job.fused = await encodePng(main.fused);
    if (job.baseline && job.baseline !== job.method) {
      const base = await engine.fuse(pair, job.baseline);
      metrics[job.baseline] = await metricsOf(pair, base.fused);
      job.baselinePng = await encodePng(base.fused);
    }
    job.metrics = metrics;
    job.ms = main.ms;
    if (pair.note) {
      job.note = pair.note;
      job.visPng = await encodePng(pair.vis8);
    }
  }

  app.post('/api/jobs', async (req, reply) => {
    prune();
    const release = admit(reply);
    try {
      return await postJob(req, reply);
    } finally {
      release();
    }
  });

  async function postJob(req: FastifyRequest, reply: { code(n: number): unknown }) {
    const { parsed, pair, release } = await readPairRequest(req);
    let method: Method;
    let baseline: Method | undefined;
    try {
      method = parseMethod(parsed.fields.get('method'), 'method', 'model');
      const baselineField = parsed.fields.get('baseline');
      baseline =
        baselineField === 'none'
          ? undefined
          : parseMethod(baselineField, 'baseline', DEFAULT_BASELINE);
    } catch (err) {
      release();
      throw err;
    }
    const job: Job = {
      id: randomUUID(),
      method,
      baseline,
      state: 'queued',
      width: pair.ir.width,
      height: pair.ir.height,
      progress: { done: 0, total: 1 },
    };
    jobs.set(job.id, job);
    runJob(job, pair)
      .finally(release)
      .then(
        () => {
          job.state = 'done';
          job.finishedAt = Date.now();
        },
        (err) => {
          const { status, message } = toHttpError(err);
          if (status >= 500 && status !== 503) log(`error: ${message}`);
          job.state = 'error';
          job.error = message;
          job.finishedAt = Date.now();
        },
      );
    reply.code(202);
    return { id: job.id, place: job.ticket?.place() ?? 0 };
  }

  function findJob(id: string): Job {
    const job = jobs.get(id);
    if (!job) throw new ServeError('no such job (it may have expired; fuse again)', 404);
    return job;
  }

  app.get<{ Params: { id: string } }>('/api/jobs/:id', async (req) => {
    const job = findJob(req.params.id);
    return {
      id: job.id,
      state: job.state,
      method: job.method,
      baseline: job.baseline ?? null,
      width: job.width,
      height: job.height,
      place: job.state === 'queued' ? (job.ticket?.place() ?? 0) : 0,
      progress: job.progress,
      elapsedMs: job.startedAt ? (job.finishedAt ?? Date.now()) - job.startedAt : 0,
      estimateMs: job.estimateMs ?? null,
      ms: job.ms ?? null,
      metrics: job.metrics ?? null,
      aligned: job.note ?? null,
      error: job.error ?? null,
    };
  });

  app.get<{ Params: { id: string; which: string } }>('/api/jobs/:id/:which', async (req, reply) => {
    const job = findJob(req.params.id);
    const png =
      req.params.which === 'fused.png'
        ? job.fused
        : req.params.which === 'baseline.png'
          ? job.baselinePng
          : req.params.which === 'visible.png'
            ? job.visPng
            : undefined;
    if (!png) throw new ServeError(`not found: ${req.params.which.slice(0, 40)}`, 404);
    reply.type('image/png').header('Cache-Control', 'private, max-age=900');
    return png;
  });

  app.post('/api/fuse', async (req, reply) => {
    const release = admit(reply);
    let running: ReturnType<Engine['fuse']>;
    try {
      const { parsed, pair, release: done } = await readPairRequest(req);
      try {
        const method = parseMethod(parsed.fields.get('method'), 'method', 'model');
        running = engine.fuse(pair, method); // in its lane now
      } catch (err) {
        done();
        throw err;
      }
      running.finally(done).catch(() => {});
    } finally {
      release();
    }
    const out = await running;
    const method = out.method;
    reply
      .type('image/png')
      .header('X-Fuse-Method', method)
      .header('X-Fuse-Ms', out.ms.toFixed(1))
      .header('X-Fuse-Tiles', String(out.tiles))
      .header('Content-Disposition', `inline; filename="fused-${method}.png"`);
    return encodePng(out.fused);
  });

  app.post('/api/eval', async (req, reply) => {
    const release = admit(reply);
    let metrics: Promise<MetricValues>;
    let size: [number, number];
    try {
      const { parsed, pair, release: done } = await readPairRequest(req);
      try {
        const fused = await decodeFused(need(parsed, 'fused'), maxPixels);
        size = [pair.ir.width, pair.ir.height];
        metrics = engine.evaluate(pair, fused); // in the eval lane now
      } catch (err) {
        done();
        throw err;
      }
      metrics.finally(done).catch(() => {});
    } finally {
      release();
    }
    return { width: size[0], height: size[1], metrics: await metrics };
  });

  app.post('/api/align', async (req, reply) => {
    const release = admit(reply);
    let running: ReturnType<Engine['align']>;
    try {
      const parsed = await readUpload(req);
      const mode = parsed.fields.get('mode') || 'auto';
      if (mode !== 'auto' && mode !== 'resize')
        throw new ServeError(`unknown mode "${mode.slice(0, 40)}": use auto or resize`);
      const irUp = need(parsed, 'ir');
      const visUp = need(parsed, 'vis');
      const pair = await decodePair(irUp, visUp, maxPixels, true);
      running = engine.align(pair, mode, {
        ir: displayName(irUp.filename, 'infrared'),
        vis: displayName(visUp.filename, 'visible'),
      }); // in the align lane now
    } finally {
      release();
    }
    const a = await running;
    const png = await encodePng(a.check);
    return {
      visToIr: a.visToIr,
      transform: a.transform,
      scoreBefore: a.scoreBefore,
      scoreAfter: a.scoreAfter,
      coverage: a.coverage,
      irSize: a.irSize,
      visSize: a.visSize,
      check: `data:image/png;base64,${png.toString('base64')}`,
    };
  });

  let drained: Promise<void> | undefined;
  const drain = () => {
    draining = true;
    drained ??= engine.drain(shuttingDown);
    return drained;
  };
  return {
    app,
    engine,
    drain,
    close: async () => {
      await drain();
      await app.close();
      await engine.close();
    },
  };
}
