//! A TCP connection simulator: handshake, MSS-sized data segments with
//! correct sequence and acknowledgment numbers, delayed ACKs from the peer,
//! FIN or RST teardown, and deterministic impairments.
//!
//! The capture point is taken to be next to the client: data the client
//! sends is ACKed one RTT later, data the server sends is ACKed after a
//! short delay (`ack_delay_ns`).
//!
//! A connection queues its packets ([`Pkt`], timestamps non-decreasing)
//! with their payloads in a per-connection arena; the traffic model pops
//! them one at a time in global time order ([`TcpConn::emit_next`]), and
//! the arena is emptied whenever the queue drains, so memory is bounded by
//! one batch (one exchange) per open connection.

use std::collections::VecDeque;
use std::io;
use std::net::SocketAddr;

use super::pcap::{MAX_HEADERS, PacketSink, TcpFields, build_headers, flags};
use super::rng::Rng;

/// Timing and segmentation of a connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TcpConfig {
    /// Largest payload per segment (default 1460).
    pub mss: usize,
    /// Round-trip time between client and server.
    pub rtt_ns: u64,
    /// Spacing between consecutive data segments of one sender.
    pub seg_gap_ns: u64,
    /// Delay before the client ACKs server data (the capture is at the client).
    pub ack_delay_ns: u64,
    /// The receiver ACKs every this many segments, and the last one.
    pub ack_every: u32,
    /// Advertised window.
    pub window: u16,
}

impl Default for TcpConfig {
    fn default() -> Self {
        TcpConfig { mss: 1460, rtt_ns: 20_000_000, seg_gap_ns: 12_000, ack_delay_ns: 40_000, ack_every: 2, window: 64_240 }
    }
}

/// Direction of a packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Dir {
    /// Client to server.
    ToServer,
    /// Server to client.
    ToClient,
}

impl Dir {
    fn idx(self) -> usize {
        match self {
            Dir::ToServer => 0,
            Dir::ToClient => 1,
        }
    }

    pub fn peer(self) -> Dir {
        match self {
            Dir::ToServer => Dir::ToClient,
            Dir::ToClient => Dir::ToServer,
        }
    }
}

/// One queued packet; its payload is `arena[start..start + len]`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Pkt {
    pub ts_ns: u64,
    pub dir: Dir,
    pub flags: u8,
    pub seq: u32,
    pub ack: u32,
    pub start: usize,
    pub len: usize,
    /// Carry an MSS option (SYN, SYN-ACK).
    pub mss_opt: bool,
}

impl Pkt {
    /// Bytes this packet will take in the capture file, given the per-record
    /// overhead (record header plus link header), for size budgeting.
    pub fn wire_estimate(&self, v6: bool, overhead: u64) -> u64 {
        overhead + if v6 { 40 } else { 20 } + if self.mss_opt { 24 } else { 20 } + self.len as u64
    }

    fn is_data(&self) -> bool {
        self.len > 0
    }
}

/// One simulated TCP connection.
#[derive(Debug)]
pub struct TcpConn {
    pub client: SocketAddr,
    pub server: SocketAddr,
    /// Capture interface (pcapng) the packets are written on.
    pub iface: u32,
    pub cfg: TcpConfig,
    next_seq: [u32; 2],
    ip_id: [u16; 2],
    pkts: VecDeque<Pkt>,
    arena: Vec<u8>,
    queued: u64,
    last_ts: u64,
    overhead: u64,
}

impl TcpConn {
    /// A connection whose next sequence numbers are the two ISNs (call
    /// [`handshake`](Self::handshake) to put the SYNs on the wire, or skip
    /// it for a connection that starts mid-stream).
    pub fn new(client: SocketAddr, server: SocketAddr, iface: u32, cfg: TcpConfig, isn_client: u32, isn_server: u32) -> TcpConn {
        assert_eq!(client.is_ipv4(), server.is_ipv4(), "client and server must share an address family");
        TcpConn {
            client,
            server,
            iface,
            cfg,
            next_seq: [isn_client, isn_server],
            ip_id: [(isn_client >> 16) as u16, (isn_server >> 16) as u16],
            pkts: VecDeque::new(),
            arena: Vec::new(),
            queued: 0,
            last_ts: 0,
            overhead: 30,
        }
    }

