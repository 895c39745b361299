//! Synthetic captures of HTTP/1.x API traffic, with ground truth, for
//! benchmarks and adversarial tests.
//!
//! # Contract
//!
//! - **Deterministic.** The output depends only on the [`SynthConfig`]
//!   (seed, target size, shares, capture format): same config, same bytes.
//!   All randomness is a seeded integer PRNG ([`rng::Rng`]); no clock, no
//!   floating point in the hot path, no thread.
//! - **Streaming, bounded memory.** Packets go to a [`PacketSink`] one at a
//!   time in non-decreasing timestamp order. Memory is the body pool
//!   (built once, about `pool_bodies` bodies) plus one queued exchange per
//!   open connection (`concurrency`), whatever the target size.
//! - **Size target.** [`generate`] starts an exchange only if it fits in
//!   `target_bytes`, so the capture ends within a few percent below the
//!   target (a few exchanges' worth on small targets).
//! - **Valid packets.** IPv4 header checksums and TCP checksums (IPv4 and
//!   IPv6 pseudo-headers) are correct; sequence and acknowledgment numbers
//!   follow the bytes, across the 2^32 wrap.
//! - **Ground truth.** For every exchange, a [`TruthRecord`] goes to the
//!   caller's callback before its packets are written: connection id,
//!   method, absolute URL, final status, request body and *decoded*
//!   response body (length, SHA-256; de-chunked and content-decoded; empty
//!   for HEAD, 204 and 304), the impairment applied and whether the
//!   exchange can be recovered from the capture. [`TruthTsv`] writes them
//!   as TSV.
//! - **Impairments** (`impair` > 0) hit whole connections, one exchange
//!   each: reordered adjacent segments and plain retransmissions keep the
//!   exchange recoverable; a conflicting overlapping retransmission (which
//!   bytes win is a reassembly policy), a dropped segment (a hole) and a
//!   capture that starts mid-exchange (no handshake, the first packets cut)
//!   make it unrecoverable.
//!
//! The pieces: [`pcap`] (writers, headers, checksums), [`tcp`] (the
//! connection simulator), [`http`] (body pool, message composition),
//! [`adversarial`] (hostile captures for tests), [`copies`] (time-shifted copies of a
//! recorded capture).

pub mod adversarial;
pub mod copies;
pub mod http;
pub mod pcap;
pub mod rng;
pub mod tcp;

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::io::{self, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use http::{BodyPool, ConnCtx, Mix, USER_AGENTS, compose, compose_big};
pub use pcap::{CaptureFormat, CaptureWriter, PacketSink};
use rng::{Rng, derive, ppm};
use tcp::{Dir, TcpConfig, TcpConn};

/// What shapes a generated capture. `Default` is the benchmark mix.
#[derive(Clone, Debug)]
pub struct SynthConfig {
    pub seed: u64,
    /// Stop starting exchanges when the capture would exceed this many bytes.
    pub target_bytes: u64,
    /// Connections open at once (their packets interleave in time).
    pub concurrency: usize,
    /// Share of connections that get one impairment (0 = clean capture).
    pub impair: f64,
    /// Share of connections over IPv6.
    pub ipv6_share: f64,
    /// Share of keep-alive connections (several exchanges); the others
    /// carry one request with `Connection: close`.
    pub keepalive_share: f64,
    /// Most exchanges on one keep-alive connection.
    pub max_exchanges_per_conn: u32,
    /// Shares of JSON responses sent gzip'd and brotli'd.
    pub gzip_share: f64,
    pub br_share: f64,
    /// Share of responses with chunked transfer-encoding.
    pub chunked_share: f64,
    /// Share of connections whose server ISN sits just below 2^32, so the
    /// first response crosses the sequence wrap (random ISNs wrap too,
    /// rarely).
    pub wrap_share: f64,
    /// Base TCP timing; each connection draws its RTT between half and
    /// twice `tcp.rtt_ns`.
    pub tcp: TcpConfig,
    /// Number of JSON bodies in the pool (other kinds proportionally).
    pub pool_bodies: usize,
    /// Largest generated body.
    pub max_body: usize,
    /// Capture interfaces to spread connections over (pcapng).
    pub interfaces: u32,
    /// Snap length of the capture: when shorter than a full segment, every
    /// exchange is marked unrecoverable. 0 = no truncation.
    pub snaplen: u32,
    /// Bytes each packet costs in the file besides its IP packet (record
    /// header plus link header), for size budgeting; see
    /// [`CaptureFormat::record_overhead`].
    pub record_overhead: u64,
    /// Timestamp of the first packet, in ns since the epoch.
    pub start_ns: u64,
    /// Share of exchanges that GET a big static file (0, the default: none): one in 40 a
    /// binary of 64 KiB up to `big_binary_max`, the others a JSON document or JavaScript bundle
    /// up to `big_text_max`, always compressed as static servers send text (gzip level 6, one
    /// in four brotli quality 5).
    pub big_share: f64,
    pub big_binary_max: usize,
    pub big_text_max: usize,
    /// Share of connections that carry one long-lived response instead (0, the default: none):
    /// a server-sent event stream (chunked `text/event-stream`), one event every 0.2 to 2 s of
    /// capture time, up to `stream_events` events, open while the rest of the traffic goes on.
    pub stream_share: f64,
    pub stream_events: u32,
    /// Share of the connections still open when the size target is reached that are left
    /// open, as when a recording stops (0, the default: every connection is closed): a
    /// keep-alive connection sends one more request whose response head is the last thing the
    /// capture holds of it (no body, no FIN), an event stream just stops. Their truth records
    /// say `open-at-end` (not recoverable). With it the capture may pass the size target by
    /// about 2 KB per open connection.
    pub open_at_end: f64,
}

impl SynthConfig {
    /// The `recorded` profile: the traits of traffic recorded from real servers and clients
    /// that the default mix lacks (see `testdata/tools/record-bench.sh`): big binary and
    /// compressed bodies (12% of exchanges, binaries up to 4 MB, text up to 1.4 MB), more
    /// compressed responses (gzip 45%, br 15%), event streams on 3% of the connections, and
    /// half the connections open at the end left open.
    pub fn recorded_profile(self) -> SynthConfig {
        SynthConfig { big_share: 0.12, gzip_share: 0.45, br_share: 0.15, stream_share: 0.03, open_at_end: 0.5, ..self }
    }
}

impl Default for SynthConfig {
    fn default() -> Self {
        SynthConfig {
            seed: 1,
            target_bytes: 64 << 20,
            concurrency: 64,
            impair: 0.0,
            ipv6_share: 0.1,
            keepalive_share: 0.7,
            max_exchanges_per_conn: 20,
            gzip_share: 0.25,
            br_share: 0.15,
            chunked_share: 0.2,
            wrap_share: 0.02,
            tcp: TcpConfig::default(),
            pool_bodies: 128,
            max_body: 200_000,
            interfaces: 1,
            snaplen: 0,
            record_overhead: 30,
            start_ns: 1_700_000_000_000_000_000,
            big_share: 0.0,
            big_binary_max: 4_000_000,
            big_text_max: 1_400_000,
            stream_share: 0.0,
            stream_events: 400,
            open_at_end: 0.0,
        }
    }
}

/// What [`generate`] did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Summary {
    pub bytes: u64,
    pub packets: u64,
    pub connections: u64,
    pub exchanges: u64,
    pub impaired_exchanges: u64,
    pub unrecoverable_exchanges: u64,
}

