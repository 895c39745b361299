//! gRPC calls in the HAR, against the recording client's own record of them
//! (`testdata/grpc.calls.tsv` and `testdata/grpc.messages.tsv`, written by
//! `testdata/tools/grpc_app.py` from what it handed to grpcio and what grpcio handed back,
//! checked against the server's log at recording time; see `testdata/README.md`).
//!
//! - `grpc.pcap`: ten calls on two h2c connections (unary, server-, client- and
//!   bidi-streaming, gzip per call and per channel with one response sent uncompressed,
//!   a status after messages, two trailers-only errors): each call is an entry with its
//!   path, every message of each direction is in `_apitool.grpc` in order with the bytes the
//!   client sent or received (decompressed) and the compressed flag its sender set, each side's
//!   `grpc-encoding` is the one the record names, and the status code and message are the
//!   client's.
//! - Where a side was sent uncompressed, its HTTP body is exactly the recorded messages in
//!   gRPC's framing.
//! - `--max-body` cuts messages and says so, on the entry and in the summary.
//! - tshark's gRPC dissector, an independent decoder, finds the same messages (flag, length
//!   prefix, decompressed bytes) on every stream and the same `grpc-status`. Skipped when
//!   tshark is not installed.

mod common;

use std::collections::BTreeMap;
use std::io::Write as _;
use std::process::Command;

use base64::Engine;
use serde_json::Value;

use common::*;

const PORT: u16 = 50051;

/// One call as the client recorded it.
#[derive(Clone, Debug)]
struct Call {
    call: usize,
    conn: usize,
    path: String,
    request_encoding: String,
    response_encoding: String,
    status: u64,
    message: String,
    notes: Vec<String>,
    sent: Vec<Msg>,
    received: Vec<Msg>,
}

impl Call {
    fn has(&self, note: &str) -> bool {
        self.notes.iter().any(|n| n == note)
    }
}

/// One message: the flag its sender set and its bytes (decompressed).
#[derive(Clone, Debug, PartialEq, Eq)]
struct Msg {
    compressed: bool,
    data: Vec<u8>,
}

fn b64(s: &str) -> Vec<u8> {
    base64::engine::general_purpose::STANDARD.decode(s).unwrap()
}

/// The client's record, in call order.
fn recorded() -> Vec<Call> {
    let calls = std::fs::read_to_string(testdata().join("grpc.calls.tsv")).unwrap();
    let mut lines = calls.lines();
    assert_eq!(lines.next(), Some("call\tconn\tpath\trequest_encoding\tresponse_encoding\tsent\treceived\tstatus\tmessage\tnotes"));
    let mut out = Vec::new();
    let mut counts = Vec::new();
    for line in lines {
        let f: Vec<&str> = line.split('\t').collect();
        assert_eq!(f.len(), 10, "{line:?}");
        assert_eq!(f[0].parse::<usize>().unwrap(), out.len(), "calls in order: {line:?}");
        counts.push((f[5].parse::<usize>().unwrap(), f[6].parse::<usize>().unwrap()));
        out.push(Call {
            call: out.len(),
            conn: f[1].parse().unwrap(),
            path: f[2].to_string(),
            request_encoding: f[3].to_string(),
            response_encoding: f[4].to_string(),
            status: f[7].parse().unwrap(),
            message: f[8].to_string(),
            notes: f[9].split(';').map(str::to_string).collect(),
            sent: Vec::new(),
            received: Vec::new(),
        });
    }
    let messages = std::fs::read_to_string(testdata().join("grpc.messages.tsv")).unwrap();
    let mut lines = messages.lines();
    assert_eq!(lines.next(), Some("call\tdirection\tindex\tcompressed\tlength\tdata"));
    for line in lines {
        let f: Vec<&str> = line.split('\t').collect();
        assert_eq!(f.len(), 6, "{line:?}");
        let c = &mut out[f[0].parse::<usize>().unwrap()];
        let list = match f[1] {
            "send" => &mut c.sent,
            "receive" => &mut c.received,
            d => panic!("direction {d:?}"),
        };
        assert_eq!(f[2].parse::<usize>().unwrap(), list.len(), "messages of a direction in order: {line:?}");
        let data = b64(f[5]);
        assert_eq!(data.len(), f[4].parse::<usize>().unwrap(), "{line:?}");
        list.push(Msg { compressed: f[3] == "1", data });
    }
    for (c, (sent, received)) in out.iter().zip(counts) {
        assert_eq!((c.sent.len(), c.received.len()), (sent, received), "call {}: the two files agree", c.call);
    }
    out
}

