/**
 * Where the model lives: `--model DIR`, else $DIF_FUSION_MODEL, else the shipped default
 * model. The default is looked up relative to this package so it works both from the
 * repository checkout (<repo>/models/default) and from an installed package
 * (<package>/models/default, copied in by the package's `prepack` script).
 */
import { createHash } from 'node:crypto';
import { existsSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { FuseError } from './errors';

const HERE = dirname(fileURLToPath(import.meta.url)); // <package>/dist or <package>/src

/**
 * Candidate locations of the shipped default model: in a repository checkout (this package
 * at <repo>/apps/fuser, next to pnpm-workspace.yaml) <repo>/models/default, which a stale
 * packed copy must not shadow; then the copy inside the package (an installed package).
 */
export function defaultModelCandidates(): string[] {
  const pkg = resolve(HERE, '..');
  const repo = resolve(pkg, '..', '..');
  const inPackage = join(pkg, 'models', 'default');
  return existsSync(join(repo, 'pnpm-workspace.yaml'))
    ? [join(repo, 'models', 'default'), inPackage]
    : [inPackage];
}

/**
 * The folder of the shipped default model (model.onnx, config.json, MODEL_CARD.md): inside the
 * installed package, or the repository's models/default in a checkout. For the library API,
 * e.g. `loadFusionModel(defaultModelDir())` of @dif-fusion/onnx, without knowing where npm put
 * the package.
 */
export function defaultModelDir(): string {
  for (const c of defaultModelCandidates()) if (existsSync(join(c, 'model.onnx'))) return c;
  throw new FuseError(
    `the shipped default model is missing (looked in ${defaultModelCandidates().join(' and ')}); pass --model DIR or use a baseline --method`,
  );
}

export function resolveModelDir(flag: string | undefined): { dir: string; source: string } {
  if (flag) return { dir: resolve(flag), source: '--model' };
  const env = process.env.DIF_FUSION_MODEL;
  if (env) return { dir: resolve(env), source: 'DIF_FUSION_MODEL' };
  return { dir: defaultModelDir(), source: 'default' };
}

/** Cheap structural check before ONNX Runtime sees the folder, so the error is one clear line. */
export function checkModelDir(dir: string): void {
  if (!existsSync(dir)) throw new FuseError(`model folder ${dir} does not exist`);
  if (!statSync(dir).isDirectory()) throw new FuseError(`model folder ${dir} is not a folder`);
  for (const f of ['model.onnx', 'config.json'])
    if (!existsSync(join(dir, f)))
      throw new FuseError(`model folder ${dir} is invalid: ${f} is missing`);
}

/**
 * The content of a model folder: sha256 over model.onnx, its external data file when there is
 * one, and config.json (each name and length hashed before the bytes). Queued jobs pin the
 * model by this, so a worker that sees another folder under the same path refuses it.
 */
export function modelDigest(dir: string): string {
  const h = createHash('sha256');
  for (const name of ['model.onnx', 'model.onnx.data', 'config.json']) {
    const file = join(dir, name);
    if (!existsSync(file)) continue;
    const bytes = readFileSync(file);
    h.update(`${name}\0${bytes.length}\0`);
    h.update(bytes);
  }
  return h.digest('hex');
}
