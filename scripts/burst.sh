#!/usr/bin/env bash
# burst.sh — the curl-only experiment: fire N requests at once, each with its own curl (and so
# its own connection), and print when each one finished, sorted, with the worker that served it.
#
#   scripts/burst.sh URL [N]        e.g.  scripts/burst.sh http://127.0.0.1:8000/io 16
#
# Times are seconds since the burst started. Against pool-server with 4 workers and T = 1 s you see
# four waves: 1 s, 2 s, 3 s, 4 s. A failed or timed-out request is printed as such, never hidden.
# Environment: BURST_TIMEOUT (seconds per request, default 120).
set -euo pipefail

usage() { echo "usage: scripts/burst.sh URL [N]   (N: 1..1000, default 16)" >&2; exit 2; }
[ $# -ge 1 ] && [ $# -le 2 ] || usage
url=$1
n=${2:-16}
[[ $n =~ ^[0-9]+$ ]] && [ "$n" -ge 1 ] && [ "$n" -le 1000 ] || { echo "burst.sh: N must be 1..1000, got '$n'" >&2; exit 2; }
# No scheme means http://, as with burst; another scheme cannot be fired at.
[[ $url =~ :// ]] || url="http://$url"
[[ $url =~ ^http:// ]] || { echo "burst.sh: only http:// URLs (the twins speak plain HTTP), got '$url'" >&2; exit 2; }
timeout=${BURST_TIMEOUT:-120}
command -v curl >/dev/null || { echo "burst.sh: curl is not installed" >&2; exit 2; }

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
# Ctrl-C: the curls stop, and so does this script — quietly (no half-written results), 130.
interrupted() {
  trap - EXIT INT TERM
  kill $(jobs -p) 2>/dev/null || true
  wait 2>/dev/null || true
  rm -rf "$tmp"
  echo "burst.sh: interrupted; the server still serves what the curls gave up (a curl closes" >&2
  echo "          without a reset; \`burst\` resets, and the twins skip what it gave up)" >&2
  exit 130
}
trap interrupted INT TERM

now_ms() { local t; t=$(date +%s%N); echo $((t / 1000000)); }

t0=$(now_ms)
for ((i = 0; i < n; i++)); do
  (
    s=$(now_ms)
    # %header{} needs curl >= 7.84; 000 as the code means no response at all.
    out=$(curl -s -o /dev/null --max-time "$timeout" -w '%{http_code} %header{x-worker}' "$url" 2>/dev/null) || true
    e=$(now_ms)
    echo "$i $((s - t0)) $((e - t0)) ${out:-000}" 2>/dev/null >"$tmp/$i" || true
  ) 2>/dev/null &
done
wait
t1=$(now_ms)

cat "$tmp"/* | sort -n -k3 -k1 | awk -v url="$url" -v n="$n" -v total=$((t1 - t0)) '
  BEGIN { printf "burst: %d x GET %s (curl, one connection each)\n", n, url
          printf "  %4s  %8s  %8s  %6s  %s\n", "#", "sent(s)", "done(s)", "status", "worker" }
  {
    status = ($4 == "000") ? "failed" : $4
    worker = ($5 == "") ? "-" : $5
    printf "  %4d  %8.3f  %8.3f  %6s  %s\n", $1, $2 / 1000, $3 / 1000, status, worker
    if ($2 > spread) spread = $2
    count[status]++
    if (status == "failed") failed++
  }
  END {
    summary = ""
    for (s in count) summary = summary sprintf("%s%d x %s", (summary == "" ? "" : ", "), count[s], s)
    printf "total %.3f s; %s; launch spread %.3f s\n", total / 1000, summary, spread / 1000
    if (failed == n) {
      printf "burst.sh: nothing answered at %s: start a server first (cargo run --release -p pool-server)\n", url > "/dev/stderr"
      exit 2
    }
  }'