fn convert_to_json(extra: &[&str]) -> Value {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.har");
    let args: Vec<&str> = ["--quiet"].iter().chain(extra).copied().collect();
    convert("grpc.pcap", &out, &args);
    let har = read_har(&std::fs::read(&out).unwrap(), "grpc.pcap");
    validate_hars(&[out]);
    har
}

/// The entries by connection, ranked in the order the connections' first requests came,
/// each connection's entries by stream id: the client made its calls one after the other,
/// so this is call order.
fn by_conn(har: &Value) -> Vec<Vec<Value>> {
    let mut flows: BTreeMap<u64, Vec<Value>> = BTreeMap::new();
    for e in har["log"]["entries"].as_array().unwrap() {
        flows.entry(e["_apitool"]["flow"].as_u64().unwrap()).or_default().push(e.clone());
    }
    let mut conns: Vec<Vec<Value>> = flows.into_values().collect();
    for c in &mut conns {
        c.sort_by_key(|e| e["_apitool"]["h2"]["streamId"].as_u64().expect("an HTTP/2 entry"));
    }
    conns.sort_by_key(|c| c.iter().map(|e| e["_apitool"]["firstFrame"].as_u64().unwrap()).min());
    conns
}

/// Every recorded call with its entry, in call order.
fn paired(har: &Value) -> Vec<(Call, Value)> {
    let calls = recorded();
    let conns = by_conn(har);
    let n_conns = calls.iter().map(|c| c.conn).max().unwrap() + 1;
    assert_eq!(conns.len(), n_conns, "one connection per channel");
    let mut out = Vec::new();
    for (k, entries) in conns.iter().enumerate() {
        let want: Vec<&Call> = calls.iter().filter(|c| c.conn == k).collect();
        assert_eq!(entries.len(), want.len(), "conn {k}: one entry per call");
        out.extend(want.into_iter().cloned().zip(entries.iter().cloned()));
    }
    out.sort_by_key(|(c, _)| c.call);
    out
}

/// A message of `_apitool.grpc`.
#[derive(Debug)]
struct Ours {
    length: u64,
    compressed: bool,
    data: Vec<u8>,
}

fn ours(side: &Value) -> Vec<Ours> {
    side.as_array()
        .unwrap()
        .iter()
        .map(|m| {
            for k in m.as_object().unwrap().keys() {
                assert!(["length", "compressed", "data"].contains(&k.as_str()), "field {k} in {m}: no error, nothing truncated");
            }
            Ours {
                length: m["length"].as_u64().unwrap(),
                compressed: m["compressed"].as_bool().unwrap(),
                data: b64(m["data"].as_str().unwrap()),
            }
        })
        .collect()
}

fn header<'a>(headers: &'a Value, name: &str) -> Option<&'a str> {
    headers
        .as_array()
        .unwrap()
        .iter()
        .find(|h| h["name"].as_str().unwrap().eq_ignore_ascii_case(name))
        .map(|h| h["value"].as_str().unwrap())
}

/// `grpc-encoding` as the record names it: an absent field is `identity`.
fn encoding(headers: &Value) -> &str {
    header(headers, "grpc-encoding").unwrap_or("identity")
}

/// Where two byte strings part, for a failure message.
fn differ(ours: &[u8], recorded: &[u8]) -> String {
    match ours.iter().zip(recorded).position(|(a, b)| a != b) {
        Some(i) => format!("{} bytes in the HAR, {} recorded, first differing at byte {i}", ours.len(), recorded.len()),
        None => format!("{} bytes in the HAR, {} recorded, one a prefix of the other", ours.len(), recorded.len()),
    }
}

/// Messages in gRPC's framing: flag byte, 4-byte big-endian length, the message.
fn framed(messages: &[Msg]) -> Vec<u8> {
    let mut out = Vec::new();
    for m in messages {
        assert!(!m.compressed);
        out.push(0);
        out.extend((m.data.len() as u32).to_be_bytes());
        out.extend_from_slice(&m.data);
    }
    out
}

