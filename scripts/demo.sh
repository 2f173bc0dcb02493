#!/usr/bin/env bash
# demo.sh — the reference experiment in one command.
#
#   scripts/demo.sh                    # 16 requests × 3 routes × 2 servers (about 15 s after the build)
#   DEMO_SIZES=16,100 scripts/demo.sh  # also 100 at once (about a minute more)
#   scripts/demo.sh --live             # the live stage instead: a page at http://127.0.0.1:8080
#
# Builds in release mode, starts pool-server and async-server side by side on free ports
# (4 workers each, T = 1 s), runs `burst compare`, prints the comparison table and a short excerpt
# of each server's access log, and writes the charts into a folder it names at the end. Both servers
# are stopped when it ends — also on Ctrl-C or on failure.
set -euo pipefail

cd "$(dirname "$0")/.."
case ${1:-} in
  --live) exec scripts/stage.sh ;;
  "") ;;
  -h|--help) sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
  *) echo "usage: scripts/demo.sh [--live]   (DEMO_SIZES=16,100 for bursts of 100 too; --help)" >&2; exit 2 ;;
esac
sizes=${DEMO_SIZES:-16}
workers=${DEMO_WORKERS:-4}
out=${DEMO_OUT:-out/demo-$(date +%Y%m%d-%H%M%S)}

. scripts/lib.sh
build_and_guard "$out"
bin=target/release

# start NAME: run target/release/NAME on a free port; set $url once it is listening.
# (Not called as $(start …): a subshell would lose the PID that stop_started needs.)
start() {
  start_server "$out" "$1" 's/^listening on //p' "$bin/$1" --port 0 --workers "$workers"
}

start pool-server
pool=$url
start async-server
async=$url
echo "== pool-server (WSGI-style) at $pool; async-server (ASGI-style) at $async; $workers workers each =="
echo

# burst exits 3 when a burst is not what the model predicts: the demo fails loudly then.
verdict() {
  local code=$1
  [ "$code" -eq 0 ] && return 0
  if [ "$code" -eq 3 ]; then
    echo "demo.sh: FAILED: the bursts did not come out as the queueing model predicts (see above)" >&2
  else
    echo "demo.sh: FAILED: burst exited $code (see above)" >&2
  fi
  exit "$code"
}
code=0
"$bin/burst" compare --pool "$pool" --async "$async" -n "$sizes" --svg "$out/compare.svg" || code=$?
verdict "$code"
echo
echo "== one burst up close: 16 × /io on the pool twin =="
"$bin/burst" "$pool/io" -n 16 --svg "$out/pool-io-timeline.svg" --rows 16 || code=$?
verdict "$code"
echo
echo "== pool-server access log (the compare run's first 10 /io lines): a new wave of $workers every second =="
grep ' GET /io$' "$out/pool-server.access.log" | head -n 10
echo
echo "== async-server access log (the compare run's first 10 /io lines): all picked up at once =="
grep ' GET /io$' "$out/async-server.access.log" | head -n 10
echo
echo "charts and logs are in $out/:"
ls -1 "$out" | sed 's/^/  /'