/// Impairment applied to an exchange.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Impairment {
    None,
    /// Two adjacent data segments captured in swapped order.
    Reordered,
    /// A data segment captured twice, identical.
    Retransmitted,
    /// A retransmission overlapping a segment with different bytes.
    OverlapConflict,
    /// A data segment missing from the capture.
    Dropped,
    /// The capture starts inside this exchange.
    MidStream,
    /// Frames cut by the snap length.
    Snaplen,
    /// A hostile construction (adversarial captures).
    Adversarial,
    /// Still open when the capture ends: a response cut after its head, an event stream
    /// without its last chunk.
    OpenAtEnd,
}

impl Impairment {
    pub fn name(self) -> &'static str {
        match self {
            Impairment::None => "none",
            Impairment::Reordered => "reordered",
            Impairment::Retransmitted => "retransmitted",
            Impairment::OverlapConflict => "overlap-conflict",
            Impairment::Dropped => "dropped",
            Impairment::MidStream => "mid-stream",
            Impairment::Snaplen => "snaplen",
            Impairment::Adversarial => "adversarial",
            Impairment::OpenAtEnd => "open-at-end",
        }
    }

    /// Whether the exchange can still be rebuilt exactly.
    pub fn recoverable(self) -> bool {
        matches!(self, Impairment::None | Impairment::Reordered | Impairment::Retransmitted)
    }
}

/// Ground truth for one exchange.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TruthRecord {
    /// Connection number, in order of opening (0-based).
    pub conn_id: u64,
    /// Exchange number within the connection (0-based).
    pub exchange: u32,
    /// Time of the request's first byte.
    pub ts_ns: u64,
    pub client: SocketAddr,
    pub server: SocketAddr,
    pub method: String,
    /// `http://host[:port]/path?query`.
    pub url: String,
    /// Final status (after any `100 Continue`).
    pub status: u16,
    /// Request body as the application sent it (de-chunked).
    pub req_body_len: u64,
    pub req_body_sha256: [u8; 32],
    /// Response body after de-chunking and content decoding.
    pub resp_body_len: u64,
    pub resp_body_sha256: [u8; 32],
    pub content_encoding: &'static str,
    pub chunked: bool,
    pub impairment: Impairment,
    pub recoverable: bool,
}

/// Writes truth records as TSV with a header line.
pub struct TruthTsv<W: Write> {
    w: W,
}

impl<W: Write> TruthTsv<W> {
    pub const HEADER: &'static str = "conn_id\texchange\tts_ns\tclient\tserver\tmethod\turl\tstatus\treq_body_len\treq_body_sha256\tresp_body_len\tresp_body_sha256\tcontent_encoding\tchunked\timpairment\trecoverable";

    pub fn new(mut w: W) -> io::Result<Self> {
        writeln!(w, "{}", Self::HEADER)?;
        Ok(TruthTsv { w })
    }

    pub fn write(&mut self, r: &TruthRecord) -> io::Result<()> {
        writeln!(
            self.w,
            "{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}",
            r.conn_id,
            r.exchange,
            r.ts_ns,
            r.client,
            r.server,
            r.method,
            r.url,
            r.status,
            r.req_body_len,
            http::hex(&r.req_body_sha256),
            r.resp_body_len,
            http::hex(&r.resp_body_sha256),
            r.content_encoding,
            u8::from(r.chunked),
            r.impairment.name(),
            u8::from(r.recoverable)
        )
    }

    pub fn into_inner(self) -> W {
        self.w
    }
}