#[test]
fn the_recording_covers_what_it_says() {
    let calls = recorded();
    assert_eq!(calls.len(), 10);
    for kind in ["unary", "server-streaming", "client-streaming", "bidi-streaming", "gzip", "error", "trailers-only", "large", "binary"] {
        assert!(calls.iter().any(|c| c.has(kind)), "a call tagged {kind}");
    }
    let all = || calls.iter().flat_map(|c| c.sent.iter().chain(&c.received));
    assert!(all().any(|m| m.data.is_empty()), "an empty message");
    assert!(all().filter(|m| m.data.len() >= 40_000).count() >= 2, "a large message each way");
    assert!(all().any(|m| m.compressed) && calls.iter().any(|c| c.has("mixed-flags")));
    assert!(calls.iter().any(|c| c.status != 0 && !c.message.is_ascii() && c.message.contains('%')));
}

#[test]
fn every_call_is_an_entry_with_its_messages_and_status() {
    let har = convert_to_json(&[]);
    for (c, e) in paired(&har) {
        let n = c.call;
        let x = &e["_apitool"];
        assert_eq!(x["anomalies"].as_array().unwrap().len(), 0, "call {n}: {}", x["anomalies"]);
        assert_eq!(e["request"]["method"], "POST", "call {n}");
        assert_eq!(e["request"]["url"], format!("http://127.0.0.1:{PORT}{}", c.path), "call {n}");
        assert_eq!(e["request"]["httpVersion"], "HTTP/2.0");
        // gRPC answers every call with HTTP 200; its own status is in grpc-status.
        assert_eq!(e["response"]["status"], 200, "call {n}");
        let g = &x["grpc"];
        let (service, method) = c.path[1..].split_once('/').unwrap();
        assert_eq!((g["service"].as_str(), g["method"].as_str()), (Some(service), Some(method)), "call {n}");
        for (side, want, enc, headers) in [
            ("requests", &c.sent, &c.request_encoding, &e["request"]["headers"]),
            ("responses", &c.received, &c.response_encoding, &e["response"]["headers"]),
        ] {
            let got = ours(&g[side]);
            assert_eq!(got.len(), want.len(), "call {n}: {side}");
            for (k, (o, w)) in got.iter().zip(want).enumerate() {
                assert!(o.data == w.data, "call {n}: {side} {k}: {}", differ(&o.data, &w.data));
                assert_eq!(o.compressed, w.compressed, "call {n}: {side} {k}: compressed flag");
                if o.compressed {
                    // What went on the wire is the compressed message: shorter, for these.
                    assert!(o.length > 0 && (o.length as usize) < w.data.len(), "call {n}: {side} {k}: {o:?}");
                } else {
                    assert_eq!(o.length as usize, w.data.len(), "call {n}: {side} {k}");
                }
            }
            // A side that sent messages says which encoding; a trailers-only response has none.
            if !want.is_empty() {
                assert_eq!(encoding(headers), enc, "call {n}: {side}' grpc-encoding");
            }
        }
        assert_eq!(g["status"].as_u64(), Some(c.status), "call {n}: grpc-status");
        // The record has no details for an OK status: grpc-message empty or absent.
        match g["message"].as_str() {
            Some(m) => assert_eq!(m, c.message, "call {n}: grpc-message"),
            None => assert!(g["message"].is_null() && c.message.is_empty(), "call {n}: {}", g["message"]),
        }
    }
}

#[test]
fn uncompressed_bodies_are_the_recorded_messages_framed() {
    let har = convert_to_json(&[]);
    let mut sides = 0;
    for (c, e) in paired(&har) {
        for (msgs, obj) in [(&c.sent, &e["request"]["postData"]), (&c.received, &e["response"]["content"])] {
            if msgs.iter().any(|m| m.compressed) {
                continue;
            }
            let body = har_text_bytes(obj).unwrap_or_default();
            assert!(body == framed(msgs), "call {}: the body and the framed messages: {}", c.call, differ(&body, &framed(msgs)));
            sides += 1;
        }
    }
    assert_eq!(sides, 15, "every side of conn 0 but call 4's, and the ClientStream answer on conn 1");
}

