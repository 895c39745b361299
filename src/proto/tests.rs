//! Detection against hand-made first bytes, and the handler against the HTTP/1 handler alone:
//! whatever the pieces, an HTTP/1 connection gives exactly what `HttpConn` gives.

use super::detect::{H2_PREFACE, PROBE_LEN, Verdict, first_port_is_server, probe, sender_role};
use super::*;
use crate::proto::http1::HttpConn;
use proptest::prelude::*;

/// The start of a TLS 1.2 ClientHello record (content type 22, version 3.1, length 0x00c8,
/// handshake type 1).
const CLIENT_HELLO: &[u8] = b"\x16\x03\x01\x00\xc8\x01\x00\x00\xc4\x03\x03";
/// The start of a ServerHello record (type 2).
const SERVER_HELLO: &[u8] = b"\x16\x03\x03\x00\x5a\x02\x00\x00\x56\x03\x03";
/// A TLS 1.3 application data record, as a capture that starts mid-connection first sees.
const APP_DATA: &[u8] = b"\x17\x03\x03\x01\x1a\x9c\x44\xe0\x13";

#[test]
fn tls_record_headers_are_tls() {
    for b in [CLIENT_HELLO, SERVER_HELLO, APP_DATA, b"\x15\x03\x03\x00\x02\x02\x28", b"\x14\x03\x03\x00\x01\x01"] {
        assert_eq!(probe(b), Verdict::Tls, "{b:02x?}");
        // Fewer than the five bytes of a record header: not yet.
        for n in 1..5 {
            assert_eq!(probe(&b[..n]), Verdict::NeedMore, "{:02x?}", &b[..n]);
        }
    }
    // SSLv2-format ClientHellos offering SSL 2.0 and TLS 1.0.
    assert_eq!(probe(b"\x80\x2e\x01\x00\x02\x00\x15\x00\x00\x00\x10"), Verdict::Tls);
    assert_eq!(probe(b"\x80\x4c\x01\x03\x01\x00\x33\x00\x00\x00\x10"), Verdict::Tls);
    // Near misses: another content type, major version, minor version, an empty or oversized
    // record, an SSLv2 header of another message type or too short.
    for b in [
        &b"\x13\x03\x03\x00\x10"[..],
        b"\x19\x03\x03\x00\x10",
        b"\x16\x02\x03\x00\x10",
        b"\x16\x03\x05\x00\x10",
        b"\x16\x03\x01\x00\x00",
        b"\x16\x03\x01\x48\x01",
        b"\x80\x2e\x02\x00\x02",
        b"\x80\x05\x01\x03\x01",
        b"\x80\x2e\x01\x03\x05",
    ] {
        assert_eq!(probe(b), Verdict::Http1, "{b:02x?}");
    }
    // The largest record payload TLS allows is still a record.
    assert_eq!(probe(b"\x17\x03\x03\x48\x00"), Verdict::Tls);
}

#[test]
fn the_h2_preface_is_http2_and_its_prefixes_wait() {
    assert_eq!(probe(H2_PREFACE), Verdict::Http2);
    let mut more = H2_PREFACE.to_vec();
    more.extend_from_slice(b"\x00\x00\x12\x04\x00\x00\x00\x00\x00");
    assert_eq!(probe(&more), Verdict::Http2);
    for n in 1..H2_PREFACE.len() {
        assert_eq!(probe(&H2_PREFACE[..n]), Verdict::NeedMore, "{n}");
    }
    // A request line that is not the preface (another method from P, HTTP/1.1 after PRI *,
    // the preface with its last byte changed).
    for b in [&b"POST /x HTTP/1.1\r\n"[..], b"PUT / HTTP/1.1\r\n", b"PRI * HTTP/1.1\r\n\r\n", b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\r"] {
        assert_eq!(probe(b), Verdict::Http1, "{}", String::from_utf8_lossy(b));
    }
}

