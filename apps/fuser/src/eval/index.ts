/**
 * `dif-fuse eval`: registered on the main program by `registerEvalCommand(program)`;
 * `runEval(options)` is the same thing for programs and tests.
 */
import type { ProgressStream } from '@dif-fusion/cli-kit';
import type { Command } from 'commander';
import { FuseError } from '../errors';
import { runEval } from './run';

export { chartPng, chartSvg } from './chart';
export {
  bestMethods,
  comparableMethods,
  type EvalRow,
  formatTable,
  type Stat,
  type Summary,
  summarize,
  toCsv,
  toJson,
} from './report';
export {
  type EvalOptions,
  type EvalProblem,
  type EvalResult,
  runEval,
} from './run';

export interface EvalIo {
  out?: (line: string) => void;
  err?: (line: string) => void;
  progressStream?: ProgressStream;
  /** Writes bytes to stdout (`--json -`); default: process.stdout. */
  writeStdout?: (data: Uint8Array) => Promise<void>;
}

/**
 * Adds the `eval` subcommand to a commander program. Errors surface as FuseError (one line);
 * per-image problems are printed as they happen, and make the command fail at the end, after
 * the table and the files were written for the rest.
 */
export function registerEvalCommand(program: Command, io: EvalIo = {}): Command {
  return program
    .command('eval')
    .description(
      'Evaluate fused images against their infrared/visible pairs: EN SD SF AG MI SCD VIF Qabf Nabf SSIM CC PSNR MSE DeltaE',
    )
    .requiredOption(
      '--pairs <dir>',
      'folder holding ir/ and vi/ (or infrared/ and visible/) source images, matched by file stem',
    )
    .requiredOption(
      '--fused <dirs...>',
      'folders of fused images <stem>.<ext>, one per method (method name = folder name); list several or repeat the flag',
    )
    .option(
      '--csv <file>',
      'write per-image metrics (image, method, every metric) as CSV; - writes to stdout',
    )
    .option('--json <file>', 'write {method: {metric: {mean, std}}} as JSON; - writes to stdout')
    .option('--chart <file.png>', 'write a bar chart of the means (PNG); - writes to stdout')
    .addHelpText(
      'after',
      '\nMissing fused images, size mismatches and unreadable files are reported one line each; the rest is evaluated.\nLower is better for MSE, Nabf and DeltaE; higher for the others.\nWith one of --csv/--json/--chart given as -, that file goes to stdout and the table to stderr.',
    )
    .action(
      async (opts: {
        pairs: string;
        fused: string[];
        csv?: string;
        json?: string;
        chart?: string;
      }) => {
        const res = await runEval({
          pairs: opts.pairs,
          fused: opts.fused,
          csv: opts.csv,
          json: opts.json,
          chart: opts.chart,
          out: io.out,
          err: io.err,
          progress: io.progressStream,
          writeStdout: io.writeStdout,
        });
        // Like batch fusion: the outputs cover what could be evaluated, the exit status is 1.
        if (res.problems.length > 0)
          throw new FuseError(
            `${res.problems.length} problem(s) reported above; the results cover the ${res.rows.length} fused image(s) that could be evaluated`,
          );
      },
    );
}
