//! WebSocket connections in the HAR, against the recording client's own record of every
//! message (`testdata/ws.messages.tsv`, written by `testdata/tools/ws.py` from the frames the
//! `websockets` library sent and received, see `testdata/README.md`).
//!
//! - `ws.pcap`: three connections (permessage-deflate with context takeover; with
//!   `client_no_context_takeover` and reduced windows; no compression): every message of each
//!   direction is in the HAR exactly (opcode, length, SHA-256 of the decoded payload), in
//!   order, at the capture time of its frame (within the client's own timing), data messages
//!   in `_webSocketMessages` and ping/pong/close in `_apitool.webSocket.control`.
//! - `ws-gap.pcap` (`derive.py`): segments lost inside a compressed message, inside a plain
//!   payload and across a frame header: every message written is one the client recorded,
//!   exactly, or is marked `_damaged`; the framing is found again after the lost header.
//! - `--max-messages` and `--max-body` cap what is kept, and say so.

mod common;

use std::collections::BTreeMap;
use std::path::Path;

use base64::Engine;
use serde_json::Value;

use common::*;

/// One message as the client recorded it.
#[derive(Clone, Debug, PartialEq)]
struct Recorded {
    send: bool,
    opcode: u64,
    len: usize,
    sha256: String,
    time: f64,
}

/// The client's record, per connection, in its order.
fn recorded(name: &str) -> BTreeMap<usize, Vec<Recorded>> {
    let text = std::fs::read_to_string(testdata().join(format!("{name}.messages.tsv"))).unwrap();
    let mut out: BTreeMap<usize, Vec<Recorded>> = BTreeMap::new();
    for line in text.lines().skip(1) {
        let f: Vec<&str> = line.split('\t').collect();
        assert_eq!(f.len(), 6, "{line:?}");
        out.entry(f[0].parse().unwrap()).or_default().push(Recorded {
            send: f[1] == "send",
            opcode: f[2].parse().unwrap(),
            len: f[3].parse().unwrap(),
            sha256: f[4].to_string(),
            time: f[5].parse().unwrap(),
        });
    }
    out
}

/// A message of the HAR: its decoded payload and what else it says.
#[derive(Debug)]
struct Ours {
    send: bool,
    opcode: u64,
    data: Vec<u8>,
    time: f64,
    damaged: bool,
    truncated: Option<u64>,
}

fn ours(m: &Value) -> Ours {
    let opcode = m["opcode"].as_u64().unwrap();
    let data = m["data"].as_str().unwrap();
    let base64 = opcode != 1 || m.get("_encoding").is_some_and(|e| e == "base64");
    let data = if base64 { base64::engine::general_purpose::STANDARD.decode(data).unwrap() } else { data.as_bytes().to_vec() };
    let send = match m["type"].as_str().unwrap() {
        "send" => true,
        "receive" => false,
        t => panic!("type {t:?}"),
    };
    for k in m.as_object().unwrap().keys() {
        assert!(
            ["type", "time", "opcode", "data", "_encoding", "_damaged", "_truncated", "_size"].contains(&k.as_str()),
            "field {k} in {m}"
        );
    }
    Ours {
        send,
        opcode,
        data,
        time: m["time"].as_f64().unwrap(),
        damaged: m.get("_damaged").is_some(),
        truncated: m.get("_truncated").map(|_| m["_size"].as_u64().unwrap()),
    }
}

fn convert_to_json(file: &str, extra: &[&str]) -> Value {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.har");
    convert(file, &out, extra);
    let har = read_har(&std::fs::read(&out).unwrap(), file);
    validate_hars(&[out]);
    har
}

/// The WebSocket entries of a HAR by the connection number in their URL (`?conn=N`).
fn by_conn(har: &Value) -> BTreeMap<usize, Value> {
    let mut out = BTreeMap::new();
    for e in har["log"]["entries"].as_array().unwrap() {
        assert_eq!(e["_resourceType"], "websocket", "every entry is a handshake: {}", e["request"]["url"]);
        assert_eq!(e["response"]["status"], 101);
        let url = e["request"]["url"].as_str().unwrap();
        let n = url.rsplit_once("conn=").unwrap().1.parse().unwrap();
        out.insert(n, e.clone());
    }
    out
}

