//! Every capture of `testdata/` that has a truth file, converted by the built binary and
//! compared with that truth (written by the client that made the traffic, see
//! `testdata/README.md`), plus the timing rules of the HAR entries, a check of every HAR
//! against the HAR 1.2 schema (npm `har-validator`, when installed), and determinism over
//! thread counts and standard input.
//!
//! Rows without damage tags must match exactly: method, absolute URL, final status, request
//! body and decoded response body (length and SHA-256). Every entry we write must be one of the
//! truth's exchanges. Damaged rows (`gap`, `midstream`, `truncated`, `snaplen`) may be missing;
//! when present they must carry an anomaly, and how many are present is held to a floor per
//! capture.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::path::PathBuf;

use serde_json::Value;

use common::*;

/// Damaged truth rows that we output (flagged with an anomaly), per capture: the level reached
/// so far. Raise a number when recovery improves; never lower one. Every capture with damaged
/// rows must be listed.
const DAMAGED_FLOOR: &[(&str, usize)] = &[
    // The capture starts inside users.json's chunked gzip response: nothing of it is output
    // (the resynchronisation skips its tail). logo.bin and style.css after it are complete.
    ("midstream", 0),
    // logo.bin (Content-Length 12000) lost a segment: it is output with a gap anomaly and the
    // 4095 bytes before the hole; style.css after it is complete.
    ("missing-segment", 1),
    // The head of the second of three pipelined responses is lost: POST /echo is output
    // without a response, and the third response stays on its own request.
    ("pipelined-gap", 1),
    // Frames cut to 200 bytes: the four exchanges are output with their heads (method, URL,
    // status) and gap anomalies, without bodies.
    ("snaplen", 4),
    // The file ends inside the record of style.css's response: the request is output, flagged
    // "no response".
    ("truncated-file", 1),
    // Segments of the WebSocket messages of connections 0 and 2 are lost: both handshakes are
    // output with their messages, the gaps as anomalies (tests/websocket.rs checks the messages).
    ("ws-gap", 2),
    // HTTP/2 from the middle of a connection of eight streams: the requests' HEADERS and
    // both HPACK tables are missing. The five responses whose HEADERS are captured are output
    // (no request; nginx indexes nothing in them, so they decode); the three begun before
    // the capture are not.
    ("h2c-midstream", 5),
];

/// Anomalies that do not mean the exchange lost bytes (the pipeline's `is_damaged` agrees).
fn is_damage_anomaly(a: &str) -> bool {
    a != "connection became a tunnel" && a != "connection started before the capture" && !a.contains("read leniently")
}

/// One HAR entry, as the comparison needs it.
#[derive(Debug)]
struct Ours {
    /// Position in the file.
    pos: usize,
    conn: String,
    exchange: u64,
    method: String,
    url: String,
    status: u16,
    req_body: Option<Vec<u8>>,
    resp_body: Vec<u8>,
    content_size: i64,
    anomalies: Vec<String>,
}

impl Ours {
    fn from_entry(pos: usize, e: &Value, what: &str) -> Ours {
        let x = &e["_apitool"];
        let conn = e["connection"].as_str().unwrap_or_else(|| panic!("{what}: entry {pos} has no connection")).to_string();
        assert_eq!(x["flow"].as_u64().map(|f| f.to_string()).as_deref(), Some(conn.as_str()), "{what}: entry {pos}: _apitool.flow");
        Ours {
            pos,
            conn,
            exchange: x["exchange"].as_u64().unwrap_or_else(|| panic!("{what}: entry {pos}: _apitool.exchange")),
            // A response without its request has a placeholder method: no method at all here.
            method: if x["noRequest"] == true { String::new() } else { e["request"]["method"].as_str().unwrap_or_default().to_string() },
            url: e["request"]["url"].as_str().unwrap_or_default().to_string(),
            status: e["response"]["status"].as_u64().unwrap_or_else(|| panic!("{what}: entry {pos}: status")) as u16,
            req_body: e["request"].get("postData").map(|p| har_text_bytes(p).unwrap_or_default()),
            resp_body: har_text_bytes(&e["response"]["content"]).unwrap_or_default(),
            content_size: e["response"]["content"]["size"].as_i64().unwrap_or(-1),
            anomalies: x["anomalies"]
                .as_array()
                .unwrap_or_else(|| panic!("{what}: entry {pos}: _apitool.anomalies"))
                .iter()
                .map(|a| a.as_str().unwrap_or_default().to_string())
                .collect(),
        }
    }