    pub fn is_ipv6(&self) -> bool {
        self.client.is_ipv6()
    }

    /// Next sequence number `dir`'s sender will use.
    pub fn seq(&self, dir: Dir) -> u32 {
        self.next_seq[dir.idx()]
    }

    pub fn set_seq(&mut self, dir: Dir, seq: u32) {
        self.next_seq[dir.idx()] = seq;
    }

    /// Timestamp of the next queued packet.
    pub fn next_ts(&self) -> Option<u64> {
        self.pkts.front().map(|p| p.ts_ns)
    }

    /// Timestamp of the last packet emitted (or queued, whichever is later).
    pub fn last_ts(&self) -> u64 {
        self.pkts.back().map_or(self.last_ts, |p| p.ts_ns.max(self.last_ts))
    }

    /// Sets the per-record overhead (record header plus link header) used
    /// by [`queued_bytes`](Self::queued_bytes); default 30 (pcap, Ethernet).
    pub fn set_record_overhead(&mut self, bytes: u64) {
        self.overhead = bytes;
    }

    /// Estimated capture bytes of the queued packets.
    pub fn queued_bytes(&self) -> u64 {
        self.queued
    }

    pub fn queued_packets(&self) -> usize {
        self.pkts.len()
    }

    /// The payload arena; append message bytes here and pass the range to
    /// [`send_range`](Self::send_range) to avoid a copy.
    pub fn arena_mut(&mut self) -> &mut Vec<u8> {
        &mut self.arena
    }

    pub fn arena(&self) -> &[u8] {
        &self.arena
    }

    /// Appends bytes to the arena, returning their start offset.
    pub fn append(&mut self, data: &[u8]) -> usize {
        let s = self.arena.len();
        self.arena.extend_from_slice(data);
        s
    }

    /// Queues a packet as is (adversarial layouts). Keep timestamps
    /// non-decreasing.
    pub fn push(&mut self, p: Pkt) {
        self.queued += p.wire_estimate(self.is_ipv6(), self.overhead);
        self.pkts.push_back(p);
    }

    /// The queue.
    pub fn pkts(&self) -> &VecDeque<Pkt> {
        &self.pkts
    }

    /// The queue, for layouts that edit it in place: keep timestamps
    /// non-decreasing (swap contents, not times), and payload ranges
    /// inside the arena.
    pub fn pkts_mut(&mut self) -> &mut VecDeque<Pkt> {
        &mut self.pkts
    }

    /// Sets the connection's clock (the time of its last packet) for a
    /// connection that starts without a handshake.
    pub fn set_clock(&mut self, ts: u64) {
        self.last_ts = ts;
    }

    fn pure(&self, ts: u64, dir: Dir, fl: u8) -> Pkt {
        Pkt { ts_ns: ts, dir, flags: fl, seq: self.seq(dir), ack: self.seq(dir.peer()), start: 0, len: 0, mss_opt: false }
    }

    /// SYN at `ts`, SYN-ACK one RTT later, ACK right after. Returns the
    /// time of the final ACK.
    pub fn handshake(&mut self, ts: u64) -> u64 {
        let mut syn = self.pure(ts, Dir::ToServer, flags::SYN);
        syn.ack = 0;
        syn.mss_opt = true;
        self.push(syn);
        self.next_seq[0] = self.next_seq[0].wrapping_add(1);
        let t1 = ts + self.cfg.rtt_ns;
        let mut sa = self.pure(t1, Dir::ToClient, flags::SYN | flags::ACK);
        sa.mss_opt = true;
        self.push(sa);
        self.next_seq[1] = self.next_seq[1].wrapping_add(1);
        let t2 = t1 + self.cfg.ack_delay_ns / 4 + 1_000;
        let ack = self.pure(t2, Dir::ToServer, flags::ACK);
        self.push(ack);
        t2
    }

