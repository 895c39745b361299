#!/usr/bin/env python3
"""Client side of the test-capture recordings; writes the ground truth.

    client.py SCENARIO --truth OUT.tsv --work DIR [--server-log F]
                       [--nginx-log F --nginx-root DIR]

Each scenario drives real clients against the servers started by record.sh:
curl (whose own view of every transfer comes from `-w %{json}` and the
decoded body it writes with `-o`), ab, and a raw-socket client in this file
(pipelining, IPv6, close-delimited bodies, CONNECT, websocket upgrade, and
content codings that it decodes itself).

The truth row of an exchange is the client's view: method, URL, final
status, request body as sent, response entity as decoded (de-chunked and
decompressed).  The only facts taken from the servers' logs are those the
client cannot see: the bytes of request bodies that curl builds itself
(multipart, urlencoded) and, for `ab`, the whole row (ab reports no
per-request facts; nginx's access log names the connection and the URL).
Every other row is cross-checked against the server's log: status and
decoded response digest must agree, or the scenario fails.
"""

import argparse
import base64
import gzip
import hashlib
import json
import os
import random
import socket
import subprocess
import sys
import time
import zlib

NGX = 8080
SRV = 8081
# nginx's TLS servers (nginx.conf): TLS 1.2 + 1.3; TLS 1.2 without encrypt-then-MAC; HTTP/2.
TLS, TLS_MTE, TLS_H2, TLS_P256 = 8443, 8444, 8445, 8446
NGINX_PORTS = (NGX, TLS, TLS_MTE, TLS_H2, TLS_P256)
# The name the TLS clients ask for (SNI, Host), resolved to loopback by the client.
TLS_HOST = "api.test"
TIMEOUT = 10
COLUMNS = ["conn", "method", "url", "status", "req_body_len", "req_body_sha256",
           "resp_body_len", "resp_body_sha256", "notes"]


def sha(b):
    return hashlib.sha256(b).hexdigest()


def decode(data, codings):
    """Undo content codings listed in a Content-Encoding header."""
    for c in reversed([c.strip().lower() for c in codings.split(",") if c.strip()]):
        if c in ("gzip", "x-gzip"):
            data = gzip.decompress(data)
        elif c == "deflate":
            try:
                data = zlib.decompress(data)            # zlib wrapped (RFC 1950)
            except zlib.error:
                data = zlib.decompress(data, -15)       # raw deflate, as sent by some servers
        elif c == "br":
            import brotli
            data = brotli.decompress(data)
        elif c == "zstd":
            import zstandard
            data = zstandard.ZstdDecompressor().decompress(data)
        elif c == "identity":
            pass
        else:
            raise ValueError("unknown coding " + c)
    return data


class Response:
    pass


class RawConn:
    """A raw HTTP/1.x client connection (no library between us and the socket)."""

    def __init__(self, sc, host, port):
        fam = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.sock = socket.create_connection((host, port), timeout=TIMEOUT) \
            if fam == socket.AF_INET else self._v6(host, port)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.rfile = self.sock.makefile("rb")
        self.host, self.port = host, port
        self.authority = ("[%s]:%d" if fam == socket.AF_INET6 else "%s:%d") % (host, port)
        self.conn = sc.new_conn(port)

    @staticmethod
    def _v6(host, port):
        s = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
        s.settimeout(TIMEOUT)
        s.connect((host, port))
        return s

    def request_bytes(self, method, target, headers=(), body=None, version="HTTP/1.1"):
        lines = ["%s %s %s" % (method, target, version), "Host: " + self.authority,
                 "User-Agent: apitool-testclient/1"]
        lines += ["%s: %s" % kv for kv in headers]
        if body is not None:
            lines.append("Content-Length: %d" % len(body))
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + (body or b"")

    def send(self, data):
        self.sock.sendall(data)

    def read_head(self):
        lines = []
        for _ in range(200):
            line = self.rfile.readline(65536)
            if not line:
                raise EOFError("connection closed in response head")
            if line in (b"\r\n", b"\n"):
                return lines
            lines.append(line.rstrip(b"\r\n").decode("latin-1"))
        raise ValueError("too many header lines")

    def read_response(self, method):
        r = Response()
        r.interim = []
        for _ in range(5):
            lines = self.read_head()
            version, status, *reason = lines[0].split(" ", 2)
            r.version, r.status = version, int(status)
            r.headers = [tuple(x.strip() for x in l.split(":", 1)) for l in lines[1:]]
            if 100 <= r.status < 200 and r.status != 101:
                r.interim.append(r.status)
                continue
            break
        r.trailers = []
        h = {k.lower(): v for k, v in r.headers}
        if method in ("HEAD", "CONNECT") or r.status in (204, 304) or r.status < 200:
            r.wire, r.entity = None, None
            return r
        if "chunked" in h.get("transfer-encoding", "").lower():
            body = bytearray()
            r.chunk_exts = []
            for _ in range(100000):
                line = self.rfile.readline(4096).rstrip(b"\r\n")
                size, _, ext = line.partition(b";")
                if ext:
                    r.chunk_exts.append(ext.decode())
                n = int(size.strip(), 16)
                if n == 0:
                    break
                body += self.rfile.read(n)
                assert self.rfile.read(2) == b"\r\n"
            for _ in range(100):
                line = self.rfile.readline(65536).rstrip(b"\r\n")
                if not line:
                    break
                k, v = line.decode("latin-1").split(":", 1)
                r.trailers.append((k.strip(), v.strip()))
            wire = bytes(body)
        elif "content-length" in h:
            wire = self.rfile.read(int(h["content-length"]))
        else:
            wire = self.rfile.read()        # close-delimited: body ends at FIN
        r.wire = wire
        r.entity = decode(wire, h.get("content-encoding", ""))
        return r

    def close(self):
        try:
            self.sock.shutdown(socket.SHUT_WR)
            self.rfile.read()
        except OSError:
            pass
        self.sock.close()