    fn damage(&self) -> bool {
        self.anomalies.iter().any(|a| is_damage_anomaly(a))
    }

    /// Whether this entry can be the exchange of a truth row, judging by what identifies it.
    fn could_be(&self, r: &TruthRow) -> bool {
        if self.method.is_empty() {
            // A response without its request: only a damaged row can explain it.
            r.damaged() && self.damage()
        } else {
            self.method == r.method && self.url == r.expected_url()
        }
    }

    /// The differences from a truth row, field by field.
    fn diff(&self, r: &TruthRow) -> Vec<String> {
        let mut d = Vec::new();
        if self.method != r.method {
            d.push(format!("method {:?}, truth {:?}", self.method, r.method));
        }
        if self.url != r.expected_url() {
            d.push(format!("url {:?}, truth {:?}", self.url, r.expected_url()));
        }
        if Some(self.status) != r.status {
            d.push(format!("status {}, truth {:?}", self.status, r.status));
        }
        let body = |got: Option<&[u8]>, want: &Option<(u64, String)>, what: &str, d: &mut Vec<String>| match (got, want) {
            (None, None) => {}
            (Some([]), None) => {}
            (Some(b), None) => d.push(format!("{what} of {} bytes, truth has none", b.len())),
            (None, Some((len, _))) => d.push(format!("no {what}, truth has {len} bytes")),
            (Some(b), Some((len, sha))) => {
                if b.len() as u64 != *len || sha256_hex(b) != *sha {
                    d.push(format!("{what}: {} bytes sha256 {}, truth {len} bytes sha256 {sha}", b.len(), sha256_hex(b)));
                }
            }
        };
        body(self.req_body.as_deref(), &r.req_body, "request body", &mut d);
        body(Some(&self.resp_body), &r.resp_body, "response body", &mut d);
        if self.content_size != self.resp_body.len() as i64 {
            d.push(format!("content.size {} but the decoded text has {} bytes", self.content_size, self.resp_body.len()));
        }
        d
    }
}

/// Matches entries to the rows of one truth connection, in order: for each entry, its position
/// in `rows`, or `None` when it is none of the rows left.
fn align(entries: &[&Ours], rows: &[&TruthRow]) -> Vec<Option<usize>> {
    let mut next = 0;
    entries
        .iter()
        .map(|e| {
            let j = (next..rows.len()).find(|&j| e.could_be(rows[j]))?;
            next = j + 1;
            Some(j)
        })
        .collect()
}

#[derive(Default)]
struct Tally {
    rows: usize,
    damaged: usize,
    entries: usize,
    exact: usize,
    damaged_present: usize,
    damaged_complete: usize,
    conns_truth: usize,
    conns_ours: usize,
}

