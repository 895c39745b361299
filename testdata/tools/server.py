#!/usr/bin/env python3
"""Small HTTP/1.x test server for recording apitool's test captures.

Standard library only, except for the optional `brotli` and `zstandard`
packages (needed for the br/zstd endpoints).  It speaks HTTP/1.x directly on
sockets so that every byte on the wire is under our control: chunk
extensions, trailers, close-delimited bodies, 100-continue, CONNECT tunnels
and protocol upgrades.

Every request it answers is logged to a TSV file (--log) as the server's own
view of the exchange: connection index (order of accept), method, target,
status, request body length and sha256 (after de-chunking), and length and
sha256 of the response entity *before* any content/transfer coding was
applied.  record.sh uses this to cross-check the client's truth and to learn
request bodies that curl builds itself (multipart, urlencoded).

Endpoints (GET and HEAD unless noted):
  /file/NAME                  deterministic text, Content-Length
  /enc/CODINGS[?chunked=1]    JSON entity with Content-Encoding CODINGS applied
                              in order, comma separated: gzip, deflate (zlib
                              wrapped), rawdeflate (sent as "deflate"), br, zstd
  /chunked-gzip               gzip + chunked, chunk extensions and trailers
  /chunked-plain              chunked text, extensions, final chunk on its own
  /status/204                 204 No Content
  /etag                       ETag "v1"; If-None-Match: "v1" gives 304
  /close10, /close11          close-delimited body (HTTP/1.0 / HTTP/1.1 +
                              Connection: close, no Content-Length)
  POST /echo                  JSON describing the received body
  CONNECT host:port           200 Connection established, then opaque bytes
  GET /ws + Upgrade           101 Switching Protocols, then websocket frames
"""

import argparse
import base64
import gzip
import hashlib
import json
import random
import socket
import sys
import threading
import time
import zlib

MAX_HEADER = 64 * 1024
MAX_BODY = 1024 * 1024
MAX_REQUESTS_PER_CONN = 50
IDLE_TIMEOUT = 10.0
WS_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


# ---------------------------------------------------------------- content

def sse_event(i):
    """Event i of /events: ids, types, multi-line data, a comment, a retry, CRLF or LF line
    ends (which the HTML standard's parser treats alike)."""
    nl = "\r\n" if i % 5 == 2 else "\n"
    lines = []
    if i == 3:
        lines.append(": keep-alive comment")
    if i % 4 == 0:
        lines.append("event: tick")
    if i == 7:
        lines.append("retry: 1500")
    lines.append("id: %d" % (100 + i))
    lines.append("data: " + json.dumps({"seq": i, "price": 100 + i * 0.25, "note": "caf\u00e9"}))
    if i % 3 == 1:
        lines.append("data:second line of event %d" % i)
    return (nl.join(lines) + nl + nl).encode("utf-8")


def text_body(name, size):
    """Deterministic, moderately compressible text of about `size` bytes."""
    rng = random.Random("text:" + name)
    words = ["alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf",
             "hotel", "india", "juliet", "kilo", "lima", "mike", "november"]
    out = []
    n = 0
    line = 0
    while n < size:
        s = "%04d %s %s %08x\n" % (line, rng.choice(words), rng.choice(words),
                                   rng.getrandbits(32))
        out.append(s)
        n += len(s)
        line += 1
    return "".join(out)[:size].encode()


def json_body(name, records, blob=0):
    """Deterministic JSON document with `records` records (each with `blob`
    random hex digits, which keep gzip from shrinking it too much)."""
    rng = random.Random("json:" + name)
    items = []
    for i in range(records):
        items.append({
            "id": i,
            "token": "%016x" % rng.getrandbits(64),
            "name": "user-%d" % rng.randrange(100000),
            "score": round(rng.random() * 1000, 3),
            "active": rng.random() < 0.5,
            "tags": [rng.choice(["a", "b", "c", "d"]) for _ in range(3)],
        })
        if blob:
            items[-1]["digest"] = "%0*x" % (blob, rng.getrandbits(4 * blob))
    return (json.dumps({"source": name, "count": records, "items": items},
                       indent=1) + "\n").encode()


