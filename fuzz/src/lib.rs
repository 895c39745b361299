//! The bodies of apitool's fuzz targets, one function per target, so that the libFuzzer
//! binaries (`fuzz_targets/*.rs`) and the regression test (`tests/regressions.rs`, run in CI)
//! execute exactly the same code on the same bytes.
//!
//! Every function takes the raw fuzz input. Beyond "no panic, no hang, no runaway memory"
//! (which libFuzzer checks), each asserts what its layer promises:
//!
//! - [`capture`]: records stay inside the input, frame numbers count up, and every cut of a
//!   record that read whole reports "need more bytes" (never a frame, never corruption).
//! - [`wire`]: payloads and fragments borrow the frame; reassembled datagrams stay under the
//!   IP limit and the defragmenter under its byte cap.
//! - [`reassembly`]: one direction against a model: the stream handed on is contiguous
//!   (data and gaps), every byte is the first one seen for its offset, and the out-of-order
//!   buffer stays under its cap; the same segments also go through a whole [`Shard`] (both
//!   directions, HTTP on top).
//! - [`http`]: both streams of a connection, cut at arbitrary points, with gaps, through an
//!   [`HttpConn`].
//! - [`decode`]: [`BodyDecoder`] with arbitrary coding lists, caps and piece sizes: never more
//!   than the cap kept, truncation flagged.
//! - [`convert`]: a whole capture through the [`Converter`] with one and with two threads: the
//!   HAR is valid JSON and the same bytes either way.
//! - [`witness`]: a protobuf-encoded witness: hash, text form, and the text form read back.
//! - [`keylog`]: a TLS key log read as two sources: every line accounted for, caps held, no
//!   problem message showing the input.
//! - [`h2`]: HTTP/2 frames and HPACK blocks, raw or described: table and list caps held,
//!   the handler's held bytes bounded, bodies within the cap; and gRPC message framing.

use std::borrow::Cow;
use std::sync::{Arc, OnceLock};

use arbitrary::{Arbitrary, Unstructured};

use apitool::capture::{Frame, FrameReader, Input, Next, Ts};
use apitool::flow::{Ev, FlowLimits, FlowStats, Reassembler, Shard};
use apitool::ir::build::{WitnessBuilder, WitnessOptions};
use apitool::ir::redact::Redactor;
use apitool::pipeline::{Config, Converter, OutputOptions};
use apitool::proto::http1::decode::{BodyDecoder, Coding, parse_codings};
use apitool::proto::http1::{Chunk, ConnMeta, Ctx, Exchange, HttpConn, HttpLimits, HttpStats, Side};
use apitool::wire::defrag::{DefragLimits, Defragmenter};
use apitool::wire::{self, Decoded, Endpoint, FlowKey, TcpSegment};

fn within(outer: &[u8], inner: &[u8]) -> bool {
    let (o, i) = (outer.as_ptr() as usize, inner.as_ptr() as usize);
    inner.is_empty() || (i >= o && i + inner.len() <= o + outer.len())
}

// ---------------------------------------------------------------------------------------------
// capture

/// A legacy pcap file header (Ethernet, 65535-byte snap length).
pub fn pcap_header(big_endian: bool, nanos: bool) -> Vec<u8> {
    use apitool::synth::pcap::{Endian, LinkType, PcapOptions, TsRes, file_header};
    let endian = if big_endian { Endian::Big } else { Endian::Little };
    let ts = if nanos { TsRes::Nano } else { TsRes::Micro };
    file_header(PcapOptions { endian, ts, link: LinkType::Ethernet, snaplen: 65535 })
}

/// A little-endian pcapng section header and one interface of `linktype`.
pub fn pcapng_header(linktype: u16) -> Vec<u8> {
    let mut v = Vec::new();
    // SHB: type, length 28, byte-order magic, version 1.0, section length -1, length.
    v.extend(0x0a0d_0d0au32.to_le_bytes());
    v.extend(28u32.to_le_bytes());
    v.extend(0x1a2b_3c4du32.to_le_bytes());
    v.extend(1u16.to_le_bytes());
    v.extend(0u16.to_le_bytes());
    v.extend((-1i64).to_le_bytes());
    v.extend(28u32.to_le_bytes());
    // IDB: type 1, length 20, link type, reserved, snap length, length.
    v.extend(1u32.to_le_bytes());
    v.extend(20u32.to_le_bytes());
    v.extend(linktype.to_le_bytes());
    v.extend(0u16.to_le_bytes());
    v.extend(0u32.to_le_bytes());
    v.extend(20u32.to_le_bytes());
    v
}

/// Input: one mode byte, then the capture (mode 0: as it is, the input supplies the file
/// header; 1-4: after a legacy pcap header of each byte order and resolution; 5: after a
/// pcapng section and interface).
pub fn capture(data: &[u8]) {
    let Some((&mode, rest)) = data.split_first() else { return };
    let file: Cow<'_, [u8]> = match mode % 6 {
        0 => Cow::Borrowed(rest),
        m @ 1..=4 => {
            let mut v = pcap_header(m & 1 == 1, m >= 3);
            v.extend_from_slice(rest);
            Cow::Owned(v)
        }
        _ => {
            let mut v = pcapng_header(1);
            v.extend_from_slice(rest);
            Cow::Owned(v)
        }
    };
    walk_capture(&file);
}

fn walk_capture(file: &[u8]) {
    let Ok((mut r, hl)) = FrameReader::open(file) else { return };
    assert!(hl <= file.len());
    let mut pos = hl;
    let mut frames = 0u64;
    while pos < file.len() {
        let buf = &file[pos..];
        let used = match r.next(buf) {
            Next::Frame(f, used) => {
                frames += 1;
                assert_eq!(f.index, frames);
                assert!(used > 0 && used <= buf.len(), "record length {used} of {}", buf.len());
                assert!(within(&buf[..used], f.data), "frame data outside its record");
                assert!(f.orig_len as usize >= f.data.len());
                used
            }
            Next::Skip(used) => {
                assert!(used > 0 && used <= buf.len(), "skipped {used} of {}", buf.len());
                used
            }
            Next::NeedMore(k) => {
                assert!(k > 0, "need more, but zero bytes");
                break;
            }
            Next::Corrupt(_) => break,
        };
        assert_eq!(r.frames(), frames);
        // The record read whole; every cut of it must ask for more bytes (a stream reader
        // relies on it). A few cut points per record keep this cheap.
        for cut in [0, 1, 11, 12, 15, 16, used / 2, used - 1] {
            if cut >= used {
                continue;
            }
            match r.next(&buf[..cut]) {
                Next::NeedMore(k) => assert!(k > 0 && cut + k <= used, "cut {cut} of {used}: needs {k}"),
                other => panic!("cut {cut} of a {used}-byte record: {other:?}"),
            }
        }
        assert_eq!(r.frames(), frames, "reading a cut record changed the frame count");
        pos += used;
    }
}

// ---------------------------------------------------------------------------------------------
// wire

const LINKTYPES: &[u32] = &[0, 1, 12, 14, 101, 104, 105, 108, 113, 127, 129, 228, 229, 239, 276, 147];

