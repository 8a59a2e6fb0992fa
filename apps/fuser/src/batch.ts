/**
 * The folders of a batch: `--pairs` takes folders holding ir/ and vi/, or glob patterns of
 * such folders (`'data/seq*'`, quoted so the shell leaves it alone; tinyglobby expands it),
 * and with `--recursive` every folder below them with the same layout. Each pair folder
 * gets `rel`, its path from the argument (a folder, or a pattern's fixed leading part), so
 * the outputs mirror the inputs: OUTDIR/<rel>/<stem>.<ext>.
 */
import { readdirSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { glob, isDynamicPattern } from 'tinyglobby';
import { FuseError } from './errors';

export interface PairFolder {
  /** Absolute path of a folder holding ir/ and vi/. */
  dir: string;
  /** Its path below the --pairs argument ('' for the argument itself). */
  rel: string;
}

const IR_NAMES = new Set(['ir', 'infrared']);
const VI_NAMES = new Set(['vi', 'vis', 'visible']);

function subdirs(dir: string): string[] {
  try {
    return readdirSync(dir, { withFileTypes: true })
      .filter((e) => !e.name.startsWith('.') && (e.isDirectory() || isDirLink(join(dir, e.name))))
      .map((e) => e.name)
      .sort();
  } catch {
    return [];
  }
}

function isDirLink(path: string): boolean {
  try {
    return statSync(path).isDirectory();
  } catch {
    return false;
  }
}

/** A folder holds pairs when it has an IR and a visible sub-folder (any letter case). */
export function holdsPairs(dir: string): boolean {
  const names = subdirs(dir).map((n) => n.toLowerCase());
  return names.some((n) => IR_NAMES.has(n)) && names.some((n) => VI_NAMES.has(n));
}

/** Every folder at or below `dir` holding pairs (not descending into ir/ and vi/ themselves). */
function walk(dir: string, out: string[], seen = new Set<string>()): void {
  if (seen.has(dir)) return;
  seen.add(dir);
  if (holdsPairs(dir)) out.push(dir);
  for (const name of subdirs(dir)) {
    const low = name.toLowerCase();
    if (IR_NAMES.has(low) || VI_NAMES.has(low)) continue;
    walk(join(dir, name), out, seen);
  }
}

/** The fixed leading folders of a glob pattern (`data/seq*` -> `data`). */
function globBase(pattern: string): string {
  const parts = pattern.split('/');
  const fixed: string[] = [];
  for (const p of parts) {
    if (isDynamicPattern(p)) break;
    fixed.push(p);
  }
  return fixed.join('/') || '.';
}

/** The pair folders of the --pairs arguments; one-line errors naming the argument. */
export async function findPairFolders(args: string[], recursive = false): Promise<PairFolder[]> {
  const found: PairFolder[] = [];
  for (const arg of args) {
    let roots: string[];
    let base: string;
    if (isDynamicPattern(arg)) {
      base = resolve(globBase(arg));
      roots = (await glob(arg, { onlyDirectories: true, absolute: true, expandDirectories: false }))
        .map((p) => resolve(p))
        .sort();
      if (roots.length === 0)
        throw new FuseError(`${arg}: no folder matches this pattern (--pairs)`);
    } else {
      let st: ReturnType<typeof statSync>;
      try {
        st = statSync(arg);
      } catch {
        throw new FuseError(`${arg}: no such folder (--pairs)`);
      }
      if (!st.isDirectory())
        throw new FuseError(`${arg}: not a folder (--pairs needs a folder holding ir/ and vi/)`);
      // One folder: its pairs go to OUTDIR itself; several (a shell-expanded glob): to
      // OUTDIR/<folder name>/.
      roots = [resolve(arg)];
      base = args.length > 1 ? dirname(roots[0]) : roots[0];
    }
    const dirs: string[] = [];
    for (const r of roots) {
      if (recursive) walk(r, dirs);
      else if (!isDynamicPattern(arg) || holdsPairs(r)) dirs.push(r);
    }
    if (dirs.length === 0)
      throw new FuseError(
        `${arg}: no folder holding ir/ and vi/${recursive ? ' found below it' : ' matches'} (--pairs)`,
      );
    for (const dir of dirs) found.push({ dir, rel: relative(base, dir) });
  }
  return found;
}