class Scenario:
    def __init__(self, args):
        self.args = args
        self.rows = []
        self.nconn = 0
        self.per_port = {}          # port -> number of connections opened to it
        self.curl_conns = {}
        self.work = args.work
        os.makedirs(self.work, exist_ok=True)

    def new_conn(self, port):
        idx = self.nconn
        self.nconn += 1
        self.last_origin_conn = self.per_port.get(port, 0)
        self.per_port[port] = self.last_origin_conn + 1
        return (idx, port, self.last_origin_conn)

    def add(self, conn, method, url, status, req_body=None, entity=None, notes="",
            req_from_server=False):
        idx, port, oconn = conn
        self.rows.append({
            "conn": idx, "method": method, "url": url,
            "status": "" if status is None else str(status),
            "req_body_len": "" if not req_body else str(len(req_body)),
            "req_body_sha256": "" if not req_body else sha(req_body),
            "resp_body_len": "" if entity is None else str(len(entity)),
            "resp_body_sha256": "" if entity is None else sha(entity),
            "notes": notes, "_port": port, "_oconn": oconn,
            "_req_from_server": req_from_server,
        })

    # -- raw client exchanges
    def raw(self, c, method, target, headers=(), body=None, notes="", version="HTTP/1.1"):
        c.send(c.request_bytes(method, target, headers, body, version))
        r = c.read_response(method)
        self.add_raw(c, method, target, body, r, notes)
        return r

    def add_raw(self, c, method, target, body, r, notes):
        url = target if method == "CONNECT" else "http://%s%s" % (c.authority, target)
        self.add(c.conn, method, url, r.status, body, r.entity, notes)

    # -- curl
    def curl(self, sections, common=(), keylog=None):
        """sections: list of (url, [options], notes).  One curl invocation;
        --next between sections keeps the connection cache.  keylog: where curl
        writes the TLS secrets (SSLKEYLOGFILE)."""
        cmd = ["curl", "-sS", "--max-time", str(TIMEOUT)]
        env = dict(os.environ)
        env.pop("SSLKEYLOGFILE", None)
        if keylog:
            env["SSLKEYLOGFILE"] = keylog
        outs = []
        for i, (url, opts, _) in enumerate(sections):
            if i:
                cmd.append("--next")
            out = os.path.join(self.work, "curl-%d-%d.out" % (len(self.rows), i))
            outs.append(out)
            cmd += list(common) + list(opts) + ["-w", "%{json}\\n", "-o", out, url]
        p = subprocess.run(cmd, capture_output=True, timeout=60, check=True, env=env)
        results = [json.loads(l) for l in p.stdout.decode().splitlines() if l.strip()]
        assert len(results) == len(sections), (cmd, p.stdout, p.stderr)
        for (url, opts, notes), res, out in zip(sections, results, outs):
            key = (res["local_ip"], res["local_port"], res["remote_ip"], res["remote_port"])
            if res["num_connects"] or key not in self.curl_conns:
                self.curl_conns[key] = self.new_conn(res["remote_port"])
            conn = self.curl_conns[key]
            method = res["method"]
            status = res["response_code"]
            if any(o.startswith("--http2") for o in list(common) + list(opts)):
                assert res["http_version"] == "2", res
            body = None
            sent = None
            req_from_server = False
            for j, o in enumerate(opts):
                if o == "--data-binary" and opts[j + 1].startswith("@"):
                    with open(opts[j + 1][1:], "rb") as f:
                        sent = f.read()
                elif o in ("-F", "--data-urlencode", "--data", "-d"):
                    req_from_server = True
            if sent is not None:
                assert res["size_upload"] == len(sent), (res["size_upload"], len(sent))
            if method == "HEAD" or status in (204, 304):
                body = None
            else:
                with open(out, "rb") as f:
                    body = f.read()
            self.add(conn, method, res["url_effective"], status, sent, body, notes,
                     req_from_server)

    # -- output
    def finish(self):
        time.sleep(0.3)
        if self.args.server_log:
            self.check_server_log()
        if self.args.nginx_log:
            self.check_nginx_log()
        with open(self.args.truth, "w") as f:
            f.write("\t".join(COLUMNS) + "\n")
            for r in self.rows:
                f.write("\t".join(str(r[c]) for c in COLUMNS) + "\n")

    def check_server_log(self):
        with open(self.args.server_log) as f:
            log = [l.rstrip("\n").split("\t") for l in f if l.strip()]
        by_key = {}
        for row in log:
            by_key.setdefault(int(row[0]), []).append(row)
        seen = {}
        n = 0
        for r in self.rows:
            if r["_port"] != SRV:
                continue
            k = r["_oconn"]
            i = seen.get(k, 0)
            seen[k] = i + 1
            s = by_key[k][i]
            n += 1
            conn, method, target, status, rql, rqs, rsl, rss = s
            assert method == r["method"], (s, r)
            assert r["url"].endswith(target), (s, r)
            assert status == r["status"], (s, r)
            assert (rsl, rss) == (r["resp_body_len"], r["resp_body_sha256"]), (s, r)
            if r["_req_from_server"]:
                r["req_body_len"], r["req_body_sha256"] = rql, rqs
            else:
                assert (rql, rqs) == (r["req_body_len"], r["req_body_sha256"]), (s, r)
        assert n == len(log), "server answered %d requests, client saw %d" % (len(log), n)

    def nginx_rows(self):
        with open(self.args.nginx_log) as f:
            log = [l.rstrip("\n").split("\t") for l in f if l.strip()]
        serials = sorted({int(l[0]) for l in log})
        rank = {s: i for i, s in enumerate(serials)}
        out = {}
        for l in log:
            serial, nreq, method, url, status, uri = l
            out[(rank[int(serial)], int(nreq) - 1)] = (method, url, status, uri)
        return out

    def nginx_entity(self, uri):
        with open(os.path.join(self.args.nginx_root, uri.lstrip("/")), "rb") as f:
            return f.read()

    def check_nginx_log(self):
        log = self.nginx_rows()
        seen = {}
        n = 0
        tls = any(r["_port"] != NGX for r in self.rows if r["_port"] in NGINX_PORTS)
        for r in self.rows:
            if r["_port"] not in NGINX_PORTS:
                continue
            # nginx numbers its connections across its ports; a TLS scenario talks to nginx
            # only, so its connection index is nginx's rank.
            k = r["conn"] if tls else r["_oconn"]
            i = seen.get(k, 0)
            seen[k] = i + 1
            method, url, status, uri = log[(k, i)]
            n += 1
            assert (method, status) == (r["method"], r["status"]), (log[(k, i)], r)
            assert url == r["url"], (url, r["url"])
            if r["resp_body_sha256"] and uri != "/echo":
                assert sha(self.nginx_entity(uri)) == r["resp_body_sha256"], r
        assert n == len(log), (n, len(log))

    def data(self, name, data):
        p = os.path.join(self.work, name)
        with open(p, "wb") as f:
            f.write(data)
        return p


