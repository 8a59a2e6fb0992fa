#!/usr/bin/env bash
# What the diffusion model contributes (issue #26, item 1): the v3 head architecture (full,
# output luma, source_skip) trained from scratch at an equal budget on the features of
#   trained  the shipped DDPM (models/default/ddpm.safetensors, step 12,994)
#   random   the same UNet freshly initialised (`dif-train ddpm --iters 1 --lr 1e-30`: init, an update below float32 resolution)
#   none     the same UNet with every weight zero: every decoder feature is exactly 0, so the
#            head sees the sources only (through source_skip), with the same parameter count
# and with time steps {5}, {5,50}, {5,50,100} (for `none` the steps do not matter: one run).
# Each head is exported, fuses the validation pairs, and `dif-fuse eval` compares them.
#
#   bash scripts/default-model/ablation.sh      EPOCHS (30), LOSS_ARGS (v3's loss), RUN,
#     BASE (the head config the time steps are put into: head-v2.json; head-v4-scratch.json
#     carries v4's salient target options for the rerun with the salient target)
set -euo pipefail
cd "$(dirname "$0")/../.."
SHARED=${DIF_FUSION_SHARED:-../shared}
DATA=$SHARED/data/roadscene
RUN=${RUN:-runs/ablation}
EPOCHS=${EPOCHS:-30}
LOSS_ARGS=${LOSS_ARGS:-"--loss-space luma --alpha 0.3"}
BASE=${BASE:-scripts/default-model/head-v2.json}
[ -d "$DATA/train" ] || { echo "error: $DATA/train: not found (set DIF_FUSION_SHARED)" >&2; exit 1; }
train() { node apps/trainer/dist/cli.js "$@"; }
fuse() { node apps/fuser/dist/cli.js "$@"; }
mkdir -p "$RUN/ddpm" "$RUN/configs" "$RUN/fused"

# The three DDPMs.
[ -f "$RUN/ddpm/trained.safetensors" ] || cp models/default/ddpm.safetensors "$RUN/ddpm/trained.safetensors"
if [ ! -f "$RUN/ddpm/random.safetensors" ]; then
  train ddpm -c scripts/default-model/ddpm-v2.json --data "$DATA/train" -o "$RUN/ddpm/random-run" \
    --iters 1 --lr 1e-30 --no-progress > "$RUN/ddpm/random.log" 2>&1
  cp "$(ls "$RUN"/ddpm/random-run/checkpoints/*.safetensors | tail -1)" "$RUN/ddpm/random.safetensors"
fi
[ -f "$RUN/ddpm/none.safetensors" ] || node -e '
  const io = await import("./packages/io/dist/index.js");
  const f = io.readSafetensors(process.argv[1]);
  const t = new Map([...f.tensors].filter(([k]) => !k.startsWith("optim.")).map(([k, v]) =>
    [k, { ...v, data: new Float32Array(v.data.length) }]));
  io.writeSafetensorsSync(process.argv[2], t, { ...f.metadata, ablation: "every weight zero" });
' "$RUN/ddpm/trained.safetensors" "$RUN/ddpm/none.safetensors"

# Head configs per time-step set ($BASE with model_df.t replaced).
for ts in 5 5,50 5,50,100; do
  node -e '
    const fs = require("node:fs");
    const src = fs.readFileSync(process.argv[3], "utf8").replace(/^\s*\/\/.*$/gm, "");
    const c = JSON.parse(src); c.model_df.t = process.argv[1].split(",").map(Number);
    fs.writeFileSync(process.argv[2], JSON.stringify(c, null, 2));
  ' "$ts" "$RUN/configs/head-t$ts.json" "$BASE"
done

one() { # ddpm steps
  local name="$1-t$2" out="$RUN/heads/$1-t$2"
  if [ ! -f "$RUN/heads/$name.done" ]; then
    mkdir -p "$RUN/heads"
    if [ -d "$out/checkpoints" ]; then
      train head -o "$out" --resume --epochs "$EPOCHS" --no-progress
    else
      # shellcheck disable=SC2086
      train head -c "$RUN/configs/head-t$2.json" --ddpm "$RUN/ddpm/$1.safetensors" --data "$DATA/train" \
        -o "$out" --epochs "$EPOCHS" --no-progress --mode full --output luma --source-skip $LOSS_ARGS
    fi > "$RUN/heads/$name.log" 2>&1
    touch "$RUN/heads/$name.done"
  fi
  if [ ! -f "$RUN/model-$name/model.onnx" ]; then
    train export --ddpm "$RUN/ddpm/$1.safetensors" --head "$out" -o "$RUN/model-$name" >/dev/null
  fi
  [ -d "$RUN/fused/$name" ] || fuse --pairs "$DATA/val" -o "$RUN/fused/$name" --model "$RUN/model-$name" --seed 0 --quiet
}
for ts in 5 5,50 5,50,100; do one trained "$ts"; done
one none 5
for ts in 5 5,50 5,50,100; do one random "$ts"; done
[ -d "$RUN/fused/ycbcr-max" ] || fuse --pairs "$DATA/val" -o "$RUN/fused/ycbcr-max" --method ycbcr-max --quiet
fuse eval --pairs "$DATA/val" --fused "$RUN"/fused/* --json "$RUN/eval.json" | tee "$RUN/eval.txt"