/// Every message of the entry, data and control, in the HAR's order.
fn all_messages(e: &Value) -> (Vec<Ours>, Vec<Ours>) {
    let data = e["_webSocketMessages"].as_array().unwrap().iter().map(ours).collect();
    let control = e["_apitool"]["webSocket"]["control"].as_array().unwrap().iter().map(ours).collect();
    (data, control)
}

fn is_control(op: u64) -> bool {
    op >= 8
}

fn matches(o: &Ours, r: &Recorded) -> bool {
    o.send == r.send && o.opcode == r.opcode && o.data.len() == r.len && sha256_hex(&o.data) == r.sha256
}

#[test]
fn every_message_is_in_the_har_exactly_in_order_with_its_time() {
    every_message_of("ws", &[]);
}

/// The same session over TLS 1.3, decrypted with the client's key log: the same checks
/// against the client's record of it, and each entry says it came from TLS.
#[test]
fn every_message_over_tls_is_in_the_har_too() {
    let har = every_message_of("wss", &["--keylog", "testdata/wss.keys"]);
    for e in by_conn(&har).values() {
        assert!(e["request"]["url"].as_str().unwrap().starts_with("https://"), "{}", e["request"]["url"]);
        assert_eq!(e["_apitool"]["tls"]["version"], "TLS 1.3");
    }
}

fn every_message_of(name: &str, extra: &[&str]) -> Value {
    let args: Vec<&str> = ["--quiet"].iter().chain(extra).copied().collect();
    let har = convert_to_json(&format!("{name}.pcap"), &args);
    let conns = by_conn(&har);
    let truth = recorded(name);
    assert_eq!(conns.len(), 3);
    assert_eq!(truth.len(), 3);
    let extensions = [Some("permessage-deflate"), Some("client_no_context_takeover"), None];
    for (n, want) in &truth {
        let e = &conns[n];
        let ws = &e["_apitool"]["webSocket"];
        let (data, control) = all_messages(e);
        // Chrome's list: data messages only; control frames in ours.
        assert!(data.iter().all(|m| !is_control(m.opcode)) && control.iter().all(|m| is_control(m.opcode)));
        for (list, control) in [(&data, false), (&control, true)] {
            for send in [true, false] {
                let got: Vec<&Ours> = list.iter().filter(|m| m.send == send).collect();
                let want: Vec<&Recorded> = want.iter().filter(|r| r.send == send && is_control(r.opcode) == control).collect();
                assert_eq!(
                    got.len(),
                    want.len(),
                    "conn {n}: {} {} messages",
                    if send { "sent" } else { "received" },
                    if control { "control" } else { "data" }
                );
                for (k, (g, w)) in got.iter().zip(&want).enumerate() {
                    assert!(matches(g, w), "conn {n}: message {k} of its direction: {g:?} is not {w:?}");
                    assert!(!g.damaged && g.truncated.is_none(), "{g:?}");
                    // The client takes its time just before it sends and just after it has read
                    // a frame; the capture's time is in between.
                    assert!((g.time - w.time).abs() < 0.05, "conn {n}: message {k}: time {} in the HAR, {} by the client", g.time, w.time);
                }
            }
        }
        // In capture order: the times never go back.
        let times: Vec<f64> = data.iter().map(|m| m.time).collect();
        assert!(times.windows(2).all(|w| w[0] <= w[1]), "conn {n}: {times:?}");
        // The counters agree with the record.
        assert_eq!(ws["messages"].as_u64(), Some(want.len() as u64));
        assert_eq!(ws["kept"].as_u64(), Some(want.len() as u64));
        assert_eq!(ws["dropped"], 0);
        assert_eq!(ws["damaged"], 0);
        for (name, op) in [("text", 1), ("binary", 2), ("close", 8), ("ping", 9), ("pong", 10)] {
            let count = want.iter().filter(|r| r.opcode == op).count() as u64;
            assert_eq!(ws["byOpcode"][name].as_u64().unwrap_or(0), count, "conn {n}: {name}");
        }
        assert_eq!(ws["close"]["from"], "client");
        assert_eq!(ws["close"]["code"], 4000);
        assert_eq!(ws["close"]["reason"], "done here");
        assert_eq!(ws["protocol"], "chat.v1");
        match extensions[*n] {
            Some(x) => assert!(ws["extensions"].as_str().unwrap().contains(x), "conn {n}: {}", ws["extensions"]),
            None => assert!(ws.get("extensions").is_none()),
        }
        // A WebSocket is no tunnel: nothing is wrong with this entry.
        assert_eq!(e["_apitool"]["anomalies"].as_array().unwrap().len(), 0, "{}", e["_apitool"]["anomalies"]);
    }
    har
}