def etag_of(path):
    st = os.stat(path)
    return '"%x-%x"' % (int(st.st_mtime), st.st_size)


NG = "http://127.0.0.1:%d" % NGX
SV = "http://127.0.0.1:%d" % SRV


# ---------------------------------------------------------------- scenarios

def sc_keepalive(sc):
    sc.curl([(NG + "/index.html", [], "gzip;chunked"),
             (NG + "/data/users.json", [], "gzip;chunked;multi-segment"),
             (NG + "/logo.bin", [], "identity;content-length;multi-segment"),
             (NG + "/style.css", [], "gzip;chunked")], common=["--compressed"])


TLS_URL = "https://%s:%%d" % TLS_HOST


def tls_curl(sc, port, sections, opts, keylog=None):
    """curl over TLS to nginx, SNI and Host api.test, the self-signed certificate accepted;
    the secrets appended to the scenario's key log (or to keylog)."""
    common = ["-k", "--resolve", "%s:%d:127.0.0.1" % (TLS_HOST, port)] + opts
    sc.curl(sections, common=common, keylog=keylog or sc.args.keys)


def sc_tls13(sc):
    """TLS 1.3: a keep-alive connection with the default suite (AES-256-GCM) and four
    requests (gzip, chunked, identity, a POST), one with ChaCha20-Poly1305, one with
    AES-128-GCM, and one whose secrets go to another key log, not kept (no key)."""
    u = TLS_URL % TLS
    post = sc.data("post.json", json.dumps({"tls": True, "items": list(range(40))}).encode())
    t13 = ["--tlsv1.3", "--http1.1"]
    tls_curl(sc, TLS, [(u + "/index.html", [], "gzip;chunked"),
                       (u + "/data/users.json", [], "gzip;chunked;multi-segment"),
                       (u + "/logo.bin", [], "identity;content-length;multi-segment"),
                       (u + "/echo", ["--data-binary", "@" + post, "-H", "Content-Type: application/json"],
                        "post")], t13 + ["--compressed", "--tls13-ciphers", "TLS_AES_256_GCM_SHA384"])
    tls_curl(sc, TLS, [(u + "/style.css", [], "chacha20")],
             t13 + ["--compressed", "--tls13-ciphers", "TLS_CHACHA20_POLY1305_SHA256"])
    tls_curl(sc, TLS, [(u + "/api/items.json", [], "aes128gcm")],
             t13 + ["--tls13-ciphers", "TLS_AES_128_GCM_SHA256"])
    tls_curl(sc, TLS, [(u + "/robots.txt", [], "nokey")], t13,
             keylog=os.path.join(sc.work, "discarded.keys"))