def gen_static(root):
    """Static file set served by nginx (deterministic contents)."""
    import os
    files = {
        "index.html": b"<!doctype html>\n<html><head><title>apitool test</title>"
                      b"<link rel=\"stylesheet\" href=\"/style.css\"></head>\n<body><pre>\n"
                      + text_body("index", 2400) + b"</pre></body></html>\n",
        "style.css": b"".join(b".c%d { color: #%06x; margin: %dpx; }\n" % (
            i, (i * 2654435761) & 0xFFFFFF, i % 17) for i in range(45)),
        "robots.txt": b"User-agent: *\nDisallow:\n",
        "data/users.json": json_body("users", 200),
        "big.json": json_body("big", 125, blob=160),
        "api/items.json": json_body("items", 4),
        "logo.bin": random.Random("logo").randbytes(12000),
    }
    for rel, data in files.items():
        p = os.path.join(root, rel)
        os.makedirs(os.path.dirname(p), exist_ok=True)
        with open(p, "wb") as f:
            f.write(data)
        os.utime(p, (1700000000, 1700000000))


# ---------------------------------------------------------------- codings

def encode(data, codings):
    """Apply content codings in the order listed (first applied first)."""
    for c in codings:
        if c == "gzip":
            data = gzip.compress(data, compresslevel=6, mtime=0)
        elif c == "deflate":
            data = zlib.compress(data, 6)
        elif c == "rawdeflate":
            co = zlib.compressobj(6, zlib.DEFLATED, -15)
            data = co.compress(data) + co.flush()
        elif c == "br":
            import brotli
            data = brotli.compress(data, quality=5)
        elif c == "zstd":
            import zstandard
            data = zstandard.ZstdCompressor(level=3, write_content_size=True).compress(data)
        elif c == "identity":
            pass
        else:
            raise ValueError(c)
    return data


def wire_coding_name(c):
    return "deflate" if c == "rawdeflate" else c


# ---------------------------------------------------------------- server

class Request:
    pass