/// Checks one converted capture against its truth; returns the tally, pushes failures.
fn check_capture(cap: &Capture, har: &Value, fail: &mut Vec<String>) -> Tally {
    let name = &cap.name;
    let rows = read_truth(&cap.truth);
    let entries: Vec<Ours> =
        har["log"]["entries"].as_array().expect("entries").iter().enumerate().map(|(i, e)| Ours::from_entry(i, e, name)).collect();
    let mut t =
        Tally { rows: rows.len(), damaged: rows.iter().filter(|r| r.damaged()).count(), entries: entries.len(), ..Tally::default() };

    // Truth connections and our connections, each in order.
    let mut truth_conns: BTreeMap<usize, Vec<&TruthRow>> = BTreeMap::new();
    for r in &rows {
        truth_conns.entry(r.conn).or_default().push(r);
    }
    let mut our_conns: BTreeMap<(u64, String), Vec<&Ours>> = BTreeMap::new();
    for e in &entries {
        let id: u64 = e.conn.parse().unwrap_or_else(|_| panic!("{name}: connection id {:?} is not a number", e.conn));
        our_conns.entry((id, e.conn.clone())).or_default().push(e);
    }
    for list in our_conns.values_mut() {
        list.sort_by_key(|e| e.exchange);
        let idx: Vec<u64> = list.iter().map(|e| e.exchange).collect();
        if idx.windows(2).any(|w| w[0] == w[1]) {
            fail.push(format!("{name}: connection {}: exchange numbers repeat: {idx:?}", list[0].conn));
        }
    }
    t.conns_truth = truth_conns.len();
    t.conns_ours = our_conns.len();

    // Each of our connections is one truth connection. Both are numbered in opening order,
    // so the pairing keeps that order; among such pairings, the one that explains the most
    // entries is taken (dynamic programming over the two lists, like a longest common
    // subsequence weighted by how many entries of a connection fit the truth's).
    let ours_list: Vec<(&String, &Vec<&Ours>)> = our_conns.iter().map(|((_, id), l)| (id, l)).collect();
    let truth_list: Vec<(usize, &Vec<&TruthRow>)> = truth_conns.iter().map(|(c, l)| (*c, l)).collect();
    let (n, m) = (ours_list.len(), truth_list.len());
    let aligned: Vec<Vec<Vec<Option<usize>>>> =
        ours_list.iter().map(|(_, l)| truth_list.iter().map(|(_, rows)| align(l, rows)).collect()).collect();
    let score = |i: usize, j: usize| aligned[i][j].iter().flatten().count();
    let mut best = vec![vec![0usize; m + 1]; n + 1];
    for i in 1..=n {
        for j in 1..=m {
            best[i][j] = best[i - 1][j].max(best[i][j - 1]).max(best[i - 1][j - 1] + score(i - 1, j - 1));
        }
    }
    let mut pairs: Vec<Option<usize>> = vec![None; n]; // our connection -> truth connection (index)
    let (mut i, mut j) = (n, m);
    while i > 0 && j > 0 {
        if best[i][j] == best[i - 1][j] {
            i -= 1;
        } else if best[i][j] == best[i][j - 1] {
            j -= 1;
        } else {
            pairs[i - 1] = Some(j - 1);
            i -= 1;
            j -= 1;
        }
    }
    let mut matched: BTreeMap<(usize, usize), &Ours> = BTreeMap::new(); // (conn, position in conn) -> entry
    for (i, (id, list)) in ours_list.iter().enumerate() {
        for (k, e) in list.iter().enumerate() {
            match pairs[i].and_then(|j| aligned[i][j][k].map(|p| (truth_list[j].0, p))) {
                Some(key) => {
                    matched.insert(key, e);
                }
                None => fail.push(format!(
                    "{name}: entry {} ({} {} -> {}, connection {id}) is no exchange of the truth (invented, out of order, or its connection split or merged)",
                    e.pos, e.method, e.url, e.status
                )),
            }
        }
    }

    // Row by row.
    for (c, list) in &truth_conns {
        let handshake = !list.iter().any(|r| r.has_note("midstream"));
        for (p, r) in list.iter().enumerate() {
            let row = format!("{name}:{} (conn {c}, {} {})", r.line, r.method, r.url);
            // TLS: a connection whose key the key log lacks has no exchanges; HTTP/2 is not
            // parsed yet (its rows may be missing, and must be right when present).
            if r.has_note("nokey") {
                if let Some(e) = matched.get(&(*c, p)) {
                    fail.push(format!("{row}: its key is not in the key log, yet entry {} has it", e.pos));
                }
                continue;
            }
            let Some(e) = matched.get(&(*c, p)) else {
                if !r.damaged() && !r.has_note("h2") {
                    fail.push(format!("{row}: missing from our HAR"));
                }
                continue;
            };
            let diffs = e.diff(r);
            if r.damaged() {
                t.damaged_present += 1;
                if diffs.is_empty() {
                    t.damaged_complete += 1;
                }
                if !e.damage() {
                    fail.push(format!("{row}: damaged in the capture ({}) but entry {} has no anomaly", r.notes.join(";"), e.pos));
                }
            } else {
                if diffs.is_empty() {
                    t.exact += 1;
                } else {
                    for d in diffs {
                        fail.push(format!("{row}: entry {}: {d}", e.pos));
                    }
                }
                for a in &e.anomalies {
                    let tunnel = r.notes.iter().any(|n| n == "tunnel" || n.starts_with("upgrade"));
                    let allowed = (a == "connection became a tunnel" && tunnel)
                        // Said of the first exchange seen on a connection the capture joined
                        // late, even when that exchange itself is complete.
                        || (a == "connection started before the capture" && !handshake);
                    if !allowed {
                        fail.push(format!("{row}: complete in the capture, but entry {} has the anomaly {a:?}", e.pos));
                    }
                }
            }
            // The connect time belongs to the first exchange of a connection whose handshake
            // is in the capture, and to no other.
            let entry = &har["log"]["entries"][e.pos];
            let connect = micros(&entry["timings"]["connect"]);
            let want_connect = handshake && p == 0 && !e.method.is_empty();
            if want_connect != (connect >= 0) {
                fail.push(format!(
                    "{row}: timings.connect is {} but {}",
                    entry["timings"]["connect"],
                    if want_connect {
                        "the handshake of its connection is in the capture"
                    } else {
                        "it is not the connection's first exchange after a captured handshake"
                    }
                ));
            }
        }
    }

    // Connections: the rows of one truth connection share one HAR connection, different
    // truth connections have different ones.
    let mut ids_per_conn: BTreeMap<usize, BTreeSet<&str>> = BTreeMap::new();
    for ((c, _), e) in &matched {
        ids_per_conn.entry(*c).or_default().insert(e.conn.as_str());
    }
    let mut seen: BTreeMap<&str, usize> = BTreeMap::new();
    for (c, ids) in &ids_per_conn {
        if ids.len() != 1 {
            fail.push(format!("{name}: truth connection {c} is split over HAR connections {ids:?}"));
        }
        for id in ids {
            if let Some(other) = seen.insert(id, *c) {
                fail.push(format!("{name}: truth connections {other} and {c} share HAR connection {id}"));
            }
        }
    }
    t
}