#[test]
fn a_gap_marks_its_message_and_the_framing_is_found_again() {
    let dir = tempfile::tempdir().unwrap();
    let summary = dir.path().join("s.json");
    let har = convert_to_json("ws-gap.pcap", &["--quiet", "--summary-json", summary.to_str().unwrap()]);
    let conns = by_conn(&har);
    let truth = recorded("ws-gap");
    let mut damaged = BTreeMap::new();
    let mut missing = BTreeMap::new();
    for (n, want) in &truth {
        let (data, control) = all_messages(&conns[n]);
        let mut d = 0;
        let mut lost = 0;
        for send in [true, false] {
            // Each undamaged message is the next recorded one of its direction, or a later one
            // (messages lost whole are missing); a damaged one stands for the next.
            let got: Vec<&Ours> = data.iter().chain(&control).filter(|m| m.send == send).collect();
            let mut want: Vec<&Recorded> = want.iter().filter(|r| r.send == send).collect();
            want.sort_by(|a, b| a.time.total_cmp(&b.time));
            let mut got = got;
            got.sort_by(|a, b| a.time.total_cmp(&b.time));
            let mut at = 0;
            for g in got {
                if g.damaged {
                    d += 1;
                    assert!(g.data.len() < want[at].len || g.opcode == 0, "conn {n}: a damaged message holds less than was sent: {g:?}");
                    at += 1;
                    continue;
                }
                let Some(k) = want[at..].iter().position(|w| matches(g, w)) else {
                    panic!("conn {n}: {g:?} is no message the client recorded (after message {at} of its direction)");
                };
                lost += k;
                at += k + 1;
            }
            lost += want.len() - at;
        }
        damaged.insert(*n, d);
        missing.insert(*n, lost);
    }
    // Connection 0: a segment of a compressed message; connection 2: a segment inside a
    // payload, and one with a frame header (that message is lost whole, the framing found
    // again); connection 1 is intact.
    assert_eq!((damaged[&0], damaged[&1], damaged[&2]), (1, 0, 1), "damaged per connection");
    assert_eq!((missing[&0], missing[&1], missing[&2]), (0, 0, 1), "messages missing per connection");
    for n in [0, 2] {
        let e = &conns[&n];
        let anomalies: Vec<&str> = e["_apitool"]["anomalies"].as_array().unwrap().iter().map(|a| a.as_str().unwrap()).collect();
        assert!(anomalies.iter().any(|a| a.contains("websocket frames") && a.contains("missing from the capture")), "{anomalies:?}");
        assert_eq!(e["_apitool"]["webSocket"]["damaged"], 1);
    }
    let s: Value = serde_json::from_slice(&std::fs::read(&summary).unwrap()).unwrap();
    let http = &s["inputs"][0]["http"];
    assert_eq!(http["ws_connections"], 3);
    assert_eq!(http["ws_messages_damaged"], 2);
    assert!(http["ws_resyncs"].as_u64().unwrap() >= 1, "{http}");
}