/// Input: a sequence of frames, each `[link type selector][cut][len lo][len hi][bytes...]`;
/// IP fragments go to one defragmenter with small caps.
pub fn wire(data: &[u8]) {
    let limits = DefragLimits { max_datagrams: 4, max_bytes: 100_000, timeout_ns: 1_000 };
    let mut defrag = Defragmenter::new(limits);
    let mut rest = data;
    let mut index = 0u64;
    while rest.len() >= 4 {
        let (lt, cut, len) = (rest[0], rest[1], u16::from_le_bytes([rest[2], rest[3]]) as usize);
        rest = &rest[4..];
        let len = len.min(rest.len());
        let (d, tail) = rest.split_at(len);
        rest = tail;
        index += 1;
        let frame = Frame {
            index,
            ts: Ts(index as i64 * 300),
            linktype: LINKTYPES[lt as usize % LINKTYPES.len()],
            data: d,
            orig_len: d.len() as u32 + cut as u32 * 7,
        };
        match wire::decode(&frame) {
            Decoded::Tcp(seg) => check_segment(&seg, d, cut as u32 * 7),
            Decoded::Fragment(f) => {
                assert!(within(d, f.data), "fragment outside its frame");
                let before = defrag.stats.fragments;
                if let Some(payload) = defrag.push(frame.ts, &f) {
                    assert!(payload.len() <= 65_535);
                    if let Decoded::Tcp(seg) = wire::decode_reassembled(index, frame.ts, &f, &payload) {
                        check_segment(&seg, &payload, 0);
                    }
                }
                assert_eq!(defrag.stats.fragments, before + 1);
                assert!(defrag.held_bytes() <= limits.max_bytes, "defragmenter holds {}", defrag.held_bytes());
            }
            Decoded::Skip(_) => {}
        }
    }
    defrag.finish();
    assert_eq!(defrag.held_bytes(), 0);
}

fn check_segment(seg: &TcpSegment<'_>, frame: &[u8], cut: u32) {
    assert!(within(frame, seg.payload), "payload outside its frame");
    assert!(seg.missing <= cut, "{} bytes missing, {cut} cut", seg.missing);
}

// ---------------------------------------------------------------------------------------------
// reassembly

/// One segment (or acknowledgment) of the fuzzed connection.
#[derive(Arbitrary, Debug)]
pub struct SegOp {
    /// From the server (else the client).
    pub server: bool,
    /// Offset of the first byte in the reference stream (can be a little before its start).
    pub offset: i16,
    /// Payload length, and bytes lost to the snap length after it.
    pub len: u16,
    pub missing: u8,
    /// Bytes replaced with different ones (a conflicting retransmission).
    pub conflict: bool,
    pub flags: u8,
    /// Acknowledgment of the other direction, as an offset in its stream.
    pub ack: i16,
    /// A sequence number anywhere (out of the window), instead of `offset`.
    pub wild_seq: Option<u32>,
    /// Capture time advances by this many milliseconds.
    pub dt_ms: u16,
    /// Skip the oldest hole (as the per-connection cap would) after this segment.
    pub skip_hole: bool,
}

#[derive(Arbitrary, Debug)]
struct ReassemblyCase {
    /// Reference streams: a built-in HTTP conversation, or bytes from the input.
    template: u8,
    own_client: Vec<u8>,
    own_server: Vec<u8>,
    isn: [u32; 2],
    ooo_cap: u16,
    ops: Vec<SegOp>,
}

const TEMPLATES: &[(&[u8], &[u8])] = &[
    (
        b"GET /a HTTP/1.1\r\nHost: x\r\n\r\nPOST /b HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello",
        b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabcHTTP/1.1 201 Created\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nwxyz\r\n0\r\nX-T: 1\r\n\r\n",
    ),
    (
        b"PUT /u HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 4\r\n\r\nbodyHEAD /h HTTP/1.1\r\n\r\nGET /c HTTP/1.0\r\n\r\n",
        b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 204 No Content\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nHTTP/1.0 200 OK\r\n\r\nclose-delimited body",
    ),
    (
        b"CONNECT h:443 HTTP/1.1\r\nHost: h:443\r\n\r\n\x16\x03\x01tunnel bytes",
        b"HTTP/1.1 200 Connection established\r\n\r\n\x16\x03\x03more tunnel",
    ),
    (
        b"GET /z HTTP/1.1\r\nAccept-Encoding: gzip\r\n\r\nGET /y HTTP/1.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: 23\r\n\r\n\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\x03\xcb\x48\xcd\xc9\xc9\x07\x00\x86\xa6\x10\x36\x05\x00\x00\x00HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n\x81\x05hello",
    ),
];

fn meta(client: Endpoint, server: Endpoint) -> ConnMeta {
    ConnMeta { id: 1, client, server, syn_ts: None, established_ts: None }
}

/// Input: an `arbitrary`-encoded [`ReassemblyCase`].
pub fn reassembly(data: &[u8]) {
    let mut u = Unstructured::new(data);
    let Ok(case) = ReassemblyCase::arbitrary(&mut u) else { return };
    let (client, server): (&[u8], &[u8]) = match case.template as usize % (TEMPLATES.len() + 1) {
        0 => (&case.own_client, &case.own_server),
        k => TEMPLATES[k - 1],
    };
    let streams = [client, server];
    let ops = &case.ops[..case.ops.len().min(2000)];
    model_check(streams[1], case.isn[1], case.ooo_cap, ops);
    shard_run(streams, case.isn, case.ooo_cap, ops);
}

/// The bytes a segment carries: the reference stream where it covers it (zeros around it),
/// changed when the segment conflicts.
fn seg_bytes(stream: &[u8], offset: i64, len: usize, conflict: bool) -> Vec<u8> {
    (0..len as i64)
        .map(|i| {
            let b = usize::try_from(offset + i).ok().and_then(|p| stream.get(p)).copied().unwrap_or(0);
            if conflict { b ^ 0x5a } else { b }
        })
        .collect()
}

/// What a reassembler handed on: (offset, bytes, length) for data, (0, None, length) for a gap.
type Handed = Vec<(u64, Option<Vec<u8>>, u64)>;

/// Records one event of a reassembler in `events`.
fn record(events: &mut Handed, ev: Ev<'_>) {
    match ev {
        Ev::Data(b, c) => events.push((c.offset, Some(b.to_vec()), b.len() as u64)),
        Ev::Gap(n, _, _) => events.push((0, None, n)),
    }
}

