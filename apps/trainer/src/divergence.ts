/**
 * Which checkpoints were written before a run diverged. Before a loss turns NaN it usually
 * spikes for a while (Adam blowing the weights up to |w| ~ 1e6): a checkpoint written then is
 * finite but useless to resume from. A step's loss is a spike when it exceeds
 * {@link SPIKE_FACTOR} times the median of the last {@link SPIKE_WINDOW} non-spike losses; a
 * checkpoint is "before the divergence" when its weights are finite and no spike happened in
 * the {@link SPIKE_WINDOW} steps before it.
 */
import { renameSync } from 'node:fs';
import type { TorchWeights } from '@dif-fusion/nn';

/** A loss above this many times the recent median is a spike. */
export const SPIKE_FACTOR = 10;
/** Losses the median is taken over, and clean steps a checkpoint needs before it. */
export const SPIKE_WINDOW = 50;
/** Losses needed before spikes are judged (the first steps of a run vary most). */
const MIN_HISTORY = 5;

export class DivergenceGuard {
  private readonly recent: number[] = [];
  private lastSpike = Number.NEGATIVE_INFINITY;

  /** Records step `step`'s loss; returns whether it is a spike. */
  observe(step: number, loss: number): boolean {
    if (this.recent.length >= MIN_HISTORY && loss > SPIKE_FACTOR * median(this.recent)) {
      this.lastSpike = step;
      return true;
    }
    this.recent.push(loss);
    if (this.recent.length > SPIKE_WINDOW) this.recent.shift();
    return false;
  }

  /** Whether a checkpoint written after `step` predates the divergence (no recent spike). */
  calmAt(step: number): boolean {
    return step - this.lastSpike >= SPIKE_WINDOW;
  }
}

function median(v: number[]): number {
  const s = [...v].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

/** Whether every weight is finite. */
export function weightsFinite(weights: TorchWeights): boolean {
  for (const t of weights.values()) for (const v of t.data) if (!Number.isFinite(v)) return false;
  return true;
}

/**
 * Renames checkpoints written after the divergence began (`ddpm-00000300.safetensors` ->
 * `ddpm-00000300.diverged.safetensors`), so `--resume RUN` picks the one before it; they
 * are kept for inspection. Returns the new paths.
 */
export function setAsideDiverged(paths: string[]): string[] {
  return paths.map((p) => {
    const to = p.replace(/\.safetensors$/, '.diverged.safetensors');
    renameSync(p, to);
    return to;
  });
}