#[test]
fn max_messages_caps_what_is_kept_and_counts_the_rest() {
    let full = by_conn(&convert_to_json("ws.pcap", &["--quiet"]));
    let capped = by_conn(&convert_to_json("ws.pcap", &["--quiet", "--max-messages", "5"]));
    for (n, e) in &capped {
        let ws = &e["_apitool"]["webSocket"];
        let total = full[n]["_apitool"]["webSocket"]["messages"].as_u64().unwrap();
        assert_eq!(ws["messages"].as_u64(), Some(total));
        assert_eq!(ws["kept"], 5);
        assert_eq!(ws["dropped"].as_u64(), Some(total - 5));
        assert_eq!(ws["droppedBy"], "--max-messages");
        assert_eq!(ws["byOpcode"], full[n]["_apitool"]["webSocket"]["byOpcode"], "counted over all of them");
        assert_eq!(ws["close"], full[n]["_apitool"]["webSocket"]["close"], "the close is known past the cap");
        // The first five of the connection are kept (all data messages: they come first).
        let kept = e["_webSocketMessages"].as_array().unwrap();
        assert_eq!(kept.len() + ws["control"].as_array().unwrap().len(), 5);
        assert_eq!(kept[..], full[n]["_webSocketMessages"].as_array().unwrap()[..kept.len()]);
    }
    // The same cap on server-sent events.
    let sse = convert_to_json("sse.pcap", &["--quiet", "--max-messages", "5"]);
    let streams: Vec<&Value> =
        sse["log"]["entries"].as_array().unwrap().iter().filter(|e| e["request"]["url"].as_str().unwrap().contains("/events")).collect();
    assert_eq!(streams.len(), 2);
    let dropped: Vec<u64> = streams.iter().map(|e| e["_apitool"]["eventsDropped"].as_u64().unwrap()).collect();
    assert!(streams.iter().all(|e| e["_apitool"]["events"].as_array().unwrap().len() == 5));
    assert_eq!(dropped, vec![12 - 5, 8 - 5], "the recording has 12 and 8 events");
}

#[test]
fn max_body_truncates_a_message_and_flags_it() {
    let har = convert_to_json("ws.pcap", &["--quiet", "--max-body", "1000"]);
    let truth = recorded("ws");
    for (n, e) in by_conn(&har) {
        let (data, _) = all_messages(&e);
        let want: Vec<&Recorded> = truth[&n].iter().filter(|r| !is_control(r.opcode)).collect();
        for send in [true, false] {
            let got: Vec<&Ours> = data.iter().filter(|m| m.send == send).collect();
            let want: Vec<&&Recorded> = want.iter().filter(|r| r.send == send).collect();
            assert_eq!(got.len(), want.len());
            for (g, w) in got.iter().zip(&want) {
                if w.len > 1000 {
                    assert_eq!(g.truncated, Some(w.len as u64), "conn {n}: {g:?}");
                    assert_eq!(g.data.len(), 1000);
                } else {
                    assert!(matches(g, w) && g.truncated.is_none());
                }
            }
        }
        assert_eq!(e["_apitool"]["webSocket"]["truncated"], 4, "two 30 KB messages each way");
    }
}

/// The client's record of the wss session is the ws session's (its handshakes are the same
/// three connections), and its key log has each connection's secrets.
#[test]
fn the_wss_recording_is_complete() {
    let truth = recorded("wss");
    let plain = recorded("ws");
    assert_eq!(truth.len(), 3);
    for (n, msgs) in &truth {
        let strip = |v: &[Recorded]| v.iter().map(|r| (r.send, r.opcode, r.len)).collect::<Vec<_>>();
        assert_eq!(strip(msgs), strip(&plain[n]), "conn {n}: the same session as ws");
    }
    let keys = std::fs::read_to_string(testdata().join("wss.keys")).unwrap();
    assert_eq!(keys.lines().filter(|l| l.starts_with("CLIENT_TRAFFIC_SECRET_0 ")).count(), 3);
    assert!(Path::new(&testdata().join("wss.truth.tsv")).is_file());
}

