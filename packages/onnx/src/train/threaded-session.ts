/**
 * A training session whose ONNX Runtime runs happen on a worker thread, so that the main
 * thread stays responsive during a step (onnxruntime-node's create() and run() are
 * synchronous native calls: a step of the official 370 M-parameter UNet holds the thread
 * for tens of seconds, and Ctrl-C / SIGTERM could not even be seen until it ended).
 *
 * The parameters move to the worker for the step and back without a copy: their
 * ArrayBuffers are transferred, and `run` replaces each holder's `data` with the array that
 * comes back (the old one is detached meanwhile). Parameters that are views into a larger
 * buffer (a checkpoint file's) are copied once into their own buffer first.
 */
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import type { Device, ort } from '../session';
import type { TrainGraph } from './train-graph';
import type { StepResult } from './train-session';

/** Path of the compiled worker script (dist/train-worker.js), also when running from sources. */
function workerScript(): string {
  for (const rel of ['./train-worker.js', '../../dist/train-worker.js']) {
    const p = fileURLToPath(new URL(rel, import.meta.url));
    if (existsSync(p)) return p;
  }
  throw new Error('@dif-fusion/onnx: dist/train-worker.js is missing (build the package)');
}

/**
 * The worker runs built code (dist/): drop a `source` export condition inherited from the
 * parent (test runners resolve workspace packages to their TypeScript sources with it).
 */
export function builtCodeWorkerOptions(): { execArgv: string[]; env: NodeJS.ProcessEnv } {
  const execArgv: string[] = [];
  const args = process.execArgv;
  for (let i = 0; i < args.length; i++) {
    if (args[i] === '--conditions' || args[i] === '-C') {
      i++;
      continue;
    }
    if (args[i].startsWith('--conditions=')) continue;
    execArgv.push(args[i]);
  }
  const nodeOptions = (process.env.NODE_OPTIONS ?? '')
    .replace(/(--conditions[= ]|-C\s+)\S+/g, '')
    .trim();
  return { execArgv, env: { ...process.env, NODE_OPTIONS: nodeOptions } };
}

/** The distinct buffers behind some arrays (a transfer list names each buffer once). */
function buffersOf(arrays: Iterable<Float32Array>): ArrayBuffer[] {
  const s = new Set<ArrayBuffer>();
  for (const a of arrays) s.add(a.buffer as ArrayBuffer);
  return [...s];
}

/** Whether `a` is the whole of a (non-shared) ArrayBuffer, which can then move alone. */
function ownsBuffer(a: ArrayBufferView): boolean {
  return (
    a.byteOffset === 0 && a.byteLength === a.buffer.byteLength && a.buffer instanceof ArrayBuffer
  );
}

/** `a` itself when it owns its whole buffer (transferable alone), else a copy that does. */
export function ownBuffer(a: Float32Array): Float32Array {
  return ownsBuffer(a) ? a : a.slice();
}

type Reply =
  | { type: 'opened'; provider: 'cuda' | 'cpu' }
  | { type: 'ran'; result: StepResult; params: Map<string, Float32Array> }
  | {
      type: 'error';
      message: string;
      params?: Map<string, Float32Array>;
      grads?: Map<string, Float32Array>;
    }
  | { type: 'released' };

/** The worker and its one request in flight (each request gets one reply). */
class Channel {
  private waiting: ((r: Reply) => void) | null = null;
  failure: Error | null = null;

  constructor(readonly worker: Worker) {
    worker.on('message', (r: Reply) => this.settle(r));
    worker.on('error', (e) => this.fail(e));
    worker.on('exit', (code) =>
      this.fail(new Error(`training worker thread exited (code ${code})`)),
    );
  }

  private settle(r: Reply): void {
    const w = this.waiting;
    this.waiting = null;
    this.worker.unref(); // an idle worker keeps nothing alive
    w?.(r);
  }

  private fail(e: Error): void {
    this.failure ??= e;
    this.settle({ type: 'error', message: e.message });
  }

  request(message: unknown, transfer: ArrayBuffer[] = []): Promise<Reply> {
    if (this.failure) return Promise.resolve({ type: 'error', message: this.failure.message });
    return new Promise((resolve) => {
      this.waiting = resolve;
      this.worker.ref();
      this.worker.postMessage(message, transfer);
    });
  }