def sc_tls12(sc):
    """TLS 1.2, one connection per suite: AES-GCM (128, 256), ChaCha20-Poly1305, AES-CBC
    with encrypt-then-MAC (SHA-1, SHA-384), and without it (SHA-1, SHA-256)."""
    for port, suite, notes in [(TLS, "ECDHE-RSA-AES128-GCM-SHA256", "aes128gcm"),
                               (TLS, "ECDHE-RSA-AES256-GCM-SHA384", "aes256gcm"),
                               (TLS, "ECDHE-RSA-CHACHA20-POLY1305", "chacha20"),
                               (TLS, "ECDHE-RSA-AES128-SHA", "cbc;sha1;etm"),
                               (TLS, "ECDHE-RSA-AES256-SHA384", "cbc;sha384;etm"),
                               (TLS_MTE, "ECDHE-RSA-AES256-SHA", "cbc;sha1;mte"),
                               (TLS_MTE, "ECDHE-RSA-AES128-SHA256", "cbc;sha256;mte")]:
        u = TLS_URL % port
        tls_curl(sc, port, [(u + "/api/items.json", [], notes), (u + "/style.css", [], notes + ";gzip")],
                 ["--tls-max", "1.2", "--http1.1", "--compressed", "--ciphers", suite])


def sc_tls_keyupdate(sc):
    """openssl s_client (TLS 1.3, AES-128-GCM): a request, a KeyUpdate (`k`), a request, a
    KeyUpdate asking the server for one too (`K`), a third request. The client's view is
    what s_client printed of the responses."""
    conn = sc.new_conn(TLS)
    cmd = ["openssl", "s_client", "-connect", "127.0.0.1:%d" % TLS, "-servername", TLS_HOST,
           "-tls1_3", "-ciphersuites", "TLS_AES_128_GCM_SHA256", "-keylogfile", sc.args.keys,
           "-crlf", "-brief"]
    p = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    os.set_blocking(p.stdout.fileno(), False)
    got = bytearray()

    def response():
        """Reads one whole response (Content-Length framed) from s_client's output."""
        deadline = time.time() + TIMEOUT
        while time.time() < deadline:
            chunk = p.stdout.read()
            if chunk:
                got.extend(chunk)
            end = got.find(b"\r\n\r\n")
            if end >= 0:
                head = got[:end].decode("latin-1").split("\r\n")
                n = [int(l.split(":", 1)[1]) for l in head if l.lower().startswith("content-length:")][0]
                if len(got) >= end + 4 + n:
                    status = int(head[0].split(" ")[1])
                    body = bytes(got[end + 4:end + 4 + n])
                    del got[:end + 4 + n]
                    return status, body
            time.sleep(0.05)
        raise TimeoutError("s_client: no whole response")

    def get(path, notes):
        req = "GET %s HTTP/1.1\nHost: %s:%d\nUser-Agent: apitool-testclient/1\n\n" % (path, TLS_HOST, TLS)
        p.stdin.write(req.encode())
        p.stdin.flush()
        status, body = response()
        sc.add(conn, "GET", TLS_URL % TLS + path, status, None, body, notes)

    try:
        get("/api/items.json", "before-keyupdate")
        for cmd_letter, path, notes in [(b"k", "/robots.txt", "after-keyupdate"),
                                        (b"K", "/index.html", "after-keyupdate-requested")]:
            time.sleep(0.2)
            p.stdin.write(cmd_letter + b"\n")
            p.stdin.flush()
            time.sleep(0.3)
            get(path, notes)
    finally:
        p.stdin.close()
        try:
            p.wait(timeout=TIMEOUT)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
    err = p.stderr.read().decode("latin-1")
    assert err.count("KEYUPDATE") >= 2, err


def sc_tls_dsb(sc):
    """TLS 1.3, two requests; record.sh puts the key log into the pcapng as a Decryption
    Secrets Block (editcap --inject-secrets)."""
    u = TLS_URL % TLS
    tls_curl(sc, TLS, [(u + "/api/items.json", [], "dsb"), (u + "/index.html", [], "dsb;gzip")],
             ["--tlsv1.3", "--http1.1", "--compressed"])


def sc_tls_hrr(sc):
    """TLS 1.3 with a HelloRetryRequest: curl's first key share is X25519, the server takes
    P-256 only and asks for it; two requests on the connection."""
    u = TLS_URL % TLS_P256
    tls_curl(sc, TLS_P256, [(u + "/api/items.json", [], "hrr"), (u + "/style.css", [], "hrr;gzip")],
             ["--tlsv1.3", "--http1.1", "--compressed", "--curves", "X25519:prime256v1"])