/// A status before any message is a response of one HEADERS frame: the status and message
/// are in its header fields, and there are no trailers.
#[test]
fn trailers_only_responses_carry_the_status_in_their_headers() {
    let har = convert_to_json(&[]);
    let mut n = 0;
    for (c, e) in paired(&har) {
        if !c.has("trailers-only") {
            assert!(header(&e["_apitool"]["trailers"], "grpc-status").is_some(), "call {}: the status is in the trailers", c.call);
            continue;
        }
        n += 1;
        assert!(c.received.is_empty() && c.status != 0, "call {}", c.call);
        assert!(e["_apitool"].get("trailers").is_none(), "call {}: {}", c.call, e["_apitool"]);
        assert_eq!(header(&e["response"]["headers"], "grpc-status"), Some(c.status.to_string().as_str()));
        assert_eq!(e["response"]["content"]["size"], 0);
        assert_eq!(e["_apitool"]["grpc"]["status"].as_u64(), Some(c.status));
    }
    assert_eq!(n, 2);
}

/// `--max-body 1000`: messages past the side's budget are cut there and flagged, and so is
/// the entry (the anomaly names the cap) and the summary. What is kept is the start of the
/// recorded message.
#[test]
fn max_body_cuts_messages_and_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let summary = dir.path().join("s.json");
    let har = convert_to_json(&["--max-body", "1000", "--summary-json", summary.to_str().unwrap()]);
    let mut cut = 0;
    for (c, e) in paired(&har) {
        let g = &e["_apitool"]["grpc"];
        let anomalies: Vec<String> =
            e["_apitool"]["anomalies"].as_array().unwrap().iter().map(|a| a.as_str().unwrap().to_string()).collect();
        for (side, want, who) in [("requests", &c.sent, "request"), ("responses", &c.received, "response")] {
            let got = g[side].as_array().unwrap();
            let mut cut_here = 0;
            for (k, (m, w)) in got.iter().zip(want).enumerate() {
                let data = b64(m["data"].as_str().unwrap());
                assert!(w.data.starts_with(&data), "call {}: {side} {k}: the start of the message", c.call);
                if data.len() < w.data.len() {
                    assert_eq!(m["truncated"], true, "call {}: {side} {k}", c.call);
                    cut_here += 1;
                } else {
                    assert!(m.get("truncated").is_none());
                }
            }
            // A message left out (the HTTP body was cut before it) is said too.
            let missing = want.len() - got.len();
            if cut_here > 0 {
                assert!(
                    anomalies.iter().any(|a| a.starts_with(&format!("{who}: ")) && a.contains("gRPC message") && a.contains("--max-body")),
                    "call {}: {side}: {anomalies:?}",
                    c.call
                );
            }
            if missing > 0 {
                assert!(anomalies.iter().any(|a| a.starts_with(&format!("{who}: body truncated"))), "call {}: {anomalies:?}", c.call);
            }
            cut += cut_here;
        }
    }
    assert!(cut >= 3, "the gzip calls hold messages that decompress past 1000 bytes");
    let s: Value = serde_json::from_slice(&std::fs::read(&summary).unwrap()).unwrap();
    let input = &s["inputs"][0];
    assert_eq!(input["h2"]["grpc_messages_truncated"].as_u64(), Some(cut as u64), "{}", input["h2"]);
    assert_eq!(input["entries_with_anomalies"].as_u64(), input["http"]["damaged_by_cap"]["max_body"].as_u64());
}

/// tshark's `aa:bb:cc` bytes.
fn hex_bytes(v: Option<&Value>) -> Vec<u8> {
    let s = v.and_then(Value::as_str).unwrap_or_default();
    if s.is_empty() {
        return Vec::new();
    }
    s.split(':').map(|b| u8::from_str_radix(b, 16).unwrap()).collect()
}

/// What tshark sees of a stream: each direction's messages (flag, length prefix, data
/// decompressed) and the last `grpc-status` the server sent.
#[derive(Debug, Default, PartialEq, Eq)]
struct Seen {
    requests: Vec<(bool, u64, Vec<u8>)>,
    responses: Vec<(bool, u64, Vec<u8>)>,
    status: Option<u64>,
}

