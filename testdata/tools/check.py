#!/usr/bin/env python3
"""Check every test capture against its truth file with tshark.

    python3 testdata/tools/check.py [NAME...]

An independent reader (tshark, with TCP and HTTP reassembly, de-chunking and
decompression on) must find, for every truth row, an HTTP request with that
method and URL on the connection given by `conn` (tshark's tcp.stream, which
also counts connections in order of appearance) answered with that status,
and the objects it exports (request bodies; response bodies de-chunked and
decoded) must include every digest the truth lists.  tshark 4.0 cannot decode
zstd or stacked codings ("gzip, br"); for those bodies the server's byte
stream as tshark reassembled it is split and decoded here instead.  Rows tagged as damaged (gap, midstream, truncated, snaplen) are
reported but not held to their body digests; tshark is also allowed to see
fewer exchanges there.  Exit status 1 if a capture does not match.
"""

import glob
import hashlib
import os
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.dont_write_bytecode = True
TD = os.path.dirname(HERE)
PREFS = ["-o", "tcp.desegment_tcp_streams:TRUE", "-o", "http.desegment_body:TRUE",
         "-o", "http.dechunk_body:TRUE", "-o", "http.decompress_body:TRUE"]
# tshark leaves out-of-order segments out of reassembly unless told; turning
# that on everywhere would make it wait forever at the hole of missing-segment.
EXTRA = {"reordered": ["-o", "tcp.reassemble_out_of_order:TRUE"]}
SEP = "\x1e"     # between several occurrences of a field in one frame
DAMAGE = ("gap", "midstream", "truncated", "snaplen")


def tshark(path, *args, prefs=None):
    name = os.path.basename(path).rsplit(".", 1)[0]
    prefs = (prefs or PREFS) + EXTRA.get(name, [])
    p = subprocess.run(["tshark", "-r", path, "-2"] + prefs + list(args),
                       capture_output=True, timeout=120)
    return p.stdout.decode("utf-8", "replace")


def read_truth(path):
    with open(path) as f:
        lines = [l.rstrip("\n").split("\t") for l in f if l.strip()]
    return [dict(zip(lines[0], l)) for l in lines[1:]]


def exchanges(path):
    out = tshark(path, "-Y", "http", "-T", "fields", "-E", "separator=\t",
                 "-E", "aggregator=" + SEP,
                 "-e", "frame.number", "-e", "tcp.stream", "-e", "http.request.method",
                 "-e", "http.request.full_uri", "-e", "http.request.uri",
                 "-e", "http.response.code", "-e", "http.request_in")
    reqs, resps = {}, {}
    for line in out.split("\n"):
        f = line.split("\t")
        if len(f) < 7:
            continue
        num, stream, method, full, uri, code, req_in = f[:7]
        if method:
            for m, fu, u in zip(method.split(SEP), full.split(SEP), uri.split(SEP)):
                reqs.setdefault(int(num), []).append([int(stream), m, fu or u, ""])
        if code:
            for c, ri in zip(code.split(SEP), req_in.split(SEP) if req_in else [""]):
                if ri:
                    resps.setdefault(int(ri), []).append(c)
    found = []
    for num in sorted(reqs):
        codes = resps.get(num, [])
        final = [c for c in codes if not (c.startswith("1") and c != "101")]
        for r in reqs[num]:
            r[3] = final[-1] if final else ""
            found.append(tuple(r))
    return found


def exported_digests(path):
    """sha256 of every HTTP object tshark exports (de-chunked and decoded).
    tshark 4.0 decodes neither zstd nor stacked codings ("gzip, br") and
    exports nothing for such bodies: see stream_digests."""
    out = {}
    with tempfile.TemporaryDirectory() as d:
        tshark(path, "-q", "--export-objects", "http," + d)
        for p in glob.glob(os.path.join(d, "*")):
            with open(p, "rb") as f:
                out[hashlib.sha256(f.read()).hexdigest()] = os.path.basename(p)
    return out


