"""The plumbing both Python apps share, so flask_app.py and fastapi_app.py show mainly routes.

A port of the Rust twins' twin-core: the route catalogue (route.rs), parameter checks (request.rs),
the bodies (reply.rs) and the access-log line (access_log.rs), so that gunicorn + Flask and
uvicorn + FastAPI answer byte for byte like pool-server and async-server.
"""

import fcntl
import itertools
import json
import math
import multiprocessing
import os
import platform
import re
import resource
import socket
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from html import escape
from importlib.metadata import version
from urllib.parse import parse_qsl

# The configuration, as a launcher sets it: the twins' --task-ms and --multi-tasks. (TWIN_WORKERS,
# their --workers, is read in index(), once gunicorn's post_fork hook has set the count in force.)
TASK_MS = int(os.environ.get("TWIN_TASK_MS", "1000"))  # T
MULTI_TASKS = int(os.environ.get("TWIN_MULTI_TASKS", "2"))  # K
URL = os.environ.get("TWIN_URL")  # where the server listens, e.g. http://127.0.0.1:8000
# Where this stack's events go: events_relay.py's address (host:port). Its UDP inbox takes each
# worker's events; its HTTP `GET /events` serves them, as the twins serve theirs.
EVENTS = os.environ.get("TWIN_EVENTS")
EVENTS_PATH = "/events"
MAX_MS, MAX_TASKS = 60_000, 1000
FAVICON = "/favicon.ico"  # the browser's icon: 204 at once, and no log line
TEXT = "text/plain; charset=utf-8"
BACKLOG = 2048  # gunicorn's and uvicorn's default listen queue, as the twins'
if not (0 <= TASK_MS <= MAX_MS and 1 <= MULTI_TASKS <= MAX_TASKS):
    sys.exit(f"TWIN_TASK_MS must be 0..={MAX_MS} and TWIN_MULTI_TASKS 1..={MAX_TASKS}")

ABOUT = {  # the twins' taglines, for the originals
    "pool": "WSGI: a fixed pool of blocking workers, one request each "
    "(gunicorn sync workers + Flask)",
    "event-loop": "ASGI: event loops that hold many waiting requests each "
    "(uvicorn workers + FastAPI)",
}

INDEX = "this server's kind, pid, configuration and route table (JSON)"
HEALTHZ = "200 ok at once; not in the access log unless --log-healthz"

# path: (parameters, what it does on a pool, on an event loop), in the order GET / lists them;
# the texts are the twins' (route.rs), so `what_happened` reads the same.
ROUTES = {
    "/io": (
        ("ms",),
        "blocking wait of T: the worker is tied up for T",
        (
            "blocking wait of T on the loop's bounded thread pool (--threadpool slots, like a "
            "FastAPI `def` route); the loop stays free, and beyond the slots requests queue"
        ),
    ),
    "/async-io": (
        ("ms",),
        (
            "async view, Flask-style: a fresh event loop inside the worker awaits T; the worker "
            "is tied up all the same"
        ),
        "awaits one async wait of T; the loop serves others meanwhile",
    ),
    "/async-io-multi": (
        ("ms", "tasks"),
        "fresh event loop, K concurrent waits of T/K: the worker is tied up only ~T/K",
        "K concurrent async waits of T/K on the event loop",
    ),
    "/async-io-blocking": (
        ("ms",),
        "async task that calls a blocking wait of T: on a pool worker no different from /io",
        (
            "the classic mistake: an async handler that blocks for T, freezing its event loop "
            "and every request on it"
        ),
    ),
    "/cpu": (
        ("ms",),
        (
            "a fixed amount of CPU work, about T on a free core: the worker is tied up, and "
            "workers beyond the cores share them"
        ),
        (
            "a fixed amount of CPU work (about T on a free core) on the event loop: async does "
            "not help CPU-bound work, and loops beyond the cores share them"
        ),
    ),
    "/": ((), INDEX, INDEX),
    "/healthz": ((), HEALTHZ, HEALTHZ),
}


