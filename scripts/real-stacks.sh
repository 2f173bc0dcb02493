#!/usr/bin/env bash
# real-stacks.sh — the reference experiment on real gunicorn + Flask and uvicorn + FastAPI, side by
# side with the twins: one table, one chart.
#
#   scripts/real-stacks.sh              # 16 requests × /io, /async-io, /async-io-multi × 4 servers,
#                                       # then part 2: gunicorn gthread vs pool-server --threads,
#                                       # uvicorn vs async-server --limit-concurrency
#   scripts/real-stacks.sh -n 16,100    # also 100 at once
#   scripts/real-stacks.sh --check      # for CI: the Python stacks must show the lesson and answer
#                                       # like the twins (400 bodies, log lines, GET / keys, the
#                                       # events of each request, a watcher costing nothing)
#   scripts/real-stacks.sh --live       # the four servers on the live stage, four panels: open
#                                       # http://127.0.0.1:8080 (STAGE_PORT) and press B
#
# Makes a virtual environment in .venv-python/ (pip, the pinned python/requirements.txt) the first
# time, builds the twins, starts all four servers on free loopback ports with 4 workers each (each
# Python stack with its events relay, python/events_relay.py), runs `burst compare` over them and
# writes the chart and every server's log into a folder it names at the end. Everything it started
# is stopped by PID when it ends — also on failure or Ctrl-C.
# Exit status: burst's (0 as predicted, 1 failed requests, 3 not as predicted); 2 when Python, its
# venv module or PyPI is not there (one line says which).
set -euo pipefail

cd "$(dirname "$0")/.."
sizes=16
check=0
live=0
while [ $# -gt 0 ]; do
  case $1 in
    -n) sizes=$2; shift 2 ;;
    --check) check=1; shift ;;
    --live) live=1; shift ;;
    *) echo "usage: scripts/real-stacks.sh [-n 16,100] [--check | --live]" >&2; exit 2 ;;
  esac
done

command -v python3 >/dev/null || {
  echo "real-stacks.sh: python3 is not installed; the real stacks need Python 3.9 or newer" >&2
  exit 2
}
venv=.venv-python
if ! cmp -s python/requirements.txt "$venv/requirements.installed" 2>/dev/null; then
  echo "== making $venv (pip install -r python/requirements.txt; once) =="
  python3 -m venv "$venv" 2>/dev/null || {
    echo "real-stacks.sh: 'python3 -m venv' does not work here (on Debian/Ubuntu: apt install python3-venv)" >&2
    exit 2
  }
  "$venv/bin/pip" install --quiet --disable-pip-version-check -r python/requirements.txt || {
    echo "real-stacks.sh: pip could not install python/requirements.txt (no network to PyPI?)" >&2
    exit 2
  }
  cp python/requirements.txt "$venv/requirements.installed"
fi

echo "== building the twins (release) =="
cargo build --release --quiet
bin=target/release
out=${OUT:-out/real-stacks-$(date +%Y%m%d-%H%M%S)}
mkdir -p "$out"

. scripts/lib.sh
pids=()
trap stop_started EXIT
trap 'exit 130' INT TERM

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

start() { start_server "$out" "$@"; }

# relay NAME: a stack's events relay (python/events_relay.py: not a worker, so watching takes
# none), started before the stack, whose workers learn it from TWIN_EVENTS (host:port).
relay() {
  start "$1" 's/^listening on http:\/\/\(.*\)$/\1/p' "$venv/bin/python" python/events_relay.py --port 0
  events=$url
}

export TWIN_WORKERS=4 TWIN_TASK_MS=1000 TWIN_MULTI_TASKS=2
relay gunicorn-flask-events
TWIN_EVENTS=$events start gunicorn-flask 's/^listening on //p' \
  "$venv/bin/gunicorn" --config python/gunicorn.conf.py --chdir python --bind 127.0.0.1:0 flask_app:app
flask=$url
port=$(free_port)
relay uvicorn-fastapi-events
TWIN_EVENTS=$events TWIN_URL=http://127.0.0.1:$port start uvicorn-fastapi 's/.*Uvicorn running on \(http:[^ ]*\).*/\1/p' \
  "$venv/bin/uvicorn" fastapi_app:app --app-dir python --host 127.0.0.1 --port "$port" \
  --workers "$TWIN_WORKERS" --no-access-log
fastapi=$url
start pool-server 's/^listening on //p' "$bin/pool-server" --port 0 --workers 4
pool=$url
start async-server 's/^listening on //p' "$bin/async-server" --port 0 --workers 4
async=$url
# uvicorn prints its line before its workers are ready: wait for each to say it has started.
for _ in $(seq 1 300); do
  ready=$(grep -c 'Application startup complete' "$out/uvicorn-fastapi.stderr.log" || true)
  [ "$ready" -ge "$TWIN_WORKERS" ] && break
  sleep 0.1
