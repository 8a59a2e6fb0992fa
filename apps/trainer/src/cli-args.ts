/** Argument parsers shared by the `dif-train` subcommands (commander `argParser`s). */
import { InvalidArgumentError } from 'commander';

/** An integer >= `min`. */
export function int(name: string, min: number) {
  return (v: string): number => {
    const n = Number(v);
    if (!Number.isInteger(n) || n < min)
      throw new InvalidArgumentError(`${name} must be an integer >= ${min}`);
    return n;
  };
}

/** A finite number > 0. */
export function positive(name: string) {
  return (v: string): number => {
    const n = Number(v);
    if (!Number.isFinite(n) || n <= 0)
      throw new InvalidArgumentError(`${name} must be a positive number`);
    return n;
  };
}

/** A finite number >= 0. */
export function nonNegative(name: string) {
  return (v: string): number => {
    const n = Number(v);
    if (v.trim() === '' || !Number.isFinite(n) || n < 0)
      throw new InvalidArgumentError(`${name} must be a number >= 0`);
    return n;
  };
}

/** `-q, --quiet`, as every `dif-train` subcommand (and `dif-fuse -q`) spells it. */
export const QUIET_FLAGS = '-q, --quiet';
export const QUIET_HELP =
  'no progress bar, step lines or summary (warnings and errors still print)';

/**
 * The `log` of a command run with `-q`: drops its lines except warnings; `undefined`
 * (the command's default, stderr) without it.
 */
export function quietLog(o: { quiet?: unknown }): ((line: string) => void) | undefined {
  if (o.quiet !== true) return undefined;
  return (line) => {
    if (line.startsWith('warning:')) process.stderr.write(`${line}\n`);
  };
}