/// Parses sizes like `1G`, `200M`, `512K`, `1000` (binary multiples;
/// `GB`, `MiB` and friends accepted).
pub fn parse_size(s: &str) -> Option<u64> {
    let s = s.trim();
    let digits = s.find(|c: char| !c.is_ascii_digit() && c != '.').unwrap_or(s.len());
    let (num, unit) = s.split_at(digits);
    let mult: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" | "kib" => 1 << 10,
        "m" | "mb" | "mib" => 1 << 20,
        "g" | "gb" | "gib" => 1 << 30,
        "t" | "tb" | "tib" => 1 << 40,
        _ => return None,
    };
    if let Some((i, f)) = num.split_once('.') {
        // Decimal: keep it integer (up to 6 fractional digits).
        let i: u64 = if i.is_empty() { 0 } else { i.parse().ok()? };
        let f6 = format!("{f:0<6}");
        let f: u64 = f6.get(..6)?.parse().ok()?;
        Some(i * mult + f * mult / 1_000_000)
    } else {
        num.parse::<u64>().ok()?.checked_mul(mult)
    }
}

/// A server the clients talk to.
struct Server {
    host: &'static str,
    v4: Ipv4Addr,
    v6: Ipv6Addr,
    port: u16,
}

const SERVERS: &[Server] = &[
    Server {
        host: "api.example.com",
        v4: Ipv4Addr::new(203, 0, 113, 10),
        v6: Ipv6Addr::new(0x2001, 0xdb8, 0, 0x10, 0, 0, 0, 0x10),
        port: 80,
    },
    Server {
        host: "auth.example.com",
        v4: Ipv4Addr::new(203, 0, 113, 20),
        v6: Ipv6Addr::new(0x2001, 0xdb8, 0, 0x20, 0, 0, 0, 0x20),
        port: 80,
    },
    Server {
        host: "files.example.net",
        v4: Ipv4Addr::new(198, 51, 100, 5),
        v6: Ipv6Addr::new(0x2001, 0xdb8, 0, 0x30, 0, 0, 0, 0x5),
        port: 8080,
    },
    Server {
        host: "internal-api.example.org",
        v4: Ipv4Addr::new(192, 0, 2, 44),
        v6: Ipv6Addr::new(0x2001, 0xdb8, 0, 0x40, 0, 0, 0, 0x44),
        port: 8080,
    },
];

/// Client address for connection `id`: 4093 hosts, ports cycling through
/// the ephemeral range, unique for the first ~115 million connections.
pub fn client_addr(id: u64, v6: bool) -> SocketAddr {
    let h = id % 4093;
    let port = 32_768 + ((id / 4093) % 28_232) as u16;
    let ip = if v6 {
        IpAddr::V6(Ipv6Addr::new(0xfd00, 0, 0, 0xc, 0, 0, (h >> 8) as u16, h as u16 + 1))
    } else {
        IpAddr::V4(Ipv4Addr::new(10, 1, (h / 250) as u8, (h % 250) as u8 + 1))
    };
    SocketAddr::new(ip, port)
}

struct Slot {
    conn: TcpConn,
    id: u64,
    rng: Rng,
    ctx: ConnCtx,
    planned: u32,
    done: u32,
    impair: Impairment,
    impair_at: u32,
    closing: bool,
    /// A connection that carries one event stream.
    stream: Option<Stream>,
}

/// The state of an event stream (see `SynthConfig::stream_share`).
struct Stream {
    target: String,
    ts_ns: u64,
    /// Events still to send.
    left: u32,
    sent: u64,
    len: u64,
    hash: sha2::Sha256,
}

struct Gen<'a> {
    cfg: &'a SynthConfig,
    pool: BodyPool,
    big: Option<http::BigPool>,
    mix: Mix,
    slots: Vec<Option<Slot>>,
    next_id: u64,
    draining: bool,
    summary: Summary,
    snaplen_cuts: bool,
}