/// (tshark's TCP stream number, HTTP/2 stream id) -> what tshark decoded.
fn tshark_calls() -> BTreeMap<(u64, u64), Seen> {
    let o = Command::new("tshark")
        .arg("-r")
        .arg(testdata().join("grpc.pcap"))
        .args(["-d", &format!("tcp.port=={PORT},http2"), "-Y", "grpc || http2.type == 1", "-T", "json", "--no-duplicate-keys"])
        .output()
        .expect("running tshark");
    assert!(o.status.success(), "tshark failed: {}", String::from_utf8_lossy(&o.stderr));
    let packets: Value = serde_json::from_slice(&o.stdout).expect("tshark json");
    let mut out: BTreeMap<(u64, u64), Seen> = BTreeMap::new();
    for p in packets.as_array().expect("packets") {
        let layers = &p["_source"]["layers"];
        let conn: u64 = layers["tcp"]["tcp.stream"].as_str().unwrap().parse().unwrap();
        let response = layers["tcp"]["tcp.srcport"].as_str() == Some(&PORT.to_string());
        let mut data_streams: Vec<u64> = Vec::new();
        for h2 in list(&layers["http2"]) {
            for s in list(&h2["http2.stream"]) {
                let sid: u64 = s["http2.streamid"].as_str().unwrap().parse().unwrap();
                match s["http2.type"].as_str() {
                    Some("0") => data_streams.push(sid),
                    Some("1") if response => {
                        for h in list(&s["http2.header"]) {
                            if h["http2.header.name"] == "grpc-status" {
                                out.entry((conn, sid)).or_default().status = h["http2.header.value"].as_str().unwrap().parse().ok();
                            }
                        }
                    }
                    _ => {}
                }
            }
        }
        let messages = list(&layers["grpc"]);
        if messages.is_empty() {
            continue;
        }
        data_streams.dedup();
        // The calls were made one after the other: a packet holds DATA of one stream only.
        assert_eq!(data_streams.len(), 1, "frame {}: gRPC messages of streams {data_streams:?}", layers["frame"]["frame.number"]);
        let seen = out.entry((conn, data_streams[0])).or_default();
        for m in messages {
            let msg = (
                m["grpc.compressed_flag"].as_str() == Some("1"),
                m["grpc.message_length"].as_str().unwrap().parse().unwrap(),
                hex_bytes(m.get("grpc.message_data")),
            );
            if response { &mut seen.responses } else { &mut seen.requests }.push(msg);
        }
    }
    out
}

#[test]
fn tshark_finds_the_same_messages_and_statuses() {
    if !tshark_available() {
        let _ = writeln!(std::io::stderr(), "notice: tshark not installed: skipping");
        return;
    }
    let theirs = tshark_calls();
    let har = convert_to_json(&[]);
    let mut ours_by_stream = BTreeMap::new();
    for (rank, entries) in by_conn(&har).iter().enumerate() {
        for e in entries {
            let g = &e["_apitool"]["grpc"];
            let side = |s: &str| ours(&g[s]).into_iter().map(|m| (m.compressed, m.length, m.data)).collect::<Vec<_>>();
            let seen = Seen { requests: side("requests"), responses: side("responses"), status: g["status"].as_u64() };
            ours_by_stream.insert((rank as u64, e["_apitool"]["h2"]["streamId"].as_u64().unwrap()), seen);
        }
    }
    assert_eq!(ours_by_stream.len(), 10);
    assert_eq!(ours_by_stream.keys().collect::<Vec<_>>(), theirs.keys().collect::<Vec<_>>(), "the same streams");
    for (k, seen) in &theirs {
        let o = &ours_by_stream[k];
        for (side, a, b) in [("requests", &o.requests, &seen.requests), ("responses", &o.responses, &seen.responses)] {
            assert_eq!(a.len(), b.len(), "{k:?}: {side}: how many");
            for (i, (x, y)) in a.iter().zip(b).enumerate() {
                assert!(
                    x == y,
                    "{k:?}: {side} {i}: ours ({}, {}, {} bytes), tshark's ({}, {}, {} bytes)",
                    x.0,
                    x.1,
                    x.2.len(),
                    y.0,
                    y.1,
                    y.2.len()
                );
            }
        }
        assert_eq!(o.status, seen.status, "{k:?}: grpc-status");
    }
}