/// One direction through a [`Reassembler`], checked against a model.
fn model_check(stream: &[u8], isn: u32, ooo_cap: u16, ops: &[SegOp]) {
    let limits = FlowLimits { max_ooo_per_conn: ooo_cap as usize, ..FlowLimits::default() };
    let mut r = Reassembler::default();
    let mut st = FlowStats::default();
    // First byte seen for each stream offset (relative to the ISN, shifted by `FIRST_OFF`);
    // `UNSEEN` where none was.
    let mut first = vec![UNSEEN; FIRST_LEN];
    // Where the reassembler's offsets put relative offset 0, once it started.
    let mut base: Option<i64> = None;
    let mut cursor: Option<u64> = None;
    let mut events: Handed = Vec::new();
    let mut ts = 0i64;
    for op in ops.iter().filter(|o| o.server) {
        ts += op.dt_ms as i64 * 1_000_000;
        let rel = op.offset as i64;
        let len = (op.len % 1600) as usize;
        let payload = seg_bytes(stream, rel, len, op.conflict);
        let seq = isn.wrapping_add(rel as u32);
        let was_started = r.started();
        let syn = op.flags & 0x02 != 0 && op.wild_seq.is_none();
        if syn {
            r.syn(seq.wrapping_sub(1));
        }
        let chunk = Chunk { ts: Ts(ts), frame: 0, offset: 0, ack: None };
        let mut out = |ev: Ev<'_>| record(&mut events, ev);
        match op.wild_seq {
            // Far outside the window: must be ignored, whatever it holds.
            Some(w) if r.started() && (r.ext(w) as i64 - r.next_offset() as i64).abs() > (1 << 30) => {
                r.data(w, &payload, op.missing as u32, false, chunk, &limits, &mut st, &mut out);
            }
            Some(_) => {}
            None => {
                r.data(seq, &payload, op.missing as u32, op.flags & 0x01 != 0, chunk, &limits, &mut st, &mut out);
                // Record the bytes as seen first where nothing was seen before. Bytes before
                // the stream's start are never handed on, so they need no care.
                if r.started() {
                    let at = (rel + FIRST_OFF) as usize;
                    for (i, &b) in payload.iter().enumerate() {
                        if first[at + i] == UNSEEN {
                            first[at + i] = b as u16;
                        }
                    }
                    // Missing bytes were "seen" as a hole: later bytes there never count.
                    for i in 0..op.missing as usize {
                        let k = at + payload.len() + i;
                        if first[k] == UNSEEN {
                            first[k] = HOLE;
                        }
                    }
                }
            }
        }
        if !was_started && r.started() {
            // Offsets are 2^32 above the raw sequence number of the first byte.
            let start_seq = if syn { seq } else { isn.wrapping_add(rel as u32) };
            let start = (1i64 << 32) + start_seq as i64;
            let start_rel = rel;
            base = Some(start - start_rel);
            cursor = Some(start as u64);
        }
        if op.ack != 0 {
            r.ack(isn.wrapping_add(op.ack as i32 as u32), Ts(ts), &limits, &mut st, &mut |ev| record(&mut events, ev));
        }
        if op.skip_hole {
            r.skip_hole(Ts(ts), None, &mut st, &mut |ev| record(&mut events, ev));
        }
        assert!(r.buffered() <= limits.max_ooo_per_conn, "buffered {} over the cap {}", r.buffered(), limits.max_ooo_per_conn);
        check_events(&mut events, &mut cursor, base, &first);
        if let Some(c) = cursor {
            assert_eq!(r.next_offset(), c, "next offset disagrees with what was handed on");
        }
    }
    r.flush(Ts(ts), None, &mut st, &mut |ev| record(&mut events, ev));
    check_events(&mut events, &mut cursor, base, &first);
    assert_eq!(r.buffered(), 0);
}

const FIRST_OFF: i64 = 1 << 15;
const FIRST_LEN: usize = (1 << 16) + 1600 + 256;
const UNSEEN: u16 = 0x100;
const HOLE: u16 = 0x101;

fn check_events(events: &mut Handed, cursor: &mut Option<u64>, base: Option<i64>, first: &[u16]) {
    for (offset, bytes, len) in events.drain(..) {
        let c = cursor.as_mut().expect("events only after the stream started");
        assert!(len > 0, "empty event");
        if let Some(b) = bytes {
            assert_eq!(offset, *c, "data handed on at {offset}, expected {c}");
            let base = base.expect("started");
            for (i, &x) in b.iter().enumerate() {
                let rel = offset as i64 + i as i64 - base;
                let seen = usize::try_from(rel + FIRST_OFF).ok().and_then(|k| first.get(k)).copied();
                assert_eq!(seen, Some(x as u16), "byte at relative offset {rel} is not the first seen");
            }
        }
        *c += len;
    }
}

/// Both directions through a whole shard (flow table, reassembly, HTTP).
fn shard_run(streams: [&[u8]; 2], isn: [u32; 2], ooo_cap: u16, ops: &[SegOp]) {
    let c = Endpoint { ip: [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 10, 0, 0, 1], port: 40000, v6: false };
    let s = Endpoint { ip: [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 10, 0, 0, 2], port: 80, v6: false };
    let limits = FlowLimits { max_ooo_per_conn: ooo_cap as usize, ..FlowLimits::default() };
    let http = HttpLimits { max_head: 512, max_headers: 16, max_body: 64, ..HttpLimits::default() };
    let mut exchanges = 0u64;
    let mut shard = Shard::new(limits, http, |_: Exchange| exchanges += 1);
    let mut ts = 1_000_000_000i64;
    for (n, op) in ops.iter().enumerate() {
        ts += op.dt_ms as i64 * 1_000_000;
        let d = op.server as usize;
        let (src, dst) = if op.server { (s, c) } else { (c, s) };
        let (key, dir) = FlowKey::new(src, dst);
        let rel = op.offset as i64;
        let payload = seg_bytes(streams[d], rel, (op.len % 1600) as usize, op.conflict);
        let seq = op.wild_seq.unwrap_or(isn[d].wrapping_add(rel as u32));
        let seg = TcpSegment {
            frame: n as u64 + 1,
            ts: Ts(ts),
            key,
            dir,
            seq,
            ack: isn[1 - d].wrapping_add(op.ack as i32 as u32),
            flags: op.flags & 0x1f,
            payload: &payload,
            missing: op.missing as u32,
        };
        shard.segment(&seg);
        assert!(shard.buffered_bytes() <= 2 * limits.max_ooo_per_conn);
        if op.skip_hole {
            shard.sweep(Ts(ts));
        }
    }
    shard.finish(Ts(ts));
    assert_eq!(shard.open_flows(), 0);
    assert_eq!(shard.buffered_bytes(), 0);
}

// ---------------------------------------------------------------------------------------------
// http

/// Input: `[config][client len lo][client len hi][client bytes][server bytes...]`, where the
/// server stream runs to a script of three-byte steps `[kind][n lo][n hi]` taken from its end:
/// the last byte of the input is the number of steps. Config bits: 0, 1 the client and server
/// streams are seen from their start; 2, 3 pick the limits; 4 the connection ends cleanly;
/// 5, 6, 7 witness options (path templates, zero values, redaction).
pub fn http(data: &[u8]) {
    http_witnesses(data);
}

