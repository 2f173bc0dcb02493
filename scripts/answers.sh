#!/usr/bin/env bash
# answers.sh — record what both twins answer to a fixed set of requests, good and bad, so that a
# change meant to keep behaviour (a restructuring) can be checked byte for byte:
#
#   scripts/answers.sh > before.txt     # on the old commit
#   scripts/answers.sh > after.txt      # on the new one
#   diff before.txt after.txt           # nothing: the twins answer as they did
#
# Each twin is started on a free port (release build, 2 workers, T = 50 ms), sent every request
# below on a connection of its own, and stopped (by PID). What changes from run to run by nature —
# the date, pid, port, which worker, request ids, timestamps and durations — is replaced by a
# placeholder;
# everything else is printed as received, status line, headers and body.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
bin=target/release
. scripts/lib.sh
pids=()
trap stop_started EXIT
trap 'exit 130' INT TERM

cargo build --release --quiet -p pool-server -p async-server >&2

python3 - "$bin" <<'EOF'
import os, re, socket, subprocess, sys, time

bin_dir = sys.argv[1]

def free_port():
    s = socket.socket(); s.bind(("127.0.0.1", 0)); p = s.getsockname()[1]; s.close(); return p

def get(target, extra=""):
    return f"GET {target} HTTP/1.1\r\nHost: t\r\n{extra}Connection: close\r\n\r\n".encode()

REQUESTS = [
    get("/"), get("/", "Accept: text/html\r\n"), get("/healthz"), get("/favicon.ico"),
    get("/io?ms=50"), get("/async-io?ms=50"), get("/async-io-multi?ms=50&tasks=2"),
    get("/async-io-blocking?ms=50"), get("/cpu?ms=5"), get("/io"),
    get("/io?ms=-1"), get("/io?ms=99999999"), get("/io?ms=1&ms=1"), get("/io?sleep=1"),
    get("/io?ms=%ZZ"), get("/async-io-multi?tasks=0"), get("/nowhere"),
    b"DELETE /io HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",
    b"HEAD /healthz HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",
    b"HEAD /events HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",
    get("/healthz", "X-Request-Id: mine-1\r\n"), get("/healthz", "X-Request-Id: a b\r\n"),
    b"GET /healthz HTTP/1.1\r\nHost: t\r\nX-Request-Id: caf\xc3\xa9\r\nConnection: close\r\n\r\n",
    b"GET /healthz HTTP/1.1\r\nConnection: close\r\n\r\n",
    get("/healthz", "Host: u\r\n"), get("/healthz", "Content-Length: 0\r\nContent-Length: 41\r\n"),
    get("/healthz", "Transfer-Encoding: gzip\r\n"), get("/io?ms=1", "Content-Length: 2097152\r\n"),
    get("/" + "a" * 9000), get("/healthz", "X-Big: " + "a" * 40000 + "\r\n"),
    b"GET /healthz HTTP/2.0\r\nHost: t\r\n\r\n", b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
    b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03",
    b"GET /healthz HTTP/1.0\r\n\r\n",
    b"GET /healthz HTTP/1.0\r\nConnection: keep-alive\r\n\r\nGET /healthz HTTP/1.0\r\n\r\n",
    b"GET /io?ms=1 HTTP/1.1\r\nHost: t\r\n\r\nGET /io?ms=1 HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",
]

VOLATILE = [
    (rb"(?im)^(date: ).*$", rb"\1<date>"),
    (rb"(?im)^(x-request-id: )\d+-\d+", rb"\1<pid>-<n>"),
    (rb"(?im)^(server-timing: ).*$", rb"\1<timings>"),
    (rb"(?im)^(x-worker: )worker\d+", rb"\1<worker>"),
    (rb'"worker":"worker\d+"', rb'"worker":"<worker>"'),
    (rb'"(pid|cpu_units_per_ms)":\d+', rb'"\1":<n>'),
    (rb'"request_id":"\d+-\d+"', rb'"request_id":"<pid>-<n>"'),
    (rb'"(started|finished)":"[^"]*"', rb'"\1":"<time>"'),
    (rb'"(elapsed_ms|pool_wait_ms|cpu_ms)":[0-9.]+', rb'"\1":<ms>'),
    (rb"127\.0\.0\.1:\d+", rb"127.0.0.1:<port>"),
    (rb"pid \d+", rb"pid <pid>"),
    (rb"(?im)^(content-length: )\d+", rb"\1<n>"),
    (rb"\d+ units/ms", rb"<n> units/ms"),
]

def exchange(port, data):
    s = socket.create_connection(("127.0.0.1", port))
    try:
        s.sendall(data)
    except OSError:
        pass
    s.settimeout(3)
    out = b""
    try:
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            out += chunk
    except (socket.timeout, ConnectionResetError):
        out += b"<no close within 3 s>" if not out else b""
    s.close()
    for pattern, repl in VOLATILE:
        out = re.sub(pattern, repl, out)
    return out

for name in ("pool-server", "async-server"):
    port = free_port()
    proc = subprocess.Popen([f"{bin_dir}/{name}", "--port", str(port), "--workers", "2",
                             "--task-ms", "50"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    print(f"started {name} pid {proc.pid}", file=sys.stderr)
    try:
        for line in proc.stderr:
            if b"listening on" in line:
                break
        for i, data in enumerate(REQUESTS):
            head = data[:60].decode("latin1").replace("\r", "\\r").replace("\n", "\\n")
            print(f"=== {name} #{i}: {head}", flush=True)
            sys.stdout.buffer.write(exchange(port, data) + b"\n")
            sys.stdout.buffer.flush()
    finally:
        proc.terminate()
        proc.wait(timeout=10)
EOF
