#!/usr/bin/env bash
# Runs every fuzz target in turn for the given time (default 60 s each) with the committed
# seed corpus, and prints per target: executions, coverage (edges) and features, and crashes.
#
#   fuzz/run-all.sh            # 60 s per target
#   fuzz/run-all.sh 600        # the long campaign
#   fuzz/run-all.sh 20 jwt sse # only some targets
#
# Builds with `--sanitizer none` (the crate is `#![forbid(unsafe_code)]`, so AddressSanitizer
# mostly slows it down) and debug assertions on (integer overflow panics). New inputs go to
# fuzz/target/corpus-run/<target>, never into the committed fuzz/corpus/<target>; crashes go
# to fuzz/artifacts/<target>/. Exits non-zero when any target crashed.
set -euo pipefail
cd "$(dirname "$0")"

secs="${1:-60}"
shift || true
export RUSTC_BOOTSTRAP=1
if ! command -v cargo-fuzz >/dev/null 2>&1; then
    cargo install cargo-fuzz --locked
fi
flags=(--sanitizer none --debug-assertions)
cargo fuzz build "${flags[@]}"

if [ "$#" -gt 0 ]; then targets=("$@"); else mapfile -t targets < <(cargo fuzz list); fi
logs=target/run-all-logs
mkdir -p "$logs"
failed=0
rows=()
for t in "${targets[@]}"; do
    mkdir -p "target/corpus-run/$t" "corpus/$t" "artifacts/$t"
    log="$logs/$t.log"
    before=$(find "artifacts/$t" -type f 2>/dev/null | wc -l)
    printf '==> %s (%s s)\n' "$t" "$secs"
    set +e
    cargo fuzz run "${flags[@]}" "$t" "target/corpus-run/$t" "corpus/$t" -- \
        -max_total_time="$secs" -timeout=10 -print_final_stats=1 >"$log" 2>&1
    rc=$?
    set -e
    # `|| true`: a target that crashes on its first input prints neither line, and the
    # table must still be printed for every target.
    execs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' | tail -n1 || true)
    last=$(grep -E '^#[0-9]+' "$log" | tail -n1 || true)
    cov=$(grep -o 'cov: [0-9]*' <<<"$last" | grep -o '[0-9]*' || true)
    ft=$(grep -o 'ft: [0-9]*' <<<"$last" | grep -o '[0-9]*' || true)
    crashes=$(( $(find "artifacts/$t" -type f 2>/dev/null | wc -l) - before ))
    if [ "$rc" -ne 0 ]; then
        failed=1
        printf '    FAILED (exit %s); last lines of %s:\n' "$rc" "$log"
        tail -n 30 "$log" | sed 's/^/    /'
    fi
    rows+=("$(printf '%-14s %12s %8s %8s %8s %s' "$t" "${execs:-?}" "${cov:-?}" "${ft:-?}" "$crashes" \
        "$([ "$rc" -eq 0 ] && echo ok || echo CRASH)")")
done

printf '\n%-14s %12s %8s %8s %8s %s\n' target executions cov ft crashes status
printf '%s\n' "${rows[@]}"
printf '(crash inputs: fuzz/artifacts/<target>/; logs: fuzz/%s/)\n' "$logs"
exit "$failed"
