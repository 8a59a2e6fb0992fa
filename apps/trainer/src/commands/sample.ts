/**
 * `dif-train sample`: draw images from a trained DDPM and save a labelled grid.
 *
 *   dif-train sample --ddpm CKPT -n 16 --steps 50 --sampler ddim --seed 0 -o grid.png
 *
 * Unconditional models: one row per sample, `RGB | IR` (the 4 generated channels).
 * Conditional models (infrared -> visible): `IR | RGB | REAL`, the condition crops drawn
 * from `--cond DIR` pairs. Deterministic per seed (x_T, the sampler's noise and the crops),
 * the PNG written atomically.
 */

import { SAMPLERS, type SamplerName } from '@dif-fusion/diffusion';
import { deriveSeed, NoiseSchedule, Rng } from '@dif-fusion/schedules';
import { BACKEND_NAMES, type BackendName, TfParamStore, useBackend } from '@dif-fusion/tfjs';
import { buildDenoiser, sampleImages, splitConditional } from '@dif-fusion/train';
import { type Command, Option } from 'commander';
import { loadCheckpoint } from '../checkpoint';
import { int, nonNegative, QUIET_FLAGS, QUIET_HELP, quietLog } from '../cli-args';
import { ddpmSamplingOf } from '../config';
import { makeSampler, openPairs } from '../data';
import { formatError, UserError } from '../errors';
import { type GridColumn, writeLabelledGrid } from '../images';

export interface SampleOptions {
  /** DDPM checkpoint (file, checkpoints folder or run folder). */
  ddpm: string;
  /** Output PNG. */
  out: string;
  /** Samples (default 16). */
  n?: number;
  /** Network passes (default 50; the chain respaced). */
  steps?: number;
  sampler?: SamplerName;
  /** DDIM eta (default 0). */
  eta?: number;
  seed?: number;
  /** Sample with the EMA weights (train.ema_decay). */
  ema?: boolean;
  /** Image size (default: the checkpoint's training crop). */
  size?: number;
  /** Conditional models: pairs (ir/ + vi/) whose infrared crops are the conditions. */
  cond?: string;
  /** Classifier-free guidance weight (conditional models, default 0). */
  guidance?: number;
  backend?: BackendName;
  /** Progress lines (default: stderr). */
  log?: (line: string) => void;
}

/** Draw the samples and write the grid; returns the path written. */
export async function runSample(o: SampleOptions): Promise<string> {
  const log = o.log ?? ((l: string) => process.stderr.write(`${l}\n`));
  let ckpt: ReturnType<typeof loadCheckpoint>;
  try {
    ckpt = loadCheckpoint(o.ddpm, 'ddpm', { ema: o.ema });
  } catch (e) {
    throw new UserError(formatError(e));
  }
  const m = ddpmSamplingOf(ckpt.config, ckpt.path);
  // The chain the UNet was trained on: a config's beta_schedule.val may be the shipped
  // default merged in (T = 2000), not one chosen for this model.
  const schedule = m.schedule ?? m.val;
  if (!schedule) throw new UserError(`${ckpt.path}: the checkpoint holds no beta schedule`);
  const conditional = m.diffusion.conditional === true;
  if (conditional && !o.cond)
    throw new UserError(
      `${ckpt.path}: a conditional DDPM (infrared -> visible): pass --cond DIR (pairs whose infrared conditions the samples)`,
    );
  if (!conditional && (o.cond !== undefined || o.guidance !== undefined))
    throw new UserError('--cond and --guidance apply to conditional DDPMs only');
  const size = o.size ?? Number(ckpt.model.image_size ?? 64);
  const n = o.n ?? 16;
  const steps = o.steps ?? 50;
  const seed = o.seed ?? 0;
  const sampler = o.sampler ?? 'ancestral';
  await useBackend(o.backend ?? 'wasm');
  // The UNet as trained: attn_res names resolutions of the training crop, so the network is
  // built for that crop (its attention levels and weights), then run at any --size.
  const trainedSize = Number(ckpt.model.image_size ?? size);
  const denoiser = buildDenoiser(m.unet, trainedSize, {
    varType: m.diffusion.var_type,
    which: m.which,
  });
  const store = TfParamStore.fromTorch(denoiser.params, ckpt.weights);
  let fixed: { x: Float32Array; condition: Float32Array } | null = null;
  if (conditional) {
    const pairs = await openPairs(o.cond!);
    const crops = makeSampler(pairs, {
      crop: size,
      batch: n,
      seed: deriveSeed(seed, 'sampleGrid'),
    });
    fixed = splitConditional((await crops.next()).img, n);
  }
  const ns = new NoiseSchedule(schedule);
  const total = Math.min(steps, ns.numTimesteps);
  log(
    `dif-train sample: ${n} x ${size}x${size} from ${ckpt.path} (step ${ckpt.step}${o.ema ? ', EMA' : ''}), ${total} steps, ${sampler}${sampler === 'ddim' ? ` eta ${o.eta ?? 0}` : ''}, seed ${seed}`,
  );
  const every = Math.max(1, Math.round(total / 10));
  const imgs = await sampleImages(denoiser, store, ns, {
    n,
    size,
    steps,
    rng: new Rng(seed),
    diffusion: m.diffusion,
    sampler,
    eta: o.eta,
    condition: fixed?.condition,
    guidance: o.guidance,
    onStep: (done, all) => {
      if (done % every === 0 || done === all) log(`  step ${done}/${all}`);
    },
  });
  store.dispose();
  const c = denoiser.dataChannels;
  const [columns, labels]: [GridColumn[], string[]] = fixed
    ? [
        [
          { data: fixed.condition, channels: 1, pick: [0] },
          { data: imgs, channels: c, pick: [0, 1, 2] },
          { data: fixed.x, channels: 3, pick: [0, 1, 2] },
        ],
        ['IR', 'RGB', 'REAL'],
      ]
    : [
        [
          { data: imgs, channels: c, pick: [0, 1, 2] },
          { data: imgs, channels: c, pick: [3] },
        ],
        ['RGB', 'IR'],
      ];
  try {
    await writeLabelledGrid(o.out, columns, labels, n, size);
  } catch (e) {
    throw new UserError(`${o.out}: cannot write the grid (${formatError(e)})`);
  }
  log(`wrote ${o.out}`);
  return o.out;
}

