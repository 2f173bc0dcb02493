"""The reference Flask app (run by scripts/bench.sh under gunicorn, 4 sync workers)."""
import asyncio
import time

from flask import Flask, request

app = Flask(__name__)


def seconds():
    return int(request.args.get("ms", "1000")) / 1000


@app.get("/io")
def io():
    time.sleep(seconds())
    return {"route": "/io"}


@app.get("/async-io")
async def async_io():
    await asyncio.sleep(seconds())
    return {"route": "/async-io"}


@app.get("/async-io-multi")
async def async_io_multi():
    t = seconds()
    await asyncio.gather(asyncio.sleep(t / 2), asyncio.sleep(t / 2))
    return {"route": "/async-io-multi"}