impl Gen<'_> {
    /// Bytes a FIN exchange (or a handshake) takes: three packets, each
    /// at most 64 bytes of IPv6 + TCP headers besides the record overhead.
    fn close_reserve(&self) -> u64 {
        3 * (64 + self.cfg.record_overhead)
    }

    /// Bytes queued by the open connections, plus what closing the ones
    /// not yet closing will take.
    fn queued_all(&self) -> u64 {
        let reserve = self.close_reserve();
        self.slots.iter().flatten().map(|s| s.conn.queued_bytes() + if s.closing { 0 } else { reserve }).sum()
    }

    fn fits(&self, written: u64, extra: u64) -> bool {
        written + self.queued_all() + extra <= self.cfg.target_bytes
    }

    fn open(&mut self, written: u64, ts: u64) -> Option<Slot> {
        if self.draining || !self.fits(written, 2 * self.close_reserve() + 1500) {
            self.draining = true;
            return None;
        }
        let id = self.next_id;
        self.next_id += 1;
        let mut rng = Rng::new(derive(self.cfg.seed, id + 1));
        let v6 = rng.chance(self.cfg.ipv6_share);
        let srv = &SERVERS[rng.below(SERVERS.len() as u64) as usize];
        let server = SocketAddr::new(if v6 { IpAddr::V6(srv.v6) } else { IpAddr::V4(srv.v4) }, srv.port);
        let mut tcp = self.cfg.tcp;
        tcp.rtt_ns = rng.range(tcp.rtt_ns / 2, tcp.rtt_ns * 2).max(1);
        let isn_c = rng.next_u32();
        let isn_s = if rng.chance(self.cfg.wrap_share) { u32::MAX - rng.below(3000) as u32 } else { rng.next_u32() };
        let conn = TcpConn::new(client_addr(id, v6), server, (id % u64::from(self.cfg.interfaces.max(1))) as u32, tcp, isn_c, isn_s);
        let keepalive = rng.chance(self.cfg.keepalive_share);
        let planned = if keepalive { rng.range(2, u64::from(self.cfg.max_exchanges_per_conn.max(2))) as u32 } else { 1 };
        let (impair, impair_at) = if rng.chance(self.cfg.impair) {
            match rng.below(5) {
                0 => (Impairment::Reordered, rng.below(u64::from(planned)) as u32),
                1 => (Impairment::Retransmitted, rng.below(u64::from(planned)) as u32),
                2 => (Impairment::OverlapConflict, rng.below(u64::from(planned)) as u32),
                3 => (Impairment::Dropped, planned - 1),
                _ => (Impairment::MidStream, 0),
            }
        } else {
            (Impairment::None, u32::MAX)
        };
        let ctx = ConnCtx {
            host: srv.host,
            port: srv.port,
            user_agent: USER_AGENTS[rng.below(USER_AGENTS.len() as u64) as usize],
            token: format!("eyJhbGciOiJIUzI1NiJ9.{:016x}{:016x}.{:016x}", rng.next_u64(), rng.next_u64(), rng.next_u64()),
            session: format!("{:016x}{:016x}", rng.next_u64(), rng.next_u64()),
        };
        let mut conn = conn;
        conn.set_record_overhead(self.cfg.record_overhead);
        // Drawn only when streams are asked for, so that the default mix stays as it was.
        let stream = (self.cfg.stream_share > 0.0 && rng.chance(self.cfg.stream_share)).then(|| Stream {
            target: String::new(),
            ts_ns: 0,
            left: rng.range(1, u64::from(self.cfg.stream_events.max(1)) + 1) as u32,
            sent: 0,
            len: 0,
            hash: sha2::Sha256::default(),
        });
        let (planned, impair, impair_at) = if stream.is_some() { (1, Impairment::None, u32::MAX) } else { (planned, impair, impair_at) };
        let mut slot = Slot { conn, id, rng, ctx, planned, done: 0, impair, impair_at, closing: false, stream };
        if impair == Impairment::MidStream {
            slot.conn.set_clock(ts);
        } else {
            slot.conn.handshake(ts);
        }
        self.summary.connections += 1;
        Some(slot)
    }

    /// Queues the next batch of slot `i` (its queue is empty, or holds only
    /// a fresh handshake). Returns false when the slot is finished.
    fn advance(&mut self, i: usize, written: u64, truth: &mut dyn FnMut(&TruthRecord) -> io::Result<()>) -> io::Result<bool> {
        let Some(mut slot) = self.slots[i].take() else {
            return Ok(false);
        };
        if slot.closing {
            let gap = slot.rng.range(10_000, 5_000_000);
            let t = slot.conn.last_ts() + gap;
            match self.open(written, t) {
                Some(s) => slot = s,
                None => return Ok(false),
            }
        }
        let cfg = self.cfg;
        let now = slot.conn.last_ts().max(cfg.start_ns);
        if slot.stream.is_some() {
            return self.advance_stream(i, slot, now, written, truth);
        }
        if slot.done >= slot.planned {
            slot.conn.fin(Dir::ToServer, now + slot.rng.range(50_000, 2_000_000));
            slot.closing = true;
            self.slots[i] = Some(slot);
            return Ok(true);
        }
        let think = if slot.done == 0 { slot.rng.range(100_000, 2_000_000) } else { slot.rng.log_size(500_000, 20_000_000, 1_000_000_000) };
        let t0 = now + think;
        let close = slot.done + 1 == slot.planned && slot.planned == 1;
        let mark = slot.conn.arena().len();
        let c = match &self.big {
            Some(big) if slot.rng.chance(cfg.big_share) => {
                compose_big(&mut slot.rng, big, &slot.ctx, self.mix, t0 / 1_000_000_000, close, slot.conn.arena_mut())
            }
            _ => compose(&mut slot.rng, &self.pool, &slot.ctx, self.mix, t0 / 1_000_000_000, close, slot.conn.arena_mut()),
        };
        // Budget: payload plus per-segment overhead (headers and ACKs).
        let bytes = (c.request.len() + c.response.len() + c.interim.as_ref().map_or(0, |r| r.len())) as u64;
        let segs = bytes / slot.conn.cfg.mss as u64 + 3;
        let per = 60 + self.cfg.record_overhead;
        let est = bytes + segs * per + (segs / 2 + 3) * per + self.close_reserve();
        if !self.fits(written, est + slot.conn.queued_bytes()) {
            self.draining = true;
            if slot.done > 0 && cfg.open_at_end > 0.0 && slot.rng.chance(cfg.open_at_end) {
                return self.leave_open(i, slot, &c, t0, truth);
            }
            slot.conn.arena_mut().truncate(mark);
            if slot.done == 0 {
                // Nothing of this connection is on the wire yet (at most its
                // handshake is queued): forget it.
                self.summary.connections -= 1;
                return Ok(false);
            }
            slot.conn.fin(Dir::ToServer, now + slot.rng.range(50_000, 2_000_000));
            slot.closing = true;
            self.slots[i] = Some(slot);
            return Ok(true);
        }
        let from = slot.conn.queued_packets();
        let rtt = slot.conn.cfg.rtt_ns;
        let proc_ns = slot.rng.log_size(200_000, 3_000_000, 80_000_000);
        let mut t = match c.body_split {
            Some(split) => {
                let th = slot.conn.send_range(Dir::ToServer, c.request.start, split, t0);
                let iv = c.interim.clone().unwrap_or(0..0);
                let ti = slot.conn.send_range(Dir::ToClient, iv.start, iv.end, th + rtt + 150_000);
                slot.conn.send_range(Dir::ToServer, split, c.request.end, ti + 60_000)
            }
            None => slot.conn.send_range(Dir::ToServer, c.request.start, c.request.end, t0),
        };
        t = slot.conn.send_range(Dir::ToClient, c.response.start, c.response.end, t + rtt + proc_ns);
        let last = slot.done + 1 == slot.planned;
        if close {
            slot.conn.fin(Dir::ToClient, t + 30_000);
            slot.closing = true;
        } else if last {
            let tc = t + slot.rng.range(100_000, 5_000_000);
            if slot.rng.below(20) == 0 {
                slot.conn.rst(Dir::ToServer, tc);
            } else {
                slot.conn.fin(Dir::ToServer, tc);
            }
            slot.closing = true;
        }
        let mut imp = Impairment::None;
        if slot.done == slot.impair_at {
            let applied = match slot.impair {
                Impairment::Reordered => slot.conn.reorder_adjacent(from, &mut slot.rng).is_some(),
                Impairment::Retransmitted => slot.conn.retransmit(from, &mut slot.rng, false).is_some(),
                Impairment::OverlapConflict => slot.conn.retransmit(from, &mut slot.rng, true).is_some(),
                Impairment::Dropped => slot.conn.drop_segment(from, &mut slot.rng).is_some(),
                Impairment::MidStream => {
                    let n = slot.conn.queued_packets() - from;
                    if n > 1 {
                        let cut = 1 + slot.rng.below(n as u64 - 1) as usize;
                        slot.conn.cut_front(from, cut);
                        true
                    } else {
                        false
                    }
                }
                _ => false,
            };
            if applied {
                imp = slot.impair;
            }
        }
        if imp == Impairment::None && self.snaplen_cuts {
            imp = Impairment::Snaplen;
        }
        let rec = truth_record(&slot, &c, t0, imp);
        self.count(&rec);
        truth(&rec)?;
        slot.done += 1;
        self.slots[i] = Some(slot);
        Ok(true)
    }
}

