//! TCP connections: the flow table, per-direction reassembly, and the caps that bound them.
//!
//! Contract: a [`Shard`] owns the connections whose keys hash to it and takes their segments in
//! capture order ([`Shard::segment`]). Each direction is reassembled by a [`Reassembler`]:
//! sequence numbers are extended to 64 bits (wraparound is invisible), retransmissions are
//! dropped, out-of-order data is buffered (a copy; in-order data is passed on borrowed), and
//! where the first bytes seen and later ones overlap, the first win and a conflict is counted.
//! Each direction is reassembled by sequence number only: the order of records in a capture
//! file is not the order the receiver saw (multi-queue NICs, mirror ports, merged or rotated
//! files), so a segment often comes a few records after the acknowledgment that covers it.
//! A hole becomes a gap when a cap, the connection's end or its idle timeout forces it, or
//! after a grace: the receiver acknowledged more than [`FlowLimits::gap_grace_bytes`] past it,
//! or [`FlowLimits::gap_grace_ns`] of capture time went by since it first acknowledged past it.
//! Only bytes already handed on count as retransmissions; a segment that comes after its bytes
//! were declared missing is counted as late. Captures that start mid-connection work: the
//! first bytes seen start the stream.
//!
//! Everything a shard buffers is bounded by [`FlowLimits`]; a cap that is hit produces a gap
//! and a counter in [`FlowStats`], never growth. Connections end on FIN (both ways), RST, the
//! idle timeout (capture time) or the end of the capture.
//!
//! Flow knows TCP only: each connection's reassembled streams, gaps, ends and timestamps go to
//! its stream [`Handler`] (see [`crate::proto`]), which detects the protocol and produces the
//! exchanges. When the handler has nothing more to parse (another protocol, a tunnel, a
//! protocol not decoded), the connection is followed to its end without reassembly.

use std::collections::BTreeMap;

use rustc_hash::FxHashMap;

use crate::capture::Ts;
use crate::proto::{self, Cap, Chunk, ConnMeta, Ctx, ExchangeSink, Handler, Side};
use crate::wire::{Dir, FlowKey, TcpSegment, flags};

/// Caps on reassembly.
#[derive(Clone, Copy, Debug)]
pub struct FlowLimits {
    /// Out-of-order bytes buffered per connection (both directions, each piece counted with
    /// [`PIECE_OVERHEAD`] bytes of bookkeeping); past it the oldest hole is declared a gap.
    pub max_ooo_per_conn: usize,
    /// Out-of-order bytes buffered in all connections; past it the largest buffers are
    /// flushed with gaps. Checked between windows of the capture.
    pub max_ooo_total: usize,
    /// Connections tracked at once; past it the least recently active are ended. Checked
    /// between windows of the capture.
    pub max_flows: usize,
    /// A connection with no packet for this long (capture time, nanoseconds) is ended.
    pub idle_timeout_ns: i64,
    /// A hole the receiver acknowledged past by more than this many bytes is declared a gap
    /// (the segment was sent, and is not coming later in the file).
    pub gap_grace_bytes: u64,
    /// A hole the receiver acknowledged past this long ago (capture time, nanoseconds) is
    /// declared a gap.
    pub gap_grace_ns: i64,
}

impl Default for FlowLimits {
    fn default() -> Self {
        FlowLimits {
            max_ooo_per_conn: 4 << 20,
            max_ooo_total: 32 << 20,
            max_flows: 100_000,
            idle_timeout_ns: 120_000_000_000,
            gap_grace_bytes: 1 << 20,
            gap_grace_ns: 10_000_000_000,
        }
    }
}

/// Counters of the TCP layer.
#[derive(Clone, Copy, Debug, Default, serde::Serialize)]
pub struct FlowStats {
    pub segments: u64,
    pub payload_bytes: u64,
    pub flows: u64,
    pub retransmitted_segments: u64,
    /// Segments that came after their bytes had been declared missing (a gap).
    pub late_segments: u64,
    pub out_of_order_segments: u64,
    pub overlap_conflicts: u64,
    pub gaps: u64,
    pub gap_bytes: u64,
    pub snaplen_cut_bytes: u64,
    pub out_of_window_segments: u64,
    pub ooo_conn_cap_hits: u64,
    pub ooo_total_cap_hits: u64,
    pub flow_cap_evictions: u64,
    pub idle_timeouts: u64,
    pub closed_fin: u64,
    pub closed_rst: u64,
    pub ended_at_capture_end: u64,
    pub port_reuse: u64,
    /// SYNs or SYN-ACKs whose sequence number contradicts a live connection, ignored (the
    /// peer did not take them up).
    pub stray_syns: u64,
    pub segments_ignored: u64,
    /// RSTs followed by more data or a handshake on the same connection, and so not honoured.
    pub rst_ignored: u64,
    /// The most out-of-order bytes one direction of a connection held (what
    /// `max_ooo_per_conn` bounds). A peak: shards combine it by maximum, not by sum.
    pub ooo_conn_peak_bytes: u64,
}

