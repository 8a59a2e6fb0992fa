/**
 * Process policy of the command-line tools (`dif-train`, `dif-fuse`): their exit codes and
 * how an error that ends them is reported. Libraries throw DifFusionError (the error root,
 * @dif-fusion/schedules) and never decide an exit code; an error may carry the code a CLI
 * should end with (`exitCode`), which only the apps set.
 */
import { DifFusionError, formatError } from '@dif-fusion/schedules';

/** Process exit codes shared by `dif-train` and `dif-fuse`. */
export const EXIT = { ok: 0, failure: 1, usage: 2, interrupted: 130 } as const;

/**
 * The exit code for an error that ended a CLI: usage errors of the argument parser
 * (commander's `CommanderError`, recognised by its `commander.*` code) give
 * {@link EXIT.usage} (help and version: 0), a DifFusionError its own code (default
 * {@link EXIT.failure}), anything else {@link EXIT.failure}.
 */
export function exitCodeOf(err: unknown): number {
  const code = (err as { code?: unknown } | null)?.code;
  if (typeof code === 'string' && code.startsWith('commander.'))
    return ['commander.helpDisplayed', 'commander.help', 'commander.version'].includes(code)
      ? EXIT.ok
      : EXIT.usage;
  if (DifFusionError.isInstance(err)) return err.exitCode ?? EXIT.failure;
  return EXIT.failure;
}

/**
 * The end of a CLI's `main()`: write `error: <one line>` for `err` (not for the argument
 * parser's own errors, which it has printed already; with DIF_FUSION_DEBUG set, the stack
 * too) and return its exit code ({@link exitCodeOf}).
 */
export function reportError(err: unknown, writeLine: (line: string) => void): number {
  const code = (err as { code?: unknown } | null)?.code;
  if (!(typeof code === 'string' && code.startsWith('commander.'))) {
    writeLine(`error: ${formatError(err)}`);
    if (process.env.DIF_FUSION_DEBUG) writeLine(String((err as Error)?.stack));
  }
  return exitCodeOf(err);
}
