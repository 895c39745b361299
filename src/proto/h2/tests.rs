//! The HTTP/2 handler on hand-made connections: frames built here, header blocks encoded
//! here (literal fields, with and without indexing, and static-table indexes), the
//! expectations being the fields and bodies put in.

use super::frame::*;
use crate::capture::Ts;
use crate::output::har;
use crate::proto::detect::H2_PREFACE;
use crate::proto::http1::{Anomaly, Exchange};
use crate::proto::{Chunk, ConnMeta, Ctx, Handler, Limits, Side, Stats};
use crate::wire::Endpoint;

fn meta() -> ConnMeta {
    let ep = |port| Endpoint { ip: [0; 16], port, v6: false };
    ConnMeta { id: 7, client: ep(40000), server: ep(8080), syn_ts: Some(Ts(0)), established_ts: None }
}

fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let mut b = (payload.len() as u32).to_be_bytes()[1..].to_vec();
    b.extend([kind, flags]);
    b.extend(stream.to_be_bytes());
    b.extend_from_slice(payload);
    b
}

/// A header block: each field a literal with a new name, `indexed` ones with incremental
/// indexing (so later blocks can refer to them by index).
fn block(fields: &[(&str, &str)], indexed: bool) -> Vec<u8> {
    let mut b = Vec::new();
    for (n, v) in fields {
        b.push(if indexed { 0x40 } else { 0x00 });
        b.push(n.len() as u8);
        b.extend_from_slice(n.as_bytes());
        b.push(v.len() as u8);
        b.extend_from_slice(v.as_bytes());
    }
    b
}

fn request(path: &str, extra: &[(&str, &str)]) -> Vec<u8> {
    // :method GET, :scheme http (static 2 and 6), then :path, :authority as literals.
    let mut b = vec![0x82, 0x86];
    b.extend(block(&[(":path", path), (":authority", "example.test:8080")], false));
    b.extend(block(extra, false));
    b
}