#[derive(Debug)]
enum Piece {
    Data(Vec<u8>),
    /// Bytes known to exist but not captured (snap length).
    Hole(u64),
}

impl Piece {
    fn len(&self) -> u64 {
        match self {
            Piece::Data(d) => d.len() as u64,
            Piece::Hole(n) => *n,
        }
    }
}

#[derive(Debug)]
struct Ooo {
    piece: Piece,
    ts: Ts,
    frame: u64,
    /// The sender's acknowledgment carried by the segment (as an offset in the other stream).
    ack: Option<u64>,
}

/// What reassembly hands on.
#[derive(Debug)]
pub enum Ev<'a> {
    Data(&'a [u8], Chunk),
    /// Bytes missing: never captured, or skipped because of the cap.
    Gap(u64, Ts, Option<Cap>),
}

/// Reassembly of one direction of a connection.
#[derive(Debug, Default)]
pub struct Reassembler {
    started: bool,
    /// Offset of the next byte expected (64-bit extended sequence number).
    next: u64,
    ooo: BTreeMap<u64, Ooo>,
    ooo_bytes: usize,
    /// Where the FIN is, once seen.
    fin: Option<u64>,
    /// The highest acknowledgment the receiver sent for this stream.
    acked: Option<u64>,
    /// The end of the first hole and the capture time when the receiver first acknowledged
    /// past it.
    hole_acked: Option<(u64, Ts)>,
    /// The most recent gaps declared (start, end), to tell late segments from retransmissions.
    recent_gaps: [(u64, u64); 4],
    isn: Option<u32>,
}

const WINDOW: i64 = 1 << 30;

/// What a buffered out-of-order piece costs besides its payload (its map entry, its record
/// and its allocation), counted against the caps so that they bound memory: 100 000 one-byte
/// segments hold 100 KB of payload but some 13 MB of bookkeeping.
pub const PIECE_OVERHEAD: usize = 128;

impl Reassembler {
    /// The 64-bit offset of a sequence number, taken nearest to the next expected byte.
    pub fn ext(&self, seq: u32) -> u64 {
        let d = seq.wrapping_sub(self.next as u32) as i32 as i64;
        (self.next as i64 + d) as u64
    }

    fn start_at(&mut self, seq: u32) {
        self.started = true;
        // Start 2^32 up so that offsets a little before the start stay positive.
        self.next = (1u64 << 32) + seq as u64;
    }

    pub fn started(&self) -> bool {
        self.started
    }

    /// Offset of the next byte expected.
    pub fn next_offset(&self) -> u64 {
        self.next
    }

    /// Out-of-order bytes buffered, each piece counted with [`PIECE_OVERHEAD`].
    pub fn buffered(&self) -> usize {
        self.ooo_bytes
    }

    /// Whether everything up to the FIN was handed on.
    pub fn finished(&self) -> bool {
        self.fin.is_some_and(|f| self.next >= f)
    }

    /// Whether no byte before the FIN is still missing (nothing to wait for).
    fn settled(&self) -> bool {
        !self.started || self.fin.is_none_or(|f| self.next >= f)
    }

    /// A SYN was seen with this sequence number. Returns false when it contradicts the stream
    /// already seen (a new connection on the same ports).
    pub fn syn(&mut self, seq: u32) -> bool {
        match self.isn {
            Some(isn) if isn == seq => true,
            Some(_) => false,
            None if self.started && self.ext(seq.wrapping_add(1)) != self.next => {
                // Data was seen before the SYN (reordered capture): keep going.
                self.isn = Some(seq);
                true
            }
            None => {
                self.isn = Some(seq);
                self.start_at(seq.wrapping_add(1));
                true
            }
        }
    }

