#!/usr/bin/env python3
"""Servers' side of the recorded benchmark corpus (see record-bench.sh).

    bench_app.py --gen-static DIR [--seed N]     write nginx's static files
    bench_app.py --port 8082 --ready FILE        run the API application

Standard library only, plus the `brotli` package for br responses.

The static files are made at record time, deterministic for a seed, and shaped
like what a web API's servers hold: JSON documents (records with nested
objects, escaped quotes, unicode, URLs), JavaScript bundles (string literals
full of escapes), CSS, HTML pages, and binaries that do not compress (media,
archives) with some structure in them; never runs of zeros.  Sizes are spread
log-uniformly: text up to 1.4 MB, binaries up to 4 MB.  `DIR/manifest.tsv`
lists them (path, bytes, kind) for the clients.

The application (HTTP/1.1 keep-alive, loopback only) answers:
  GET  /api/items?page=N          small JSON page (gzip when accepted)
  GET  /api/stream?n=N            chunked NDJSON, streamed as it is produced,
                                  compressed on the fly with gzip or br when
                                  accepted (flushed after each batch)
  GET  /api/events?n=N&every=S    a server-sent event stream: one event every
                                  S seconds, N events (a long-lived response)
  GET  /api/poll?wait=S           a long poll: the answer comes after S seconds
  POST /api/ingest                reads a JSON body, answers a small receipt
"""

import argparse
import gzip
import json
import os
import random
import socket
import sys
import time
import zlib
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

try:
    import brotli
except ImportError:  # br is then not offered; record-bench.sh installs it
    brotli = None

WORDS = ("account amount balance billing cache client config customer delivery device "
         "event export feature filter gateway invoice item ledger metric order payload "
         "payment profile region report request response schema session shipment status "
         "stream subscription tenant token usage user vendor warehouse webhook").split()
UNICODE = ["café", "naïve", "Zürich", "東京", "Ελλάδα", "São Paulo", "Kraków", "😀", "–", "€"]


# ---------------------------------------------------------------- content

def _word(rng):
    return rng.choice(WORDS)


def _text(rng, n):
    s = " ".join(_word(rng) for _ in range(n))
    if rng.random() < 0.3:
        s += " " + rng.choice(UNICODE)
    if rng.random() < 0.2:
        s += ' "quoted %s"' % _word(rng)
    if rng.random() < 0.1:
        s += "\nline two\tafter a tab"
    return s


def record(rng, i):
    return {
        "id": i,
        "uuid": "%08x-%04x-4%03x-%04x-%012x" % (rng.getrandbits(32), rng.getrandbits(16),
                                                rng.getrandbits(12), rng.getrandbits(16),
                                                rng.getrandbits(48)),
        "type": _word(rng),
        "name": _text(rng, rng.randrange(1, 4)),
        "email": "%s.%s@example.%s" % (_word(rng), _word(rng), rng.choice(["com", "org", "net"])),
        "url": "https://api.example.com/v2/%s/%d?expand=%s" % (_word(rng), rng.randrange(10**6), _word(rng)),
        "amount": round(rng.random() * 10000, 2),
        "count": rng.randrange(1000),
        "active": rng.random() < 0.7,
        "created": "2026-%02d-%02dT%02d:%02d:%02d.%03dZ" % (rng.randrange(1, 13), rng.randrange(1, 29),
                                                           rng.randrange(24), rng.randrange(60),
                                                           rng.randrange(60), rng.randrange(1000)),
        "tags": [_word(rng) for _ in range(rng.randrange(0, 5))],
        "attributes": {_word(rng): _text(rng, rng.randrange(1, 6)) for _ in range(rng.randrange(1, 4))},
        "note": None if rng.random() < 0.5 else _text(rng, rng.randrange(3, 20)),
    }


def json_doc(rng, size):
    items, n, i = [], 0, 0
    while n < size:
        r = record(rng, i)
        items.append(r)
        n += len(json.dumps(r)) + 2
        i += 1
    indent = 2 if rng.random() < 0.5 else None
    ascii_only = rng.random() < 0.5
    version = "2.%d" % rng.randrange(40)
    for _ in range(20):  # indentation makes it larger than counted: drop records until it fits
        doc = {"data": items, "meta": {"count": len(items), "next": None, "version": version}}
        out = (json.dumps(doc, indent=indent, ensure_ascii=ascii_only) + "\n").encode()
        if len(out) <= size or len(items) <= 1:
            return out
        items = items[:max(1, int(len(items) * size / len(out) * 0.99))]
    return out


