#!/usr/bin/env bash
# Reproduces models/default (v3) end to end on a CPU with ONNX Runtime training (dif-train's
# default backend): DDPM, the head variants compared at an equal budget, the chosen head
# trained on the final DDPM, ONNX export, fusion of the validation pairs with the model, the
# previous default and the four classical baselines, the `dif-fuse eval` table the model card
# quotes, and the shipped files.
#
#   bash scripts/train-default-model.sh
#     DDPM_ITERS      DDPM steps the v2 head is trained on (8015)
#     V3_DDPM_ITERS   DDPM steps in total, the shipped v3 head's DDPM (12994)
#     VARIANT_STEP    DDPM step whose checkpoint the variants are compared on
#     VARIANT_EPOCHS  epochs per variant (38 steps each)
#     HEAD_VARIANT    the variant shipped (see compare-variants.sh), HEAD_EPOCHS its epochs,
#     FT_EPOCHS       epochs of the fine-tuning run that follows (lr 3e-4, --seed 1)
#
# Interrupted stages resume (--resume). Needs the RoadScene pairs at ../shared/data/roadscene
# (or DIF_FUSION_SHARED=/path/to/shared).
set -euo pipefail
cd "$(dirname "$0")/.."
SHARED=${DIF_FUSION_SHARED:-../shared}
DATA=$SHARED/data/roadscene
RUN=${RUN:-runs/v2}
DDPM_ITERS=${DDPM_ITERS:-8015}
V3_DDPM_ITERS=${V3_DDPM_ITERS:-12994}
VARIANT_STEP=${VARIANT_STEP:-3500}
VARIANT_EPOCHS=${VARIANT_EPOCHS:-20}
HEAD_VARIANT=${HEAD_VARIANT:-luma-skip}
HEAD_EPOCHS=${HEAD_EPOCHS:-120}
FT_EPOCHS=${FT_EPOCHS:-60}
[ -d "$DATA/train" ] || { echo "error: $DATA/train: not found (set DIF_FUSION_SHARED)" >&2; exit 1; }

train() { node apps/trainer/dist/cli.js "$@"; }
fuse() { node apps/fuser/dist/cli.js "$@"; }
ckpt_at() { printf '%s/ddpm/checkpoints/ddpm-%08d.safetensors' "$RUN" "$1"; }

npx -y pnpm@10 build
# The previous default (whatever models/default holds), kept for the comparison before step 5 replaces models/default.
[ -d "$RUN/model-previous" ] || { mkdir -p "$RUN/model-previous" && cp models/default/model.onnx models/default/config.json "$RUN/model-previous/"; }

# 1. DDPM to VARIANT_STEP (its checkpoint is kept for the comparison), then on to DDPM_ITERS.
ddpm() {
  if [ -d "$RUN/ddpm/checkpoints" ]; then train ddpm -o "$RUN/ddpm" --resume --iters "$1" --no-progress
  else train ddpm -c scripts/default-model/ddpm-v2.json --data "$DATA/train" -o "$RUN/ddpm" \
    --iters "$1" --no-progress; fi
}
mkdir -p "$RUN/variants"
if [ ! -f "$RUN/variants/ddpm-$VARIANT_STEP.safetensors" ]; then
  ddpm "$VARIANT_STEP"
  cp "$(ckpt_at "$VARIANT_STEP")" "$RUN/variants/ddpm-$VARIANT_STEP.safetensors"
fi

# 2. Head variants at an equal budget on that DDPM (runs beside the DDPM's further training).
DDPM="$RUN/variants/ddpm-$VARIANT_STEP.safetensors" RUN="$RUN" VARIANT_EPOCHS="$VARIANT_EPOCHS" \
  bash scripts/default-model/compare-variants.sh &
variants=$!
ddpm "$DDPM_ITERS"
wait "$variants"

# 3. The chosen variant on the final DDPM.
case $HEAD_VARIANT in
  luma-skip) vargs=(--output luma --source-skip) ;;
  luma) vargs=(--output luma) ;;
  weight) vargs=(--output weight) ;;
  skip) vargs=(--source-skip) ;;
  full) vargs=() ;;
  *) echo "error: HEAD_VARIANT $HEAD_VARIANT" >&2; exit 2 ;;
