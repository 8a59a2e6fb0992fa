/** Test set-up shared by the trainer's tests (not part of the package's API). */
import { vi } from 'vitest';
import { main } from './program';

/**
 * Run `dif-train ...args` in-process; resolves to the exit code, and what went to stderr
 * (the CLI's error lines and the commands' own progress lines) and stdout.
 */
export async function runCli(args: string[]): Promise<{ code: number; err: string; out: string }> {
  let err = '';
  let out = '';
  const spy = vi.spyOn(process.stderr, 'write').mockImplementation((s) => {
    err += String(s);
    return true;
  });
  try {
    const code = await main(args, {
      out: (s) => {
        out += `${s}\n`;
      },
      err: (s) => {
        err += `${s}\n`;
      },
    });
    return { code, err, out };
  } finally {
    spy.mockRestore();
  }
}