/// [`http`], returning the number of witnesses built.
fn http_witnesses(data: &[u8]) -> usize {
    if data.len() < 4 {
        return 0;
    }
    let config = data[0];
    let clen = (u16::from_le_bytes([data[1], data[2]]) as usize).min(data.len() - 3);
    let (client, rest) = data[3..].split_at(clen);
    let steps = (*rest.last().unwrap_or(&0) as usize).min(rest.len().saturating_sub(1) / 3);
    let (server, script) = rest[..rest.len().saturating_sub(1)].split_at(rest.len().saturating_sub(1) - steps * 3);
    let limits = match (config >> 2) & 3 {
        0 => HttpLimits::default(),
        1 => HttpLimits { max_head: 64, max_headers: 2, max_body: 0, ..HttpLimits::default() },
        2 => HttpLimits { max_head: 300, max_headers: 8, max_body: 16, ..HttpLimits::default() },
        _ => HttpLimits { max_head: 4096, max_headers: 64, max_body: 1024, ..HttpLimits::default() },
    };
    let ep = |port| Endpoint { ip: [0; 16], port, v6: false };
    let mut conn = HttpConn::new(meta(ep(40000), ep(80)));
    if config & 1 != 0 {
        conn.clean_start(Side::Client);
    }
    if config & 2 != 0 {
        conn.clean_start(Side::Server);
    }
    let mut run =
        HttpRun { conn, limits, stats: HttpStats::default(), out: Vec::new(), streams: [client, server], pos: [0; 2], off: [0; 2], ts: 0 };
    for step in script.chunks_exact(3) {
        let n = u16::from_le_bytes([step[1], step[2]]) as usize;
        let side = if step[0] & 1 == 0 { Side::Client } else { Side::Server };
        match step[0] >> 1 & 7 {
            0 => run.gap(side, n),
            1 => run.closed(side),
            // A piece acknowledging less of the other stream than was sent.
            2 => run.feed(side, n, step[2] as u64 * 16),
            _ => run.feed(side, n, 0),
        }
        let _ = run.conn.pending_start();
    }
    // The rest of both streams, whole.
    run.feed(Side::Client, usize::MAX, 0);
    run.feed(Side::Server, usize::MAX, 0);
    let HttpRun { mut conn, limits, mut stats, mut out, ts, .. } = run;
    let mut cx = Ctx { limits: &limits, stats: &mut stats, sink: &mut out };
    conn.end(config & 16 != 0, Ts(ts + 1), &mut cx);
    assert_eq!(conn.buffered_bytes(), 0, "buffers left after the end");
    for ex in &out {
        for m in ex.request.iter().chain(ex.response.iter()) {
            assert!(m.body.len() <= limits.max_body, "body of {} over the cap {}", m.body.len(), limits.max_body);
        }
    }
    assert_eq!(stats.exchanges, out.len() as u64);
    // Witnesses of what was parsed, bodies included: the builder's combined hash is the hash of
    // the message it encodes, and the encoding reads back as that message.
    let opts = WitnessOptions {
        template_paths: config & 32 != 0,
        zero_values: config & 64 != 0,
        redact: (config & 128 != 0).then(|| Arc::new(Redactor::builtin())),
        ..WitnessOptions::default()
    };
    let mut builder = WitnessBuilder::new(opts);
    let mut enc = Vec::new();
    let mut built_n = 0;
    for ex in &out {
        let Some(built) = builder.build(ex) else {
            assert!(ex.request.is_none(), "no witness for an exchange with a request");
            continue;
        };
        let w = built.to_pb();
        assert_eq!(built.digest, apitool::ir::digest(&w), "the witness hash is not the hash of the witness");
        enc.clear();
        builder.encode(&built, &mut enc);
        let back = <apitool::ir::Witness as prost::Message>::decode_length_delimited(&enc[..]).expect("the witness encoding reads back");
        assert!(back == w, "the encoded witness differs from the built one");
        built_n += 1;
    }
    built_n
}

/// Content types the `bodies` target picks from (its first byte, modulo the count).
pub const BODY_TYPES: &[&str] = &[
    "application/json",
    "application/problem+json; charset=utf-8",
    "application/x-www-form-urlencoded",
    "multipart/form-data; boundary=XyZ",
    "multipart/mixed; boundary=XyZ",
    "application/yaml",
    "application/xml",
    "text/xml; charset=utf-8",
    "text/plain",
    "text/html",
    "application/octet-stream",
    "",
];

/// Witness construction from bodies. Input: `[type][options][body...]`: a request and its
/// response carrying the body with the content type `BODY_TYPES[type % len]` (the response's
/// type is the next one), through the HTTP parser, then [`http`]'s witness checks with the
/// option bits 5-7 of `options`.
pub fn bodies(data: &[u8]) {
    let [t, opts, body @ ..] = data else { return };
    let ty = |k: usize| BODY_TYPES[k % BODY_TYPES.len()];
    let head = |first: &str, ct: &str| {
        let mut h = format!("{first}\r\nHost: api.example\r\nContent-Length: {}\r\n", body.len()).into_bytes();
        if !ct.is_empty() {
            h.extend_from_slice(format!("Content-Type: {ct}\r\n").as_bytes());
        }
        h.extend_from_slice(b"\r\n");
        h.extend_from_slice(body);
        h
    };
    let client = head("POST /v1/users/12345/orders/9f86d081884c7d65?x=1&y=a%20b HTTP/1.1", ty(*t as usize));
    let server = head("HTTP/1.1 201 Created", ty(*t as usize + 1));
    let Ok(clen) = u16::try_from(client.len()) else { return };
    // Both streams from their start, default limits, a clean end; no script steps.
    let mut input = vec![0b1_0011 | (opts & 0b1110_0000)];
    input.extend_from_slice(&clen.to_le_bytes());
    input.extend_from_slice(&client);
    input.extend_from_slice(&server);
    input.push(0);
    // One well-framed exchange whatever the body holds: one witness.
    assert_eq!(http_witnesses(&input), 1, "a request and its response make one witness");
    // As JSON, the one-pass parser and serde_json's tree agree.
    if let Err(e) = apitool::ir::body::fastjson::check_against_tree(body, *opts) {
        panic!("{e}");
    }
    // The HAR's one-pass UTF-8 check (SIMD validation past the first byte outside ASCII) and
    // escaped length say what the standard library and serde_json do.
    use apitool::output::json;
    let utf8 = std::str::from_utf8(body).ok();
    assert_eq!(json::utf8_escaped_len(body), utf8.map(|s| serde_json::to_string(s).unwrap().len() - 2));
    if let Some(s) = utf8 {
        let mut out = Vec::new();
        json::write_str(&mut out, s);
        assert_eq!(out, serde_json::to_string(s).unwrap().into_bytes());
    }
}

struct HttpRun<'a> {
    conn: HttpConn,
    limits: HttpLimits,
    stats: HttpStats,
    out: Vec<Exchange>,
    streams: [&'a [u8]; 2],
    /// Where each side is in its stream.
    pos: [usize; 2],
    /// Where each side is in its TCP stream (gaps past the end of the bytes count too).
    off: [u64; 2],
    ts: i64,
}

