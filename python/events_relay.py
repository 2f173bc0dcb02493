"""The Python stacks' `GET /events`: one small process that is not a worker.

The twins serve `GET /events` from a thread of their own. A gunicorn sync worker that served it
would be a worker lost to the lesson (it holds one connection for as long as someone watches), and
uvicorn's four workers are four processes with four loops: neither stack can serve one stream of
all its workers' events without changing what it shows. So each worker hands its events to this
relay as UDP datagrams on loopback (twin_common.Publisher: a send that never blocks), and the relay
serves them as the twins do: `hello` with the stack's configuration (GET /'s document, as a
worker sent it when it started), then `queued`, `picked-up`, `slot` and `finished` as they come,
and `lagged` with how many a watcher missed. One port number for both: UDP for the workers, TCP
(HTTP) for the watchers. While nobody watches, the relay tells each worker so (a byte back to the
address its hello came from) and the workers send nothing but their hello.

    python python/events_relay.py --port 8100   # then start the stack with TWIN_EVENTS=127.0.0.1:8100

Start it before the stack: each worker says hello once, when it starts. It binds loopback only,
reads nothing from a watcher but its request head, and passes on only well-formed events it knows,
written again. Stdlib only.
"""

import argparse
import asyncio
import json
import signal
import socket
import sys
import time

HOST = "127.0.0.1"
KNOWN = {"queued", "picked-up", "slot", "finished"}
BUFFER = 8192  # events kept for a watcher that falls behind; beyond, dropped and counted
MAX_WATCHERS = 8  # as the twins' --max-watchers default
STALL_S = 10  # a watcher whose writes take this long is let go (the twins' events_stall)
KEEP_ALIVE_S = 15
LAGGED_CHECK_S = 0.25
MAX_HEAD = 8192


def now_us() -> int:
    return time.time_ns() // 1000


def answer(status: str, body: dict, extra: str = "") -> bytes:
    """A JSON answer, closed after it, as the twins write their refusals."""
    text = json.dumps(body, separators=(",", ":")) + "\n"
    return (
        f"HTTP/1.1 {status}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(text.encode())}\r\nCache-Control: no-store\r\n"
        f"Server: events_relay.py\r\n{extra}Connection: close\r\n\r\n{text}"
    ).encode()


def sse(name: str, data: dict) -> bytes:
    return f"event: {name}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n".encode()


class Watcher:
    def __init__(self):
        self.queue: asyncio.Queue[bytes] = asyncio.Queue(BUFFER)
        self.missed = 0

    def offer(self, message: bytes) -> None:
        try:
            self.queue.put_nowait(message)
        except asyncio.QueueFull:
            self.missed += 1