# The queueing rule, as the twins publish it (route.rs): what a request holds while served, and
# for how long. `burst` reads it from GET / to predict the waves.
HOLDS = {
    "pool": dict.fromkeys(ROUTES, "worker"),
    "event-loop": {
        "/io": "thread-pool-slot",
        "/async-io": "nothing",
        "/async-io-multi": "nothing",
        "/async-io-blocking": "event-loop",
        "/cpu": "event-loop",
        "/": "nothing",
        "/healthz": "nothing",
    },
}
SERVICE = {
    "/io": "T",
    "/async-io": "T",
    "/async-io-multi": "T/K",
    "/async-io-blocking": "T",
    "/cpu": "T of CPU",
    "/": "0",
    "/healthz": "0",
}


def describe(path: str, kind: str) -> str:
    return ROUTES[path][1 if kind == "pool" else 2]


# --- /cpu: a fixed amount of work, not "spin until the clock says T" -------------------------


def cpu_work(units: int) -> float:
    """Busy CPU work: `units` steps of a Park-Miller random number generator. Returns the CPU
    time it took, in ms (Server-Timing `cpu`), as the twins report it."""
    t, x = time.thread_time(), 1
    for _ in range(units):
        x = x * 48271 % 2147483647
    return round((time.thread_time() - t) * 1000, 1)


def _calibrate(units: int = 100_000) -> int:
    """Units per millisecond on one core. Timed in CPU time, best of 3, so it holds even while
    the other workers start (and calibrate) on the same cores."""
    best = math.inf
    for _ in range(3):
        t = time.process_time()
        cpu_work(units)
        best = min(best, time.process_time() - t)
    return round(units / (best * 1000))


CPU_UNITS_PER_MS = _calibrate()
CORES = len(os.sched_getaffinity(0))  # the cores this process may run on, as the twins count them


# --- Which worker this is ------------------------------------------------------------------------


def worker_name() -> str:
    """`workerK`: gunicorn.conf.py's post_fork hook, or claim_worker_index(), sets TWIN_WORKER."""
    return f"worker{os.environ.get('TWIN_WORKER', '0')}"


_slots = None  # the open lock file: closing it would drop our lock


def claim_worker_index() -> None:
    """For uvicorn, which neither numbers its workers nor has a per-worker hook: each worker process
    takes the lowest index no live sibling holds, by locking one byte of a shared file. The kernel
    drops a lock when its process dies, so a worker that uvicorn restarts takes the dead one's index
    again (a spawn counter would only ever grow). Each server's workers lock bytes from their
    supervisor's pid × 4096 on, so servers side by side keep apart, and no file is left per run."""
    global _slots
    parent = multiprocessing.parent_process()  # uvicorn's supervisor; None with --workers 1
    if parent is None:
        os.environ.update(TWIN_WORKER="0", TWIN_WORKERS="1")
        return
    _slots = open(os.path.join(tempfile.gettempdir(), "twin-uvicorn-workers.lock"), "ab")
    for k in range(4096):
        try:
            fcntl.lockf(_slots, fcntl.LOCK_EX | fcntl.LOCK_NB, 1, parent.pid * 4096 + k)
        except OSError:
            continue
        os.environ["TWIN_WORKER"] = str(k)
        return
    sys.exit("no free worker index below 4096")


# --- Pick-up: the log line, then the decision (request.rs) ----------------------------------------


class Reject(Exception):
    """An answer without work: 400, 404 or 405 with the twins' JSON body, or 204 with none.
    `job`: the request as picked up (its id, and its `finished` for the watchers)."""

    def __init__(self, status: int, body: dict | None, headers: dict | None = None):
        super().__init__(status)
        self.status, self.body, self.headers = status, body, headers or {}
        self.job: Job | None = None