    /// A lone SYN (for SYN-only flows).
    pub fn syn_only(&mut self, ts: u64) {
        let mut syn = self.pure(ts, Dir::ToServer, flags::SYN);
        syn.ack = 0;
        syn.mss_opt = true;
        self.push(syn);
    }

    /// Sends `data` from `dir` starting at `ts` (copied into the arena).
    /// Returns the time of the last data segment.
    pub fn send(&mut self, dir: Dir, data: &[u8], ts: u64) -> u64 {
        let s = self.append(data);
        self.send_range(dir, s, s + data.len(), ts)
    }

    /// Sends `arena[start..end]` from `dir` in MSS-sized segments spaced by
    /// `seg_gap_ns` from `ts` (and never more than the peer's window in
    /// flight), with the peer's ACKs; the queue is kept in time order.
    /// Returns the time of the last data segment.
    pub fn send_range(&mut self, dir: Dir, start: usize, end: usize, ts: u64) -> u64 {
        let mss = self.cfg.mss.max(1);
        let peer_delay = match dir {
            Dir::ToServer => self.cfg.rtt_ns,
            Dir::ToClient => self.cfg.ack_delay_ns,
        };
        let window = usize::from(self.cfg.window).max(mss + 1);
        // (arrival time, offset acknowledged) of the peer's ACKs so far: a
        // segment waits until the bytes in flight fit strictly inside the
        // peer's window.
        let mut acks: Vec<(u64, usize)> = Vec::new();
        let mut acked = start;
        let mut ai = 0;
        let mut t = ts;
        let mut off = start;
        let mut n = 0u32;
        let mut last_t = ts;
        while off < end {
            let len = mss.min(end - off);
            let last = off + len == end;
            while ai < acks.len() && acks[ai].0 <= t {
                acked = acks[ai].1;
                ai += 1;
            }
            while off + len - acked >= window && ai < acks.len() {
                t = t.max(acks[ai].0 + 1_000);
                acked = acks[ai].1;
                ai += 1;
            }
            let fl = if last { flags::ACK | flags::PSH } else { flags::ACK };
            let p = Pkt { ts_ns: t, dir, flags: fl, seq: self.seq(dir), ack: self.seq(dir.peer()), start: off, len, mss_opt: false };
            self.push(p);
            self.next_seq[dir.idx()] = self.next_seq[dir.idx()].wrapping_add(len as u32);
            n += 1;
            if last || n.is_multiple_of(self.cfg.ack_every.max(1)) {
                let ack = self.pure(t + peer_delay, dir.peer(), flags::ACK);
                self.push(ack);
                acks.push((t + peer_delay, off + len));
            }
            last_t = t;
            t += self.cfg.seg_gap_ns;
            off += len;
        }
        self.sort_queue();
        last_t
    }

    /// Stable sort by time: equal timestamps keep their queueing order, so
    /// impairments (which keep or copy neighbours' timestamps) survive it.
    /// The queue is nearly sorted, which the adaptive sort handles in
    /// linear time.
    fn sort_queue(&mut self) {
        self.pkts.make_contiguous().sort_by_key(|p| p.ts_ns);
    }

    /// `initiator` sends FIN at `ts`, the peer answers FIN-ACK, the
    /// initiator ACKs. Returns the time of the final ACK.
    pub fn fin(&mut self, initiator: Dir, ts: u64) -> u64 {
        let delay = match initiator {
            Dir::ToServer => self.cfg.rtt_ns,
            Dir::ToClient => self.cfg.ack_delay_ns,
        };
        let f = self.pure(ts, initiator, flags::FIN | flags::ACK);
        self.push(f);
        self.next_seq[initiator.idx()] = self.next_seq[initiator.idx()].wrapping_add(1);
        let t1 = ts + delay;
        let g = self.pure(t1, initiator.peer(), flags::FIN | flags::ACK);
        self.push(g);
        self.next_seq[initiator.peer().idx()] = self.next_seq[initiator.peer().idx()].wrapping_add(1);
        let t2 = t1 + self.cfg.ack_delay_ns;
        let a = self.pure(t2, initiator, flags::ACK);
        self.push(a);
        self.sort_queue();
        t2
    }

