#!/usr/bin/env node
/**
 * A one-time-step head from a several-step one (issue #26/#27: one UNet pass instead of
 * three): every Block's 1x1 merge conv `decoder.{2i}.block.0.weight` [dim, K dim, 1, 1] is
 * summed over its K input slices to [dim, dim, 1, 1], the rest is copied, optimizer state
 * dropped. Train the result with `model_df.t` = one step and `model_df.merge` true
 * (`dif-train head --init OUT ...`): where the steps' features agree, it computes what the
 * K-step head computes (fusion-head head.test.ts, "merge").
 *
 * The checkpoint's `config` and `model` metadata are rewritten to the one step (the first of
 * the K, or STEP) with `merge`, so `dif-train export` takes the result as it is.
 *
 *   node scripts/default-model/head-one-step.mjs IN.safetensors OUT.safetensors K [STEP]
 */
import { readSafetensors, writeSafetensorsSync } from '../../packages/io/dist/index.js';

const [input, output, kArg, stepArg] = process.argv.slice(2);
const k = Number(kArg);
if (!input || !output || !(Number.isInteger(k) && k > 1)) {
  process.stderr.write(
    'usage: node scripts/default-model/head-one-step.mjs IN.safetensors OUT.safetensors K\n',
  );
  process.exit(2);
}
try {
  const file = readSafetensors(input);
  const tensors = new Map();
  let merged = 0;
  for (const [name, t] of file.tensors) {
    if (name.startsWith('optim.')) continue;
    const isMerge =
      /^decoder\.\d+\.block\.0\.weight$/.test(name) && t.shape[2] === 1 && t.shape[3] === 1;
    if (!isMerge) {
      tensors.set(name, t);
      continue;
    }
    const [o, ik] = t.shape;
    if (ik % k !== 0)
      throw new Error(`${input}: ${name} has ${ik} inputs, not a multiple of K = ${k}`);
    const i = ik / k;
    const data = new Float32Array(o * i);
    for (let a = 0; a < o; a++)
      for (let s = 0; s < k; s++)
        for (let b = 0; b < i; b++) data[a * i + b] += t.data[a * ik + s * i + b];
    tensors.set(name, { ...t, shape: [o, i, 1, 1], data });
    merged++;
  }
  if (merged === 0)
    throw new Error(
      `${input}: no merge convs (decoder.{2i}.block.0.weight, 1x1): not a several-step head`,
    );
  const md = { ...file.metadata, one_step: `merge convs summed over ${k} steps` };
  const config = JSON.parse(md.config);
  const model = JSON.parse(md.model);
  const step = stepArg ? Number(stepArg) : model.time_steps[0];
  config.model_df = { ...config.model_df, t: [step], merge: true };
  md.config = JSON.stringify(config);
  md.model = JSON.stringify({ ...model, time_steps: [step], merge: true });
  writeSafetensorsSync(output, tensors, md);
  process.stdout.write(`wrote ${output}: ${merged} merge convs summed over ${k} steps\n`);
} catch (err) {
  process.stderr.write(`error: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exit(1);
}
