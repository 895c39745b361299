//! Hostile captures for tests: each [`Mode`] writes a small or large
//! capture that a bounded, careful reader must survive (caps hit, anomalies
//! reported, no panic, no unbounded memory). Everything streams to the
//! sink; sizes are parameters ([`AdvParams`]).
//!
//! Truth records are emitted as for ordinary traffic, with
//! `impairment = adversarial`. `recoverable` says whether the bytes on the
//! wire are complete and the HTTP framing is unambiguous (a reader without
//! caps could rebuild the exchange); it is false for conflicting overlaps
//! and for malformed or contradictory framing.

use std::io::{self, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use sha2::{Digest, Sha256};

use super::http::{self, empty_sha256, sha256};
use super::pcap::PacketSink;
use super::rng::Rng;
use super::tcp::{Dir, TcpConfig, TcpConn};
use super::{Impairment, Summary, TruthRecord, client_addr};

/// The adversarial captures.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// `count` SYN-only flows, each its own 4-tuple (default 1 000 000).
    SynFlood,
    /// One connection whose response arrives as `count` 100-byte segments
    /// in a random order (default 100 000).
    OutOfOrder,
    /// One connection with overlapping retransmissions that disagree with
    /// the original bytes, some arriving before the originals.
    Overlap,
    /// Request and response bodies that cross the 2^32 sequence wrap.
    SeqWrap,
    /// gzip response of `size` zero bytes (default 4 GiB) in ~4 MB, then an ordinary
    /// exchange on the same keep-alive connection; `count` such connections (default 1),
    /// their packets interleaved.
    GzipBomb,
    /// brotli response of `size` zero bytes (default 4 GiB), as [`Mode::GzipBomb`].
    BrBomb,
    /// zstd response of `size` zero bytes (default 4 GiB) in ~130 KB, as [`Mode::GzipBomb`].
    ZstdBomb,
    /// A request header line of `size` bytes (default 1 MiB).
    HugeHeader,
    /// A request and a response with `count` headers each (default 100 000).
    ManyHeaders,
    /// Chunk sizes that overflow 64 bits (and one that is exactly 2^64-1).
    ChunkOverflow,
    /// Negative, huge, and duplicated conflicting Content-Length values.
    BadContentLength,
    /// Transfer-Encoding together with Content-Length (request and response).
    TeCl,
}

/// All modes with their names.
pub const MODES: &[(&str, Mode)] = &[
    ("syn-flood", Mode::SynFlood),
    ("ooo", Mode::OutOfOrder),
    ("overlap", Mode::Overlap),
    ("seq-wrap", Mode::SeqWrap),
    ("gzip-bomb", Mode::GzipBomb),
    ("br-bomb", Mode::BrBomb),
    ("zstd-bomb", Mode::ZstdBomb),
    ("huge-header", Mode::HugeHeader),
    ("many-headers", Mode::ManyHeaders),
    ("chunk-overflow", Mode::ChunkOverflow),
    ("bad-content-length", Mode::BadContentLength),
    ("te-cl", Mode::TeCl),
];

impl Mode {
    pub fn from_name(name: &str) -> Option<Mode> {
        MODES.iter().find(|(n, _)| *n == name).map(|(_, m)| *m)
    }

    pub fn name(self) -> &'static str {
        MODES.iter().find(|(_, m)| *m == self).map(|(n, _)| *n).unwrap_or("?")
    }
}

/// Parameters; 0 means "the mode's default".
#[derive(Clone, Copy, Debug, Default)]
pub struct AdvParams {
    pub seed: u64,
    /// Flows, segments or headers.
    pub count: u64,
    /// Decoded bomb size or header line length, in bytes.
    pub size: u64,
    /// Capture interfaces to spread flows over.
    pub interfaces: u32,
}

const START: u64 = 1_700_000_000_000_000_000;

struct Adv<'a, S: PacketSink + ?Sized> {
    sink: &'a mut S,
    truth: &'a mut dyn FnMut(&TruthRecord) -> io::Result<()>,
    summary: Summary,
    next_id: u64,
    ts: u64,
    rng: Rng,
    interfaces: u32,
    /// Position on its connection of the next exchange recorded.
    exchange: u32,
}