class Conn:
    def __init__(self, server, sock, idx):
        self.server = server
        self.sock = sock
        self.idx = idx
        self.rfile = sock.makefile("rb")

    def send(self, data):
        if data:
            self.sock.sendall(data)

    def log(self, req, status, resp_entity):
        rb = req.body if req.body is not None else b""
        if resp_entity is None:
            rl, rs = "", ""
        else:
            rl, rs = str(len(resp_entity)), hashlib.sha256(resp_entity).hexdigest()
        row = [str(self.idx), req.method, req.target, str(status),
               str(len(rb)) if rb else "", hashlib.sha256(rb).hexdigest() if rb else "",
               rl, rs]
        self.server.write_log("\t".join(row))

    # -- parsing
    def read_head(self):
        lines = []
        total = 0
        while True:
            line = self.rfile.readline(MAX_HEADER)
            if not line:
                return None
            total += len(line)
            if total > MAX_HEADER:
                raise ValueError("header too large")
            if line in (b"\r\n", b"\n"):
                if not lines:
                    continue        # tolerate stray CRLF between requests
                return lines
            lines.append(line.rstrip(b"\r\n").decode("latin-1"))

    def read_request(self):
        lines = self.read_head()
        if lines is None:
            return None
        req = Request()
        req.method, req.target, req.version = lines[0].split(" ", 2)
        req.headers = []
        for l in lines[1:]:
            k, v = l.split(":", 1)
            req.headers.append((k.strip(), v.strip()))
        req.body = None
        return req

    def read_body(self, req):
        te = hget(req, "transfer-encoding")
        if te and "chunked" in te.lower():
            out = bytearray()
            for _ in range(10000):
                line = self.rfile.readline(1024).strip()
                size = int(line.split(b";")[0], 16)
                if size == 0:
                    while self.rfile.readline(MAX_HEADER).strip():
                        pass
                    break
                out += self.rfile.read(size)
                self.rfile.readline(16)
                if len(out) > MAX_BODY:
                    raise ValueError("body too large")
            return bytes(out)
        cl = hget(req, "content-length")
        if cl is not None:
            n = int(cl)
            if n > MAX_BODY:
                raise ValueError("body too large")
            return self.rfile.read(n)
        return b""

    # -- main loop
    def run(self):
        try:
            for _ in range(MAX_REQUESTS_PER_CONN):
                req = self.read_request()
                if req is None:
                    break
                if req.method in ("POST", "PUT", "PATCH"):
                    exp = hget(req, "expect")
                    if exp and exp.lower() == "100-continue" and req.version == "HTTP/1.1":
                        self.send(b"HTTP/1.1 100 Continue\r\n\r\n")
                    req.body = self.read_body(req)
                keep = self.dispatch(req)
                if not keep:
                    break
        except (OSError, ValueError) as e:
            print("conn %d: %s" % (self.idx, e), file=sys.stderr)
        finally:
            try:
                self.sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            self.sock.close()

    def head(self, req, status, reason, headers, version=None):
        version = version or "HTTP/1.1"
        out = ["%s %d %s" % (version, status, reason),
               "Server: apitool-testserver", "Date: Thu, 01 Jan 2026 00:00:00 GMT"]
        out += ["%s: %s" % kv for kv in headers]
        return ("\r\n".join(out) + "\r\n\r\n").encode("latin-1")

    def simple(self, req, status, reason, entity, ctype, extra=(), codings=()):
        body = encode(entity, codings) if entity is not None else b""
        hdrs = [("Content-Type", ctype)] if entity is not None else []
        if codings:
            hdrs.append(("Content-Encoding", ", ".join(wire_coding_name(c) for c in codings)))
        hdrs.append(("Content-Length", str(len(body))))
        hdrs += list(extra)
        self.send(self.head(req, status, reason, hdrs))
        if req.method != "HEAD":
            self.send(body)
        self.log(req, status, None if req.method == "HEAD" else entity)

    def dispatch(self, req):
        path, _, query = req.target.partition("?")
        conn_hdr = (hget(req, "connection") or "").lower()
        keep = req.version == "HTTP/1.1" and "close" not in conn_hdr
        if req.version == "HTTP/1.0" and "keep-alive" in conn_hdr:
            keep = True

        if req.method == "CONNECT":
            return self.do_connect(req)
        if path == "/ws" and (hget(req, "upgrade") or "").lower() == "websocket":
            return self.do_websocket(req)
        if req.method == "POST" and path == "/echo":
            body = req.body or b""
            try:
                text = body.decode("utf-8")
                enc = "utf-8"
            except UnicodeDecodeError:
                text = base64.b64encode(body).decode()
                enc = "base64"
            doc = {"method": req.method, "path": req.target,
                   "content_type": hget(req, "content-type"),
                   "length": len(body), "sha256": hashlib.sha256(body).hexdigest(),
                   "encoding": enc, "body": text}
            entity = (json.dumps(doc, indent=1, sort_keys=True) + "\n").encode()
            self.simple(req, 200, "OK", entity, "application/json")
            return keep
        if req.method not in ("GET", "HEAD"):
            self.simple(req, 405, "Method Not Allowed", b"method not allowed\n", "text/plain")
            return keep
        if path == "/events":
            self.do_events(req, query)
            return keep
        if path.startswith("/file/"):
            name = path[len("/file/"):]
            self.simple(req, 200, "OK", text_body(name, 1500), "text/plain; charset=utf-8")
            return keep
        if path.startswith("/enc/"):
            codings = [c for c in path[len("/enc/"):].split(",") if c]
            entity = json_body("enc-" + "-".join(codings), 40)
            if "chunked=1" in query.split("&"):
                self.chunked(req, entity, encode(entity, codings), "application/json",
                             [("Content-Encoding", ", ".join(wire_coding_name(c) for c in codings))],
                             chunk=900)
            else:
                self.simple(req, 200, "OK", entity, "application/json", codings=codings)
            return keep
        if path == "/chunked-gzip":
            entity = json_body("chunked-gzip", 60)
            wire = encode(entity, ["gzip"])
            self.chunked(req, entity, wire, "application/json", [("Content-Encoding", "gzip")],
                         chunk=1000, extensions=True,
                         trailers=[("X-Body-SHA256", hashlib.sha256(entity).hexdigest()),
                                   ("Server-Timing", "gen;dur=1.5")])
            return keep
        if path == "/chunked-plain":
            entity = text_body("chunked-plain", 2000)
            self.chunked(req, entity, entity, "text/plain", [], chunk=600, extensions=True,
                         upper_hex=True)
            return keep
        if path == "/status/204":
            self.send(self.head(req, 204, "No Content", [("X-Deleted", "yes")]))
            self.log(req, 204, None)
            return keep
        if path == "/etag":
            inm = hget(req, "if-none-match")
            if inm and '"v1"' in inm:
                self.send(self.head(req, 304, "Not Modified",
                                    [("ETag", '"v1"'), ("Cache-Control", "max-age=60")]))
                self.log(req, 304, None)
            else:
                self.simple(req, 200, "OK", text_body("etag", 800), "text/plain",
                            extra=[("ETag", '"v1"'), ("Cache-Control", "max-age=60")])
            return keep
        if path in ("/close10", "/close11"):
            entity = text_body(path, 5000)
            if path == "/close10":
                h = self.head(req, 200, "OK", [("Content-Type", "text/plain")], "HTTP/1.0")
            else:
                h = self.head(req, 200, "OK", [("Content-Type", "text/plain"),
                                               ("Connection", "close")])
            self.send(h)
            if req.method != "HEAD":
                for i in range(0, len(entity), 1700):
                    self.send(entity[i:i + 1700])
            self.log(req, 200, None if req.method == "HEAD" else entity)
            return False
        self.simple(req, 404, "Not Found", b"not found\n", "text/plain")
        return keep

    def do_events(self, req, query):
        """/events?n=N&gap=MS[&gzip=1]: a server-sent event stream, one chunk per event (gzip
        flushed after each), MS milliseconds apart."""
        q = dict(kv.split("=", 1) for kv in query.split("&") if "=" in kv)
        n, gap, gz = int(q.get("n", "12")), int(q.get("gap", "250")), q.get("gzip") == "1"
        h = [("Content-Type", "text/event-stream; charset=utf-8"), ("Cache-Control", "no-cache"),
             ("Transfer-Encoding", "chunked")]
        if gz:
            h.append(("Content-Encoding", "gzip"))
        self.send(self.head(req, 200, "OK", h))
        z = zlib.compressobj(6, zlib.DEFLATED, 31) if gz else None
        entity = bytearray()
        for i in range(n):
            ev = sse_event(i)
            entity += ev
            wire = z.compress(ev) + z.flush(zlib.Z_SYNC_FLUSH) if z else ev
            self.send(b"%x\r\n" % len(wire) + wire + b"\r\n")
            time.sleep(gap / 1000)
        tail = z.flush() if z else b""
        if tail:
            self.send(b"%x\r\n" % len(tail) + tail + b"\r\n")
        self.send(b"0\r\n\r\n")
        self.log(req, 200, bytes(entity))

    def chunked(self, req, entity, wire, ctype, hdrs, chunk, extensions=False,
                trailers=(), upper_hex=False):
        h = [("Content-Type", ctype)] + list(hdrs) + [("Transfer-Encoding", "chunked")]
        if trailers:
            h.append(("Trailer", ", ".join(k for k, _ in trailers)))
        self.send(self.head(req, 200, "OK", h))
        if req.method == "HEAD":
            self.log(req, 200, None)
            return
        pieces = [wire[i:i + chunk] for i in range(0, len(wire), chunk)]
        for n, p in enumerate(pieces):
            size = ("%X" if upper_hex else "%x") % len(p)
            if upper_hex and n == 0:
                size = "0" + size          # leading zero is legal
            ext = ""
            if extensions and n == 0:
                ext = ";seq=0"
            elif extensions and n == 1:
                ext = ' ; name="quoted;value" ;flag'
            self.send(("%s%s\r\n" % (size, ext)).encode() + p + b"\r\n")
        last = "0"
        if extensions and trailers:
            last += ";final=yes"
        tail = last + "\r\n" + "".join("%s: %s\r\n" % kv for kv in trailers) + "\r\n"
        self.send(tail.encode())
        self.log(req, 200, entity)

    def do_connect(self, req):
        self.send(b"HTTP/1.1 200 Connection established\r\n\r\n")
        self.log(req, 200, None)
        # Opaque tunnel: answer every client write with deterministic bytes.
        rng = random.Random("tunnel")
        self.sock.settimeout(3)
        for _ in range(4):
            data = self.rfile.read1(4096)
            if not data:
                break
            self.send(b"\x16\x03\x03" + rng.randbytes(93))
        return False

    def do_websocket(self, req):
        key = hget(req, "sec-websocket-key") or ""
        accept = base64.b64encode(hashlib.sha1((key + WS_GUID).encode()).digest()).decode()
        self.send(self.head(req, 101, "Switching Protocols",
                            [("Upgrade", "websocket"), ("Connection", "Upgrade"),
                             ("Sec-WebSocket-Accept", accept)]))
        self.log(req, 101, None)
        self.sock.settimeout(3)
        self.send(ws_frame(0x1, b"hello from server"))
        for _ in range(4):
            data = self.rfile.read1(4096)
            if not data:
                break
            opcode = data[0] & 0x0F
            if opcode == 0x8:
                self.send(ws_frame(0x8, b"\x03\xe8"))
                break
            self.send(ws_frame(0x1, b"echo:%d bytes" % len(data)))
        return False