fn gzip(data: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

#[derive(Clone)]
enum Ev {
    Data(Side, Vec<u8>),
    Gap(Side, u64),
}

/// Plays the events through a [`Handler`] (so detection picks HTTP/2), each data event cut
/// in pieces of `piece` bytes, and returns the exchanges and counters.
fn play(evs: &[Ev], piece: usize, limits: Limits) -> (Vec<Exchange>, Stats) {
    let mut stats = Stats::default();
    let mut out: Vec<Exchange> = Vec::new();
    let mut h = Handler::new(meta());
    h.clean_start(Side::Client);
    h.clean_start(Side::Server);
    let mut offs = [0u64; 2];
    let mut frame_no = 0;
    for ev in evs {
        let mut cx = Ctx { limits: &limits, stats: &mut stats, sink: &mut out };
        match ev {
            Ev::Data(side, b) => {
                for p in b.chunks(piece) {
                    frame_no += 1;
                    let k = *side as usize;
                    let chunk = Chunk { ts: Ts(frame_no * 1000), frame: frame_no as u64, offset: offs[k], ack: None };
                    offs[k] += p.len() as u64;
                    h.data(*side, p, chunk, &mut cx);
                }
            }
            Ev::Gap(side, n) => {
                offs[*side as usize] += n;
                h.gap(*side, *n, Ts(frame_no * 1000), None, &mut cx);
            }
        }
    }
    let mut cx = Ctx { limits: &limits, stats: &mut stats, sink: &mut out };
    h.end(true, Ts(1 << 40), None, &mut cx);
    (out, stats)
}

fn url(ex: &Exchange) -> String {
    String::from_utf8(har::request_url(ex, ex.request.as_ref().unwrap())).unwrap()
}

/// Two interleaved streams (a gzip response in two DATA frames, one padded), a POST with a
/// body, a 404 with trailers; client and server in the same order a real pair would be.
fn conversation() -> Vec<Ev> {
    use Side::{Client as C, Server as S};
    let mut c1 = H2_PREFACE.to_vec();
    c1.extend(frame(SETTINGS, 0, 0, b"\x00\x03\x00\x00\x00\x64"));
    c1.extend(frame(HEADERS, END_HEADERS | END_STREAM, 1, &request("/a.json", &[("accept", "*/*")])));
    let mut post = vec![0x83, 0x86];
    post.extend(block(&[(":path", "/submit"), (":authority", "example.test:8080"), ("content-type", "application/json")], false));
    c1.extend(frame(HEADERS, END_HEADERS, 3, &post));
    c1.extend(frame(DATA, 0, 3, b"{\"a\":"));
    c1.extend(frame(DATA, END_STREAM, 3, b"1}"));
    c1.extend(frame(HEADERS, END_HEADERS | END_STREAM, 5, &request("/missing", &[])));
    let body = gzip(&b"[1,2,3]".repeat(100));
    let (b1, b2) = body.split_at(body.len() / 2);
    let mut s1 = frame(SETTINGS, 0, 0, b"");
    s1.extend(frame(SETTINGS, ACK, 0, b""));
    let mut resp1 = vec![0x88];
    resp1.extend(block(&[("content-type", "application/json"), ("content-encoding", "gzip")], false));
    s1.extend(frame(HEADERS, END_HEADERS, 1, &resp1));
    s1.extend(frame(DATA, 0, 1, b1));
    // Stream 3 answered between stream 1's DATA frames.
    s1.extend(frame(HEADERS, END_HEADERS, 3, &[0x89]));
    s1.extend(frame(DATA, END_STREAM, 3, b""));
    let mut padded = vec![4u8];
    padded.extend_from_slice(b2);
    padded.extend([0u8; 4]);
    s1.extend(frame(DATA, END_STREAM | PADDED, 1, &padded));
    // The 404: headers split over HEADERS and a CONTINUATION, a body, trailers.
    let resp5 = {
        let mut b = vec![0x8d];
        b.extend(block(&[("content-type", "text/plain"), ("x-long", &"v".repeat(100))], false));
        b
    };
    let (h1, h2) = resp5.split_at(10);
    s1.extend(frame(HEADERS, 0, 5, h1));
    s1.extend(frame(CONTINUATION, END_HEADERS, 5, h2));
    s1.extend(frame(DATA, 0, 5, b"not here"));
    s1.extend(frame(HEADERS, END_HEADERS | END_STREAM, 5, &block(&[("x-trailer", "t")], false)));
    s1.extend(frame(GOAWAY, 0, 0, b"\x00\x00\x00\x05\x00\x00\x00\x00"));
    vec![Ev::Data(C, c1), Ev::Data(S, s1)]
}

fn check_conversation(out: &[Exchange], stats: &Stats) {
    assert_eq!(out.len(), 3, "{out:#?}");
    let by = |id: u32| out.iter().find(|e| e.h2.as_ref().unwrap().stream == id).unwrap();
    let a = by(1);
    assert_eq!(url(a), "http://example.test:8080/a.json");
    let req = a.request.as_ref().unwrap();
    assert_eq!(req.head.method(), b"GET");
    assert_eq!(req.head.version(), b"HTTP/2.0");
    // Pseudo-header fields are not header fields.
    assert_eq!(req.head.fields().map(|(n, _)| n.to_vec()).collect::<Vec<_>>(), [b"accept".to_vec()]);
    let facts = a.h2.as_ref().unwrap();
    assert_eq!(facts.request(":path"), Some(&b"/a.json"[..]));
    let resp = a.response.as_ref().unwrap();
    assert_eq!(resp.head.status(), 200);
    assert_eq!(resp.body, b"[1,2,3]".repeat(100));
    assert_eq!(resp.codings.len(), 1);
    assert!(a.anomalies.is_empty(), "{:?}", a.anomalies);
    let post = by(3);
    assert_eq!(post.request.as_ref().unwrap().head.method(), b"POST");
    assert_eq!(post.request.as_ref().unwrap().body, b"{\"a\":1}");
    assert_eq!(post.response.as_ref().unwrap().head.status(), 204);
    let missing = by(5);
    let r = missing.response.as_ref().unwrap();
    assert_eq!(r.head.status(), 404);
    assert_eq!(r.body, b"not here");
    assert_eq!(r.head.field("x-long").map(<[u8]>::len), Some(100));
    assert_eq!(r.trailers, [(b"x-trailer".to_vec(), b"t".to_vec())]);
    // Streams interleave: each keeps its own times (stream 3's response ended before 1's).
    assert!(post.response.as_ref().unwrap().last_ts <= a.response.as_ref().unwrap().last_ts);
    assert_eq!(stats.h2.connections, 1);
    assert_eq!(stats.h2.streams, 3);
    assert_eq!(stats.http.exchanges, 3);
    assert_eq!(stats.h2.goaways, 1);
    // Positions on the connection are 0, 1, 2 in the order the streams ended.
    let mut idx: Vec<u32> = out.iter().map(|e| e.index).collect();
    idx.sort();
    assert_eq!(idx, [0, 1, 2]);
}

#[test]
fn streams_become_exchanges_at_every_split_point() {
    let evs = conversation();
    for piece in [1, 2, 3, 5, 8, 9, 10, 17, 100, 100_000] {
        let (out, stats) = play(&evs, piece, Limits::default());
        check_conversation(&out, &stats);
    }
}

#[test]
fn the_har_entry_says_http2() {
    let (out, _) = play(&conversation(), 100_000, Limits::default());
    let ex = out.iter().find(|e| e.h2.as_ref().unwrap().stream == 1).unwrap();
    let mut b = Vec::new();
    har::write_entry(&mut b, ex);
    let v: serde_json::Value = serde_json::from_slice(&b).unwrap();
    assert_eq!(v["request"]["httpVersion"], "HTTP/2.0");
    assert_eq!(v["response"]["httpVersion"], "HTTP/2.0");
    assert_eq!(v["request"]["url"], "http://example.test:8080/a.json");
    assert_eq!(v["request"]["headersSize"], -1);
    assert_eq!(v["response"]["headersSize"], -1);
    assert_eq!(v["response"]["status"], 200);
    assert_eq!(v["_apitool"]["h2"]["streamId"], 1);
    assert_eq!(v["_apitool"]["h2"]["pseudo"]["request"][":path"], "/a.json");
    assert_eq!(v["_apitool"]["h2"]["pseudo"]["response"][":status"], "200");
    assert_eq!(v["_apitool"]["h2"]["pushed"], false);
    assert!(v["request"]["headers"].as_array().unwrap().iter().all(|h| !h["name"].as_str().unwrap().starts_with(':')));
}

#[test]
fn a_gap_inside_data_loses_only_that_body() {
    use Side::{Client as C, Server as S};
    let mut c = H2_PREFACE.to_vec();
    c.extend(frame(HEADERS, END_HEADERS | END_STREAM, 1, &request("/big", &[])));
    c.extend(frame(HEADERS, END_HEADERS | END_STREAM, 3, &request("/small", &[])));
    let s1 = frame(HEADERS, END_HEADERS, 1, &[0x88]);
    let mut data = frame(DATA, END_STREAM, 1, &[b'x'; 1000]);
    let tail = data.split_off(500);
    let s2 = {
        let mut b = tail[100..].to_vec();
        b.extend(frame(HEADERS, END_HEADERS, 3, &[0x88]));
        b.extend(frame(DATA, END_STREAM, 3, b"fine"));
        b
    };
    let evs = vec![Ev::Data(C, c), Ev::Data(S, s1), Ev::Data(S, data), Ev::Gap(S, 100), Ev::Data(S, s2)];
    let (out, stats) = play(&evs, 7, Limits::default());
    assert_eq!(out.len(), 2, "{out:#?}");
    let big = out.iter().find(|e| e.h2.as_ref().unwrap().stream == 1).unwrap();
    assert!(big.anomalies.iter().any(|a| matches!(a, Anomaly::Gap { response: true, bytes: 100, .. })), "{:?}", big.anomalies);
    assert_eq!(big.response.as_ref().unwrap().body_wire_len, 1000);
    let small = out.iter().find(|e| e.h2.as_ref().unwrap().stream == 3).unwrap();
    assert_eq!(small.response.as_ref().unwrap().body, b"fine");
    assert!(small.anomalies.is_empty());
    assert_eq!(stats.h2.sides_lost, 0);
}

#[test]
fn after_lost_frames_unknown_headers_are_marked_and_known_streams_recovered() {
    use Side::{Client as C, Server as S};
    let mut c = H2_PREFACE.to_vec();
    for id in [1, 3, 5] {
        c.extend(frame(HEADERS, END_HEADERS | END_STREAM, id, &request(&format!("/s{id}"), &[])));
    }
    // Stream 1's response headers insert "x-server: one" into the table; they are lost in
    // the gap with the frame after them. Stream 3's headers were seen before the gap; stream
    // 5's refer to the lost entry (index 62).
    let mut s = frame(HEADERS, END_HEADERS, 3, &[0x88]);
    s.extend(frame(DATA, 0, 3, b"three-"));
    let lost = {
        let mut b = vec![0x88];
        b.extend(block(&[("x-server", "one")], true));
        frame(HEADERS, END_HEADERS | END_STREAM, 1, &b)
    };
    let mut after = frame(DATA, END_STREAM, 3, b"done");
    after.extend(frame(HEADERS, END_HEADERS, 5, &[0x88, 0xbe]));
    after.extend(frame(DATA, END_STREAM, 5, b"five"));
    let evs = vec![Ev::Data(C, c), Ev::Data(S, s), Ev::Gap(S, lost.len() as u64 + 3), Ev::Data(S, after[3..].to_vec())];
    // The gap also took the first 3 bytes of the next frame header: boundaries are lost.
    let (out, stats) = play(&evs, 1000, Limits::default());
    assert_eq!(stats.h2.sides_lost, 1);
    let by = |id: u32| out.iter().find(|e| e.h2.as_ref().unwrap().stream == id).unwrap();
    // Stream 5: its headers cannot be known: no response is made up.
    let five = by(5);
    assert!(five.response.is_none(), "{:?}", five.response);
    assert!(five.anomalies.contains(&Anomaly::Http2(super::H2Anomaly::HeadersUnknown)), "{:?}", five.anomalies);
    assert_eq!(stats.h2.header_blocks_unknown, 1);
    // Stream 1's response was lost whole.
    assert!(by(1).response.is_none());
    // Stream 3 is damaged (its DATA frame's header was in the gap), marked, never wrong.
    let three = by(3);
    assert!(three.anomalies.iter().any(|a| matches!(a, Anomaly::Gap { .. })), "{:?}", three.anomalies);
    assert!(three.response.as_ref().unwrap().body.starts_with(b"three-"));
}

#[test]
fn the_search_finds_frames_again_after_a_gap() {
    use Side::{Client as C, Server as S};
    let mut c = H2_PREFACE.to_vec();
    c.extend(frame(HEADERS, END_HEADERS | END_STREAM, 1, &request("/one", &[])));
    let junk = frame(DATA, 0, 1, &[0x55; 40]);
    let mut after = frame(HEADERS, END_HEADERS, 1, &[0x88]);
    after.extend(frame(DATA, END_STREAM, 1, b"body"));
    // The gap swallows the first 5 bytes of a frame header: the rest of that frame is junk.
    let evs = vec![Ev::Data(C, c), Ev::Gap(S, 5), Ev::Data(S, junk[5..].to_vec()), Ev::Data(S, after)];
    let (out, stats) = play(&evs, 1000, Limits::default());
    assert_eq!(stats.h2.resyncs, 1);
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].response.as_ref().unwrap().body, b"body");
    assert_eq!(out[0].response.as_ref().unwrap().head.status(), 200);
}

