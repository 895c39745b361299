#!/usr/bin/env python3
"""WebSocket recordings: an echo server and a client (Python `websockets`) whose own record of
every frame it sent and received is the ground truth.

    ws.py serve --port P --ready FILE [--cert CERT --key KEY]
    ws.py client --port P --name NAME --truth-dir DIR [--tls CERT --keylog FILE]

The server echoes every data message with its type; a text message starting with "frag:" is
echoed in three fragments, "ping-me" makes it send a ping first. It accepts
permessage-deflate as the client offers it, and the subprotocol "chat.v1".

The client opens three connections, one after the other:
  0  permessage-deflate with context takeover, full windows (the default offer);
  1  permessage-deflate with client_no_context_takeover and reduced windows
     (client_max_window_bits=9, server_max_window_bits=10);
  2  no compression.
On each: text, binary, an empty text and an empty binary message, 30 KB of text and 30 KB of
binary (random on the connection without compression), the same text three times (compression refers back across messages), a message
fragmented by the client (and echoed fragmented by the server), a ping from each side, and a
close with code 4000 and a reason.

Its record is frame by frame, taken inside the websockets library (every frame it sends after
fragmentation and before compression; every frame it receives after decompression), and
reassembled into messages: NAME.messages.tsv has one line per message or control frame, in
the order the client saw them, with the connection, direction, opcode, decoded length,
SHA-256 and time (a sent message: its first frame; a received one: its last). NAME.truth.tsv
(or, for a capture the tests cannot decode yet, the file given by --handshakes) has the
handshake of each connection, in the format of client.py's truth files.
"""

import argparse
import asyncio
import hashlib
import os
import random
import ssl
import sys
import time

from websockets.asyncio.client import ClientConnection, connect
from websockets.asyncio.server import serve
from websockets.exceptions import ConnectionClosed
from websockets.extensions.permessage_deflate import (ClientPerMessageDeflateFactory,
                                                      ServerPerMessageDeflateFactory)
from websockets.frames import Frame, Opcode

COLUMNS = ["conn", "method", "url", "status", "req_body_len", "req_body_sha256",
           "resp_body_len", "resp_body_sha256", "notes"]


# -- server

async def echo(ws):
    try:
        await echo_messages(ws)
    except ConnectionClosed:
        pass


