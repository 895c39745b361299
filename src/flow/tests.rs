//! Reassembly against an obviously correct model, and connection handling.

use super::*;
use crate::proto::http1::HttpLimits;
use crate::wire::{Endpoint, FlowKey};
use proptest::prelude::*;

/// Feeds segments (seq, bytes) to one reassembler and returns what came out: bytes with
/// `None` for each byte of a gap.
fn run(isn: u32, segs: &[(u32, Vec<u8>)], acks: &[(usize, u32)], limits: &FlowLimits) -> (Vec<Option<u8>>, FlowStats) {
    let mut r = Reassembler::default();
    r.syn(isn);
    let mut st = FlowStats::default();
    let mut out: Vec<Option<u8>> = Vec::new();
    let mut expect_off = r.next_offset();
    let mut sink = |ev: Ev<'_>| match ev {
        Ev::Data(b, c) => {
            assert_eq!(c.offset, expect_off, "data delivered at its offset");
            expect_off += b.len() as u64;
            out.extend(b.iter().map(|&x| Some(x)));
        }
        Ev::Gap(n, ..) => {
            expect_off += n;
            out.extend(std::iter::repeat_n(None, n as usize));
        }
    };
    for (i, (seq, data)) in segs.iter().enumerate() {
        for &(at, ack) in acks {
            if at == i {
                r.ack(ack, Ts(i as i64), limits, &mut st, &mut sink);
            }
        }
        let chunk = Chunk { ts: Ts(i as i64), frame: i as u64, offset: 0, ack: None };
        r.data(*seq, data, 0, false, chunk, limits, &mut st, &mut sink);
    }
    r.flush(Ts(0), None, &mut st, &mut sink);
    (out, st)
}

/// The model: for every byte, the first value any segment gave it; holes where none did,
/// trimmed at the end (a trailing hole is never known to exist).
fn model(isn: u32, segs: &[(u32, Vec<u8>)]) -> Vec<Option<u8>> {
    let mut bytes: Vec<Option<u8>> = Vec::new();
    for (seq, data) in segs {
        let off = seq.wrapping_sub(isn.wrapping_add(1)) as usize;
        if bytes.len() < off + data.len() {
            bytes.resize(off + data.len(), None);
        }
        for (i, &b) in data.iter().enumerate() {
            if bytes[off + i].is_none() {
                bytes[off + i] = Some(b);
            }
        }
    }
    bytes
}

fn stream(len: usize, salt: u8) -> Vec<u8> {
    (0..len).map(|i| (i as u8).wrapping_mul(31).wrapping_add(salt)).collect()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 400, ..ProptestConfig::default() })]

    /// Segments of a stream in any order, with duplicates whose bytes may differ: the output
    /// is what the model says, whatever the order, across sequence wraparound.
    #[test]
    fn matches_the_model(
        isn in prop_oneof![any::<u32>(), (u32::MAX - 3000)..=u32::MAX],
        len in 1usize..3000,
        cuts in proptest::collection::vec(1usize..400, 1..30),
        order in proptest::collection::vec(any::<u16>(), 0..60),
        dups in proptest::collection::vec((any::<u16>(), any::<u16>(), any::<bool>()), 0..10),
        drop in proptest::collection::vec(any::<u16>(), 0..3),
    ) {
        let data = stream(len, 7);
        // Cut the stream into segments.
        let mut segs: Vec<(u32, Vec<u8>)> = Vec::new();
        let mut pos = 0;
        let mut ci = 0;
        while pos < len {
            let n = cuts[ci % cuts.len()].min(len - pos);
            ci += 1;
            segs.push((isn.wrapping_add(1).wrapping_add(pos as u32), data[pos..pos + n].to_vec()));
            pos += n;
        }
        // Duplicates covering arbitrary ranges, sometimes with other bytes.
        for (a, b, conflict) in dups {
            let s = a as usize % len;
            let e = (s + 1 + b as usize % 500).min(len);
            let bytes = if conflict { stream(len, 99)[s..e].to_vec() } else { data[s..e].to_vec() };
            segs.push((isn.wrapping_add(1).wrapping_add(s as u32), bytes));
        }
        // Drop some (never the first, so the stream start is known).
        for d in drop {
            if segs.len() > 2 {
                let i = 1 + d as usize % (segs.len() - 1);
                segs.remove(i);
            }
        }
        // Shuffle deterministically.
        for (i, o) in order.iter().enumerate() {
            let a = i % segs.len();
            let b = *o as usize % segs.len();
            segs.swap(a, b);
        }
        let limits = FlowLimits { max_ooo_per_conn: usize::MAX, ..FlowLimits::default() };
        let (got, _) = run(isn, &segs, &[], &limits);
        let want = model(isn, &segs);
        prop_assert_eq!(got, want);
    }
}