/// The records of a legacy little-endian microsecond pcap: (time in µs, header and data).
fn records(file: &[u8]) -> Vec<(i64, Vec<u8>)> {
    let mut out = Vec::new();
    let mut at = 24;
    while at + 16 <= file.len() {
        let u = |o: usize| u32::from_le_bytes(file[at + o..at + o + 4].try_into().unwrap()) as i64;
        let len = u(8) as usize;
        out.push((u(0) * 1_000_000 + u(4), file[at..at + 16 + len].to_vec()));
        at += 16 + len;
    }
    out
}

/// A WebSocket open while other exchanges start and end does not hold them back past the
/// order window: they are written first, and the handshake entry, written when its connection
/// ends, is marked late. (`keepalive.pcap`, moved to start 5 ms after `ws.pcap`'s first
/// connection, merged with it; one-millisecond order window, windows of 4 frames.)
#[test]
fn an_open_websocket_does_not_hold_back_the_output() {
    use apitool::capture::Input;
    use apitool::pipeline::{Config, Converter};
    let ws = std::fs::read(testdata().join("ws.pcap")).unwrap();
    let other = std::fs::read(testdata().join("keepalive.pcap")).unwrap();
    let (a, mut b) = (records(&ws), records(&other));
    let shift = a[0].0 + 5_000 - b[0].0;
    for (t, rec) in &mut b {
        *t += shift;
        rec[..4].copy_from_slice(&((*t / 1_000_000) as u32).to_le_bytes());
        rec[4..8].copy_from_slice(&((*t % 1_000_000) as u32).to_le_bytes());
    }
    let mut all: Vec<(i64, Vec<u8>)> = a.into_iter().chain(b).collect();
    all.sort_by_key(|r| r.0);
    let mut file = ws[..24].to_vec();
    for (_, r) in &all {
        file.extend_from_slice(r);
    }
    // Within the order window (a minute), the open WebSocket holds the later entries back: it
    // is reported in progress from its start, and comes out in its place, not late.
    let conv = Converter::new(Config { threads: 1, window_frames: 4, order_window_ns: 60_000_000_000, ..Config::default() });
    let input = Input::Stream(Box::new(std::io::Cursor::new(file.clone())));
    let (summary, har) = conv.convert(input, "merged", Vec::new(), &mut |_| {}).unwrap();
    let har: Value = serde_json::from_slice(&har).unwrap();
    assert_eq!(summary.entries_out_of_order, 0);
    assert!(har["log"]["entries"][0]["request"]["url"].as_str().unwrap().ends_with("conn=0"));
    // With a window of a millisecond, it does not.
    let conv = Converter::new(Config { threads: 1, window_frames: 4, order_window_ns: 1_000_000, ..Config::default() });
    let input = Input::Stream(Box::new(std::io::Cursor::new(file)));
    let (summary, har) = conv.convert(input, "merged", Vec::new(), &mut |_| {}).unwrap();
    let har: Value = serde_json::from_slice(&har).unwrap();
    let entries = har["log"]["entries"].as_array().unwrap();
    let urls: Vec<&str> = entries.iter().map(|e| e["request"]["url"].as_str().unwrap()).collect();
    let ws0 = urls.iter().position(|u| u.ends_with("conn=0")).unwrap();
    let others: Vec<usize> = (0..urls.len()).filter(|&i| urls[i].contains(":8080/")).collect();
    assert_eq!(others.len(), 4, "{urls:?}");
    // Those that ended while the WebSocket was open come out before it, although they started
    // after it (the last may end after it).
    let start = |i: usize| parse_iso8601(entries[i]["startedDateTime"].as_str().unwrap());
    assert!(others.iter().all(|&i| start(i) > start(ws0)));
    assert!(others.iter().filter(|&&i| i < ws0).count() >= 2, "the keepalive entries are not held back by the WebSocket: {urls:?}");
    assert_eq!(entries[ws0]["_apitool"]["writtenLate"], true);
    assert_eq!(entries[ws0]["_webSocketMessages"].as_array().unwrap().len(), 24, "all its messages, all the same");
    assert!(others.iter().all(|&i| entries[i]["_apitool"].get("writtenLate").is_none()));
    assert!(summary.entries_out_of_order >= 1);
}
