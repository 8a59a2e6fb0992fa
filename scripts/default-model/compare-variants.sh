#!/usr/bin/env bash
# Head variants at an equal budget on one frozen DDPM checkpoint, then export, fusion of the
# validation pairs and `dif-fuse eval`. Part of scripts/train-default-model.sh; standalone:
#
#   DDPM=runs/v2/ddpm/checkpoints/ddpm-00005000.safetensors RUN=runs/v2 \
#     bash scripts/default-model/compare-variants.sh
#
# VARIANT_EPOCHS (default 20) sets the budget; JOBS (default 2) runs that many at once.
set -euo pipefail
cd "$(dirname "$0")/../.."
SHARED=${DIF_FUSION_SHARED:-../shared}
DATA=$SHARED/data/roadscene
RUN=${RUN:-runs/v2}
DDPM=${DDPM:?set DDPM to a DDPM checkpoint}
EPOCHS=${VARIANT_EPOCHS:-20}
JOBS=${JOBS:-2}
VARIANTS=${VARIANTS:-"reference full luma weight skip luma-skip"}

args_of() {
  case $1 in
    reference) echo "--mode reference" ;;
    full) echo "--mode full" ;;
    luma) echo "--mode full --output luma" ;;
    weight) echo "--mode full --output weight" ;;
    skip) echo "--mode full --source-skip" ;;
    luma-skip) echo "--mode full --output luma --source-skip" ;;
    *) echo "unknown variant $1" >&2; exit 2 ;;
  esac
}

one() {
  local v=$1 out="$RUN/variants/head-$1"
  if [ -d "$out/checkpoints" ]; then
    node apps/trainer/dist/cli.js head -o "$out" --resume --epochs "$EPOCHS" --threads 1 --no-progress
  else
    # shellcheck disable=SC2046
    node apps/trainer/dist/cli.js head -c scripts/default-model/head-v2.json --ddpm "$DDPM" \
      --data "$DATA/train" --val "$DATA/val" -o "$out" --epochs "$EPOCHS" --threads 1 \
      --no-progress $(args_of "$v")
  fi > "$RUN/variants/head-$v.log" 2>&1
  node apps/trainer/dist/cli.js export --ddpm "$DDPM" --head "$out" -o "$RUN/variants/model-$v" \
    >> "$RUN/variants/head-$v.log" 2>&1
  rm -rf "$RUN/variants/fused/$v"
  node apps/fuser/dist/cli.js --pairs "$DATA/val" -o "$RUN/variants/fused/$v" \
    --model "$RUN/variants/model-$v" --seed 0 >> "$RUN/variants/head-$v.log" 2>&1
  echo "variant $v done"
}

mkdir -p "$RUN/variants"
running=0
for v in $VARIANTS; do
  one "$v" &
  running=$((running + 1))
  if [ "$running" -ge "$JOBS" ]; then wait -n; running=$((running - 1)); fi
done
wait
node apps/fuser/dist/cli.js eval --pairs "$DATA/val" --fused "$RUN"/variants/fused/* \
  --csv "$RUN/variants/eval.csv" --json "$RUN/variants/eval.json" | tee "$RUN/variants/eval.txt"
