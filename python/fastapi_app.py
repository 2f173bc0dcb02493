"""uvicorn + FastAPI: the ASGI original that async-server imitates.

Each uvicorn worker is a process running one asyncio event loop (uvloop): an `await` parks the
request and the loop picks up the next one. Run it as README.md says (--workers 4).
"""

import asyncio
import os
import time
from contextlib import asynccontextmanager
from typing import Annotated

from anyio import to_thread
from fastapi import Depends, FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse, PlainTextResponse, Response
from starlette.datastructures import MutableHeaders

import twin_common as twin


class JSON(JSONResponse):
    """JSON as the twins write it: compact, UTF-8, and a newline at the end."""

    def render(self, content) -> bytes:
        return super().render(content) + b"\n"


@asynccontextmanager
async def lifespan(app: FastAPI):
    twin.claim_worker_index()  # worker0..worker3: see twin_common.claim_worker_index
    if twin.EVENTS:
        # This worker is up: the relay greets its watchers with GET /'s document. uvicorn says
        # nowhere in a worker where it listens: the launcher's TWIN_URL does.
        twin.hello(configuration(twin.URL or ""))
    yield


app = FastAPI(lifespan=lifespan, default_response_class=JSON)


class PickUp:
    """ASGI middleware: the access-log line, as this event loop picks the request up; then 404, 405
    or 400 (204 for /favicon.ico) as the twins answer them, or on to the route with its job in
    request.state. Plain ASGI, because @app.middleware("http") runs the route in a task of its
    own, which holds responses back while /async-io-blocking freezes the loop and blurs the waves.
    """

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        target = scope["raw_path"].decode(errors="replace")
        if query := scope["query_string"].decode(errors="replace"):
            target += "?" + query
        rid = next((v.decode("latin-1") for k, v in scope["headers"] if k == b"x-request-id"),
                   None)
        try:
            job = twin.pick_up("event-loop", scope["method"], target, rid)
        except twin.Reject as e:
            answer = JSON if e.body is not None else Response  # 204 for /favicon.ico: no body
            response = answer(e.body, e.status, twin.headers(e.job) | e.headers)
            await response(scope, receive, send)
            return twin.finished(e.job, e.status)
        if job.route == "/io":
            twin.step("queued", job)  # for a thread of the pool: `slot` when it has one
        scope.setdefault("state", {})["job"] = job
        if scope["method"] == "HEAD":
            # Route HEAD as GET, as the twins and Flask do (FastAPI's @app.get alone says 405);
            # uvicorn, which keeps the original scope, leaves the body out.
            scope = dict(scope, method="GET")

        status = 500

        async def send_with_headers(message):
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                MutableHeaders(scope=message).update(twin.headers(job))
            await send(message)
            if message["type"] == "http.response.body" and not message.get("more_body"):
                twin.finished(job, status)  # handed to the connection

        await self.app(scope, receive, send_with_headers)


app.add_middleware(PickUp)


async def picked_up(request: Request) -> twin.Job:
    return request.state.job  # async def: FastAPI runs a plain def dependency on the thread pool


Job = Annotated[twin.Job, Depends(picked_up)]


@app.get("/io")
def io(job: Job):
    # A plain def route: FastAPI runs it on anyio's thread pool (40 threads), off the event loop.
    waited = job.since_pick_up()  # how long it queued for a thread
    twin.step("slot", job)
    time.sleep(job.seconds)
    return job.done(pool_wait_ms=waited)


@app.get("/async-io")
async def async_io(job: Job):
    await asyncio.sleep(job.seconds)
    return job.done()


@app.get("/async-io-multi")
async def async_io_multi(job: Job):
    await asyncio.gather(*(asyncio.sleep(job.slice) for _ in range(job.tasks)))
    return job.done()


@app.get("/async-io-blocking")
async def async_io_blocking(job: Job):
    # The classic mistake: this worker's event loop, and every request on it, freezes for T.
    time.sleep(job.seconds)
    return job.done()


@app.get("/cpu")
async def cpu(job: Job):
    cpu_ms = twin.cpu_work(job.cpu_units)  # nothing to await: the event loop is held all the same
    return job.done(cpu_ms=cpu_ms)


def configuration(url: str) -> dict:
    threadpool = to_thread.current_default_thread_limiter().total_tokens  # anyio's default, 40
    limit = os.environ.get("TWIN_LIMIT_CONCURRENCY")  # uvicorn --limit-concurrency, as launched
    return twin.index(
        "event-loop", url, "uvicorn + FastAPI", threadpool=threadpool,
        limit_concurrency=int(limit) if limit else None,
    )


@app.get("/")
async def index(request: Request):
    url = twin.URL or "http://{}:{}".format(*request.scope["server"])  # the address it listens on
    if twin.wants_html(request.headers.get("accept")):  # a browser: a small page of links
        return HTMLResponse(twin.index_page("event-loop", url, "uvicorn + FastAPI"))
    return configuration(url)


@app.get("/healthz")
async def healthz():
    return PlainTextResponse("ok\n")