/// Entries known to end (start + time) after their last frame: (capture, entry, why). The
/// check reports them instead of failing; remove an entry from here once it is fixed.
const KNOWN_LATE_END: &[(&str, usize, &str)] = &[];

/// The timing rules of every entry of a HAR; `frames` are the capture's frame timestamps (ns).
/// Returns notes on first exchanges whose timings leave part of the exchange uncovered.
fn check_timings(name: &str, har: &Value, frames: &[Option<i64>], fail: &mut Vec<String>) -> Vec<String> {
    let mut notes = Vec::new();
    let mut prev: Option<(i64, &str)> = None;
    for (i, e) in har["log"]["entries"].as_array().expect("entries").iter().enumerate() {
        let t = &e["timings"];
        let get = |k: &str| micros(&t[k]);
        let (blocked, dns, connect, send, wait, receive, ssl) =
            (get("blocked"), get("dns"), get("connect"), get("send"), get("wait"), get("receive"), get("ssl"));
        for (k, v) in [("blocked", blocked), ("dns", dns), ("connect", connect), ("ssl", ssl)] {
            if v < -1 {
                fail.push(format!("{name}: entry {i}: timings.{k} is {v} µs"));
            }
        }
        for (k, v) in [("send", send), ("wait", wait), ("receive", receive)] {
            if v < 0 {
                fail.push(format!("{name}: entry {i}: timings.{k} is {} (must be >= 0)", t[k]));
            }
        }
        // HAR 1.2: time is the sum of the phases that apply; ssl is part of connect (and is -1
        // here: no TLS is decoded), so it is not added again.
        if ssl != -1 && (connect < 0 || ssl > connect) {
            fail.push(format!("{name}: entry {i}: timings.ssl {ssl} µs is not within connect {connect} µs"));
        }
        let sum: i64 = [blocked, dns, connect, send, wait, receive].iter().filter(|v| **v != -1).sum();
        let time = micros(&e["time"]);
        if time != sum {
            fail.push(format!("{name}: entry {i}: time is {} ms but the timings add up to {}.{:03} ms", e["time"], sum / 1000, sum % 1000));
        }
        let started = e["startedDateTime"].as_str().unwrap_or_default();
        let at = parse_iso8601(started);
        if let Some((p, ps)) = prev
            && at < p
        {
            fail.push(format!("{name}: entry {i}: startedDateTime {started} is before the previous entry's {ps}"));
        }
        prev = Some((at, started));

        // Against the capture's own timestamps (read by the test, not by apitool): an entry
        // starts at its first frame, or before it at the SYN when it carries the connect time,
        // and ends (start + time) at its last frame.
        let x = &e["_apitool"];
        let frame_us = |k: &str| -> Option<i64> {
            let n = x[k].as_u64()? as usize;
            frames.get(n.checked_sub(1)?).copied().flatten().map(|ns| ns.div_euclid(1000))
        };
        let (Some(first), Some(last)) = (frame_us("firstFrame"), frame_us("lastFrame")) else {
            fail.push(format!("{name}: entry {i}: _apitool.firstFrame/lastFrame name no frame of the capture"));
            continue;
        };
        // Each phase is a whole number of microseconds, truncated from nanoseconds.
        const SLACK_US: i64 = 3;
        let end = at + time;
        if connect == -1 {
            if at != first {
                fail.push(format!("{name}: entry {i}: starts at {started}, its first frame {} µs later", first - at));
            }
            if (end - last).abs() > SLACK_US {
                fail.push(format!("{name}: entry {i}: start + time is {} µs off its last frame", end - last));
            }
        } else {
            if at > first || at + connect > first {
                fail.push(format!("{name}: entry {i}: start {started} + connect {connect} µs is after its first frame"));
            }
            if end > last + SLACK_US {
                let msg = format!("{name}: entry {i}: start + time is {} µs after its last frame", end - last);
                match KNOWN_LATE_END.iter().find(|(n, k, _)| *n == name && *k == i) {
                    Some((_, _, why)) => notes.push(format!("{msg} (known: {why})")),
                    None => fail.push(msg),
                }
            } else if last - end > SLACK_US {
                fail.push(format!(
                    "{name}: entry {i}: start + time ends {} µs before its last frame: part of the exchange is in no timing",
                    last - end
                ));
            }
        }
    }
    notes
}