/// What a capture of one direction holds, in file order: data segments and the receiver's
/// acknowledgments (each acknowledging the end of the segment it answers).
#[derive(Clone, Debug)]
enum Rec {
    Data(u32, Vec<u8>),
    Ack(u32),
}

/// Feeds records in file order; returns bytes (None for each gap byte) and the counters.
fn run_recs(isn: u32, recs: &[Rec], limits: &FlowLimits) -> (Vec<Option<u8>>, FlowStats) {
    let mut r = Reassembler::default();
    r.syn(isn);
    let mut st = FlowStats::default();
    let mut out: Vec<Option<u8>> = Vec::new();
    let mut sink = |ev: Ev<'_>| match ev {
        Ev::Data(b, _) => out.extend(b.iter().map(|&x| Some(x))),
        Ev::Gap(n, ..) => out.extend(std::iter::repeat_n(None, n as usize)),
    };
    for (i, rec) in recs.iter().enumerate() {
        let ts = Ts(i as i64 * 1000);
        match rec {
            Rec::Ack(a) => r.ack(*a, ts, limits, &mut st, &mut sink),
            Rec::Data(seq, d) => {
                let chunk = Chunk { ts, frame: i as u64, offset: 0, ack: None };
                r.data(*seq, d, 0, false, chunk, limits, &mut st, &mut sink);
            }
        }
    }
    r.flush(Ts(0), None, &mut st, &mut sink);
    (out, st)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

    /// A capture whose records are not in the order the receiver saw them: segments moved by
    /// a few places, each segment's acknowledgment often before the segment itself, some
    /// segments duplicated or overlapping, a few never captured (but acknowledged, as they
    /// were received). The bytes come out exactly as the model says, and a gap is reported
    /// only where bytes are missing from the file.
    #[test]
    fn reordered_segments_with_their_acks_match_the_model(
        isn in prop_oneof![any::<u32>(), (u32::MAX - 3000)..=u32::MAX],
        len in 1usize..4000,
        cuts in proptest::collection::vec(1usize..1500, 1..20),
        moves in proptest::collection::vec((any::<u16>(), 0usize..6), 0..40),
        dups in proptest::collection::vec((any::<u16>(), any::<u16>()), 0..6),
        drop in proptest::collection::vec(any::<u16>(), 0..2),
    ) {
        let data = stream(len, 3);
        let mut segs: Vec<(u32, Vec<u8>)> = Vec::new();
        let (mut pos, mut ci) = (0, 0);
        while pos < len {
            let n = cuts[ci % cuts.len()].min(len - pos);
            ci += 1;
            segs.push((isn.wrapping_add(1).wrapping_add(pos as u32), data[pos..pos + n].to_vec()));
            pos += n;
        }
        // Overlapping copies (same bytes: a retransmission covering parts of two segments).
        for (a, b) in dups {
            let s = a as usize % len;
            let e = (s + 1 + b as usize % 2000).min(len);
            segs.push((isn.wrapping_add(1).wrapping_add(s as u32), data[s..e].to_vec()));
        }
        // Records: each segment followed by its acknowledgment.
        let mut recs: Vec<Rec> = Vec::new();
        let mut kept: Vec<(u32, Vec<u8>)> = Vec::new();
        let dropped: Vec<usize> = drop.iter().map(|d| 1 + *d as usize % segs.len().max(1)).collect();
        for (i, (seq, d)) in segs.iter().enumerate() {
            if !dropped.contains(&i) {
                recs.push(Rec::Data(*seq, d.clone()));
                kept.push((*seq, d.clone()));
            }
            recs.push(Rec::Ack(seq.wrapping_add(d.len() as u32)));
        }
        // Move records a few places (a record can pass the one before it, or several).
        for (at, by) in moves {
            let i = at as usize % recs.len();
            let j = i.saturating_sub(by);
            let r = recs.remove(i);
            recs.insert(j, r);
        }
        let limits = FlowLimits { max_ooo_per_conn: usize::MAX, ..FlowLimits::default() };
        let (got, st) = run_recs(isn, &recs, &limits);
        let want = model(isn, &kept);
        prop_assert_eq!(&got, &want);
        prop_assert_eq!(st.gap_bytes, want.iter().filter(|b| b.is_none()).count() as u64);
    }

    /// However small the grace, what comes out is never wrong: each byte is the model's or
    /// part of a gap.
    #[test]
    fn a_short_grace_loses_bytes_but_never_changes_them(
        isn in any::<u32>(),
        len in 1usize..3000,
        cuts in proptest::collection::vec(1usize..600, 1..20),
        moves in proptest::collection::vec((any::<u16>(), 0usize..6), 0..40),
        grace in 0u64..2000,
    ) {
        let data = stream(len, 5);
        let mut recs = Vec::new();
        let mut kept = Vec::new();
        let (mut pos, mut ci) = (0, 0);
        while pos < len {
            let n = cuts[ci % cuts.len()].min(len - pos);
            ci += 1;
            let seq = isn.wrapping_add(1).wrapping_add(pos as u32);
            recs.push(Rec::Data(seq, data[pos..pos + n].to_vec()));
            recs.push(Rec::Ack(seq.wrapping_add(n as u32)));
            kept.push((seq, data[pos..pos + n].to_vec()));
            pos += n;
        }
        for (at, by) in moves {
            let i = at as usize % recs.len();
            let r = recs.remove(i);
            recs.insert(i.saturating_sub(by), r);
        }
        let limits = FlowLimits { max_ooo_per_conn: usize::MAX, gap_grace_bytes: grace, gap_grace_ns: 2_500, ..FlowLimits::default() };
        let (got, st) = run_recs(isn, &recs, &limits);
        let want = model(isn, &kept);
        prop_assert_eq!(got.len(), want.len());
        for (g, w) in got.iter().zip(&want) {
            prop_assert!(g.is_none() || g == w);
        }
        prop_assert_eq!(st.gap_bytes, got.iter().filter(|b| b.is_none()).count() as u64);
    }
}

