//! The recorded HTTP/2 captures against tshark, an independent HTTP/2 and HPACK decoder:
//! every stream tshark sees a HEADERS frame on (connection, stream id, `:method`,
//! `:authority` + `:path`, `:status`) is an entry of ours with the same facts, and we have no
//! stream it does not see. Skipped when tshark is not installed.

mod common;

use std::collections::BTreeMap;
use std::io::Write as _;
use std::process::Command;

use serde_json::Value;

use common::*;

/// What is known of one stream: method, URL, final status.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct Facts {
    method: Option<String>,
    url: Option<String>,
    status: Option<u64>,
}

/// (tshark's TCP stream number, HTTP/2 stream id) -> facts, from tshark's decoding.
fn tshark_streams(file: &str, decode_as: &str) -> BTreeMap<(u64, u64), Facts> {
    let o = Command::new("tshark")
        .arg("-r")
        .arg(testdata().join(file))
        .args(["-d", decode_as, "-Y", "http2.type == 1", "-T", "json", "--no-duplicate-keys"])
        .output()
        .expect("running tshark");
    assert!(o.status.success(), "tshark failed: {}", String::from_utf8_lossy(&o.stderr));
    let packets: Value = serde_json::from_slice(&o.stdout).expect("tshark json");
    let mut out: BTreeMap<(u64, u64), Facts> = BTreeMap::new();
    for p in packets.as_array().expect("packets") {
        let layers = &p["_source"]["layers"];
        let conn: u64 = layers["tcp"]["tcp.stream"].as_str().unwrap().parse().unwrap();
        for h2 in list(&layers["http2"]) {
            for s in list(&h2["http2.stream"]) {
                if s["http2.type"] != "1" {
                    continue;
                }
                let sid: u64 = s["http2.streamid"].as_str().unwrap().parse().unwrap();
                let mut fields = BTreeMap::new();
                for h in list(&s["http2.header"]) {
                    let name = h["http2.header.name"].as_str().unwrap_or_default().to_string();
                    let value = h["http2.header.value"].as_str().unwrap_or_default().to_string();
                    fields.entry(name).or_insert(value);
                }
                let f = out.entry((conn, sid)).or_default();
                if let Some(m) = fields.get(":method") {
                    f.method = Some(m.clone());
                    let scheme = fields.get(":scheme").cloned().unwrap_or_default();
                    let auth = fields.get(":authority").cloned().unwrap_or_default();
                    f.url = Some(format!("{scheme}://{auth}{}", fields.get(":path").cloned().unwrap_or_default()));
                }
                if let Some(st) = fields.get(":status").and_then(|s| s.parse::<u64>().ok())
                    && st >= 200
                {
                    f.status = Some(st);
                }
            }
        }
    }
    out
}

/// The same from our HAR: connections ranked by their first frame, as tshark numbers them.
/// The upgraded stream 1 has an HTTP/1.1 request: only its status is compared.
fn our_streams(file: &str) -> BTreeMap<(u64, u64), Facts> {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.har");
    convert(file, &out, &["-q"]);
    let har = read_har(&std::fs::read(&out).unwrap(), file);
    let entries = har["log"]["entries"].as_array().unwrap();
    let mut conns: Vec<u64> = entries.iter().map(|e| e["_apitool"]["flow"].as_u64().unwrap()).collect();
    conns.sort_unstable();
    conns.dedup();
    let mut m = BTreeMap::new();
    for e in entries {
        let x = &e["_apitool"];
        assert!(x["anomalies"].as_array().unwrap().is_empty(), "{file}: {x}");
        let rank = conns.iter().position(|&c| c == x["flow"].as_u64().unwrap()).unwrap() as u64;
        let sid = x["h2"]["streamId"].as_u64().expect("an HTTP/2 entry");
        let upgraded = x["h2"]["upgraded"] == true;
        let f = Facts {
            method: (!upgraded).then(|| e["request"]["method"].as_str().unwrap().to_string()),
            url: (!upgraded).then(|| e["request"]["url"].as_str().unwrap().to_string()),
            status: Some(e["response"]["status"].as_u64().unwrap()),
        };
        assert!(m.insert((rank, sid), f).is_none(), "{file}: stream {sid} twice");
    }
    m
}

#[test]
fn tshark_sees_the_same_streams() {
    if !tshark_available() {
        let _ = writeln!(std::io::stderr(), "notice: tshark not installed: skipping");
        return;
    }
    for (file, decode_as, streams) in [("h2c-prior.pcap", "tcp.port==8082,http2", 11), ("h2c-upgrade.pcap", "tcp.port==8083,http", 4)] {
        let theirs = tshark_streams(file, decode_as);
        let ours = our_streams(file);
        assert_eq!(ours.len(), streams, "{file}: {ours:#?}");
        assert_eq!(ours, theirs, "{file}");
    }
}
