/**
 * Errors a user can act on: one line naming the file and the problem. CLIs print
 * `err.message` alone for these (see {@link formatError}) — never a stack trace.
 */
export class DifFusionError extends Error {
  /** The file or folder the problem is about, when there is one. */
  readonly path?: string;

  constructor(message: string, options?: { path?: string; cause?: unknown }) {
    super(message.replace(/\s*\n\s*/g, ' '), options?.cause ? { cause: options.cause } : undefined);
    this.name = 'DifFusionError';
    this.path = options?.path;
  }
}

/** Alias: the error class CLIs treat as "user-facing, print one line". */
export { DifFusionError as UserError };

/** `${path}: ${problem}` as a DifFusionError. */
export function fileError(path: string, problem: string, cause?: unknown): DifFusionError {
  return new DifFusionError(`${path}: ${problem}`, { path, cause });
}

/**
 * One line for any error: the message of a DifFusionError, `code: message` for Node's
 * system errors, otherwise the message (first line). For CLI `catch` blocks.
 */
export function formatError(err: unknown): string {
  if (err instanceof DifFusionError) return err.message;
  if (err instanceof Error) {
    const first = (err.message || String(err)).split('\n')[0];
    return err.name && err.name !== 'Error' ? `${err.name}: ${first}` : first;
  }
  return String(err).split('\n')[0];
}

/** Map a Node fs error for `path` to a one-line DifFusionError (ENOENT → "no such file"). */
export function fsError(path: string, err: unknown, what = 'file'): DifFusionError {
  const code = (err as NodeJS.ErrnoException | undefined)?.code;
  if (code === 'ENOENT') return fileError(path, `no such ${what}`, err);
  if (code === 'EISDIR') return fileError(path, `is a folder, expected a ${what}`, err);
  if (code === 'ENOTDIR') return fileError(path, `not a folder`, err);
  if (code === 'EACCES' || code === 'EPERM') return fileError(path, 'permission denied', err);
  const msg = err instanceof Error ? err.message.split('\n')[0] : String(err);
  return fileError(path, code ? `${code}: ${msg}` : msg, err);
}
