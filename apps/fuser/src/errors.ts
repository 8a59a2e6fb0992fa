/** The fuser's one-line errors: the project's error root with a chosen exit code. */
import { EXIT } from '@dif-fusion/cli-kit';
import { DifFusionError } from '@dif-fusion/io';

/** A user-facing error of `dif-fuse`; the CLI prints `error: <message>` and exits `exitCode`. */
export class FuseError extends DifFusionError {
  constructor(message: string, exitCode: number = EXIT.failure) {
    super(message, { exitCode });
  }
}