def ws_frame(opcode, payload):
    assert len(payload) < 126
    return bytes([0x80 | opcode, len(payload)]) + payload


def hget(req, name):
    for k, v in req.headers:
        if k.lower() == name:
            return v
    return None


class Server:
    def __init__(self, host, port, log_path):
        fam = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.sock = socket.socket(fam, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((host, port))
        self.sock.listen(16)
        self.log_lock = threading.Lock()
        self.log_file = open(log_path, "a") if log_path else None

    def write_log(self, line):
        with self.log_lock:
            if self.log_file:
                self.log_file.write(line + "\n")
                self.log_file.flush()

    def serve(self, max_conns):
        threads = []
        for idx in range(max_conns):
            s, _ = self.sock.accept()
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            s.settimeout(IDLE_TIMEOUT)
            t = threading.Thread(target=Conn(self, s, idx).run, daemon=True)
            t.start()
            threads.append(t)
        for t in threads:
            t.join(IDLE_TIMEOUT)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=8081)
    ap.add_argument("--log")
    ap.add_argument("--ready", help="file to create once listening")
    ap.add_argument("--max-conns", type=int, default=64)
    ap.add_argument("--gen-static", metavar="DIR")
    a = ap.parse_args()
    if a.gen_static:
        gen_static(a.gen_static)
        return
    if a.host not in ("127.0.0.1", "::1"):
        sys.exit("refusing to bind a non-loopback address")
    srv = Server(a.host, a.port, a.log)
    if a.ready:
        open(a.ready, "w").close()
    srv.serve(a.max_conns)


if __name__ == "__main__":
    main()