#[test]
fn resets_and_caps_are_marked() {
    use Side::{Client as C, Server as S};
    let mut c = H2_PREFACE.to_vec();
    c.extend(frame(HEADERS, END_HEADERS | END_STREAM, 1, &request("/a", &[])));
    c.extend(frame(HEADERS, END_HEADERS | END_STREAM, 3, &request("/b", &[])));
    c.extend(frame(HEADERS, END_HEADERS | END_STREAM, 5, &request("/c", &[("x-big", &"b".repeat(120))])));
    let mut s = frame(RST_STREAM, 0, 1, b"\x00\x00\x00\x08");
    s.extend(frame(HEADERS, END_HEADERS | END_STREAM, 3, &[0x88]));
    let limits = Limits { h2: super::H2Limits { max_streams: 2, max_header_list: 200, ..super::H2Limits::default() }, ..Limits::default() };
    let (out, stats) = play(&[Ev::Data(C, c), Ev::Data(S, s)], 1000, limits);
    let by = |id: u32| out.iter().find(|e| e.h2.as_ref().unwrap().stream == id).unwrap();
    assert!(by(1).anomalies.contains(&Anomaly::Http2(super::H2Anomaly::Reset { by_server: true, code: 8 })));
    assert_eq!(by(3).response.as_ref().unwrap().head.status(), 200);
    // Stream 5: past the cap of 2 open streams, and its header list over 200 bytes.
    let five = by(5);
    assert!(five.anomalies.contains(&Anomaly::Http2(super::H2Anomaly::StreamCap)), "{:?}", five.anomalies);
    assert!(five.request.is_none());
    assert_eq!((stats.h2.streams_over_cap, stats.h2.header_lists_over_cap, stats.h2.resets), (1, 1, 1));
}

