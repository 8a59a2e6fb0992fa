#!/usr/bin/env bash
# One DDPM training step, side by side on this machine: ours on ONNX Runtime
# (apps/trainer/dist/bench.js), our UNet in PyTorch (torch_ddpm_step.py) and, with
# OFFICIAL=/path/to/Dif-Fusion (a checkout of github.com/GeoVectorMatrix/Dif-Fusion), the
# official code's step. The three alternate ROUNDS times per inner_channel so that load on a
# shared machine hits them alike; the table gives the best and median s/step, CPU-s and
# the ratios ours / PyTorch.
#
#   pnpm --filter @dif-fusion/trainer build
#   OFFICIAL=../Dif-Fusion ROUNDS=3 STEPS=4 bash scripts/bench/ddpm-step-side-by-side.sh 16 32
set -euo pipefail
cd "$(dirname "$0")/../.."
PY=${PY:-/usr/bin/python3}
ROUNDS=${ROUNDS:-3}
STEPS=${STEPS:-4}
THREADS=${THREADS:-2}
out=$(mktemp)
trap 'rm -f "$out"' EXIT
[ $# -gt 0 ] || set -- 16 32
for inner in "$@"; do
  for ((r = 1; r <= ROUNDS; r++)); do
    node apps/trainer/dist/bench.js --inner "$inner" --threads "$THREADS" --steps "$STEPS" --json |
      sed "s/^/ours $inner /" >>"$out"
    "$PY" scripts/bench/torch_ddpm_step.py --inner "$inner" --threads "$THREADS" --steps "$STEPS" --json |
      sed "s/^/port $inner /" >>"$out"
    if [ -n "${OFFICIAL:-}" ]; then
      "$PY" scripts/bench/torch_ddpm_step.py --official "$OFFICIAL" --inner "$inner" \
        --threads "$THREADS" --steps "$STEPS" --json | sed "s/^/official $inner /" >>"$out"
    fi
  done
done
"$PY" - "$out" <<'PYEOF'
import json, statistics, sys
runs = {}
for line in open(sys.argv[1]):
    who, inner, js = line.split(" ", 2)
    runs.setdefault((int(inner), who), []).append(json.loads(js))
print("| inner | who | best s/step | median of means | CPU-s/step | peak RSS MB | ours / who (best, median) |")
print("| --- | --- | --- | --- | --- | --- | --- |")
for inner in sorted({k[0] for k in runs}):
    ours = runs[(inner, "ours")]
    ob = min(r["wall_best_s"] for r in ours)
    om = statistics.median(r["wall_mean_s"] for r in ours)
    for who in ("ours", "port", "official"):
        rs = runs.get((inner, who))
        if not rs:
            continue
        b = min(r["wall_best_s"] for r in rs)
        m = statistics.median(r["wall_mean_s"] for r in rs)
        cpu = statistics.median(r["cpu_s"] for r in rs)
        rss = max(r["peak_rss_mb"] for r in rs)
        ratio = "" if who == "ours" else f"{ob / b:.2f}x, {om / m:.2f}x"
        print(f"| {inner} | {who} | {b:.3f} | {m:.3f} | {cpu:.2f} | {rss} | {ratio} |")
PYEOF