done
echo "== gunicorn + Flask $flask · pool-server $pool · uvicorn + FastAPI $fastapi · async-server $async =="

if [ "$live" = 1 ]; then
  # The four on the live stage: each real stack beside its twin, pools above, event loops below.
  start stage 's/^listening on //p' "$bin/burst" stage --port "${STAGE_PORT:-8080}" \
    --target "gunicorn + Flask=$flask" --target "pool-server=$pool" \
    --target "uvicorn + FastAPI=$fastapi" --target "async-server=$async"
  stage_pid=${pids[-1]}
  echo
  echo "   the live stage:  $url"
  echo
  echo "   Four panels: gunicorn + Flask beside pool-server, uvicorn + FastAPI beside async-server."
  echo "   Press B to fire at all four at the same instant (/io × 16); 1–5 pick the route, ↑/↓ N,"
  echo "   P the two pools, A the two event loops, Esc stops a burst. Logs: $out/"
  echo "   Ctrl-C here stops the stage, the servers and the relays this script started."
  wait "$stage_pid"
  exit 0
fi

if [ "$check" = 1 ]; then
  echo "== do the Python stacks answer like the twins? =="
  python3 - "$flask" "$pool" "$fastapi" "$async" "$out" <<'PY'
import json, re, sys, urllib.request, urllib.error
flask, pool, fastapi, twin, out = sys.argv[1:]
def get(url):
    try:
        with urllib.request.urlopen(url, timeout=10) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()
failed = []
for real, twin_url, name in [(flask, pool, "gunicorn + Flask"), (fastapi, twin, "uvicorn + FastAPI")]:
    for path in ["/io?ms=abc", "/io?ms=-1", "/io?ms=99999999", "/async-io-multi?tasks=0",
                 "/io?sleep=1", "/io?ms=1&ms=2", "/nope"]:
        a, b = get(real + path), get(twin_url + path)
        if a != b:
            failed.append(f"{name} {path}: {a} but the twin says {b}")
    a, b = json.loads(get(real + "/")[1]), json.loads(get(twin_url + "/")[1])
    for key in ["kind", "workers", "task_ms", "multi_tasks", "max_ms", "max_tasks", "routes"]:
        if key not in a:
            failed.append(f"{name} GET / has no {key!r}")
        elif key != "routes" and a[key] != b[key]:
            failed.append(f"{name} GET / {key} = {a[key]!r}, the twin's {b[key]!r}")
    rules = lambda doc: {r["path"]: (r.get("holds"), r.get("service")) for r in doc["routes"]}
    if rules(a) != rules(b):
        failed.append(f"{name} GET / queueing rules {rules(a)} differ from the twin's {rules(b)}")
line = re.compile(r"^\[\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\] \[\d+-worker\d+\] [A-Z]+ \S+$")
for log in ["gunicorn-flask", "uvicorn-fastapi", "pool-server", "async-server"]:
    lines = open(f"{out}/{log}.access.log").read().splitlines()
    bad = [l for l in lines if not line.match(l)]
    if not lines or bad:
        failed.append(f"{log}: access log lines not in the reference format: {bad[:3] or 'none at all'}")
for f in failed:
    print("MISMATCH:", f, file=sys.stderr)
sys.exit(1 if failed else 0)
PY
  echo "   400 bodies, 404s, GET / and access-log lines: the same on the real stacks and the twins"
  echo "== do the Python stacks publish the twins' events, and does watching them cost nothing? =="
  "$venv/bin/python" scripts/check-events.py "$bin/burst" "$flask" "$pool" "$fastapi" "$async"
  echo "   the same events for the same requests; a watcher leaves every reference cell within 1 %"
fi

code=0
"$bin/burst" compare -n "$sizes" --svg "$out/real-stacks.svg" \
  --target "gunicorn + Flask=$flask" --target "pool-server=$pool" \
  --target "uvicorn + FastAPI=$fastapi" --target "async-server=$async" || code=$?
if [ "$code" -ne 0 ]; then
  echo "real-stacks.sh: FAILED: burst exited $code — not every server behaved as the model predicts" >&2
  exit "$code"
fi

