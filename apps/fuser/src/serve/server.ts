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
 *
 * Uploads are held in memory (bounded by the size limit) and never written to disk; errors
 * are JSON `{error: "<one line>"}` with a 4xx/5xx status, never a stack trace.
 */
import { randomUUID } from 'node:crypto';
import { formatError } from '@dif-fusion/io';
import { METRIC_NAMES, type MetricValues } from '@dif-fusion/metrics';
import multipart from '@fastify/multipart';
import Fastify, { type FastifyInstance, type FastifyRequest } from 'fastify';
import { BASELINES, METHODS, type Method } from '../methods';
import { loadAssets } from './assets';
import {
  type DecodedPair,
  decodeFused,
  decodePair,
  displayName,
  Engine,
  type EngineOptions,
  encodePng,
  metricsOf,
  parseMethod,
  ServeError,
  type Upload,
} from './engine';
import type { Ticket } from './queue';

export const DEFAULT_MAX_UPLOAD_MB = 25;
export const DEFAULT_SERVE_MAX_MP = 4;
/** Requests that may wait at once; more are refused with 503 (each holds its decoded pair). */
export const MAX_WAITING = 16;
/** Finished jobs are kept this long for the page to fetch their images. */
const JOB_TTL_MS = 15 * 60_000;
const MAX_FINISHED_JOBS = 64;
export const DEFAULT_BASELINE: Method = 'ycbcr-max';

export interface ServeOptions extends EngineOptions {
  /** Largest accepted file, bytes. */
  maxUploadBytes?: number;
  /** Largest accepted image, pixels. */
  maxPixels?: number;
  /** Folder of the page's built files (default: <package>/dist/public). */
  publicDir?: string;
  /** Host names accepted in the Host header besides localhost forms (DNS rebinding guard). */
  allowedHosts?: string[];
  /** Called with one line per server-side failure (default: none). */
  log?: (line: string) => void;
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
  for await (const part of req.parts()) {
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
  close(): Promise<void>;
}

export function createServer(options: ServeOptions = {}): Served {
  const maxBytes = options.maxUploadBytes ?? DEFAULT_MAX_UPLOAD_MB * 1e6;
  const maxPixels = options.maxPixels ?? DEFAULT_SERVE_MAX_MP * 1e6;
  const assets = loadAssets(options.publicDir);
  const engine = new Engine(options);
  const jobs = new Map<string, Job>();
  const log = options.log ?? (() => {});
  const allowed = new Set([...LOOPBACK, ...(options.allowedHosts ?? [])]);

  const app = Fastify({ logger: false, bodyLimit: 1e6 });
  app.register(multipart, {
    limits: { fileSize: maxBytes, files: 3, fields: 8, parts: 11, fieldSize: 1000 },
  });

  app.addHook('onRequest', async (req, reply) => {
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
    if (status >= 500) log(`error: ${message}`);
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
  }));

  /** Parses and decodes a request's pair; every problem is a 4xx ServeError. */
  async function readPairRequest(req: FastifyRequest) {
    const parsed = await readParts(req, maxBytes);
    const pair = await decodePair(need(parsed, 'ir'), need(parsed, 'vis'), maxPixels);
    return { parsed, pair };
  }

  function checkCapacity(): void {
    const n = engine.waiting();
    if (n >= MAX_WAITING)
      throw new ServeError(
        `the server is busy: ${n} requests are waiting; try again in a minute`,
        503,
      );
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
    const metrics: Record<string, MetricValues> = { [job.method]: metricsOf(pair, main.fused) };
    job.fused = await encodePng(main.fused);
    if (job.baseline && job.baseline !== job.method) {
      const base = await engine.fuse(pair, job.baseline);
      metrics[job.baseline] = metricsOf(pair, base.fused);
      job.baselinePng = await encodePng(base.fused);
    }
    job.metrics = metrics;
    job.ms = main.ms;
  }

  app.post('/api/jobs', async (req, reply) => {
    prune();
    checkCapacity();
    const { parsed, pair } = await readPairRequest(req);
    const method = parseMethod(parsed.fields.get('method'), 'method', 'model');
    const baselineField = parsed.fields.get('baseline');
    const baseline =
      baselineField === 'none'
        ? undefined
        : parseMethod(baselineField, 'baseline', DEFAULT_BASELINE);
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
    runJob(job, pair).then(
      () => {
        job.state = 'done';
        job.finishedAt = Date.now();
      },
      (err) => {
        const { status, message } = toHttpError(err);
        if (status >= 500) log(`error: ${message}`);
        job.state = 'error';
        job.error = message;
        job.finishedAt = Date.now();
      },
    );
    reply.code(202);
    return { id: job.id, place: job.ticket?.place() ?? 0 };
  });

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
          : undefined;
    if (!png) throw new ServeError(`not found: ${req.params.which.slice(0, 40)}`, 404);
    reply.type('image/png').header('Cache-Control', 'private, max-age=900');
    return png;
  });

  app.post('/api/fuse', async (req, reply) => {
    checkCapacity();
    const { parsed, pair } = await readPairRequest(req);
    const method = parseMethod(parsed.fields.get('method'), 'method', 'model');
    const out = await engine.fuse(pair, method);
    reply
      .type('image/png')
      .header('X-Fuse-Method', method)
      .header('X-Fuse-Ms', out.ms.toFixed(1))
      .header('Content-Disposition', `inline; filename="fused-${method}.png"`);
    return encodePng(out.fused);
  });

  app.post('/api/eval', async (req) => {
    const { parsed, pair } = await readPairRequest(req);
    const fused = await decodeFused(need(parsed, 'fused'), maxPixels);
    return { width: pair.ir.width, height: pair.ir.height, metrics: metricsOf(pair, fused) };
  });

  return {
    app,
    engine,
    close: async () => {
      await app.close();
      await engine.close();
    },
  };
}