def sc_tls_h2(sc):
    """HTTP/2 over TLS 1.3 (ALPN h2): two requests on one connection."""
    u = TLS_URL % TLS_H2
    tls_curl(sc, TLS_H2, [(u + "/api/items.json", [], "h2"), (u + "/index.html", [], "h2;gzip")],
             ["--http2", "--compressed"])


def sc_pipelined(sc):
    c = RawConn(sc, "127.0.0.1", SRV)
    body = json.dumps({"op": "create", "items": list(range(20))}).encode()
    reqs = [("GET", "/file/pipe-a", [], None, "pipelined"),
            ("POST", "/echo", [("Content-Type", "application/json")], body, "pipelined;post"),
            ("GET", "/enc/gzip?chunked=1", [("Accept-Encoding", "gzip")], None,
             "pipelined;gzip;chunked")]
    c.send(b"".join(c.request_bytes(m, t, h, b) for m, t, h, b, _ in reqs))
    for m, t, h, b, notes in reqs:
        sc.add_raw(c, m, t, b, c.read_response(m), notes)
    c.close()


def sc_chunked_gzip(sc):
    c = RawConn(sc, "127.0.0.1", SRV)
    r = sc.raw(c, "GET", "/chunked-gzip", [("Accept-Encoding", "gzip"), ("TE", "trailers")],
               notes="gzip;chunked;chunk-extensions;trailers")
    assert r.trailers and r.chunk_exts, (r.trailers, r.chunk_exts)
    assert dict(r.trailers)["X-Body-SHA256"] == sha(r.entity)
    sc.raw(c, "GET", "/chunked-plain", notes="chunked;chunk-extensions;uppercase-hex")
    c.close()


def sc_br(sc):
    sc.curl([(SV + "/enc/br", [], "br;content-length"),
             (SV + "/enc/br?chunked=1", [], "br;chunked")], common=["--compressed"])


def sc_zstd(sc):
    sc.curl([(SV + "/enc/zstd", [], "zstd;content-length"),
             (SV + "/enc/zstd?chunked=1", [], "zstd;chunked")], common=["--compressed"])


def sc_deflate(sc):
    c = RawConn(sc, "127.0.0.1", SRV)
    ae = [("Accept-Encoding", "deflate")]
    r = sc.raw(c, "GET", "/enc/deflate", ae, notes="deflate-zlib")
    assert r.wire[0] == 0x78, "zlib header expected"
    r = sc.raw(c, "GET", "/enc/rawdeflate", ae, notes="deflate-raw")
    assert r.wire[0] != 0x78, "raw deflate expected"
    c.close()


def sc_stacked(sc):
    c = RawConn(sc, "127.0.0.1", SRV)
    ae = [("Accept-Encoding", "gzip, br")]
    sc.raw(c, "GET", "/enc/gzip,br", ae, notes="stacked:gzip,br;content-length")
    sc.raw(c, "GET", "/enc/gzip,br?chunked=1", ae, notes="stacked:gzip,br;chunked")
    c.close()


def sc_head(sc):
    sc.curl([(NG + "/index.html", ["-I"], "head;content-length"),
             (NG + "/data/users.json", ["-I"], "head;content-length")])
    c = RawConn(sc, "127.0.0.1", SRV)
    sc.raw(c, "HEAD", "/file/head", notes="head;content-length")
    sc.raw(c, "GET", "/file/head", notes="get-after-head")
    c.close()


def sc_continue(sc):
    a = sc.data("payload-a.json", json.dumps(
        [{"i": i, "v": "%08x" % random.Random(i).getrandbits(32)} for i in range(300)]).encode())
    b = sc.data("payload-b.bin", random.Random("b").randbytes(3000))
    exp = ["-H", "Expect: 100-continue"]
    sc.curl([(SV + "/echo?n=1", exp + ["-H", "Content-Type: application/json",
                                       "--data-binary", "@" + a], "expect-100-continue"),
             (SV + "/echo?n=2", exp + ["-H", "Content-Type: application/octet-stream",
                                       "--data-binary", "@" + b], "expect-100-continue")])


def sc_status_204_304(sc):
    tag = etag_of(os.path.join(sc.args.nginx_root, "index.html"))
    sc.curl([(NG + "/index.html", [], "etag"),
             (NG + "/nocontent", [], "204"),
             (NG + "/index.html", ["-H", "If-None-Match: " + tag], "304;if-none-match"),
             (SV + "/status/204", [], "204"),
             (SV + "/etag", ["-H", 'If-None-Match: "v1"'], "304;if-none-match")])


def sc_close_delimited(sc):
    c = RawConn(sc, "127.0.0.1", SRV)
    sc.raw(c, "GET", "/close10", version="HTTP/1.0", notes="http/1.0;close-delimited")
    c.close()
    c = RawConn(sc, "127.0.0.1", SRV)
    sc.raw(c, "GET", "/close11", notes="http/1.1;connection-close;close-delimited")
    c.close()


