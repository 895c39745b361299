#!/usr/bin/env python3
"""A replay target for benches/compare.sh: answers every HTTP/1.1 request on 127.0.0.1:PORT
with 200 and a 3-byte body (none for HEAD), reading request bodies by Content-Length or
chunked framing, keeping connections alive. Stops after SECONDS (a bound, in case the bench
is interrupted), or when killed.

    benches/replay_target.py PORT SECONDS
"""
import asyncio
import sys

BODY = b"ok\n"
HEAD = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 3\r\n\r\n"


async def read_body(r, head):
    fields = {}
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        fields[name.strip().lower()] = value.strip().lower()
    if b"chunked" in fields.get(b"transfer-encoding", b""):
        while True:
            size = int((await r.readuntil(b"\r\n")).split(b";")[0].strip() or b"0", 16)
            if size == 0:
                while (await r.readuntil(b"\r\n")) != b"\r\n":
                    pass
                return
            await r.readexactly(size + 2)
    n = int(fields.get(b"content-length", b"0") or b"0")
    if n:
        await r.readexactly(n)


async def handle(r, w):
    try:
        while True:
            head = await r.readuntil(b"\r\n\r\n")
            await read_body(r, head)
            w.write(HEAD if head.startswith(b"HEAD ") else HEAD + BODY)
            await w.drain()
    except (asyncio.IncompleteReadError, ConnectionError, ValueError, asyncio.LimitOverrunError):
        pass
    w.close()


async def main():
    port, seconds = int(sys.argv[1]), float(sys.argv[2])
    server = await asyncio.start_server(handle, "127.0.0.1", port, limit=1 << 20)
    async with server:
        await asyncio.sleep(seconds)


asyncio.run(main())
