/** Standard streams of the command-line tools. */

/**
 * `dif-fuse --help | head`, `dif-train ... | head`: a reader that closes the pipe early is not
 * an error. Without this, the next write throws EPIPE as an unhandled 'error' event with a
 * stack trace; with it the process exits with its exit code so far.
 */
export function exitOnClosedPipe(
  streams: NodeJS.WriteStream[] = [process.stdout, process.stderr],
): void {
  for (const s of streams)
    s.on('error', (err: NodeJS.ErrnoException) => {
      if (err.code === 'EPIPE') process.exit(process.exitCode ?? 0);
      throw err;
    });
}
