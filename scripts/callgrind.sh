#!/usr/bin/env bash
# Instructions per request for a bare axum Router and each auth stack, under callgrind.
#
# Each stack runs twice, with N1 and N2 requests; (I(N2) - I(N1)) / (N2 - N1) is the cost of
# one request with start-up cancelled out, the same to the instruction on every run of the
# same binary. Only the request loop is counted (`--toggle-collect`, after one warm-up request),
# so lazy set-up whose cost varies (the TSC calibration of MemoryStore's clock) stays out.
# valgrind hides SHA-NI, so the API-key hash counts high here (about 3.6 k).
#
#   scripts/callgrind.sh                 # every stack, N1=2000 N2=4000
#   N1=1000 N2=3000 scripts/callgrind.sh key limited
#   BIN=/tmp/hotpath-before scripts/callgrind.sh   # a saved build, for before/after
#   KEEP=/tmp/cg scripts/callgrind.sh key          # keep the out files for callgrind_annotate
#   FEATURES=metrics scripts/callgrind.sh limited audited metered
set -euo pipefail
cd "$(dirname "$0")/.."
command -v valgrind >/dev/null || { echo "valgrind is not installed" >&2; exit 1; }
n1=${N1:-2000}
n2=${N2:-4000}
stacks=("$@")
[ ${#stacks[@]} -gt 0 ] || stacks=(bare key limited cached_token uncached_token)

bin=${BIN:-}
[ -n "$bin" ] || bin=$(cargo build --profile bench --bench hotpath ${FEATURES:+--features "$FEATURES"} --message-format=json 2>/dev/null |
  python3 -c 'import json,sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m["target"]["name"] == "hotpath" and m.get("executable"):
        print(m["executable"])')
[ -n "$bin" ] || { echo "could not build benches/hotpath.rs" >&2; exit 1; }

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
keep=${KEEP:-}
[ -z "$keep" ] || mkdir -p "$keep"
count() { # stack n -> total instructions
  local out="$tmp/out"
  [ -z "$keep" ] || out="$keep/callgrind.$1.$2"
  valgrind --tool=callgrind --toggle-collect='hotpath::measure*' --callgrind-out-file="$out" \
    "$bin" "$1" "$2" 2>"$tmp/log" >/dev/null ||
    { cat "$tmp/log" >&2; exit 1; }
  sed -n 's/^==[0-9]*== Collected : //p' "$tmp/log"
}

printf '%-16s %14s %14s\n' stack "instr/request" "vs bare"
bare=""
for s in bare "${stacks[@]}"; do
  [ "$s" = bare ] && [ -n "$bare" ] && continue
  a=$(count "$s" "$n1")
  b=$(count "$s" "$n2")
  per=$(( (b - a) / (n2 - n1) ))
  if [ "$s" = bare ]; then
    bare=$per
    printf '%-16s %14d %14s\n' "$s" "$per" "-"
  else
    printf '%-16s %14d %+14d\n' "$s" "$per" "$(( per - bare ))"
  fi
done