def sc_post_bodies(sc):
    rng = random.Random("post")
    js = sc.data("post.json", json.dumps({"user": "jöhn", "roles": ["a", "b"],
                                          "n": 42}).encode())
    up = sc.data("upload.bin", rng.randbytes(4000))
    blob = sc.data("blob.bin", rng.randbytes(2500))
    noexp = ["-H", "Expect:"]
    sc.curl([(SV + "/echo?kind=json", noexp + ["-H", "Content-Type: application/json",
                                                "--data-binary", "@" + js], "json"),
             (SV + "/echo?kind=form", noexp + ["--data-urlencode", "name=Jöhn Doé",
                                                "--data-urlencode", "expr=a+b=c&d"],
              "form-urlencoded"),
             (SV + "/echo?kind=multipart", noexp + [
                 "-F", 'meta={"kind":"upload"};type=application/json',
                 "-F", "file=@%s;type=application/octet-stream;filename=upload.bin" % up],
              "multipart;file"),
             (SV + "/echo?kind=binary", noexp + ["-H", "Content-Type: application/octet-stream",
                                                  "--data-binary", "@" + blob],
              "octet-stream")])


def sc_ipv6(sc):
    c = RawConn(sc, "::1", SRV)
    sc.raw(c, "GET", "/file/v6", notes="ipv6")
    sc.raw(c, "POST", "/echo", [("Content-Type", "application/json")], b'{"v6": true}',
           notes="ipv6;post")
    c.close()
    sc.curl([("http://[::1]:%d/index.html" % NGX, ["-g", "--compressed"], "ipv6;gzip;chunked")])
    # nginx logs the Host header as curl sent it: [::1]:8080


def sc_connect_upgrade(sc):
    c = RawConn(sc, "127.0.0.1", SRV)
    sc.raw(c, "CONNECT", "127.0.0.1:9443", notes="connect;tunnel")
    rng = random.Random("client-tunnel")
    for n in (120, 60):
        c.send(b"\x16\x03\x01" + rng.randbytes(n - 3))
        got = c.rfile.read1(4096)
        assert got.startswith(b"\x16\x03\x03"), got[:10]
    c.close()
    c = RawConn(sc, "127.0.0.1", SRV)
    key = base64.b64encode(random.Random("wskey").randbytes(16)).decode()
    r = sc.raw(c, "GET", "/ws", [("Upgrade", "websocket"), ("Connection", "Upgrade"),
                                 ("Sec-WebSocket-Key", key), ("Sec-WebSocket-Version", "13")],
               notes="upgrade:websocket")
    assert r.status == 101
    got = c.rfile.read1(4096)
    assert got[0] == 0x81, got
    mask = b"\x11\x22\x33\x44"
    for payload, op in ((b"hello from client", 0x1), (b"\x03\xe8", 0x8)):
        masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        c.send(bytes([0x80 | op, 0x80 | len(payload)]) + mask + masked)
        got = c.rfile.read1(4096)
        assert got, "server closed early"
    c.close()


def sc_big_body(sc):
    sc.curl([(NG + "/big.json", [], "gzip;chunked;multi-segment")], common=["--compressed"])


def sc_concurrent(sc):
    p = subprocess.run(["ab", "-k", "-c", "4", "-n", "12", "-s", "10",
                        NG + "/api/items.json"], capture_output=True, timeout=60)
    out = p.stdout.decode()
    assert p.returncode == 0 and "Complete requests:      12" in out \
        and "Failed requests:        0" in out, out + p.stderr.decode()
    time.sleep(0.3)
    # ab reports no per-request facts: the rows come from nginx's access log
    # (connection serial -> index in order of accept; request number on it).
    log = sc.nginx_rows()
    for (conn, _), (method, url, status, uri) in sorted(log.items()):
        sc.rows.append({"conn": conn, "method": method, "url": url, "status": status,
                        "req_body_len": "", "req_body_sha256": "",
                        "resp_body_len": str(len(sc.nginx_entity(uri))),
                        "resp_body_sha256": sha(sc.nginx_entity(uri)),
                        "notes": "ab;http/1.0;keep-alive;concurrent", "_port": None})
    sc.args.nginx_log = None


def sc_http10(sc):
    sc.curl([(NG + "/index.html", ["--http1.0"], "http/1.0"),
             (NG + "/api/items.json", ["--http1.0"], "http/1.0")])


class EventParser:
    """The client's own reading of a text/event-stream (the HTML standard's rules)."""

    def __init__(self):
        self.buf, self.data, self.event, self.id, self.retry = "", None, "", "", None

    def feed(self, text):
        self.buf += text
        out = []
        while True:
            cut = [i for i in (self.buf.find("\r"), self.buf.find("\n")) if i >= 0]
            if not cut:
                return out
            i = min(cut)
            if self.buf[i] == "\r" and i + 1 == len(self.buf):
                return out          # a CR at the end may be half of a CRLF
            line = self.buf[:i]
            step = 2 if self.buf[i:i + 2] == "\r\n" else 1
            self.buf = self.buf[i + step:]
            if line == "":
                if self.data is not None:
                    out.append((self.event or "message", self.data, self.id, self.retry))
                self.data, self.event, self.retry = None, "", None
            elif line.startswith(":"):
                pass
            else:
                field, _, value = line.partition(":")
                value = value[1:] if value.startswith(" ") else value
                if field == "data":
                    self.data = value if self.data is None else self.data + "\n" + value
                elif field == "event":
                    self.event = value
                elif field == "id" and "\0" not in value:
                    self.id = value
                elif field == "retry" and value.isdigit():
                    self.retry = int(value)


