#!/usr/bin/env bash
# Reproduces models/default end to end on a CPU (wasm backend): DDPM, fusion head in both
# modes, the full head trained on and fine-tuned on cached features, ONNX export, fusion of the validation pairs with the model and the four classical
# baselines, and the `dif-fuse eval` table the model card quotes.
#
#   bash scripts/train-default-model.sh     # DDPM_ITERS, COMPARE_EPOCHS, HEAD_EPOCHS, FT_EPOCHS,
#                                           # FT3_EPOCHS override the budget (defaults: the shipped run)
#
# Needs the RoadScene pairs at ../shared/data/roadscene (or DIF_FUSION_SHARED=/path/to/shared).
set -euo pipefail
cd "$(dirname "$0")/.."
SHARED=${DIF_FUSION_SHARED:-../shared}
DATA=$SHARED/data/roadscene
RUN=${RUN:-runs/default}
DDPM_ITERS=${DDPM_ITERS:-250}
COMPARE_EPOCHS=${COMPARE_EPOCHS:-6}
HEAD_EPOCHS=${HEAD_EPOCHS:-24}
FT_EPOCHS=${FT_EPOCHS:-14}
FT3_EPOCHS=${FT3_EPOCHS:-12}
[ -d "$DATA/train" ] || { echo "error: $DATA/train: not found (set DIF_FUSION_SHARED)" >&2; exit 1; }

train() { node apps/trainer/dist/cli.js "$@"; }
fuse() { node apps/fuser/dist/cli.js "$@"; }

npx -y pnpm@10 build

# 1. DDPM (resumes if interrupted).
resume=(); [ -d "$RUN/ddpm/checkpoints" ] && resume=(--resume)
train ddpm -c scripts/default-model/ddpm.json --data "$DATA/train" -o "$RUN/ddpm" \
  --iters "$DDPM_ITERS" --backend wasm "${resume[@]}"

# 2. Fusion head, both forward modes, on the frozen DDPM, COMPARE_EPOCHS each; then the
#    `full` head trained on to HEAD_EPOCHS (a copy of its run, resumed).
for mode in full reference; do
  resume=(); [ -d "$RUN/head-$mode/checkpoints" ] && resume=(--resume)
  if [ ${#resume[@]} -eq 0 ]; then
    train head -c scripts/default-model/head.json --ddpm "$RUN/ddpm" --data "$DATA/train" \
      --val "$DATA/val" -o "$RUN/head-$mode" --mode "$mode" --epochs "$COMPARE_EPOCHS" --backend wasm
  else
    train head -o "$RUN/head-$mode" --epochs "$COMPARE_EPOCHS" --backend wasm --resume
  fi
done
[ -d "$RUN/head-full-long" ] || cp -r "$RUN/head-full" "$RUN/head-full-long"
train head -o "$RUN/head-full-long" --epochs "$HEAD_EPOCHS" --backend wasm --resume

# 3. Fine-tuning on cached DDPM features (--feature-cache 16: 608 batches of 64x64 crops,
#    ~3x faster steps) with the colour term of the loss (--color-weight 1):
#    ft: from head-full-long, lr 1e-3, FT_EPOCHS epochs (every checkpoint kept);
#    ft-lr3: from epoch 3 of ft, lr 3e-3 (scripts/default-model/head-lr3.json), other crops
#    (--seed 1), FT3_EPOCHS epochs.
ft() { # OUT ARGS...: a fresh run, or resume it
  local out=$1; shift
  if [ -d "$out/checkpoints" ]; then train head -o "$out" --backend wasm --resume
  else train head --ddpm "$RUN/ddpm" --data "$DATA/train" --val "$DATA/val" -o "$out" \
    --feature-cache 16 --color-weight 1 --backend wasm "$@"; fi
}
ft "$RUN/head-ft" -c scripts/default-model/head.json --init "$RUN/head-full-long" \
  --epochs "$FT_EPOCHS" --keep 0
ft "$RUN/head-ft-lr3" -c scripts/default-model/head-lr3.json --seed 1 --epochs "$FT3_EPOCHS" \
  --init "$RUN/head-ft/checkpoints/head-00001824.safetensors"

HEADS=(full reference full-long ft ft-lr3)
for h in "${HEADS[@]}"; do
  train export --ddpm "$RUN/ddpm" --head "$RUN/head-$h" -o "$RUN/model-$h"
done

# 3. Fuse the validation pairs with both models and the four baselines, then evaluate.
rm -rf "$RUN/fused"
for h in "${HEADS[@]}"; do
  fuse --pairs "$DATA/val" -o "$RUN/fused/model-$h" --model "$RUN/model-$h" --seed 0
done
for m in average max ycbcr-average ycbcr-max; do
  fuse --pairs "$DATA/val" -o "$RUN/fused/$m" --method "$m"
done
fuse eval --pairs "$DATA/val" --fused "$RUN"/fused/* \
  --csv "$RUN/eval.csv" --json "$RUN/eval.json" --chart "$RUN/eval.png" | tee "$RUN/eval.txt"

# 4. Ship the best head (DEFAULT_HEAD, chosen from the table above; see the model card), with
#    the weights it was exported from, optimizer state removed.
DEFAULT_HEAD=${DEFAULT_HEAD:-ft-lr3}
mkdir -p models/default
cp "$RUN/model-$DEFAULT_HEAD/model.onnx" "$RUN/model-$DEFAULT_HEAD/config.json" models/default/
latest() { ls "$1"/checkpoints/*.safetensors | sort | tail -1; }
node scripts/strip-checkpoint.mjs "$(latest "$RUN/ddpm")" models/default/ddpm.safetensors
node scripts/strip-checkpoint.mjs "$(latest "$RUN/head-$DEFAULT_HEAD")" models/default/head.safetensors

# 5. fused | visible | infrared of a few validation pairs (kept out of git: they show dataset images).
mkdir -p "$RUN/examples"
for f in $(ls "$DATA/val/ir" | head -3); do
  stem=${f%.*}
  vis=$(ls "$DATA/val/vi/$stem".* | head -1)
  fuse --ir "$DATA/val/ir/$f" --vis "$vis" -o "$RUN/examples/$stem-fused.png" \
    --side-by-side "$RUN/examples/$stem-side-by-side.png" --model models/default --seed 0
done
