# lib.sh — sourced by demo.sh and real-stacks.sh: start a server and learn its URL.
#
# start_server DIR NAME PATTERN COMMAND…
#   runs COMMAND in the background with stdout in DIR/NAME.access.log and stderr in
#   DIR/NAME.stderr.log, appends its PID to the caller's `pids` array (which the caller's cleanup
#   stops), and sets `url` from the first stderr line PATTERN (a sed expression that prints the
#   URL) matches. Fails with the server's stderr if it does not start within 30 s.
start_server() {
  local dir=$1 name=$2 pattern=$3
  shift 3
  : >"$dir/$name.stderr.log" # exists before the background process opens it
  "$@" >"$dir/$name.access.log" 2>"$dir/$name.stderr.log" &
  pids+=("$!")
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