/// The truth of exchange `c` of `slot`, started at `t0`, as composed, with impairment `imp`.
fn truth_record(slot: &Slot, c: &http::Composed, t0: u64, imp: Impairment) -> TruthRecord {
    TruthRecord {
        conn_id: slot.id,
        exchange: slot.done,
        ts_ns: t0,
        client: slot.conn.client,
        server: slot.conn.server,
        method: c.method.to_string(),
        url: format!("http://{}{}", slot.ctx.authority(), c.target),
        status: c.status,
        req_body_len: c.req_body_len,
        req_body_sha256: c.req_body_sha256,
        resp_body_len: c.resp_body_len,
        resp_body_sha256: c.resp_body_sha256,
        content_encoding: c.coding.name(),
        chunked: c.chunked,
        impairment: imp,
        recoverable: imp.recoverable(),
    }
}

impl Gen<'_> {
    /// The capture ends during this exchange: the request and the response head go on the
    /// wire, nothing after them (no body, no FIN).
    fn leave_open(
        &mut self,
        i: usize,
        mut slot: Slot,
        c: &http::Composed,
        t0: u64,
        truth: &mut dyn FnMut(&TruthRecord) -> io::Result<()>,
    ) -> io::Result<bool> {
        let head_end =
            memchr::memmem::find(&slot.conn.arena()[c.response.clone()], b"\r\n\r\n").map_or(c.response.end, |p| c.response.start + p + 4);
        let rtt = slot.conn.cfg.rtt_ns;
        let t = slot.conn.send_range(Dir::ToServer, c.request.start, c.request.end, t0);
        slot.conn.send_range(Dir::ToClient, c.response.start, head_end, t + rtt + 1_000_000);
        // No response body reaches the capture.
        let rec =
            TruthRecord { resp_body_len: 0, resp_body_sha256: http::empty_sha256(), ..truth_record(&slot, c, t0, Impairment::OpenAtEnd) };
        self.count(&rec);
        truth(&rec)?;
        slot.done += 1;
        // Closing without a FIN: the next turn of this slot opens nothing (the run is draining).
        slot.closing = true;
        self.slots[i] = Some(slot);
        Ok(true)
    }

    fn count(&mut self, rec: &TruthRecord) {
        self.summary.exchanges += 1;
        if rec.impairment != Impairment::None {
            self.summary.impaired_exchanges += 1;
        }
        if !rec.recoverable {
            self.summary.unrecoverable_exchanges += 1;
        }
    }

    /// One turn of an event-stream connection: the request and response head first, then one
    /// event per turn, then the last chunk and the client's FIN; or, once the run drains, the
    /// end (or nothing more, for a stream left open). The truth record goes out when the
    /// stream ends, when its body is known.
    fn advance_stream(
        &mut self,
        i: usize,
        mut slot: Slot,
        now: u64,
        written: u64,
        truth: &mut dyn FnMut(&TruthRecord) -> io::Result<()>,
    ) -> io::Result<bool> {
        let cfg = self.cfg;
        let per = 60 + cfg.record_overhead;
        let Some(st) = slot.stream.as_mut() else { return Ok(false) };
        if st.target.is_empty() {
            if !self.fits(written, 4 * 1500 + 8 * per + self.close_reserve()) {
                self.draining = true;
                self.summary.connections -= 1;
                return Ok(false);
            }
            let t0 = now + slot.rng.range(100_000, 2_000_000);
            let (req, head, target) = http::compose_stream_head(&mut slot.rng, &slot.ctx, t0 / 1_000_000_000, slot.conn.arena_mut());
            let rtt = slot.conn.cfg.rtt_ns;
            let t = slot.conn.send_range(Dir::ToServer, req.start, req.end, t0);
            slot.conn.send_range(Dir::ToClient, head.start, head.end, t + rtt + 2_000_000);
            let st = slot.stream.as_mut().expect("a stream slot");
            st.target = target;
            st.ts_ns = t0;
            self.slots[i] = Some(slot);
            return Ok(true);
        }
        let more = st.left > 0 && !self.draining && self.fits(written, 1500 + 3 * per + self.close_reserve());
        if more {
            let gap = slot.rng.range(200_000_000, 2_000_000_000);
            let (ev, chunk) = http::write_event(&mut slot.rng, st.sent, slot.conn.arena_mut());
            let st = slot.stream.as_mut().expect("a stream slot");
            sha2::Digest::update(&mut st.hash, &slot.conn.arena()[ev.clone()]);
            st.len += ev.len() as u64;
            st.sent += 1;
            st.left -= 1;
            slot.conn.send_range(Dir::ToClient, chunk.start, chunk.end, now + gap);
            self.slots[i] = Some(slot);
            return Ok(true);
        }
        self.draining |= st.left > 0;
        let open = st.left > 0 && cfg.open_at_end > 0.0 && slot.rng.chance(cfg.open_at_end);
        let st = slot.stream.take().expect("a stream slot");
        let rec = TruthRecord {
            conn_id: slot.id,
            exchange: 0,
            ts_ns: st.ts_ns,
            client: slot.conn.client,
            server: slot.conn.server,
            method: "GET".to_string(),
            url: format!("http://{}{}", slot.ctx.authority(), st.target),
            status: 200,
            req_body_len: 0,
            req_body_sha256: http::empty_sha256(),
            resp_body_len: st.len,
            resp_body_sha256: sha2::Digest::finalize(st.hash).into(),
            content_encoding: "identity",
            chunked: true,
            impairment: if open { Impairment::OpenAtEnd } else { Impairment::None },
            recoverable: !open,
        };
        self.count(&rec);
        truth(&rec)?;
        slot.done = 1;
        if open {
            return Ok(false);
        }
        let t = slot.conn.send(Dir::ToClient, b"0\r\n\r\n", now + slot.rng.range(1_000_000, 50_000_000));
        slot.conn.fin(Dir::ToServer, t + slot.rng.range(50_000, 2_000_000));
        slot.closing = true;
        self.slots[i] = Some(slot);
        Ok(true)
    }
}

