/**
 * The project's one error root. Every error a user can act on — a bad file, a bad option,
 * a model that does not fit — is a {@link DifFusionError} (or a subclass: TorchImportError,
 * ExportError, ModelFolderError, OnnxRuntimeError, FuseError): one line naming the file and
 * the problem, which the CLIs print as `error: <message>` without a stack trace (the exit
 * codes and that report are the apps' process policy: @dif-fusion/cli-kit).
 *
 * The class is recognised by a `Symbol.for` brand rather than `instanceof` (the style of
 * vercel/ai's `AISDKError.isInstance`), so an error thrown by one installed copy of a package
 * is still recognised by another copy (two versions in node_modules, a bundled CLI).
 */

const BRAND = Symbol.for('dif-fusion.error');

export interface DifFusionErrorOptions {
  /** The file or folder the problem is about, when there is one. */
  path?: string;
  cause?: unknown;
  /**
   * The exit code a CLI should end with for this error (set by the apps only; the exit codes
   * and their default are process policy: @dif-fusion/cli-kit's `EXIT`, `exitCodeOf`).
   */
  exitCode?: number;
}

export class DifFusionError extends Error {
  /** The brand {@link DifFusionError.isInstance} checks. */
  readonly [BRAND] = true;
  /** The file or folder the problem is about, when there is one. */
  readonly path?: string;
  /** The exit code a CLI should end with for this error, when the app set one. */
  readonly exitCode?: number;

  constructor(message: string, options?: DifFusionErrorOptions) {
    super(message.replace(/\s*\n\s*/g, ' '), options?.cause ? { cause: options.cause } : undefined);
    this.name = new.target.name;
    this.path = options?.path;
    if (options?.exitCode !== undefined) this.exitCode = options.exitCode;
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