#[test]
fn pushed_streams_are_marked() {
    use Side::{Client as C, Server as S};
    let mut c = H2_PREFACE.to_vec();
    c.extend(frame(HEADERS, END_HEADERS | END_STREAM, 1, &request("/page", &[])));
    let mut promise = 2u32.to_be_bytes().to_vec();
    promise.extend(request("/style.css", &[]));
    let mut s = frame(PUSH_PROMISE, END_HEADERS, 1, &promise);
    s.extend(frame(HEADERS, END_HEADERS, 1, &[0x88]));
    s.extend(frame(DATA, END_STREAM, 1, b"<html>"));
    s.extend(frame(HEADERS, END_HEADERS, 2, &[0x88]));
    s.extend(frame(DATA, END_STREAM, 2, b"body{}"));
    let (out, stats) = play(&[Ev::Data(C, c), Ev::Data(S, s)], 4, Limits::default());
    assert_eq!(out.len(), 2);
    let pushed = out.iter().find(|e| e.h2.as_ref().unwrap().stream == 2).unwrap();
    assert_eq!(pushed.h2.as_ref().unwrap().pushed_by, Some(1));
    assert_eq!(url(pushed), "http://example.test:8080/style.css");
    assert_eq!(pushed.response.as_ref().unwrap().body, b"body{}");
    assert_eq!(stats.h2.pushed, 1);
}