/// Generates traffic per `cfg` into `sink`, reporting each exchange to
/// `truth` (return an error there to stop). See the module docs for the
/// contract.
pub fn generate<S: PacketSink + ?Sized>(
    cfg: &SynthConfig,
    sink: &mut S,
    truth: &mut dyn FnMut(&TruthRecord) -> io::Result<()>,
) -> io::Result<Summary> {
    let pool = BodyPool::new(derive(cfg.seed, 0x706f_6f6c), cfg.pool_bodies, cfg.max_body);
    let full_frame = 16 + 40 + 20 + cfg.tcp.mss as u64;
    let big = (cfg.big_share > 0.0).then(|| http::BigPool::new(derive(cfg.seed, 0x6269_6762), 8, cfg.big_text_max, cfg.big_binary_max));
    let mut g = Gen {
        cfg,
        pool,
        big,
        mix: Mix { gzip_ppm: ppm(cfg.gzip_share), br_ppm: ppm(cfg.br_share), chunked_ppm: ppm(cfg.chunked_share) },
        slots: Vec::new(),
        next_id: 0,
        draining: false,
        summary: Summary::default(),
        snaplen_cuts: cfg.snaplen != 0 && u64::from(cfg.snaplen) < full_frame,
    };
    let start_bytes = sink.bytes_written();
    let start_packets = sink.packets_written();
    let mut heap: BinaryHeap<Reverse<(u64, usize)>> = BinaryHeap::new();
    let mut stagger = Rng::new(derive(cfg.seed, 0x7374_6167));
    for i in 0..cfg.concurrency.max(1) {
        let written = sink.bytes_written() - start_bytes;
        let ts = cfg.start_ns + stagger.below(50_000_000);
        let Some(s) = g.open(written, ts) else { break };
        g.slots.push(Some(s));
        if g.advance(i, written, truth)?
            && let Some(t) = g.slots[i].as_ref().and_then(|s| s.conn.next_ts())
        {
            heap.push(Reverse((t, i)));
        }
    }
    while let Some(Reverse((_, i))) = heap.pop() {
        let Some(slot) = g.slots[i].as_mut() else {
            continue;
        };
        slot.conn.emit_next(sink)?;
        if let Some(t) = slot.conn.next_ts() {
            heap.push(Reverse((t, i)));
            continue;
        }
        let written = sink.bytes_written() - start_bytes;
        if g.advance(i, written, truth)?
            && let Some(t) = g.slots[i].as_ref().and_then(|s| s.conn.next_ts())
        {
            heap.push(Reverse((t, i)));
        }
    }
    let mut s = g.summary;
    s.bytes = sink.bytes_written();
    s.packets = sink.packets_written() - start_packets;
    Ok(s)
}