async def echo_messages(ws):
    async for msg in ws:
        if isinstance(msg, str) and msg.startswith("frag:"):
            n = max(1, len(msg) // 3)
            await ws.send([msg[:n], msg[n:2 * n], msg[2 * n:]])
        elif msg == "ping-me":
            await ws.ping(b"from the server")
            await ws.send(msg)
        else:
            await ws.send(msg)


async def serve_main(a):
    tls = None
    if a.cert:
        tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        tls.load_cert_chain(a.cert, a.key)
    async with serve(echo, "127.0.0.1", a.port, ssl=tls, compression=None,
                     extensions=[ServerPerMessageDeflateFactory()], subprotocols=["chat.v1"],
                     ping_interval=None, max_size=None):
        with open(a.ready, "w") as f:
            f.write("ready\n")
        await asyncio.sleep(a.lifetime)


# -- client

class Recorder:
    """Frames of one connection, reassembled into messages per direction."""

    def __init__(self, conn, rows):
        self.conn = conn
        self.rows = rows
        self.open = {"send": None, "receive": None}

    def frame(self, direction, frame):
        now = time.time()
        op = frame.opcode
        if op in (Opcode.PING, Opcode.PONG, Opcode.CLOSE):
            self.add(direction, op.value, bytes(frame.data), now)
            return
        cur = self.open[direction]
        if op is not Opcode.CONT:
            assert cur is None, "a message began inside another"
            cur = self.open[direction] = [op.value, bytearray(), now]
        assert cur is not None, "a continuation without its message"
        cur[1] += frame.data
        if frame.fin:
            self.open[direction] = None
            t = cur[2] if direction == "send" else now
            self.add(direction, cur[0], bytes(cur[1]), t)

    def add(self, direction, opcode, data, t):
        self.rows.append((self.conn, direction, opcode, len(data), hashlib.sha256(data).hexdigest(), t))


class RecordingConnection(ClientConnection):
    """Every frame received (decompressed) goes to the recorder first."""

    recorder = None

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.recorder = Recorder(None, [])

    def process_event(self, event):
        if isinstance(event, Frame):
            self.recorder.frame("receive", event)
        super().process_event(event)


async def session(ws, rng, plain):
    texts = ["hello", "caf\u00e9 \u2603 unicode", ""]
    for t in texts:
        await ws.send(t)
        assert await ws.recv() == t
    for b in (b"\x00\x01\x02binary\xff", b""):
        await ws.send(b)
        assert await ws.recv() == b
    big_text = " ".join("word%d" % rng.randrange(500) for _ in range(5000))[:30000]
    # Random bytes do not compress: 30 KB of them on the connection without compression,
    # 30 KB of binary that deflate shrinks on the others (the capture stays small).
    big_bin = rng.randbytes(30000) if plain else (rng.randbytes(300) * 100)
    for m in (big_text, big_bin):
        await ws.send(m)
        assert await ws.recv() == m
    same = "the same message again, to be compressed against the last one " * 4
    for _ in range(3):
        await ws.send(same)
        assert await ws.recv() == same
    frag = ["frag:", "fragmented by the client ", "in three frames"]
    await ws.send(frag)
    assert await ws.recv() == "".join(frag)
    pong = await ws.ping(b"from the client")
    await asyncio.wait_for(pong, 5)
    await ws.send("ping-me")
    assert await ws.recv() == "ping-me"
    await ws.close(4000, "done here")


async def client_main(a):
    rows = []
    handshakes = []
    offers = [
        ("deflate", [ClientPerMessageDeflateFactory()]),
        ("deflate-no-context-takeover", [ClientPerMessageDeflateFactory(
            client_no_context_takeover=True, client_max_window_bits=9, server_max_window_bits=10)]),
        ("plain", None),
    ]
    tls = None
    scheme = "ws"
    if a.tls:
        tls = ssl.create_default_context(cafile=a.tls)
        tls.keylog_filename = a.keylog
        scheme = "wss"
    rng = random.Random("ws-" + a.name)
    for i, (kind, ext) in enumerate(offers):
        url = "%s://127.0.0.1:%d/echo?conn=%d" % (scheme, a.port, i)
        async with connect(url, ssl=tls, create_connection=RecordingConnection, compression=None,
                           extensions=ext, subprotocols=["chat.v1"], ping_interval=None,
                           max_size=None, open_timeout=10) as ws:
            rec = ws.recorder
            rec.conn, rec.rows = i, rows
            send_frame = ws.protocol.send_frame

            def sending(frame, send_frame=send_frame, rec=rec):
                rec.frame("send", frame)
                send_frame(frame)

            ws.protocol.send_frame = sending
            assert ws.response.status_code == 101
            assert ws.subprotocol == "chat.v1"
            negotiated = ws.response.headers.get("Sec-WebSocket-Extensions", "")
            assert ("permessage-deflate" in negotiated) == bool(ext), negotiated
            await session(ws, rng, ext is None)
        assert ws.close_code == 4000, ws.close_code
        http = "https" if a.tls else "http"
        handshakes.append((i, "%s://127.0.0.1:%d/echo?conn=%d" % (http, a.port, i), kind))
        await asyncio.sleep(0.2)
    with open(a.handshakes or os.path.join(a.truth_dir, a.name + ".truth.tsv"), "w") as f:
        f.write("\t".join(COLUMNS) + "\n")
        for i, url, kind in handshakes:
            f.write("%d\tGET\t%s\t101\t\t\t\t\tupgrade:websocket;%s\n" % (i, url, kind))
    with open(os.path.join(a.truth_dir, a.name + ".messages.tsv"), "w") as f:
        f.write("conn\tdirection\topcode\tlength\tsha256\ttime\n")
        for conn, d, op, n, digest, t in rows:
            f.write("%d\t%s\t%d\t%d\t%s\t%.6f\n" % (conn, d, op, n, digest, t))


def main():
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("serve")
    s.add_argument("--port", type=int, required=True)
    s.add_argument("--ready", required=True)
    s.add_argument("--cert")
    s.add_argument("--key")
    s.add_argument("--lifetime", type=float, default=120)
    c = sub.add_parser("client")
    c.add_argument("--port", type=int, required=True)
    c.add_argument("--name", required=True)
    c.add_argument("--truth-dir", required=True)
    c.add_argument("--handshakes")
    c.add_argument("--tls")
    c.add_argument("--keylog")
    a = ap.parse_args()
    asyncio.run(serve_main(a) if a.cmd == "serve" else client_main(a))


if __name__ == "__main__":
    sys.exit(main())
