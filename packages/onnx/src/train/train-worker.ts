/** The worker thread of ThreadedTrainSession: one TrainSession, run on request. */
import { parentPort } from 'node:worker_threads';
import { TrainSession } from './train-session';

let session: TrainSession | null = null;
const port = parentPort!;

/** Post `message`, moving the buffers of `arrays` (each once) rather than copying them. */
function reply(message: unknown, arrays: Float32Array[]): void {
  const buffers = [...new Set(arrays.map((a) => a.buffer as ArrayBuffer))];
  try {
    port.postMessage(message, buffers);
  } catch {
    port.postMessage(message); // a buffer that cannot be transferred: copied instead
  }
}

port.on('message', async (m: any) => {
  const params: Map<string, Float32Array> | undefined = m.params;
  const grads: Map<string, Float32Array> | undefined = m.grads;
  // Every array that came with the request goes back (moved, not copied).
  const moved = () => [...(params?.values() ?? []), ...(grads?.values() ?? [])];
  try {
    if (m.type === 'open') {
      if (m.testBlockMs > 0)
        Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, m.testBlockMs);
      session = await TrainSession.open(m.graph, m.options);
      port.postMessage({ type: 'opened', provider: session.provider });
    } else if (m.type === 'run') {
      // Tests: hold the thread as a long native step does.
      if (m.testBlockMs > 0)
        Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, m.testBlockMs);
      const result = await session!.run(params!, m.feeds, grads);
      // With `grads`, result.grads holds those same arrays (moved once).
      reply({ type: 'ran', result, params }, [
        ...moved(),
        ...result.grads.values(),
        ...result.tensors.values(),
      ]);
    } else if (m.type === 'release') {
      await session?.release();
      session = null;
      port.postMessage({ type: 'released' });
    }
  } catch (e) {
    reply(
      { type: 'error', message: e instanceof Error ? e.message : String(e), params, grads },
      moved(),
    );
  }
});