@dataclass
class Job:
    """A request a worker has picked up, with its validated T and K."""

    kind: str
    route: str
    ms: int
    tasks: int
    started: datetime  # wall clock at pick-up, as logged
    clock: float  # perf_counter at pick-up
    id: str = ""  # X-Request-Id: the client's, or one this worker made
    watched: bool = False  # in the access log, and so in the events
    elapsed_ms: float | None = None  # set by done()
    pool_wait_ms: float | None = None  # FastAPI's /io: the wait for a thread, set by done()
    cpu_ms: float | None = None  # /cpu: the CPU time the work took, set by done()

    @property
    def seconds(self) -> float:
        """T, in seconds."""
        return self.ms / 1000

    @property
    def slice(self) -> float:
        """T/K, in seconds: the length of each of the K concurrent waits."""
        return self.ms / self.tasks / 1000

    @property
    def cpu_units(self) -> int:
        """The CPU work that takes T on one free core."""
        return round(self.ms * CPU_UNITS_PER_MS)

    def since_pick_up(self) -> float:
        return millis(time.perf_counter() - self.clock)

    def done(self, pool_wait_ms: float | None = None, cpu_ms: float | None = None) -> dict:
        """The body of a finished work route (reply.rs, Reply::work)."""
        elapsed = time.perf_counter() - self.clock
        self.elapsed_ms, self.pool_wait_ms, self.cpu_ms = millis(elapsed), pool_wait_ms, cpu_ms
        body = {
            "server": self.kind,
            "route": self.route,
            "worker": worker_name(),
            "request_id": self.id,
            "pid": os.getpid(),
            "ms": self.ms,
            "tasks": self.tasks,
            "started": rfc3339(self.started),
            "finished": rfc3339(self.started + timedelta(seconds=elapsed)),
            "elapsed_ms": self.elapsed_ms,
            "pool_wait_ms": pool_wait_ms,
            "cpu_ms": cpu_ms,
            "what_happened": describe(self.route, self.kind),
        }
        return {k: v for k, v in body.items() if v is not None}


def pick_up(kind: str, method: str, target: str, request_id: str | None = None) -> Job:
    """A worker has just picked up `method target` (the target as sent; `request_id`, its
    X-Request-Id header if any): write the access-log line and publish `picked-up`, then answer
    204, 404, 405 or 400 by raising Reject, or return the Job."""
    started, clock = datetime.now().astimezone(), time.perf_counter()
    path, query = split_target(target)
    rid, bad_id = request_ids.of(request_id)
    job = Job(kind, path, 0, 1, started, clock, rid, path not in (FAVICON, "/healthz", EVENTS_PATH))
    if job.watched:
        stamp = started.strftime("%Y-%m-%d %H:%M:%S")
        # One write() per line, as the worker processes share stdout: print() writes the text and
        # the newline apart under PYTHONUNBUFFERED=1 (set in most containers), and lines interleave.
        sys.stdout.write(
            f"[{stamp}] [{os.getpid()}-{worker_name()}] {method} {printable(target)}\n"
        )
        sys.stdout.flush()
        step("picked-up", job, started=rfc3339(started))
    try:
        if bad_id is not None:
            raise bad_id
        if path == FAVICON:
            raise Reject(204, None, {"Content-Type": TEXT})
        if path == EVENTS_PATH and EVENTS:
            # Served by the relay, not by a worker: a worker that streams is a worker lost.
            raise Reject(404, {"error": "not found", "path": path, "events": events_url(),
                               "detail": "this stack's events are served by its relay"})
        if path not in ROUTES:
            raise Reject(404, {"error": "not found", "path": path, "routes": list(ROUTES)})
        if method not in ("GET", "HEAD"):  # HEAD is GET without the body, as Flask has it
            allowed = "GET, HEAD"
            body = {"error": "method not allowed", "method": method, "path": path,
                    "allowed": allowed}
            raise Reject(405, body, {"Allow": allowed})
        job.ms, job.tasks = parse_params(path, query)
    except Reject as e:
        e.job = job
        raise
    return job


# --- Request ids (request_id.rs) ------------------------------------------------------------------

MAX_ID = 128


