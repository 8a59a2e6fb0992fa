#!/usr/bin/env node
/**
 * Copy a dif-train checkpoint without its optimizer state (the `optim.*` tensors): the
 * weights with their official names and PyTorch layouts plus the checkpoint metadata, about a
 * third of the size. `dif-train export` accepts the result; `--resume` continues from it with a
 * fresh optimizer (the data order and random draws continue).
 *
 *   node scripts/strip-checkpoint.mjs IN.safetensors OUT.safetensors
 */
import { readSafetensors, writeSafetensorsSync } from '../packages/io/dist/index.js';

const [input, output] = process.argv.slice(2);
if (!input || !output) {
  process.stderr.write('usage: node scripts/strip-checkpoint.mjs IN.safetensors OUT.safetensors\n');
  process.exit(2);
}
try {
  const file = readSafetensors(input);
  const tensors = new Map([...file.tensors].filter(([name]) => !name.startsWith('optim.')));
  writeSafetensorsSync(output, tensors, { ...file.metadata, stripped: 'optimizer state removed' });
  process.stdout.write(
    `wrote ${output}: ${tensors.size} tensors (${file.tensors.size - tensors.size} optimizer tensors dropped)\n`,
  );
} catch (err) {
  process.stderr.write(`error: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exit(1);
}
