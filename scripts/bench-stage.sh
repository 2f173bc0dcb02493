#!/usr/bin/env bash
# bench-stage.sh — the live stage's figures, written into docs/benchmarks.md (between its
# stage-bench markers), and a screenshot of the stage mid-burst as docs/stage-live.png.
#
#   scripts/bench-stage.sh        # about 2 minutes; needs chromium and chromedriver
#
# Starts both twins (4 workers, T = 1 s, access logs to /dev/null) on free ports, runs the
# reference cells with `burst compare` while nothing watches, then starts `burst stage` and, in
# headless Chromium, measures the same cells fired by the stage, bursts of 1,000 and 10,000
# watched live (crates/testkit/examples/stage_bench.rs). Stops what it started, by PID.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
doc=docs/benchmarks.md
bin=target/release
. scripts/lib.sh
scratch_and_guard

say "building (release)…"
cargo build --release --quiet -p pool-server -p async-server -p burst
cargo build --release --quiet -p testkit --example stage_bench

# start NAME CMD…: run CMD in the background (its output in $tmp); set $url once it listens.
start() {
  local name=$1
  shift
  start_server "$tmp" "$name" 's/^listening on //p' "$@"
}

start pool-server "$bin/pool-server" --port 0
pool=$url
start async-server "$bin/async-server" --port 0
async=$url
say "the reference cells, nothing watching…"
"$bin/burst" compare --pool "$pool" --async "$async" -n 16 --json >"$tmp/without.json"
start stage "$bin/burst" stage --port 0 --pool "$pool" --async "$async"
stage=$url
say "the stage at $stage, watched by headless Chromium…"
shots=target/stage-bench
"$bin/examples/stage_bench" "$stage" "$tmp/without.json" "$bin/burst" "$shots" >"$tmp/figures.md"
cp "$shots/stage-io-16.png" docs/stage-live.png

{
  echo "Measured $(date -u '+%Y-%m-%d %H:%M UTC') on commit \`$(git rev-parse --short HEAD 2>/dev/null || echo unknown)\`,"
  echo "$(nproc) cores, $(uname -sr); the twins, the stage and Chromium on the same cores."
  echo
  cat "$tmp/figures.md"
  echo
} >"$tmp/report.md"
write_figures "$doc" stage-bench "$tmp/report.md"
say "wrote the figures into $doc and docs/stage-live.png (every screenshot: $shots/)"
cat "$tmp/report.md"