esac
if [ -d "$RUN/head/checkpoints" ]; then train head -o "$RUN/head" --resume --epochs "$HEAD_EPOCHS" --no-progress
else train head -c scripts/default-model/head-v2.json --ddpm "$RUN/ddpm" --data "$DATA/train" \
  --val "$DATA/val" -o "$RUN/head" --epochs "$HEAD_EPOCHS" --no-progress "${vargs[@]}"; fi
# 3b. Fine-tuning from that head: fresh Adam, lr 3e-4, other crops (--seed 1).
if [ -d "$RUN/head-ft/checkpoints" ]; then train head -o "$RUN/head-ft" --resume --epochs "$FT_EPOCHS" --no-progress
else train head -c scripts/default-model/head-v2.json --init "$RUN/head" --ddpm "$RUN/ddpm" \
  --data "$DATA/train" --val "$DATA/val" -o "$RUN/head-ft" --epochs "$FT_EPOCHS" --lr 3e-4 \
  --seed 1 --no-progress "${vargs[@]}"; fi
# 3c. v3: fine-tunes with the loss on luma (--loss-space luma) and a smaller gradient weight,
#     first on the DDPM the v2 head was trained on (kept: the DDPM trains on), then on the
#     DDPM at V3_DDPM_ITERS. Each starts from the previous head (fresh Adam, lr 3e-4).
D2="$RUN/ddpm-$DDPM_ITERS.safetensors"
[ -f "$D2" ] || cp "$(ckpt_at "$DDPM_ITERS")" "$D2"
prev="$RUN/head-ft"
ft() { # name alpha epochs seed ddpm
  if [ -d "$RUN/$1/checkpoints" ]; then train head -o "$RUN/$1" --resume --epochs "$3" --no-progress
  else train head -c scripts/default-model/head-v2.json --init "$prev" --ddpm "$5" \
    --data "$DATA/train" --val "$DATA/val" -o "$RUN/$1" --epochs "$3" --lr 3e-4 --seed "$4" \
    --alpha "$2" --loss-space luma --no-progress "${vargs[@]}"; fi
  prev="$RUN/$1"
}
ft luma1 1 20 2 "$D2"
ft luma2 1 40 3 "$D2"
ft alpha05 0.5 20 4 "$D2"
ft alpha03 0.3 20 5 "$D2"
ddpm "$V3_DDPM_ITERS"
ft head-v3 0.3 40 6 "$(ckpt_at "$V3_DDPM_ITERS")"
train export --ddpm "$RUN/ddpm" --head "$RUN/head-v3" -o "$RUN/model"

# 4. Fuse the validation pairs (model, previous default, baselines) and evaluate.
rm -rf "$RUN/fused"
fuse --pairs "$DATA/val" -o "$RUN/fused/model-v3" --model "$RUN/model" --seed 0
fuse --pairs "$DATA/val" -o "$RUN/fused/model-previous" --model "$RUN/model-previous" --seed 0
for m in average max ycbcr-average ycbcr-max; do
  fuse --pairs "$DATA/val" -o "$RUN/fused/$m" --method "$m"
done
fuse eval --pairs "$DATA/val" --fused "$RUN"/fused/* \
  --csv "$RUN/eval.csv" --json "$RUN/eval.json" --chart "$RUN/eval.png" | tee "$RUN/eval.txt"

# 5. Ship: model folder files and the weights it was exported from, optimizer state removed
#    (a later run continues from them: dif-train ddpm|head --resume FILE).
mkdir -p models/default
cp "$RUN/model/model.onnx" "$RUN/model/config.json" models/default/
latest() { ls "$1"/checkpoints/*.safetensors | sort | tail -1; }
node scripts/strip-checkpoint.mjs "$(latest "$RUN/ddpm")" models/default/ddpm.safetensors
node scripts/strip-checkpoint.mjs "$(latest "$RUN/head-v3")" models/default/head.safetensors

# 6. fused | visible | infrared of a few validation pairs (kept out of git: dataset images).
mkdir -p "$RUN/examples"
for f in $(ls "$DATA/val/ir" | head -4); do
  stem=${f%.*}
  vis=$(ls "$DATA/val/vi/$stem".* | head -1)
  fuse --ir "$DATA/val/ir/$f" --vis "$vis" -o "$RUN/examples/$stem-fused.png" \
    --side-by-side "$RUN/examples/$stem-side-by-side.png" --model models/default --seed 0
done
