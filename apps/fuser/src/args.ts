/** Argument parsers shared by the `dif-fuse` commands (commander coercions). */
import { InvalidArgumentError, Option } from 'commander';

export const intArg =
  (name: string, min: number, max = 2 ** 32 - 1) =>
  (v: string) => {
    if (!/^-?\d+$/.test(v.trim())) throw new InvalidArgumentError(`${name} must be an integer`);
    const n = Number(v);
    if (n < min) throw new InvalidArgumentError(`${name} must be at least ${min}`);
    if (n > max) throw new InvalidArgumentError(`${name} must be at most ${max}`);
    return n;
  };

export const tileArg = (v: string): number | 'auto' | 'off' => {
  if (v === 'auto' || v === 'off') return v;
  if (!/^\d+$/.test(v))
    throw new InvalidArgumentError('--tile must be a size in pixels, auto or off');
  const n = Number(v);
  if (n < 32 || n % 16 !== 0)
    throw new InvalidArgumentError('--tile must be a multiple of 16, at least 32');
  return n;
};

/** `--device auto|cuda|cpu`: the ONNX Runtime execution provider (fuse, worker, serve). */
export const deviceOption = (): Option =>
  new Option('--device <device>', 'ONNX Runtime device')
    .choices(['auto', 'cuda', 'cpu'])
    .default('auto');

/** `--threads N` (1..1024): ONNX Runtime's intra-op threads (fuse, worker, serve). */
export const threadsOption = (): Option =>
  new Option('--threads <n>', 'CPU threads for ONNX Runtime (default: all cores)').argParser(
    intArg('--threads', 1, 1024),
  );