def js_bundle(rng, size):
    out, n = [], 0
    while n < size:
        name = "%s%s%d" % (_word(rng), _word(rng).capitalize(), rng.randrange(100))
        lines = [
            'function %s(e,t){var n=%s,r=\'%s\';' % (name, json.dumps(_text(rng, 3)), _word(rng)),
            'if(!e||typeof e!=="object")throw new TypeError("Expected \\"%s\\" but got "+typeof e);' % _word(rng),
            'var i=e.%s.replace(/\\s+/g," ").split("\\n");' % _word(rng),
            'return t.map(function(o){return o.%s+"\\t"+JSON.stringify({k:"%s",v:o})}).join("\\r\\n")}' % (
                _word(rng), _text(rng, 2)),
            'window.__%s=%s;' % (name, json.dumps(record(rng, rng.randrange(1000)), separators=(",", ":"))),
        ]
        s = "\n".join(lines) + "\n" if rng.random() < 0.5 else "".join(lines)
        out.append(s)
        n += len(s)
    return "".join(out).encode()


def css_sheet(rng, size):
    out, n = [], 0
    while n < size:
        s = ".%s-%s%d{color:#%06x;margin:%dpx %dpx;font-family:\"%s\",sans-serif;background:url(\"/img/%s.png\")}\n" % (
            _word(rng), _word(rng), rng.randrange(100), rng.getrandbits(24), rng.randrange(40),
            rng.randrange(40), _word(rng).capitalize(), _word(rng))
        out.append(s)
        n += len(s)
    return "".join(out).encode()


def html_page(rng, size):
    out = ['<!doctype html>\n<html lang="en"><head><meta charset="utf-8"><title>%s</title>'
           '<link rel="stylesheet" href="/static/app.css"><script src="/static/app.js"></script></head><body>\n' % _text(rng, 3)]
    n = len(out[0])
    while n < size:
        s = '<div class="%s" data-id="%d"><h2>%s</h2><p>%s</p><a href="/%s/%d?q=%s&amp;p=%d">%s</a></div>\n' % (
            _word(rng), rng.randrange(10**5), _text(rng, 4), _text(rng, rng.randrange(10, 60)),
            _word(rng), rng.randrange(1000), _word(rng), rng.randrange(50), _text(rng, 2))
        out.append(s)
        n += len(s)
    out.append("</body></html>\n")
    return "".join(out).encode()


def binary_blob(rng, size):
    """Incompressible like media or archives, with headers and tables between the runs."""
    parts, n = [b"\x89BIN\r\n\x1a\n" + size.to_bytes(8, "little")], 16
    while n < size:
        run = rng.randbytes(min(size - n, rng.randrange(4096, 65536)))
        table = b"".join(i.to_bytes(4, "little") + rng.getrandbits(32).to_bytes(4, "little")
                         for i in range(rng.randrange(8, 64)))
        parts.append(run + table)
        n += len(run) + len(table)
    return b"".join(parts)[:size]


def log_uniform(rng, lo, hi):
    import math
    return int(math.exp(rng.uniform(math.log(lo), math.log(hi))))


def gen_static(root, seed):
    rng = random.Random("bench-static:%d" % seed)
    kinds = [  # kind, directory, extension, count, min, max, maker
        ("json", "data", "json", 40, 2_000, 1_400_000, json_doc),
        ("js", "static", "js", 16, 5_000, 1_400_000, js_bundle),
        ("css", "static", "css", 8, 2_000, 300_000, css_sheet),
        ("html", "pages", "html", 16, 3_000, 400_000, html_page),
        ("bin", "media", "bin", 14, 30_000, 4_000_000, binary_blob),
    ]
    rows = []
    for kind, sub, ext, count, lo, hi, make in kinds:
        os.makedirs(os.path.join(root, sub), exist_ok=True)
        for i in range(count):
            size = hi if i == 0 else log_uniform(rng, lo, hi)   # the largest of each kind is there
            data = make(rng, size)
            rel = "%s/%s-%02d.%s" % (sub, kind, i, ext)
            with open(os.path.join(root, rel), "wb") as f:
                f.write(data)
            os.utime(os.path.join(root, rel), (1700000000, 1700000000))
            rows.append("%s\t%d\t%s" % (rel, len(data), kind))
    for rel, data in (("static/app.js", js_bundle(rng, 90_000)), ("static/app.css", css_sheet(rng, 20_000)),
                      ("index.html", html_page(rng, 12_000)), ("robots.txt", b"User-agent: *\nDisallow:\n")):
        with open(os.path.join(root, rel), "wb") as f:
            f.write(data)
        rows.append("%s\t%d\t%s" % (rel, len(data), rel.rsplit(".", 1)[-1]))
    with open(os.path.join(root, "manifest.tsv"), "w") as f:
        f.write("\n".join(rows) + "\n")


# ---------------------------------------------------------------- application

