#!/usr/bin/env bash
# Loopback throughput of each auth stack beside a bare axum Router, alternated in one run.
#
# The server runs on core 0 and the load generator on core 1 (taskset); each round runs bare
# and then every stack for SECS seconds with CONNS keep-alive connections, and the ratio of a
# stack is its requests per second over the bare server's in the same round. The median ratio
# over ROUNDS rounds is printed last.
#
#   scripts/load.sh                       # ROUNDS=3 SECS=3 CONNS=32, every stack
#   ROUNDS=5 scripts/load.sh key cached_token
#   BIN=/tmp/load-before scripts/load.sh   # a saved build of benches/load.rs, for before/after
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${ROUNDS:-3}
secs=${SECS:-3}
conns=${CONNS:-32}
port=${PORT:-18631}
stacks=("$@")
[ ${#stacks[@]} -gt 0 ] || stacks=(key limited cached_token uncached_token)
pin_server="taskset -c 0"
pin_client="taskset -c 1"
[ "$(nproc)" -ge 2 ] && command -v taskset >/dev/null || { pin_server=""; pin_client=""; }

bin=${BIN:-}
[ -n "$bin" ] || bin=$(cargo build --profile bench --bench load --message-format=json 2>/dev/null |
  python3 -c 'import json,sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m["target"]["name"] == "load" and m.get("executable"):
        print(m["executable"])')
[ -n "$bin" ] || { echo "could not build benches/load.rs" >&2; exit 1; }

measure() { # stack -> req/s
  $pin_server "$bin" serve "$1" "$port" &
  local pid=$!
  for _ in $(seq 50); do
    (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break
    sleep 0.1
  done
  local rps
  rps=$($pin_client "$bin" drive "$1" "$port" "$secs" "$conns")
  kill "$pid"; wait "$pid" 2>/dev/null || true
  echo "$rps"
}

results=$(mktemp)
trap 'rm -f "$results"' EXIT
for r in $(seq "$rounds"); do
  bare=$(measure bare)
  printf 'round %d: bare %s req/s\n' "$r" "$bare"
  for s in "${stacks[@]}"; do
    rps=$(measure "$s")
    ratio=$(python3 -c "print(f'{$rps/$bare:.3f}')")
    printf 'round %d: %-15s %8s req/s  %sx bare\n' "$r" "$s" "$rps" "$ratio"
    echo "$s $ratio" >>"$results"
  done
done
echo
echo "median ratio to bare over $rounds rounds:"
python3 - "$results" <<'PY'
import statistics, sys
by = {}
for line in open(sys.argv[1]):
    s, r = line.split()
    by.setdefault(s, []).append(float(r))
for s, rs in by.items():
    print(f"  {s:<15} {statistics.median(rs):.3f}")
PY
