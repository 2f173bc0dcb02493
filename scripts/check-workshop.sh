#!/usr/bin/env bash
# check-workshop.sh — run every command of docs/workshop.md, in order, as a presenter would.
#
#   scripts/check-workshop.sh                      # once, straight through
#   scripts/check-workshop.sh --pause 6 --repeat 10  # as on stage: idle gaps between steps, 10 times
#
# ```sh server``` blocks are started in the background (their PIDs are kept and they are stopped at
# the end of each run, also on failure or Ctrl-C); every line of a ```sh``` block must exit 0 within
# 120 s — and `burst` exits non-zero when a burst is not what the model predicts, so a lesson that
# does not show fails the check. Commands run in a scratch folder (target/workshop-check), so a
# presenter's own `workshop-compare.svg` is never touched. Needs ports 8000-8004 and 8080 free.
set -euo pipefail

pause=0
repeat=1
while [ $# -gt 0 ]; do
  case $1 in
    --pause) pause=$2; shift 2 ;;
    --repeat) repeat=$2; shift 2 ;;
    *) echo "usage: scripts/check-workshop.sh [--pause SECONDS] [--repeat N]" >&2; exit 2 ;;
  esac
done

root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
doc=docs/workshop.md
logs=$(mktemp -d)
export PATH="$root/target/release:$PATH"
# Inside the repository, so `cargo build` still finds the workspace; `scripts/` is linked in.
scratch="$root/target/workshop-check"
mkdir -p "$scratch"
ln -sfn "$root/scripts" "$scratch/scripts"

# The workshop's commands name the stage's default port: a STAGE_PORT set for rehearsals
# elsewhere would move `burst stage` away from the curl lines that follow it.
unset STAGE_PORT
for port in 8000 8001 8002 8003 8004 8080; do
  if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
    echo "check-workshop.sh: port $port is in use; the workshop needs 8000-8004 and 8080 free" >&2
    exit 2
  fi
done

pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  rm -rf "$logs"
}
stop_servers() {
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  pids=()
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

cd "$scratch"
for run in $(seq 1 "$repeat"); do
[ "$repeat" -gt 1 ] && echo "== run $run of $repeat"
n=0
while IFS=$'\t' read -r kind cmd; do
  n=$((n + 1))
  [ "$n" -gt 1 ] && sleep "$pause"
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
        if kill -0 "${pids[-1]}" 2>/dev/null; then
          echo "FAILED to start: $cmd (still running after 10 s, no 'listening on' line)" >&2
          # What it is doing: each thread's name, state and where it waits in the kernel.
          for task in /proc/"${pids[-1]}"/task/*; do
            [ -r "$task/stat" ] || continue
            echo "  thread $(cat "$task/comm" 2>/dev/null): $(awk '{print $3}' "$task/stat") $(cat "$task/wchan" 2>/dev/null)" >&2
          done
          if command -v gdb >/dev/null; then
            gdb -p "${pids[-1]}" -batch -ex 'thread apply all bt' 2>/dev/null | grep '^#' | head -n 30 >&2 || true
          fi
        else
          code=0
          wait "${pids[-1]}" || code=$?
          echo "FAILED to start: $cmd (exited with status $code)" >&2
        fi
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
stop_servers
echo "workshop: all $n commands ran"
done
