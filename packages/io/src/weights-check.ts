/**
 * Checks on network weights read from safetensors: every tensor a float dtype and every value
 * finite. A diverged training run leaves NaN or ±Inf weights that export and fuse to a black
 * image; an integer tensor in a weights file would be converted silently. One-line errors name
 * the file and the tensor.
 */
import { fileError } from './errors';
import { type Dtype, readSafetensors, type SafetensorsFile } from './safetensors';

/** Dtypes network weights may have. */
export const WEIGHT_DTYPES: readonly Dtype[] = ['F32', 'F16', 'BF16', 'F64'];

/** Index of the first non-finite value and how many there are, or null when all are finite. */
export function nonFinite(data: ArrayLike<number>): { first: number; count: number } | null {
  let first = -1;
  let count = 0;
  for (let i = 0; i < data.length; i++) {
    const v = data[i];
    // v - v is NaN exactly for NaN and ±Inf: one comparison per value.
    if (v - v !== 0) {
      if (first < 0) first = i;
      count++;
    }
  }
  return count ? { first, count } : null;
}

/**
 * Throws a one-line error naming `file` and the first offending tensor when a tensor is not
 * a float dtype or holds a NaN or ±Inf. `only`: check just the tensors it accepts (e.g. the
 * weights, not an optimizer step counter).
 */
export function checkWeights(
  tensors: ReadonlyMap<string, { dtype?: Dtype; data: ArrayLike<number> }>,
  file: string,
  only: (name: string) => boolean = () => true,
): void {
  for (const [name, t] of tensors) {
    if (!only(name)) continue;
    if (t.dtype !== undefined && !WEIGHT_DTYPES.includes(t.dtype))
      throw fileError(
        file,
        `tensor '${name}' has dtype ${t.dtype}; weights must be ${WEIGHT_DTYPES.join(', ')}`,
      );
    const bad = nonFinite(t.data);
    if (bad)
      throw fileError(
        file,
        `tensor '${name}' holds ${bad.count} non-finite value${bad.count === 1 ? '' : 's'} of ${t.data.length} (first: ${t.data[bad.first]} at index ${bad.first}); the weights diverged, use an earlier checkpoint`,
      );
  }
}

/** {@link readSafetensors} followed by {@link checkWeights} on the tensors `only` accepts. */
export function readWeights(path: string, only?: (name: string) => boolean): SafetensorsFile {
  const file = readSafetensors(path);
  checkWeights(file.tensors, path, only);
  return file;
}