    /// The receiver acknowledged up to `ack` (raw). Declares a gap only past the grace.
    pub fn ack(&mut self, ack: u32, ts: Ts, limits: &FlowLimits, st: &mut FlowStats, out: &mut dyn FnMut(Ev<'_>)) {
        if !self.started {
            return;
        }
        let a = self.ext(ack);
        if (a as i64 - self.next as i64).abs() > WINDOW {
            return;
        }
        if self.acked.is_none_or(|x| a > x) {
            self.acked = Some(a);
        }
        self.grace(ts, limits, st, out);
    }

    /// Declares holes gaps once the receiver acknowledged past them by more than the grace
    /// (in bytes, or in capture time since it first did).
    fn grace(&mut self, ts: Ts, limits: &FlowLimits, st: &mut FlowStats, out: &mut dyn FnMut(Ev<'_>)) {
        while let Some((&s, _)) = self.ooo.first_key_value()
            && s > self.next
            && let Some(a) = self.acked
            && a >= s
        {
            let since = match self.hole_acked {
                Some((end, t0)) if end == s => t0,
                _ => {
                    self.hole_acked = Some((s, ts));
                    ts
                }
            };
            if a - s <= limits.gap_grace_bytes && ts.0.saturating_sub(since.0) < limits.gap_grace_ns {
                return;
            }
            self.hole_acked = None;
            self.gap_to(s, ts, None, st, out);
            self.drain(st, out);
        }
    }

    fn gap_to(&mut self, to: u64, ts: Ts, cap: Option<Cap>, st: &mut FlowStats, out: &mut dyn FnMut(Ev<'_>)) {
        let len = to - self.next;
        if len > 0 {
            st.gaps += 1;
            st.gap_bytes += len;
            self.recent_gaps.rotate_right(1);
            self.recent_gaps[0] = (self.next, to);
            out(Ev::Gap(len, ts, cap));
            self.next = to;
        }
    }

    /// Takes a segment's payload. `missing` bytes follow the payload but were not captured.
    #[allow(clippy::too_many_arguments)]
    pub fn data(
        &mut self,
        seq: u32,
        payload: &[u8],
        missing: u32,
        fin: bool,
        chunk: Chunk,
        limits: &FlowLimits,
        st: &mut FlowStats,
        out: &mut dyn FnMut(Ev<'_>),
    ) {
        let len = payload.len() as u64 + missing as u64;
        if !self.started {
            if len == 0 {
                return;
            }
            self.start_at(seq);
        }
        let s = self.ext(seq);
        let e = s + len;
        if (s as i64 - self.next as i64).abs() > WINDOW {
            st.out_of_window_segments += 1;
            return;
        }
        if fin && self.fin.is_none() {
            self.fin = Some(e);
        }
        if len == 0 {
            return;
        }
        if e <= self.next {
            if self.recent_gaps.iter().any(|&(gs, ge)| s < ge && e > gs) {
                st.late_segments += 1;
            } else {
                st.retransmitted_segments += 1;
            }
            return;
        }
        let ts = chunk.ts;
        if s <= self.next && !self.ooo.is_empty() {
            // Buffered data may overlap this segment: merge through the buffer so that the
            // bytes seen first win.
            let skip = (self.next - s) as usize;
            if skip > 0 {
                st.retransmitted_segments += 1;
            }
            let (p, m) = if skip <= payload.len() {
                (&payload[skip..], missing)
            } else {
                (&payload[payload.len()..], missing - (skip - payload.len()) as u32)
            };
            self.insert(self.next, p, m, chunk, st);
            self.drain(st, out);
            return;
        }
        if s <= self.next {
            let skip = (self.next - s) as usize;
            if skip > 0 {
                st.retransmitted_segments += 1;
            }
            if skip < payload.len() {
                let c = Chunk { offset: self.next, ..chunk };
                out(Ev::Data(&payload[skip..], c));
            }
            if missing > 0 {
                let hole_from = (s + payload.len() as u64).max(self.next);
                st.snaplen_cut_bytes += e - hole_from;
                self.next = hole_from;
                self.gap_to(e, ts, None, st, out);
            }
            self.next = e;
            self.drain(st, out);
            return;
        }
        // Out of order: keep a copy.
        st.out_of_order_segments += 1;
        self.insert(s, payload, missing, chunk, st);
        self.grace(ts, limits, st, out);
        while self.ooo_bytes > limits.max_ooo_per_conn && !self.ooo.is_empty() {
            st.ooo_conn_cap_hits += 1;
            self.skip_hole(ts, Some(Cap::MaxOooPerConn), st, out);
        }
        st.ooo_conn_peak_bytes = st.ooo_conn_peak_bytes.max(self.ooo_bytes as u64);
    }

    /// Declares the first hole a gap (caused by `cap`, if one forces it) and hands on what
    /// follows it.
    pub fn skip_hole(&mut self, ts: Ts, cap: Option<Cap>, st: &mut FlowStats, out: &mut dyn FnMut(Ev<'_>)) {
        if let Some((&s, _)) = self.ooo.first_key_value() {
            if s > self.next {
                self.gap_to(s, ts, cap, st, out);
            }
            self.drain(st, out);
        }
    }

    /// Hands on everything buffered, holes as gaps (the stream is over, or `cap` forces it).
    pub fn flush(&mut self, ts: Ts, cap: Option<Cap>, st: &mut FlowStats, out: &mut dyn FnMut(Ev<'_>)) {
        while !self.ooo.is_empty() {
            self.skip_hole(ts, cap, st, out);
        }
    }

    /// Buffers `[s, s+len)`, keeping bytes already buffered (first seen wins).
    fn insert(&mut self, s: u64, payload: &[u8], missing: u32, chunk: Chunk, st: &mut FlowStats) {
        let mut pieces: Vec<(u64, Piece)> = Vec::new();
        let data_end = s + payload.len() as u64;
        if !payload.is_empty() {
            pieces.push((s, Piece::Data(payload.to_vec())));
        }
        if missing > 0 {
            pieces.push((data_end, Piece::Hole(missing as u64)));
        }
        for (ps, piece) in pieces {
            let pe = ps + piece.len();
            // Walk the buffered segments that overlap [ps, pe) and fill only the uncovered parts.
            let mut cursor = ps;
            let overlapping: Vec<(u64, u64)> = self
                .ooo
                .range(..pe)
                .rev()
                .take_while(|(k, v)| **k + v.piece.len() > ps)
                .map(|(k, v)| (*k, *k + v.piece.len()))
                .collect::<Vec<_>>()
                .into_iter()
                .rev()
                .collect();
            let add = |from: u64, to: u64, this: &mut Reassembler| {
                if to <= from {
                    return;
                }
                let p = match &piece {
                    Piece::Data(d) => Piece::Data(d[(from - ps) as usize..(to - ps) as usize].to_vec()),
                    Piece::Hole(_) => Piece::Hole(to - from),
                };
                this.ooo_bytes += p.len() as usize + PIECE_OVERHEAD;
                this.ooo.insert(from, Ooo { piece: p, ts: chunk.ts, frame: chunk.frame, ack: chunk.ack });
            };
            for (os, oe) in overlapping {
                if os > cursor {
                    add(cursor, os.min(pe), self);
                }
                // Compare the overlap.
                let (cs, ce) = (os.max(ps), oe.min(pe));
                if let (Piece::Data(new), Some(Ooo { piece: Piece::Data(old), .. })) = (&piece, self.ooo.get(&os))
                    && ce > cs
                {
                    let a = &new[(cs - ps) as usize..(ce - ps) as usize];
                    let b = &old[(cs - os) as usize..(ce - os) as usize];
                    if a != b {
                        st.overlap_conflicts += 1;
                    }
                }
                cursor = cursor.max(oe);
            }
            if cursor < pe {
                add(cursor, pe, self);
            }
        }
    }

    /// Hands on buffered segments that are now in order.
    fn drain(&mut self, st: &mut FlowStats, out: &mut dyn FnMut(Ev<'_>)) {
        while let Some(entry) = self.ooo.first_entry() {
            let s = *entry.key();
            if s > self.next {
                break;
            }
            let seg = entry.remove();
            let len = seg.piece.len();
            self.ooo_bytes -= len as usize + PIECE_OVERHEAD;
            let e = s + len;
            if e <= self.next {
                continue;
            }
            let skip = (self.next - s) as usize;
            match &seg.piece {
                Piece::Data(d) => {
                    let c = Chunk { ts: seg.ts, frame: seg.frame, offset: self.next, ack: seg.ack };
                    out(Ev::Data(&d[skip..], c));
                    self.next = e;
                }
                Piece::Hole(_) => {
                    st.snaplen_cut_bytes += e - self.next;
                    self.gap_to(e, seg.ts, None, st, out);
                }
            }
        }
    }
}

/// One TCP connection.
struct Conn {
    key: FlowKey,
    id: u64,
    last_ts: Ts,
    dirs: [Reassembler; 2],
    client: Option<Dir>,
    syn_ts: Option<Ts>,
    synack_seen: bool,
    established_ts: Option<Ts>,
    handler: Option<Handler>,
    fin_seen: [bool; 2],
    /// The end of each direction's stream was told to the handler.
    fin_told: [bool; 2],
    /// A RST was seen then; the connection ends at the next sweep unless new data or a
    /// handshake follows (a RST the receiver ignored, as in some evasions).
    rst_at: Option<Ts>,
    /// Nothing more to parse (see [`Handler::is_done`]): segments are no longer reassembled.
    ignore: bool,
    closed: bool,
    /// A SYN or SYN-ACK that contradicted this live connection: it starts a new connection only
    /// if the peer acknowledges it.
    stray: Option<StraySyn>,
}

/// A handshake segment with a sequence number the live connection does not have.
#[derive(Clone, Copy, Debug)]
struct StraySyn {
    dir: Dir,
    isn: u32,
    ts: Ts,
    frame: u64,
    /// A SYN-ACK (else a SYN).
    synack: bool,
}

impl Conn {
    fn new(key: FlowKey, id: u64, ts: Ts) -> Conn {
        Conn {
            key,
            id,
            last_ts: ts,
            dirs: [Reassembler::default(), Reassembler::default()],
            client: None,
            syn_ts: None,
            synack_seen: false,
            established_ts: None,
            handler: None,
            fin_seen: [false; 2],
            fin_told: [false; 2],
            rst_at: None,
            ignore: false,
            closed: false,
            stray: None,
        }
    }

    /// Whether the connection is over as far as its packets show: FIN both ways, a RST, or
    /// silence past the idle timeout. A new handshake may then reuse its ports.
    fn over(&self, now: Ts, idle_ns: i64) -> bool {
        self.closed || (self.fin_seen[0] && self.fin_seen[1]) || self.rst_at.is_some() || now.0.saturating_sub(self.last_ts.0) > idle_ns
    }

    fn side(&self, dir: Dir) -> Side {
        if Some(dir) == self.client { Side::Client } else { Side::Server }
    }

    fn meta(&self) -> ConnMeta {
        let client = self.client.unwrap_or(Dir::AtoB);
        ConnMeta {
            id: self.id,
            client: self.key.src(client),
            server: self.key.src(client.other()),
            syn_ts: self.syn_ts,
            established_ts: self.established_ts,
        }
    }
}

/// Decides which side is the client from the first payload when no SYN was seen.
fn guess_client(key: &FlowKey, dir: Dir, payload: &[u8]) -> Dir {
    match proto::detect::sender_role(payload) {
        Some(Side::Client) => dir,
        Some(Side::Server) => dir.other(),
        None if proto::detect::first_port_is_server(key.a_port, key.b_port) => Dir::BtoA,
        None => Dir::AtoB,
    }
}

/// Connections of one shard, and what they produced.
pub struct Shard<S: ExchangeSink> {
    conns: FxHashMap<FlowKey, Conn>,
    pub limits: FlowLimits,
    pub proto_limits: proto::Limits,
    pub stats: FlowStats,
    pub proto_stats: proto::Stats,
    pub sink: S,
}

impl<S: ExchangeSink> Shard<S> {
    /// A shard whose connections' handlers work within `proto_limits` (the HTTP limits alone
    /// will do).
    pub fn new(limits: FlowLimits, proto_limits: impl Into<proto::Limits>, sink: S) -> Shard<S> {
        let proto_limits = proto_limits.into();
        Shard { conns: FxHashMap::default(), limits, proto_limits, stats: FlowStats::default(), proto_stats: proto::Stats::default(), sink }
    }

    /// Connections tracked now.
    pub fn open_flows(&self) -> usize {
        self.conns.len()
    }

    /// Out-of-order bytes buffered now.
    pub fn buffered_bytes(&self) -> usize {
        self.conns.values().map(|c| c.dirs[0].buffered() + c.dirs[1].buffered()).sum()
    }

    /// Bytes held by the protocol handlers now.
    pub fn handler_buffered_bytes(&self) -> usize {
        self.conns.values().filter_map(|c| c.handler.as_ref()).map(|h| h.buffered_bytes()).sum()
    }

    /// The earliest start of an exchange still in progress.
    pub fn pending_start(&self) -> Option<Ts> {
        self.conns
            .values()
            .filter(|c| !c.closed)
            .filter_map(|c| match c.handler.as_ref() {
                Some(h) => h.pending_start(),
                // A handshake without data yet: its first exchange will start at the SYN.
                None => c.syn_ts,
            })
            .min()
    }

    /// Takes one segment (in capture order).
    pub fn segment(&mut self, seg: &TcpSegment<'_>) {
        self.stats.segments += 1;
        self.stats.payload_bytes += seg.payload.len() as u64;
        let syn = seg.has(flags::SYN);
        let has_data = !seg.payload.is_empty() || seg.missing > 0;
        let mut restart = false;
        let idle = self.limits.idle_timeout_ns;
        if let Some(c) = self.conns.get_mut(&seg.key) {
            // A new SYN on closed ports, or one that contradicts the stream seen: a new
            // connection when the old one is over; else a stray SYN, taken up only if the
            // peer acknowledges it.
            let new_syn = syn && !seg.has(flags::ACK);
            let contradicts = c.dirs[seg.dir.idx()].isn.is_some_and(|i| i != seg.seq);
            if new_syn && contradicts && !c.over(seg.ts, idle) {
                self.stats.stray_syns += 1;
                c.stray = Some(StraySyn { dir: seg.dir, isn: seg.seq, ts: seg.ts, frame: seg.frame, synack: false });
                return;
            }
            restart = new_syn && (c.closed || contradicts);
        }
        if restart {
            self.stats.port_reuse += 1;
            self.end_conn(seg.key, false, seg.ts, None);
            self.conns.remove(&seg.key);
        } else if let Some(c) = self.conns.get(&seg.key)
            && let Some(st) = c.stray
            && seg.dir == st.dir.other()
            && seg.has(flags::ACK)
            && seg.ack == st.isn.wrapping_add(1)
            && (st.synack || syn)
        {
            // The peer took the stray handshake up: it is a new connection on these ports.
            self.stats.port_reuse += 1;
            self.end_conn(seg.key, false, seg.ts, None);
            self.stats.flows += 1;
            let mut n = Conn::new(seg.key, st.frame, st.ts);
            n.dirs[st.dir.idx()].syn(st.isn);
            if st.synack {
                n.client = Some(st.dir.other());
                n.synack_seen = true;
            } else {
                n.client = Some(st.dir);
                n.syn_ts = Some(st.ts);
            }
            self.conns.insert(seg.key, n);
        }
        if !self.conns.contains_key(&seg.key) {
            if !syn && !has_data {
                self.stats.segments_ignored += 1;
                return;
            }
            self.stats.flows += 1;
            self.conns.insert(seg.key, Conn::new(seg.key, seg.frame, seg.ts));
        }
        let conn = self.conns.get_mut(&seg.key).expect("inserted above");
        if conn.closed {
            self.stats.segments_ignored += 1;
            return;
        }
        conn.last_ts = seg.ts;
        let d = seg.dir.idx();
        if seg.has(flags::FIN) {
            conn.fin_seen[d] = true;
        }
        if seg.has(flags::RST) {
            conn.rst_at.get_or_insert(seg.ts);
        } else if conn.rst_at.is_some() {
            let r = &conn.dirs[d];
            let new_data = has_data && (!r.started() || r.ext(seg.seq) + seg.payload.len() as u64 > r.next_offset());
            if syn || new_data {
                conn.rst_at = None;
                self.stats.rst_ignored += 1;
            }
        }
        // Handshake.
        if syn {
            if !seg.has(flags::ACK) {
                conn.client.get_or_insert(seg.dir);
                conn.syn_ts.get_or_insert(seg.ts);
            } else {
                conn.client.get_or_insert(seg.dir.other());
                conn.synack_seen = true;
            }
            let contradicts = conn.dirs[d].isn.is_some_and(|i| i != seg.seq);
            if contradicts && !conn.over(seg.ts, idle) {
                // A SYN-ACK with another sequence number on a live connection (the SYN-ACK
                // of a SYN already taken up, seen above, never gets here).
                self.stats.stray_syns += 1;
                conn.stray = Some(StraySyn { dir: seg.dir, isn: seg.seq, ts: seg.ts, frame: seg.frame, synack: true });
                return;
            }
            if !conn.dirs[d].syn(seg.seq) {
                // A different connection on the same ports.
                self.stats.port_reuse += 1;
                self.end_conn(seg.key, false, seg.ts, None);
                self.stats.flows += 1;
                let mut c = Conn::new(seg.key, seg.frame, seg.ts);
                c.dirs[d].syn(seg.seq);
                if !seg.has(flags::ACK) {
                    c.client = Some(seg.dir);
                    c.syn_ts = Some(seg.ts);
                }
                self.conns.insert(seg.key, c);
            }
            let conn = self.conns.get_mut(&seg.key).expect("present");
            if let Some(h) = conn.handler.as_mut() {
                let side = if Some(seg.dir) == conn.client { Side::Client } else { Side::Server };
                h.clean_start(side);
            }
        } else if seg.has(flags::ACK) && conn.synack_seen && conn.established_ts.is_none() && Some(seg.dir) == conn.client {
            conn.established_ts = Some(seg.ts);
        }
        let conn = self.conns.get_mut(&seg.key).expect("present");
        if conn.ignore {
            if seg.has(flags::FIN) {
                self.maybe_close(seg);
            }
            return;
        }
        if has_data && conn.handler.is_none() {
            let client = *conn.client.get_or_insert_with(|| guess_client(&seg.key, seg.dir, seg.payload));
            if conn.established_ts.is_none() && conn.synack_seen && seg.dir == client {
                conn.established_ts = Some(seg.ts);
            }
            let mut h = Handler::new(conn.meta());
            if conn.dirs[client.idx()].isn.is_some() {
                h.clean_start(Side::Client);
            }
            if conn.dirs[client.other().idx()].isn.is_some() {
                h.clean_start(Side::Server);
            }
            conn.handler = Some(h);
        }
        let Shard { conns, limits, proto_limits, stats, proto_stats, sink } = self;
        let conn = conns.get_mut(&seg.key).expect("present");
        let side = conn.side(seg.dir);
        let Conn { dirs, handler, .. } = conn;
        let (a, b) = dirs.split_at_mut(1);
        let (this, other) = if d == 0 { (&mut a[0], &mut b[0]) } else { (&mut b[0], &mut a[0]) };
        let mut cx = Ctx { limits: proto_limits, stats: proto_stats, sink };
        // The per-connection cap covers both directions: this one gets what the other leaves.
        let limits = &FlowLimits { max_ooo_per_conn: limits.max_ooo_per_conn.saturating_sub(other.buffered()), ..*limits };
        // The acknowledgment first: it may declare a gap in the other direction.
        if seg.has(flags::ACK)
            && let Some(h) = handler.as_mut()
        {
            let other_side = if side == Side::Client { Side::Server } else { Side::Client };
            other.ack(seg.ack, seg.ts, limits, stats, &mut |ev| deliver(h, other_side, ev, &mut cx));
        }
        let ack = (seg.has(flags::ACK) && other.started()).then(|| other.ext(seg.ack));
        let chunk = Chunk { ts: seg.ts, frame: seg.frame, offset: 0, ack };
        let payload_seq = if syn { seg.seq.wrapping_add(1) } else { seg.seq };
        match handler.as_mut() {
            Some(h) => {
                this.data(payload_seq, seg.payload, seg.missing, seg.has(flags::FIN), chunk, limits, stats, &mut |ev| {
                    deliver(h, side, ev, &mut cx)
                });
                if this.finished() && !conn.fin_told[d] {
                    conn.fin_told[d] = true;
                    h.side_closed(side, &mut cx);
                }
            }
            None => {
                this.data(payload_seq, seg.payload, seg.missing, seg.has(flags::FIN), chunk, limits, stats, &mut |_| {});
            }
        }
        if let Some(h) = handler.as_ref()
            && h.is_done()
        {
            // Nothing more to parse: stop reassembling.
            conn.ignore = true;
            conn.dirs[0] = Reassembler::default();
            conn.dirs[1] = Reassembler::default();
        }
        self.maybe_close(seg);
    }

    fn maybe_close(&mut self, seg: &TcpSegment<'_>) {
        let Some(conn) = self.conns.get_mut(&seg.key) else { return };
        let both_fin = conn.fin_seen[0] && conn.fin_seen[1];
        let done = conn.dirs[0].finished() && conn.dirs[1].finished();
        // With bytes still missing before a FIN, the segments may come later in the file:
        // the connection stays open for them (see `sweep`).
        let settled = conn.dirs[0].settled() && conn.dirs[1].settled();
        if done || (both_fin && seg.has(flags::FIN) && settled) {
            self.stats.closed_fin += 1;
            self.end_conn(seg.key, true, seg.ts, None);
        }
    }

    /// Ends a connection: hands on what is buffered, tells the handler, and leaves a closed
    /// marker until the next sweep (so stray late segments do not start a new connection).
    /// `cap`: the cap that ends it early, if one does.
    fn end_conn(&mut self, key: FlowKey, clean: bool, ts: Ts, cap: Option<Cap>) {
        let Shard { conns, proto_limits, stats, proto_stats, sink, .. } = self;
        let Some(conn) = conns.get_mut(&key) else { return };
        if conn.closed {
            return;
        }
        conn.closed = true;
        let client = conn.client;
        if let Some(h) = conn.handler.as_mut() {
            let mut cx = Ctx { limits: proto_limits, stats: proto_stats, sink };
            for d in [Dir::AtoB, Dir::BtoA] {
                let side = if Some(d) == client { Side::Client } else { Side::Server };
                conn.dirs[d.idx()].flush(ts, cap, stats, &mut |ev| deliver(h, side, ev, &mut cx));
            }
            h.end(clean, ts, cap, &mut cx);
        }
        conn.handler = None;
        conn.dirs = [Reassembler::default(), Reassembler::default()];
    }

    /// Between windows: removes closed connections and ends idle ones (capture time `now`).
    pub fn sweep(&mut self, now: Ts) {
        let idle = self.limits.idle_timeout_ns;
        let mut reset: Vec<(u64, FlowKey, Ts)> =
            self.conns.values().filter(|c| !c.closed).filter_map(|c| c.rst_at.map(|t| (c.id, c.key, t))).collect();
        reset.sort_unstable();
        for (_, key, at) in reset {
            self.stats.closed_rst += 1;
            self.end_conn(key, true, at, None);
        }
        // Closed both ways with bytes missing before a FIN: once the grace has passed without
        // them, the connection ends with its gaps.
        let grace = self.limits.gap_grace_ns;
        let mut fin_waiting: Vec<(u64, FlowKey)> = self
            .conns
            .values()
            .filter(|c| !c.closed && c.fin_seen[0] && c.fin_seen[1] && now.0.saturating_sub(c.last_ts.0) > grace)
            .map(|c| (c.id, c.key))
            .collect();
        fin_waiting.sort_unstable();
        for (_, key) in fin_waiting {
            self.stats.closed_fin += 1;
            self.end_conn(key, true, now, None);
        }
        let expired: Vec<FlowKey> =
            self.conns.values().filter(|c| !c.closed && now.0.saturating_sub(c.last_ts.0) > idle).map(|c| c.key).collect();
        for key in expired {
            self.stats.idle_timeouts += 1;
            self.end_conn(key, false, now, Some(Cap::IdleTimeout));
        }
        self.conns.retain(|_, c| !c.closed);
    }

    /// The connections (id, last activity, buffered bytes), for the caps checked between
    /// windows.
    pub fn conn_usage(&self) -> Vec<(FlowKey, u64, Ts, usize)> {
        self.conns.values().map(|c| (c.key, c.id, c.last_ts, c.dirs[0].buffered() + c.dirs[1].buffered())).collect()
    }

    /// Memory held per connection (id, out-of-order bytes + handler bytes).
    pub fn conn_memory(&self) -> Vec<(u64, usize)> {
        self.conns
            .values()
            .map(|c| (c.id, c.dirs[0].buffered() + c.dirs[1].buffered() + c.handler.as_ref().map_or(0, |h| h.buffered_bytes())))
            .collect()
    }

    /// Bytes held by the bodies in progress of each connection that has some (key, id, bytes
    /// of bodies not cut yet), and by all of them in all.
    pub fn body_usage(&self) -> (Vec<(FlowKey, u64, usize)>, usize) {
        let mut all = 0;
        let mut v = Vec::new();
        for c in self.conns.values() {
            if let Some(h) = c.handler.as_ref() {
                let (uncut, n) = h.bodies_held();
                all += n;
                if uncut > 0 {
                    v.push((c.key, c.id, uncut));
                }
            }
        }
        (v, all)
    }

    /// Cuts a connection's bodies in progress (the total cap on bodies was hit).
    pub fn cut_bodies(&mut self, key: FlowKey) {
        if let Some(h) = self.conns.get_mut(&key).and_then(|c| c.handler.as_mut()) {
            h.cut_bodies();
        }
    }

    /// Ends a connection because a global cap was hit.
    pub fn evict(&mut self, key: FlowKey, now: Ts) {
        self.stats.flow_cap_evictions += 1;
        self.end_conn(key, false, now, Some(Cap::MaxFlows));
        self.conns.remove(&key);
    }

    /// Flushes a connection's out-of-order buffers with gaps (the total cap was hit).
    pub fn flush_buffers(&mut self, key: FlowKey, now: Ts) {
        let Shard { conns, proto_limits, stats, proto_stats, sink, .. } = self;
        let Some(conn) = conns.get_mut(&key) else { return };
        stats.ooo_total_cap_hits += 1;
        let client = conn.client;
        let Conn { dirs, handler, .. } = conn;
        let mut cx = Ctx { limits: proto_limits, stats: proto_stats, sink };
        for d in [Dir::AtoB, Dir::BtoA] {
            let side = if Some(d) == client { Side::Client } else { Side::Server };
            match handler.as_mut() {
                Some(h) => dirs[d.idx()].flush(now, Some(Cap::MaxOooTotal), stats, &mut |ev| deliver(h, side, ev, &mut cx)),
                None => dirs[d.idx()].flush(now, Some(Cap::MaxOooTotal), stats, &mut |_| {}),
            }
        }
    }

    /// Ends every connection (end of the capture).
    pub fn finish(&mut self, now: Ts) {
        let mut keys: Vec<(u64, FlowKey, Option<Ts>)> =
            self.conns.values().filter(|c| !c.closed).map(|c| (c.id, c.key, c.rst_at)).collect();
        keys.sort_unstable();
        for (_, key, rst) in keys {
            match rst {
                Some(at) => {
                    self.stats.closed_rst += 1;
                    self.end_conn(key, true, at, None);
                }
                None => {
                    self.stats.ended_at_capture_end += 1;
                    self.end_conn(key, false, now, None);
                }
            }
        }
        self.conns.clear();
    }
}

fn deliver(h: &mut Handler, side: Side, ev: Ev<'_>, cx: &mut Ctx<'_>) {
    match ev {
        Ev::Data(bytes, chunk) => h.data(side, bytes, chunk, cx),
        Ev::Gap(len, ts, cap) => h.gap(side, len, ts, cap, cx),
    }
}

#[cfg(test)]
mod tests;
