#!/usr/bin/env python3
"""HTTP/2 server for the h2c Upgrade recording (Python `h2`, hyper-h2).

    h2_server.py --port 8083 --ready FILE [--log FILE] [--prior-knowledge] [--changed]

Takes a cleartext HTTP/1.1 request; when it asks for `Upgrade: h2c` (with
HTTP2-Settings) the server answers 101 and speaks HTTP/2 on the connection,
the upgraded request being stream 1, as RFC 7540 section 3.2 has it.
Requests without the upgrade get a plain HTTP/1.1 400.  With
--prior-knowledge it expects the HTTP/2 preface instead (h2c with prior
knowledge, RFC 9113 section 3.3).  Every stream is answered by path:

  /text/N          N bytes of text, identity
  /gzip/N          N bytes of JSON-ish text, Content-Encoding: gzip
  /echo            (POST) the request body back, as application/octet-stream
  anything else    404 with a short text body

With --changed (for the replay tests, never for a recording) the answers
differ in two known ways: /text/N says "cat" for every "fox" (same length),
and the 404 becomes 410 with the same body.

The log (one line per stream: connection serial, stream id, method, path,
status, sha256 of the decoded response body) lets client.py cross-check.
--port 0 takes a free port; the ready file holds the port listened on.
Loopback only; connections each on a thread, at most --connections of them;
every read has a timeout.
"""

import argparse
import gzip
import hashlib
import os
import socket
import threading

import h2.config
import h2.connection
import h2.events

TIMEOUT = 10
LOG_LOCK = threading.Lock()


