//! Tests of the HTTP layer: every split point, pairing, framing corners, gaps.

use super::*;
use crate::wire::Endpoint;
use std::io::Write;

fn meta() -> ConnMeta {
    let ep = |port| Endpoint { ip: [0; 16], port, v6: false };
    ConnMeta { id: 1, client: ep(40000), server: ep(80), syn_ts: None, established_ts: None }
}

/// One step of a conversation: which side, which bytes (or a gap of n bytes).
enum Step<'a> {
    C(&'a [u8]),
    S(&'a [u8]),
    CGap(u64),
    SGap(u64),
}

struct Run {
    conn: HttpConn,
    stats: HttpStats,
    limits: HttpLimits,
    out: Vec<Exchange>,
    offs: [u64; 2],
    ts: i64,
}

impl Run {
    fn new(clean: bool) -> Run {
        let mut conn = HttpConn::new(meta());
        if clean {
            conn.clean_start(Side::Client);
            conn.clean_start(Side::Server);
        }
        Run { conn, stats: HttpStats::default(), limits: HttpLimits::default(), out: Vec::new(), offs: [0; 2], ts: 0 }
    }

    fn send(&mut self, side: Side, bytes: &[u8], step: usize) {
        for piece in bytes.chunks(step.max(1)) {
            self.ts += 1;
            let i = side as usize;
            let chunk = Chunk { ts: Ts(self.ts), frame: self.ts as u64, offset: self.offs[i], ack: Some(self.offs[1 - i]) };
            self.offs[i] += piece.len() as u64;
            let mut sink = |e: Exchange| self.out.push(e);
            let mut cx = Ctx { limits: &self.limits, stats: &mut self.stats, sink: &mut sink };
            self.conn.data(side, piece, chunk, &mut cx);
        }
    }

    fn gap(&mut self, side: Side, n: u64) {
        self.offs[side as usize] += n;
        let mut sink = |e: Exchange| self.out.push(e);
        let mut cx = Ctx { limits: &self.limits, stats: &mut self.stats, sink: &mut sink };
        self.conn.gap(side, n, Ts(self.ts), &mut cx);
    }

    fn end(&mut self, clean: bool) {
        let mut sink = |e: Exchange| self.out.push(e);
        let mut cx = Ctx { limits: &self.limits, stats: &mut self.stats, sink: &mut sink };
        self.conn.end(clean, Ts(self.ts + 1), &mut cx);
    }

    fn play(steps: &[Step<'_>], step: usize, clean: bool) -> Run {
        let mut r = Run::new(clean);
        for s in steps {
            match s {
                Step::C(b) => r.send(Side::Client, b, step),
                Step::S(b) => r.send(Side::Server, b, step),
                Step::CGap(n) => r.gap(Side::Client, *n),
                Step::SGap(n) => r.gap(Side::Server, *n),
            }
        }
        r.end(true);
        r
    }
}

/// (method, target, status, request body, response body) of each exchange.
/// (method, target, status, request body, response body).
type Row = (String, String, u16, Vec<u8>, Vec<u8>);

fn summary(out: &[Exchange]) -> Vec<Row> {
    out.iter()
        .map(|e| {
            let (m, t, rb) = e.request.as_ref().map_or((String::new(), String::new(), Vec::new()), |r| {
                (
                    String::from_utf8_lossy(r.head.method()).into_owned(),
                    String::from_utf8_lossy(r.head.target()).into_owned(),
                    r.body.clone(),
                )
            });
            let (st, sb) = e.response.as_ref().map_or((0, Vec::new()), |r| (r.head.status(), r.body.clone()));
            (m, t, st, rb, sb)
        })
        .collect()
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

fn ex(m: &str, t: &str, st: u16, rb: &[u8], sb: &[u8]) -> Row {
    (m.into(), t.into(), st, rb.to_vec(), sb.to_vec())
}

/// Runs the conversation with every piece size from 1 to the longest message, plus whole.
fn at_every_split(steps: &[Step<'_>], want: &[Row]) {
    let longest = steps
        .iter()
        .map(|s| match s {
            Step::C(b) | Step::S(b) => b.len(),
            _ => 0,
        })
        .max()
        .unwrap_or(1);
    for step in 1..=longest {
        let r = Run::play(steps, step, true);
        assert_eq!(summary(&r.out), want, "piece size {step}");
        for e in &r.out {
            assert!(e.anomalies.is_empty(), "piece size {step}: {:?}", e.anomalies);
        }
    }
}

#[test]
fn content_length_keep_alive() {
    let steps = [
        Step::C(b"GET /a?x=1 HTTP/1.1\r\nHost: h\r\n\r\n"),
        Step::S(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello"),
        Step::C(b"POST /b HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\n\r\nabc"),
        Step::S(b"HTTP/1.1 201 Created\r\nContent-Length: 0\r\n\r\n"),
    ];
    at_every_split(&steps, &[ex("GET", "/a?x=1", 200, b"", b"hello"), ex("POST", "/b", 201, b"abc", b"")]);
}

#[test]
fn chunked_with_extensions_trailers_and_gzip() {
    let body = b"{\"items\":[1,2,3],\"name\":\"chunky\"}".repeat(20);
    let gz = gzip(&body);
    let mut resp = b"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
    let (a, b) = gz.split_at(gz.len() / 3);
    write!(resp, "{:x};name=val\r\n", a.len()).unwrap();
    resp.extend(a);
    write!(resp, "\r\n{:X}\r\n", b.len()).unwrap();
    resp.extend(b);
    resp.extend(b"\r\n0\r\nX-Checksum: abc\r\n\r\n");
    let steps = [
        Step::C(b"GET / HTTP/1.1\r\n\r\n"),
        Step::S(&resp),
        Step::C(b"GET /2 HTTP/1.1\r\n\r\n"),
        Step::S(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"),
    ];
    at_every_split(&steps, &[ex("GET", "/", 200, b"", &body), ex("GET", "/2", 200, b"", b"ok")]);
    let r = Run::play(&steps, 7, true);
    let m = r.out[0].response.as_ref().unwrap();
    assert_eq!(m.trailers, vec![(b"X-Checksum".to_vec(), b"abc".to_vec())]);
    assert_eq!(m.entity_len, gz.len() as u64);
    assert_eq!(m.codings, vec![Coding::Gzip]);
    assert_eq!(m.body_wire_len, resp.len() as u64 - resp.windows(4).position(|w| w == b"\r\n\r\n").unwrap() as u64 - 4);
}

#[test]
fn pipelining_head_and_interim_responses() {
    let steps = [
        Step::C(b"GET /1 HTTP/1.1\r\n\r\nHEAD /2 HTTP/1.1\r\n\r\nPOST /3 HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 4\r\n\r\n"),
        Step::S(
            b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nAHTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\nHTTP/1.1 100 Continue\r\n\r\n",
        ),
        Step::C(b"data"),
        Step::S(b"HTTP/1.1 204 No Content\r\n\r\n"),
    ];
    at_every_split(&steps, &[ex("GET", "/1", 200, b"", b"A"), ex("HEAD", "/2", 200, b"", b""), ex("POST", "/3", 204, b"data", b"")]);
    let r = Run::play(&steps, 1000, true);
    assert_eq!(r.out[2].interim, vec![100]);
    assert_eq!(r.stats.requests, 3);
    assert_eq!(r.stats.responses, 3);
    assert_eq!(r.stats.interim_responses, 1);
}

#[test]
fn not_modified_and_close_delimited() {
    let steps = [
        Step::C(b"GET /c HTTP/1.1\r\nIf-None-Match: \"x\"\r\n\r\n"),
        Step::S(b"HTTP/1.1 304 Not Modified\r\nContent-Length: 99\r\n\r\n"),
        Step::C(b"GET /d HTTP/1.0\r\n\r\n"),
        Step::S(b"HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\nuntil the end"),
    ];
    at_every_split(&steps, &[ex("GET", "/c", 304, b"", b""), ex("GET", "/d", 200, b"", b"until the end")]);
    // Ended by a timeout instead of FIN: the body is flagged incomplete.
    let mut r = Run::new(true);
    r.send(Side::Client, b"GET / HTTP/1.0\r\n\r\n", 100);
    r.send(Side::Server, b"HTTP/1.0 200 OK\r\n\r\npartial", 100);
    r.end(false);
    assert_eq!(r.out[0].anomalies, vec![Anomaly::Incomplete { response: true }]);
}

#[test]
fn connect_and_upgrade_become_tunnels() {
    let steps = [
        Step::C(b"CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n"),
        Step::S(b"HTTP/1.1 200 Connection established\r\n\r\n"),
        Step::C(b"\x16\x03\x01\x00\x05hello GET / HTTP/1.1\r\n\r\n"),
        Step::S(b"\x16\x03\x03 HTTP/1.1 200 OK\r\n\r\n"),
    ];
    let r = Run::play(&steps, 3, true);
    assert_eq!(summary(&r.out), vec![ex("CONNECT", "example.com:443", 200, b"", b"")]);
    assert_eq!(r.out[0].anomalies, vec![Anomaly::Tunnel]);
    assert_eq!(r.stats.tunnels, 1);
    assert!(r.stats.tunnel_bytes > 0);
    let steps = [
        Step::C(b"GET /ws HTTP/1.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n"),
        Step::S(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n\x81\x05hello"),
        Step::C(b"\x81\x85abcdHTTP/1.1 200"),
    ];
    let r = Run::play(&steps, 2, true);
    assert_eq!(summary(&r.out), vec![ex("GET", "/ws", 101, b"", b"")]);
}

#[test]
fn gap_inside_a_body_keeps_framing() {
    let steps = [
        Step::C(b"GET /1 HTTP/1.1\r\n\r\n"),
        Step::S(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n012"),
        Step::SGap(4),
        Step::S(b"789"),
        Step::C(b"GET /2 HTTP/1.1\r\n\r\n"),
        Step::S(b"HTTP/1.1 404 Not Found\r\nContent-Length: 2\r\n\r\nno"),
    ];
    for step in [1, 3, 100] {
        let r = Run::play(&steps, step, true);
        assert_eq!(summary(&r.out), vec![ex("GET", "/1", 200, b"", b"012"), ex("GET", "/2", 404, b"", b"no")]);
        assert_eq!(r.out[0].anomalies, vec![Anomaly::Gap { response: true, bytes: 4, cap: None }]);
        assert!(r.out[1].anomalies.is_empty());
    }
}

#[test]
fn gap_over_a_head_resynchronises() {
    let steps = [
        Step::C(b"GET /1 HTTP/1.1\r\n\r\n"),
        Step::S(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"),
        Step::C(b"GET /2 HT"),
        Step::CGap(20),
        Step::C(b"xx\r\n\r\nGET /3 HTTP/1.1\r\nHost: h\r\n\r\n"),
        Step::S(b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\n2HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\n3"),
    ];
    for step in [1, 5, 1000] {
        let r = Run::play(&steps, step, true);
        let s = summary(&r.out);
        assert_eq!(s[0], ex("GET", "/1", 200, b"", b"ok"), "step {step}");
        // /2's request head was lost: its response arrives without a request, and /3 is
        // answered by the right response thanks to the acknowledgments.
        assert!(s.contains(&ex("GET", "/3", 200, b"", b"3")), "step {step}: {s:?}");
        assert!(r.stats.resyncs >= 1);
    }
}

#[test]
fn lost_response_is_noticed_from_acknowledgments() {
    let mut r = Run::new(true);
    r.send(Side::Client, b"GET /1 HTTP/1.1\r\n\r\n", 100);
    r.send(Side::Server, b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\na", 100);
    r.send(Side::Client, b"GET /2 HTTP/1.1\r\n\r\n", 100);
    // The response to /2 is never captured, but the client acknowledged it.
    let lost = b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nb";
    r.offs[1] += lost.len() as u64;
    r.send(Side::Client, b"GET /3 HTTP/1.1\r\n\r\n", 100);
    r.gap(Side::Server, lost.len() as u64);
    r.send(Side::Server, b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nc", 100);
    r.end(true);
    let s = summary(&r.out);
    assert_eq!(s, vec![ex("GET", "/1", 200, b"", b"a"), ex("GET", "/2", 0, b"", b""), ex("GET", "/3", 200, b"", b"c")]);
    assert_eq!(r.out[1].anomalies, vec![Anomaly::NoResponse]);
}

#[test]
fn unanswered_and_unrequested() {
    let mut r = Run::new(false);
    r.send(Side::Server, b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nhi", 100);
    r.send(Side::Client, b"GET /x HTTP/1.1\r\n\r\n", 100);
    r.end(true);
    let s = summary(&r.out);
    assert_eq!(s, vec![ex("", "", 200, b"", b"hi"), ex("GET", "/x", 0, b"", b"")]);
    assert!(r.out[0].anomalies.contains(&Anomaly::NoRequest));
    assert!(r.out[0].anomalies.contains(&Anomaly::MidStream));
    assert!(r.out[1].anomalies.contains(&Anomaly::NoResponse));
}

#[test]
fn non_http_connection_is_ignored() {
    // TLS-like records both ways: searched for a while (HTTP may follow a preamble), then
    // taken for another protocol.
    let hello = b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03".repeat(4000);
    let r = Run::play(&[Step::C(&hello), Step::S(b"\x16\x03\x03\x00\x7a"), Step::C(&hello)], 1460, true);
    assert!(r.out.is_empty());
    assert_eq!(r.stats.non_http_connections, 1);
    assert!(r.conn.is_off());
}

#[test]
fn mid_stream_start_finds_the_next_message() {
    let r = Run::play(
        &[
            Step::S(b"of a body that started earlier\r\n"),
            Step::C(b"ers: x\r\n\r\nGET /next HTTP/1.1\r\nHost: h\r\n\r\n"),
            Step::S(b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nyes"),
        ],
        4,
        false,
    );
    let s = summary(&r.out);
    assert_eq!(s, vec![ex("GET", "/next", 200, b"", b"yes")]);
}

#[test]
fn decoded_size_cap_truncates_and_flags() {
    let big = vec![b'z'; 100_000];
    let gz = gzip(&big);
    let mut resp = format!("HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: {}\r\n\r\n", gz.len()).into_bytes();
    resp.extend(&gz);
    let mut r = Run::new(true);
    r.limits.max_body = 1000;
    r.send(Side::Client, b"GET / HTTP/1.1\r\n\r\n", 100);
    r.send(Side::Server, &resp, 1460);
    r.send(Side::Client, b"GET /after HTTP/1.1\r\n\r\n", 100);
    r.send(Side::Server, b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", 100);
    r.end(true);
    assert_eq!(r.out[0].response.as_ref().unwrap().body.len(), 1000);
    assert_eq!(r.out[0].anomalies, vec![Anomaly::Truncated { response: true }]);
    assert_eq!(summary(&r.out)[1], ex("GET", "/after", 200, b"", b"ok"));
    assert_eq!(r.stats.truncated_bodies, 1);
}

#[test]
fn smuggling_patterns_are_flagged_and_parsed_carefully() {
    // Transfer-Encoding wins over Content-Length.
    let r = Run::play(
        &[
            Step::C(b"POST /a HTTP/1.1\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n"),
            Step::S(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"),
        ],
        5,
        true,
    );
    assert_eq!(summary(&r.out), vec![ex("POST", "/a", 200, b"abc", b"")]);
    assert!(r.out[0].anomalies.contains(&Anomaly::TransferEncodingWithContentLength { response: false }));
    // Conflicting Content-Length values.
    let r = Run::play(
        &[
            Step::C(b"POST /b HTTP/1.1\r\nContent-Length: 2\r\nContent-Length: 5\r\n\r\nab"),
            Step::S(b"HTTP/1.1 400 Bad\r\nContent-Length: 0\r\n\r\n"),
        ],
        100,
        true,
    );
    assert!(r.out[0].anomalies.contains(&Anomaly::BadContentLength { response: false }));
    // Chunk size overflowing 64 bits: malformed, no hang, no panic.
    let r = Run::play(
        &[Step::C(b"GET / HTTP/1.1\r\n\r\n"), Step::S(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n10000000000000000\r\nxx")],
        3,
        true,
    );
    assert!(r.out[0].anomalies.contains(&Anomaly::BadChunk { response: true }));
}

#[test]
fn garbled_request_still_records_its_response() {
    let r =
        Run::play(&[Step::C(b"OPTIONS\r\nHost: x\r\n\r\n"), Step::S(b"HTTP/1.0 400 Bad Request\r\nContent-Length: 3\r\n\r\nbad")], 4, true);
    assert_eq!(summary(&r.out), vec![ex("", "", 400, b"", b"bad")]);
    assert!(r.out[0].anomalies.contains(&Anomaly::NoRequest));
    assert_eq!(r.stats.non_http_connections, 0);
}

#[test]
fn gaps_and_endings_caused_by_a_cap_name_it() {
    let mut r = Run::new(true);
    r.send(Side::Client, b"GET /1 HTTP/1.1\r\n\r\n", 100);
    r.send(Side::Server, b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n012", 100);
    // Two bytes never captured, then three skipped at a cap.
    r.gap(Side::Server, 2);
    let mut sink = |e: Exchange| r.out.push(e);
    let mut cx = Ctx { limits: &r.limits, stats: &mut r.stats, sink: &mut sink };
    r.conn.gap_by(Side::Server, 3, Ts(r.ts), Some(Cap::MaxOooPerConn), &mut cx);
    r.offs[1] += 3;
    r.send(Side::Server, b"89", 100);
    // A request whose whole response is skipped at another cap, then the connection is ended
    // by a third.
    r.send(Side::Client, b"GET /2 HTTP/1.1\r\n\r\n", 100);
    let mut sink = |e: Exchange| r.out.push(e);
    let mut cx = Ctx { limits: &r.limits, stats: &mut r.stats, sink: &mut sink };
    r.conn.gap_by(Side::Server, 50, Ts(r.ts), Some(Cap::MaxOooTotal), &mut cx);
    r.conn.end_by(false, Ts(r.ts + 1), Some(Cap::IdleTimeout), &mut cx);
    assert_eq!(r.out.len(), 2);
    let cap_gap = Anomaly::Gap { response: true, bytes: 3, cap: Some(Cap::MaxOooPerConn) };
    assert_eq!(r.out[0].anomalies, vec![Anomaly::Gap { response: true, bytes: 2, cap: None }, cap_gap.clone()]);
    assert_eq!(cap_gap.to_string(), "response: 3 bytes skipped at the per-connection out-of-order cap (--max-ooo-per-conn)");
    assert_eq!(
        r.out[1].anomalies,
        vec![
            Anomaly::NoResponse,
            Anomaly::Gap { response: true, bytes: 50, cap: Some(Cap::MaxOooTotal) },
            Anomaly::EndedByCap { cap: Cap::IdleTimeout }
        ]
    );
    assert_eq!(r.out[1].anomalies[2].to_string(), "connection ended early by the idle timeout (--idle-timeout)");
    let d = r.stats.damaged_by_cap;
    assert_eq!(d, CapDamage { any: 2, max_ooo_per_conn: 1, max_ooo_total: 1, idle_timeout: 1, ..CapDamage::default() });
}

#[test]
fn requests_without_responses_are_not_held_without_end() {
    // A client pipelining thousands of requests that are never answered: the queue stays at
    // its cap (the oldest are written without a response as it fills), and every request is
    // written.
    let mut r = Run::new(true);
    let n = 3 * MAX_PENDING;
    for i in 0..n {
        r.send(Side::Client, format!("GET /{i} HTTP/1.1\r\n\r\n").as_bytes(), 1000);
        assert!(r.conn.pending.len() <= MAX_PENDING);
    }
    assert_eq!(r.out.len(), n - MAX_PENDING);
    assert!(r.out.iter().all(|e| e.anomalies == vec![Anomaly::NoResponse]));
    r.end(true);
    assert_eq!(r.out.len(), n);
    assert_eq!(r.stats.no_response, n as u64);
    let targets: Vec<_> = r.out.iter().map(|e| String::from_utf8_lossy(e.request.as_ref().unwrap().head.target()).into_owned()).collect();
    assert_eq!(targets, (0..n).map(|i| format!("/{i}")).collect::<Vec<_>>());
}

#[test]
fn responses_queued_behind_a_request_still_arriving_are_not_held_without_end() {
    // The first request's body never ends; the server answers it and then sends thousands of
    // responses to no request. They cannot be written before the first exchange, which is
    // still arriving: past the cap they are written out of place instead of piling up.
    let mut r = Run::new(true);
    r.send(Side::Client, b"POST /up HTTP/1.1\r\nContent-Length: 1000000000\r\n\r\nstart", 1000);
    for _ in 0..3 * MAX_PENDING {
        r.send(Side::Server, b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", 1000);
        assert!(r.conn.pending.len() <= MAX_PENDING);
    }
    assert!(r.out.len() >= 2 * MAX_PENDING);
    r.send(Side::Client, b"more of the body", 1000);
    r.end(true);
    assert_eq!(r.out.len(), 3 * MAX_PENDING);
    let up = r.out.iter().find(|e| e.request.is_some()).unwrap();
    assert_eq!(up.request.as_ref().unwrap().body, b"startmore of the body");
    assert!(up.anomalies.contains(&Anomaly::Incomplete { response: false }));
}

#[test]
fn endless_trailers_are_bad_framing() {
    let mut resp = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n".to_vec();
    for i in 0..10_000 {
        write!(resp, "X-T-{i}: v\r\n").unwrap();
    }
    resp.extend(b"\r\n");
    let mut r = Run::new(true);
    r.limits.max_headers = 100;
    r.send(Side::Client, b"GET / HTTP/1.1\r\n\r\n", 1000);
    r.send(Side::Server, &resp, 1460);
    r.end(true);
    assert_eq!(r.stats.bad_framing, 1);
    let m = r.out[0].response.as_ref().unwrap();
    assert_eq!((m.body.as_slice(), m.trailers.len()), (&b"ok"[..], 100));
    assert!(r.out[0].anomalies.contains(&Anomaly::BadChunk { response: true }));
}

#[test]
fn bodies_of_unanswered_requests_are_not_held_without_end() {
    // Pipelined uploads never answered: what waits on the connection stays within twice the
    // body and head caps, not one body per request.
    let mut r = Run::new(true);
    r.limits.max_body = 100_000;
    let body = vec![b'u'; 100_000];
    for i in 0..20 {
        r.send(Side::Client, format!("POST /{i} HTTP/1.1\r\nContent-Length: {}\r\n\r\n", body.len()).as_bytes(), 1460);
        r.send(Side::Client, &body, 1460);
        let held: usize = r.conn.pending.iter().flat_map(|p| p.request.iter()).map(|m| m.body.capacity()).sum();
        assert!(held <= 2 * (r.limits.max_body + r.limits.max_head) + 100_000, "{held}");
    }
    r.end(true);
    assert_eq!(r.out.len(), 20);
    assert!(r.out.iter().all(|e| e.request.as_ref().unwrap().body == body && e.anomalies == vec![Anomaly::NoResponse]));
}

impl Run {
    /// Sends `bytes` in one piece whose acknowledgment of the other stream is `ack`.
    fn send_acked(&mut self, side: Side, bytes: &[u8], ack: u64) {
        self.ts += 1;
        let i = side as usize;
        let chunk = Chunk { ts: Ts(self.ts), frame: self.ts as u64, offset: self.offs[i], ack: Some(ack) };
        self.offs[i] += bytes.len() as u64;
        let mut sink = |e: Exchange| self.out.push(e);
        let mut cx = Ctx { limits: &self.limits, stats: &mut self.stats, sink: &mut sink };
        self.conn.data(side, bytes, chunk, &mut cx);
    }
}

fn resp(body: &str) -> Vec<u8> {
    format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n{body}", body.len()).into_bytes()
}

/// Each exchange that has both messages: its request target and its response body.
fn pairs(out: &[Exchange]) -> Vec<(String, String)> {
    out.iter()
        .filter_map(|e| {
            let q = e.request.as_ref()?;
            let r = e.response.as_ref()?;
            Some((String::from_utf8_lossy(q.head.target()).into_owned(), String::from_utf8_lossy(&r.body).into_owned()))
        })
        .collect()
}

#[test]
fn pipelined_responses_after_a_lost_one_land_on_their_requests() {
    // Five requests in one burst (sent before any response arrived), then their responses;
    // the second response is missing from the capture. The responses after it answer the
    // last three requests: nothing shifts, /2 has no response.
    let reqs: Vec<u8> = (1..=5).flat_map(|i| format!("GET /{i} HTTP/1.1\r\nHost: h\r\n\r\n").into_bytes()).collect();
    for lost_tail in [false, true] {
        let mut r = Run::new(true);
        r.send_acked(Side::Client, &reqs, 0);
        let all = r.offs[0];
        let r1 = resp("body-1");
        if lost_tail {
            // The gap takes the end of the first response's body as well.
            r.send_acked(Side::Server, &r1[..r1.len() - 3], all);
            r.gap(Side::Server, 3 + resp("body-2").len() as u64);
        } else {
            r.send_acked(Side::Server, &r1, all);
            r.gap(Side::Server, resp("body-2").len() as u64);
        }
        for i in 3..=5 {
            r.send_acked(Side::Server, &resp(&format!("body-{i}")), all);
        }
        r.end(true);
        let p = pairs(&r.out);
        let want_first = if lost_tail { "bod" } else { "body-1" };
        assert_eq!(
            p,
            vec![
                ("/1".into(), want_first.into()),
                ("/3".into(), "body-3".into()),
                ("/4".into(), "body-4".into()),
                ("/5".into(), "body-5".into())
            ],
            "lost tail {lost_tail}"
        );
        let two = r.out.iter().find(|e| e.request.as_ref().is_some_and(|q| q.head.target() == b"/2")).unwrap();
        assert!(two.response.is_none() && two.anomalies.contains(&Anomaly::NoResponse), "{:?}", two.anomalies);
        assert_eq!(r.out.len(), 5);
    }
}

#[test]
fn after_an_uncertain_loss_no_response_is_put_on_a_request_it_may_not_answer() {
    // A chunked first response whose end is lost together with an unknown number of the
    // responses after it: the three responses that follow could answer /2../5. Which ones
    // cannot be told, so they are written without a request, never on the wrong one.
    let reqs: Vec<u8> = (1..=5).flat_map(|i| format!("GET /{i} HTTP/1.1\r\n\r\n").into_bytes()).collect();
    let mut r = Run::new(true);
    r.send_acked(Side::Client, &reqs, 0);
    let all = r.offs[0];
    r.send_acked(Side::Server, b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n100\r\nabc", all);
    r.gap(Side::Server, 400);
    for i in 3..=5 {
        r.send_acked(Side::Server, &resp(&format!("body-{i}")), all);
    }
    r.end(true);
    for (target, body) in pairs(&r.out) {
        assert!(target == "/1" || body.ends_with(&target[1..]), "{target} got {body}");
    }
    let unknown = r.out.iter().filter(|e| e.anomalies.iter().any(|a| matches!(a, Anomaly::UnknownRequest { .. }))).count();
    assert_eq!(unknown, 3);
    assert_eq!(r.stats.unpaired_responses, 3);
}

#[test]
fn non_pipelined_response_after_a_gap_is_placed_by_its_acknowledgment() {
    // A client that waits for each response: after the second response is lost (and with it
    // the head of the third's body... only the third's head survives), the third lands on /3
    // because /3 was sent right when the client had the bytes before it.
    let mut r = Run::new(true);
    let mut s_off = 0u64;
    for i in 1..=4u32 {
        let q = format!("GET /{i} HTTP/1.1\r\n\r\n");
        r.send_acked(Side::Client, q.as_bytes(), s_off);
        let body = resp(&format!("body-{i}"));
        let ack = r.offs[0];
        if i == 2 {
            r.gap(Side::Server, body.len() as u64);
        } else {
            r.send_acked(Side::Server, &body, ack);
        }
        s_off += body.len() as u64;
    }
    r.end(true);
    assert_eq!(pairs(&r.out), vec![("/1".into(), "body-1".into()), ("/3".into(), "body-3".into()), ("/4".into(), "body-4".into())]);
    assert_eq!(r.stats.unpaired_responses, 0);
}

#[test]
fn response_captured_before_its_request_is_paired_with_it() {
    // Records of the two directions out of order: the response to /2 comes before /2 in the
    // file, but its acknowledgment shows the server had received /2.
    let mut r = Run::new(true);
    r.send_acked(Side::Client, b"GET /1 HTTP/1.1\r\n\r\n", 0);
    let r1 = resp("one");
    r.send_acked(Side::Server, &r1, r.offs[0]);
    let q2 = b"GET /2 HTTP/1.1\r\n\r\n";
    let r2 = resp("two");
    let ack = r.offs[0] + q2.len() as u64;
    r.send_acked(Side::Server, &r2, ack);
    r.send_acked(Side::Client, q2, r1.len() as u64);
    r.end(true);
    assert_eq!(pairs(&r.out), vec![("/1".into(), "one".into()), ("/2".into(), "two".into())]);
    for e in &r.out {
        assert!(e.anomalies.is_empty(), "{:?}", e.anomalies);
    }
}

#[test]
fn http_inside_a_connect_tunnel_is_parsed() {
    let steps = [
        Step::C(b"CONNECT api.test:8080 HTTP/1.1\r\nHost: api.test:8080\r\n\r\n"),
        Step::S(b"HTTP/1.1 200 Connection established\r\n\r\n\n"),
        Step::C(b"GET /inner HTTP/1.1\r\nHost: api.test:8080\r\n\r\n"),
        Step::S(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\ninner"),
        Step::C(b"POST /two HTTP/1.1\r\nContent-Length: 2\r\n\r\nhi"),
        Step::S(b"HTTP/1.1 201 Created\r\nContent-Length: 0\r\n\r\n"),
    ];
    for step in [1, 3, 1000] {
        let r = Run::play(&steps, step, true);
        assert_eq!(
            summary(&r.out),
            vec![
                ex("CONNECT", "api.test:8080", 200, b"", b""),
                ex("GET", "/inner", 200, b"", b"inner"),
                ex("POST", "/two", 201, b"hi", b""),
            ],
            "piece size {step}"
        );
        assert_eq!(r.out[0].tunnel, None);
        for e in &r.out[1..] {
            assert_eq!(e.tunnel.as_deref(), Some("CONNECT api.test:8080"));
            assert!(e.anomalies.is_empty(), "{:?}", e.anomalies);
        }
        assert_eq!(r.stats.http_tunnels, 1);
        assert_eq!(r.stats.tunnel_bytes, 1, "the line end after the 200");
    }
}

#[test]
fn http_after_a_socks_handshake_names_the_tunnel() {
    let steps = [
        Step::C(b"\x05\x02\x00\x02"),
        Step::S(b"\x05\x02"),
        Step::C(b"\x01\x05alice\x07s3cret!"),
        Step::S(b"\x01\x00"),
        Step::C(b"\x05\x01\x00\x03\x08api.test\x00\x50"),
        Step::S(b"\x05\x00\x00\x01\x7f\x00\x00\x01\x00\x50"),
        Step::C(b"GET /via-socks HTTP/1.1\r\nHost: api.test\r\n\r\n"),
        Step::S(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"),
    ];
    let r = Run::play(&steps, 1000, true);
    assert_eq!(summary(&r.out), vec![ex("GET", "/via-socks", 200, b"", b"ok")]);
    assert_eq!(r.out[0].tunnel.as_deref(), Some("socks5 api.test:80"));
    assert_eq!(r.stats.http_tunnels, 1);
}
