# lib.sh — sourced by the scripts that start servers: start one and learn its URL; stop them all.
#
# start_server DIR NAME PATTERN COMMAND…
#   runs COMMAND in the background with stdout in DIR/NAME.access.log and stderr in
#   DIR/NAME.stderr.log, appends its PID to the caller's `pids` array (which `stop_started` below
#   stops), and sets `url` from the first stderr line PATTERN (a sed expression that prints the
#   URL) matches. Fails with the server's stderr if it does not start within 30 s.
start_server() {
  local dir=$1 name=$2 pattern=$3
  shift 3
  : >"$dir/$name.stderr.log" # exists before the background process opens it
  # A process group of its own (job control): Ctrl-C in the terminal reaches the script, whose
  # stop_started then drains each server with one SIGTERM — not the server too, which would take
  # the terminal's SIGINT and the script's SIGTERM as "quit now, without draining".
  set -m
  "$@" >"$dir/$name.access.log" 2>"$dir/$name.stderr.log" &
  pids+=("$!")
  started+=("$name")
  set +m
  for _ in $(seq 1 300); do
    url=$(sed -n "$pattern" "$dir/$name.stderr.log" | head -n 1)
    [ -n "$url" ] && return 0
    kill -0 "${pids[-1]}" 2>/dev/null || break
    sleep 0.1
  done
  echo "$(basename "$0"): $name did not start; its stderr:" >&2
  cat "$dir/$name.stderr.log" >&2
  return 1
}

# stop_started: SIGTERM each server in the caller's `pids` — only those it started, by PID — then
# wait for them. Scripts set `trap stop_started EXIT` (and `trap 'exit 130' INT TERM`).
stop_started() {
  [ ${#pids[@]} -gt 0 ] || return 0
  echo "== stopping what this script started: ${started[*]:-${pids[*]}} (each drains, then exits)" >&2
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
}

# write_figures DOC MARKER REPORT: put the file REPORT into DOC between `<!-- MARKER:begin -->` and
# `<!-- MARKER:end -->`, keeping everything else (the notes written by hand) as it is.
write_figures() {
  python3 - "$1" "$2" "$3" <<'PY'
import sys
doc, marker, report = sys.argv[1], sys.argv[2], open(sys.argv[3]).read()
text = open(doc).read()
begin, end = f"<!-- {marker}:begin -->", f"<!-- {marker}:end -->"
head, rest = text.split(begin, 1)
_, tail = rest.split(end, 1)
open(doc, "w").write(head + begin + "\n" + report + end + tail)
PY
}

# build_and_guard OUT: the release build the README's `cargo build --release` makes (one build
# serves every script), then OUT made, an empty `pids`, and the traps that stop what was started.
build_and_guard() {
  command -v cargo >/dev/null || { echo "$(basename "$0"): cargo is not installed (https://rustup.rs)" >&2; exit 2; }
  echo "== building (release; the first build takes a few minutes) =="
  cargo build --release
  mkdir -p "$1"
  pids=()
  started=()
  trap stop_started EXIT
  trap 'exit 130' INT TERM
}

# scratch_and_guard: for the benchmarks — a scratch folder in `tmp`, removed at the end with every
# server the script started (stopped by PID), also on failure or Ctrl-C; an empty `pids`.
scratch_and_guard() {
  tmp=$(mktemp -d)
  pids=()
  started=()
  trap 'stop_started; rm -rf "$tmp"' EXIT
  trap 'exit 130' INT TERM
}

# say TEXT: a line for the person watching, on stderr (stdout may be a report).
say() { printf '%s\n' "$*" >&2; }
