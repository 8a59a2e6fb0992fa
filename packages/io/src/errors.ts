/**
 * Errors a user can act on: the project's one error root lives in @dif-fusion/schedules
 * (re-exported here, where the file helpers below build on it).
 */
import { type DifFusionError, fileError } from '@dif-fusion/schedules';

export {
  DifFusionError,
  type DifFusionErrorOptions,
  fileError,
  formatError,
  UserError,
} from '@dif-fusion/schedules';

/** Map a Node fs error for `path` to a one-line DifFusionError (ENOENT → "no such file"). */
export function fsError(path: string, err: unknown, what = 'file'): DifFusionError {
  const code = (err as NodeJS.ErrnoException | undefined)?.code;
  if (code === 'ENOENT') return fileError(path, `no such ${what}`, err);
  if (code === 'EISDIR') return fileError(path, `is a folder, expected a ${what}`, err);
  if (code === 'ENOTDIR') return fileError(path, `not a folder`, err);
  if (code === 'EACCES' || code === 'EPERM') return fileError(path, 'permission denied', err);
  if (code === 'ENOSPC') return fileError(path, 'no space left on device (ENOSPC)', err);
  const msg = err instanceof Error ? err.message.split('\n')[0] : String(err);
  // Node's messages already start with the code ("EIO: i/o error, write"): not twice.
  return fileError(path, code && !msg.startsWith(`${code}:`) ? `${code}: ${msg}` : msg, err);
}