    /// `dir` sends RST-ACK at `ts`.
    pub fn rst(&mut self, dir: Dir, ts: u64) -> u64 {
        let r = self.pure(ts, dir, flags::RST | flags::ACK);
        self.push(r);
        self.sort_queue();
        ts
    }

    /// Writes the next queued packet to `sink`. Returns false when the
    /// queue was empty.
    pub fn emit_next<S: PacketSink + ?Sized>(&mut self, sink: &mut S) -> io::Result<bool> {
        let Some(p) = self.pkts.pop_front() else {
            return Ok(false);
        };
        self.queued = self.queued.saturating_sub(p.wire_estimate(self.is_ipv6(), self.overhead));
        let (src, dst, ttl) = match p.dir {
            Dir::ToServer => (self.client, self.server, 64),
            Dir::ToClient => (self.server, self.client, 56),
        };
        let tcp = TcpFields {
            src_port: src.port(),
            dst_port: dst.port(),
            seq: p.seq,
            ack: p.ack,
            flags: p.flags,
            window: self.cfg.window,
            mss_option: if p.mss_opt { self.cfg.mss as u16 } else { 0 },
        };
        let payload = &self.arena[p.start..p.start + p.len];
        let id = &mut self.ip_id[p.dir.idx()];
        *id = id.wrapping_add(1);
        let mut hdr = [0u8; MAX_HEADERS];
        let n = build_headers(src.ip(), dst.ip(), &tcp, payload, *id, ttl, &mut hdr);
        sink.ip_packet(p.ts_ns, self.iface, &[&hdr[..n], payload])?;
        self.last_ts = p.ts_ns;
        if self.pkts.is_empty() {
            self.arena.clear();
            self.queued = 0;
        }
        Ok(true)
    }

    // -- impairments: each edits the queue from index `from` on --------

    fn data_indices(&self, from: usize, dir: Option<Dir>) -> Vec<usize> {
        (from..self.pkts.len()).filter(|&i| self.pkts[i].is_data() && dir.is_none_or(|d| self.pkts[i].dir == d)).collect()
    }

    /// Swaps two consecutive data segments of one direction (contents,
    /// not timestamps), so the later one is captured first. Returns the
    /// direction touched, or None when no such pair exists.
    pub fn reorder_adjacent(&mut self, from: usize, rng: &mut Rng) -> Option<Dir> {
        let mut pairs = Vec::new();
        for d in [Dir::ToServer, Dir::ToClient] {
            let idx = self.data_indices(from, Some(d));
            for w in idx.windows(2) {
                pairs.push((w[0], w[1]));
            }
        }
        if pairs.is_empty() {
            return None;
        }
        let (a, b) = pairs[rng.below(pairs.len() as u64) as usize];
        let (pa, pb) = (self.pkts[a], self.pkts[b]);
        self.pkts[a] = Pkt { ts_ns: pa.ts_ns, ..pb };
        self.pkts[b] = Pkt { ts_ns: pb.ts_ns, ..pa };
        Some(pa.dir)
    }

    /// Captures a data segment a second time, a few packets later. With
    /// `conflict`, the copy covers the segment's tail with different bytes
    /// (an overlapping retransmission that disagrees with the original).
    /// Returns the direction touched.
    pub fn retransmit(&mut self, from: usize, rng: &mut Rng, conflict: bool) -> Option<Dir> {
        let idx = self.data_indices(from, None);
        if idx.is_empty() {
            return None;
        }
        let i = idx[rng.below(idx.len() as u64) as usize];
        let mut p = self.pkts[i];
        if conflict {
            let skip = p.len / 4;
            let s = self.arena.len();
            for k in p.start + skip..p.start + p.len {
                let b = self.arena[k];
                // A different printable byte.
                let nb = if b == b'#' { b'%' } else { b'#' };
                self.arena.push(nb);
            }
            p.seq = p.seq.wrapping_add(skip as u32);
            p.start = s;
            p.len -= skip;
        }
        let span = (self.pkts.len() - i).min(8) as u64;
        let at = i + 1 + rng.below(span) as usize;
        p.ts_ns = self.pkts[at - 1].ts_ns;
        self.queued += p.wire_estimate(self.is_ipv6(), self.overhead);
        self.pkts.insert(at, p);
        Some(p.dir)
    }

