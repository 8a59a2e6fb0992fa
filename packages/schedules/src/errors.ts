/**
 * The project's one error root. Every error a user can act on — a bad file, a bad option,
 * a model that does not fit — is a {@link DifFusionError} (or a subclass: TorchImportError,
 * ExportError, ModelFolderError, OnnxRuntimeError, FuseError): one line naming the file and
 * the problem, which the CLIs print as `error: <message>` without a stack trace.
 *
 * The class is recognised by a `Symbol.for` brand rather than `instanceof` (the style of
 * vercel/ai's `AISDKError.isInstance`), so an error thrown by one installed copy of a package
 * is still recognised by another copy (two versions in node_modules, a bundled CLI).
 */

const BRAND = Symbol.for('dif-fusion.error');

/** Process exit codes shared by `dif-train` and `dif-fuse`. */
export const EXIT = { ok: 0, failure: 1, usage: 2, interrupted: 130 } as const;

export interface DifFusionErrorOptions {
  /** The file or folder the problem is about, when there is one. */
  path?: string;
  cause?: unknown;
  /** Exit code a CLI ends with for this error (default {@link EXIT.failure}). */
  exitCode?: number;
}

export class DifFusionError extends Error {
  /** The brand {@link DifFusionError.isInstance} checks. */
  readonly [BRAND] = true;
  /** The file or folder the problem is about, when there is one. */
  readonly path?: string;
  /** Exit code a CLI ends with for this error. */
  readonly exitCode: number;

  constructor(message: string, options?: DifFusionErrorOptions) {
    super(message.replace(/\s*\n\s*/g, ' '), options?.cause ? { cause: options.cause } : undefined);
    this.name = new.target.name;
    this.path = options?.path;
    this.exitCode = options?.exitCode ?? EXIT.failure;
  }

  /** True for any DifFusionError, from any copy of the package. */
  static isInstance(err: unknown): err is DifFusionError {
    return (
      typeof err === 'object' && err !== null && (err as { [BRAND]?: unknown })[BRAND] === true
    );
  }
}

/** Alias: the error class CLIs treat as "user-facing, print one line". */
export { DifFusionError as UserError };

/** `${path}: ${problem}` as a DifFusionError. */
export function fileError(path: string, problem: string, cause?: unknown): DifFusionError {
  return new DifFusionError(`${path}: ${problem}`, { path, cause });
}

function firstLine(text: string): string {
  return (text.split('\n').find((l) => l.trim() !== '') ?? text).trim();
}

/**
 * One line for any error: the message of a DifFusionError; for other errors the first
 * non-empty line of the message, after the error's name unless it is plain `Error`.
 * For CLI `catch` blocks: `error: ${formatError(e)}`.
 */
export function formatError(err: unknown): string {
  if (DifFusionError.isInstance(err)) return err.message;
  if (err instanceof Error) {
    const first = firstLine(err.message || String(err));
    return err.name && err.name !== 'Error' ? `${err.name}: ${first}` : first;
  }
  return firstLine(String(err));
}

/**
 * The exit code for an error that ended a CLI: usage errors of the argument parser
 * (commander's `CommanderError`, recognised by its `commander.*` code) give
 * {@link EXIT.usage} (help and version: 0), a DifFusionError its own code, anything else
 * {@link EXIT.failure}.
 */
export function exitCodeOf(err: unknown): number {
  const code = (err as { code?: unknown } | null)?.code;
  if (typeof code === 'string' && code.startsWith('commander.'))
    return ['commander.helpDisplayed', 'commander.help', 'commander.version'].includes(code)
      ? EXIT.ok
      : EXIT.usage;
  if (DifFusionError.isInstance(err)) return err.exitCode;
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
