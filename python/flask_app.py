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
    # The access-log line and `picked-up`, as this worker picks the request up; then 404/405/400
    # as the twins.
    rid = request.headers.get("X-Request-Id")
    g.job = twin.pick_up("pool", request.method, request.environ["RAW_URI"], rid)


@app.errorhandler(twin.Reject)
def reject(e: twin.Reject):
    g.job = e.job
    return e.body or "", e.status, e.headers


@app.after_request
def name_the_worker(response):
    job = g.get("job")
    response.headers.update(twin.headers(job))
    if job is not None and job.watched:
        # `finished` once gunicorn has written the answer and closes it: the worker is free then.
        status = response.status_code
        response.call_on_close(lambda: twin.finished(job, status))
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


def configuration(url: str) -> dict:
    # graceful_timeout_s: gunicorn's default --graceful-timeout, as the twins' --graceful-timeout.
    threads = int(os.environ.get("TWIN_THREADS", "1"))  # gunicorn --threads (gthread), 1 if sync
    return twin.index("pool", url, "gunicorn + Flask", graceful_timeout_s=30, threads=threads)


@app.get("/")
def index():
    url = twin.URL or request.host_url.rstrip("/")
    if twin.wants_html(request.headers.get("Accept")):  # a browser: a small page of links
        return twin.index_page("pool", url, "gunicorn + Flask")
    return configuration(url)


@app.get("/healthz")
def healthz():
    return "ok\n", {"Content-Type": "text/plain; charset=utf-8"}


# This worker is up: the relay (if TWIN_EVENTS names one) greets its watchers with GET /'s document.
# gunicorn.conf.py's when_ready has set TWIN_URL before any worker was forked.
if twin.EVENTS:
    twin.hello(configuration(twin.URL or ""))
