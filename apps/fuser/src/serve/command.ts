/**
 * Registers `dif-fuse serve` on the main program: options, start-up line, clean shutdown on
 * Ctrl-C / SIGTERM.
 */

import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type Command, InvalidArgumentError } from 'commander';
import { deviceOption, threadsOption } from '../args';
import { FuseError } from '../errors';
import {
  createServer,
  DEFAULT_MAX_UPLOAD_MB,
  SERVE_MAX_MP,
  SERVE_MIN_MP,
  type Served,
} from './server';

export interface ServeIo {
  out: (s: string) => void;
  err: (s: string) => void;
}

interface ServeFlags {
  model?: string;
  port: number;
  host: string;
  device: 'auto' | 'cuda' | 'cpu';
  threads?: number;
  seed: number;
  maxUpload: number;
  maxPixels?: number;
}

const positive = (name: string, integer: boolean, max: number) => (v: string) => {
  const n = Number(v);
  if (!/^\d+(\.\d+)?$/.test(v.trim()) || (integer && !Number.isInteger(n)) || n > max)
    throw new InvalidArgumentError(
      `${name} must be a${integer ? 'n integer' : ' number'} from 0 to ${max}`,
    );
  return n;
};

/** Starts the server; resolves once it listens, with its URL. */
export async function startServe(
  f: ServeFlags,
  io: ServeIo,
): Promise<{ url: string; served: Served }> {
  // ONNX Runtime writes session files ($TMPDIR/.ses, mat-debug-<pid>.log): they go to a
  // folder of this server's own, removed when it stops.
  const work = mkdtempSync(join(tmpdir(), 'dif-fuse-serve-'));
  process.env.TMPDIR = work;
  const clean = () => rmSync(work, { recursive: true, force: true });
  process.once('exit', clean);
  const served = createServer({
    model: f.model,
    device: f.device,
    threads: f.threads,
    seed: f.seed,
    maxUploadBytes: f.maxUpload * 1e6,
    maxPixels: f.maxPixels === undefined ? undefined : f.maxPixels * 1e6,
    // Bound to every interface on purpose: any Host header is then expected.
    allowedHosts: f.host === '127.0.0.1' || f.host === 'localhost' ? [] : ['*'],
    log: io.err,
  });
  let address: string;
  try {
    // The model's session is opened now: a bad model folder fails at once, in one line, and
    // the first request does not wait for the load.
    const opened = await served.engine.open('model');
    if (opened.provider)
      io.err(`dif-fuse serve: model ${opened.modelDir}, provider ${opened.provider}`);
    address = await served.app.listen({ port: f.port, host: f.host });
  } catch (err) {
    await served.close();
    clean();
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'EADDRINUSE')
      throw new FuseError(`port ${f.port} is in use on ${f.host}: choose another with --port`);
    throw err;
  }
  const url = address.replace('http://[::1]', 'http://localhost');
  const close = served.close;
  served.close = async () => {
    await close();
    clean();
  };
  return { url, served };
}

export function registerServeCommand(program: Command, io: ServeIo): Command {
  return program
    .command('serve')
    .description(
      'Serve a local web page: drop an infrared and a visible image, see the fusion beside its sources and a baseline, with metrics',
    )
    .option('--model <dir>', 'model folder (model.onnx + config.json); default: the shipped model')
    .option('--port <n>', 'port (0: any free port)', positive('--port', true, 65535), 8080)
    .option(
      '--host <host>',
      'interface to listen on; anything but 127.0.0.1 exposes the page to the network',
      '127.0.0.1',
    )
    .addOption(deviceOption())
    .addOption(threadsOption())
    .option('--seed <n>', 'noise seed', positive('--seed', true, 2 ** 32 - 1), 0)
    .option(
      '--max-upload <MB>',
      'largest accepted file',
      positive('--max-upload', false, 1000),
      DEFAULT_MAX_UPLOAD_MB,
    )
    .option(
      '--max-pixels <MP>',
      `largest accepted image, in megapixels, checked from its header before decoding (default: what fits this machine's memory, ${SERVE_MIN_MP} to ${SERVE_MAX_MP}; larger images are fused in tiles, as dif-fuse --tile auto)`,
      positive('--max-pixels', false, 1000),
    )
    .action(async (f: ServeFlags) => {
      const { url, served } = await startServe(f, io);
      if (f.host !== '127.0.0.1' && f.host !== 'localhost')
        io.err(
          `warning: listening on ${f.host}: anyone who can reach this machine can use the page`,
        );
      io.out(`dif-fuse serve: ${url}  (Ctrl-C stops)`);
      // First signal: drain (the running fusion finishes, waiting and new requests get 503),
      // then exit 0. A second signal exits at once (1).
      await new Promise<void>((resolve) => {
        let stopping = false;
        const stop = (sig: NodeJS.Signals) => {
          if (stopping) {
            io.err(`dif-fuse serve: ${sig} again, exiting now`);
            process.exit(1);
          }
          stopping = true;
          io.err(`dif-fuse serve: ${sig}, finishing the running fusion, refusing the rest`);
          served.close().then(resolve, resolve);
        };
        process.on('SIGINT', stop);
        process.on('SIGTERM', stop);
      });
    });
}
