/**
 * The training loop both `dif-train ddpm` and `dif-train head` run: it owns the stepping,
 * the progress bar, the per-step log records, NaN handling, the stop signal (Ctrl-C) and
 * the final checkpoint. What one step computes is pluggable ({@link StepFn}): a training
 * backend supplies "draws, loss and gradients" and the update; the loop never looks inside.
 */
import { existsSync } from 'node:fs';
import { DivergenceGuard, SPIKE_WINDOW, setAsideDiverged } from './divergence';
import type { RunContext } from './session';

/** What one step produced. */
export interface StepOutcome {
  /** The step's loss (the batch mean). */
  loss: number;
  /**
   * The fields of the step's log record after `step`, in order (`loss` among them; the loop
   * adds `it/s` and `time`), e.g. `{ loss, lr }` or `{ epoch, loss, loss_in, loss_grad, lr }`.
   */
  record: Record<string, unknown>;
  /** Shown after the loss on the progress line (e.g. `epoch 2/30`). */
  note?: string;
  /** Apply the update; called only when the loss is finite. Absent: already applied. */
  commit?: () => void;
  /** Drop the step's gradients; called instead of `commit` when the loss is not finite. */
  discard?: () => void;
}

/**
 * One training step: `step` steps are done, compute step `step + 1`. A step that applies its
 * update itself (no `commit`) must leave the parameters unchanged when its loss is not finite.
 */
export type StepFn = (step: number) => Promise<StepOutcome>;

export interface LoopOptions {
  run: RunContext;
  /** Steps done (resumed runs) and the step to stop at. */
  start: number;
  total: number;
  step: StepFn;
  /** Write a checkpoint for `step`; returns its path. */
  save: (step: number) => string;
  /** The checkpoint the run resumed from. */
  resumedFrom: string | null;
  /** Whether to write a checkpoint after `step` (a frequency, the end of an epoch). */
  saveAt?: (step: number) => boolean;
  /** After each completed step and its checkpoint, if any (validation). */
  afterStep?: (step: number) => Promise<void>;
  /** Called after every step with its loss. */
  onStep?: (step: number, loss: number) => void;
  /** Testing hook: replace the loss of a step (e.g. inject NaN). */
  lossHook?: (step: number, loss: number) => number;
}

export interface LoopResult {
  /** Last completed step. */
  step: number;
  /** Why training ended. */
  stopped: 'done' | 'interrupted' | 'nan';
  /**
   * Path of the last checkpoint written (or resumed from); after a NaN stop, the last one
   * from before the divergence (finite weights, no loss spike before it), or null.
   */
  checkpoint: string | null;
  /** Losses of the steps run in this call. */
  losses: number[];
}

/** What a training command returns: the loop's result, the backend and the threads. */
export interface TrainResult extends LoopResult {
  backend: string;
  workers: number;
}

/** Run steps `start + 1 .. total`; see {@link LoopOptions}. */
export async function trainingLoop(o: LoopOptions): Promise<LoopResult> {
  const { run } = o;
  let step = o.start;
  let checkpoint = o.resumedFrom;
  let savedStep = o.resumedFrom ? o.start : -1;
  const guard = new DivergenceGuard();
  run.goodCheckpoint = o.resumedFrom;
  /** Checkpoints written since the good one while the loss spiked. */
  const suspect: string[] = [];
  const save = () => {
    checkpoint = o.save(step);
    savedStep = step;
    if (guard.calmAt(step) && run.finiteAt(checkpoint)) {
      run.goodCheckpoint = checkpoint;
      suspect.length = 0;
    } else suspect.push(checkpoint);
  };
  const losses: number[] = [];
  let stopped: LoopResult['stopped'] = 'done';
  run.progress.start(o.total, step);
  try {
    while (step < o.total) {
      // Let the event loop run (Ctrl-C / SIGTERM handlers) even when a step awaits nothing.
      await new Promise((r) => setImmediate(r));
      const r = await o.step(step);
      const loss = o.lossHook ? o.lossHook(step + 1, r.loss) : r.loss;
      if (!Number.isFinite(loss)) {
        r.discard?.();
        stopped = 'nan';
        run.progress.stop();
        const aside = setAsideDiverged(suspect.filter((p) => p !== o.resumedFrom && existsSync(p)));
        checkpoint = run.goodCheckpoint;
        run.event({
          step: step + 1,
          event: 'nan',
          loss: String(loss),
          good_checkpoint: checkpoint,
        });
        run.warn(
          `loss is ${loss} at step ${step + 1}: training stopped; the last checkpoint from before the divergence (finite weights, no loss spike in the ${SPIKE_WINDOW} steps before it) is ${checkpoint ?? '(none written yet)'}${aside.length ? `; ${aside.length} later checkpoint(s) renamed *.diverged.safetensors` : ''}. Resume from it with --resume and a lower learning rate (--lr).`,
        );
        break;
      }
      r.commit?.();
      guard.observe(step + 1, loss);
      step += 1;
      losses.push(loss);
      const itps = run.rate.tick();
      run.log.write({
        step,
        ...r.record,
        loss,
        'it/s': +itps.toFixed(3),
        time: +run.elapsed().toFixed(3),
      });
      run.progress.update(step, {
        rate: itps,
        extra: r.note ? `loss ${loss.toPrecision(4)} | ${r.note}` : `loss ${loss.toPrecision(4)}`,
      });
      o.onStep?.(step, loss);
      if (o.saveAt?.(step)) save();
      await o.afterStep?.(step);
      if (run.stop.stopRequested) {
        stopped = 'interrupted';
        break;
      }
    }
    if (stopped !== 'nan' && savedStep !== step) save();
  } finally {
    run.progress.stop();
  }
  if (stopped === 'interrupted')
    run.warn(
      `interrupted: checkpoint saved at step ${step} (${checkpoint}); continue with --resume`,
    );
  return { step, stopped, checkpoint, losses };
}
