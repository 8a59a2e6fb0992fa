/** Conv forward+backward timing, plain tf.conv2d gradients vs fastConv2d. Run from packages/nn:
 *  npx esbuild bench/conv-grad.ts --bundle --platform=node --format=esm --packages=external --outfile=dist/conv-grad.mjs && node dist/conv-grad.mjs wasm */
import '@tensorflow/tfjs-backend-wasm';
import '@tensorflow/tfjs-backend-cpu';
import * as tf from '@tensorflow/tfjs-core';
import { fastConv2d } from '../src/fast-conv';
import '@tensorflow/tfjs-core/dist/register_all_gradients.js';
import { type Conv2dFn, plainConv2d } from '../src/tf-ops';

const backend = process.argv[2] ?? 'wasm';
await tf.setBackend(backend);
await tf.ready();

function time(label: string, fn: () => void, reps = 5) {
  fn();
  const t0 = performance.now();
  for (let i = 0; i < reps; i++) fn();
  console.log(`${label}: ${((performance.now() - t0) / reps).toFixed(1)} ms`);
}

for (const [n, h, w, c, o, k, s, p] of [
  [4, 64, 64, 64, 64, 3, 1, 1],
  [4, 64, 64, 64, 64, 3, 2, 1],
  [4, 64, 64, 64, 128, 1, 1, 0],
  [4, 8, 8, 256, 256, 3, 1, 1],
]) {
  const x = tf.randomNormal([n, h, w, c]) as tf.Tensor4D;
  const wt = tf.randomNormal([k, k, c, o]) as tf.Tensor4D;
  const tag = `${n}x${h}x${w}x${c} -> ${o} k${k} s${s} p${p}`;
  time(`${tag} forward`, () => tf.tidy(() => void plainConv2d(x, wt, s, p).dataSync()));
  const grads = (conv: Conv2dFn) => () =>
    tf.tidy(() => {
      const g = tf.grads((a, b) => tf.sum(conv(a as tf.Tensor4D, b as tf.Tensor4D, s, p)));
      for (const t of g([x, wt])) t.dataSync();
    });
  if (backend !== 'wasm' || k === 1 || h <= 8) time(`${tag} fwd+bwd plain`, grads(plainConv2d), 1);
  time(`${tag} fwd+bwd fast`, grads(fastConv2d));
  x.dispose();
  wt.dispose();
}
