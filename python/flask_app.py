"""gunicorn + Flask: the WSGI original that pool-server imitates.

Each gunicorn sync worker is a process that holds one request from pick-up to response, whatever
the view does while it waits. Run it as README.md says (gunicorn.conf.py: 4 workers, the labels).
"""

import asyncio
import os
import time

from flask import Flask, g, request

import twin_common as twin

app = Flask(__name__)
app.json.sort_keys = False  # keep the twins' key order
app.json.ensure_ascii = False  # and write UTF-8, as serde_json does


@app.before_request
def pick_up():
    # The access-log line, as this worker picks the request up; then 404/405/400 as the twins.
    g.job = twin.pick_up("pool", request.method, request.environ["RAW_URI"])


@app.errorhandler(twin.Reject)
def reject(e: twin.Reject):
    return e.body or "", e.status, e.headers


@app.after_request
def name_the_worker(response):
    response.headers.update(twin.headers(g.get("job")))
    return response


@app.get("/io")
def io():
    time.sleep(g.job.seconds)
    return g.job.done()


@app.get("/async-io")
async def async_io():
    # Flask runs an async view in a fresh event loop inside this worker: the await frees no one.
    await asyncio.sleep(g.job.seconds)
    return g.job.done()


@app.get("/async-io-multi")
async def async_io_multi():
    # K waits of T/K overlap inside this one request, so the worker is tied up only ~T/K.
    await asyncio.gather(*(asyncio.sleep(g.job.slice) for _ in range(g.job.tasks)))
    return g.job.done()


@app.get("/async-io-blocking")
async def async_io_blocking():
    # Blocking inside async def: on a sync worker, no different from /io.
    time.sleep(g.job.seconds)
    return g.job.done()


@app.get("/cpu")
def cpu():
    cpu_ms = twin.cpu_work(g.job.cpu_units)
    return g.job.done(cpu_ms=cpu_ms)


@app.get("/")
def index():
    url = twin.URL or request.host_url.rstrip("/")
    if twin.wants_html(request.headers.get("Accept")):  # a browser: a small page of links
        return twin.index_page("pool", url, "gunicorn + Flask")
    # graceful_timeout_s: gunicorn's default --graceful-timeout, as the twins' --graceful-timeout.
    threads = int(os.environ.get("TWIN_THREADS", "1"))  # gunicorn --threads (gthread), 1 if sync
    return twin.index("pool", url, "gunicorn + Flask", graceful_timeout_s=30, threads=threads)


@app.get("/healthz")
def healthz():
    return "ok\n", {"Content-Type": "text/plain; charset=utf-8"}
