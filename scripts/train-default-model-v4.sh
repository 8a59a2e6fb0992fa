#!/usr/bin/env bash
# Reproduces models/default v4 from the shipped v3 files (issue #26):
#   1. the ablation (what the DDPM contributes; scripts/default-model/ablation.sh)
#   2. the salient target on the v3 head (three time steps) at alpha 0.3 and 0.6
#      (scripts/default-model/v4-variants.sh)
#   3. the alpha-0.6 head fine-tuned 20 more epochs with scripts/default-model/head-v4.json
#      (salient target, alpha 0.6, gradient gain 1.1, lr 1e-4, --seed 9)
#   4. export, fusion of the validation pairs, `dif-fuse eval` beside v3 and the baselines,
#      strips, and the shipped files (weights without optimizer state).
# Stages that finished are skipped; an interrupted head run resumes. Needs the RoadScene
# pairs at ../shared/data/roadscene (or DIF_FUSION_SHARED=/path/to/shared).
#   EPOCHS (20)  RUN (runs/v4)  SHIP (1: copy into models/default)
set -euo pipefail
cd "$(dirname "$0")/.."
SHARED=${DIF_FUSION_SHARED:-../shared}
DATA=$SHARED/data/roadscene
RUN=${RUN:-runs/v4}
EPOCHS=${EPOCHS:-20}
SHIP=${SHIP:-1}
[ -d "$DATA/train" ] || { echo "error: $DATA/train: not found (set DIF_FUSION_SHARED)" >&2; exit 1; }
train() { node apps/trainer/dist/cli.js "$@"; }
fuse() { node apps/fuser/dist/cli.js "$@"; }
npx -y pnpm@10 build
mkdir -p "$RUN"
# v3's files, kept for the comparison before step 4 replaces models/default
[ -d "$RUN/model-v3" ] || { mkdir -p "$RUN/model-v3" && cp models/default/model.onnx models/default/config.json \
  models/default/ddpm.safetensors models/default/head.safetensors "$RUN/model-v3/"; }
DDPM="$RUN/model-v3/ddpm.safetensors"

# 1-2
RUN=runs/ablation bash scripts/default-model/ablation.sh
RUN="$RUN" DDPM="$DDPM" INIT="$RUN/model-v3/head.safetensors" \
  VARIANTS="salient-a03:0.3 salient-a06:0.6" bash scripts/default-model/v4-variants.sh

# 3
a06="$RUN/salient-a06"
head_run="$RUN/head-v4"
if [ -d "$head_run/checkpoints" ]; then train head -o "$head_run" --resume --epochs "$EPOCHS" --no-progress
else train head -c scripts/default-model/head-v4.json --init "$a06" --ddpm "$DDPM" \
  --data "$DATA/train" -o "$head_run" --epochs "$EPOCHS" --lr 1e-4 --seed 9 --mode full --output luma \
  --source-skip --no-progress; fi

# 4
train export --ddpm "$DDPM" --head "$head_run" -o "$RUN/model"
rm -rf "$RUN/final" && mkdir -p "$RUN/final"
fuse --pairs "$DATA/val" -o "$RUN/final/v4" --model "$RUN/model" --seed 0 -q
fuse --pairs "$DATA/val" -o "$RUN/final/v3" --model "$RUN/model-v3" --seed 0 -q
for m in average max ycbcr-average ycbcr-max; do fuse --pairs "$DATA/val" -o "$RUN/final/$m" --method "$m" -q; done
fuse eval --pairs "$DATA/val" --fused "$RUN"/final/* --json "$RUN/eval-final.json" | tee "$RUN/eval-final.txt"
node scripts/default-model/psnr-between.mjs "$RUN/final/v4" "$RUN/final/ycbcr-max" | tail -1
node scripts/default-model/strips.mjs "$RUN/strips.png" "$DATA/val" \
  FLIR_05108,FLIR_04319,FLIR_00548,FLIR_07427,FLIR_09350,FLIR_video_01876 \
  v4="$RUN/final/v4" ycbcr-max="$RUN/final/ycbcr-max" v3="$RUN/final/v3"
if [ "$SHIP" = 1 ]; then
  cp "$RUN/model/model.onnx" "$RUN/model/config.json" models/default/
  cp "$DDPM" models/default/ddpm.safetensors
  node scripts/strip-checkpoint.mjs "$(ls "$head_run"/checkpoints/*.safetensors | sort | tail -1)" models/default/head.safetensors
fi