class Encoder:
    """Streaming content coding for one response."""

    def __init__(self, name):
        self.name = name
        if name == "gzip":
            self.z = zlib.compressobj(6, zlib.DEFLATED, 31)
        elif name == "br":
            self.z = brotli.Compressor(quality=4)

    def feed(self, data, flush):
        if self.name == "gzip":
            return self.z.compress(data) + (self.z.flush(zlib.Z_SYNC_FLUSH) if flush else b"")
        if self.name == "br":
            return self.z.process(data) + (self.z.flush() if flush else b"")
        return data

    def finish(self):
        if self.name == "gzip":
            return self.z.flush(zlib.Z_FINISH)
        if self.name == "br":
            return self.z.finish()
        return b""


def pick_coding(accept):
    accept = (accept or "").lower()
    if "br" in [a.split(";")[0].strip() for a in accept.split(",")] and brotli is not None:
        return "br"
    if "gzip" in accept:
        return "gzip"
    return "identity"


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "bench-app/1"
    sys_version = ""

    def log_message(self, *args):
        pass

    def query(self):
        q = {}
        if "?" in self.path:
            for kv in self.path.split("?", 1)[1].split("&"):
                k, _, v = kv.partition("=")
                q[k] = v
        return q

    def intq(self, q, name, default, lo, hi):
        try:
            return max(lo, min(hi, int(q.get(name, default))))
        except ValueError:
            return default

    def send_chunk(self, data):
        if data:
            self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
            self.wfile.flush()

    def whole(self, status, body, ctype, coding="identity"):
        if coding == "gzip":
            body = gzip.compress(body, 6)
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        if coding != "identity":
            self.send_header("Content-Encoding", coding)
            self.send_header("Vary", "Accept-Encoding")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        path = self.path.split("?", 1)[0]
        q = self.query()
        rng = random.Random(self.path)
        if path == "/api/items":
            page = self.intq(q, "page", 0, 0, 10**6)
            doc = {"page": page, "items": [record(rng, page * 20 + i) for i in range(20)]}
            coding = "gzip" if "gzip" in (self.headers.get("Accept-Encoding") or "") else "identity"
            self.whole(200, json.dumps(doc).encode(), "application/json", coding)
        elif path == "/api/stream":
            self.stream(rng, self.intq(q, "n", 500, 1, 200_000))
        elif path == "/api/events":
            self.events(rng, self.intq(q, "n", 100, 1, 100_000), float(q.get("every", "0.5") or 0.5))
        elif path == "/api/poll":
            wait = min(float(q.get("wait", "5") or 5), 3600.0)
            time.sleep(wait)
            self.whole(200, json.dumps({"changed": True, "cursor": rng.getrandbits(48)}).encode(), "application/json")
        else:
            self.whole(404, b'{"error":"not found"}\n', "application/json")

    def do_POST(self):
        n = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(min(n, 16 << 20))
        try:
            doc = json.loads(body)
            ok = True
        except ValueError:
            doc, ok = None, False
        receipt = {"accepted": ok, "bytes": len(body), "records": len(doc) if isinstance(doc, list) else 1}
        self.whole(201 if ok else 400, json.dumps(receipt).encode(), "application/json")

    def stream(self, rng, n):
        coding = pick_coding(self.headers.get("Accept-Encoding"))
        self.send_response(200)
        self.send_header("Content-Type", "application/x-ndjson")
        if coding != "identity":
            self.send_header("Content-Encoding", coding)
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        enc = Encoder(coding)
        batch = []
        for i in range(n):
            batch.append(json.dumps(record(rng, i), ensure_ascii=False).encode() + b"\n")
            if len(batch) == 25 or i == n - 1:
                self.send_chunk(enc.feed(b"".join(batch), flush=True))
                batch = []
        self.send_chunk(enc.finish())
        self.wfile.write(b"0\r\n\r\n")

    def events(self, rng, n, every):
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        for i in range(n):
            ev = "id: %d\nevent: %s\ndata: %s\n\n" % (i, _word(rng), json.dumps(record(rng, i)))
            self.send_chunk(ev.encode())
            time.sleep(every)
        self.wfile.write(b"0\r\n\r\n")


class Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 64

    def server_bind(self):
        self.socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        super().server_bind()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--gen-static", metavar="DIR")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=8082)
    ap.add_argument("--ready", help="file to create once listening")
    a = ap.parse_args()
    if a.gen_static:
        gen_static(a.gen_static, a.seed)
        return
    if a.host not in ("127.0.0.1", "::1"):
        sys.exit("refusing to bind a non-loopback address")
    srv = Server((a.host, a.port), Handler)
    if a.ready:
        open(a.ready, "w").close()
    srv.serve_forever()


if __name__ == "__main__":
    main()
