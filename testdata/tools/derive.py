#!/usr/bin/env python3
"""Build apitool's derived test captures from the recorded ones.

    python3 testdata/tools/derive.py

Standard library only; reads and writes pcap and pcapng itself.  The output
depends only on the recorded captures and truth files, and every choice
(which segment is dropped, swapped, duplicated, fragmented) is a constant
below, stated relative to the exchanges of the source capture (e.g. "the
third data segment of the response of exchange 2"), so it stays meaningful
when the sources are re-recorded.

Each derived capture gets a truth file made from its source's truth.  Rows
stay as recorded unless the damage touches them; a damaged exchange keeps its
row and gets a tag in `notes`:
  gap        part of the response body is missing from the capture
  midstream  the capture starts inside this exchange (its start is missing)
  truncated  the file ends inside this exchange
  snaplen    frames are cut short: method/URL/status are present, the
             bodies are not (body columns give the real, uncaptured body)
and informational tags for damage that a converter must survive without a
change of result (reordered, retransmitted, ...).
"""

import os
import struct
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
TD = os.path.dirname(HERE)

LINKTYPE_NULL = 0
LINKTYPE_ETHERNET = 1
LINKTYPE_RAW = 101
LINKTYPE_LOOP = 108
LINKTYPE_LINUX_SLL = 113
LINKTYPE_LINUX_SLL2 = 276

SERVER_PORTS = (8080, 8081, 8082, 8083, 8084)
METHODS = (b"GET ", b"POST ", b"HEAD ", b"PUT ", b"DELETE ", b"CONNECT ", b"OPTIONS ",
            b"PATCH ")


# ---------------------------------------------------------------- pcap I/O

class Rec:
    """One captured frame: timestamp in ns, captured bytes, original length."""
    __slots__ = ("ts", "data", "orig")

    def __init__(self, ts, data, orig=None):
        self.ts, self.data = ts, bytes(data)
        self.orig = len(data) if orig is None else orig

    def copy(self, **kw):
        r = Rec(self.ts, self.data, self.orig)
        for k, v in kw.items():
            setattr(r, k, v)
        if r.orig is None:
            r.orig = len(r.data)
        return r


def read_pcap(path):
    with open(path, "rb") as f:
        buf = f.read()
    magic = buf[:4]
    table = {b"\xd4\xc3\xb2\xa1": ("<", 1000), b"\xa1\xb2\xc3\xd4": (">", 1000),
             b"\x4d\x3c\xb2\xa1": ("<", 1), b"\xa1\xb2\x3c\x4d": (">", 1)}
    if magic not in table:
        raise ValueError("%s: not a pcap file" % path)
    e, mult = table[magic]
    _, _, _, _, snaplen, linktype = struct.unpack(e + "HHiIII", buf[4:24])
    recs = []
    off = 24
    while off + 16 <= len(buf):
        sec, frac, incl, orig = struct.unpack(e + "IIII", buf[off:off + 16])
        data = buf[off + 16:off + 16 + incl]
        if len(data) < incl:
            break
        recs.append(Rec(sec * 1_000_000_000 + frac * mult, data, orig))
        off += 16 + incl
    return linktype & 0xFFFF, recs


def write_pcap(path, linktype, recs, nsec=False, big=False, snaplen=262144, cut_last=None):
    """cut_last: write only this many bytes of the last record (a torn file)."""
    e = ">" if big else "<"
    magic = 0xA1B23C4D if nsec else 0xA1B2C3D4
    out = bytearray(struct.pack(e + "IHHiIII", magic, 2, 4, 0, 0, snaplen, linktype))
    for i, r in enumerate(recs):
        sec, ns = divmod(r.ts, 1_000_000_000)
        frac = ns if nsec else ns // 1000
        rec = struct.pack(e + "IIII", sec, frac, len(r.data), r.orig) + r.data
        if cut_last is not None and i == len(recs) - 1:
            rec = rec[:cut_last]
        out += rec
    with open(path, "wb") as f:
        f.write(out)


