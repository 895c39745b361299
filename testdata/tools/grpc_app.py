#!/usr/bin/env python3
"""gRPC recording: a grpcio server and client whose own record of every call is the truth.

    grpc_app.py serve --port P --ready FILE --log FILE [--changed]
    grpc_app.py client --port P --calls FILE --messages FILE --server-log FILE

No .proto: the service `apitool.test.Echo` is registered with generic method handlers and
no (de)serializers, so every message is the raw bytes the application handed over. The
channels are insecure: HTTP/2 in cleartext with prior knowledge (h2c).

Server methods (each logs what it received, what it sent and how it ended):
  Unary         b"reject..." aborts INVALID_ARGUMENT before sending anything (a
                trailers-only response); anything else is answered b"echo: " + request
  ServerStream  b"items": five messages (text, the bytes 0-255, an empty message, 40000
                seeded random bytes, text); b"fail": two messages, then NOT_FOUND with a
                message holding non-ASCII text and a percent sign
  ClientStream  reads every message, answers one: how many, how many bytes, their SHA-256
  Bidi          answers each message with its bytes reversed, then one more: b"bye" (with
                gzip, b"bye, " 80 times)
With --changed (for the replay tests, never for a recording) three answers differ:
Unary says b"echo 2: " where it said b"echo: ", ServerStream "items" leaves out its last
message, and ServerStream "fail" ends with PERMISSION_DENIED and another message.
--port 0 takes a free port; the ready file holds the port listened on.
A request carrying the metadata `x-response-compression: gzip` is answered with
`context.set_compression(gzip)`; in Bidi a message starting b"plain:" is answered with
`disable_next_message_compression()` first, so that response goes out uncompressed.

The client makes these calls, one after the other, on two channels (two TCP connections,
opened in this order):
  conn 0, no default compression
    0 Unary "hello, gRPC"                  4 Unary, per call gzip both ways (3 KB of JSON)
    1 ServerStream "items"                 5 ServerStream "fail" (NOT_FOUND after 2 messages)
    2 ClientStream, 5 messages, 40000 B    6 Unary "reject" (trailers-only INVALID_ARGUMENT)
    3 Bidi, 4 messages each way + "bye"    7 /apitool.test.Echo/Missing (UNIMPLEMENTED)
  conn 1, channel compression gzip (every request message compressed)
    8 Bidi, responses gzip too, one of them "plain:" (sent uncompressed)
    9 ClientStream, 3 messages

Its record is what it handed to grpcio and what grpcio handed back:
  --calls     one line per call: call, conn, path, request_encoding (the grpc-encoding
              its messages were sent with), response_encoding (the one it asked the server
              for), sent, received (message counts), status (the numeric code), message (the
              status details as grpcio gave them, percent-decoded UTF-8), notes
  --messages  one line per message: call, direction (send/receive), index (in that
              direction), compressed (1 when its sender was set to compress it: gRPC core
              then sets the flag unless compression would make it bigger, and every such
              message here is compressible text of 300 bytes or more), length, data (base64)
Within one direction the order is the wire's; sends and receives of a streaming call are
recorded each in their own order. Before writing, the client checks its record against the
server's log (messages each way, status): a disagreement fails the recording.
Loopback only; every wait is bounded.
"""

import argparse
import base64
import hashlib
import json
import os
import queue
import random
import sys
import threading
import time
from concurrent import futures

import grpc

SERVICE = "apitool.test.Echo"
TIMEOUT = 20

# With its bandwidth probe on, grpc core raises the frame size it accepts to 4 MiB; both sides
# here turn the probe off and keep the protocol's smallest maximum (16384), so that a
# 40000-byte message spans three DATA frames.
SMALL_FRAMES = [("grpc.http2.max_frame_size", 16384), ("grpc.http2.bdp_probe", 0)]

NOT_FOUND_MESSAGE = "no such item: \u00abcaf\u00e9\u00bb at 100% (id 42)"
REJECT_MESSAGE = "request rejected before any reply: \u2717 unknown key"


def seeded(seed, n):
    return random.Random(seed).randbytes(n)