    /// Removes one data segment (a capture drop: the peer still ACKs it).
    /// Returns the direction touched.
    pub fn drop_segment(&mut self, from: usize, rng: &mut Rng) -> Option<Dir> {
        let idx = self.data_indices(from, None);
        if idx.is_empty() {
            return None;
        }
        let i = idx[rng.below(idx.len() as u64) as usize];
        let p = self.pkts.remove(i)?;
        self.queued = self.queued.saturating_sub(p.wire_estimate(self.is_ipv6(), self.overhead));
        Some(p.dir)
    }

    /// Drops the first `n` queued packets from index `from` (a capture that
    /// starts in the middle of an exchange).
    pub fn cut_front(&mut self, from: usize, n: usize) {
        for _ in 0..n {
            if from >= self.pkts.len() {
                break;
            }
            if let Some(p) = self.pkts.remove(from) {
                self.queued = self.queued.saturating_sub(p.wire_estimate(self.is_ipv6(), self.overhead));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::synth::pcap::CountingSink;

    fn conn(isn_c: u32, isn_s: u32) -> TcpConn {
        TcpConn::new("10.0.0.1:40000".parse().unwrap(), "10.0.0.2:80".parse().unwrap(), 0, TcpConfig::default(), isn_c, isn_s)
    }

    #[test]
    fn seq_and_ack_numbers_follow_the_bytes() {
        let mut c = conn(u32::MAX - 10, 1000);
        let t = c.handshake(0);
        let req = vec![b'a'; 3000];
        let t = c.send(Dir::ToServer, &req, t + 10);
        let resp = vec![b'b'; 100];
        let t = c.send(Dir::ToClient, &resp, t + 1_000_000);
        c.fin(Dir::ToServer, t + 10);
        let pk: Vec<Pkt> = c.pkts().iter().copied().collect();
        // SYN, SYN-ACK, ACK
        assert_eq!(pk[0].flags, flags::SYN);
        assert_eq!(pk[1].ack, u32::MAX - 9);
        let data: Vec<&Pkt> = pk.iter().filter(|p| p.len > 0 && p.dir == Dir::ToServer).collect();
        assert_eq!(data.len(), 3);
        assert_eq!(data[0].seq, u32::MAX - 9);
        assert_eq!(data[1].seq, (u32::MAX - 9).wrapping_add(1460));
        assert_eq!(data[2].len, 80);
        assert_eq!(c.seq(Dir::ToServer), (u32::MAX - 9).wrapping_add(3001));
        assert_eq!(c.seq(Dir::ToClient), 1000 + 1 + 100 + 1);
        for w in pk.windows(2) {
            assert!(w[0].ts_ns <= w[1].ts_ns);
        }
        let mut sink = CountingSink::default();
        while c.emit_next(&mut sink).unwrap() {}
        assert_eq!(sink.packets, pk.len() as u64);
        assert!(c.arena().is_empty());
    }

    #[test]
    fn impairments_keep_time_order() {
        let mut c = conn(5, 6);
        c.handshake(0);
        let from = c.queued_packets();
        c.send(Dir::ToClient, &[b'x'; 20_000], 100_000);
        let mut r = Rng::new(3);
        assert!(c.reorder_adjacent(from, &mut r).is_some());
        assert!(c.retransmit(from, &mut r, false).is_some());
        assert!(c.retransmit(from, &mut r, true).is_some());
        assert!(c.drop_segment(from, &mut r).is_some());
        let pk: Vec<Pkt> = c.pkts().iter().copied().collect();
        for w in pk.windows(2) {
            assert!(w[0].ts_ns <= w[1].ts_ns);
        }
    }
}