impl<S: PacketSink + ?Sized> Adv<'_, S> {
    fn conn(&mut self, mss: usize) -> (u64, TcpConn) {
        let id = self.next_id;
        self.next_id += 1;
        let cfg = TcpConfig { mss, rtt_ns: 10_000_000, ..TcpConfig::default() };
        let c = TcpConn::new(
            client_addr(id, false),
            SocketAddr::new(IpAddr::V4(Ipv4Addr::new(203, 0, 113, 10)), 80),
            (id % u64::from(self.interfaces.max(1))) as u32,
            cfg,
            self.rng.next_u32(),
            self.rng.next_u32(),
        );
        self.summary.connections += 1;
        (id, c)
    }

    fn drain(&mut self, c: &mut TcpConn) -> io::Result<()> {
        while c.emit_next(self.sink)? {}
        self.ts = c.last_ts() + 1_000_000;
        Ok(())
    }

    #[allow(clippy::too_many_arguments)]
    fn record(
        &mut self,
        id: u64,
        c: &TcpConn,
        method: &str,
        target: &str,
        status: u16,
        req_body: &[u8],
        resp_len: u64,
        resp_sha: [u8; 32],
        coding: &'static str,
        chunked: bool,
        recoverable: bool,
    ) -> io::Result<()> {
        let r = TruthRecord {
            conn_id: id,
            exchange: 0,
            ts_ns: self.ts,
            client: c.client,
            server: c.server,
            method: method.to_string(),
            url: format!("http://api.example.com{target}"),
            status,
            req_body_len: req_body.len() as u64,
            req_body_sha256: sha256(req_body),
            resp_body_len: resp_len,
            resp_body_sha256: resp_sha,
            content_encoding: coding,
            chunked,
            impairment: Impairment::Adversarial,
            recoverable,
        };
        let r = TruthRecord { exchange: self.exchange, ..r };
        self.summary.exchanges += 1;
        self.summary.impaired_exchanges += 1;
        if !recoverable {
            self.summary.unrecoverable_exchanges += 1;
        }
        (self.truth)(&r)
    }

    /// One connection: handshake, `req`, `resp`, FIN; returns it drained.
    fn exchange(&mut self, c: &mut TcpConn, req: &[u8], resp: &[u8]) -> io::Result<()> {
        let t = c.handshake(self.ts);
        let t = c.send(Dir::ToServer, req, t + 200_000);
        let t = c.send(Dir::ToClient, resp, t + c.cfg.rtt_ns + 1_000_000);
        c.fin(Dir::ToServer, t + 500_000);
        self.drain(c)
    }
}

fn head(extra: &str) -> String {
    format!("GET /api/v1/adversarial HTTP/1.1\r\nHost: api.example.com\r\n{extra}\r\n")
}

/// A gzip member of `decoded` zero bytes, built without compressing them:
/// a raw-deflate, sync-flushed encoding of 1 MiB of zeros (byte-aligned,
/// no back-reference before its start) is repeated, then a final block
/// and the CRC-32/ISIZE trailer (CRC combined arithmetically).
pub fn gzip_bomb(decoded: u64) -> Vec<u8> {
    use flate2::{Compression, Crc, write::DeflateEncoder};
    const MB: usize = 1 << 20;
    let zeros = vec![0u8; MB];
    // Sync flush: byte-aligned, ends with an empty stored block.
    let mut e = DeflateEncoder::new(Vec::new(), Compression::best());
    e.write_all(&zeros).expect("writing to a Vec");
    e.flush().expect("writing to a Vec");
    let block = e.get_ref().clone();
    let full = decoded / MB as u64;
    let rest = (decoded % MB as u64) as usize;
    let mut out = Vec::with_capacity(block.len() * full as usize + 64);
    out.extend_from_slice(&[0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff]);
    let mut crc = Crc::new();
    let mut block_crc = Crc::new();
    block_crc.update(&zeros);
    for _ in 0..full {
        out.extend_from_slice(&block);
        crc.combine(&block_crc);
    }
    let mut e = DeflateEncoder::new(Vec::new(), Compression::best());
    e.write_all(&zeros[..rest]).expect("writing to a Vec");
    out.extend_from_slice(&e.finish().expect("writing to a Vec"));
    let mut tail_crc = Crc::new();
    tail_crc.update(&zeros[..rest]);
    crc.combine(&tail_crc);
    out.extend_from_slice(&crc.sum().to_le_bytes());
    out.extend_from_slice(&(decoded as u32).to_le_bytes());
    out
}