#[test]
fn captures_match_their_truth() {
    let dir = tempfile::tempdir().unwrap();
    let caps = captures_with_truth();
    let floors: BTreeMap<&str, usize> = DAMAGED_FLOOR.iter().copied().collect();
    let mut fail = Vec::new();
    let mut table = String::new();
    let _ = writeln!(
        table,
        "{:<16} {:>4} {:>4} {:>4} {:>5} {:>5}  {:>9} {:>5} {:>5}",
        "capture", "rows", "dmg", "ours", "exact", "conns", "dmg found", "floor", "full"
    );
    let mut hars = Vec::new();
    let mut timing_notes = Vec::new();
    for cap in &caps {
        let out = dir.path().join(format!("{}.har", cap.name));
        let summary_path = dir.path().join(format!("{}.summary.json", cap.name));
        let mut args = vec!["--quiet", "--threads", "2", "--summary-json", summary_path.to_str().unwrap()];
        // A TLS capture's key log beside it (`NAME.keys`).
        let keys = format!("testdata/{}.keys", cap.name);
        if testdata().join(format!("{}.keys", cap.name)).is_file() {
            args.extend(["--keylog", keys.as_str()]);
        }
        convert(&cap.file, &out, &args);
        let bytes = std::fs::read(&out).unwrap();
        let har = read_har(&bytes, &cap.name);
        let t = check_capture(cap, &har, &mut fail);
        let capture = std::fs::read(testdata().join(&cap.file)).unwrap();
        timing_notes.extend(check_timings(&cap.name, &har, &frame_times(&capture), &mut fail));

        // The summary agrees with the HAR and with the capture.
        let summary: Value = serde_json::from_slice(&std::fs::read(&summary_path).unwrap()).unwrap();
        let s = &summary["inputs"][0];
        let frames = count_frames(&capture);
        let damaged_entries = har["log"]["entries"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["_apitool"]["anomalies"].as_array().unwrap().iter().any(|a| is_damage_anomaly(a.as_str().unwrap())))
            .count();
        for (what, got, want) in [
            ("entries", s["entries"].as_u64(), t.entries as u64),
            ("frames", s["frames"].as_u64(), frames),
            ("entries_with_anomalies", s["entries_with_anomalies"].as_u64(), damaged_entries as u64),
        ] {
            if got != Some(want) {
                fail.push(format!("{}: summary {what} is {got:?}, expected {want}", cap.name));
            }
        }
        if s["tcp"]["flows"].as_u64() != Some(t.conns_truth as u64) {
            fail.push(format!("{}: summary tcp.flows is {}, the truth has {} connections", cap.name, s["tcp"]["flows"], t.conns_truth));
        }

        let floor = floors.get(cap.name.as_str()).copied();
        match floor {
            None if t.damaged > 0 => fail.push(format!("{}: has damaged rows but no floor in DAMAGED_FLOOR", cap.name)),
            Some(f) if t.damaged_present < f => {
                fail.push(format!("{}: {} damaged rows recovered, the floor is {f}", cap.name, t.damaged_present))
            }
            _ => {}
        }
        let _ = writeln!(
            table,
            "{:<16} {:>4} {:>4} {:>4} {:>5} {:>2}/{:<2}  {:>4} of {:<2} {:>5} {:>5}",
            cap.name,
            t.rows,
            t.damaged,
            t.entries,
            t.exact,
            t.conns_ours,
            t.conns_truth,
            t.damaged_present,
            t.damaged,
            floor.map_or("-".into(), |f| f.to_string()),
            t.damaged_complete
        );
        hars.push(out);
    }
    for name in floors.keys() {
        if !caps.iter().any(|c| c.name == *name) {
            fail.push(format!("DAMAGED_FLOOR names {name}, which is not a capture with a truth file"));
        }
    }
    println!("{table}");
    println!(
        "(exact: rows without damage tags that match; dmg found: damaged rows output with an anomaly; full: of those, how many match the truth anyway)"
    );
    if !timing_notes.is_empty() {
        println!("\nknown timing gaps:\n  {}", timing_notes.join("\n  "));
    }
    fail.extend(har_validation_errors(&hars));
    assert!(fail.is_empty(), "{} mismatches with the truth:\n  {}", fail.len(), fail.join("\n  "));
}