#[test]
fn http_and_anything_else_is_http1() {
    for b in
        [&b"GET / HTTP/1.1\r\n"[..], b"HTTP/1.1 200 OK\r\n", b"\r\nGET", b"G", b"\x00\x01", b"SSH-2.0-OpenSSH_9.6\r\n", b"\x05\x01\x00"]
    {
        assert_eq!(probe(b), Verdict::Http1, "{b:02x?}");
    }
}

proptest! {
    /// Any bytes: no panic, and more bytes are asked for only while fewer than the probe
    /// length were given and they agree with a longer signature.
    #[test]
    fn probe_needs_more_only_for_short_prefixes(b in proptest::collection::vec(any::<u8>(), 0..40)) {
        let v = probe(&b);
        if v == Verdict::NeedMore {
            prop_assert!(b.len() < PROBE_LEN);
            prop_assert!(b.is_empty() || H2_PREFACE.starts_with(&b) || b.len() < 5);
        }
        // What a longer piece says does not depend on what follows the first PROBE_LEN bytes.
        if b.len() >= PROBE_LEN {
            prop_assert_eq!(v, probe(&b[..PROBE_LEN]));
        }
        let _ = sender_role(&b);
    }
}

#[test]
fn the_first_bytes_tell_the_client() {
    assert_eq!(sender_role(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n"), Some(Side::Client));
    assert_eq!(sender_role(b"HTTP/1.1 204 No Content\r\n\r\n"), Some(Side::Server));
    assert_eq!(sender_role(H2_PREFACE), Some(Side::Client));
    assert_eq!(sender_role(CLIENT_HELLO), Some(Side::Client));
    assert_eq!(sender_role(SERVER_HELLO), Some(Side::Server));
    assert_eq!(sender_role(b"\x80\x2e\x01\x00\x02\x00\x15\x00\x00\x00\x10"), Some(Side::Client));
    // Application data, a partial line, junk: the ports decide.
    for b in [APP_DATA, &b"GET / HT"[..], b"\x00\x01\x02"] {
        assert_eq!(sender_role(b), None, "{b:02x?}");
    }
    assert!(first_port_is_server(443, 51000));
    assert!(!first_port_is_server(51000, 8080));
    assert!(first_port_is_server(9000, 9001), "neither well known: the lower");
    assert!(!first_port_is_server(1234, 80), "both under 1024 or well known: the lower");
}

// The handler against HttpConn alone.

fn meta() -> ConnMeta {
    let ep = |port| Endpoint { ip: [0; 16], port, v6: false };
    ConnMeta { id: 1, client: ep(40000), server: ep(80), syn_ts: Some(Ts(0)), established_ts: None }
}

#[derive(Clone, Debug)]
enum Step {
    Data(Side, Vec<u8>),
    Gap(Side, u64),
    Closed(Side),
}

/// Plays steps on one connection (data in pieces of its own, times and offsets counted) and
/// returns the exchanges and counters.
trait Target {
    fn step(&mut self, s: &Step, chunk: Chunk, cx: &mut Ctx<'_>);
    fn finish(&mut self, cx: &mut Ctx<'_>);
}

impl Target for Handler {
    fn step(&mut self, s: &Step, chunk: Chunk, cx: &mut Ctx<'_>) {
        match s {
            Step::Data(side, b) => self.data(*side, b, chunk, cx),
            Step::Gap(side, n) => self.gap(*side, *n, chunk.ts, None, cx),
            Step::Closed(side) => self.side_closed(*side, cx),
        }
    }
    fn finish(&mut self, cx: &mut Ctx<'_>) {
        self.end(true, Ts(1 << 40), None, cx);
    }
}

impl Target for HttpConn {
    fn step(&mut self, s: &Step, chunk: Chunk, cx: &mut Ctx<'_>) {
        let cx = &mut cx.http();
        match s {
            Step::Data(side, b) => self.data(*side, b, chunk, cx),
            Step::Gap(side, n) => self.gap_by(*side, *n, chunk.ts, None, cx),
            Step::Closed(side) => self.side_closed(*side, cx),
        }
    }
    fn finish(&mut self, cx: &mut Ctx<'_>) {
        self.end_by(true, Ts(1 << 40), None, &mut cx.http());
    }
}

fn play(t: &mut dyn Target, steps: &[Step]) -> (Vec<Exchange>, Stats) {
    let limits = Limits::default();
    let mut stats = Stats::default();
    let mut out: Vec<Exchange> = Vec::new();
    let mut offs = [0u64; 2];
    for (i, s) in steps.iter().enumerate() {
        let (side, len) = match s {
            Step::Data(side, b) => (*side, b.len() as u64),
            Step::Gap(side, n) => (*side, *n),
            Step::Closed(side) => (*side, 0),
        };
        let k = side as usize;
        let chunk = Chunk { ts: Ts(i as i64 + 1), frame: i as u64 + 1, offset: offs[k], ack: Some(offs[1 - k]) };
        offs[k] += len;
        let mut cx = Ctx { limits: &limits, stats: &mut stats, sink: &mut out };
        t.step(s, chunk, &mut cx);
    }
    let mut cx = Ctx { limits: &limits, stats: &mut stats, sink: &mut out };
    t.finish(&mut cx);
    (out, stats)
}

fn clean_pair(clean: [bool; 2]) -> (Handler, HttpConn) {
    let mut h = Handler::new(meta());
    let mut direct = HttpConn::new(meta());
    for (side, c) in [(Side::Client, clean[0]), (Side::Server, clean[1])] {
        if c {
            h.clean_start(side);
            direct.clean_start(side);
        }
    }
    (h, direct)
}

/// The verdict the steps should get: the first data of one side, with what follows it on that
/// side before anything else happens, probed; too few bytes to tell is HTTP/1.
fn expected(steps: &[Step]) -> Verdict {
    let mut first: Option<(Side, Vec<u8>)> = None;
    for s in steps {
        match (s, &mut first) {
            (Step::Data(_, b), _) if b.is_empty() => {}
            (Step::Data(side, b), None) => first = Some((*side, b.clone())),
            (Step::Data(side, b), Some((fs, acc))) if side == fs => acc.extend_from_slice(b),
            (_, None) => continue,
            _ => break,
        }
        if let Some((_, acc)) = &first {
            match probe(&acc[..acc.len().min(PROBE_LEN)]) {
                Verdict::NeedMore => {}
                v => return v,
            }
        }
    }
    Verdict::Http1
}

fn check(steps: &[Step], clean: [bool; 2]) -> Result<(), TestCaseError> {
    let (mut h, mut direct) = clean_pair(clean);
    let (got, got_stats) = play(&mut h, steps);
    let want = expected(steps);
    match want {
        Verdict::Http1 | Verdict::NeedMore => {
            let (exp, exp_stats) = play(&mut direct, steps);
            prop_assert_eq!(format!("{got:?}"), format!("{exp:?}"));
            prop_assert_eq!(format!("{:?}", got_stats.http), format!("{:?}", exp_stats.http));
            prop_assert_eq!(got_stats.detected, Detected::default());
        }
        Verdict::Tls => {
            prop_assert!(got.is_empty(), "{got:?}");
            prop_assert_eq!(format!("{:?}", got_stats.http), format!("{:?}", crate::proto::http1::HttpStats::default()));
            prop_assert_eq!(got_stats.detected.tls_connections, 1);
            prop_assert!(h.is_done());
        }
        Verdict::Http2 => {
            // The HTTP/2 handler takes it (what it makes of the bytes is tested in `h2`).
            prop_assert_eq!(got_stats.h2.connections, 1);
            prop_assert_eq!(got_stats.detected, Detected::default());
            prop_assert!(matches!(h, Handler::Http2(_)));
        }
    }
    Ok(())
}

const REQ: &[u8] = b"GET /a HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\n\r\nabc";
const RESP: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";

/// Splits `b` into pieces of `n` bytes.
fn pieces(side: Side, b: &[u8], n: usize) -> Vec<Step> {
    b.chunks(n).map(|p| Step::Data(side, p.to_vec())).collect()
}

#[test]
fn http1_in_one_byte_pieces_is_what_httpconn_gives() {
    for n in [1, 2, 3, 5, 7, 100] {
        let mut steps = pieces(Side::Client, REQ, n);
        steps.extend(pieces(Side::Server, RESP, n));
        steps.extend(pieces(Side::Client, b"POST /b HTTP/1.1\r\nContent-Length: 0\r\n\r\n", n));
        steps.push(Step::Closed(Side::Client));
        check(&steps, [true, true]).unwrap();
        check(&steps, [false, false]).unwrap();
        let (mut h, _) = clean_pair([true, true]);
        let (out, _) = play(&mut h, &steps);
        assert_eq!(out.len(), 2);
        assert_eq!(out[0].response.as_ref().unwrap().body, b"ok");
        assert_eq!(h.protocol(), Some("HTTP/1.x"));
    }
}

#[test]
fn tls_and_h2_are_counted_not_parsed() {
    // A TLS connection (the ClientHello in pieces of every size) and an h2c one (the preface,
    // then a SETTINGS frame, a request's HEADERS that happen to spell HTTP/1).
    let mut h2 = H2_PREFACE.to_vec();
    h2.extend_from_slice(b"\x00\x00\x00\x04\x00\x00\x00\x00\x00GET / HTTP/1.1\r\n\r\n");
    for n in 1..12 {
        let mut tls = pieces(Side::Client, CLIENT_HELLO, n);
        tls.extend(pieces(Side::Server, SERVER_HELLO, n));
        tls.push(Step::Data(Side::Client, b"GET / HTTP/1.1\r\n\r\n".to_vec()));
        check(&tls, [true, true]).unwrap();
        let mut c = pieces(Side::Client, &h2, n);
        c.extend(pieces(Side::Server, b"\x00\x00\x00\x04\x00\x00\x00\x00\x00HTTP/1.1 200 OK\r\n\r\n", n));
        check(&c, [true, true]).unwrap();
        assert_eq!(expected(&c), Verdict::Http2);
    }
    // Seen mid-connection: the server's application data first.
    let steps = vec![Step::Data(Side::Server, APP_DATA.to_vec()), Step::Data(Side::Client, REQ.to_vec())];
    assert_eq!(expected(&steps), Verdict::Tls);
    check(&steps, [false, false]).unwrap();
    let (mut h, _) = clean_pair([false, false]);
    play(&mut h, &steps);
    assert_eq!(h.protocol(), Some("TLS"));
}

#[test]
fn held_bytes_are_settled_as_http1_by_any_other_event() {
    // "PRI" could start the preface: held. Then the server speaks, a gap comes, the side
    // closes, or the connection ends: from there on it is HTTP/1, the held bytes first.
    let pri = Step::Data(Side::Client, b"PRI".to_vec());
    for next in [
        vec![Step::Data(Side::Server, RESP.to_vec())],
        vec![Step::Gap(Side::Client, 10), Step::Data(Side::Client, b" * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec())],
        vec![Step::Gap(Side::Server, 10)],
        vec![Step::Closed(Side::Client)],
        vec![],
    ] {
        let mut steps = vec![pri.clone()];
        steps.extend(next);
        assert_eq!(expected(&steps), Verdict::Http1);
        check(&steps, [true, true]).unwrap();
    }
}

#[test]
fn held_bytes_count_and_date_the_connection() {
    let limits = Limits::default();
    let mut stats = Stats::default();
    let mut out: Vec<Exchange> = Vec::new();
    let mut h = Handler::new(ConnMeta { syn_ts: None, ..meta() });
    assert_eq!(h.pending_start(), None);
    let mut cx = Ctx { limits: &limits, stats: &mut stats, sink: &mut out };
    h.data(Side::Client, b"\x16\x03", Chunk { ts: Ts(70), frame: 3, offset: 0, ack: None }, &mut cx);
    assert!(matches!(h, Handler::Held(_)));
    assert_eq!(h.pending_start(), Some(Ts(70)));
    assert!(h.buffered_bytes() >= 2);
    assert!(!h.is_done());
    h.data(Side::Client, b"\x01\x00\x05\x01\x00\x00\x01", Chunk { ts: Ts(80), frame: 4, offset: 2, ack: None }, &mut cx);
    assert_eq!(h.protocol(), Some("TLS"));
    assert!(h.is_done());
    assert_eq!((h.pending_start(), h.buffered_bytes()), (None, 0));
    assert_eq!(stats.detected.tls_connections, 1);
}

fn fragment() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        Just(REQ.to_vec()),
        Just(RESP.to_vec()),
        Just(H2_PREFACE.to_vec()),
        Just(b"PRI * HTTP/2.0\r\n".to_vec()),
        Just(b"PR".to_vec()),
        Just(CLIENT_HELLO.to_vec()),
        Just(b"\x16\x03".to_vec()),
        Just(b"\r\n".to_vec()),
        proptest::collection::vec(any::<u8>(), 0..12),
    ]
}

fn step() -> impl Strategy<Value = Step> {
    let side = prop_oneof![Just(Side::Client), Just(Side::Server)];
    prop_oneof![
        8 => (side.clone(), fragment(), 1usize..6).prop_map(|(s, f, _)| Step::Data(s, f)),
        4 => (side.clone(), fragment(), 1usize..6).prop_map(|(s, f, k)| Step::Data(s, f[..f.len().min(k)].to_vec())),
        1 => (side.clone(), 1u64..50).prop_map(|(s, n)| Step::Gap(s, n)),
        1 => side.prop_map(Step::Closed),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 500, ..ProptestConfig::default() })]

    /// Any sequence of pieces, gaps and closes: HTTP/1 gives what HttpConn gives; TLS and
    /// HTTP/2 give nothing and are counted.
    #[test]
    fn the_handler_is_httpconn_or_counted(steps in proptest::collection::vec(step(), 0..14), clean in any::<[bool; 2]>()) {
        check(&steps, clean)?;
    }
}

#[test]
fn http2_frames_mid_stream_are_told_from_http1() {
    use super::detect::h2_frames;
    // A WINDOW_UPDATE then a HEADERS frame; a DATA frame then a PING.
    let wu = b"\x00\x00\x04\x08\x00\x00\x00\x00\x00\x00\x00\x10\x00";
    let mut a = wu.to_vec();
    a.extend_from_slice(b"\x00\x00\x01\x01\x04\x00\x00\x00\x03\x82");
    assert!(h2_frames(&a));
    let mut b = b"\x00\x00\x02\x00\x01\x00\x00\x00\x05ok".to_vec();
    b.extend_from_slice(b"\x00\x00\x08\x06\x00\x00\x00\x00\x00pingping");
    assert!(h2_frames(&b));
    // One frame alone, the second header cut, HTTP/1, a body's bytes.
    assert!(!h2_frames(wu));
    assert!(!h2_frames(&a[..a.len() - 4]));
    for t in [REQ, RESP, &b"{\"a\": [1, 2, 3]}\n"[..], b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\x03"] {
        assert!(!h2_frames(t), "{t:02x?}");
    }
    // Mid-stream, such bytes go to the HTTP/2 handler; from the start, to HTTP/1 as before.
    let (mut h, _) = clean_pair([false, false]);
    play(&mut h, &[Step::Data(Side::Client, a.clone())]);
    assert_eq!(h.protocol(), Some("HTTP/2"));
    let (mut h, _) = clean_pair([true, true]);
    play(&mut h, &[Step::Data(Side::Client, a)]);
    assert_eq!(h.protocol(), Some("HTTP/1.x"));
}