def read_event_stream(c, target, headers, gz):
    """GET an event stream on raw connection c; returns the Response and its events, each
    with the time the client received it."""
    c.send(c.request_bytes("GET", target, headers))
    lines = c.read_head()
    r = Response()
    r.interim, r.trailers = [], []
    r.version, status, *_ = lines[0].split(" ", 2)
    r.status = int(status)
    h = {k.strip().lower(): v.strip() for k, v in (l.split(":", 1) for l in lines[1:])}
    assert "chunked" in h.get("transfer-encoding", ""), h
    assert (h.get("content-encoding") == "gzip") == gz, h
    z = zlib.decompressobj(31) if gz else None
    p, events, entity = EventParser(), [], bytearray()
    for _ in range(10000):
        n = int(c.rfile.readline(4096).split(b";")[0].strip(), 16)
        if n == 0:
            while c.rfile.readline(4096).strip():
                pass
            break
        wire = c.rfile.read(n)
        t = time.time()
        assert c.rfile.read(2) == b"\r\n"
        plain = z.decompress(wire) if z else wire
        entity += plain
        events += [(t,) + e for e in p.feed(plain.decode("utf-8"))]
    r.entity = bytes(entity)
    return r, events


def sc_sse(sc):
    """Two server-sent event streams on one keep-alive connection (plain, then gzip flushed
    per event) while curl fetches files on other connections; the client's record of every
    event and when it arrived goes to sse.events.tsv."""
    import threading
    c = RawConn(sc, "127.0.0.1", SRV)
    streams = [("/events?n=12&gap=400", [], False),
               ("/events?n=8&gap=150&gzip=1", [("Accept-Encoding", "gzip")], True)]
    got = []
    t = threading.Thread(target=lambda: got.extend(read_event_stream(c, *s) for s in streams))
    t.start()
    time.sleep(0.6)
    sc.curl([(SV + "/file/during-a", [], "during-events"), (SV + "/file/during-b", [], "during-events")])
    time.sleep(1.5)
    sc.curl([(SV + "/enc/gzip", [], "during-events;gzip")], common=["--compressed"])
    t.join(60)
    assert len(got) == 2, "the event streams did not finish"
    rows = []
    for k, ((target, _, gz), (r, events)) in enumerate(zip(streams, got)):
        sc.add_raw(c, "GET", target, None, r, "event-stream" + (";gzip;chunked" if gz else ";chunked"))
        rows += [(k,) + e for e in events]
    c.close()
    path = os.path.join(os.path.dirname(sc.args.truth), "sse.events.tsv")
    with open(path, "w") as f:
        f.write("stream\ttime\tevent\tid\tretry\tdata\n")
        for k, t, event, data, id_, retry in rows:
            f.write("%d\t%.6f\t%s\t%s\t%s\t%s\n" % (k, t, event, id_, "" if retry is None else retry,
                                                  json.dumps(data)))


H2C = "http://127.0.0.1:8082"      # nginx, HTTP/2 cleartext with prior knowledge
H2UP = "http://127.0.0.1:8083"     # h2_server.py, HTTP/1.1 Upgrade: h2c


def h2_streams(sc, port, requests, notes):
    """Python `h2` (hyper-h2) as the client: all `requests` ((method, path, headers, body))
    opened at once as streams of one cleartext HTTP/2 connection with prior knowledge, their
    responses read as they interleave.  The client's record is what h2 decoded: status and
    the entity, content codings undone here.  (curl 7.88 fails every request after the first
    on an HTTP/2 connection it reuses, so it makes one request per connection.)"""
    import h2.config
    import h2.connection
    import h2.events
    sock = socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT)
    conn = h2.connection.H2Connection(config=h2.config.H2Configuration(client_side=True))
    conn.initiate_connection()
    authority = "127.0.0.1:%d" % port
    streams = {}
    for method, path, headers, body in requests:
        sid = conn.get_next_available_stream_id()
        fields = [(":method", method), (":scheme", "http"), (":authority", authority),
                  (":path", path)] + list(headers)
        if body is not None:
            fields.append(("content-length", str(len(body))))
        conn.send_headers(sid, fields, end_stream=body is None)
        if body is not None:
            conn.send_data(sid, body, end_stream=True)
        streams[sid] = {"req": (method, path, body), "status": None, "enc": "", "data": b"", "done": False}
    sock.sendall(conn.data_to_send())
    deadline = time.time() + TIMEOUT
    while not all(s["done"] for s in streams.values()):
        assert time.time() < deadline, streams
        data = sock.recv(65536)
        assert data, "connection closed early"
        for ev in conn.receive_data(data):
            if isinstance(ev, h2.events.ResponseReceived):
                hd = {k.decode(): v.decode() for k, v in ev.headers}
                streams[ev.stream_id]["status"] = int(hd[":status"])
                streams[ev.stream_id]["enc"] = hd.get("content-encoding", "")
            elif isinstance(ev, h2.events.DataReceived):
                streams[ev.stream_id]["data"] += ev.data
                conn.acknowledge_received_data(ev.flow_controlled_length, ev.stream_id)
            elif isinstance(ev, h2.events.StreamEnded):
                streams[ev.stream_id]["done"] = True
            elif isinstance(ev, h2.events.StreamReset):
                raise AssertionError("stream %d reset" % ev.stream_id)
        out = conn.data_to_send()
        if out:
            sock.sendall(out)
    conn.close_connection()
    sock.sendall(conn.data_to_send())
    sock.close()
    c = sc.new_conn(port)
    for sid in sorted(streams):
        s = streams[sid]
        method, path, body = s["req"]
        entity = decode(s["data"], s["enc"]) if s["enc"] else s["data"]
        extra = ";" + s["enc"] if s["enc"] else ""
        sc.add(c, method, "http://%s%s" % (authority, path), s["status"], body, entity,
               notes + extra)


