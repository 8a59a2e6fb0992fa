#!/usr/bin/env bash
# Target-option variants after v4 (issue #26): v4's last stage (head-v4.json: from the
# alpha-0.6 salient head, lr 1e-4, 20 epochs, --seed 9) with `train.loss.target_options`
# changed, each exported, fused on the validation pairs and evaluated beside v4 and ycbcr-max.
#   VARIANTS="name:{json target_options} ..." (no spaces inside the JSON)
#   EPOCHS (20)  RUN (runs/v5)  INIT (runs/v4/salient-a06)  DDPM (models/default/ddpm.safetensors)
#   ONE_STEP (0; 1: one time step, t = [5], with the merge convs: `model_df.merge`; INIT then a
#   head made by head-one-step.mjs)
set -euo pipefail
cd "$(dirname "$0")/../.."
SHARED=${DIF_FUSION_SHARED:-../shared}
DATA=$SHARED/data/roadscene
RUN=${RUN:-runs/v5}
EPOCHS=${EPOCHS:-20}
INIT=${INIT:-runs/v4/salient-a06}
DDPM=${DDPM:-models/default/ddpm.safetensors}
ONE_STEP=${ONE_STEP:-0}
train() { node apps/trainer/dist/cli.js "$@"; }
fuse() { node apps/fuser/dist/cli.js "$@"; }
mkdir -p "$RUN/fused" "$RUN/configs"
for v in $VARIANTS; do
  name=${v%%:*}
  opts=${v#*:}
  out="$RUN/$name"
  node -e '
    const fs = require("node:fs");
    const c = JSON.parse(fs.readFileSync("scripts/default-model/head-v4.json", "utf8"));
    c.name = process.argv[1];
    Object.assign(c.train.loss.target_options, JSON.parse(process.argv[2]));
    if (process.argv[4] === "1") Object.assign(c.model_df, { t: [5], merge: true });
    fs.writeFileSync(process.argv[3], JSON.stringify(c, null, 2));
  ' "$name" "$opts" "$RUN/configs/$name.json" "$ONE_STEP"
  if [ ! -f "$out.done" ]; then
    if [ -d "$out/checkpoints" ]; then train head -o "$out" --resume --epochs "$EPOCHS" --no-progress
    else
      train head -c "$RUN/configs/$name.json" --init "$INIT" --ddpm "$DDPM" --data "$DATA/train" \
        -o "$out" --epochs "$EPOCHS" --lr 1e-4 --seed 9 --mode full --output luma --source-skip --no-progress
    fi > "$out.log" 2>&1
    touch "$out.done"
  fi
  [ -f "$RUN/model-$name/model.onnx" ] || train export --ddpm "$DDPM" --head "$out" -o "$RUN/model-$name" > /dev/null
  [ -d "$RUN/fused/$name" ] || fuse --pairs "$DATA/val" -o "$RUN/fused/$name" --model "$RUN/model-$name" --seed 0 -q
done
[ -d "$RUN/fused/v4" ] || fuse --pairs "$DATA/val" -o "$RUN/fused/v4" --model models/default --seed 0 -q
[ -d "$RUN/fused/ycbcr-max" ] || fuse --pairs "$DATA/val" -o "$RUN/fused/ycbcr-max" --method ycbcr-max -q
fuse eval --pairs "$DATA/val" --fused "$RUN"/fused/* --json "$RUN/eval.json" | tee "$RUN/eval.txt"