/** Register `dif-train sample` on the CLI program. */
export function registerSampleCommand(program: Command): void {
  program
    .command('sample')
    .description('draw samples from a DDPM checkpoint and save a labelled grid (RGB | IR)')
    .requiredOption('--ddpm <ckpt>', 'DDPM checkpoint: file, checkpoints folder or run folder')
    .requiredOption('-o, --out <png>', 'output grid (PNG)')
    .option('-n <count>', 'samples (default 16)', int('-n', 1))
    .option('--steps <n>', 'network passes, the chain respaced (default 50)', int('--steps', 1))
    .addOption(new Option('--sampler <name>', 'ancestral (default) or ddim').choices([...SAMPLERS]))
    .option(
      '--eta <x>',
      'DDIM eta: 0 deterministic (default), 1 ancestral-like',
      nonNegative('--eta'),
    )
    .option('--seed <n>', 'seed of x_T and the sampler noise (default 0)', int('--seed', 0))
    .option('--ema', 'sample with the EMA weights (trained with train.ema_decay)')
    .option('--size <n>', "image size (default: the checkpoint's crop)", int('--size', 8))
    .option(
      '--cond <dir>',
      'conditional DDPMs: pairs (ir/ + vi/) whose infrared crops condition the samples',
    )
    .option(
      '--guidance <w>',
      'classifier-free guidance weight (conditional DDPMs)',
      nonNegative('--guidance'),
    )
    .addOption(
      new Option('--backend <name>', 'tfjs backend (default wasm)').choices([...BACKEND_NAMES]),
    )
    .addHelpText(
      'after',
      `
Examples:
  dif-train sample --ddpm runs/ddpm -n 16 --steps 50 --sampler ddim --seed 0 -o grid.png
  dif-train sample --ddpm runs/colour --cond DIR/test --guidance 1 -o colour.png`,
    )
    .option(QUIET_FLAGS, QUIET_HELP)
    .action(async (o: Record<string, unknown>) => {
      await runSample({
        log: quietLog(o),
        ddpm: o.ddpm as string,
        out: o.out as string,
        n: o.n as number | undefined,
        steps: o.steps as number | undefined,
        sampler: o.sampler as SamplerName | undefined,
        eta: o.eta as number | undefined,
        seed: o.seed as number | undefined,
        ema: o.ema === true,
        size: o.size as number | undefined,
        cond: o.cond as string | undefined,
        guidance: o.guidance as number | undefined,
        backend: o.backend as BackendName | undefined,
      });
    });
}