def json_text(n, tag):
    item = '{"id": %d, "tag": "%s", "name": "item-%d", "tags": ["a", "b", "c"]},\n'
    out = "".join(item % (i, tag, i) for i in range(n // 50 + 1))
    return out[:n].encode()


ITEMS = [b"item 0", bytes(range(256)), b"", seeded(1, 40000), b"last item"]


# -- server

class Log:
    """The server's view, one JSON object a line: path, received, sent, status."""

    def __init__(self, path):
        self.f = open(path, "a")
        self.lock = threading.Lock()

    def write(self, path, received, sent, code, message):
        rec = {"path": path, "received": [base64.b64encode(m).decode() for m in received],
               "sent": [base64.b64encode(m).decode() for m in sent], "code": code,
               "message": message}
        with self.lock:
            self.f.write(json.dumps(rec) + "\n")
            self.f.flush()


def wants_gzip(ctx):
    return any(k == "x-response-compression" and v == "gzip" for k, v in ctx.invocation_metadata())


CHANGED_FAIL_MESSAGE = "not yours: item 42"


def make_handlers(log, changed=False):
    def unary(req, ctx):
        path = "/%s/Unary" % SERVICE
        if req.startswith(b"reject"):
            log.write(path, [req], [], grpc.StatusCode.INVALID_ARGUMENT.value[0], REJECT_MESSAGE)
            ctx.abort(grpc.StatusCode.INVALID_ARGUMENT, REJECT_MESSAGE)
        if wants_gzip(ctx):
            ctx.set_compression(grpc.Compression.Gzip)
        resp = (b"echo 2: " if changed else b"echo: ") + req
        log.write(path, [req], [resp], 0, "")
        return resp

    def server_stream(req, ctx):
        path = "/%s/ServerStream" % SERVICE
        sent = []
        if wants_gzip(ctx):
            ctx.set_compression(grpc.Compression.Gzip)
        if req == b"fail":
            for m in ITEMS[:2]:
                sent.append(m)
                yield m
            code, message = grpc.StatusCode.NOT_FOUND, NOT_FOUND_MESSAGE
            if changed:
                code, message = grpc.StatusCode.PERMISSION_DENIED, CHANGED_FAIL_MESSAGE
            log.write(path, [req], sent, code.value[0], message)
            ctx.abort(code, message)
        for m in (ITEMS[:-1] if changed else ITEMS):
            sent.append(m)
            yield m
        log.write(path, [req], sent, 0, "")

    def client_stream(reqs, ctx):
        path = "/%s/ClientStream" % SERVICE
        got = list(reqs)
        if wants_gzip(ctx):
            ctx.set_compression(grpc.Compression.Gzip)
        h = hashlib.sha256(b"".join(got)).hexdigest()
        resp = b"%d messages, %d bytes, sha256 %s" % (len(got), sum(map(len, got)), h.encode())
        log.write(path, got, [resp], 0, "")
        return resp

    def bidi(reqs, ctx):
        path = "/%s/Bidi" % SERVICE
        got, sent = [], []
        gz = wants_gzip(ctx)
        if gz:
            ctx.set_compression(grpc.Compression.Gzip)
        for r in reqs:
            got.append(r)
            resp = r[::-1]
            if gz and r.startswith(b"plain:"):
                ctx.disable_next_message_compression()
            sent.append(resp)
            yield resp
        # The last word; long enough to shrink under gzip when the answers are compressed.
        bye = b"bye, " * 80 if gz else b"bye"
        sent.append(bye)
        log.write(path, got, sent, 0, "")
        yield bye

    return grpc.method_handlers_generic_handler(SERVICE, {
        "Unary": grpc.unary_unary_rpc_method_handler(unary),
        "ServerStream": grpc.unary_stream_rpc_method_handler(server_stream),
        "ClientStream": grpc.stream_unary_rpc_method_handler(client_stream),
        "Bidi": grpc.stream_stream_rpc_method_handler(bidi),
    })


def serve_main(a):
    log = Log(a.log)
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4),
                         handlers=[make_handlers(log, a.changed)], options=[("grpc.so_reuseport", 0)] + SMALL_FRAMES)
    port = server.add_insecure_port("127.0.0.1:%d" % a.port)
    if port == 0:
        sys.exit("grpc_app.py: cannot listen on 127.0.0.1:%d" % a.port)
    server.start()
    with open(a.ready + ".tmp", "w") as f:
        f.write("%d\n" % port)
    os.replace(a.ready + ".tmp", a.ready)
    server.wait_for_termination(timeout=a.lifetime)
    server.stop(0)