def pad4(b):
    return b + b"\0" * (-len(b) % 4)


def ng_option(code, value):
    return struct.pack("<HH", code, len(value)) + pad4(value)


def ng_block(btype, body):
    n = 12 + len(body)
    return struct.pack("<II", btype, n) + body + struct.pack("<I", n)


def write_pcapng(path, interfaces, packets, comment=None):
    """interfaces: list of (linktype, name, tsresol) with tsresol None (µs,
    the default) or 9 (ns).  packets: list of (interface index, Rec)."""
    opts = b""
    if comment:
        opts += ng_option(1, comment.encode())
    opts += ng_option(4, b"apitool testdata/tools/derive.py") + ng_option(0, b"")
    out = bytearray(ng_block(0x0A0D0D0A, struct.pack("<IHHq", 0x1A2B3C4D, 1, 0, -1) + opts))
    units = []
    for linktype, name, tsresol in interfaces:
        o = ng_option(2, name.encode())
        if tsresol is not None:
            o += ng_option(9, bytes([tsresol]))
        o += ng_option(0, b"")
        out += ng_block(1, struct.pack("<HHI", linktype, 0, 262144) + o)
        units.append(1 if tsresol == 9 else 1000)
    for ifidx, r in packets:
        t = r.ts // units[ifidx]
        body = struct.pack("<IIIII", ifidx, t >> 32, t & 0xFFFFFFFF, len(r.data), r.orig)
        out += ng_block(6, body + pad4(r.data))
    with open(path, "wb") as f:
        f.write(out)


# ---------------------------------------------------------------- packets

