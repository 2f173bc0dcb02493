#!/usr/bin/env bash
# bench-steady.sh — what a waiting request costs as a thread and as a task, and the largest
# steady rate the event-loop twin holds on this machine; the figures go into docs/benchmarks.md
# (between its steady-bench markers).
#
#   scripts/bench-steady.sh          # about 3 minutes
#
# 1. Thread against task: N = 1,000 and 10,000 requests waiting at once (T = 2 s), on
#    `pool-server --workers 10 --threads N/10` (a worker thread for each, as gunicorn's gthread
#    would need; at most what the machine's thread budget allows, which the pool says) and on
#    `async-server` (4 event loops, `/async-io`: a task each). Memory: the
#    server's RSS idle and at its peak (VmHWM); time: how long the pool takes to start its
#    threads, and the burst's total against the ideal T.
# 2. Steady traffic: `burst --rate R --duration 5` at async-server `/async-io` (T = 1 s), R
#    doubling from 500 a second, until the 99th percentile of latency from when each request was
#    due exceeds T + 10 %, or a request fails. burst runs on the same cores: its own cost is in
#    the figure, as a load tool's always is on one laptop.
#
# Every server runs alone while it is measured, on loopback, and is stopped by PID afterwards.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
doc=docs/benchmarks.md
bin=target/release
. scripts/lib.sh
scratch_and_guard

say "building (release)…"
cargo build --release --quiet -p pool-server -p async-server -p burst
# Enough descriptors for 10,000 connections on each side (the hard limit, as burst raises its own).
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

hwm_kib() { awk '/^VmHWM/ {print $2}' "/proc/$1/status"; }
rss_kib() { awk '/^VmRSS/ {print $2}' "/proc/$1/status"; }
threads() { awk '/^Threads/ {print $2}' "/proc/$1/status"; }
mib() { awk -v k="$1" 'BEGIN { printf "%.1f", k / 1024 }'; }

# serve NAME CMD…: start a twin on a free port; sets url and pid; the start time in seconds.
serve() {
  local name=$1
  shift
  local t0 t1
  t0=$(date +%s.%N)
  start_server "$tmp" "$name" 's/^listening on //p' "$@" --port 0
  t1=$(date +%s.%N)
  pid=${pids[-1]}
  started_s=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.2f", b - a }')
}

# total N URL: burst's total time (s) and how many answered 200.
total() {
  "$bin/burst" "$2" -n "$1" --json --timeout 60 2>/dev/null \
    | python3 -c 'import json,sys; s=json.load(sys.stdin)["summary"]; print("%.2f %d" % (s["wall_ms"] / 1000, s["ok"]))'
}

# row N NAME LABEL PATH CMD…: start the server, hold N requests waiting at PATH, and add its row.
rows=()
row() {
  local n=$1 name=$2 label=$3 path=$4
  shift 4
  serve "$name" "$@"
  local start=$started_s idle nthreads total ok peak
  idle=$(rss_kib "$pid")
  nthreads=$(threads "$pid")
  read -r total ok < <(total "$n" "$url$path")
  peak=$(hwm_kib "$pid")
  kill -TERM "$pid"; wait "$pid" 2>/dev/null || true
  local per
  per=$(awk -v p="$peak" -v i="$idle" -v n="$n" 'BEGIN { printf "%.1f", (p - i) / n }')
  rows+=("| $n | $label | $nthreads | $start s | $(mib "$idle") MiB | $(mib "$peak") MiB | $per KiB | $total s ($ok × 200) |")
}
# The most worker threads this machine lets the pool have (each needs a reader thread beside it
# within the process's thread budget), as the pool itself says when asked for too many.
most=$("$bin/pool-server" --workers 10 --threads 10000 --port 0 2>&1 \
  | sed -n 's/.*at most \([0-9]*\) worker threads.*/\1/p' || true)