#[test]
fn upgrade_h2c_hands_the_connection_over_with_stream_1() {
    use Side::{Client as C, Server as S};
    let req = b"GET /up HTTP/1.1\r\nHost: example.test\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n\r\n";
    let mut s = b"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n\r\n".to_vec();
    s.extend(frame(SETTINGS, 0, 0, b""));
    s.extend(frame(HEADERS, END_HEADERS, 1, &[0x88]));
    s.extend(frame(DATA, END_STREAM, 1, b"upgraded body"));
    let mut c2 = H2_PREFACE.to_vec();
    c2.extend(frame(SETTINGS, 0, 0, b""));
    c2.extend(frame(HEADERS, END_HEADERS | END_STREAM, 3, &request("/second", &[])));
    let mut s2 = frame(HEADERS, END_HEADERS, 3, &[0x8d]);
    s2.extend(frame(DATA, END_STREAM, 3, b"nope"));
    let evs = vec![Ev::Data(C, req.to_vec()), Ev::Data(S, s), Ev::Data(C, c2), Ev::Data(S, s2)];
    for piece in [1, 3, 13, 1000] {
        let (out, stats) = play(&evs, piece, Limits::default());
        assert_eq!(out.len(), 2, "piece {piece}: {out:#?}");
        let first = &out[0];
        assert_eq!(first.index, 0);
        assert!(first.h2.as_ref().unwrap().upgraded);
        assert_eq!(first.request.as_ref().unwrap().head.version(), b"HTTP/1.1");
        assert_eq!(url(first), "http://example.test/up");
        assert_eq!(first.interim, [101]);
        assert_eq!(first.response.as_ref().unwrap().head.status(), 200);
        assert_eq!(first.response.as_ref().unwrap().body, b"upgraded body");
        assert!(!first.anomalies.contains(&Anomaly::Tunnel));
        let second = &out[1];
        assert_eq!(second.index, 1);
        assert_eq!(url(second), "http://example.test:8080/second");
        assert_eq!(second.response.as_ref().unwrap().head.status(), 404);
        assert_eq!((stats.http.tunnels, stats.h2.connections), (0, 1));
    }
}