def sc_h2c_prior(sc):
    post = json.dumps({"user": "ana", "items": list(range(300))}).encode()
    postf = sc.data("h2-post.json", post)
    common = ["--http2-prior-knowledge"]
    # curl: one request per connection (see h2_streams).
    sc.curl([(H2C + "/index.html", ["--compressed"], "http2;h2c;gzip")], common=common)
    sc.curl([(H2C + "/echo", ["--data-binary", "@" + postf, "-H", "Content-Type: application/json"],
              "http2;h2c;post")], common=common)
    sc.curl([(H2C + "/missing.html", [], "http2;h2c;404")], common=common)
    gz = [("accept-encoding", "gzip")]
    h2_streams(sc, 8082, [
        ("GET", "/data/users.json", gz, None),
        ("GET", "/style.css", gz, None),
        ("GET", "/logo.bin", [], None),
        ("POST", "/echo", [("content-type", "application/json")], post),
        ("GET", "/api/items.json", gz, None),
        ("GET", "/big.json", gz, None),
        ("GET", "/nope/404", [], None),
        ("GET", "/robots.txt", [], None),
    ], "http2;h2c;parallel-streams")


def sc_h2c_upgrade(sc):
    post = sc.data("h2-up.bin", bytes(range(256)) * 20)
    common = ["--http2"]
    # One request per connection (curl 7.88 cannot reuse an HTTP/2 connection), each
    # upgraded: the request is HTTP/1.1, its response stream 1 of HTTP/2.
    for url, opts, notes in [(H2UP + "/gzip/9000", ["--compressed"], "http2;upgrade;gzip;multi-segment"),
                             (H2UP + "/text/300", [], "http2;upgrade"),
                             (H2UP + "/echo", ["--data-binary", "@" + post, "-H", "Content-Type: application/octet-stream"], "http2;upgrade;post"),
                             (H2UP + "/nothing", [], "http2;upgrade;404")]:
        sc.curl([(url, opts, notes)], common=common)
    # The h2 server's log: the same streams, statuses and decoded bodies.
    with open(sc.args.server_log) as f:
        log = [l.rstrip("\n").split("\t") for l in f if l.strip()]
    assert len(log) == len(sc.rows), (log, sc.rows)
    for r, (conn, sid, method, path, status, digest) in zip(sc.rows, log):
        assert (method, status) == (r["method"], r["status"]) and r["url"].endswith(path), (r, log)
        assert digest == r["resp_body_sha256"], (r, log)
    sc.args.server_log = None


SCENARIOS = {
    "h2c-prior": sc_h2c_prior, "h2c-upgrade": sc_h2c_upgrade,
    "sse": sc_sse,
    "keepalive": sc_keepalive, "pipelined": sc_pipelined, "chunked-gzip": sc_chunked_gzip,
    "br": sc_br, "zstd": sc_zstd, "deflate": sc_deflate, "stacked": sc_stacked,
    "head": sc_head, "continue-100": sc_continue, "status-204-304": sc_status_204_304,
    "close-delimited": sc_close_delimited, "post-bodies": sc_post_bodies, "ipv6": sc_ipv6,
    "connect-upgrade": sc_connect_upgrade, "big-body": sc_big_body,
    "concurrent": sc_concurrent, "http10": sc_http10,
    "tls13": sc_tls13, "tls12": sc_tls12, "tls-keyupdate": sc_tls_keyupdate, "tls-dsb": sc_tls_dsb,
    "tls-h2": sc_tls_h2, "tls-hrr": sc_tls_hrr,
}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("scenario", choices=sorted(SCENARIOS))
    ap.add_argument("--truth", required=True)
    ap.add_argument("--work", required=True)
    ap.add_argument("--server-log")
    ap.add_argument("--nginx-log")
    ap.add_argument("--nginx-root")
    ap.add_argument("--keys", help="the TLS key log the TLS clients write (NAME.keys)")
    a = ap.parse_args()
    sc = Scenario(a)
    SCENARIOS[a.scenario](sc)
    sc.finish()


if __name__ == "__main__":
    main()
