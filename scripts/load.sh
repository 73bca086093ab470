#!/usr/bin/env bash
# Loopback throughput of each auth stack beside a bare axum Router, in one run.
#
# Paired (the default): for each stack, a bare server and the stack's server run at the same
# time, both pinned to core 0, each loaded by its own generator on core 1 for SECS seconds
# with CONNS keep-alive connections. Whatever slows the machine during the window (clock
# frequency, neighbours, the other core) slows both alike, so the comparison survives the
# drift that makes separate windows differ by up to 2x here. Two figures per pair:
#   cost ratio:  bare's CPU time per request over the stack's (from /proc/<pid>/schedstat),
#                what a server saturating one core would serve, relative to bare;
#   throughput:  the stack's requests per second over bare's in the same window (the
#                scheduler's split of core 0 between the two blurs this one).
# `bare` as a stack is the control: its ratios show the harness's own noise.
# MODE=sequential runs bare and then each stack alone on core 0 instead (throughput only).
# The median over ROUNDS rounds is printed last.
#
# The generator is `wrk` when it is installed (apt-get install wrk): it costs far less per
# request than the server, so the server is what saturates. Otherwise benches/load.rs's own
# hyper client drives the load (`load drive`), which costs about as much as the server does.
#
#   scripts/load.sh                        # ROUNDS=5 SECS=3 CONNS=32, the control and every stack
#   ROUNDS=9 scripts/load.sh key cached_token
#   MODE=sequential scripts/load.sh limited
#   BIN=/tmp/load-before scripts/load.sh   # a saved build of benches/load.rs, for before/after
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${ROUNDS:-5}
secs=${SECS:-3}
conns=${CONNS:-32}
port=${PORT:-18631}
mode=${MODE:-paired}
stacks=("$@")
[ ${#stacks[@]} -gt 0 ] || stacks=(bare key limited cached_token uncached_token)
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

tmp=$(mktemp -d)
pids=()
trap 'kill "${pids[@]}" 2>/dev/null || true; rm -rf "$tmp"' EXIT

if command -v wrk >/dev/null; then driver=wrk; else driver="benches/load.rs drive"; fi
echo "mode $mode, generator $driver, $rounds rounds of ${secs}s, $conns connections"

start_server() { # stack port -> pid in $server
  $pin_server "$bin" serve "$1" "$2" &
  server=$!
  pids+=("$server")
  for _ in $(seq 50); do
    (exec 3<>"/dev/tcp/127.0.0.1/$2") 2>/dev/null && return
    sleep 0.1
  done
  echo "the $1 server did not start on port $2" >&2
  exit 1
}

generate() { # stack port out: writes "req/s requests" to out
  if [ "$driver" = wrk ]; then
    local header script="$tmp/$1.lua"
    header=$("$bin" header "$1")
    printf 'wrk.method = "POST"\nwrk.headers["%s"] = "%s"\n' \
      "${header%%: *}" "${header#*: }" >"$script"
    $pin_client wrk -t1 -c"$conns" -d"${secs}s" -s "$script" "http://127.0.0.1:$2/mcp" >"$3.log"
    # Every request must pass: a refusal is cheaper than a pass and would flatter the stack.
    if grep -q 'Non-2xx' "$3.log"; then
      echo "$1 refused requests:" >&2
      cat "$3.log" >&2
      exit 1
    fi
    echo "$(sed -n 's/^Requests\/sec: *\([0-9.]*\).*/\1/p' "$3.log")" \
      "$(sed -n 's/^ *\([0-9]*\) requests in.*/\1/p' "$3.log")" >"$3"
  else
    local rps
    rps=$($pin_client "$bin" drive "$1" "$2" "$secs" "$conns")
    echo "$rps $(python3 -c "print(round($rps * $secs))")" >"$3"
  fi
}

cpu_ns() { cut -d' ' -f1 "/proc/$1/schedstat"; } # time on a CPU so far

stop_servers() {
  kill "${pids[@]}" 2>/dev/null || true
  wait "${pids[@]}" 2>/dev/null || true
  pids=()
}

ratio() { python3 -c "print(f'{$1/$2:.3f}')"; }

results="$tmp/results"
: >"$results"
for r in $(seq "$rounds"); do
  if [ "$mode" = sequential ]; then
    start_server bare "$port"
    generate bare "$port" "$tmp/bare"
    stop_servers
    read -r bare _ <"$tmp/bare"
    printf 'round %d: %-15s %8.0f req/s\n' "$r" bare "$bare"
    for s in "${stacks[@]}"; do
      start_server "$s" "$port"
      generate "$s" "$port" "$tmp/stack"
      stop_servers
      read -r rps _ <"$tmp/stack"
      printf 'round %d: %-15s %8.0f req/s  %sx bare\n' "$r" "$s" "$rps" "$(ratio "$rps" "$bare")"
      echo "$s throughput $(ratio "$rps" "$bare")" >>"$results"
    done
    continue
  fi
  for s in "${stacks[@]}"; do
    start_server bare "$port"
    bare_pid=$server
    start_server "$s" "$((port + 1))"
    stack_pid=$server
    bare_cpu=$(cpu_ns "$bare_pid")
    stack_cpu=$(cpu_ns "$stack_pid")
    generate bare "$port" "$tmp/bare" &
    g1=$!
    generate "$s" "$((port + 1))" "$tmp/stack" &
    g2=$!
    wait "$g1"
    wait "$g2"
    bare_cpu=$(($(cpu_ns "$bare_pid") - bare_cpu))
    stack_cpu=$(($(cpu_ns "$stack_pid") - stack_cpu))
    stop_servers
    read -r bare bare_n <"$tmp/bare"
    read -r rps stack_n <"$tmp/stack"
    bare_cost=$((bare_cpu / bare_n))
    stack_cost=$((stack_cpu / stack_n))
    cost=$(ratio "$bare_cost" "$stack_cost")
    thr=$(ratio "$rps" "$bare")
    printf 'round %d: %-15s %6d ns/req beside bare %6d: cost ratio %s, throughput %s\n' \
      "$r" "$s" "$stack_cost" "$bare_cost" "$cost" "$thr"
    echo "$s cost $cost" >>"$results"
    echo "$s throughput $thr" >>"$results"
  done
done
echo
echo "median over $rounds rounds (min .. max), relative to bare:"
python3 - "$results" <<'PY'
import statistics, sys
by = {}
for line in open(sys.argv[1]):
    s, kind, r = line.split()
    by.setdefault(s, {}).setdefault(kind, []).append(float(r))
for s, kinds in by.items():
    print(f"  {s:<15}" + "".join(
        f"  {kind} {statistics.median(rs):.3f} ({min(rs):.3f} .. {max(rs):.3f})"
        for kind, rs in kinds.items()))
PY
