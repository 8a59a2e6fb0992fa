#!/usr/bin/env bash
# Whole-command timings of `dif-fuse`, two builds side by side, alternated ROUNDS times so the
# load of a shared machine hits both alike:
#
#   BASE=/path/to/other/checkout ROUNDS=4 bash scripts/bench/fuse-side-by-side.sh [PAIRS_DIR]
#
# BASE is a built checkout of the version to compare against (e.g. `git worktree add` of
# main + install + build); this checkout is "new". Cases: `--help`; one 640x480 pair (the
# synthetic sample scene, written by scripts/make-sample-pair.mjs) with the shipped model;
# with PAIRS_DIR (a folder holding ir/ and vi/), `--pairs PAIRS_DIR`. For each case and
# build it prints wall seconds and CPU seconds (user+sys, children included: GNU time) per
# round, then min and median, and new/base ratios of the medians. Outputs are compared by
# sha256 (the fp32 path must stay byte-identical). Note `uptime` before and after.
set -euo pipefail
NEW=$(cd "$(dirname "$0")/../.." && pwd)
BASE=${BASE:?set BASE to a built checkout to compare against}
ROUNDS=${ROUNDS:-3}
PAIRS=${1:-}
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
node "$NEW/scripts/make-sample-pair.mjs" "$TMP/p640" --width 640 --height 480 >/dev/null
TIME=/usr/bin/time
[ -x "$TIME" ] || { echo "needs GNU time (/usr/bin/time)"; exit 1; }

run() { # build case round
  local dir=$1 case=$2 r=$3 out
  out="$TMP/$case-$(basename "$dir")-$r"
  local args
  case $case in
    help) args=(--help) ;;
    pair) args=(-q --ir "$TMP/p640/ir.png" --vis "$TMP/p640/vi.png" -o "$out.png") ;;
    pairs) args=(-q --pairs "$PAIRS" -o "$out") ;;
  esac
  "$TIME" -f "%e %U %S %M" -o "$TMP/t" node "$dir/apps/fuser/dist/cli.js" "${args[@]}" >/dev/null
  read -r wall user sys rss <"$TMP/t"
  echo "$case $([ "$dir" = "$NEW" ] && echo new || echo base) $wall $(echo "$user + $sys" | bc) $rss"
}

echo "# uptime before: $(uptime)"
cases=(help pair)
[ -n "$PAIRS" ] && cases+=(pairs)
for c in "${cases[@]}"; do
  for r in $(seq "$ROUNDS"); do
    run "$BASE" "$c" "$r"
    run "$NEW" "$c" "$r"
  done
done | tee "$TMP/all"
echo "# uptime after: $(uptime)"
node -e '
const rows = require("fs").readFileSync(process.argv[1], "utf8").trim().split("\n").map((l) => l.split(" "));
const med = (a) => { const s = [...a].sort((x, y) => x - y); const m = s.length >> 1; return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2; };
console.log("| case | build | wall min s | wall median s | CPU median s | peak RSS MB |");
console.log("| --- | --- | --- | --- | --- | --- |");
const by = {};
for (const [c, b, w, cpu, rss] of rows) ((by[c] ??= {})[b] ??= []).push([+w, +cpu, +rss]);
for (const [c, v] of Object.entries(by)) {
  for (const b of ["base", "new"]) {
    const x = v[b];
    console.log(`| ${c} | ${b} | ${Math.min(...x.map((r) => r[0])).toFixed(2)} | ${med(x.map((r) => r[0])).toFixed(2)} | ${med(x.map((r) => r[1])).toFixed(2)} | ${(Math.max(...x.map((r) => r[2])) / 1024).toFixed(0)} |`);
  }
  const ratio = (i) => (med(v.new.map((r) => r[i])) / med(v.base.map((r) => r[i]))).toFixed(2);
  console.log(`| ${c} | new/base | | ${ratio(0)}x | ${ratio(1)}x | |`);
}' "$TMP/all"
if [ -f "$TMP/pair-$(basename "$NEW")-1.png" ]; then
  echo "# sha256 of the 640x480 outputs (base, new):"
  sha256sum "$TMP"/pair-*-1.png | cut -c1-16
fi
