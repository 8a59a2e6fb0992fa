/**
 * Transparent huge pages for a one-shot fusion.
 *
 * A fusion runs the model's session once: ONNX Runtime touches its whole working memory
 * (about 0.7 GB for a 640x480 pair with the shipped model) for the first time during that
 * run, and with 4 KB pages the page faults and TLB misses cost about half as much CPU as the
 * arithmetic (measured: the first run of a session takes ~2x the CPU of the second). glibc's
 * malloc backs its large blocks with transparent huge pages (2 MB) when the tunable
 * `glibc.malloc.hugetlb=1` is set (glibc 2.35+, kernel THP mode `madvise`); measured on the
 * 2-core development machine, the whole `dif-fuse` command of a 640x480 pair took ~25% less
 * CPU, with the same peak RSS and byte-identical output. Tunables are read when a process
 * starts, so the CLI starts itself once more with the tunable set (on by default since issue
 * #27's whole-command goal; `DIF_FUSE_HUGEPAGES=0` turns this off). Long-running commands (serve, worker) and commands without a model are left
 * alone: their signal handling stays direct, and they amortise the first run anyway.
 */
import { spawn } from 'node:child_process';
import { readFileSync, statSync } from 'node:fs';
import { isVideoPath } from './video/paths';

const TUNABLE = 'glibc.malloc.hugetlb=1';
const PARENT_ENV = 'DIF_FUSE_RESTARTED_BY';

/**
 * In the restarted process: exit as soon as the process that restarted it is gone (its
 * parent id changes), so `kill -9` of the command a user started leaves no fusion running
 * on. Checked every 50 ms on an unref'd timer (a getppid call); a frame being written is atomic.
 */
export function watchParent(env: NodeJS.ProcessEnv = process.env): void {
  const parent = Number(env[PARENT_ENV]);
  if (!Number.isInteger(parent) || parent <= 0) return;
  const timer = setInterval(() => {
    if (process.ppid !== parent) process.exit(137);
  }, 50);
  timer.unref();
}
const NO_MODEL_COMMANDS = new Set(['help', 'eval', 'queue', 'worker', 'serve']);

/**
 * Whether these `dif-fuse` arguments fuse one image pair with the model in this process: the
 * case whose time the session's first run dominates. Not help, baselines, other commands,
 * and not `--pairs`, videos or frame folders: those run the session many times, so the first
 * run's page faults matter little, and they are the runs a supervisor may kill mid-way.
 */
export function runsModelFusion(argv: string[]): boolean {
  if (argv.length === 0 || NO_MODEL_COMMANDS.has(argv[0])) return false;
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '-h' || a === '--help' || a === '-V' || a === '--version') return false;
    if (a === '--pairs' || a.startsWith('--pairs=')) return false;
    const method = a === '--method' ? argv[i + 1] : a.startsWith('--method=') ? a.slice(9) : null;
    if (method !== null && method !== 'model') return false;
    const input =
      a === '--ir' || a === '--vis'
        ? argv[i + 1]
        : /^--(ir|vis)=/.test(a)
          ? a.slice(a.indexOf('=') + 1)
          : undefined;
    if (input !== undefined && input !== '-' && (isVideoPath(input) || isFolder(input)))
      return false;
  }
  return true;
}

function isFolder(path: string): boolean {
  try {
    return statSync(path).isDirectory();
  } catch {
    return false;
  }
}

/**
 * The environment to restart with, or undefined when huge pages are already asked for, not
 * available (not Linux, not glibc 2.35+, THP not in madvise mode), turned off, or not useful.
 */
export function hugePagesEnv(
  argv: string[],
  env: NodeJS.ProcessEnv = process.env,
): NodeJS.ProcessEnv | undefined {
  // On unless DIF_FUSE_HUGEPAGES=0. The second process is one more thing a supervisor sees:
  // a kill -9 of the first cannot be forwarded, so the second exits within 50 ms of it
  // (watchParent); SIGTERM, SIGHUP and the exit status are passed on.
  if (process.platform !== 'linux' || env.DIF_FUSE_HUGEPAGES === '0') return undefined;
  if ((env.GLIBC_TUNABLES ?? '').includes('glibc.malloc.hugetlb')) return undefined;
  if (!runsModelFusion(argv)) return undefined;
  let mode = '';
  try {
    mode = readFileSync('/sys/kernel/mm/transparent_hugepage/enabled', 'utf8');
  } catch {
    return undefined;
  }
  // 'always': every large mapping gets huge pages already; 'never': none at all.
  if (!mode.includes('[madvise]')) return undefined;
  const glibc = (process.report?.getReport() as { header?: { glibcVersionRuntime?: string } })
    ?.header?.glibcVersionRuntime;
  const [major, minor] = (glibc ?? '0.0').split('.').map(Number);
  if (!(major > 2 || (major === 2 && minor >= 35))) return undefined;
  const tunables = env.GLIBC_TUNABLES ? `${env.GLIBC_TUNABLES}:${TUNABLE}` : TUNABLE;
  return { ...env, GLIBC_TUNABLES: tunables };
}

/**
 * Runs this script again with `env` and mirrors its exit (code or signal). SIGTERM and SIGHUP
 * are passed on; SIGINT from a terminal reaches both processes, so this one only waits.
 */
export function restartWith(env: NodeJS.ProcessEnv): void {
  const child = spawn(process.execPath, [...process.execArgv, ...process.argv.slice(1)], {
    stdio: 'inherit',
    // The restarted process exits when this one is gone (kill -9 cannot be forwarded):
    // see watchParent.
    env: { ...env, [PARENT_ENV]: String(process.pid) },
  });
  const forward = (sig: NodeJS.Signals) => () => child.kill(sig);
  process.on('SIGTERM', forward('SIGTERM'));
  process.on('SIGHUP', forward('SIGHUP'));
  process.on('SIGINT', () => {});
  child.on('error', (err) => {
    process.stderr.write(`error: could not start ${process.execPath}: ${err.message}\n`);
    process.exit(1);
  });
  child.on('exit', (code, signal) => {
    if (signal) {
      process.removeAllListeners(signal);
      process.kill(process.pid, signal);
    } else process.exit(code ?? 1);
  });
}
