#!/usr/bin/env bash
# Whole-command timings of `dif-fuse` on one 640x480 pair (the synthetic sample scene), two
# model folders with this build, alternated ROUNDS times so the load of a shared machine hits
# both alike (e.g. v4's three time steps against a one-step head):
#
#   ROUNDS=5 bash scripts/bench/models-side-by-side.sh BASE_MODEL_DIR NEW_MODEL_DIR
#
# Prints wall and CPU seconds (user+sys, GNU time) per round, min and median, and the new/base
# ratio of the medians.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
BASE=${1:?usage: models-side-by-side.sh BASE_MODEL_DIR NEW_MODEL_DIR}
NEW=${2:?usage: models-side-by-side.sh BASE_MODEL_DIR NEW_MODEL_DIR}
ROUNDS=${ROUNDS:-3}
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
node "$ROOT/scripts/make-sample-pair.mjs" "$TMP/p640" --width 640 --height 480 >/dev/null
TIME=/usr/bin/time
[ -x "$TIME" ] || { echo "needs GNU time (/usr/bin/time)"; exit 1; }
run() { # label model round
  "$TIME" -f "%e %U %S %M" -o "$TMP/t" node "$ROOT/apps/fuser/dist/cli.js" -q --model "$2" \
    --ir "$TMP/p640/ir.png" --vis "$TMP/p640/vi.png" -o "$TMP/$1-$3.png" >/dev/null
  read -r wall user sys rss <"$TMP/t"
  echo "$1 $wall $(echo "$user + $sys" | bc) $rss"
}
echo "# uptime before: $(uptime)"
for r in $(seq "$ROUNDS"); do run base "$BASE" "$r"; run new "$NEW" "$r"; done | tee "$TMP/all"
echo "# uptime after: $(uptime)"
node -e '
const rows = require("fs").readFileSync(process.argv[1], "utf8").trim().split("\n").map((l) => l.split(" "));
const med = (a) => { const s = [...a].sort((x, y) => x - y); const m = s.length >> 1; return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2; };
const by = { base: [], new: [] };
for (const [b, w, cpu, rss] of rows) by[b].push([+w, +cpu, +rss]);
console.log("| model | wall min s | wall median s | CPU median s | peak RSS MB |");
console.log("| --- | --- | --- | --- | --- |");
for (const [b, name] of [["base", process.argv[2]], ["new", process.argv[3]]]) {
  const x = by[b];
  console.log(`| ${name} | ${Math.min(...x.map((r) => r[0])).toFixed(2)} | ${med(x.map((r) => r[0])).toFixed(2)} | ${med(x.map((r) => r[1])).toFixed(2)} | ${(Math.max(...x.map((r) => r[2])) / 1024).toFixed(0)} |`);
}
const ratio = (i) => (med(by.new.map((r) => r[i])) / med(by.base.map((r) => r[i]))).toFixed(2);
console.log(`| new/base | | ${ratio(0)}x | ${ratio(1)}x | |`);' "$TMP/all" "$BASE" "$NEW"