/// Generates into a file-format writer over `w` and returns the summary
/// and `w` (flushed).
pub fn generate_to<W: Write>(
    cfg: &SynthConfig,
    format: &CaptureFormat,
    w: W,
    truth: &mut dyn FnMut(&TruthRecord) -> io::Result<()>,
) -> io::Result<(Summary, W)> {
    let mut cfg = cfg.clone();
    cfg.interfaces = format.interfaces();
    cfg.snaplen = format.min_snaplen();
    cfg.record_overhead = format.record_overhead();
    let mut wr = format.writer(w)?;
    let s = generate(&cfg, &mut wr, truth)?;
    let mut w = wr.into_inner();
    w.flush()?;
    Ok((s, w))
}

#[cfg(test)]
mod tests {
    use super::*;
    use sha2::{Digest, Sha256};

    fn gen_bytes(seed: u64, size: u64, impair: f64) -> (Vec<u8>, Vec<TruthRecord>, Summary) {
        let cfg = SynthConfig { seed, target_bytes: size, impair, ..SynthConfig::default() };
        let mut recs = Vec::new();
        let fmt = CaptureFormat::from_name("pcap", pcap::LinkType::Ethernet).unwrap();
        let (s, out) = generate_to(&cfg, &fmt, Vec::new(), &mut |r| {
            recs.push(r.clone());
            Ok(())
        })
        .unwrap();
        (out, recs, s)
    }

    #[test]
    fn parse_sizes() {
        assert_eq!(parse_size("1G"), Some(1 << 30));
        assert_eq!(parse_size("200M"), Some(200 << 20));
        assert_eq!(parse_size("1.5k"), Some(1536));
        assert_eq!(parse_size("77"), Some(77));
        assert_eq!(parse_size("3X"), None);
    }

    #[test]
    fn same_seed_same_bytes() {
        let (a, ra, _) = gen_bytes(5, 1 << 20, 0.05);
        let (b, rb, _) = gen_bytes(5, 1 << 20, 0.05);
        assert_eq!(Sha256::digest(&a), Sha256::digest(&b));
        assert_eq!(ra, rb);
        let (c, _, _) = gen_bytes(6, 1 << 20, 0.05);
        assert_ne!(Sha256::digest(&a), Sha256::digest(&c));
    }

    #[test]
    fn size_target_is_honored() {
        for &size in &[300_000u64, 2 << 20, 5 << 20] {
            let (out, recs, s) = gen_bytes(1, size, 0.0);
            assert_eq!(out.len() as u64, s.bytes);
            let ratio = out.len() as f64 / size as f64;
            assert!((0.95..=1.0).contains(&ratio), "target {size}, got {} ({ratio})", out.len());
            assert_eq!(recs.len() as u64, s.exchanges);
        }
    }

    #[test]
    fn frames_parse_and_checksums_hold() {
        let (out, recs, s) = gen_bytes(3, 1 << 20, 0.1);
        assert!(s.connections > 10);
        assert!(recs.iter().any(|r| r.impairment != Impairment::None));
        let mut n = 0u64;
        let mut off = 24;
        let mut last_ts = 0u64;
        while off < out.len() {
            let h = &out[off..off + 16];
            let sec = u32::from_le_bytes(h[0..4].try_into().unwrap()) as u64;
            let us = u32::from_le_bytes(h[4..8].try_into().unwrap()) as u64;
            let ts = sec * 1_000_000 + us;
            assert!(ts >= last_ts, "time goes forward");
            last_ts = ts;
            let incl = u32::from_le_bytes(h[8..12].try_into().unwrap()) as usize;
            let frame = &out[off + 16..off + 16 + incl];
            let p = etherparse::SlicedPacket::from_ethernet(frame).unwrap();
            let tcp = match p.transport {
                Some(etherparse::TransportSlice::Tcp(t)) => t,
                _ => panic!("not tcp"),
            };
            match p.net {
                Some(etherparse::NetSlice::Ipv4(ip)) => {
                    let hdr = ip.header().to_header();
                    assert_eq!(hdr.calc_header_checksum(), hdr.header_checksum);
                    let c = tcp.to_header().calc_checksum_ipv4(&hdr, tcp.payload()).unwrap();
                    assert_eq!(c, tcp.checksum());
                }
                Some(etherparse::NetSlice::Ipv6(ip)) => {
                    let hdr = ip.header().to_header();
                    let c = tcp.to_header().calc_checksum_ipv6(&hdr, tcp.payload()).unwrap();
                    assert_eq!(c, tcp.checksum());
                }
                _ => panic!("not ip"),
            }
            n += 1;
            off += 16 + incl;
        }
        assert_eq!(off, out.len());
        assert_eq!(n, s.packets);
    }

