/**
 * The subcommands `eval`, `queue`, `worker` and `serve`, loaded only when they run.
 *
 * Their modules bring in heavy dependencies (vega for charts, BullMQ and ioredis, fastify,
 * the metrics): `dif-fuse --help` or a plain fusion must not pay for them. The main program
 * holds a light stand-in per subcommand (its name and description, for the command list);
 * running one (its `--help` included) imports its module, registers the real command on a
 * fresh program configured like the main one, and parses the same arguments there, so
 * options, help and errors are exactly the real command's.
 */
import { Command, Help } from 'commander';
import { requireOptional } from './optional';

export interface LazyIo {
  out: (s: string) => void;
  err: (s: string) => void;
}

export interface LazyCommand {
  name: string;
  /** The term of the command list of `dif-fuse --help` ("serve [options]"). */
  term: string;
  description: string;
  /** Registers the real command(s) on a program. */
  register(program: Command, io: LazyIo): Promise<void>;
}

export const LAZY_COMMANDS: readonly LazyCommand[] = [
  {
    name: 'eval',
    term: 'eval [options]',
    description:
      'Evaluate fused images against their infrared/visible pairs: EN SD SF AG MI SCD VIF Qabf Nabf SSIM CC PSNR MSE DeltaE',
    register: async (p, io) => {
      (await import('./eval/index')).registerEvalCommand(p, io);
    },
  },
  {
    name: 'queue',
    term: 'queue',
    description: 'batch fusion over a Redis job queue (BullMQ): add jobs, show their state',
    register: async (p, io) => {
      await requireOptional('queue');
      (await import('./queue/cli')).registerQueueCommands(p, io);
    },
  },
  {
    name: 'worker',
    term: 'worker [options]',
    description:
      'fuse queued pairs until stopped (SIGTERM: finish the job in hand, then exit); run one per machine or more',
    register: async (p, io) => {
      await requireOptional('worker');
      (await import('./queue/cli')).registerQueueCommands(p, io);
    },
  },
  {
    name: 'serve',
    term: 'serve [options]',
    description:
      'Serve a local web page: drop an infrared and a visible image, see the fusion beside its sources and a baseline, with metrics',
    register: async (p, io) => {
      await requireOptional('serve');
      (await import('./serve/command')).registerServeCommand(p, io);
    },
  },
];

/** `dif-fuse help serve` is `dif-fuse serve --help` (the stand-in has no help of its own). */
export function rewriteHelpOfLazy(argv: string[]): string[] {
  if (argv[0] === 'help' && LAZY_COMMANDS.some((c) => c.name === argv[1]) && argv.length === 2)
    return [argv[1], '--help'];
  return argv;
}

/**
 * Adds the stand-ins to `program`. `configure` sets up a fresh program the way the main one
 * is (name, output, exit override); the real command is registered on it and run there.
 */
export function addLazyCommands(
  program: Command,
  io: LazyIo,
  configure: (fresh: Command) => Command,
): void {
  const terms = new Map<Command, string>();
  for (const lazy of LAZY_COMMANDS) {
    const stub = program
      .command(lazy.name)
      .description(lazy.description)
      .argument('[args...]')
      .helpOption(false)
      .allowUnknownOption()
      .allowExcessArguments()
      .action(async (_args: string[], _opts: unknown, cmd: Command) => {
        const real = configure(new Command(program.name()));
        await lazy.register(real, io);
        await real.parseAsync([lazy.name, ...cmd.args], { from: 'user' });
      });
    terms.set(stub, lazy.term);
  }
  const base = new Help();
  program.configureHelp({
    subcommandTerm: (cmd) => terms.get(cmd) ?? base.subcommandTerm(cmd),
  });
}