for n in 1000 10000; do
  say "thread against task: $n waiting requests…"
  per=$((n / 10)) label=""
  if [ -n "$most" ] && [ "$n" -gt "$most" ]; then
    per=$((most / 10)) label=" (the most this machine allows)"
  fi
  row "$n" "pool-$n" "pool-server, $per threads × 10 workers$label" /io \
    "$bin/pool-server" --workers 10 --threads "$per" --task-ms 2000 --backlog 65535
  row "$n" "loop-$n" "async-server, 4 event loops" /async-io \
    "$bin/async-server" --workers 4 --task-ms 2000 --backlog 65535
done

say "the largest steady rate the event loop holds within T + 10 %…"
serve "steady" "$bin/async-server" --workers 4 --task-ms 1000 --backlog 65535
steady_rows=()
held=0
for rate in 500 1000 2000 4000 6000 8000 10000 12000 16000; do
  # burst exits 1 or 3 when the rate is too much: its JSON is the figure all the same.
  line=$({ "$bin/burst" "$url/async-io" --rate "$rate" --duration 5 --json 2>/dev/null || true; } | python3 -c '
import json, sys
d = json.load(sys.stdin)
rows = d["rows"]
lat = sorted(r["from_schedule_ms"] for r in rows if r["status"] == 200)
late = sorted(r["sent_ms"] - r["scheduled_ms"] for r in rows)
ok = len(lat)
p = lambda v, q: v[min(len(v) - 1, int(q * len(v)))] if v else float("nan")
model = d["model"]["as_predicted"] if d["model"] else None
print("%d %d %.0f %.0f %.0f %.1f %s" % (len(rows), ok, p(lat, 0.5), p(lat, 0.99), lat[-1] if lat else 0, p(late, 0.99), model))
') || line="0 0 nan nan nan nan False"
  read -r sent ok p50 p99 max late99 predicted <<<"$line"
  within=$(awk -v p="$p99" -v s="$sent" -v o="$ok" 'BEGIN { print (p <= 1100 && s == o && s > 0) ? "yes" : "no" }')
  steady_rows+=("| $rate/s | $sent | $ok | $p50 | $p99 | $max | $late99 | $within |")
  # Connections left open by a run that fell behind are gone before the next.
  sleep 2
  say "  $rate/s: p99 $p99 ms, $ok of $sent answered — within 10 %: $within"
  [ "$within" = yes ] || break
  held=$rate
done
kill -TERM "$pid"; wait "$pid" 2>/dev/null || true

{
  echo
  echo "Measured $(date -u +%Y-%m-%d) on $(nproc) cores ($(uname -sm)), by \`scripts/bench-steady.sh\`."
  echo
  echo "**A waiting request as a thread, and as a task** (T = 2 s; all N wait at once):"
  echo
  echo "| N waiting | server | threads | start | idle RSS | peak RSS | per waiting request | N × T = 2 s: total |"
  echo "|---|---|---|---|---|---|---|---|"
  printf '%s\n' "${rows[@]}"
  echo
  echo "**Steady traffic at async-server \`/async-io\`** (4 loops, T = 1 s, 5 s each; latency from when each request was due):"
  echo
  echo "| λ | sent | answered | p50 ms | p99 ms | max ms | p99 sent late, ms | p99 within T + 10 % |"
  echo "|---|---|---|---|---|---|---|---|"
  printf '%s\n' "${steady_rows[@]}"
  echo
  if [ "$held" = 16000 ]; then
    echo "The largest rate held within T + 10 %: **at least $held requests a second** — every rate tried (burst and the twin share the $(nproc) cores; 16,000 in flight at once is near the open-files limit, $(ulimit -n), which bounds the next step)."
  else
    echo "The largest rate held within T + 10 %: **$held requests a second** (burst and the twin share the $(nproc) cores)."
  fi
  echo
} >"$tmp/report.md"
write_figures "$doc" steady-bench "$tmp/report.md"
cat "$tmp/report.md"
