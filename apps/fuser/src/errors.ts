/** One-line user-facing errors: the CLI prints `error: <message>` and exits non-zero. */
export class FuseError extends Error {
  constructor(
    message: string,
    readonly exitCode = 1,
  ) {
    super(message);
    this.name = 'FuseError';
  }
}

/** The first line of an error's message, without a stack trace. */
export function oneLine(err: unknown): string {
  const msg = err instanceof Error ? err.message : String(err);
  const line = msg.split('\n').find((l) => l.trim().length > 0) ?? 'unknown error';
  return line.trim();
}
