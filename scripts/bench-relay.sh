#!/usr/bin/env bash
# bench-relay.sh — what publishing events through python/events_relay.py costs the real stacks,
# written into python/README.md (between its relay-bench markers).
#
#   scripts/bench-relay.sh     # about 2 minutes; needs wrk and .venv-python (scripts/real-stacks.sh)
#
# At zero wait (`?ms=0`: nothing but the stack's own work per request, where any cost shows
# most), `wrk -t1 -c16 -d8s` against gunicorn + Flask (`/io`) and uvicorn + FastAPI
# (`/async-io`), 4 workers each, three ways: no relay; a relay with nobody watching; a relay with
# one watcher (curl reading the stream). Each is started alone on loopback and stopped by PID.
# The lesson's own cells (T = 1 s) are checked by `scripts/real-stacks.sh --check`, watched and not.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
venv=.venv-python/bin
command -v wrk >/dev/null || { echo "bench-relay.sh: needs wrk (Debian: apt-get install wrk)" >&2; exit 2; }
[ -x "$venv/uvicorn" ] || { echo "bench-relay.sh: no $venv/uvicorn: run scripts/real-stacks.sh once" >&2; exit 2; }
tmp=$(mktemp -d)
. scripts/lib.sh
pids=()
started=()
watcher=""
cleanup() {
  [ -n "$watcher" ] && kill "$watcher" 2>/dev/null || true
  stop_started
  rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
export TWIN_WORKERS=4

# rps NAME ROUTE CMD…: start CMD, wait for its workers, wrk it, stop it; sets `result`, the
# requests a second.
rps() {
  local name=$1 route=$2
  shift 2
  start_server "$tmp" "$name" 's/^listening on //p; s/.*Uvicorn running on \(http:[^ ]*\).*/\1/p' "$@"
  local base=$url
  for _ in $(seq 1 300); do
    [ "$(grep -c -E 'Booting worker|Application startup complete' "$tmp/$name.stderr.log")" -ge 4 ] && break
    sleep 0.1
  done
  sleep 1 # the workers import the app after they say they boot
  result=$(wrk -t1 -c16 -d8s "$base$route" | awk '/Requests\/sec/ { printf "%.0f", $2 }')
  kill -TERM "${pids[-1]}"
  wait "${pids[-1]}" 2>/dev/null || true
  unset 'pids[-1]' 'started[-1]'
}

# relay: a fresh relay; sets events (host:port).
relay() {
  start_server "$tmp" relay 's/^listening on http:\/\/\(.*\)$/\1/p' "$venv/python" python/events_relay.py --port 0
  events=$url
}

gunicorn=("$venv/gunicorn" --config python/gunicorn.conf.py --chdir python --bind 127.0.0.1:0 flask_app:app)
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
uvicorn=("$venv/uvicorn" fastapi_app:app --app-dir python --host 127.0.0.1 --port "$port" --workers 4 --no-access-log)

report=$tmp/report.md
{
  echo
  echo "Measured $(date +%Y-%m-%d) on $(nproc) cores by \`scripts/bench-relay.sh\` (requests a second, \`?ms=0\`, wrk -c16):"
  echo
  echo "| stack | no relay | relay, nobody watching | relay, one watcher |"
  echo "|---|---|---|---|"
} >"$report"
for stack in gunicorn uvicorn; do
  if [ "$stack" = gunicorn ]; then
    cmd=("${gunicorn[@]}") route="/io?ms=0" label="gunicorn + Flask \`/io\`"
  else
    cmd=("${uvicorn[@]}") route="/async-io?ms=0" label="uvicorn + FastAPI \`/async-io\`"
  fi
  echo "$label: no relay…" >&2
  TWIN_URL=http://127.0.0.1:$port rps "$stack" "$route" "${cmd[@]}"
  alone=$result
  relay
  echo "$label: relay, nobody watching…" >&2
  TWIN_URL=http://127.0.0.1:$port TWIN_EVENTS=$events rps "$stack" "$route" "${cmd[@]}"
  idle=$result
  curl -sN "http://$events/events" >/dev/null &
  watcher=$!
  echo "$label: relay, one watcher…" >&2
  TWIN_URL=http://127.0.0.1:$port TWIN_EVENTS=$events rps "$stack" "$route" "${cmd[@]}"
  watched=$result
  kill "$watcher" 2>/dev/null || true
  watcher=""
  stop_started
  pids=()
  started=()
  pct() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%+.0f %%", (b - a) / a * 100 }'; }
  echo "| $label | $alone | $idle ($(pct "$alone" "$idle")) | $watched ($(pct "$alone" "$watched")) |" >>"$report"
done
echo >>"$report"
cat "$report"
write_figures python/README.md relay-bench "$report"
echo "written into python/README.md" >&2