#[test]
fn bad_frames_never_panic() {
    // Bad lengths, padding past the payload, CONTINUATION without HEADERS, frames on stream
    // 0 that need one, a huge length: counted, no exchange made up.
    use Side::{Client as C, Server as S};
    let mut c = H2_PREFACE.to_vec();
    c.extend(frame(PING, 0, 0, b"123"));
    c.extend(frame(DATA, PADDED, 1, b"\x09abc"));
    c.extend(frame(CONTINUATION, END_HEADERS, 1, b"\x82"));
    c.extend(frame(HEADERS, END_HEADERS | PADDED, 1, b"\x10\x82"));
    c.extend(frame(SETTINGS, 0, 0, b"\x00\x01\x00"));
    let s = b"\xff\xff\xff\x01\x04\x00\x00\x00\x01".to_vec();
    let (out, stats) = play(&[Ev::Data(C, c), Ev::Data(S, s)], 3, Limits::default());
    assert!(stats.h2.frame_errors >= 4, "{:?}", stats.h2);
    assert!(out.iter().all(|e| e.request.is_none() || e.request.as_ref().unwrap().head.method().is_empty()));
}

#[test]
fn an_h2_stream_makes_the_witness_its_http1_twin_makes() {
    use crate::ir::build::{WitnessBuilder, WitnessOptions};
    use crate::proto::http1::{Message, head};
    let (out, _) = play(&conversation(), 100_000, Limits::default());
    let h2 = out.iter().find(|e| e.h2.as_ref().unwrap().stream == 3).unwrap().clone();
    // The same exchange in HTTP/1.1: absolute-form target (no Host field, as HTTP/2 has
    // none), the same fields, bodies and times.
    let q = h2.request.as_ref().unwrap();
    let r = h2.response.as_ref().unwrap();
    let req = head::parse(b"POST http://example.test:8080/submit HTTP/1.1\r\ncontent-type: application/json\r\n\r\n".to_vec(), true, 100)
        .unwrap();
    let resp = head::parse(b"HTTP/1.1 204 No Content\r\n\r\n".to_vec(), false, 100).unwrap();
    let mut h1 = h2.clone();
    h1.h2 = None;
    h1.request = Some(Message { head: req, ..q.clone() });
    h1.response = Some(Message { head: resp, ..r.clone() });
    let text = |ex: &Exchange| {
        let mut b = WitnessBuilder::new(WitnessOptions::default());
        let w = b.build(ex).expect("a witness").to_pb();
        crate::ir::body::flat_text(&w)
    };
    let (a, b) = (text(&h2), text(&h1));
    for want in [r#"host: "example.test:8080""#, r#"method: "POST""#, "content_type: JSON", "response_code: 204"] {
        assert!(a.contains(want), "{want} in\n{a}");
    }
    assert_eq!(a, b);
}

/// One gRPC message in its length-prefixed form: the compressed flag, the length, the bytes.
fn grpc_msg(compressed: bool, data: &[u8]) -> Vec<u8> {
    let mut b = vec![compressed as u8];
    b.extend((data.len() as u32).to_be_bytes());
    b.extend_from_slice(data);
    b
}