class Relay(asyncio.DatagramProtocol):
    """The inbox (the workers' datagrams) and the watchers it feeds."""

    def __init__(self):
        self.hello: dict | None = None
        self.watchers: set[Watcher] = set()
        self.last_seq: dict[int, int] = {}  # each worker process's last event number
        self.workers: dict[int, tuple] = {}  # each worker process's address, from its hello
        self.transport = None
        self.bad = 0

    def connection_made(self, transport) -> None:
        self.transport = transport

    def tell(self, addr=None) -> None:
        """Whether anyone watches, to one worker or to all: they publish only while someone does."""
        state = b"1" if self.watchers else b"0"
        for to in [addr] if addr else list(self.workers.values()):
            self.transport.sendto(state, to)

    def datagram_received(self, data: bytes, addr) -> None:
        try:
            m = json.loads(data)
            name, pid, seq, body = m["event"], int(m["pid"]), int(m["seq"]), m["data"]
        except (ValueError, KeyError, TypeError):
            self.bad += 1  # not a worker's event: not passed on
            return
        if not isinstance(body, dict):
            self.bad += 1
            return
        # A gap in a process's numbers: events the socket dropped, or the kernel did.
        last = self.last_seq.get(pid)
        if last is not None and seq > last + 1:
            for w in self.watchers:
                w.missed += seq - last - 1
        if last is None or seq > last:
            self.last_seq[pid] = seq
        if name == "hello":
            # The first worker's document stands for the stack (they differ only in `pid`).
            self.hello = self.hello or body
            self.workers[pid] = addr
            self.tell(addr)
            return
        if name not in KNOWN:
            self.bad += 1
            return
        message = sse(name, body)
        for w in self.watchers:
            w.offer(message)

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
        except (asyncio.TimeoutError, asyncio.IncompleteReadError, asyncio.LimitOverrunError,
                ConnectionError):
            writer.close()
            return
        method, path = (head.split(b" ") + [b"", b""])[:2]
        path = path.split(b"?")[0]
        if path != b"/events" or method not in (b"GET", b"HEAD"):
            body = {"error": "not found", "path": path.decode("latin-1")[:128],
                    "routes": ["/events"]}
            writer.write(answer("404 Not Found", body))
        elif self.hello is None:
            body = {"error": "not ready", "detail": "no worker of the stack has said hello yet "
                    "(start the relay before the stack, with TWIN_EVENTS set for it)"}
            writer.write(answer("503 Service Unavailable", body, "Retry-After: 1\r\n"))
        elif len(self.watchers) >= MAX_WATCHERS:
            body = {"error": "overloaded", "detail": f"--max-watchers {MAX_WATCHERS} reached; "
                    "try again shortly", "limit": MAX_WATCHERS}
            writer.write(answer("503 Service Unavailable", body, "Retry-After: 1\r\n"))
        else:
            return await self.stream(reader, writer, method == b"HEAD")
        await self.close(writer)

    async def stream(self, reader, writer, head_only: bool) -> None:
        writer.write(
            b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-store\r\n"
            b"Server: events_relay.py\r\nX-Accel-Buffering: no\r\nConnection: close\r\n\r\n"
        )
        if head_only:
            return await self.close(writer)
        writer.write(b"retry: 1000\n\n" + sse("hello", self.hello))
        watcher = Watcher()
        self.watchers.add(watcher)
        if len(self.watchers) == 1:
            self.tell()
        hung_up = asyncio.ensure_future(reader.read())  # a watcher sends nothing more: EOF
        try:
            quiet = time.monotonic()
            while not hung_up.done():
                if watcher.missed:
                    writer.write(sse("lagged", {"missed": watcher.missed, "t_us": now_us()}))
                    watcher.missed = 0
                wait = LAGGED_CHECK_S if watcher.missed else KEEP_ALIVE_S
                get = asyncio.ensure_future(watcher.queue.get())
                done, _ = await asyncio.wait({get, hung_up}, timeout=wait,
                                             return_when=asyncio.FIRST_COMPLETED)
                if get in done:
                    writer.write(get.result())
                    while not watcher.queue.empty():  # what else is there, in one write
                        writer.write(watcher.queue.get_nowait())
                    quiet = time.monotonic()
                else:
                    get.cancel()
                    if time.monotonic() - quiet >= KEEP_ALIVE_S:
                        writer.write(b": still here\n\n")
                        quiet = time.monotonic()
                await asyncio.wait_for(writer.drain(), STALL_S)
        except (asyncio.TimeoutError, ConnectionError):
            pass
        finally:
            self.watchers.discard(watcher)
            if not self.watchers:
                self.tell()
            hung_up.cancel()
            writer.transport.abort()

    @staticmethod
    async def close(writer) -> None:
        try:
            await asyncio.wait_for(writer.drain(), STALL_S)
            writer.close()
        except (asyncio.TimeoutError, ConnectionError):
            writer.transport.abort()


async def main(port: int) -> None:
    relay = Relay()
    server = await asyncio.start_server(relay.serve, HOST, port, limit=MAX_HEAD)
    port = server.sockets[0].getsockname()[1]
    inbox = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        # Room for a burst's events while the loop is busy writing (the kernel may give less).
        inbox.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
        inbox.bind((HOST, port))
    except OSError as e:
        sys.exit(f"events_relay.py: cannot take UDP port {port} for the workers' events: {e}")
    loop = asyncio.get_running_loop()
    await loop.create_datagram_endpoint(lambda: relay, sock=inbox)
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    print(f"events relay: the workers send to udp://{HOST}:{port} (TWIN_EVENTS={HOST}:{port}); "
          f"watch http://{HOST}:{port}/events", file=sys.stderr)
    print(f"listening on http://{HOST}:{port}", file=sys.stderr, flush=True)
    await stop.wait()
    server.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, default=0, help="TCP and UDP port (0: a free one)")
    args = parser.parse_args()
    if not 0 <= args.port <= 65535:
        sys.exit("events_relay.py: --port is 0 to 65535")
    asyncio.run(main(args.port))