#[test]
fn acknowledged_hole_waits_for_the_late_segment() {
    // abc, then ghi; the receiver acknowledges all nine bytes; def comes last in the file.
    let recs = [Rec::Data(1001, b"abc".to_vec()), Rec::Data(1007, b"ghi".to_vec()), Rec::Ack(1010), Rec::Data(1004, b"def".to_vec())];
    let (out, st) = run_recs(1000, &recs, &FlowLimits::default());
    let want: Vec<Option<u8>> = b"abcdefghi".iter().map(|&b| Some(b)).collect();
    assert_eq!(out, want);
    assert_eq!((st.gaps, st.late_segments, st.retransmitted_segments), (0, 0, 0), "{st:?}");
}

#[test]
fn hole_acknowledged_past_the_grace_becomes_a_gap() {
    let limits = FlowLimits { gap_grace_bytes: 4, ..FlowLimits::default() };
    let mut r = Reassembler::default();
    r.syn(1000);
    let mut st = FlowStats::default();
    let mut events = Vec::new();
    for (i, (seq, d)) in [(1001u32, &b"abc"[..]), (1007, b"ghijkl")].iter().enumerate() {
        let chunk = Chunk { ts: Ts(i as i64), frame: i as u64, offset: 0, ack: None };
        r.data(*seq, d, 0, false, chunk, &limits, &mut st, &mut |ev| events.push(format!("{ev:?}")));
    }
    assert_eq!(events.len(), 1, "the hole holds back ghijkl: {events:?}");
    // Acknowledged 4 bytes past the hole: within the grace, the segment may still come.
    r.ack(1011, Ts(5), &limits, &mut st, &mut |ev| events.push(format!("{ev:?}")));
    assert_eq!(events.len(), 1, "{events:?}");
    // 6 bytes past it: a gap, then what follows.
    r.ack(1013, Ts(6), &limits, &mut st, &mut |ev| events.push(format!("{ev:?}")));
    assert_eq!(events.len(), 3, "{events:?}");
    assert!(events[1].starts_with("Gap(3"));
    assert_eq!((st.gaps, st.gap_bytes), (1, 3));
    // The segment comes after all: late, not a retransmission.
    let chunk = Chunk { ts: Ts(7), frame: 7, offset: 0, ack: None };
    r.data(1004, b"def", 0, false, chunk, &limits, &mut st, &mut |ev| events.push(format!("{ev:?}")));
    assert_eq!((st.late_segments, st.retransmitted_segments), (1, 0), "{st:?}");
}

