#!/usr/bin/env bash
# Nightly tracking: builds, runs the full conformance tier (reports/conformance.md and .json) and
# the full benchmarks, writes dated results and the plots under reports/, and compares the
# benchmark results with the newest baseline in bench/baselines/. Exits non-zero when a
# conformance check fails, or the comparison finds a regression or a failed run (after writing
# everything).
#
# Environment: BUILD (build directory, default build), REPORTS (default reports), THRESHOLD
# (default 5%), BASELINE (a result file to compare against instead of the newest baseline),
# QUICK=1 (the quick suites: a smoke test of this script, not a measurement).
set -euo pipefail
cd "$(dirname "$0")/.."

build=${BUILD:-build}
reports=${REPORTS:-reports}
threshold=${THRESHOLD:-5%}
date=$(date -u +%Y-%m-%d)
bash ci/deps.sh
cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build "$build" -j "$(nproc)"
shardlab="$build/shardlab"

status=0
tier=full
[ "${QUICK:-0}" = 1 ] && tier=quick
# runs/ (every run's outputs) stays out of reports/: only the matrix is committed
"$shardlab" conformance --tier "$tier" --jobs "$(nproc)" --report "$build/conformance" || status=$?
cp "$build/conformance/conformance.md" "$build/conformance/conformance.json" "$reports/"

mkdir -p "$reports/bench"
results="$reports/bench/bench-$date.json"
quick=()
[ "${QUICK:-0}" = 1 ] && quick=(--quick)
"$shardlab" bench --suite all "${quick[@]}" --out "$results"

baseline=${BASELINE:-$(ls bench/baselines/*.json 2>/dev/null | sort | tail -n 1 || true)}
comparison="$reports/bench/compare-$date.txt"
if [ -n "$baseline" ]; then
  "$shardlab" bench compare "$baseline" "$results" --threshold "$threshold" >"$comparison" ||
    status=$?
  cat "$comparison"
else
  echo "nightly: no baseline in bench/baselines/: nothing to compare against" | tee "$comparison"
fi

"$shardlab" bench report "$results" --dir "$reports" --comparison "$comparison"
(cd "$reports" && for gp in bench-*.gp; do gnuplot "$gp"; done)
echo "nightly: results $results, report $reports/benchmarks.md, comparison $comparison"
exit "$status"