# -- client

class Recorder:
    def __init__(self):
        self.calls = []
        self.messages = []

    def call(self, conn, path, request_encoding, response_encoding, notes, fn):
        """Runs fn(send, receive) and records how the call ended."""
        n = len(self.calls)
        counts = {"send": 0, "receive": 0}

        def note(direction, data, compressed):
            assert isinstance(data, bytes)
            self.messages.append((n, direction, counts[direction], int(compressed), data))
            counts[direction] += 1

        code, details = 0, ""
        try:
            fn(lambda d: note("send", d, request_encoding == "gzip"),
               lambda d, compressed=(response_encoding == "gzip"): note("receive", d, compressed))
        except grpc.RpcError as e:
            code, details = e.code().value[0], e.details() or ""
        self.calls.append({"call": n, "conn": conn, "path": path,
                           "request_encoding": request_encoding,
                           "response_encoding": response_encoding, "sent": counts["send"],
                           "received": counts["receive"], "status": code, "message": details,
                           "notes": notes})


def client_main(a):
    target = "127.0.0.1:%d" % a.port
    # No proxy from the environment, no retries: one stream per call.
    opts = [("grpc.enable_http_proxy", 0), ("grpc.enable_retries", 0)] + SMALL_FRAMES
    rec = Recorder()
    gz_md = (("x-response-compression", "gzip"),)

    def path(m):
        return "/%s/%s" % (SERVICE, m)

    def unary(ch, conn, req, notes, method="Unary", compression=None, md=None):
        enc = "gzip" if compression == grpc.Compression.Gzip else "identity"
        renc = "gzip" if md else "identity"
        stub = ch.unary_unary(path(method))

        def run(send, receive):
            send(req)
            resp = stub(req, timeout=TIMEOUT, compression=compression, metadata=md)
            receive(resp)
        rec.call(conn, path(method), enc, renc, notes, run)

    def server_stream(ch, conn, req, notes):
        stub = ch.unary_stream(path("ServerStream"))

        def run(send, receive):
            send(req)
            for m in stub(req, timeout=TIMEOUT):
                receive(m)
        rec.call(conn, path("ServerStream"), "identity", "identity", notes, run)

    def client_stream(ch, conn, reqs, notes, enc="identity"):
        stub = ch.stream_unary(path("ClientStream"))

        def run(send, receive):
            def gen():
                for m in reqs:
                    send(m)
                    yield m
            receive(stub(gen(), timeout=TIMEOUT))
        rec.call(conn, path("ClientStream"), enc, "identity", notes, run)

    def bidi(ch, conn, reqs, notes, enc="identity", md=None):
        stub = ch.stream_stream(path("Bidi"))

        def run(send, receive):
            # Lockstep: the next message goes out once the answer to the last one is in.
            answers = queue.Queue()

            def gen():
                for m in reqs:
                    send(m)
                    yield m
                    answers.get(timeout=TIMEOUT)
            for m in stub(gen(), timeout=TIMEOUT, metadata=md):
                plain = m.endswith(b":nialp")  # the answer to a "plain:" message, reversed
                receive(m, compressed=bool(md) and not plain)
                answers.put(None)
        rec.call(conn, path("Bidi"), enc, "gzip" if md else "identity", notes, run)

    with grpc.insecure_channel(target, options=opts) as ch:
        grpc.channel_ready_future(ch).result(timeout=TIMEOUT)
        unary(ch, 0, b"hello, gRPC", "unary")
        server_stream(ch, 0, b"items", "server-streaming;binary;empty-message;large")
        client_stream(ch, 0, [b"first", bytes(range(255, -1, -1)), b"", seeded(2, 40000),
                              b"\x00\x00\x00\x00\x05"], "client-streaming;binary;empty-message;large")
        bidi(ch, 0, [b"ping 1", b"\xff\xfe binary \x00\x01", b"ping 3", b"x" * 300],
             "bidi-streaming;binary")
        unary(ch, 0, json_text(3000, "unary"), "unary;gzip;per-call", compression=grpc.Compression.Gzip,
              md=gz_md)
        server_stream(ch, 0, b"fail", "server-streaming;error;after-messages")
        unary(ch, 0, b"reject this", "unary;error;trailers-only")
        unary(ch, 0, b"anyone there?", "unary;error;trailers-only;unimplemented", method="Missing")
    with grpc.insecure_channel(target, options=opts, compression=grpc.Compression.Gzip) as ch:
        grpc.channel_ready_future(ch).result(timeout=TIMEOUT)
        bidi(ch, 1, [json_text(600, "bidi-0"), b"plain:" + json_text(900, "bidi-1"),
                     json_text(2000, "bidi-2")], "bidi-streaming;gzip;channel;mixed-flags", enc="gzip", md=gz_md)
        client_stream(ch, 1, [json_text(400, "cs-%d" % i) for i in range(3)],
                      "client-streaming;gzip;channel", enc="gzip")

    check_against_server(rec, a.server_log)
    with open(a.calls, "w") as f:
        cols = ["call", "conn", "path", "request_encoding", "response_encoding", "sent",
                "received", "status", "message", "notes"]
        f.write("\t".join(cols) + "\n")
        for c in rec.calls:
            assert all("\t" not in str(c[k]) and "\n" not in str(c[k]) for k in cols)
            f.write("\t".join(str(c[k]) for k in cols) + "\n")
    with open(a.messages, "w") as f:
        f.write("call\tdirection\tindex\tcompressed\tlength\tdata\n")
        for n, d, i, comp, data in rec.messages:
            f.write("%d\t%s\t%d\t%d\t%d\t%s\n" % (n, d, i, comp, len(data),
                                                base64.b64encode(data).decode()))
    print("grpc_app.py: %d calls, %d messages" % (len(rec.calls), len(rec.messages)))