def text(n):
    line = b"the quick brown fox jumps over the lazy dog 0123456789\n"
    return (line * (n // len(line) + 1))[:n]


def json_text(n):
    item = b'{"id": %d, "name": "item-%d", "tags": ["a", "b"]},\n'
    out = b"".join(item % (i, i) for i in range(n // 40 + 1))
    return out[:n]


CHANGED = False


def answer(method, path, body):
    """(status, headers, decoded body, body as sent)."""
    parts = path.split("?")[0].strip("/").split("/")
    if parts[0] == "text" and len(parts) == 2 and parts[1].isdigit():
        b = text(int(parts[1]))
        if CHANGED:
            b = b.replace(b"fox", b"cat")
        return 200, [("content-type", "text/plain")], b, b
    if parts[0] == "gzip" and len(parts) == 2 and parts[1].isdigit():
        b = json_text(int(parts[1]))
        return 200, [("content-type", "application/json"), ("content-encoding", "gzip")], b, \
            gzip.compress(b, mtime=0)
    if parts == ["echo"] and method == "POST":
        return 200, [("content-type", "application/octet-stream")], body, body
    b = b"no such thing: " + path.encode() + b"\n"
    return 410 if CHANGED else 404, [("content-type", "text/plain")], b, b


def read_head(sock):
    buf = b""
    while b"\r\n\r\n" not in buf:
        d = sock.recv(65536)
        if not d:
            return None, b""
        buf += d
        if len(buf) > 65536:
            return None, b""
    head, rest = buf.split(b"\r\n\r\n", 1)
    return head.decode("latin-1"), rest


def serve(sock, serial, log, prior):
    if prior:
        conn = h2.connection.H2Connection(config=h2.config.H2Configuration(client_side=False))
        conn.initiate_connection()
        sock.sendall(conn.data_to_send())
        streams(sock, serial, log, conn, {}, {}, None, b"")
        return
    head, rest = read_head(sock)
    if head is None:
        return
    lines = head.split("\r\n")
    method, target, _ = lines[0].split(" ", 2)
    fields = {}
    for l in lines[1:]:
        n, _, v = l.partition(":")
        fields[n.strip().lower()] = v.strip()
    body = b""
    n = int(fields.get("content-length", "0") or 0)
    body = rest[:n]
    while len(body) < n:
        d = sock.recv(65536)
        if not d:
            return
        body += d
    rest = rest[n:] if len(rest) > n else b""
    if fields.get("upgrade", "").lower() != "h2c" or "http2-settings" not in fields:
        sock.sendall(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
        return
    sock.sendall(b"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n\r\n")
    conn = h2.connection.H2Connection(config=h2.config.H2Configuration(client_side=False))
    conn.initiate_upgrade_connection(fields["http2-settings"])
    streams(sock, serial, log, conn, {1: (method, target)}, {1: body}, 1, rest)


def streams(sock, serial, log, conn, requests, bodies, upgraded, rest):
    """Serves the HTTP/2 connection; `upgraded` is the stream of an upgraded request."""
    pending = {}

    def pump():
        """Sends what the client's flow-control windows allow of the bodies not yet sent, in
        frames of at most 4000 bytes (so that bodies span several DATA frames)."""
        for sid in list(pending):
            data, off = pending[sid]
            while off < len(data):
                n = min(conn.local_flow_control_window(sid), 4000, len(data) - off)
                if n <= 0:
                    break
                conn.send_data(sid, data[off:off + n], end_stream=off + n >= len(data))
                off += n
            if off >= len(data):
                del pending[sid]
            else:
                pending[sid][1] = off

    def respond(sid):
        m, p = requests[sid]
        status, hdrs, decoded, sent = answer(m, p, bodies.get(sid, b""))
        conn.send_headers(sid, [(":status", str(status))] + hdrs + [("content-length", str(len(sent)))])
        if sent:
            pending[sid] = [sent, 0]
            pump()
        else:
            conn.end_stream(sid)
        with LOG_LOCK:
            log.write("%d\t%d\t%s\t%s\t%d\t%s\n" % (serial, sid, m, p, status,
                                                   hashlib.sha256(decoded).hexdigest()))
            log.flush()

    if upgraded:
        respond(upgraded)
    sock.sendall(conn.data_to_send())
    if rest:
        events = conn.receive_data(rest)
    else:
        events = []
    while True:
        for ev in events:
            if isinstance(ev, h2.events.RequestReceived):
                hd = {k.decode() if isinstance(k, bytes) else k: v.decode() if isinstance(v, bytes) else v
                      for k, v in ev.headers}
                requests[ev.stream_id] = (hd[":method"], hd[":path"])
                bodies[ev.stream_id] = b""
            elif isinstance(ev, h2.events.DataReceived):
                bodies[ev.stream_id] = bodies.get(ev.stream_id, b"") + ev.data
                conn.acknowledge_received_data(ev.flow_controlled_length, ev.stream_id)
            elif isinstance(ev, h2.events.StreamEnded):
                if ev.stream_id != upgraded:
                    respond(ev.stream_id)
            elif isinstance(ev, h2.events.StreamReset):
                pending.pop(ev.stream_id, None)
            elif isinstance(ev, h2.events.ConnectionTerminated):
                sock.sendall(conn.data_to_send())
                return
        pump()
        out = conn.data_to_send()
        if out:
            sock.sendall(out)
        d = sock.recv(65536)
        if not d:
            return
        events = conn.receive_data(d)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--ready", required=True)
    ap.add_argument("--log", default="/dev/null")
    ap.add_argument("--connections", type=int, default=8)
    ap.add_argument("--prior-knowledge", action="store_true")
    ap.add_argument("--changed", action="store_true")
    a = ap.parse_args()
    global CHANGED
    CHANGED = a.changed
    ls = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind(("127.0.0.1", a.port))
    ls.listen(16)
    ls.settimeout(60)
    with open(a.ready + ".tmp", "w") as f:
        f.write("%d\n" % ls.getsockname()[1])
    os.replace(a.ready + ".tmp", a.ready)

    def handle(sock, serial, log):
        sock.settimeout(TIMEOUT)
        try:
            serve(sock, serial, log, a.prior_knowledge)
        except (socket.timeout, ConnectionError):
            pass
        finally:
            sock.close()

    threads = []
    with open(a.log, "a") as log:
        for serial in range(a.connections):
            try:
                sock, _ = ls.accept()
            except socket.timeout:
                break
            t = threading.Thread(target=handle, args=(sock, serial, log), daemon=True)
            t.start()
            threads.append(t)
        for t in threads:
            t.join(TIMEOUT * 6)


if __name__ == "__main__":
    main()