#[test]
fn har_validator_rejects_an_invalid_har() {
    // A validator that accepts everything would make the schema check above worthless.
    let Some(v) = har_validator() else { return };
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("good.har");
    let bad = dir.path().join("bad.har");
    std::fs::write(&good, br#"{"log":{"version":"1.2","creator":{"name":"t","version":"1"},"entries":[]}}"#).unwrap();
    // An entry without time, timings and response.
    std::fs::write(&bad, br#"{"log":{"version":"1.2","creator":{"name":"t","version":"1"},"entries":[{"startedDateTime":"2024-01-01T00:00:00Z","request":{"method":"GET","url":"http://a/","httpVersion":"HTTP/1.1","cookies":[],"headers":[],"queryString":[],"headersSize":-1,"bodySize":-1},"cache":{}}]}}"#).unwrap();
    v.check(std::slice::from_ref(&good)).expect("a minimal HAR is valid");
    let err = v.check(&[bad]).expect_err("an entry without time, response and timings is rejected");
    assert!(err.contains("time") || err.contains("response"), "the complaint names the missing field: {err}");
}

/// Captures converted with several thread counts.
const DETERMINISM: &[&str] = &[
    "concurrent.pcap",
    "keepalive.pcap",
    "pipelined.pcap",
    "two-interfaces.pcapng",
    "reordered.pcap",
    "missing-segment.pcap",
    "ipv4-fragments.pcap",
    "snaplen.pcap",
    "h2c-prior.pcap",
    "h2c-upgrade.pcap",
];

#[test]
fn thread_count_does_not_change_the_output() {
    let dir = tempfile::tempdir().unwrap();
    let mut hars: Vec<PathBuf> = Vec::new();
    for file in DETERMINISM {
        let mut first: Option<Vec<u8>> = None;
        for threads in ["1", "2", "4"] {
            let out = dir.path().join(format!("{file}.t{threads}.har"));
            convert(file, &out, &["--quiet", "--threads", threads]);
            let bytes = std::fs::read(&out).unwrap();
            match &first {
                None => first = Some(bytes),
                Some(f) => assert!(*f == bytes, "{file}: --threads {threads} gives other bytes than --threads 1"),
            }
            hars.push(out);
        }
    }
    validate_hars(&hars);
}

/// The HAR without its `log.comment` (which names the input: the file path, or `-`).
fn without_comment(har: &[u8]) -> Vec<u8> {
    let s = String::from_utf8(har.to_vec()).expect("a HAR is UTF-8");
    let start = s.find(",\"comment\":\"converted from ").expect("the envelope has a comment naming the input");
    let end = start + s[start..].find(",\"entries\":").expect("entries follow the comment");
    format!("{}{}", &s[..start], &s[end..]).into_bytes()
}

#[test]
fn standard_input_gives_the_same_har_as_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let mut hars = Vec::new();
    // A few captures only: reading a pipe is slow in debug builds (the stream reader zeroes
    // the rest of its window buffer before every read).
    for file in ["concurrent.pcap", "two-interfaces.pcapng", "truncated-file.pcap"] {
        let from_file = dir.path().join(format!("{file}.file.har"));
        convert(file, &from_file, &["--quiet"]);
        let from_stdin = dir.path().join(format!("{file}.stdin.har"));
        let capture = std::fs::read(testdata().join(file)).unwrap();
        let o = apitool_stdin(["convert", "-", "-o", from_stdin.to_str().unwrap(), "--quiet"], &capture);
        assert!(o.status.success(), "{file} on stdin: {}", stderr(&o));
        let (a, b) = (std::fs::read(&from_file).unwrap(), std::fs::read(&from_stdin).unwrap());
        assert!(String::from_utf8_lossy(&b).contains("\"comment\":\"converted from standard input by apitool\""), "{file}: stdin is named");
        assert!(without_comment(&a) == without_comment(&b), "{file}: stdin gives another HAR than the file path");

        if file == "concurrent.pcap" {
            // And to standard output.
            let o = apitool_stdin(["convert", "-", "-o", "-", "--quiet"], &capture);
            assert!(o.status.success(), "{file} stdin to stdout: {}", stderr(&o));
            assert!(o.stdout == b, "{file}: -o - writes the same bytes as -o FILE");
        }
        hars.push(from_file);
        hars.push(from_stdin);
    }
    validate_hars(&hars);
}

/// `sse.pcap`: two server-sent event streams (plain, then gzip flushed per event) recorded
/// while other requests ran on other connections. Every event the client read
/// (`sse.events.tsv`, its own parse and the time it received each event) is in
/// `_apitool.events` of its entry, in order, with type, data, id and retry, and a capture time
/// within 50 ms of the client's.
#[test]
fn server_sent_events_match_the_clients_record() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("sse.har");
    convert("sse.pcap", &out, &["--quiet"]);
    let har = read_har(&std::fs::read(&out).unwrap(), "sse");
    let streams: Vec<&Value> =
        har["log"]["entries"].as_array().unwrap().iter().filter(|e| e["request"]["url"].as_str().unwrap().contains("/events")).collect();
    assert_eq!(streams.len(), 2);
    let truth = std::fs::read_to_string(testdata().join("sse.events.tsv")).unwrap();
    let mut want: Vec<Vec<Vec<&str>>> = vec![Vec::new(), Vec::new()];
    for line in truth.lines().skip(1) {
        let f: Vec<&str> = line.split('\t').collect();
        want[f[0].parse::<usize>().unwrap()].push(f);
    }
    assert_eq!((want[0].len(), want[1].len()), (12, 8));
    for (entry, want) in streams.iter().zip(&want) {
        let got = entry["_apitool"]["events"].as_array().unwrap_or_else(|| panic!("no events in {entry}"));
        assert_eq!(got.len(), want.len());
        for (g, w) in got.iter().zip(want) {
            let data: String = serde_json::from_str(w[5]).unwrap();
            assert_eq!(g["event"], w[2]);
            assert_eq!(g["id"], w[3]);
            assert_eq!(g["data"], data.as_str());
            assert_eq!(g["retry"].as_u64(), w[4].parse::<u64>().ok());
            let (ours, client) = (g["time"].as_f64().unwrap(), w[1].parse::<f64>().unwrap());
            assert!((ours - client).abs() < 0.05, "event time {ours}, the client received it at {client}");
        }
        // No event comes before the response started or after it ended.
        let times: Vec<f64> = got.iter().map(|g| g["time"].as_f64().unwrap()).collect();
        assert!(times.windows(2).all(|w| w[0] <= w[1]), "{times:?}");
    }
}