def csum(data):
    if len(data) % 2:
        data += b"\0"
    s = sum(struct.unpack("!%dH" % (len(data) // 2), data))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF


class Pkt:
    """Parsed Ethernet/IP/TCP frame (only what the derivations need)."""

    def __init__(self, frame):
        self.frame = frame
        self.ethertype = struct.unpack("!H", frame[12:14])[0]
        self.l3 = 14
        ip = frame[14:]
        self.tcp = None
        if self.ethertype == 0x0800:
            ihl = (ip[0] & 0x0F) * 4
            total = struct.unpack("!H", ip[2:4])[0]
            self.src, self.dst = ip[12:16], ip[16:20]
            proto, l4, end = ip[9], ihl, total
        elif self.ethertype == 0x86DD:
            self.src, self.dst = ip[8:24], ip[24:40]
            proto, l4, end = ip[6], 40, 40 + struct.unpack("!H", ip[4:6])[0]
        else:
            return
        if proto != 6:
            return
        t = ip[l4:end]
        self.sport, self.dport, self.seq, self.ack = struct.unpack("!HHII", t[:12])
        doff = (t[12] >> 4) * 4
        self.flags = t[13]
        self.tcp = 14 + l4
        self.payload = t[doff:]
        self.payload_off = 14 + l4 + doff

    @property
    def to_server(self):
        return self.dport in SERVER_PORTS

    @property
    def conn(self):
        if self.to_server:
            return (self.src, self.sport, self.dst, self.dport)
        return (self.dst, self.dport, self.src, self.sport)


def fix_ipv4(frame):
    """Recompute IPv4 total length, header checksum and TCP checksum of an
    Ethernet frame whose TCP segment was edited."""
    f = bytearray(frame)
    ihl = (f[14] & 0x0F) * 4
    total = len(f) - 14
    f[16:18] = struct.pack("!H", total)
    f[24:26] = b"\0\0"
    f[24:26] = struct.pack("!H", csum(bytes(f[14:14 + ihl])))
    seg = f[14 + ihl:]
    seg[16:18] = b"\0\0"
    pseudo = bytes(f[26:34]) + struct.pack("!BBH", 0, 6, len(seg))
    seg[16:18] = struct.pack("!H", csum(pseudo + bytes(seg)))
    f[14 + ihl:] = seg
    return bytes(f)


def with_payload(frame, seq, payload):
    """Copy of an IPv4 TCP data frame carrying `payload` at sequence `seq`."""
    p = Pkt(frame)
    head = bytearray(frame[:p.payload_off])
    head[p.tcp + 4:p.tcp + 8] = struct.pack("!I", seq)
    return fix_ipv4(bytes(head) + payload)


def strip_tcp_options(frame):
    p = Pkt(frame)
    if p.tcp is None or p.ethertype != 0x0800:
        return frame
    f = bytearray(frame[:p.tcp + 20])
    f[p.tcp + 12] = (5 << 4) | (f[p.tcp + 12] & 0x0F)
    return fix_ipv4(bytes(f) + p.payload)


def ip_packet(frame):
    """The IP packet inside an Ethernet frame (without Ethernet padding)."""
    p = Pkt(frame)
    ip = frame[14:]
    if p.ethertype == 0x0800:
        return ip[:struct.unpack("!H", ip[2:4])[0]], 0x0800
    return ip[:40 + struct.unpack("!H", ip[4:6])[0]], 0x86DD


# ---------------------------------------------------------------- exchanges

class Capture:
    """A recorded capture with its frames grouped per connection/exchange."""

    def __init__(self, name):
        self.name = name
        lt, self.recs = read_pcap(os.path.join(TD, name + ".pcap"))
        assert lt == LINKTYPE_ETHERNET, name
        self.pkts = [Pkt(r.data) for r in self.recs]
        self.truth_header, self.truth = read_truth(name)
        conns = []
        for p in self.pkts:
            if p.tcp is not None and p.flags & 0x02 and not p.flags & 0x10:   # SYN
                if p.conn not in conns:
                    conns.append(p.conn)
        self.conns = conns

    def data_frames(self, conn_idx=0):
        key = self.conns[conn_idx]
        return [i for i, p in enumerate(self.pkts)
                if p.tcp is not None and p.conn == key and p.payload]

    def exchanges(self, conn_idx=0):
        """Sequential (non-pipelined) exchanges of one connection:
        list of (request frame indices, response frame indices)."""
        out = []
        for i in self.data_frames(conn_idx):
            p = self.pkts[i]
            if p.to_server:
                if p.payload.startswith(METHODS) or not out:
                    out.append(([], []))
                out[-1][0].append(i)
            else:
                out[-1][1].append(i)
        return out

    def syn_times(self):
        out = []
        for c in self.conns:
            out.append(min(self.recs[i].ts for i, p in enumerate(self.pkts)
                           if p.tcp is not None and p.conn == c))
        return out


def read_truth(name):
    with open(os.path.join(TD, name + ".truth.tsv")) as f:
        lines = [l.rstrip("\n").split("\t") for l in f if l.strip()]
    header = lines[0]
    return header, [dict(zip(header, l)) for l in lines[1:]]


def write_truth(name, header, rows):
    with open(os.path.join(TD, name + ".truth.tsv"), "w") as f:
        f.write("\t".join(header) + "\n")
        for r in rows:
            f.write("\t".join(str(r[c]) for c in header) + "\n")


def tag(row, t):
    row = dict(row)
    row["notes"] = t if not row["notes"] else row["notes"] + ";" + t
    return row


def save(name, linktype, recs, header, rows, **kw):
    write_pcap(os.path.join(TD, name + ".pcap"), linktype, recs, **kw)
    write_truth(name, header, rows)


# ---------------------------------------------------------------- damage

def reordered(src):
    """keepalive: within the multi-segment responses of exchanges 1 and 2,
    server data segments delivered out of order (timestamps stay with the
    position in the file, as a capture of a reordering network would show)."""
    ex = src.exchanges()
    r1, r2 = ex[1][1], ex[2][1]
    order = list(range(len(src.recs)))
    swaps = [(r1[1], r1[2]),                 # exchange 1: segments 1 and 2 swapped
             (r2[2], r2[5])]                 # exchange 2: segment 5 overtakes 2..4
    for a, b in swaps:
        order[a], order[b] = order[b], order[a]
    recs = [src.recs[j].copy(ts=src.recs[i].ts) for i, j in enumerate(order)]
    rows = [tag(r, "reordered") if k in (1, 2) else r for k, r in enumerate(src.truth)]
    save("reordered", LINKTYPE_ETHERNET, recs, src.truth_header, rows)


def retransmitted(src):
    """keepalive: duplicates of data segments arriving later.
    - exchange 1, response segment 1: exact copy after response segment 3;
    - exchange 2, response segment 2: bytes 100..499 sent again after response
      segment 4 with *different* contents (a conflicting overlap; the bytes
      received first are the real ones, as for a receiving TCP stack);
    - exchange 3, request: exact copy right after the original."""
    ex = src.exchanges()
    extra = {}
    a = ex[1][1]
    extra.setdefault(a[3], []).append(src.recs[a[1]].data)
    b = ex[2][1]
    p = src.pkts[b[2]]
    bogus = bytes(x ^ 0x5A for x in p.payload[100:500])
    extra.setdefault(b[4], []).append(with_payload(p.frame, (p.seq + 100) & 0xFFFFFFFF, bogus))
    c = ex[3][0][0]
    extra.setdefault(c, []).append(src.recs[c].data)
    recs = []
    for i, r in enumerate(src.recs):
        recs.append(r)
        for k, d in enumerate(extra.get(i, [])):
            recs.append(Rec(r.ts + 1000 * (k + 1), d))
    rows = [tag(r, "retransmitted") if k in (1, 2, 3) else r for k, r in enumerate(src.truth)]
    rows[2] = tag(rows[2], "conflicting-overlap")
    save("retransmitted", LINKTYPE_ETHERNET, fix_order(recs), src.truth_header, rows)


def acks_before_data(src):
    """keepalive: the response segments of exchanges 1 and 2 and the request of
    exchange 3 each come right after the peer's bare acknowledgment of them
    (when there is one before the peer's next data), as a
    capture taken where the two directions are recorded by different queues
    shows (timestamps stay with the position in the file). Every byte is in
    the file: all four exchanges must be exact."""
    ex = src.exchanges()
    moving = ex[1][1] + ex[2][1] + ex[3][0]
    order = list(range(len(src.recs)))
    for i in moving:
        p = src.pkts[i]
        end = (p.seq + len(p.payload)) & 0xFFFFFFFF
        pos = order.index(i)
        for k in range(pos + 1, len(order)):
            q = src.pkts[order[k]]
            if q.tcp is None or q.to_server == p.to_server:
                continue
            if q.payload:
                break           # only past a bare acknowledgment, not past the peer's data
            if q.flags & 0x10 and ((q.ack - end) & 0xFFFFFFFF) < 0x80000000:
                order.insert(k, order.pop(pos))
                break
    recs = [src.recs[j].copy(ts=src.recs[i].ts) for i, j in enumerate(order)]
    rows = [tag(r, "acks-before-data") if k in (1, 2, 3) else r for k, r in enumerate(src.truth)]
    save("acks-before-data", LINKTYPE_ETHERNET, recs, src.truth_header, rows)


def delayed_direction(src):
    """keepalive: every server data segment of exchange 2 (logo.bin, 12000
    bytes) comes six records later than it was sent, behind the client's
    acknowledgments of it (a capture merged from two interfaces)."""
    late = set(src.exchanges()[2][1])
    keys = [(i + 6.5 if i in late else i, i) for i in range(len(src.recs))]
    order = [i for _, i in sorted(keys)]
    recs = [src.recs[j].copy(ts=src.recs[i].ts) for i, j in enumerate(order)]
    rows = [tag(r, "delayed") if k == 2 else r for k, r in enumerate(src.truth)]
    save("delayed-direction", LINKTYPE_ETHERNET, recs, src.truth_header, rows)


def stray_synack(src):
    """keepalive: after response segment 1 of exchange 1 the server sends a
    second SYN-ACK with another initial sequence number, which the client
    ignores (its acknowledgments stay in the old sequence space, and so does
    the server's data). The connection goes on: all four exchanges exact."""
    synack = next(i for i, p in enumerate(src.pkts) if p.tcp is not None and p.flags & 0x12 == 0x12)
    p = src.pkts[synack]
    stray = with_payload(p.frame, (p.seq + 0x12345678) & 0xFFFFFFFF, b"")
    at = src.exchanges()[1][1][1]
    recs = []
    for i, r in enumerate(src.recs):
        recs.append(r)
        if i == at:
            recs.append(Rec(r.ts + 1000, stray))
    rows = [tag(r, "stray-synack") if k >= 1 else r for k, r in enumerate(src.truth)]
    save("stray-synack", LINKTYPE_ETHERNET, fix_order(recs), src.truth_header, rows)


def pipelined_swapped(src):
    """pipelined: the server's data segments swapped pairwise (1st with 2nd, 3rd
    with 4th, ...), each pair's acknowledgments left where they were, so the
    client's ACK of a segment often comes before the segment. Every byte is in
    the file: all three exchanges must be exact."""
    data = [i for i, p in enumerate(src.pkts) if p.tcp is not None and not p.to_server and p.payload]
    order = list(range(len(src.recs)))
    for a, b in zip(data[0::2], data[1::2]):
        order[a], order[b] = order[b], order[a]
    recs = [src.recs[j].copy(ts=src.recs[i].ts) for i, j in enumerate(order)]
    rows = [tag(r, "reordered") for r in src.truth]
    save("pipelined-swapped", LINKTYPE_ETHERNET, recs, src.truth_header, rows)


def pipelined_gap(src):
    """pipelined: the segment with the head of the second response (POST
    /echo) is lost; its body segment is there. The third response must land on
    the third request (not on the second), and the second is output without a
    response."""
    heads = [i for i, p in enumerate(src.pkts)
             if p.tcp is not None and not p.to_server and p.payload.startswith(b"HTTP/1.")]
    assert len(heads) == 3, heads
    recs = [r for i, r in enumerate(src.recs) if i != heads[1]]
    rows = [tag(r, "gap") if k == 1 else r for k, r in enumerate(src.truth)]
    save("pipelined-gap", LINKTYPE_ETHERNET, recs, src.truth_header, rows)


def fix_order(recs):
    """Keep timestamps non-decreasing after insertions."""
    out = []
    last = 0
    for r in recs:
        t = max(r.ts, last)
        out.append(r.copy(ts=t))
        last = t
    return out


def missing_segment(src):
    """keepalive: response segment 3 of exchange 2 (logo.bin, 12000 bytes,
    Content-Length framed) is lost: that body has a 1448-byte gap; exchange 3
    on the same connection must still be recovered."""
    drop = src.exchanges()[2][1][3]
    recs = [r for i, r in enumerate(src.recs) if i != drop]
    rows = [tag(r, "gap") if k == 2 else r for k, r in enumerate(src.truth)]
    save("missing-segment", LINKTYPE_ETHERNET, recs, src.truth_header, rows)


def midstream(src):
    """keepalive: the capture starts at response segment 3 of exchange 1: the
    handshake, exchange 0 and the start of exchange 1 (request, response head,
    first segments) are missing.  Exchange 0 is dropped from the truth,
    exchange 1 is tagged midstream, exchanges 2 and 3 must be complete."""
    start = src.exchanges()[1][1][3]
    recs = src.recs[start:]
    rows = [tag(src.truth[1], "midstream")] + src.truth[2:]
    save("midstream", LINKTYPE_ETHERNET, recs, src.truth_header, rows)


def truncated_file(src):
    """keepalive: the file ends in the middle of the record holding the
    first response segment of exchange 3 (its record header is complete,
    its data is cut at half): rows 0-2 complete, row 3 truncated."""
    cut = src.exchanges()[3][1][0]
    recs = src.recs[:cut + 1]
    rows = src.truth[:3] + [tag(src.truth[3], "truncated")]
    save("truncated-file", LINKTYPE_ETHERNET, recs, src.truth_header, rows,
         cut_last=16 + len(recs[-1].data) // 2)


def snaplen(src):
    """keepalive with every frame cut to 200 captured bytes (orig len kept)."""
    recs = [r.copy(data=r.data[:200]) for r in src.recs]
    rows = [tag(r, "snaplen") for r in src.truth]
    save("snaplen", LINKTYPE_ETHERNET, recs, src.truth_header, rows, snaplen=200)


def h2_frames_at(payload):
    """Whether an HTTP/2 frame header starts the payload, followed by another one."""
    def plausible(b):
        if len(b) < 9:
            return False
        n = int.from_bytes(b[:3], "big")
        return b[3] <= 9 and n <= 16384
    if not plausible(payload):
        return False
    n = int.from_bytes(payload[:3], "big")
    return plausible(payload[9 + n:])


def h2c_midstream(src):
    """h2c-prior, its fourth connection only (eight streams at once on one connection),
    from the first server segment after the 10th of that connection's data frames that
    starts with two frame headers: the handshake, the preface, every request's HEADERS and
    the server's first responses are missing, and both HPACK tables are unknown. Every row
    of that connection is tagged midstream (conn renumbered 0); the other connections are
    dropped."""
    frames = src.data_frames(3)
    start = next(i for i in frames[10:] if not src.pkts[i].to_server
                 and h2_frames_at(src.pkts[i].payload))
    key = src.conns[3]
    recs = [r for i, (r, p) in enumerate(zip(src.recs, src.pkts))
            if i >= start and p.tcp is not None and p.conn == key]
    rows = [tag(dict(r, conn=0), "midstream") for r in src.truth if r["conn"] == "3"]
    save("h2c-midstream", LINKTYPE_ETHERNET, recs, src.truth_header, rows)


# ---------------------------------------------------------------- file formats

def formats(src):
    """chunked-gzip in other pcap flavours.  Nanosecond files get the
    microsecond timestamps scaled by 1000 plus the frame index in ns, so the
    sub-microsecond digits are not all zero."""
    ns = [r.copy(ts=r.ts + (i % 1000)) for i, r in enumerate(src.recs)]
    save("nsec", LINKTYPE_ETHERNET, ns, src.truth_header, src.truth, nsec=True)
    save("bigendian", LINKTYPE_ETHERNET, src.recs, src.truth_header, src.truth, big=True)
    save("bigendian-nsec", LINKTYPE_ETHERNET, ns, src.truth_header, src.truth,
         nsec=True, big=True)


def encapsulations(src):
    """post-bodies re-encapsulated: 802.1Q, QinQ, Linux cooked v1/v2, BSD
    null/loop, raw IP."""
    def each(fn):
        return [r.copy(data=fn(r.data), orig=None) for r in src.recs]

    def vlan(d):
        return d[:12] + struct.pack("!HH", 0x8100, 100) + d[12:]

    def qinq(d):
        return d[:12] + struct.pack("!HHHH", 0x88A8, 200, 0x8100, 100) + d[12:]

    def sll(d):
        ip, et = ip_packet(d)
        return struct.pack("!HHH", 0, 772, 6) + d[6:12] + b"\0\0" + struct.pack("!H", et) + ip

    def sll2(d):
        ip, et = ip_packet(d)
        return struct.pack("!HHIHBB", et, 0, 1, 772, 0, 6) + d[6:12] + b"\0\0" + ip

    def null(d):
        ip, et = ip_packet(d)
        return struct.pack("<I", 2 if et == 0x0800 else 10) + ip     # file is little-endian

    def loop(d):
        ip, et = ip_packet(d)
        return struct.pack("!I", 2 if et == 0x0800 else 10) + ip

    def raw(d):
        return ip_packet(d)[0]

    h, t = src.truth_header, src.truth
    save("vlan", LINKTYPE_ETHERNET, each(vlan), h, t)
    save("qinq", LINKTYPE_ETHERNET, each(qinq), h, t)
    save("sll", LINKTYPE_LINUX_SLL, each(sll), h, t)
    save("sll2", LINKTYPE_LINUX_SLL2, each(sll2), h, t)
    save("null", LINKTYPE_NULL, each(null), h, t)
    save("loop", LINKTYPE_LOOP, each(loop), h, t)
    save("rawip", LINKTYPE_RAW, each(raw), h, t)


PAD = bytes([0xA5, 0x5A, 0xC3, 0x3C, 0xFF, 0x01] * 11)


def eth_padding(src):
    """chunked-gzip with TCP options removed (so pure ACKs and the 5-byte
    final chunk "0\\r\\n\\r\\n" make frames under 60 bytes), every short frame
    padded to the Ethernet minimum of 60 bytes with nonzero bytes.  IP total
    length tells payload from padding."""
    recs = []
    for r in src.recs:
        d = strip_tcp_options(r.data)
        if len(d) < 60:
            d += PAD[:60 - len(d)]
        recs.append(r.copy(data=d, orig=len(d)))
    rows = [tag(r, "eth-padding") for r in src.truth]
    save("eth-padding", LINKTYPE_ETHERNET, recs, src.truth_header, rows)


def fragment(frame, ident, size=480):
    """Split an IPv4 frame into fragments of `size` payload bytes."""
    ip, _ = ip_packet(frame)
    ihl = (ip[0] & 0x0F) * 4
    hdr, payload = bytearray(ip[:ihl]), ip[ihl:]
    out = []
    for off in range(0, len(payload), size):
        part = payload[off:off + size]
        more = off + size < len(payload)
        h = bytearray(hdr)
        h[2:4] = struct.pack("!H", ihl + len(part))
        h[4:6] = struct.pack("!H", ident)
        h[6:8] = struct.pack("!H", (0x2000 if more else 0) | (off // 8))
        h[10:12] = b"\0\0"
        h[10:12] = struct.pack("!H", csum(bytes(h)))
        out.append(frame[:14] + bytes(h) + part)
    return out


def ipv4_fragments(src):
    """post-bodies: every data segment of 1000+ bytes at an even position in
    the list of such segments is sent as IPv4 fragments of 480 bytes (DF
    cleared, fresh IP ID); the first fragmented packet's fragments are
    delivered in reverse order."""
    big = [i for i, p in enumerate(src.pkts) if p.tcp is not None and len(p.payload) >= 1000]
    chosen = big[::2]
    recs = []
    for i, r in enumerate(src.recs):
        if i not in chosen:
            recs.append(r)
            continue
        frags = fragment(r.data, 0x4000 + chosen.index(i))
        if i == chosen[0]:
            frags.reverse()
        for k, d in enumerate(frags):
            recs.append(Rec(r.ts + k, d))
    rows = [tag(r, "ip-fragments") for r in src.truth]
    save("ipv4-fragments", LINKTYPE_ETHERNET, fix_order(recs), src.truth_header, rows)


# ---------------------------------------------------------------- pcapng

def two_interfaces(a, b):
    """pcapng, interface 0 = Ethernet (µs, default if_tsresol) carrying `a`,
    interface 1 = Linux SLL2 with if_tsresol 9 (ns) carrying `b`, shifted in
    time to start 300 µs after `a` so that the two are interleaved, merged by
    timestamp.  Truth: both truths, connections renumbered in order of
    opening in the merged file."""
    shift = a.recs[0].ts + 300_000 - b.recs[0].ts
    bsub = [(r.ts + shift) + (i % 1000) for i, r in enumerate(b.recs)]

    def sll2(d):
        ip, et = ip_packet(d)
        return struct.pack("!HHIHBB", et, 0, 1, 772, 0, 6) + d[6:12] + b"\0\0" + ip

    packets = [(0, r) for r in a.recs] + \
              [(1, Rec(t, sll2(r.data))) for t, r in zip(bsub, b.recs)]
    packets.sort(key=lambda x: (x[1].ts, x[0]))
    opened = sorted([(t, 0, i) for i, t in enumerate(a.syn_times())] +
                    [(t + shift, 1, i) for i, t in enumerate(b.syn_times())])
    renum = {(src, i): n for n, (_, src, i) in enumerate(opened)}
    assert not set(a.conns) & set(b.conns), "same 4-tuple in both recordings"
    rows = [dict(r, conn=renum[(0, int(r["conn"]))], notes=r["notes"] + ";iface0")
            for r in a.truth] + \
           [dict(r, conn=renum[(1, int(r["conn"]))], notes=r["notes"] + ";iface1")
            for r in b.truth]
    rows.sort(key=lambda r: int(r["conn"]))
    write_pcapng(os.path.join(TD, "two-interfaces.pcapng"),
                 [(LINKTYPE_ETHERNET, "eth0", None), (LINKTYPE_LINUX_SLL2, "any", 9)],
                 packets, comment="%s.pcap on interface 0, %s.pcap on interface 1"
                 % (a.name, b.name))
    write_truth("two-interfaces", a.truth_header, rows)


def simple_ng(src):
    """pcapng with one Ethernet interface and Enhanced Packet Blocks."""
    write_pcapng(os.path.join(TD, "simple.pcapng"), [(LINKTYPE_ETHERNET, "lo", None)],
                 [(0, r) for r in src.recs], comment="%s.pcap as pcapng" % src.name)
    write_truth("simple", src.truth_header, src.truth)


def runs(src, conn_idx, to_server, length):
    """Runs of at least `length` consecutive data frames of one direction of a connection
    (a message longer than a segment), as lists of frame indices."""
    out, cur = [], []
    for i in src.data_frames(conn_idx):
        if src.pkts[i].to_server == to_server:
            cur.append(i)
            continue
        if len(cur) >= length:
            out.append(cur)
        cur = []
    if len(cur) >= length:
        out.append(cur)
    return out


def ws_gap(src):
    """ws: three segments lost. Connection 0 (permessage-deflate with context takeover): the
    second segment of the first server message longer than two segments (the compressed
    30 KB text echo): that message is damaged, and compressed history is lost for the
    messages after it. Connection 2 (no compression): a segment in the middle of the
    server's first message of ten segments or more (30 KB), inside its payload (the framing
    holds); and the first segment of the client's first such message, which holds its frame
    header (the framing is lost and must be found again). The messages are those of
    ws.messages.tsv; the tests check that every message of the HAR is one of them or marked
    damaged."""
    drop = {runs(src, 0, False, 3)[0][1], runs(src, 2, False, 10)[0][5], runs(src, 2, True, 10)[0][0]}
    recs = [r for i, r in enumerate(src.recs) if i not in drop]
    rows = [tag(r, "gap") if r["conn"] in ("0", "2") else r for r in src.truth]
    save("ws-gap", LINKTYPE_ETHERNET, recs, src.truth_header, rows)
    with open(os.path.join(TD, "ws.messages.tsv")) as f, open(os.path.join(TD, "ws-gap.messages.tsv"), "w") as g:
        g.write(f.read())


def main():
    ws_gap(Capture("ws"))
    keepalive = Capture("keepalive")
    ex = keepalive.exchanges()
    assert len(ex) == 4 and len(keepalive.conns) == 1, "unexpected keepalive.pcap"
    assert len(ex[1][1]) >= 4 and len(ex[2][1]) >= 6, [len(e[1]) for e in ex]
    reordered(keepalive)
    retransmitted(keepalive)
    missing_segment(keepalive)
    midstream(keepalive)
    truncated_file(keepalive)
    snaplen(keepalive)
    acks_before_data(keepalive)
    delayed_direction(keepalive)
    stray_synack(keepalive)
    pipelined = Capture("pipelined")
    pipelined_gap(pipelined)
    pipelined_swapped(pipelined)
    chunked = Capture("chunked-gzip")
    formats(chunked)
    eth_padding(chunked)
    posts = Capture("post-bodies")
    encapsulations(posts)
    ipv4_fragments(posts)
    two_interfaces(Capture("br"), Capture("zstd"))
    simple_ng(Capture("head"))
    h2c_midstream(Capture("h2c-prior"))


if __name__ == "__main__":
    sys.exit(main())