#[test]
fn a_grpc_call_has_its_messages_and_status() {
    use Side::{Client as C, Server as S};
    let mut c = H2_PREFACE.to_vec();
    let mut req = vec![0x83, 0x86];
    req.extend(block(
        &[
            (":path", "/pkg.Users/Get"),
            (":authority", "h:50051"),
            ("content-type", "application/grpc"),
            ("grpc-encoding", "gzip"),
            ("te", "trailers"),
        ],
        false,
    ));
    c.extend(frame(HEADERS, END_HEADERS, 1, &req));
    c.extend(frame(DATA, END_STREAM, 1, &grpc_msg(true, &gzip(b"\x0a\x03ana"))));
    let mut s = frame(HEADERS, END_HEADERS, 1, &{
        let mut b = vec![0x88];
        b.extend(block(&[("content-type", "application/grpc")], false));
        b
    });
    let mut body = grpc_msg(false, b"\x08\x01");
    body.extend(grpc_msg(false, b"\x08\x02"));
    s.extend(frame(DATA, 0, 1, &body));
    s.extend(frame(HEADERS, END_HEADERS | END_STREAM, 1, &block(&[("grpc-status", "5"), ("grpc-message", "no%20such%20user")], false)));
    let (out, stats) = play(&[Ev::Data(C, c), Ev::Data(S, s)], 5, Limits::default());
    assert_eq!(out.len(), 1);
    let g = out[0].h2.as_ref().unwrap().grpc.as_deref().expect("a gRPC call");
    assert_eq!((g.service.as_str(), g.method.as_str()), ("pkg.Users", "Get"));
    assert_eq!(g.requests.messages.len(), 1);
    assert_eq!(g.requests.messages[0].data, b"\x0a\x03ana");
    assert!(g.requests.messages[0].compressed);
    assert_eq!(g.responses.messages.iter().map(|m| m.data.clone()).collect::<Vec<_>>(), [b"\x08\x01".to_vec(), b"\x08\x02".to_vec()]);
    assert_eq!((g.status, g.message.as_deref()), (Some(5), Some("no such user")));
    assert_eq!(stats.h2.grpc_calls, 1);
    let mut b = Vec::new();
    har::write_entry(&mut b, &out[0]);
    let v: serde_json::Value = serde_json::from_slice(&b).unwrap();
    let x = &v["_apitool"]["grpc"];
    assert_eq!(x["service"], "pkg.Users");
    assert_eq!(x["requests"][0]["data"], "CgNhbmE=");
    assert_eq!(x["requests"][0]["compressed"], true);
    assert_eq!(x["responses"][1]["length"], 2);
    assert_eq!((x["status"].as_u64(), x["message"].as_str()), (Some(5), Some("no such user")));
    // The body as sent stays in the HAR (prefix form).
    assert_eq!(v["response"]["content"]["size"], 14);
}

/// A compressed gRPC message that decompresses past `--max-body` (its body, 5 + a few dozen
/// bytes, is well within it) is cut at the cap: the message says `truncated`, and so do the
/// entry (an anomaly naming the cap), the gRPC counter and the exchanges damaged by the cap.
/// Before, only the message said so.
#[test]
fn a_grpc_message_cut_at_max_body_is_marked_on_the_entry_and_counted() {
    use Side::{Client as C, Server as S};
    let mut c = H2_PREFACE.to_vec();
    let mut req = vec![0x83, 0x86];
    req.extend(block(&[(":path", "/pkg.Blobs/Put"), (":authority", "h:50051"), ("content-type", "application/grpc")], false));
    c.extend(frame(HEADERS, END_HEADERS, 1, &req));
    c.extend(frame(DATA, END_STREAM, 1, &grpc_msg(false, b"small")));
    let mut s = frame(HEADERS, END_HEADERS, 1, &{
        let mut b = vec![0x88];
        b.extend(block(&[("content-type", "application/grpc"), ("grpc-encoding", "gzip")], false));
        b
    });
    let mut body = grpc_msg(true, &gzip(&[b'a'; 3000]));
    body.extend(grpc_msg(true, &gzip(&[b'b'; 10])));
    s.extend(frame(DATA, 0, 1, &body));
    s.extend(frame(HEADERS, END_HEADERS | END_STREAM, 1, &block(&[("grpc-status", "0")], false)));
    let mut limits = Limits::default();
    limits.http.max_body = 1000;
    assert!(body.len() < 1000);
    let (out, stats) = play(&[Ev::Data(C, c), Ev::Data(S, s)], 7, limits);
    assert_eq!(out.len(), 1);
    let g = out[0].h2.as_ref().unwrap().grpc.as_deref().unwrap();
    let cut: Vec<(usize, bool)> = g.responses.messages.iter().map(|m| (m.data.len(), m.truncated)).collect();
    assert_eq!(cut, [(1000, true), (0, true)], "the side's budget is spent by the first");
    assert!(!g.requests.messages[0].truncated);
    assert_eq!(out[0].anomalies, [Anomaly::Http2(super::H2Anomaly::GrpcTruncated { response: true, messages: 2 })]);
    assert_eq!(out[0].anomalies[0].to_string(), "response: 2 gRPC messages truncated at the decoded size cap (--max-body)");
    assert_eq!(stats.h2.grpc_messages_truncated, 2);
    assert_eq!((stats.http.damaged_by_cap.any, stats.http.damaged_by_cap.max_body), (1, 1));
    // The HTTP body itself was whole.
    assert!(!out[0].response.as_ref().unwrap().body_truncated);
}
