#!/usr/bin/env bash
# Reproduces models/default end to end on a CPU (wasm backend): DDPM, fusion head in both
# modes, ONNX export, fusion of the validation pairs with the model and the four classical
# baselines, and the `dif-fuse eval` table the model card quotes.
#
#   bash scripts/train-default-model.sh            # DDPM_ITERS / HEAD_EPOCHS override the budget
#
# Needs the RoadScene pairs at ../shared/data/roadscene (or DIF_FUSION_SHARED=/path/to/shared).
set -euo pipefail
cd "$(dirname "$0")/.."
SHARED=${DIF_FUSION_SHARED:-../shared}
DATA=$SHARED/data/roadscene
RUN=${RUN:-runs/default}
DDPM_ITERS=${DDPM_ITERS:-250}
HEAD_EPOCHS=${HEAD_EPOCHS:-6}
[ -d "$DATA/train" ] || { echo "error: $DATA/train: not found (set DIF_FUSION_SHARED)" >&2; exit 1; }

train() { node apps/trainer/dist/cli.js "$@"; }
fuse() { node apps/fuser/dist/cli.js "$@"; }

npx -y pnpm@10 build

# 1. DDPM (resumes if interrupted).
resume=(); [ -d "$RUN/ddpm/checkpoints" ] && resume=(--resume)
train ddpm -c scripts/default-model/ddpm.json --data "$DATA/train" -o "$RUN/ddpm" \
  --iters "$DDPM_ITERS" --backend wasm "${resume[@]}"

# 2. Fusion head, both forward modes, on the frozen DDPM.
for mode in full reference; do
  resume=(); [ -d "$RUN/head-$mode/checkpoints" ] && resume=(--resume)
  if [ ${#resume[@]} -eq 0 ]; then
    train head -c scripts/default-model/head.json --ddpm "$RUN/ddpm" --data "$DATA/train" \
      --val "$DATA/val" -o "$RUN/head-$mode" --mode "$mode" --epochs "$HEAD_EPOCHS" --backend wasm
  else
    train head -o "$RUN/head-$mode" --epochs "$HEAD_EPOCHS" --backend wasm --resume
  fi
  train export --ddpm "$RUN/ddpm" --head "$RUN/head-$mode" -o "$RUN/model-$mode"
done

# 3. Fuse the validation pairs with both models and the four baselines, then evaluate.
rm -rf "$RUN/fused"
for mode in full reference; do
  fuse --pairs "$DATA/val" -o "$RUN/fused/model-$mode" --model "$RUN/model-$mode" --seed 0
done
for m in average max ycbcr-average ycbcr-max; do
  fuse --pairs "$DATA/val" -o "$RUN/fused/$m" --method "$m"
done
fuse eval --pairs "$DATA/val" --fused "$RUN"/fused/* \
  --csv "$RUN/eval.csv" --json "$RUN/eval.json" --chart "$RUN/eval.png" | tee "$RUN/eval.txt"

# 4. Ship the better head mode (DEFAULT_MODE, chosen from the table above; see the model card).
DEFAULT_MODE=${DEFAULT_MODE:-full}
mkdir -p models/default
cp "$RUN/model-$DEFAULT_MODE/model.onnx" "$RUN/model-$DEFAULT_MODE/config.json" models/default/

# 5. fused | visible | infrared of a few validation pairs (kept out of git: they show dataset images).
mkdir -p "$RUN/examples"
for f in $(ls "$DATA/val/ir" | head -3); do
  stem=${f%.*}
  vis=$(ls "$DATA/val/vi/$stem".* | head -1)
  fuse --ir "$DATA/val/ir/$f" --vis "$vis" -o "$RUN/examples/$stem-fused.png" \
    --side-by-side "$RUN/examples/$stem-side-by-side.png" --model models/default --seed 0
done
