#!/usr/bin/env bash
# Publishability check: pack every workspace package as `pnpm publish` would, install the
# tarballs with plain npm into an empty folder (no workspace, no pnpm), and smoke-test them:
# both CLIs, a baseline fusion, the default model when it is shipped, and a tiny UNet
# forward + gradient on the wasm backend (checks the tfjs gradients bundled in @dif-fusion/tfjs).
#
#   scripts/check-pack.sh [WORKDIR]     (default: a fresh mktemp folder, removed on success)
#
# onnxruntime-node's install script downloads the CUDA 12 libraries from NuGet by default on
# linux/x64 (even for CPU use) and fails the whole `npm install` when NuGet is unreachable.
# The CPU binaries are inside the npm package, so we skip that download with its documented
# switch ONNXRUNTIME_NODE_INSTALL=skip (set ONNXRUNTIME_NODE_INSTALL=cuda12 to test CUDA).
# No dependency arrangement can make that choice for a plain `npm i` (README, "Releasing").
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
WORK="${1:-$(mktemp -d /tmp/dif-fusion-pack.XXXXXX)}"
KEEP="${1:+1}"
PACKS="$WORK/packs"
APP="$WORK/app"
export ONNXRUNTIME_NODE_INSTALL="${ONNXRUNTIME_NODE_INSTALL:-skip}"

rm -rf "$PACKS" "$APP"
mkdir -p "$PACKS" "$APP"
cd "$ROOT"

# Build only what has no dist yet (run `pnpm -r build` first for a fresh check).
for dir in packages/* apps/*; do
  if [ -f "$dir/package.json" ] && [ ! -d "$dir/dist" ]; then
    pnpm --filter "./$dir" build
  fi
done

echo "== pack"
pnpm -r pack --pack-destination "$PACKS" >/dev/null
ls "$PACKS"

echo "== npm install (ONNXRUNTIME_NODE_INSTALL=$ONNXRUNTIME_NODE_INSTALL)"
cd "$APP"
echo '{ "name": "dif-fusion-pack-check", "private": true, "type": "module" }' >package.json
npm install --no-audit --no-fund --loglevel=error "$PACKS"/*.tgz

echo "== dif-fuse --help"
npx --no-install dif-fuse --help >/dev/null
echo "== dif-train --help"
npx --no-install dif-train --help >/dev/null

echo "== baseline fusion"
node "$ROOT/scripts/make-sample-pair.mjs" "$APP/sample" >/dev/null
npx --no-install dif-fuse --ir sample/ir.png --vis sample/vi.png -o out.png --method ycbcr-max
test -s out.png

if [ -d node_modules/@dif-fusion/fuser/models/default ]; then
  echo "== default model fusion"
  npx --no-install dif-fuse --ir sample/ir.png --vis sample/vi.png -o model.png --device cpu
  test -s model.png
else
  echo "== (no models/default in @dif-fusion/fuser: default model fusion skipped)"
fi

echo "== UNet forward + gradients on wasm"
cat >smoke.mjs <<'EOF'
import { fastConv2d, TfOps, TfParamStore, useBackend } from '@dif-fusion/tfjs';
import { UNet } from '@dif-fusion/unet';
import * as tf from '@tensorflow/tfjs-core';

const backend = await useBackend('wasm');
const unet = new UNet({
  in_channel: 4, out_channel: 4, inner_channel: 8, norm_groups: 4,
  channel_multiplier: [1, 2], attn_res: [8], res_blocks: 1, dropout: 0, image_size: 16,
});
const store = TfParamStore.init(unet.params(), 1);
// tfjs-backend-wasm has no Conv2DBackpropFilter kernel: fastConv2d builds conv gradients from forward kernels.
const ops = new TfOps(store, { conv2d: fastConv2d });
const x = tf.randomNormal([1, 16, 16, 4], 0, 1, 'float32', 3);
const level = tf.tensor2d([[0.7]]);
const eps = unet.forward(ops, x, level);
if (eps.shape.join() !== '1,16,16,4') throw new Error(`forward shape ${eps.shape}`);
const loss = (xx) => tf.mean(tf.square(unet.forward(ops, xx, level)));
const { value, grads } = tf.variableGrads(() => loss(x), store.variables());
const gx = tf.grad(loss)(x);
const gp = Object.values(grads).reduce((s, g) => s + tf.sum(tf.square(g)).dataSync()[0], 0);
const gxn = tf.sum(tf.square(gx)).dataSync()[0];
if (!(gp > 0 && Number.isFinite(gp) && gxn > 0 && Number.isFinite(gxn))) throw new Error('bad gradients');
console.log(`backend=${backend} loss=${value.dataSync()[0].toFixed(5)} |dL/dW|^2=${gp.toExponential(3)} |dL/dx|^2=${gxn.toExponential(3)}`);
EOF
node smoke.mjs

echo "== OK: every package packs, installs with npm and runs"
if [ -z "$KEEP" ]; then rm -rf "$WORK"; else echo "(kept $WORK)"; fi
