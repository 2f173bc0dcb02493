#!/usr/bin/env bash
# bench-watchers.sh — what `GET /events` watchers cost at the cap, written into
# docs/benchmarks.md (between its watchers-bench markers).
#
#   scripts/bench-watchers.sh     # about a minute; Linux (it reads /proc)
#
# Starts both twins (4 workers, T = 1 s, release build) on free ports and, for each: its memory
# alone; with the cap's worth of watchers (`--max-watchers`, 16: 12 that read with curl and 4
# that never read); its CPU time and wake-ups over 10 s idle with them; what one more watcher is
# told; its memory after they leave. Then the reference cells (`burst compare -n 16`) with nothing
# watching and with the cap's worth watching each twin. Stops what it started, by PID.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
doc=docs/benchmarks.md
tmp=$(mktemp -d)
bin=target/release
. scripts/lib.sh
pids=()
watchers=()
cleanup() {
  local w
  for w in "${watchers[@]}"; do kill "$w" 2>/dev/null || true; done
  stop_started
  [ -n "${KEEP_TMP:-}" ] && echo "kept $tmp" >&2 || rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
[ -d /proc/self ] || { echo "bench-watchers.sh: needs Linux (/proc)" >&2; exit 2; }

say "building (release)…"
cargo build --release --quiet -p pool-server -p async-server -p burst

start_server "$tmp" pool-server 's/^listening on //p' "$bin/pool-server" --port 0
pool=$url pool_pid=${pids[-1]}
start_server "$tmp" async-server 's/^listening on //p' "$bin/async-server" --port 0
async=$url async_pid=${pids[-1]}

rss_mib() { awk '/^VmRSS/ { printf "%.1f", $2 / 1024 }' "/proc/$1/status"; }
cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }
switches() {
  local n=0 f
  for f in /proc/"$1"/task/*/status; do
    n=$((n + $(awk '/^voluntary_ctxt_switches/ { print $2 }' "$f")))
  done
  echo "$n"
}
request=$'GET /events HTTP/1.1\r\nHost: twin\r\nAccept: text/event-stream\r\n\r\n'

# watch URL: 12 readers (curl) and 4 that never read (a socket held open here), in the background.
watch() {
  local url=$1 port=${1##*:} i fd
  for i in $(seq 12); do
    curl -sN "$url/events" >/dev/null 2>&1 &
    watchers+=("$!")
  done
  for i in $(seq 4); do
    exec {fd}<>"/dev/tcp/127.0.0.1/$port"
    printf '%s' "$request" >&"$fd"
    stalled+=("$fd")
  done
}
unwatch() {
  local w fd
  for w in "${watchers[@]}"; do kill "$w" 2>/dev/null || true; done
  for w in "${watchers[@]}"; do wait "$w" 2>/dev/null || true; done
  watchers=()
  for fd in "${stalled[@]}"; do exec {fd}>&-; done
  stalled=()
}
stalled=()
hz=$(getconf CLK_TCK)

say "the reference cells, nothing watching…"
"$bin/burst" compare --pool "$pool" --async "$async" -n 16 --json >"$tmp/without.json"

rows=()
declare -A after
for twin in pool async; do
  url=${!twin}
  pid_var=${twin}_pid
  pid=${!pid_var}
  alone=$(rss_mib "$pid")
  watch "$url"
  sleep 1
  with=$(rss_mib "$pid")
  say "$twin: 16 watchers; 10 s idle…"
  t0=$(cpu_ticks "$pid") s0=$(switches "$pid")
  sleep 10
  t1=$(cpu_ticks "$pid") s1=$(switches "$pid")
  cpu_ms=$(( (t1 - t0) * 1000 / hz ))
  one_more=$(curl -s -o /dev/null -w '%{http_code}' --max-time 2 "$url/events" || true)
  rows+=("$twin|$alone|$with|$cpu_ms|$((s1 - s0))|$one_more")
  unwatch
  sleep 2
  after[$twin]=$(rss_mib "$pid")
  say "$twin: ${after[$twin]} MiB after the watchers left"
done

say "the reference cells, the cap's worth watching each twin…"
watch "$pool"
watch "$async"
sleep 1
"$bin/burst" compare --pool "$pool" --async "$async" -n 16 --json >"$tmp/with.json"
unwatch

{
  echo "Measured $(date -u '+%Y-%m-%d %H:%M UTC') on commit \`$(git rev-parse --short HEAD 2>/dev/null || echo unknown)\`,"
  echo "$(nproc) cores, $(uname -sr); release build, 4 workers, T = 1 s; 16 watchers = 12 reading (curl) + 4 never reading."
  echo
  echo "| twin | memory alone | with 16 watchers | CPU over 10 s idle, watched | wake-ups over 10 s idle | a 17th watcher | memory after they left |"
  echo "|---|---|---|---|---|---|---|"
  for row in "${rows[@]}"; do
    IFS='|' read -r twin alone with cpu woke more <<<"$row"
    name=$([ "$twin" = pool ] && echo pool-server || echo async-server)
    echo "| $name | $alone MiB | $with MiB | $cpu ms | $woke | HTTP $more | ${after[$twin]} MiB |"
  done
  echo
  echo "The reference cells, nothing watching and with 16 watchers on each twin (4 of them never reading):"
  echo
  python3 - "$tmp/without.json" "$tmp/with.json" <<'PY'
import json, sys
without, with_ = (json.load(open(p)) for p in sys.argv[1:3])
print("| twin | burst | nothing watching | 16 watchers each |")
print("|---|---|---|---|")
for a, b in zip(without, with_):
    mark = lambda c: "✓" if c["model"] and c["model"]["as_predicted"] else "✗"
    print(f"| {a['server']} | `{a['route']}` × {a['n']} | {a['summary']['wall_ms'] / 1000:.2f} s {mark(a)} "
          f"| {b['summary']['wall_ms'] / 1000:.2f} s {mark(b)} |")
PY
  echo
} >"$tmp/report.md"
write_figures "$doc" watchers-bench "$tmp/report.md"
say "wrote the figures into $doc"
cat "$tmp/report.md"