def stream_digests(path, stream, methods):
    """Fallback for bodies tshark reassembles but cannot decode: take the
    server's byte stream of one connection as tshark reassembled it
    (follow,tcp,raw), split it into responses and decode them with the
    framing and decoders of client.py."""
    import io
    sys.path.insert(0, HERE)
    import client
    out = tshark(path, "-q", "-z", "follow,tcp,raw,%d" % stream)
    data = b"".join(bytes.fromhex(l.strip()) for l in out.split("\n")
                    if l.startswith("\t") and l.strip())
    c = object.__new__(client.RawConn)
    c.rfile = io.BytesIO(data)
    digests = set()
    for m in methods:
        try:
            r = c.read_response(m)
        except Exception:
            break
        if r.entity is not None:
            digests.add(hashlib.sha256(r.entity).hexdigest())
    return digests


def check(name, path):
    """Compare per connection: the truth's rows of connection N, in order,
    with the requests tshark found on tcp.stream N, in order."""
    truth = read_truth(os.path.join(TD, name + ".truth.tsv"))
    found = exchanges(path)
    digests = exported_digests(path)
    problems = []
    notes = []
    by_stream = {}
    for f in found:
        by_stream.setdefault(f[0], []).append(f)
    by_conn = {}
    for k, row in enumerate(truth):
        by_conn.setdefault(int(row["conn"]), []).append((k, row))
    if sorted(by_stream) != sorted(by_conn):
        problems.append("connections: tshark %s, truth %s" % (sorted(by_stream), sorted(by_conn)))
    for conn, rows in sorted(by_conn.items()):
        got_list = by_stream.get(conn, [])
        fi = 0
        for k, row in rows:
            damaged = [t for t in DAMAGE if t in row["notes"].split(";")]
            match = None
            for j in range(fi, len(got_list)):
                got = got_list[j]
                if got[1] == row["method"] and got[2] == row["url"]:
                    match = j
                    break
                if not damaged:
                    break
            if match is None:
                (notes if damaged else problems).append(
                    "row %d %s %s: not found by tshark%s" % (
                        k, row["method"], row["url"],
                        " (expected: %s)" % ",".join(damaged) if damaged else
                        "; next tshark request on stream %d: %s" % (conn, got_list[fi:fi + 1])))
                continue
            got = got_list[match]
            fi = match + 1
            if got[3] != row["status"]:
                (notes if damaged else problems).append(
                    "row %d %s: tshark status %r, truth %r" % (k, row["url"], got[3],
                                                               row["status"]))
            rsha = row["req_body_sha256"]
            if rsha and rsha not in digests:
                (notes if damaged else problems).append(
                    "row %d %s: request body %s not among tshark's exported objects" % (
                        k, row["url"], rsha[:12]))
            sha = row["resp_body_sha256"]
            if sha and sha not in digests and not damaged:
                extra = stream_digests(path, conn, [r["method"] for _, r in rows])
                if sha in extra:
                    notes.append("row %d %s: body decoded by check.py from tshark's "
                                 "reassembled stream (tshark cannot decode %s)" % (
                                     k, row["url"], row["notes"].split(";")[0]))
                    continue
            if sha and sha not in digests:
                (notes if damaged else problems).append(
                    "row %d %s: decoded body %s not among tshark's exported objects" % (
                        k, row["url"], sha[:12]))
        if fi < len(got_list):
            problems.append("stream %d: tshark found more requests than the truth: %s" % (
                conn, got_list[fi:]))
    return problems, notes, len(found)


def main():
    names = sys.argv[1:] or sorted(
        os.path.basename(p).rsplit(".", 2)[0]
        for p in glob.glob(os.path.join(TD, "*.truth.tsv")))
    bad = 0
    for name in names:
        if name.startswith("h2c-"):
            # HTTP/2: checked against tshark by tests/h2_tshark.rs (this script reads HTTP/1).
            print("%-22s skipped  (HTTP/2, see tests/h2_tshark.rs)" % (name + ".pcap"))
            continue
        path = [p for p in (os.path.join(TD, name + ".pcap"), os.path.join(TD, name + ".pcapng"))
                if os.path.exists(p)][0]
        problems, notes, n = check(name, path)
        status = "ok" if not problems else "MISMATCH"
        print("%-22s %-8s tshark found %d requests" % (os.path.basename(path), status, n))
        for p in problems:
            print("    problem:", p)
        for p in notes:
            print("    %s %s" % ("note:" if "check.py" in p else "damaged as intended:", p))
        bad += bool(problems)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
