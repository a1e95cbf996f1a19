#!/usr/bin/env bash
# Nightly performance tracking: builds, runs the full benchmarks (and the full conformance tier
# once it exists), writes dated results and the plots under reports/, and compares the results
# with the newest baseline in bench/baselines/. Exits non-zero when the comparison finds a
# regression or a failed run (after writing everything).
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

# The full conformance tier plugs in here as ci/conformance.sh (given the build directory).
if [ -x ci/conformance.sh ]; then
  ci/conformance.sh "$build"
else
  echo "nightly: conformance: skipped: the full conformance tier does not exist yet" >&2
fi

mkdir -p "$reports/bench"
results="$reports/bench/bench-$date.json"
quick=()
[ "${QUICK:-0}" = 1 ] && quick=(--quick)
"$shardlab" bench --suite all "${quick[@]}" --out "$results"

baseline=${BASELINE:-$(ls bench/baselines/*.json 2>/dev/null | sort | tail -n 1 || true)}
comparison="$reports/bench/compare-$date.txt"
status=0
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
