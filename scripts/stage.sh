#!/usr/bin/env bash
# stage.sh — the live stage in one command: both twins and the page that watches them.
#
#   scripts/stage.sh          # then open http://127.0.0.1:8080 and press B
#   STAGE_PORT=9090 scripts/stage.sh
#
# Builds in release mode, starts pool-server on 8000 and async-server on 8001 (4 workers each,
# T = 1 s) — or watches the twin already running there — and `burst stage` on 8080, prints the URL,
# and waits. Ctrl-C stops what this script started, by PID; a twin it did not start is left alone.
set -euo pipefail

case ${1:-} in
  "") ;;
  -h|--help) sed -n '2,9p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
  *) echo "usage: scripts/stage.sh   (STAGE_PORT=9090 to serve the page on another port)" >&2; exit 2 ;;
esac
cd "$(dirname "$0")/.."
stage_port=${STAGE_PORT:-8080}
out=${STAGE_OUT:-out/stage-$(date +%Y%m%d-%H%M%S)}

. scripts/lib.sh
build_and_guard "$out"
bin=target/release

# twin NAME PORT KIND: start NAME on PORT, unless a twin of KIND already answers there.
twin() {
  local name=$1 port=$2 kind=$3
  if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
    # Something listens: a twin busy with a burst answers GET / only once a worker is free.
    if curl -s --max-time 30 "http://127.0.0.1:$port/" 2>/dev/null | grep -q "\"kind\":\"$kind\""; then
      echo "== $name is already running on $port: watching it (this script will not stop it)"
      return 0
    fi
    echo "stage.sh: port $port is taken by something that is not a $kind twin (or one that did not" >&2
    echo "          answer GET / within 30 s); stop it, or run the twins yourself and \`burst stage\`" >&2
    exit 2
  fi
  start_server "$out" "$name" 's/^listening on //p' "$bin/$name" --port "$port"
  echo "== $name started at $url (log: $out/$name.access.log)"
}
twin pool-server 8000 pool
twin async-server 8001 event-loop
start_server "$out" stage 's/^listening on //p' "$bin/burst" stage --port "$stage_port"
stage_pid=${pids[-1]}
echo
echo "   the live stage:  $url"
echo
echo "   Open it in a browser and press B (both twins, /io × 16). Keys: 1–5 pick the route,"
echo "   ↑/↓ change N, P fires at the pool, A at the event loop, Esc stops a burst, C shows the"
echo "   completion chart, S saves the panels as a picture, R resets the page. Under each panel,"
echo "   \"replay file\" keeps the burst: \`target/release/burst stage --replay FILE\` plays it"
echo "   with no twins running. Ctrl-C here stops the stage and the twins this script started."
wait "$stage_pid"