#[test]
fn hole_acknowledged_long_ago_becomes_a_gap() {
    let limits = FlowLimits { gap_grace_ns: 1_000, ..FlowLimits::default() };
    let mut r = Reassembler::default();
    r.syn(0);
    let mut st = FlowStats::default();
    let mut gaps = 0;
    let c = |ts| Chunk { ts: Ts(ts), frame: 1, offset: 0, ack: None };
    r.data(1, b"ab", 0, false, c(0), &limits, &mut st, &mut |_| {});
    r.data(5, b"ef", 0, false, c(10), &limits, &mut st, &mut |_| {});
    r.ack(7, Ts(100), &limits, &mut st, &mut |ev| gaps += matches!(ev, Ev::Gap(..)) as u32);
    r.ack(7, Ts(900), &limits, &mut st, &mut |ev| gaps += matches!(ev, Ev::Gap(..)) as u32);
    assert_eq!(gaps, 0);
    r.ack(7, Ts(1_200), &limits, &mut st, &mut |ev| gaps += matches!(ev, Ev::Gap(..)) as u32);
    assert_eq!((gaps, st.gap_bytes), (1, 2));
}

#[test]
fn per_connection_cap_forces_a_gap() {
    let isn = 5;
    let mut segs = vec![(6u32, vec![1u8; 10])];
    // A hole of 10 bytes, then 100 bytes buffered in 10 segments.
    for k in 0..10u32 {
        segs.push((26 + k * 10, vec![2u8; 10]));
    }
    let limits = FlowLimits { max_ooo_per_conn: 45, ..FlowLimits::default() };
    let (out, st) = run(isn, &segs, &[], &limits);
    assert!(st.ooo_conn_cap_hits >= 1);
    assert_eq!(out.len(), 120);
    assert_eq!(out.iter().filter(|b| b.is_none()).count(), 10);
}

#[test]
fn snap_length_cut_bytes_are_a_gap() {
    let mut r = Reassembler::default();
    r.syn(0);
    let mut st = FlowStats::default();
    let limits = FlowLimits::default();
    let mut out: Vec<Option<u8>> = Vec::new();
    let mut sink = |ev: Ev<'_>| match ev {
        Ev::Data(b, _) => out.extend(b.iter().map(|&x| Some(x))),
        Ev::Gap(n, ..) => out.extend(std::iter::repeat_n(None, n as usize)),
    };
    let c = Chunk { ts: Ts(0), frame: 1, offset: 0, ack: None };
    r.data(1, b"ab", 3, false, c, &limits, &mut st, &mut sink);
    r.data(6, b"z", 0, false, c, &limits, &mut st, &mut sink);
    assert_eq!(out, vec![Some(b'a'), Some(b'b'), None, None, None, Some(b'z')]);
    assert_eq!(st.snaplen_cut_bytes, 3);
}

// ---- whole connections through a shard ----

struct Collect(Vec<crate::proto::http1::Exchange>);
impl ExchangeSink for Collect {
    fn exchange(&mut self, ex: crate::proto::http1::Exchange) {
        self.0.push(ex);
    }
}

fn seg<'a>(frame: u64, from_client: bool, seq: u32, ack: u32, fl: u8, payload: &'a [u8]) -> TcpSegment<'a> {
    let c = Endpoint { ip: [1; 16], port: 40000, v6: false };
    let s = Endpoint { ip: [2; 16], port: 80, v6: false };
    let (key, dir) = if from_client { FlowKey::new(c, s) } else { FlowKey::new(s, c) };
    TcpSegment { frame, ts: Ts(frame as i64 * 1000), key, dir, seq, ack, flags: fl, payload, missing: 0 }
}

