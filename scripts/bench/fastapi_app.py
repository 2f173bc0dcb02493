"""The reference FastAPI app (run by scripts/bench.sh under uvicorn, 4 workers, uvloop + httptools)."""
import asyncio
import time

from fastapi import FastAPI

app = FastAPI()


@app.get("/io")
def io(ms: int = 1000):
    time.sleep(ms / 1000)
    return {"route": "/io"}


@app.get("/async-io")
async def async_io(ms: int = 1000):
    await asyncio.sleep(ms / 1000)
    return {"route": "/async-io"}


@app.get("/async-io-multi")
async def async_io_multi(ms: int = 1000):
    t = ms / 1000
    await asyncio.gather(asyncio.sleep(t / 2), asyncio.sleep(t / 2))
    return {"route": "/async-io-multi"}