  async close(): Promise<void> {
    this.worker.removeAllListeners('exit');
    await this.worker.terminate();
  }
}

export class ThreadedTrainSession {
  private constructor(
    readonly graph: TrainGraph,
    private readonly channel: Channel,
    /** The execution provider running the graph. */
    readonly provider: 'cuda' | 'cpu',
  ) {}

  /**
   * Open the graph in a fresh worker thread (ORT's session creation runs there too); null
   * when `shouldStop()` turned true meanwhile. `testBlockMs` (tests only) holds the worker
   * that long first, as a slow creation would.
   */
  static async open(
    graph: TrainGraph,
    options: { device?: Device; threads?: number; ort?: ort.InferenceSession.SessionOptions } = {},
    testBlockMs = 0,
    shouldStop: () => boolean = () => false,
  ): Promise<ThreadedTrainSession | null> {
    const channel = new Channel(new Worker(workerScript(), builtCodeWorkerOptions()));
    // Asked every 100 ms while the worker creates the session: true gives up at once (null;
    // the worker is terminated, which ends once any native call in hand returns).
    let poll: ReturnType<typeof setInterval> | undefined;
    const stopped = new Promise<null>((resolve) => {
      poll = setInterval(() => shouldStop() && resolve(null), 100);
    });
    const r = await Promise.race([
      // The serialised model moves to the worker rather than being copied (a head graph holds
      // the frozen UNet's weights, as large as that UNet); `graph.model` is empty here after.
      channel.request(
        { type: 'open', graph, options, testBlockMs },
        ownsBuffer(graph.model) ? [graph.model.buffer as ArrayBuffer] : [],
      ),
      stopped,
    ]).finally(() => clearInterval(poll));
    if (r === null) {
      void channel.close();
      return null;
    }
    if (r.type !== 'opened') {
      await channel.close();
      throw new Error(r.type === 'error' ? r.message : `training worker: unexpected ${r.type}`);
    }
    return new ThreadedTrainSession(graph, channel, r.provider);
  }

  /**
   * One forward + backward pass on the worker. `params` holds every trainable parameter
   * as `{ data }`; each `data` is moved to the worker and replaced by the array that comes
   * back. `feeds`: every other input (copied). `grads` (optional, `{ data }` per parameter,
   * moved like `params`): the arrays ORT writes the gradients into, which the result's
   * `grads` then holds (see TrainSession.run); without them each step's gradients are new
   * arrays. `testBlockMs` (tests only) holds the worker thread that long before the run, as
   * a long native step would.
   */
  async run(
    params: ReadonlyMap<string, { data: Float32Array }>,
    feeds: Record<string, Float32Array>,
    testBlockMs = 0,
    grads?: ReadonlyMap<string, { data: Float32Array }>,
  ): Promise<StepResult> {
    const own = (holders: ReadonlyMap<string, { data: Float32Array }>, what: string) => {
      const arrays = new Map<string, Float32Array>();
      for (const p of this.graph.params) {
        const h = holders.get(p.name);
        if (!h) throw new Error(`training step: ${what} ${p.name} is missing`);
        h.data = ownBuffer(h.data);
        arrays.set(p.name, h.data);
      }
      return arrays;
    };
    const arrays = own(params, 'parameter');
    const gradArrays = grads && own(grads, 'gradient buffer of');
    const r = await this.channel.request(
      { type: 'run', params: arrays, feeds, testBlockMs, grads: gradArrays },
      buffersOf([...arrays.values(), ...(gradArrays?.values() ?? [])]),
    );
    if ((r.type === 'ran' || r.type === 'error') && r.params)
      for (const [name, data] of r.params) params.get(name)!.data = data;
    if (grads) {
      const back = r.type === 'ran' ? r.result.grads : r.type === 'error' ? r.grads : undefined;
      for (const [name, data] of back ?? []) grads.get(name)!.data = data;
    }
    if (r.type === 'error') throw new Error(r.message);
    if (r.type !== 'ran') throw new Error(`training worker: unexpected ${r.type}`);
    return r.result;
  }

  async release(): Promise<void> {
    if (!this.channel.failure) await this.channel.request({ type: 'release' });
    await this.channel.close();
  }
}