#[test]
fn handshake_exchange_and_close() {
    let mut sh = Shard::new(FlowLimits::default(), HttpLimits::default(), Collect(Vec::new()));
    let req = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n";
    let resp = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
    let (a, f, s, r) = (flags::ACK, flags::FIN, flags::SYN, flags::RST);
    let segs = [
        seg(1, true, 100, 0, s, b""),
        seg(2, false, 500, 101, s | a, b""),
        seg(3, true, 101, 501, a, b""),
        seg(4, true, 101, 501, a, req),
        seg(5, false, 501, 101 + req.len() as u32, a, resp),
        seg(6, true, 101 + req.len() as u32, 501 + resp.len() as u32, a | f, b""),
        seg(7, false, 501 + resp.len() as u32, 102 + req.len() as u32, a | f, b""),
        seg(8, true, 102 + req.len() as u32, 502 + resp.len() as u32, a, b""),
    ];
    for sgm in &segs {
        sh.segment(sgm);
    }
    assert_eq!(sh.sink.0.len(), 1);
    let ex = &sh.sink.0[0];
    assert_eq!(ex.conn.id, 1);
    assert_eq!(ex.conn.client.port, 40000);
    assert_eq!(ex.conn.syn_ts, Some(Ts(1000)));
    assert_eq!(ex.conn.established_ts, Some(Ts(3000)));
    assert_eq!(ex.response.as_ref().unwrap().body, b"ok");
    assert_eq!(sh.stats.closed_fin, 1);
    // The final ACK does not start a new connection.
    sh.sweep(Ts(10_000));
    assert_eq!(sh.open_flows(), 0);
    assert_eq!(sh.stats.flows, 1);
    let _ = r;
}

#[test]
fn mid_stream_capture_without_handshake() {
    let mut sh = Shard::new(FlowLimits::default(), HttpLimits::default(), Collect(Vec::new()));
    let resp_tail = b"tail of a previous body";
    let req = b"GET /n HTTP/1.1\r\n\r\n";
    let resp = b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nz";
    sh.segment(&seg(1, false, 9000, 50, flags::ACK, resp_tail));
    sh.segment(&seg(2, true, 50, 9000 + resp_tail.len() as u32, flags::ACK, req));
    sh.segment(&seg(3, false, 9000 + resp_tail.len() as u32, 50 + req.len() as u32, flags::ACK, resp));
    sh.finish(Ts(99_000));
    assert_eq!(sh.sink.0.len(), 1);
    assert_eq!(sh.sink.0[0].request.as_ref().unwrap().head.target(), b"/n");
    assert_eq!(sh.sink.0[0].response.as_ref().unwrap().body, b"z");
}

#[test]
fn idle_timeout_and_flow_cap() {
    let limits = FlowLimits { idle_timeout_ns: 5_000, ..FlowLimits::default() };
    let mut sh = Shard::new(limits, HttpLimits::default(), Collect(Vec::new()));
    sh.segment(&seg(1, true, 1, 0, flags::ACK, b"GET /a HTTP/1.1\r\n\r\n"));
    sh.sweep(Ts(2_000));
    assert_eq!(sh.open_flows(), 1);
    sh.sweep(Ts(100_000));
    assert_eq!(sh.open_flows(), 0);
    assert_eq!(sh.stats.idle_timeouts, 1);
    // The request is kept, without a response.
    assert_eq!(sh.sink.0.len(), 1);
    assert!(sh.sink.0[0].response.is_none());
}

#[test]
fn sweeping_at_extreme_times_does_not_overflow() {
    let limits = FlowLimits { idle_timeout_ns: 5_000, ..FlowLimits::default() };
    let mut sh = Shard::new(limits, HttpLimits::default(), Collect(Vec::new()));
    let mut s = seg(1, true, 1, 0, flags::ACK, b"GET /a HTTP/1.1\r\n\r\n");
    s.ts = Ts(i64::MIN);
    sh.segment(&s);
    sh.sweep(Ts(i64::MAX));
    assert_eq!(sh.stats.idle_timeouts, 1);
}