# Part 2 (docs/workshop.md): gunicorn's gthread workers beside pool-server --threads, and
# uvicorn's --limit-concurrency beside the twin's, T = 500 ms.
echo
echo "== part 2: threads (gunicorn gthread 2 × 4) and shedding (--limit-concurrency 8), T = 500 ms =="
export TWIN_TASK_MS=500
TWIN_WORKERS=2 TWIN_THREADS=4 start gunicorn-gthread 's/^listening on //p' \
  "$venv/bin/gunicorn" --config python/gunicorn.conf.py --chdir python --bind 127.0.0.1:0 flask_app:app
gthread=$url
start pool-threads 's/^listening on //p' "$bin/pool-server" --port 0 --workers 2 --threads 4 --task-ms 500
pool_threads=$url
port=$(free_port)
TWIN_WORKERS=1 TWIN_LIMIT_CONCURRENCY=8 start uvicorn-limit 's/.*Uvicorn running on \(http:[^ ]*\).*/\1/p' \
  "$venv/bin/uvicorn" fastapi_app:app --app-dir python --host 127.0.0.1 --port "$port" \
  --workers 1 --no-access-log --limit-concurrency 8
uvicorn_limit=$url
start async-limit 's/^listening on //p' "$bin/async-server" --port 0 --workers 1 --limit-concurrency 8 --task-ms 500
async_limit=$url
for _ in $(seq 1 300); do
  grep -q 'Application startup complete' "$out/uvicorn-limit.stderr.log" && break
  sleep 0.1
done

# Threads raise the ceiling, still a pool: 16 at once in waves of 8; 24/s over μ = 8 / 0.5 s.
"$bin/burst" compare -n 16 --routes /io \
  --target "gunicorn gthread 2×4=$gthread" --target "pool-server 2×4=$pool_threads" || code=$?
"$bin/burst" compare --rate 24 --duration 3 --routes /io --svg "$out/threads-steady.svg" \
  --target "gunicorn gthread 2×4=$gthread" --target "pool-server 2×4=$pool_threads" || code=$?
if [ "$code" -ne 0 ]; then
  echo "real-stacks.sh: FAILED: burst exited $code on the threads experiments" >&2
  exit "$code"
fi

# Shedding: 16 at once with --limit-concurrency 8. The twin serves 8 and sheds 8; uvicorn's
# rule is not quite the same, and the table says how.
python3 - "$bin/burst" "$uvicorn_limit" "$async_limit" <<'PY' || code=$?
import json, subprocess, sys
burst, uvicorn, twin = sys.argv[1:]
def once(url):
    out = subprocess.run([burst, url + "/async-io", "-n", "16", "--json"], capture_output=True, text=True)
    doc = json.loads(out.stdout)
    statuses = doc["summary"]["statuses"]
    return out.returncode, statuses.get("200", 0), statuses.get("503", 0), doc["model"]["verdict"]
print(f"{'server':<34} {'served':>6} {'503':>5}  judged by")
failed = False
uvicorn_served = None
for name, url in [("uvicorn --limit-concurrency 8", uvicorn), ("async-server --limit-concurrency 8", twin)]:
    code, served, shed, verdict = once(url)
    if name.startswith("async-server"):
        # The twin: burst's model, which counts requests in the server, as the twin does.
        print(f"{name:<34} {served:>6} {shed:>5}  {'✓' if code == 0 else '✗'} the model: {verdict}")
        failed = failed or code != 0
        continue
    # uvicorn sheds a request when its worker's open connections or running requests reach N,
    # counting the one being decided (h11_impl/httptools_impl: `len(connections) >= limit or
    # len(tasks) >= limit`): at most N - 1 at once — and fewer, down to none, when more than N
    # connections are open when the requests come (burst opens all 16 before it sends any).
    # burst's model counts requests, so it is judged here by its own rule instead.
    uvicorn_served = served
    ok = served <= 7 and served + shed == 16
    print(f"{name:<34} {served:>6} {shed:>5}  {'✓' if ok else '✗'} uvicorn's own rule: at most "
          f"N - 1 = 7 served, the rest 503 at once")
    if not ok:
        failed = True
        print(f"  uvicorn served {served} of 16: more than its own N - 1 = 7", file=sys.stderr)
print(f"uvicorn served {uvicorn_served} of 16: it sheds when its worker's open connections *or* running")
print("requests reach N, counting the one it is deciding on — so at most N - 1 = 7, and fewer when")
print("more connections are open (burst opens all 16 before it sends). The twin counts requests:")
print("N = 8 in the server at once. The lesson is the same: beyond the limit, a 503 at once, not a wait.")
sys.exit(1 if failed else 0)
PY
if [ "$code" -ne 0 ]; then
  echo "real-stacks.sh: FAILED: the shedding experiment did not go as the table says it should" >&2
  exit "$code"
fi
echo
echo "chart and logs are in $out/:"
ls -1 "$out" | sed 's/^/  /'
