#!/usr/bin/env bash
# flame.sh — where a twin's time goes on a zero-wait request: a flame graph and the share of the
# twin's own per-request work, for docs/benchmarks.md's notes.
#
#   scripts/flame.sh                      # pool-server /io, async-server /io and /async-io
#   FLAME_SECONDS=8 scripts/flame.sh      # a longer recording
#
# For each: the server alone on loopback (release build, access log on, to /dev/null), wrk
# -t1 -c64 on `?ms=0`, `perf record -g --call-graph dwarf` of the server meanwhile, then
# inferno's flame graph (out/flame-NAME.svg, open it in a browser) and a table: the share of
# samples whose stack passes through each part of the twin's own work. Needs perf (Debian:
# linux-perf), wrk, and inferno (`cargo install inferno`: its two commands on PATH).
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
seconds=${FLAME_SECONDS:-4}
for tool in perf wrk inferno-collapse-perf inferno-flamegraph; do
  command -v "$tool" >/dev/null || {
    echo "flame.sh: needs $tool (perf: apt-get install linux-perf; wrk: apt-get install wrk; inferno: cargo install inferno)" >&2
    exit 2
  }
done
cargo build --release --quiet -p pool-server -p async-server
mkdir -p out
. scripts/lib.sh
scratch_and_guard

# flame NAME PATH BINARY: record BINARY under wrk on PATH; writes out/flame-NAME.svg and the table.
flame() {
  local name=$1 path=$2 binary=$3
  start_server "$tmp" "$name" 's/^listening on //p' "target/release/$binary" --port 0
  local base=$url pid=${pids[-1]}
  wrk -t1 -c64 -d1s "$base$path" >/dev/null # warm-up
  perf record -F 999 -g --call-graph dwarf,16384 -p "$pid" -o "$tmp/$name.data" -- sleep "$seconds" \
    >/dev/null 2>&1 &
  local recorder=$!
  wrk -t1 -c64 -d"${seconds}s" "$base$path" | awk -v n="$name" '/Requests\/sec/ { print n ": " $2 " req/s (recorded)" }'
  wait "$recorder" || true
  kill -TERM "$pid"
  wait "$pid" 2>/dev/null || true
  pids=()
  started=()
  perf script -i "$tmp/$name.data" 2>/dev/null | inferno-collapse-perf >"$tmp/$name.folded"
  inferno-flamegraph --title "$binary $path" <"$tmp/$name.folded" >"out/flame-$name.svg"
  python3 - "$tmp/$name.folded" "$name" <<'PY'
import collections, re, sys
# The twin's own per-request work, and what the lesson's work and the machine cost around it.
parts = {
    "access-log line (tracing, its queue)": r"access_log::(pick_up|skipped)|tracing_core::event::Event::dispatch",
    "JSON account (Reply::work)": r"twin_core::reply::Reply::work",
    "is the client gone? (499)": r"client_gone|peek_async|Peer::poll_gone|pick_up::skip",
    "request id": r"request_id::Ids::of",
    "headers of every answer": r"pick_up::to_response|head::every_answer",
    "thread-pool hop (spawn_blocking)": r"spawn_blocking|blocking::pool|on_thread_pool",
    "hand-offs between threads (futex, channels)": r"futex|crossbeam|mpsc|Condvar",
    "socket writes": r"__libc_write|__send|sendto|writev|tcp_sendmsg",
    "socket reads": r"__libc_recv|__libc_read|tcp_recvmsg",
}
total, hits = 0, collections.Counter()
for line in open(sys.argv[1]):
    stack, n = line.rstrip().rsplit(" ", 1)
    total += int(n)
    for k, pat in parts.items():
        if re.search(pat, stack):
            hits[k] += int(n)
print(f"| {sys.argv[2]} | " + " | ".join(f"{hits[k] / max(total, 1):.1%}" for k in parts) + " |")
PY
}

echo "| recording | access log | JSON account | client gone? | request id | headers | thread-pool hop | thread hand-offs | socket writes | socket reads |"
echo "|---|---|---|---|---|---|---|---|---|---|"
flame pool-io "/io?ms=0" pool-server
flame async-io "/async-io?ms=0" async-server
flame async-io-pool "/io?ms=0" async-server
echo "flame graphs: out/flame-*.svg" >&2