/// A zstd frame of `decoded` zero bytes made of RLE blocks (4 bytes per
/// 128 KiB), with the content size declared in the frame header.
pub fn zstd_bomb(decoded: u64) -> Vec<u8> {
    const BLOCK: u64 = 128 * 1024;
    let mut out = Vec::with_capacity((decoded / BLOCK * 4 + 32) as usize);
    out.extend_from_slice(&0xFD2F_B528u32.to_le_bytes());
    out.push(0xC0); // 8-byte frame content size, not single-segment, no checksum
    out.push(7 << 3); // window 2^17
    out.extend_from_slice(&decoded.to_le_bytes());
    let mut left = decoded;
    loop {
        let n = left.min(BLOCK);
        left -= n;
        let last = u32::from(left == 0);
        let hdr = last | (1 << 1) | ((n as u32) << 3);
        out.extend_from_slice(&hdr.to_le_bytes()[..3]);
        out.push(0);
        if left == 0 {
            break;
        }
    }
    out
}

/// A brotli stream of `decoded` zero bytes (quality 5, 16 MiB window).
pub fn br_bomb(decoded: u64) -> Vec<u8> {
    let zeros = vec![0u8; 1 << 20];
    let mut w = brotli::CompressorWriter::new(Vec::new(), 1 << 16, 5, 24);
    let mut left = decoded;
    while left > 0 {
        let n = left.min(zeros.len() as u64) as usize;
        w.write_all(&zeros[..n]).expect("writing to a Vec");
        left -= n as u64;
    }
    w.into_inner()
}

/// SHA-256 of `n` zero bytes (streams; about 1-2 s per GiB).
pub fn zeros_sha256(n: u64) -> [u8; 32] {
    let zeros = vec![0u8; 1 << 20];
    let mut h = Sha256::new();
    let mut left = n;
    while left > 0 {
        let k = left.min(zeros.len() as u64) as usize;
        h.update(&zeros[..k]);
        left -= k as u64;
    }
    h.finalize().into()
}