    /// Every TCP segment of a legacy pcap (Ethernet) capture: (time in µs, client socket as
    /// the SYN or the lower-numbered side says, flags, payload length), checksums checked.
    fn segments(out: &[u8]) -> Vec<(u64, SocketAddr, SocketAddr, u8, usize)> {
        let mut v = Vec::new();
        let mut off = 24;
        while off < out.len() {
            let h = &out[off..off + 16];
            let ts = u64::from(u32::from_le_bytes(h[0..4].try_into().unwrap())) * 1_000_000
                + u64::from(u32::from_le_bytes(h[4..8].try_into().unwrap()));
            let incl = u32::from_le_bytes(h[8..12].try_into().unwrap()) as usize;
            let frame = &out[off + 16..off + 16 + incl];
            let p = etherparse::SlicedPacket::from_ethernet(frame).unwrap();
            let Some(etherparse::TransportSlice::Tcp(tcp)) = p.transport else { panic!("not tcp") };
            let (src, dst) = match p.net {
                Some(etherparse::NetSlice::Ipv4(ip)) => {
                    let hdr = ip.header().to_header();
                    assert_eq!(tcp.to_header().calc_checksum_ipv4(&hdr, tcp.payload()).unwrap(), tcp.checksum());
                    (IpAddr::V4(ip.header().source_addr()), IpAddr::V4(ip.header().destination_addr()))
                }
                Some(etherparse::NetSlice::Ipv6(ip)) => {
                    let hdr = ip.header().to_header();
                    assert_eq!(tcp.to_header().calc_checksum_ipv6(&hdr, tcp.payload()).unwrap(), tcp.checksum());
                    (IpAddr::V6(ip.header().source_addr()), IpAddr::V6(ip.header().destination_addr()))
                }
                _ => panic!("not ip"),
            };
            let flags = (u8::from(tcp.fin())) | (u8::from(tcp.syn()) << 1) | (u8::from(tcp.rst()) << 2) | (u8::from(tcp.ack()) << 4);
            v.push((ts, SocketAddr::new(src, tcp.source_port()), SocketAddr::new(dst, tcp.destination_port()), flags, tcp.payload().len()));
            off += 16 + incl;
        }
        v
    }

    const DEFAULT_1M_SEED5_SHA256: &str = "8441566ad793c1ef4a679adf260459c50fbdcdef76cf8aa2fd37d78a3d39a0e0";
    const DEFAULT_1M_SEED5_LEN: u64 = 1_047_339;

    #[test]
    fn default_output_is_what_it_was() {
        // SHA-256 of `gencap --size 1M --seed 5` written by the generator before the recorded
        // traits were added: with their shares at 0 the default capture must not change.
        let (out, _, _) = gen_bytes(5, 1 << 20, 0.0);
        assert_eq!(http::hex(&Sha256::digest(&out)), DEFAULT_1M_SEED5_SHA256);
        assert_eq!(out.len() as u64, DEFAULT_1M_SEED5_LEN);
    }

    #[test]
    fn recorded_traits_big_bodies_streams_and_open_connections() {
        let cfg = SynthConfig {
            seed: 11,
            target_bytes: 12 << 20,
            big_share: 0.6,
            big_text_max: 300_000,
            big_binary_max: 700_000,
            stream_share: 0.15,
            stream_events: 30,
            open_at_end: 1.0,
            ..SynthConfig::default().recorded_profile()
        };
        let mut recs = Vec::new();
        let fmt = CaptureFormat::from_name("pcap", pcap::LinkType::Ethernet).unwrap();
        let (s, out) = generate_to(&cfg, &fmt, Vec::new(), &mut |r| {
            recs.push(r.clone());
            Ok(())
        })
        .unwrap();
        assert_eq!(recs.len() as u64, s.exchanges);
        // Big bodies, binary and compressed.
        assert!(recs.iter().any(|r| r.url.contains("/media/") && r.resp_body_len >= 65_536 && r.content_encoding == "identity"));
        assert!(recs.iter().any(|r| r.url.contains("/static/") && r.resp_body_len >= 65_536 && r.content_encoding != "identity"));
        assert!(recs.iter().all(|r| r.resp_body_len <= 700_000));
        // Connections seen on the wire: first and last packet time, FIN/RST seen.
        let mut conns: std::collections::HashMap<SocketAddr, (u64, u64, bool)> = Default::default();
        let mut clients = std::collections::HashSet::new();
        for (ts, src, dst, flags, _) in segments(&out) {
            if flags & 0x12 == 0x02 {
                clients.insert(src);
            }
            let client = if clients.contains(&src) { src } else { dst };
            let e = conns.entry(client).or_insert((ts, ts, false));
            e.1 = ts;
            e.2 |= flags & 0x05 != 0;
        }
        let open: Vec<&TruthRecord> = recs.iter().filter(|r| r.impairment == Impairment::OpenAtEnd).collect();
        assert!(!open.is_empty());
        assert_eq!(s.unrecoverable_exchanges, open.len() as u64);
        // Exactly the connections with an open exchange end without FIN or RST.
        let unclosed: std::collections::HashSet<SocketAddr> = conns.iter().filter(|(_, v)| !v.2).map(|(k, _)| *k).collect();
        let open_clients: std::collections::HashSet<SocketAddr> = open.iter().map(|r| r.client).collect();
        assert_eq!(unclosed, open_clients);
        // An open keep-alive exchange: its connection's last packets are the response head.
        assert!(open.iter().any(|r| !r.url.contains("/api/v1/events/stream")));
        // Event streams are long-lived: each lasts at least 0.2 s per event it carried.
        let streams: Vec<&TruthRecord> = recs.iter().filter(|r| r.url.contains("/api/v1/events/stream")).collect();
        assert!(streams.len() >= 2);
        assert!(streams.iter().any(|r| r.resp_body_len > 0 && r.recoverable));
        for r in &streams {
            // An event is under 1000 bytes and follows the one before by 0.2 s or more.
            let events = r.resp_body_len.div_ceil(1000);
            let (first, last, _) = conns[&r.client];
            assert!(last - first >= 200_000 * events, "{} lasted {} µs", r.url, last - first);
        }
    }
}
