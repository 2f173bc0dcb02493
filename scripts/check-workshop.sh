#!/usr/bin/env bash
# check-workshop.sh — run every command of docs/workshop.md, in order, as a presenter would.
#
#   scripts/check-workshop.sh
#
# ```sh server``` blocks are started in the background (their PIDs are kept and they are stopped at
# the end, also on failure or Ctrl-C); every line of a ```sh``` block must exit 0 within 120 s.
# Needs ports 8000, 8001 and 8002 free, as on a presenter's laptop.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
doc=docs/workshop.md
logs=$(mktemp -d)
export PATH="$root/target/release:$PATH"

for port in 8000 8001 8002; do
  if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
    echo "check-workshop.sh: port $port is in use; the workshop needs 8000-8002 free" >&2
    exit 2
  fi
done

pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  rm -f "$root/workshop-compare.svg"
  rm -rf "$logs"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# One record per command: "<kind>\t<command>", kind = run | server.
commands=$(awk '
  /^```sh server$/ { kind = "server"; next }
  /^```sh$/        { kind = "run"; next }
  /^```/           { kind = ""; next }
  kind != "" && NF { printf "%s\t%s\n", kind, $0 }
' "$doc")

n=0
while IFS=$'\t' read -r kind cmd; do
  n=$((n + 1))
  case $kind in
    server)
      echo "-- [$n] start: $cmd"
      bash -c "exec $cmd" >"$logs/$n.out" 2>"$logs/$n.err" &
      pids+=("$!")
      for _ in $(seq 1 100); do
        grep -q '^listening on ' "$logs/$n.err" && break
        kill -0 "${pids[-1]}" 2>/dev/null || break
        sleep 0.1
      done
      if ! grep -q '^listening on ' "$logs/$n.err"; then
        echo "FAILED to start: $cmd" >&2
        cat "$logs/$n.err" >&2
        exit 1
      fi
      ;;
    run)
      echo "-- [$n] \$ $cmd"
      if ! timeout 120 bash -c "$cmd" </dev/null >"$logs/$n.cmd" 2>&1; then
        echo "FAILED: $cmd" >&2
        tail -n 20 "$logs/$n.cmd" >&2
        exit 1
      fi
      tail -n 3 "$logs/$n.cmd" | sed 's/^/     /'
      ;;
  esac
done <<<"$commands"

echo "workshop: all $n commands ran"