/// Writes the adversarial capture `mode` to `sink`.
pub fn write_adversarial<S: PacketSink + ?Sized>(
    mode: Mode,
    p: &AdvParams,
    sink: &mut S,
    truth: &mut dyn FnMut(&TruthRecord) -> io::Result<()>,
) -> io::Result<Summary> {
    let start_packets = sink.packets_written();
    let mut a = Adv {
        sink,
        truth,
        summary: Summary::default(),
        next_id: 0,
        ts: START,
        rng: Rng::new(p.seed ^ 0xad5e_75a1),
        interfaces: p.interfaces,
        exchange: 0,
    };
    let count = |d: u64| if p.count == 0 { d } else { p.count };
    let size = |d: u64| if p.size == 0 { d } else { p.size };
    match mode {
        Mode::SynFlood => {
            for _ in 0..count(1_000_000) {
                let (_, mut c) = a.conn(1460);
                c.syn_only(a.ts);
                c.emit_next(a.sink)?;
                a.ts += 1_000;
            }
        }
        Mode::OutOfOrder => {
            let n = count(100_000) as usize;
            let (id, mut c) = a.conn(100);
            let mut body = vec![0u8; n * 100];
            for (i, ch) in body.chunks_mut(100).enumerate() {
                let s = format!("{i:>99}\n");
                ch.copy_from_slice(&s.as_bytes()[s.len() - 100..]);
            }
            let req = head("");
            let mut resp = format!("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n\r\n", body.len()).into_bytes();
            resp.extend_from_slice(&body);
            let t = c.handshake(a.ts);
            let t = c.send(Dir::ToServer, req.as_bytes(), t + 100_000);
            let from = c.queued_packets();
            let t = c.send(Dir::ToClient, &resp, t + c.cfg.rtt_ns);
            c.fin(Dir::ToServer, t + 100_000);
            // Shuffle the response's data segments over their time slots.
            let q = c.pkts_mut();
            let idx: Vec<usize> = (from..q.len()).filter(|&i| q[i].len > 0 && q[i].dir == Dir::ToClient).collect();
            let mut r = Rng::new(p.seed ^ 0x000f);
            for k in (1..idx.len()).rev() {
                let j = r.below(k as u64 + 1) as usize;
                let (x, y) = (idx[k], idx[j]);
                let (px, py) = (q[x], q[y]);
                q[x] = super::tcp::Pkt { ts_ns: px.ts_ns, ..py };
                q[y] = super::tcp::Pkt { ts_ns: py.ts_ns, ..px };
            }
            a.record(id, &c, "GET", "/api/v1/adversarial", 200, b"", body.len() as u64, sha256(&body), "identity", false, true)?;
            a.drain(&mut c)?;
        }
        Mode::Overlap => {
            let (id, mut c) = a.conn(500);
            let mut r = Rng::new(p.seed ^ 0x0e1a);
            let body = http::json_response(&mut r, 20_000);
            let req = head("");
            let mut resp =
                format!("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n", body.len()).into_bytes();
            resp.extend_from_slice(&body);
            let t = c.handshake(a.ts);
            let t = c.send(Dir::ToServer, req.as_bytes(), t + 100_000);
            let from = c.queued_packets();
            let t = c.send(Dir::ToClient, &resp, t + c.cfg.rtt_ns);
            for _ in 0..6 {
                c.retransmit(from, &mut r, true);
            }
            // A conflicting segment spanning two originals, captured before
            // both of them.
            let q: Vec<_> = c.pkts().iter().copied().collect();
            let data: Vec<usize> = (from..q.len()).filter(|&i| q[i].len == 500 && q[i].dir == Dir::ToClient).collect();
            if data.len() > 12 {
                let (p1, p2) = (q[data[10]], q[data[11]]);
                let s = c.append(&[b'Z'; 500]);
                let early = super::tcp::Pkt { seq: p1.seq.wrapping_add(250), start: s, len: 500, ts_ns: q[data[9]].ts_ns, ..p2 };
                c.pkts_mut().insert(data[9] + 1, early);
            }
            c.fin(Dir::ToServer, t + 100_000);
            a.record(id, &c, "GET", "/api/v1/adversarial", 200, b"", body.len() as u64, sha256(&body), "identity", false, false)?;
            a.drain(&mut c)?;
        }
        Mode::SeqWrap => {
            let (id, mut c) = a.conn(1460);
            let mut r = Rng::new(p.seed ^ 0x5eea);
            let body = http::json_response(&mut r, 100_000);
            let reqb = http::json_request(&mut r, 6000);
            let mut req = format!(
                "POST /api/v1/orders HTTP/1.1\r\nHost: api.example.com\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
                reqb.len()
            )
            .into_bytes();
            req.extend_from_slice(&reqb);
            let mut resp =
                format!("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n", body.len()).into_bytes();
            let hl = resp.len();
            resp.extend_from_slice(&body);
            // After the SYNs, the next sequence numbers put the wrap in the
            // middle of each body.
            let isn_c = 0u32.wrapping_sub((req.len() - reqb.len() / 2) as u32 + 1);
            let isn_s = 0u32.wrapping_sub((hl + body.len() / 2) as u32 + 1);
            c.set_seq(Dir::ToServer, isn_c);
            c.set_seq(Dir::ToClient, isn_s);
            a.record(id, &c, "POST", "/api/v1/orders", 200, &reqb, body.len() as u64, sha256(&body), "identity", false, true)?;
            a.exchange(&mut c, &req, &resp)?;
        }
        Mode::GzipBomb | Mode::BrBomb | Mode::ZstdBomb => {
            let n = size(4 << 30);
            let (enc, name) = match mode {
                Mode::GzipBomb => (gzip_bomb(n), "gzip"),
                Mode::BrBomb => (br_bomb(n), "br"),
                _ => (zstd_bomb(n), "zstd"),
            };
            let req = head("Accept-Encoding: gzip, br, zstd\r\n");
            let mut resp = format!(
                "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Encoding: {name}\r\nContent-Length: {}\r\n\r\n",
                enc.len()
            )
            .into_bytes();
            resp.extend_from_slice(&enc);
            let after_req = "GET /api/v1/after HTTP/1.1\r\nHost: api.example.com\r\n\r\n";
            let after_body = b"{\"after\":true}";
            let after_resp = format!(
                "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{}",
                after_body.len(),
                std::str::from_utf8(after_body).unwrap_or("")
            );
            let sha = zeros_sha256(n);
            let mut conns = Vec::new();
            let t0 = a.ts;
            for k in 0..count(1) {
                let (id, mut c) = a.conn(1460);
                a.ts = t0 + k * 1_000;
                a.exchange = 0;
                a.record(id, &c, "GET", "/api/v1/adversarial", 200, b"", n, sha, name, false, true)?;
                let t = c.handshake(a.ts);
                let t = c.send(Dir::ToServer, req.as_bytes(), t + 200_000);
                let t = c.send(Dir::ToClient, &resp, t + c.cfg.rtt_ns + 1_000_000);
                a.ts = t + 1_000_000;
                a.exchange = 1;
                a.record(id, &c, "GET", "/api/v1/after", 200, b"", after_body.len() as u64, sha256(after_body), "identity", false, true)?;
                let t = c.send(Dir::ToServer, after_req.as_bytes(), a.ts);
                let t = c.send(Dir::ToClient, after_resp.as_bytes(), t + c.cfg.rtt_ns);
                c.fin(Dir::ToServer, t + 500_000);
                conns.push(c);
            }
            a.exchange = 0;
            // The connections' packets in time order.
            while let Some((_, i)) = conns.iter().enumerate().filter_map(|(i, c)| c.next_ts().map(|t| (t, i))).min() {
                conns[i].emit_next(a.sink)?;
            }
            a.ts = conns.iter().map(|c| c.last_ts()).max().unwrap_or(a.ts) + 1_000_000;
        }
        Mode::HugeHeader => {
            let n = size(1 << 20) as usize;
            let (id, mut c) = a.conn(1460);
            let mut req = b"GET /api/v1/adversarial HTTP/1.1\r\nHost: api.example.com\r\nX-Huge: ".to_vec();
            req.resize(req.len() + n.saturating_sub(10), b'a');
            req.extend_from_slice(b"\r\n\r\n");
            let body = b"{\"ok\":true}";
            let resp = format!(
                "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{}",
                body.len(),
                std::str::from_utf8(body).unwrap_or("")
            );
            a.record(id, &c, "GET", "/api/v1/adversarial", 200, b"", body.len() as u64, sha256(body), "identity", false, true)?;
            a.exchange(&mut c, &req, resp.as_bytes())?;
        }
        Mode::ManyHeaders => {
            let n = count(100_000);
            let (id, mut c) = a.conn(1460);
            let mut req = b"GET /api/v1/adversarial HTTP/1.1\r\nHost: api.example.com\r\n".to_vec();
            let mut resp = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n".to_vec();
            for i in 0..n {
                let _ = write!(req, "X-H-{i}: v{i}\r\n");
                let _ = write!(resp, "X-R-{i}: v{i}\r\n");
            }
            req.extend_from_slice(b"\r\n");
            let body = b"{\"ok\":true}";
            let _ = write!(resp, "Content-Length: {}\r\n\r\n", body.len());
            resp.extend_from_slice(body);
            a.record(id, &c, "GET", "/api/v1/adversarial", 200, b"", body.len() as u64, sha256(body), "identity", false, true)?;
            a.exchange(&mut c, &req, &resp)?;
        }
        Mode::ChunkOverflow => {
            for size_line in [
                "1ffffffffffffffff0",
                "10000000000000000",
                "ffffffffffffffff",
                "000000000000000000000000000000001",
                "7fffffffffffffff;ext=1",
            ] {
                let (id, mut c) = a.conn(1460);
                let resp = format!(
                    "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n{size_line}\r\n{{\"a\":1}}\r\n0\r\n\r\n"
                );
                a.record(id, &c, "GET", "/api/v1/adversarial", 200, b"", 0, empty_sha256(), "identity", true, false)?;
                a.exchange(&mut c, head("").as_bytes(), resp.as_bytes())?;
            }
        }
        Mode::BadContentLength => {
            let body = b"0123456789abcdefghij";
            let cases: &[(&str, bool)] = &[
                ("Content-Length: -1\r\n", false),
                ("Content-Length: 99999999999999999999999\r\n", false),
                ("Content-Length: 18446744073709551616\r\n", false),
                ("Content-Length: 10\r\nContent-Length: 20\r\n", false),
                ("Content-Length: 10, 20\r\n", false),
                ("Content-Length: +20\r\n", false),
                ("Content-Length: 0x14\r\n", false),
                ("Content-Length: 20\r\nContent-Length: 20\r\n", true),
            ];
            for (i, (cl, ok)) in cases.iter().enumerate() {
                let (id, mut c) = a.conn(1460);
                let (req, resp) = if i % 2 == 0 {
                    // In the response.
                    let mut resp = format!("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n{cl}\r\n").into_bytes();
                    resp.extend_from_slice(body);
                    (head("").into_bytes(), resp)
                } else {
                    // In the request.
                    let mut req =
                        format!("POST /api/v1/adversarial HTTP/1.1\r\nHost: api.example.com\r\nContent-Type: text/plain\r\n{cl}\r\n")
                            .into_bytes();
                    req.extend_from_slice(body);
                    let resp = b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".to_vec();
                    (req, resp)
                };
                let (method, status, reqb, respb): (&str, u16, &[u8], &[u8]) =
                    if i % 2 == 0 { ("GET", 200, b"", body) } else { ("POST", 400, body, b"") };
                a.record(id, &c, method, "/api/v1/adversarial", status, reqb, respb.len() as u64, sha256(respb), "identity", false, *ok)?;
                a.exchange(&mut c, &req, &resp)?;
            }
        }
        Mode::TeCl => {
            // Request smuggling shape: CL says 4, chunked says more, and the
            // chunked body holds a second request.
            let smuggled = "GET /admin HTTP/1.1\r\nHost: api.example.com\r\n\r\n";
            let chunk = format!("{:x}\r\n{smuggled}\r\n0\r\n\r\n", smuggled.len());
            let req = format!(
                "POST /api/v1/adversarial HTTP/1.1\r\nHost: api.example.com\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n{chunk}"
            );
            let body = b"{\"ok\":true}";
            let resp = format!(
                "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n{:x}\r\n{}\r\n0\r\n\r\n",
                body.len(),
                std::str::from_utf8(body).unwrap_or("")
            );
            let (id, mut c) = a.conn(1460);
            a.record(
                id,
                &c,
                "POST",
                "/api/v1/adversarial",
                200,
                smuggled.as_bytes(),
                body.len() as u64,
                sha256(body),
                "identity",
                true,
                false,
            )?;
            a.exchange(&mut c, req.as_bytes(), resp.as_bytes())?;
            // Transfer-Encoding not ending in chunked, plus CL.
            let (id, mut c) = a.conn(1460);
            let resp2 = format!(
                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nTransfer-Encoding: gzip, identity\r\n\r\n{}",
                body.len(),
                std::str::from_utf8(body).unwrap_or("")
            );
            a.record(id, &c, "GET", "/api/v1/adversarial", 200, b"", body.len() as u64, sha256(body), "identity", false, false)?;
            a.exchange(&mut c, head("").as_bytes(), resp2.as_bytes())?;
        }
    }
    let mut s = a.summary;
    s.bytes = a.sink.bytes_written();
    s.packets = a.sink.packets_written() - start_packets;
    Ok(s)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::synth::pcap::CountingSink;
    use std::io::Read;

    #[test]
    fn bombs_decode_to_their_size() {
        let n = (3 << 20) + 12345;
        let g = gzip_bomb(n);
        assert!(g.len() < 8000, "gzip bomb is small: {}", g.len());
        let mut d = flate2::read::GzDecoder::new(&g[..]);
        let mut out = Vec::new();
        d.read_to_end(&mut out).unwrap();
        assert_eq!(out.len() as u64, n);
        assert!(out.iter().all(|&b| b == 0));

        let z = zstd_bomb(n);
        let out = zstd::stream::decode_all(&z[..]).unwrap();
        assert_eq!(out.len() as u64, n);
        assert!(out.iter().all(|&b| b == 0));

        let b = br_bomb(n);
        let mut out = Vec::new();
        brotli::BrotliDecompress(&mut &b[..], &mut out).unwrap();
        assert_eq!(out.len() as u64, n);
        assert_eq!(zeros_sha256(n), sha256(&out));
    }

    #[test]
    fn every_mode_runs_small() {
        for (name, m) in MODES {
            let p = AdvParams { seed: 1, count: 1000, size: 1 << 16, interfaces: 1 };
            let mut sink = CountingSink::default();
            let mut recs = 0;
            let s = write_adversarial(*m, &p, &mut sink, &mut |_| {
                recs += 1;
                Ok(())
            })
            .unwrap();
            assert!(s.packets > 0, "{name}");
            assert_eq!(s.exchanges, recs, "{name}");
            assert_eq!(Mode::from_name(name), Some(*m));
        }
    }
}
