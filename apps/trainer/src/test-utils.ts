/** Test set-up shared by the trainer's tests (not part of the package's API). */
import { vi } from 'vitest';
import type { DdpmConfig, HeadTrainConfig } from './config';
import { main } from './program';

/**
 * Run `dif-train ...args` in-process; resolves to the exit code, and what went to stderr
 * (the CLI's error lines and the commands' own progress lines) and stdout.
 */
export async function runCli(args: string[]): Promise<{ code: number; err: string; out: string }> {
  let err = '';
  let out = '';
  const spy = vi.spyOn(process.stderr, 'write').mockImplementation((s) => {
    err += String(s);
    return true;
  });
  try {
    const code = await main(args, {
      out: (s) => {
        out += `${s}\n`;
      },
      err: (s) => {
        err += `${s}\n`;
      },
    });
    return { code, err, out };
  } finally {
    spy.mockRestore();
  }
}

/**
 * The trainer tests' tiny DDPM: two levels, attention at 8x8, 16x16 crops, batch 2, AdamW
 * 2e-3, no validation or periodic checkpoints.
 */
export function tinyDdpm(o: { dropout: number; iters: number }): Partial<DdpmConfig> {
  return {
    datasets: { train: { dataroot: null, resolution: 16, batch_size: 2 } },
    model: {
      unet: {
        in_channel: 4,
        out_channel: 4,
        inner_channel: 8,
        norm_groups: 4,
        channel_multiplier: [1, 2],
        attn_res: [8],
        res_blocks: 1,
        dropout: o.dropout,
      },
      beta_schedule: {
        train: { schedule: 'linear', n_timestep: 100, linear_start: 1e-4, linear_end: 0.05 },
      },
      diffusion: { loss: 'l2' },
    },
    train: {
      n_iter: o.iters,
      val_freq: 0,
      save_checkpoint_freq: 0,
      print_freq: 10,
      optimizer: { type: 'adamw', lr: 2e-3 },
    },
  };
}

/** A head on that DDPM: one feature per level (res_blocks 1: reversed indices 1 and 3). */
export function tinyHead(train: Partial<HeadTrainConfig['train']>): Partial<HeadTrainConfig> {
  return {
    datasets: { train: { dataroot: null, resolution: 16, batch_size: 2 } },
    model_df: { feat_scales: [1, 3], t: [5, 20], feat_type: 'dec', mode: 'full' },
    model: {
      beta_schedule: {
        train: { schedule: 'linear', n_timestep: 100, linear_start: 1e-4, linear_end: 0.05 },
      },
    },
    train: { val_images: 2, print_freq: 10, ...train } as HeadTrainConfig['train'],
  };
}