class Ids:
    """Every request's id: its own X-Request-Id when it sent a good one, or `{pid}-{n}`. The id is
    echoed in the answer's header and body and in the events, so a client (the stage) can line its
    request up with the server's account of it."""

    def __init__(self):
        self._next = itertools.count(1)  # next() on a count is atomic under the GIL

    def make(self) -> str:
        return f"{os.getpid()}-{next(self._next)}"

    def of(self, header: str | None) -> tuple[str, "Reject | None"]:
        if header is None:
            return self.make(), None
        if 0 < len(header) <= MAX_ID and all(33 <= ord(c) <= 126 for c in header):
            return header, None
        return self.make(), Reject(400, {
            "error": "bad request id",
            "header": "X-Request-Id",
            "received": header[:64],
            "allowed": f"1 to {MAX_ID} visible ASCII characters, no spaces "
            "(or no header: the server makes one)",
        })


request_ids = Ids()


# --- Events: each step of each request, handed to the stack's relay (events.rs) -----------------


class Publisher:
    """Each worker process hands its events to events_relay.py as one UDP datagram each, on
    loopback. The socket never blocks: an event that finds the buffer full is dropped, and the
    relay, which numbers each process's events, tells the watchers how many they missed (`lagged`)
    — a request is never delayed by being watched. While nobody watches, the relay says so (one
    byte to each worker's socket, which it knows from the worker's hello) and an event costs a
    look at that socket; with no relay configured, a test of one variable."""

    def __init__(self, where: str | None):
        self.addr = None
        if where:
            host, _, port = where.rpartition(":")
            self.addr = (host or "127.0.0.1", int(port))
        self.lock = threading.Lock()  # gthread's and anyio's threads share the socket and count
        self.pid = None
        self.sock = None
        self.seq = 0
        self.watched = False  # until the relay says someone watches

    def __call__(self, name: str, data: dict) -> None:
        if self.addr is None:
            return
        with self.lock:
            if self.pid != os.getpid():  # first use in this (forked) process: its own socket
                self.pid, self.seq, self.watched = os.getpid(), 0, False
                self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                self.sock.setblocking(False)
            try:  # what the relay said since: b"1" someone watches, b"0" nobody
                while True:
                    self.watched = self.sock.recv(16)[-1:] == b"1"
            except OSError:  # nothing more (BlockingIOError), or no relay there yet
                pass
            if not self.watched and name != "hello":
                return
            self.seq += 1
            message = {"event": name, "pid": self.pid, "seq": self.seq, "data": data}
            try:
                self.sock.sendto(json.dumps(message, separators=(",", ":")).encode(), self.addr)
            except OSError:
                pass  # counted by the relay, from the gap in `seq`


publish = Publisher(EVENTS)


def events_url() -> str | None:
    """Where a watcher reads this stack's events (GET / says it)."""
    if not EVENTS:
        return None
    host, _, port = EVENTS.rpartition(":")
    return f"http://{host or '127.0.0.1'}:{port}{EVENTS_PATH}"


