"""gunicorn settings for flask_app: 4 sync workers (or gthread with TWIN_THREADS), worker labels, and no
access log of its own."""

import os
import sys

workers = int(os.environ.get("TWIN_WORKERS", "4"))
# One request per worker process at a time; with TWIN_THREADS > 1, gunicorn's gthread worker:
# that many threads per process, each serving one request (`--threads`).
threads = int(os.environ.get("TWIN_THREADS", "1"))
worker_class = "gthread" if threads > 1 else "sync"
accesslog = None  # flask_app writes its own line, when a worker picks a request up
timeout = 90  # a sync worker silent for longer is killed; a request may ask for 60 s (?ms=60000)
control_socket_disable = True  # gunicorn >= 25 opens one at a fixed path: two servers would clash


def when_ready(server):
    # Runs in the master once the socket is bound, before any worker is forked.
    url = str(server.LISTENERS[0])  # e.g. http://127.0.0.1:8000, the real port even with :0
    os.environ.setdefault("TWIN_URL", url)  # the workers inherit it: GET / reports it
    print(f"listening on {url}", file=sys.stderr, flush=True)  # the twins' last banner line


def pre_fork(server, worker):
    # Label workers worker0..worker{N-1}: the lowest index no live worker has, so a worker that
    # dies is replaced under its own label (worker.age only ever grows).
    taken = {w.index for w in server.WORKERS.values()}
    worker.index = min(set(range(len(taken) + 1)) - taken)


def post_fork(server, worker):
    # In the new worker process, before it imports the app.
    os.environ["TWIN_WORKER"] = str(worker.index)
    os.environ["TWIN_WORKERS"] = str(server.num_workers)  # the effective count, even with -w N