impl HttpRun<'_> {
    /// The next `n` bytes of a side, acknowledging the other side's bytes up to `ack_back`
    /// before where it is.
    fn feed(&mut self, side: Side, n: usize, ack_back: u64) {
        let i = side as usize;
        let take = n.min(self.streams[i].len() - self.pos[i]);
        self.ts += 1;
        let ack = self.off[1 - i].checked_sub(ack_back);
        let chunk = Chunk { ts: Ts(self.ts), frame: self.ts as u64, offset: self.off[i], ack };
        let mut cx = Ctx { limits: &self.limits, stats: &mut self.stats, sink: &mut self.out };
        self.conn.data(side, &self.streams[i][self.pos[i]..self.pos[i] + take], chunk, &mut cx);
        self.pos[i] += take;
        self.off[i] += take as u64;
    }

    /// Bytes of the stream that were never captured.
    fn gap(&mut self, side: Side, n: usize) {
        let i = side as usize;
        let skip = n.max(1);
        self.pos[i] = (self.pos[i] + skip).min(self.streams[i].len());
        self.off[i] += skip as u64;
        let mut cx = Ctx { limits: &self.limits, stats: &mut self.stats, sink: &mut self.out };
        self.conn.gap(side, skip as u64, Ts(self.ts), &mut cx);
    }

    /// The side closed (FIN): only once all of its bytes came.
    fn closed(&mut self, side: Side) {
        let i = side as usize;
        if self.pos[i] == self.streams[i].len() {
            let mut cx = Ctx { limits: &self.limits, stats: &mut self.stats, sink: &mut self.out };
            self.conn.side_closed(side, &mut cx);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// decode

/// Input: `[codings][cap][piece seed][body...]`. The codings byte: bit 7 set, the body starts
/// with a coding list line (as in a Content-Encoding field) ending in `\n`; else bits 0-1 the
/// count, then two bits per coding. The seed's top bit picks the deferred decoder.
pub fn decode(data: &[u8]) {
    if data.len() < 3 {
        return;
    }
    let (sel, cap_sel, seed) = (data[0], data[1], data[2]);
    let mut body = &data[3..];
    let mut codings = Vec::new();
    if sel & 0x80 != 0 {
        let nl = body.iter().position(|&c| c == b'\n').unwrap_or(body.len());
        let _ = parse_codings(&body[..nl], &mut codings);
        body = &body[(nl + 1).min(body.len())..];
    } else {
        const ALL: [Coding; 4] = [Coding::Gzip, Coding::Deflate, Coding::Brotli, Coding::Zstd];
        for k in 0..(sel & 3) {
            codings.push(ALL[(sel >> (2 + 2 * k)) as usize & 3]);
        }
    }
    let cap = match cap_sel & 3 {
        0 => 0,
        1 => cap_sel as usize,
        2 => 4096,
        _ => 1 << 20,
    };
    // The seed's top bit: the deferred decoder (the converter's), which decodes at the end.
    let mut d = if seed & 0x80 != 0 { BodyDecoder::deferred(&codings, cap) } else { BodyDecoder::new(&codings, cap) };
    let mut rng = seed as u32 | 1;
    let mut rest = body;
    while !rest.is_empty() {
        rng ^= rng << 13;
        rng ^= rng >> 17;
        rng ^= rng << 5;
        let n = (rng as usize % 700 + 1).min(rest.len());
        d.push(&rest[..n]);
        rest = &rest[n..];
        assert!(d.out.len() <= cap, "decoded {} over the cap {cap}", d.out.len());
        assert!(d.out.capacity() <= cap, "capacity {} over the cap {cap}", d.out.capacity());
    }
    d.finish();
    assert!(d.out.len() <= cap, "kept {} over the cap {cap}", d.out.len());
    assert!(d.out.capacity() <= cap, "capacity {} over the cap {cap}", d.out.capacity());
    assert_eq!(d.encoded_len, body.len() as u64);
    if d.decoded_len > cap as u64 && !d.fell_back_to_raw() {
        assert!(d.truncated, "decoded {} past the cap {cap} without saying so", d.decoded_len);
    }
    if codings.is_empty() {
        let keep = body.len().min(cap);
        assert_eq!(&d.out[..], &body[..keep]);
    }
    // A complete gzip body is decoded in one call when deferred: the same bytes as streamed.
    if seed & 0x80 != 0 && codings == [Coding::Gzip] && d.error.is_none() && !d.truncated {
        let mut s = BodyDecoder::new(&codings, cap);
        s.push(body);
        s.finish();
        assert_eq!(s.out, d.out, "deferred and streamed gzip decoding disagree");
    }
}

// ---------------------------------------------------------------------------------------------
// convert

fn converters() -> &'static [Converter; 2] {
    static C: OnceLock<[Converter; 2]> = OnceLock::new();
    C.get_or_init(|| {
        let cfg = |threads| Config {
            flow: FlowLimits {
                max_ooo_per_conn: 2048,
                max_ooo_total: 4096,
                max_flows: 8,
                idle_timeout_ns: 10_000_000_000,
                ..FlowLimits::default()
            },
            http: HttpLimits { max_head: 1024, max_headers: 32, max_body: 2048, ..HttpLimits::default() },
            h2: apitool::proto::h2::H2Limits { max_header_list: 4096, max_streams: 8, max_table: 256 },
            tls: Default::default(),
            defrag: DefragLimits { max_datagrams: 4, max_bytes: 16_384, timeout_ns: 1_000_000_000 },
            // TZSP on a port of the user's choosing too, as `--tzsp-port 31337` gives it.
            wire: apitool::wire::WireOptions { tzsp_port: 31337 },
            threads,
            window_bytes: 4096,
            window_frames: 16,
            reorder_mem: 8192,
            order_window_ns: 1_000_000_000,
            observe_connections: true,
            stop: None,
            output: OutputOptions::default(),
        };
        [Converter::new(cfg(1)), Converter::new(cfg(2))]
    })
}

fn convert_with(conv: &Converter, file: &[u8], mapped: bool) -> Option<(apitool::pipeline::Summary, Vec<u8>)> {
    let input = if mapped && !file.is_empty() {
        let mut m = memmap2::MmapMut::map_anon(file.len()).expect("anonymous map");
        m.copy_from_slice(file);
        Input::Mapped { map: m.make_read_only().expect("read-only map") }
    } else {
        Input::Stream(Box::new(std::io::Cursor::new(file.to_vec())))
    };
    conv.convert(input, "fuzz", Vec::new(), &mut |_| {}).ok()
}

/// Input: `[mode][capture...]`. Mode bit 0: read the capture from a memory map (else as a
/// stream); bit 1: also convert with two threads and compare; bit 2: also write witnesses.
pub fn convert(data: &[u8]) {
    let Some((&mode, file)) = data.split_first() else { return };
    let [one, two] = converters();
    let Some((summary, har)) = convert_with(one, file, mode & 1 != 0) else { return };
    let doc: serde_json::Value = serde_json::from_slice(&har).expect("the HAR is JSON");
    let entries = doc["log"]["entries"].as_array().map_or(0, |e| e.len());
    assert_eq!(entries as u64, summary.entries);
    if mode & 2 != 0 {
        let (_, har2) = convert_with(two, file, mode & 1 != 0).expect("converts with two threads too");
        assert!(har == har2, "the HAR depends on the number of threads");
    }
    if mode & 4 != 0 {
        // HAR and witnesses in one pass: the HAR is the same as alone, every witness reads back.
        let input = Input::Stream(Box::new(std::io::Cursor::new(file.to_vec())));
        let (s, har3, wit) =
            one.convert_to(input, "fuzz", Some(Vec::new()), Some(Vec::new()), &mut |_| {}).expect("converts to both outputs");
        assert!(har3.as_deref() == Some(&har[..]), "the HAR changes when witnesses are written too");
        let mut rest = &wit.expect("a witness output")[..];
        let mut n = 0u64;
        while !rest.is_empty() {
            let len = prost::encoding::decode_varint(&mut rest).expect("a witness length");
            let (one_w, tail) = rest.split_at(len as usize);
            <apitool::ir::Witness as prost::Message>::decode(one_w).expect("a witness reads back");
            rest = tail;
            n += 1;
        }
        assert!(n <= s.entries, "{n} witnesses for {} entries", s.entries);
    }
}

// ---------------------------------------------------------------------------------------------
// witness

/// Input: a protobuf-encoded witness.
pub fn witness(data: &[u8]) {
    use apitool::ir::{Witness, digest, text};
    use prost::Message;
    let Ok(w) = Witness::decode(data) else { return };
    let _ = digest(&w);
    let t = text::to_text(&w);
    let back: Witness = text::parse(&t).unwrap_or_else(|e| panic!("the text form does not read back: {e}\n{t}"));
    assert_eq!(text::to_text(&back), t, "text form changes on a round trip");
    let _ = back.encode_to_vec();
}

// ---------------------------------------------------------------------------------------------
// keylog

/// Input: `[mode][split lo][split hi][key log...]`: the key log is read as two sources cut at
/// `split`. Mode bits 0, 1 pick the cap on client randoms (default, 0, 1, 3); bit 2 keeps at
/// most 2 problems. Every line is accounted for (a secret, another label, a comment or blank,
/// a problem), the caps hold, kept secrets have a length their label allows, and no problem
/// message shows a run of the input's hex digits.
pub fn keylog(data: &[u8]) {
    use apitool::proto::tls::keylog::{KeyLog, KeyLogLimits, Label};
    let [mode, lo, hi, log @ ..] = data else { return };
    let split = (u16::from_le_bytes([*lo, *hi]) as usize).min(log.len());
    let max_client_randoms = [KeyLogLimits::default().max_client_randoms, 0, 1, 3][(mode & 3) as usize];
    let max_problems = if mode & 4 != 0 { 2 } else { KeyLogLimits::default().max_problems };
    let mut k = KeyLog::new(KeyLogLimits { max_client_randoms, max_problems });
    let (a, b) = log.split_at(split);
    k.add(a);
    k.add(b);
    // Lines, counted here: the pieces between line feeds, a last one without its line feed.
    let lines_of = |s: &[u8]| -> Vec<Vec<u8>> {
        if s.is_empty() {
            return Vec::new();
        }
        let mut v: Vec<Vec<u8>> = s.split(|&c| c == b'\n').map(|l| l.to_vec()).collect();
        if s.ends_with(b"\n") {
            v.pop();
        }
        v
    };
    let all: Vec<Vec<u8>> = lines_of(a).into_iter().chain(lines_of(b)).collect();
    let skipped = all
        .iter()
        .filter(|l| {
            // One CR before the LF is the line end's; then spaces and tabs around.
            let l = l.strip_suffix(b"\r").unwrap_or(l);
            let t: Vec<u8> = l.iter().copied().skip_while(|c| matches!(c, b' ' | b'\t')).collect();
            t.is_empty() || t[0] == b'#'
        })
        .count() as u64;
    let s = k.stats;
    assert_eq!(s.lines, all.len() as u64, "lines counted");
    assert_eq!(s.secrets + s.other_labels + s.bad_lines + skipped, s.lines, "every line accounted for: {s:?}, {skipped} skipped");
    assert!(k.len() <= max_client_randoms);
    assert!(k.problems.len() <= max_problems && k.problems.len() as u64 <= s.bad_lines);
    for p in &k.problems {
        let of_source = lines_of(if p.source == 0 { a } else { b }).len() as u64;
        assert!(p.line >= 1 && p.line <= of_source, "problem at line {} of {of_source}", p.line);
        let msg = p.to_string();
        for run in log.split(|c| !c.is_ascii_hexdigit()).filter(|r| r.len() >= 8) {
            assert!(!msg.as_bytes().windows(8).any(|w| w == &run[..8]), "a problem shows input: {msg}");
        }
    }
    for line in &all {
        let mut f = line.split(|&c| c == b' ' || c == b'\t').filter(|f| !f.is_empty());
        let (_, Some(random)) = (f.next(), f.next()) else { continue };
        let Ok(r) = <[u8; 32]>::try_from(
            random.chunks(2).filter_map(|p| std::str::from_utf8(p).ok().and_then(|h| u8::from_str_radix(h, 16).ok())).collect::<Vec<u8>>(),
        ) else {
            continue;
        };
        if let Some(secrets) = k.get(&r) {
            for label in Label::ALL {
                if let Some(x) = secrets.get(label) {
                    let ok: &[usize] = if label == Label::ClientRandom { &[48] } else { &[32, 48] };
                    assert!(ok.contains(&x.as_bytes().len()), "{label:?} of {} bytes", x.as_bytes().len());
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// ws

/// Input: one byte of settings (direction, `permessage-deflate`, context takeover, cap), then
/// either raw stream bytes (cut at arbitrary points, with gaps) or, with the top bit of the
/// settings, messages to encode. Raw: never more than the cap kept, counters that agree.
/// Encoded: every message comes out exactly, whatever the pieces.
pub fn ws(data: &[u8]) {
    use apitool::proto::ws::{Deflate, Extensions, WsDirection, WsLimits, encode};
    let [settings, seed, rest @ ..] = data else { return };
    let client = settings & 1 != 0;
    let deflate = settings & 2 != 0;
    let no_takeover = settings & 4 != 0;
    let cap = [0usize, 7, 300, 1 << 16][(settings >> 3) as usize & 3];
    let d = Deflate { no_context_takeover: no_takeover, max_window_bits: 15 };
    let ext = Extensions { deflate: deflate.then_some([d, d]), other: None };
    let limits = WsLimits { max_message: cap, max_inflate: 1 << 22 };
    let mut rng = *seed as u32 | 1;
    let mut next = move || {
        rng ^= rng << 13;
        rng ^= rng >> 17;
        rng ^= rng << 5;
        rng
    };
    let mut dir = WsDirection::new(client, &ext, limits);
    let mut out = Vec::new();
    if settings & 0x80 == 0 {
        let mut rest = rest;
        let mut k = 0;
        while !rest.is_empty() {
            let r = next();
            let n = (r as usize % 300 + 1).min(rest.len());
            if r % 17 == 0 {
                dir.gap(n as u64, Ts(k), &mut |m| out.push(m));
            } else {
                dir.push(&rest[..n], Ts(k), &mut |m| out.push(m));
            }
            rest = &rest[n..];
            k += 1;
        }
        dir.end(&mut |m| out.push(m));
        for m in &out {
            assert!(m.data.len() <= cap, "kept {} over the cap {cap}", m.data.len());
            assert!(m.size >= m.data.len() as u64);
            assert!(!m.truncated || m.data.len() == cap);
        }
        assert_eq!(dir.stats().messages, out.len() as u64);
        return;
    }
    // Messages: a length byte, an opcode byte (fragment count in its high bits), the bytes.
    let mut z = deflate.then(|| encode::Deflater::new(15, no_takeover));
    let mask = client.then_some([1, 2, 3, 4]);
    let (mut stream, mut want) = (Vec::new(), Vec::new());
    let mut rest = rest;
    while let [len, op, tail @ ..] = rest {
        let n = (*len as usize).min(tail.len());
        let (body, tail) = tail.split_at(n);
        rest = tail;
        let opcode = [1u8, 2, 8, 9, 10][(op & 7) as usize % 5];
        let control = opcode >= 8;
        let body = if control { &body[..body.len().min(125)] } else { body };
        let compressed = !control && op & 8 != 0 && z.is_some();
        let payload = match (&mut z, compressed) {
            (Some(z), true) => z.message(body),
            _ => body.to_vec(),
        };
        let frags = if control { 1 } else { (op >> 4) as usize % 4 + 1 };
        let size = payload.len().div_ceil(frags).max(1);
        let parts: Vec<&[u8]> = if payload.is_empty() { vec![&[][..]] } else { payload.chunks(size).collect() };
        for (i, p) in parts.iter().enumerate() {
            let o = if i == 0 { opcode } else { 0 };
            stream.extend(encode::frame(i + 1 == parts.len(), compressed && i == 0, o, mask, p));
        }
        want.push((opcode, body[..body.len().min(cap)].to_vec()));
    }
    let mut s = &stream[..];
    let mut k = 0;
    while !s.is_empty() {
        let n = (next() as usize % 200 + 1).min(s.len());
        dir.push(&s[..n], Ts(k), &mut |m| out.push(m));
        s = &s[n..];
        k += 1;
    }
    dir.end(&mut |m| out.push(m));
    let got: Vec<(u8, Vec<u8>)> = out.iter().map(|m| (m.opcode, m.data.clone())).collect();
    assert_eq!(got, want, "messages differ");
    assert!(out.iter().all(|m| m.damage.is_none()), "a message of a whole stream is marked damaged");
}

// ---------------------------------------------------------------------------------------------
// ws_conn

/// Input: one byte of settings (extensions offered in the 101, the message cap), then pieces
/// of the two streams after a WebSocket handshake, each a header byte (side, gap, length)
/// and its bytes, through [`apitool::proto::Handler`]: the handler takes the connection over
/// at the 101, and at its end hands out the handshake exactly once with its log, whose
/// counters agree (messages seen = kept + dropped, opcodes counted over all of them), which
/// holds no more than the caps, each direction in its order, and whose HAR entry is JSON.
pub fn ws_conn(data: &[u8]) {
    use apitool::proto::http1::{Exchange, HttpLimits};
    use apitool::proto::{Chunk, ConnMeta, Ctx, Handler, Limits, Side, Stats};
    use apitool::wire::Endpoint;
    let [settings, rest @ ..] = data else { return };
    let ext = [
        "",
        "Sec-WebSocket-Extensions: permessage-deflate\r\n",
        "Sec-WebSocket-Extensions: permessage-deflate; client_no_context_takeover; server_max_window_bits=9\r\n",
        "Sec-WebSocket-Extensions: x-webkit-deflate-frame\r\n",
    ][*settings as usize & 3];
    let max_messages = [0usize, 1, 5, 10_000][(settings >> 2) as usize & 3];
    let max_body = [0usize, 10, 1 << 16, 16 << 20][(settings >> 4) as usize & 3];
    let limits =
        Limits { http: HttpLimits { max_messages, max_body, max_bodies_total: 1 << 12, ..HttpLimits::default() }, ..Limits::default() };
    let ep = |port| Endpoint { ip: [0; 16], port, v6: false };
    let mut h = Handler::new(ConnMeta { id: 1, client: ep(40000), server: ep(80), syn_ts: None, established_ts: None });
    h.clean_start(Side::Client);
    h.clean_start(Side::Server);
    let mut stats = Stats::default();
    let mut out: Vec<Exchange> = Vec::new();
    let mut cx = Ctx { limits: &limits, stats: &mut stats, sink: &mut out };
    // Offsets per side and the time of the last piece.
    let mut at = ([0u64; 2], 0i64);
    let piece = |h: &mut Handler, side: Side, b: &[u8], cx: &mut Ctx<'_>, at: &mut ([u64; 2], i64)| {
        at.1 += 1;
        h.data(side, b, Chunk { ts: Ts(at.1), frame: at.1 as u64, offset: at.0[side as usize], ack: None }, cx);
        at.0[side as usize] += b.len() as u64;
    };
    let req = b"GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n";
    piece(&mut h, Side::Client, req, &mut cx, &mut at);
    let resp = format!("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n{ext}\r\n");
    piece(&mut h, Side::Server, resp.as_bytes(), &mut cx, &mut at);
    let mut rest = rest;
    while let [head, tail @ ..] = rest {
        let side = if head & 1 == 0 { Side::Client } else { Side::Server };
        let n = ((head >> 2) as usize + 1).min(tail.len());
        if head & 2 != 0 {
            h.gap(side, n as u64, Ts(at.1), None, &mut cx);
            at.0[side as usize] += n as u64;
        } else {
            piece(&mut h, side, &tail[..n], &mut cx, &mut at);
        }
        rest = &tail[n.min(tail.len())..];
    }
    let open = h.pending_start().is_some();
    h.end(true, Ts(at.1 + 1), None, &mut cx);
    assert!(open, "the handshake is reported in progress while the socket is open");
    assert_eq!(out.len(), 1, "the handshake comes out once");
    let log = out[0].websocket.as_deref().expect("the handshake carries its log");
    assert_eq!(log.seen, log.messages.len() as u64 + log.dropped);
    assert_eq!(log.by_opcode.iter().sum::<u64>(), log.seen);
    assert!(log.messages.len() <= max_messages);
    assert!(log.held <= 1 << 12 && log.messages.iter().all(|r| r.msg.data.len() <= max_body));
    let mut entry = Vec::new();
    apitool::output::har::write_entry(&mut entry, &out[0]);
    let v: serde_json::Value = serde_json::from_slice(&entry).expect("the entry is JSON");
    assert_eq!(v["_resourceType"], "websocket");
}

// h2

/// HTTP/2: frames and HPACK. The first byte picks the mode and the caps, the second seeds the
/// piece sizes. Mode 0: the rest are HPACK header blocks (a length byte before each) for one
/// decoder: the table never holds more than its cap, a block's fields never more than the
/// list cap. Mode 1: the rest is both sides of a connection, raw (after the client preface),
/// cut at arbitrary points with gaps. Mode 2: the rest is frames described compactly (type,
/// flags, stream, length, then the payload), so that deep states come quickly. In modes 1
/// and 2 the handler's held bytes stay under a bound made of the caps, and no body is kept
/// past `--max-body`.
pub fn h2(data: &[u8]) {
    use apitool::proto::h2::H2Limits;
    use apitool::proto::h2::hpack::Decoder;
    use apitool::proto::{Handler, Limits, Stats};
    let [settings, seed, rest @ ..] = data else { return };
    let table = [0usize, 64, 256, 4096][(settings >> 2) as usize & 3];
    let list = [64usize, 1024, 1 << 16][(settings >> 4) as usize % 3];
    if settings & 0x40 != 0 {
        // gRPC framing: messages never more than the budget, every byte accounted for.
        let enc: &[&[u8]] = &[b"gzip", b"deflate", b"identity", b"snappy"];
        let budget = [0usize, 100, 1 << 16][(settings >> 4) as usize % 3];
        let side = apitool::proto::h2::grpc::split(rest, Some(enc[*seed as usize % 4]), budget);
        let kept: usize = side.messages.iter().map(|m| m.data.len()).sum();
        assert!(kept <= budget, "{kept} kept over the budget {budget}");
        let framed: u64 = side.messages.iter().map(|m| 5 + m.length as u64).sum();
        assert!(framed + side.trailing <= rest.len() as u64);
        return;
    }
    match settings & 3 {
        0 => {
            let mut d = Decoder::new(table);
            let mut rest = rest;
            while let [n, tail @ ..] = rest {
                let n = (*n as usize).min(tail.len());
                let (block, tail) = tail.split_at(n);
                rest = tail;
                let mut out = Vec::new();
                if d.decode(block, list, &mut out).is_ok() {
                    let size: usize = out.iter().map(|(n, v)| n.len() + v.len() + 32).sum();
                    assert!(size <= list, "{size} over the list cap {list}");
                } else {
                    assert!(out.is_empty());
                }
                assert!(d.held_bytes() <= table.max(0), "table {} over its cap {table}", d.held_bytes());
            }
        }
        mode => {
            let stream: Vec<u8> = if mode == 1 { rest.to_vec() } else { frames_from(rest) };
            let limits = Limits {
                http: HttpLimits { max_body: 1000, ..HttpLimits::default() },
                h2: H2Limits { max_header_list: list, max_streams: 8, max_table: table },
                ..Limits::default()
            };
            let mut stats = Stats::default();
            let mut out: Vec<Exchange> = Vec::new();
            let meta = ConnMeta { id: 1, client: ep(1), server: ep(2), syn_ts: Some(Ts(0)), established_ts: None };
            let mut h = Handler::new(meta);
            h.clean_start(Side::Client);
            h.clean_start(Side::Server);
            let mut rng = *seed as u32 | 1;
            let mut next = move || {
                rng ^= rng << 13;
                rng ^= rng >> 17;
                rng ^= rng << 5;
                rng
            };
            let preface = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
            let mut offs = [0u64; 2];
            let mut k = 0;
            {
                let mut cx = apitool::proto::Ctx { limits: &limits, stats: &mut stats, sink: &mut out };
                h.data(Side::Client, preface, Chunk { ts: Ts(0), frame: 0, offset: 0, ack: None }, &mut cx);
                offs[0] = preface.len() as u64;
            }
            let mut s = &stream[..];
            while !s.is_empty() {
                let r = next();
                let n = (r as usize % 200 + 1).min(s.len());
                let side = if r & 0x100 != 0 { Side::Server } else { Side::Client };
                let i = side as usize;
                k += 1;
                let mut cx = apitool::proto::Ctx { limits: &limits, stats: &mut stats, sink: &mut out };
                if r % 23 == 0 {
                    h.gap(side, n as u64, Ts(k), None, &mut cx);
                } else {
                    h.data(side, &s[..n], Chunk { ts: Ts(k), frame: k as u64, offset: offs[i], ack: None }, &mut cx);
                }
                offs[i] += n as u64;
                s = &s[n..];
                // Frames being collected (at most the list cap and a frame header), the search
                // after lost boundaries (1 MiB and two headers), bodies, tables.
                let bound = 2 * (list + (16 << 10) + 2048) + 2 * ((1 << 20) + 64) + 2 * table + 8 * 2 * (1000 + (64 << 10) + (64 << 10));
                assert!(h.buffered_bytes() <= bound, "{} held, bound {bound}", h.buffered_bytes());
            }
            let mut cx = apitool::proto::Ctx { limits: &limits, stats: &mut stats, sink: &mut out };
            h.end(true, Ts(k + 1), None, &mut cx);
            for ex in &out {
                for m in ex.request.iter().chain(ex.response.iter()) {
                    assert!(m.body.len() <= 1000 || m.body_is_encoded, "body of {} over the cap", m.body.len());
                }
            }
        }
    }
}

fn ep(port: u16) -> Endpoint {
    Endpoint { ip: [0; 16], port, v6: false }
}

/// Frames from a compact description: per frame a type byte (mod 10), flags, a stream byte
/// (stream id = the byte, so 0 and odd and even ids come), a length byte, then that many
/// payload bytes.
fn frames_from(mut b: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let [kind, flags, stream, len, tail @ ..] = b {
        let n = (*len as usize).min(tail.len());
        out.extend_from_slice(&(n as u32).to_be_bytes()[1..]);
        out.push(kind % 10);
        out.push(*flags);
        out.extend_from_slice(&(*stream as u32).to_be_bytes());
        out.extend_from_slice(&tail[..n]);
        b = &tail[n..];
    }
    out
}

/// The key logs of `testdata/tls12.keys`, `tls13.keys` and `tls-keyupdate.keys`: real secrets of the
/// recorded captures, so inputs made from those connections' streams decrypt.
static TLS_KEYLOG: OnceLock<Arc<apitool::proto::tls::keylog::KeyLog>> = OnceLock::new();

/// The TLS handler (record layer, handshake, decryption, the inner HTTP handler) over any
/// bytes in both directions, with a fixed key log. The input is a list of steps: a control
/// byte (bit 0: the server's side; bits 1-2: 0 bytes, 1 a gap, 2 the side's close), a 2-byte
/// little-endian length, and for bytes that many bytes. Nothing may panic; every exchange
/// of a TLS connection carries its TLS facts (and none of a connection that is not TLS); no
/// more plaintext comes out than ciphertext went in; the bytes held stay within the caps.
pub fn tls(data: &[u8]) {
    tls_run(data);
}

/// [`tls`], returning the TLS counters and the exchanges.
pub fn tls_run(data: &[u8]) -> (apitool::proto::tls::TlsStats, Vec<Exchange>) {
    use apitool::proto::tls::keylog::{KeyLog, KeyLogLimits};
    use apitool::proto::{Handler, Limits, Stats};
    let keylog = TLS_KEYLOG.get_or_init(|| {
        let mut k = KeyLog::new(KeyLogLimits::default());
        k.add(include_bytes!("../../testdata/tls12.keys"));
        k.add(include_bytes!("../../testdata/tls13.keys"));
        k.add(include_bytes!("../../testdata/tls-keyupdate.keys"));
        Arc::new(k)
    });
    let limits = Limits { tls: apitool::proto::tls::TlsLimits { keylog: Some(keylog.clone()) }, ..Limits::default() };
    let mut stats = Stats::default();
    let mut out: Vec<Exchange> = Vec::new();
    let ep = |port| Endpoint { ip: [0; 16], port, v6: false };
    let mut h = Handler::new(meta(ep(40000), ep(443)));
    h.clean_start(Side::Client);
    h.clean_start(Side::Server);
    let mut rest = data;
    let mut off = [0u64; 2];
    let mut fed = 0u64;
    let mut t = 0i64;
    while let [ctl, lo, hi, tail @ ..] = rest {
        let n = u16::from_le_bytes([*lo, *hi]) as usize;
        let side = if ctl & 1 == 0 { Side::Client } else { Side::Server };
        t += 1_000;
        let mut cx = apitool::proto::Ctx { limits: &limits, stats: &mut stats, sink: &mut out };
        match (ctl >> 1) & 3 {
            1 => {
                h.gap(side, n as u64 + 1, Ts(t), None, &mut cx);
                off[side as usize] += n as u64 + 1;
                rest = tail;
            }
            2 => {
                h.side_closed(side, &mut cx);
                rest = tail;
            }
            _ => {
                let n = n.min(tail.len());
                let chunk = Chunk { ts: Ts(t), frame: t as u64 / 1000, offset: off[side as usize], ack: None };
                h.data(side, &tail[..n], chunk, &mut cx);
                off[side as usize] += n as u64;
                fed += n as u64;
                rest = &tail[n..];
            }
        }
        let _ = (h.pending_start(), h.is_done(), h.bodies_held());
        assert!(h.buffered_bytes() < 1 << 22, "{} bytes held", h.buffered_bytes());
    }
    let mut cx = apitool::proto::Ctx { limits: &limits, stats: &mut stats, sink: &mut out };
    h.end(true, Ts(t + 1), None, &mut cx);
    assert!(stats.tls.plaintext_bytes <= fed, "{} bytes of plaintext from {fed} of input", stats.tls.plaintext_bytes);
    // A connection taken for TLS tags every exchange with its facts; one that is not TLS
    // (bytes that are no record header first) tags none.
    let tls = h.protocol() == Some("TLS");
    for ex in &out {
        assert_eq!(ex.tls.is_some(), tls, "an exchange with TLS facts {:?} on a {:?} connection", ex.tls, h.protocol());
    }
    assert!(stats.tls_undecrypted.len() <= 1);
    (stats.tls, out)
}
