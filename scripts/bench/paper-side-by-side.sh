#!/usr/bin/env bash
# The paper's configuration against the official PyTorch code, one 640x480 pair, whole
# commands side by side, alternated ROUNDS times so the load of a shared machine hits all alike
# (issue #27):
#
#   OFFICIAL=../Dif-Fusion ROUNDS=2 bash scripts/bench/paper-side-by-side.sh \
#     fp32=/work/paper/fp32 fp32-off=/work/paper/fp32:--tile,off int8=/work/paper/int8
#
# OFFICIAL_CONFIG (config/fusion_test.json) picks the official side's config, relative to
# OFFICIAL (e.g. one with the default model's UNet and time steps).
# Each argument is LABEL=MODEL_DIR[:EXTRA_FLAGS] (flags comma-separated) for `dif-fuse`. The
# official side is its fusion test path (t_fusion.py's loop: DDPM get_feats at each t, the
# fusion head, the PNG) through scripts/bench/official_fusion_test.py with
# config/fusion_test.json, random weights, on the CPU with 2 threads; ours is `dif-fuse
# --threads 2` on the same pair (the synthetic sample scene, scripts/make-sample-pair.mjs).
# Paper models: `dif-train export --config <official>/config/fusion_train.json --random-init
# --mode reference -o DIR` (1.6 GB; --precision int8 --calibration PAIRS for int8).
#
# Our runs use a fresh optimised-graph cache (DIF_FUSION_CACHE in a temporary folder): the
# run of each model (graph) is the cold command (ORT optimises and writes the cache), later
# runs read it ("warm"; a run is cold when the cache folder gained a file). Run nothing else this large meanwhile: each run peaks at 5-9 GB.
# Prints per run: label, round, wall s, CPU s (user+sys, GNU time), peak RSS MB, cold/warm; then a table
# of the medians of the cold and of the warm runs (the official: all rounds) and each case's wall and CPU
# ratio to the official's, and the load average before and after.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
OFFICIAL=${OFFICIAL:?set OFFICIAL to a checkout of github.com/GeoVectorMatrix/Dif-Fusion}
ROUNDS=${ROUNDS:-2}
PY=${PYTHON:-/usr/bin/python3}
[ $# -gt 0 ] || { echo "usage: OFFICIAL=DIR paper-side-by-side.sh LABEL=MODEL_DIR[:FLAGS] ..." >&2; exit 2; }
TIME=/usr/bin/time
[ -x "$TIME" ] || { echo "needs GNU time (/usr/bin/time)" >&2; exit 1; }
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
mkdir -p "$TMP/pair/ir" "$TMP/pair/vi"
node "$ROOT/scripts/make-sample-pair.mjs" "$TMP/p" --width 640 --height 480 >/dev/null
cp "$TMP/p/ir.png" "$TMP/pair/ir/sample.png"
cp "$TMP/p/vi.png" "$TMP/pair/vi/sample.png"
export DIF_FUSION_CACHE="$TMP/cache"

timed() { # label round command...
  local label=$1 round=$2 before after state=-
  shift 2
  before=$( (ls "$DIF_FUSION_CACHE/ort" 2>/dev/null || true) | wc -l)
  "$TIME" -f "%e %U %S %M" -o "$TMP/t" "$@" >"$TMP/log" 2>&1 || {
    echo "# $label round $round failed:" >&2
    tail -5 "$TMP/log" >&2
    return 0
  }
  read -r wall user sys rss <"$TMP/t"
  after=$( (ls "$DIF_FUSION_CACHE/ort" 2>/dev/null || true) | wc -l)
  # ours: cold when this run wrote the optimised graph into the cache, else warm
  [ "$label" = official ] || { [ "$after" -gt "$before" ] && state=cold || state=warm; }
  echo "$label $round $wall $(echo "$user + $sys" | bc) $((rss / 1024)) $state"
}

echo "# uptime before: $(uptime)"
for r in $(seq "$ROUNDS"); do
  timed official "$r" "$PY" "$ROOT/scripts/bench/official_fusion_test.py" --official "$OFFICIAL" \
    --pairs "$TMP/pair" -o "$TMP/official" --threads 2 --config "${OFFICIAL_CONFIG:-config/fusion_test.json}"
  for spec in "$@"; do
    label=${spec%%=*}
    rest=${spec#*=}
    dir=${rest%%:*}
    flags=()
    [ "$rest" != "$dir" ] && IFS=, read -r -a flags <<<"${rest#*:}"
    timed "$label" "$r" node "$ROOT/apps/fuser/dist/cli.js" -q --threads 2 --model "$dir" \
      "${flags[@]}" --ir "$TMP/p/ir.png" --vis "$TMP/p/vi.png" -o "$TMP/$label-$r.png"
  done
done | tee "$TMP/all"
echo "# uptime after: $(uptime)"
node -e '
const rows = require("fs").readFileSync(process.argv[1], "utf8").trim().split("\n").map((l) => l.split(" "));
const med = (a) => { const s = [...a].sort((x, y) => x - y); const m = s.length >> 1; return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2; };
const by = {};
for (const [label, r, w, cpu, rss, state] of rows) (by[label] ??= []).push({ r: +r, w: +w, cpu: +cpu, rss: +rss, state });
const off = by.official ?? [];
const ow = med(off.map((x) => x.w)), oc = med(off.map((x) => x.cpu));
console.log("| case | runs | wall median s | CPU median s | peak RSS MB | wall / official | CPU / official |");
console.log("| --- | --- | --- | --- | --- | --- | --- |");
const row = (name, xs) => {
  if (!xs.length) return;
  const w = med(xs.map((x) => x.w)), c = med(xs.map((x) => x.cpu));
  console.log(`| ${name} | ${xs.length} | ${w.toFixed(1)} | ${c.toFixed(1)} | ${Math.max(...xs.map((x) => x.rss))} | ${(w / ow).toFixed(2)}x | ${(c / oc).toFixed(2)}x |`);
};
row("official (PyTorch)", off);
for (const [label, xs] of Object.entries(by)) {
  if (label === "official") continue;
  row(`${label}, cold (writes the cache)`, xs.filter((x) => x.state === "cold"));
  row(`${label}, warm`, xs.filter((x) => x.state === "warm"));
}' "$TMP/all"