def step(name: str, job: Job, **more) -> None:
    """`queued`, `picked-up`, `slot` or `finished` of `job`, with the twins' fields in their
    order: id, route, worker, t_us, then `started` (picked-up) or `status` and `elapsed_us`."""
    if job.watched and publish.addr is not None:
        data = {"id": job.id, "route": job.route[:128], "worker": worker_name(),
                "t_us": time.time_ns() // 1000}
        publish(name, data | more)


def finished(job: Job | None, status: int) -> None:
    """The answer has been handed to the connection."""
    if job is not None:
        step("finished", job, status=status,
             elapsed_us=round((time.perf_counter() - job.clock) * 1e6))


def hello(doc: dict) -> None:
    """This worker is up, with the configuration document GET / gives: the relay greets each
    watcher with it, as the twins' streams begin."""
    publish("hello", doc)


def split_target(target: str) -> tuple[str, str]:
    """`/io?ms=5` (or absolute-form `http://host/io?ms=5`) -> ("/io", "ms=5")."""
    scheme, sep, rest = target.partition("://")
    if sep and "/" not in scheme:
        target = rest[min([rest.index(c) for c in "/?" if c in rest], default=len(rest)) :]
    path, _, query = target.partition("?")
    return path or "/", query


def parse_params(path: str, query: str) -> tuple[int, int]:
    """T and K from the query. Out of range is rejected, never clamped."""
    names = ROUTES[path][0]
    seen = {}
    for name, value in parse_qsl(query, keep_blank_values=True):
        if name not in names:
            allowed = ", ".join(names) or f"{path} takes no parameters"
            raise bad_request(path, "unknown parameter", name, value, allowed)
        if name in seen:
            raise bad_request(
                path, "parameter given more than once", name, value, "each parameter at most once"
            )
        if name == "ms":
            low, high, allowed = 0, MAX_MS, f"integer milliseconds 0..={MAX_MS}"
        else:
            low, high, allowed = 1, MAX_TASKS, f"integer number of tasks 1..={MAX_TASKS}"
        # A negative whole number is a number, just not one in range.
        if value[:1] == "-" and value[1:].isascii() and value[1:].isdigit():
            raise bad_request(path, "out of range", name, value, allowed)
        # Otherwise only plain ASCII digits: no sign, no spaces, no fractions.
        if not (value.isascii() and value.isdigit()):
            raise bad_request(path, "not a whole number", name, value, allowed)
        digits = value.lstrip("0") or "0"
        n = int(digits) if len(digits) < 20 else high + 1  # int() refuses over 4300 digits
        if not low <= n <= high:
            raise bad_request(path, "out of range", name, value, allowed)
        seen[name] = n
    tasks = seen.get("tasks", MULTI_TASKS) if path == "/async-io-multi" else 1
    return seen.get("ms", TASK_MS), tasks


def bad_request(path, error, parameter, received, allowed) -> Reject:
    body = {
        "error": error,
        "route": path,
        "parameter": parameter,
        "received": received,
        "allowed": allowed,
    }
    return Reject(400, body)


# --- Bodies, headers, times ---------------------------------------------------------------------


def headers(job: Job | None) -> dict:
    """Every answer names its worker and its id; a finished work route also gives its time."""
    h = {"X-Worker": worker_name()}
    if job is not None:
        h["X-Request-Id"] = job.id
    if job is not None and job.elapsed_ms is not None:
        h["Server-Timing"] = f"app;dur={job.elapsed_ms:.1f}"
        if job.pool_wait_ms is not None:  # the part of it spent waiting for a thread
            h["Server-Timing"] += f", pool-wait;dur={job.pool_wait_ms:.1f}"
        if job.cpu_ms is not None:  # the CPU time of /cpu's work
            h["Server-Timing"] += f", cpu;dur={job.cpu_ms:.1f}"
    return h


def index(kind: str, url: str, server: str, threadpool=None, graceful_timeout_s=None,
          threads=None, limit_concurrency=None) -> dict:
    """GET /: the twins' configuration document, with the same keys where they apply (None values
    are left out). `server` is "gunicorn + Flask" or "uvicorn + FastAPI": `version` gives the
    versions of those packages. `threads`: gunicorn's --threads (gthread); `limit_concurrency`:
    uvicorn's --limit-concurrency, per worker process, as the launcher says (TWIN_* variables)."""
    packages = [f"{p} {version(p)}" for p in server.split(" + ")]
    workers = int(os.environ.get("TWIN_WORKERS", "4"))
    # How many requests hold what a route holds at once, server-wide (the twins' route.rs slots).
    slots = {
        "worker": workers * (threads or 1),
        "thread-pool-slot": workers * (threadpool or 1),
        "event-loop": workers,
        "nothing": None,
    }
    doc = {
        "kind": kind,
        "url": url,
        "version": ", ".join(packages + [f"Python {platform.python_version()}"]),
        "pid": os.getpid(),
        "workers": workers,
        "task_ms": TASK_MS,
        "multi_tasks": MULTI_TASKS,
        "max_ms": MAX_MS,
        "max_tasks": MAX_TASKS,
        "cores": CORES,
        "cpu_units_per_ms": CPU_UNITS_PER_MS,
        "threadpool": threadpool,
        "threads": threads,
        "limit_concurrency": limit_concurrency,
        "open_files": resource.getrlimit(resource.RLIMIT_NOFILE)[0],
        "backlog": BACKLOG,
        "log_ms": False,
        "log_finish": False,
        "log_healthz": False,
        "graceful_timeout_s": graceful_timeout_s,
        "server": server,
        "about": ABOUT[kind],
        "events": events_url(),
        "routes": [
            {
                "path": path,
                "method": "GET",
                "params": list(params),
                "description": describe(path, kind),
                "holds": HOLDS[kind][path],
                "service": SERVICE[path],
                "slots": slots[HOLDS[kind][path]],
                # gthread: each process accepts connections for its own threads, and queues
                # them there — not one queue for all, as the twin's pool has.
                **({"per_worker": threads} if kind == "pool" and (threads or 1) > 1 else {}),
                "example": f"curl -s '{url}{path}{example_query(path)}'",
            }
            for path, (params, *_) in ROUTES.items()
        ],
    }
    return {k: v for k, v in doc.items() if v is not None}


def wants_html(accept: str | None) -> bool:
    """Does the Accept header ask for a web page first (a browser), rather than anything (curl)?"""
    return (accept or "").split(",")[0].strip().startswith("text/html")


def index_page(kind: str, url: str, server: str) -> str:
    """GET / from a browser: what this server is, its routes as links, and why the waves are for
    curl and burst to show (reply.rs, Reply::index_html)."""
    rows = ""
    for path in ROUTES:
        href = path + example_query(path)
        what = describe(path, kind) if path != "/" else (
            "this page in a browser; for curl and burst, the server's configuration and route "
            "table as JSON"
        )
        what = re.sub(r"`([^`]*)`", r"<code>\1</code>", html(what))  # `def` → <code>def</code>
        rows += f'<tr><td><a href="{href}">{href}</a></td><td>{what}</td></tr>\n'
    workers = int(os.environ.get("TWIN_WORKERS", "4"))
    noun = "sync worker" if kind == "pool" else "event loop"
    return (
        '<!doctype html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{server}</title>\n<style>body{{font:18px/1.5 system-ui,sans-serif;"
        "max-width:60em;margin:2em auto;padding:0 1em}td{padding:.2em 1em .2em 0;"
        "vertical-align:top}code{background:#eee;padding:0 .3em}</style></head><body>\n"
        f"<h1>{server}</h1>\n<p>{html(ABOUT[kind])}</p>\n"
        f"<p>{workers} {noun}{'s' if workers != 1 else ''}, T = {TASK_MS} ms, K = {MULTI_TASKS}; "
        f"pid {os.getpid()}.</p>\n"
        "<p><strong>Use curl or burst to see the waves</strong>, not this browser: a browser sends "
        "about 6 requests at a time to one host and would fake them. "
        f"<code>burst {html(url)}/io</code> fires 16 at once.</p>\n"
        f"<table>\n{rows}</table>\n<p>The configuration as JSON: "
        f"<code>curl -s {html(url)}/</code></p>\n</body></html>\n"
    )


def html(s: str) -> str:
    return escape(s, quote=False).replace('"', "&quot;")  # as the twins: not the apostrophe


def example_query(path: str) -> str:
    return {"/async-io-multi": "?ms=1000&tasks=2", "/": "", "/healthz": ""}.get(path, "?ms=1000")


def millis(seconds: float) -> float:
    """Milliseconds with one decimal, as the bodies and Server-Timing show them."""
    return math.floor(seconds * 10_000 + 0.5) / 10


def rfc3339(t: datetime) -> str:
    """`2024-10-29T17:04:15.123+01:00`"""
    return t.isoformat(timespec="milliseconds")


def printable(target: str) -> str:
    """The target as the log shows it: control characters escaped (a request must not forge log
    lines), a long one cut after 512 characters."""
    escape = {"\t": "\\t", "\r": "\\r", "\n": "\\n"}
    shown = "".join(
        escape.get(c, f"\\u{{{ord(c):x}}}") if ord(c) < 32 or 127 <= ord(c) < 160 else c
        for c in target[:512]
    )
    return shown if len(target) <= 512 else f"{shown}…({len(target.encode())} bytes)"