def check_against_server(rec, server_log):
    """Each call the server handled logged one line, in call order."""
    expected = [c for c in rec.calls if c["status"] != grpc.StatusCode.UNIMPLEMENTED.value[0]]
    lines = []
    for _ in range(50):
        with open(server_log) as f:
            lines = [json.loads(l) for l in f if l.strip()]
        if len(lines) >= len(expected):
            break
        time.sleep(0.1)
    if len(lines) != len(expected):
        sys.exit("grpc_app.py: server logged %d calls, client made %d" % (len(lines), len(expected)))
    for c, s in zip(expected, lines):
        n = c["call"]
        mine = {d: [base64.b64encode(m[4]).decode() for m in rec.messages if m[0] == n and m[1] == d]
                for d in ("send", "receive")}
        problems = []
        if s["path"] != c["path"]:
            problems.append("path %s" % s["path"])
        if s["received"] != mine["send"]:
            problems.append("messages sent")
        if s["sent"] != mine["receive"]:
            problems.append("messages received")
        if (s["code"], s["message"]) != (c["status"], c["message"]):
            problems.append("status %r" % ((s["code"], s["message"]),))
        if problems:
            sys.exit("grpc_app.py: call %d disagrees with the server's log: %s" % (n, ", ".join(problems)))


def main():
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("serve")
    s.add_argument("--port", type=int, required=True)
    s.add_argument("--ready", required=True)
    s.add_argument("--log", required=True)
    s.add_argument("--lifetime", type=float, default=120)
    s.add_argument("--changed", action="store_true")
    c = sub.add_parser("client")
    c.add_argument("--port", type=int, required=True)
    c.add_argument("--calls", required=True)
    c.add_argument("--messages", required=True)
    c.add_argument("--server-log", required=True)
    a = ap.parse_args()
    for k in ("http_proxy", "https_proxy", "grpc_proxy", "HTTP_PROXY", "HTTPS_PROXY"):
        os.environ.pop(k, None)
    if a.cmd == "serve":
        serve_main(a)
    else:
        client_main(a)


if __name__ == "__main__":
    main()