#[test]
fn bookkeeping_of_tiny_segments_counts_against_the_cap() {
    // 10 000 one-byte segments after a hole: 10 KB of payload, but each buffered piece costs
    // its map entry too. With a 100 KB cap the buffer holds a few hundred pieces, not all.
    let isn = 7;
    let mut segs = vec![(8u32, vec![1u8])];
    for k in 0..10_000u32 {
        segs.push((10 + k, vec![2u8]));
    }
    let limits = FlowLimits { max_ooo_per_conn: 100_000, ..FlowLimits::default() };
    let mut r = Reassembler::default();
    r.syn(isn);
    let mut st = FlowStats::default();
    let mut peak = 0;
    for (i, (seq, data)) in segs.iter().enumerate() {
        let chunk = Chunk { ts: Ts(i as i64), frame: i as u64, offset: 0, ack: None };
        r.data(*seq, data, 0, false, chunk, &limits, &mut st, &mut |_| {});
        peak = peak.max(r.buffered());
    }
    assert!(st.ooo_conn_cap_hits >= 1, "{st:?}");
    assert!(peak <= limits.max_ooo_per_conn, "{peak}");
    // What was given up is a gap, and the rest came through.
    let (out, _) = run(isn, &segs, &[], &limits);
    assert_eq!(out.len(), 10_002);
    assert_eq!(out.iter().filter(|b| b.is_none()).count(), 1);
}

#[test]
fn per_connection_cap_covers_both_directions() {
    let limits = FlowLimits { max_ooo_per_conn: 4_000, ..FlowLimits::default() };
    let mut sh = Shard::new(limits, HttpLimits::default(), Collect(Vec::new()));
    let (a, s) = (flags::ACK, flags::SYN);
    sh.segment(&seg(1, true, 100, 0, s, b""));
    sh.segment(&seg(2, false, 500, 101, s | a, b""));
    // Both directions buffer data after a hole of one byte, 1 KB at a time.
    let block = [b'x'; 1000];
    for k in 0..3u32 {
        sh.segment(&seg(3 + k as u64, true, 102 + k * 1000, 501, a, &block));
        sh.segment(&seg(10 + k as u64, false, 502 + k * 1000, 101, a, &block));
        assert!(sh.buffered_bytes() <= limits.max_ooo_per_conn, "{}", sh.buffered_bytes());
    }
    assert!(sh.stats.ooo_conn_cap_hits >= 1, "{:?}", sh.stats);
}

#[test]
fn tls_and_h2c_connections_are_counted_and_no_longer_reassembled() {
    // A TLS ClientHello, then client data after a hole: nothing is buffered for it, nothing
    // is parsed as HTTP/1. The same for the HTTP/2 preface (which HTTP/1 would take for a
    // `PRI *` request).
    let hello = b"\x16\x03\x01\x00\x10\x01\x00\x00\x0c\x03\x03abcdefgh";
    let preface = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00";
    for (first, tls) in [(&hello[..], true), (&preface[..], false)] {
        let mut sh = Shard::new(FlowLimits::default(), HttpLimits::default(), Collect(Vec::new()));
        let (a, s) = (flags::ACK, flags::SYN);
        sh.segment(&seg(1, true, 100, 0, s, b""));
        sh.segment(&seg(2, false, 500, 101, s | a, b""));
        sh.segment(&seg(3, true, 101, 501, a, first));
        sh.segment(&seg(4, true, 101 + first.len() as u32 + 10, 501, a, b"GET / HTTP/1.1\r\n\r\n"));
        sh.segment(&seg(5, false, 501, 101, a, b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"));
        if tls {
            assert_eq!(sh.buffered_bytes(), 0);
            assert_eq!(sh.handler_buffered_bytes(), 0);
        }
        sh.finish(Ts(10_000));
        assert!(sh.sink.0.is_empty(), "{:?}", sh.sink.0);
        let d = sh.proto_stats.detected;
        // TLS is not decrypted: counted, not reassembled. HTTP/2 goes to its handler (which
        // reads the bytes after the hole as frames: nothing that makes an exchange).
        assert_eq!((d.tls_connections, sh.proto_stats.h2.connections), if tls { (1, 0) } else { (0, 1) });
        assert_eq!(sh.proto_stats.http.requests + sh.proto_stats.http.resyncs + sh.proto_stats.http.non_http_connections, 0);
        if tls {
            assert_eq!(sh.stats.out_of_order_segments, 0);
        }
    }
}
