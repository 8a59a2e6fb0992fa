/**
 * `dif-train sample`: draw images from a trained DDPM and save a labelled grid.
 *
 *   dif-train sample --ddpm CKPT -n 16 --steps 50 --sampler ddim --seed 0 -o grid.png
 *   dif-train sample --ddpm CKPT --size 96x64 --intermediate -o chain.png
 *
 * Any width x height (multiples of the UNet's downsampling), as the official sampler: the
 * UNet is built for the training crop (which fixes its attention levels) and run at the
 * sample's size. `--intermediate` writes the official `continous` output instead: x_T and
 * the chain's states every `1 | (steps // 10)` steps, one row per sample (RGB above IR).
 *
 * Unconditional models: one row per sample, `RGB | IR` (the 4 generated channels).
 * Conditional models (infrared -> visible): `IR | RGB | REAL`, the condition crops drawn
 * from `--cond DIR` pairs. Deterministic per seed (x_T, the sampler's noise and the crops),
 * the PNG written atomically.
 */

import { intermediateInterval, SAMPLERS, type SamplerName } from '@dif-fusion/diffusion';
import { deriveSeed, NoiseSchedule, Rng } from '@dif-fusion/schedules';
import { BACKEND_NAMES, type BackendName, TfParamStore, useBackend } from '@dif-fusion/tfjs';
import { buildDenoiser, sampleImages, splitConditional } from '@dif-fusion/train';
import { type Command, InvalidArgumentError, Option } from 'commander';
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
  /** Image size: N (N x N) or width x height (default: the checkpoint's training crop). */
  size?: number | { width: number; height: number };
  /**
   * Write the chain's intermediate states instead of the final samples (the official
   * sampler's `continous=True`): x_T, then every `1 | (steps // 10)` steps down to the result.
   */
  intermediate?: boolean;
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
  const trained = Number(ckpt.model.image_size ?? 64);
  const { width: size, height } =
    typeof o.size === 'object' ? o.size : { width: o.size ?? trained, height: o.size ?? trained };
  const down = 2 ** (m.unet.channel_multiplier.length - 1);
  if (size % down !== 0 || height % down !== 0)
    throw new UserError(
      `--size ${size}x${height}: width and height must be multiples of ${down} (this UNet halves them ${Math.log2(down)} times)`,
    );
  if (conditional && size !== height)
    throw new UserError(
      `--size ${size}x${height}: conditional samples take square crops of the --cond pairs; give one size`,
    );
  const n = o.n ?? 16;
  const steps = o.steps ?? 50;
  const seed = o.seed ?? 0;
  const sampler = o.sampler ?? 'ancestral';
  await useBackend(o.backend ?? 'wasm');
  // The UNet as trained: attn_res names resolutions of the training crop, so the network is
  // built for that crop (its attention levels and weights), then run at any --size.
  const denoiser = buildDenoiser(m.unet, trained, {
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
    `dif-train sample: ${n} x ${size}x${height} from ${ckpt.path} (step ${ckpt.step}${o.ema ? ', EMA' : ''}), ${total} steps, ${sampler}${sampler === 'ddim' ? ` eta ${o.eta ?? 0}` : ''}, seed ${seed}`,
  );
  const every = Math.max(1, Math.round(total / 10));
  const inter = intermediateInterval(total);
  const states: { i: number; data: Float32Array }[] = [];
  const imgs = await sampleImages(denoiser, store, ns, {
    n,
    size,
    height,
    onState: o.intermediate
      ? (i, data) => {
          if (i === total || i % inter === 0) states.push({ i, data: data.slice() });
        }
      : undefined,
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
  const [columns, labels]: [GridColumn[], string[]] = o.intermediate
    ? intermediateColumns(states, n, c, size * height)
    : fixed
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
    const rows = o.intermediate ? (denoiser.dataChannels === 4 ? 2 : 1) * n : n;
    await writeLabelledGrid(o.out, columns, labels, rows, size, height);
  } catch (e) {
    throw new UserError(`${o.out}: cannot write the grid (${formatError(e)})`);
  }
  log(`wrote ${o.out}`);
  return o.out;
}

/**
 * The `--intermediate` grid: one column per kept state (labelled with its step index, `T` for
 * x_T), per sample a row of the visible RGB and, unconditional, a row of the infrared.
 */
function intermediateColumns(
  states: { i: number; data: Float32Array }[],
  n: number,
  c: number,
  plane: number,
): [GridColumn[], string[]] {
  const ir = c === 4;
  const columns = states.map(({ data }) => {
    // Interleave per sample: its RGB row, then its IR row (shown as gray RGB).
    const rows = ir ? 2 : 1;
    const out = new Float32Array(n * rows * 3 * plane);
    for (let s = 0; s < n; s++) {
      for (let k = 0; k < 3; k++)
        out.set(
          data.subarray((s * c + k) * plane, (s * c + k + 1) * plane),
          (s * rows * 3 + k) * plane,
        );
      if (ir)
        for (let k = 0; k < 3; k++)
          out.set(
            data.subarray((s * c + 3) * plane, (s * c + 4) * plane),
            ((s * rows + 1) * 3 + k) * plane,
          );
    }
    return { data: out, channels: 3, pick: [0, 1, 2] };
  });
  return [columns, states.map(({ i }, k) => (k === 0 ? 'T' : String(i)))];
}

/** `--size`: N (N x N) or WxH. */
export function parseSize(v: string): number | { width: number; height: number } {
  const m = /^(\d+)(?:x(\d+))?$/i.exec(v.trim());
  const w = m ? Number(m[1]) : Number.NaN;
  const h = m?.[2] === undefined ? w : Number(m[2]);
  if (!(w >= 8 && h >= 8))
    throw new InvalidArgumentError(`--size must be N or WIDTHxHEIGHT (each at least 8), got ${v}`);
  return m?.[2] === undefined ? w : { width: w, height: h };
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
    .option(
      '--size <n|WxH>',
      "image size: N (square) or width x height, e.g. 96x64 (default: the checkpoint's crop)",
      parseSize,
    )
    .option(
      '--intermediate',
      "write the chain's states instead (official continous: x_T, then every 1|(steps//10) steps)",
    )
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
        size: o.size as SampleOptions['size'],
        intermediate: o.intermediate === true,
        cond: o.cond as string | undefined,
        guidance: o.guidance as number | undefined,
        backend: o.backend as BackendName | undefined,
      });
    });
}
