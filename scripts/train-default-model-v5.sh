#!/usr/bin/env bash
# Reproduces models/default v5 from the shipped v4 files (issues #26, #27): the v4 head made a
# one-time-step head (one UNet pass per fusion instead of three), then fine-tuned on the salient
# target at one step.
#   1. the ablation with the salient target (scripts/default-model/ablation.sh, BASE
#      head-v4-scratch.json): what the DDPM and the time steps contribute
#   2. head-one-step.mjs: v4's merge convs summed over its three steps (t = [5], merge)
#   3. fine-tuned 20 epochs at one step (scripts/default-model/v5-variants.sh, ONE_STEP=1: v4's
#      head-v4.json loss, lr 1e-4, --seed 9, with the target options in OPTIONS)
#   4. export (int8, as shipped since session 7), fusion of the validation pairs, `dif-fuse eval` beside v4, v3 and the baselines,
#      strips, and the shipped files (weights without optimizer state).
# Stages that finished are skipped. Needs the RoadScene pairs at ../shared/data/roadscene (or
# DIF_FUSION_SHARED=/path/to/shared).   RUN (runs/v5)  SHIP (1)  OPTIONS (the target options over head-v4.json's)
set -euo pipefail
cd "$(dirname "$0")/.."
SHARED=${DIF_FUSION_SHARED:-../shared}
DATA=$SHARED/data/roadscene
RUN=${RUN:-runs/v5}
SHIP=${SHIP:-1}
OPTIONS=${OPTIONS:-'{"ir_structure":1,"gradient_gain":1}'}
[ -d "$DATA/train" ] || { echo "error: $DATA/train: not found (set DIF_FUSION_SHARED)" >&2; exit 1; }
fuse() { node apps/fuser/dist/cli.js "$@"; }
npx -y pnpm@10 build
mkdir -p "$RUN"
# v4's files, kept for the comparison before step 4 replaces models/default
[ -d "$RUN/model-v4" ] || { mkdir -p "$RUN/model-v4" && cp models/default/model.onnx models/default/config.json \
  models/default/ddpm.safetensors models/default/head.safetensors "$RUN/model-v4/"; }
DDPM="$RUN/model-v4/ddpm.safetensors"

# 1
mkdir -p runs/ablation-salient/ddpm
RUN=runs/ablation-salient BASE=scripts/default-model/head-v4-scratch.json \
  LOSS_ARGS="--loss-space luma --alpha 0.6 --target salient" bash scripts/default-model/ablation.sh

# 2-3
[ -f "$RUN/k1-from-v4.safetensors" ] ||
  node scripts/default-model/head-one-step.mjs "$RUN/model-v4/head.safetensors" "$RUN/k1-from-v4.safetensors" 3
RUN="$RUN" DDPM="$DDPM" ONE_STEP=1 INIT="$RUN/k1-from-v4.safetensors" VARIANTS="k1-st1:$OPTIONS" \
  bash scripts/default-model/v5-variants.sh

# 4
rm -rf "$RUN/final" && mkdir -p "$RUN/final"
fuse --pairs "$DATA/val" -o "$RUN/final/v5" --model "$RUN/model-k1-st1" --seed 0 -q
fuse --pairs "$DATA/val" -o "$RUN/final/v4" --model "$RUN/model-v4" --seed 0 -q
for m in average max ycbcr-average ycbcr-max; do fuse --pairs "$DATA/val" -o "$RUN/final/$m" --method "$m" -q; done
fuse eval --pairs "$DATA/val" --fused "$RUN"/final/* --json "$RUN/eval-final.json" | tee "$RUN/eval-final.txt"
node scripts/default-model/psnr-between.mjs "$RUN/final/v5" "$RUN/final/ycbcr-max" | tail -1
node scripts/default-model/strips.mjs "$RUN/strips.png" "$DATA/val" \
  FLIR_05108,FLIR_04319,FLIR_00548,FLIR_07427,FLIR_09350,FLIR_video_01876 \
  v5="$RUN/final/v5" ycbcr-max="$RUN/final/ycbcr-max" v4="$RUN/final/v4"
if [ "$SHIP" = 1 ]; then
  cp "$DDPM" models/default/ddpm.safetensors
  node scripts/strip-checkpoint.mjs "$(ls "$RUN"/k1-st1/checkpoints/*.safetensors | sort | tail -1)" models/default/head.safetensors
  # the shipped graph is exported from the shipped files (provenance relative to the folder)
  # shipped in int8 since session 7 (MODEL_CARD.md "int8"): the UNet's first conv and the head's
  # last six convs stay in float
  node apps/trainer/dist/cli.js export --ddpm models/default/ddpm.safetensors --head models/default/head.safetensors \
    --precision int8 --calibration "$DATA/train" --float-convs 1,6 -o models/default
fi
