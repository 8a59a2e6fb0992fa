#!/usr/bin/env bash
# v4 loss variants (issue #26, item 2): the v3 head fine-tuned at an equal budget with the
# salient target (fusion-head `./target`) at several gradient weights, exported, fused on the
# validation pairs and evaluated beside ycbcr-max and v3.
#   VARIANTS="name:alpha[:extra args] ..."  EPOCHS (40)  RUN (runs/v4)  INIT (v3 head)
set -euo pipefail
cd "$(dirname "$0")/../.."
SHARED=${DIF_FUSION_SHARED:-../shared}
DATA=$SHARED/data/roadscene
RUN=${RUN:-runs/v4}
EPOCHS=${EPOCHS:-40}
INIT=${INIT:-models/default/head.safetensors}
DDPM=${DDPM:-models/default/ddpm.safetensors}
CONFIG=${CONFIG:-scripts/default-model/head-v2.json}
VARIANTS=${VARIANTS:-"salient-a03:0.3 salient-a06:0.6"}
train() { node apps/trainer/dist/cli.js "$@"; }
fuse() { node apps/fuser/dist/cli.js "$@"; }
mkdir -p "$RUN/fused"
for v in $VARIANTS; do
  IFS=: read -r name alpha extra <<< "$v"
  out="$RUN/$name"
  if [ ! -f "$out.done" ]; then
    if [ -d "$out/checkpoints" ]; then train head -o "$out" --resume --epochs "$EPOCHS" --no-progress
    else
      # shellcheck disable=SC2086
      train head -c "$CONFIG" --init "$INIT" --ddpm "$DDPM" --data "$DATA/train" -o "$out" \
        --epochs "$EPOCHS" --lr 3e-4 --seed 7 --alpha "$alpha" --loss-space luma --target salient \
        --mode full --output luma --source-skip --no-progress $extra
    fi > "$out.log" 2>&1
    touch "$out.done"
  fi
  [ -f "$RUN/model-$name/model.onnx" ] || train export --ddpm "$DDPM" --head "$out" -o "$RUN/model-$name" > /dev/null
  [ -d "$RUN/fused/$name" ] || fuse --pairs "$DATA/val" -o "$RUN/fused/$name" --model "$RUN/model-$name" --seed 0 -q
done
[ -d "$RUN/fused/v3" ] || fuse --pairs "$DATA/val" -o "$RUN/fused/v3" --model models/default --seed 0 -q
[ -d "$RUN/fused/ycbcr-max" ] || fuse --pairs "$DATA/val" -o "$RUN/fused/ycbcr-max" --method ycbcr-max -q
fuse eval --pairs "$DATA/val" --fused "$RUN"/fused/* --json "$RUN/eval.json" | tee "$RUN/eval.txt"
