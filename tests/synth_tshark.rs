//! Cross-checks the synthetic capture generator against tshark: on clean
//! captures, tshark must see exactly the exchanges of the ground truth
//! (method, URL, status, request body and decoded response body digests)
//! and no bad checksum or warning-level expert info other than the
//! generator's deliberate RSTs. Skipped when tshark is not installed.

use std::collections::HashMap;
use std::path::Path;
use std::process::Command;

use apitool::synth::http::{hex, sha256};
use apitool::synth::pcap::LinkType;
use apitool::synth::{CaptureFormat, SynthConfig, TruthRecord, generate_to};
use serde_json::Value;

fn tshark_available() -> bool {
    Command::new("tshark").arg("-v").output().map(|o| o.status.success()).unwrap_or(false)
}

fn tshark(file: &Path, extra: &[&str]) -> Vec<u8> {
    let mut c = Command::new("tshark");
    c.arg("-r").arg(file).args([
        "-o",
        "tcp.desegment_tcp_streams:TRUE",
        "-o",
        "http.desegment_body:TRUE",
        "-o",
        "http.dechunk_body:TRUE",
        "-o",
        "http.decompress_body:TRUE",
        "-o",
        "tcp.check_checksum:TRUE",
        "-o",
        "ip.check_checksum:TRUE",
    ]);
    c.args(extra);
    let o = c.output().expect("running tshark");
    assert!(o.status.success(), "tshark failed: {}", String::from_utf8_lossy(&o.stderr));
    o.stdout
}

/// Collects every leaf of a JSON object, first occurrence wins (tshark nests
/// fields such as `http.response.code` under the status-line subtree).
fn flatten<'a>(v: &'a Value, out: &mut HashMap<&'a str, &'a Value>) {
    if let Value::Object(m) = v {
        for (k, x) in m {
            if x.is_object() {
                flatten(x, out);
            } else {
                out.entry(k.as_str()).or_insert(x);
            }
        }
    }
}

fn unhex(s: &str) -> Vec<u8> {
    (0..s.len() / 2).map(|i| u8::from_str_radix(&s[2 * i..2 * i + 2], 16).expect("hex")).collect()
}

/// `http.file_data_raw` is `[hex, offset, len, ...]`, or a list of those.
fn body_digest(f: &HashMap<&str, &Value>) -> String {
    let Some(raw) = f.get("http.file_data_raw") else {
        return hex(&sha256(b""));
    };
    let first = match &raw[0] {
        Value::Array(a) => &a[0],
        x => x,
    };
    hex(&sha256(&unhex(first.as_str().expect("hex string"))))
}

type Key = (String, String, u16, String);

fn sorted(mut v: Vec<Key>) -> Vec<Key> {
    v.sort();
    v
}

fn check(format: &CaptureFormat, size: u64, seed: u64) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("synth.pcap");
    let cfg = SynthConfig { seed, target_bytes: size, ..SynthConfig::default() };
    let mut truth: Vec<TruthRecord> = Vec::new();
    let f = std::io::BufWriter::new(std::fs::File::create(&path).unwrap());
    let (summary, _) = generate_to(&cfg, format, f, &mut |r| {
        truth.push(r.clone());
        Ok(())
    })
    .unwrap();
    assert!(summary.exchanges > 50);
    assert!(truth.iter().all(|r| r.recoverable));

    // Valid checksums; the only warnings are the deliberate RSTs.
    let warn = tshark(
        &path,
        &[
            "-Y",
            "tcp.checksum.status==2 or ip.checksum.status==2 or _ws.expert.severity>=warning",
            "-T",
            "fields",
            "-e",
            "_ws.expert.message",
        ],
    );
    for line in String::from_utf8_lossy(&warn).lines() {
        assert_eq!(line, "Connection reset (RST)", "unexpected tshark warning");
    }

    let json = tshark(&path, &["-2", "-Y", "http", "-T", "json", "-x", "-J", "http"]);
    let packets: Value = serde_json::from_slice(&json).expect("tshark json");
    let mut requests = Vec::new();
    let mut responses = Vec::new();
    for p in packets.as_array().expect("array") {
        let layer = &p["_source"]["layers"]["http"];
        let layers: Vec<&Value> = match layer {
            Value::Array(a) => a.iter().collect(),
            x => vec![x],
        };
        for h in layers {
            let mut f = HashMap::new();
            flatten(h, &mut f);
            let s = |k: &str| f.get(k).and_then(|v| v.as_str()).map(str::to_string);
            if let Some(code) = s("http.response.code") {
                let code: u16 = code.parse().unwrap();
                if code >= 200 {
                    let uri = s("http.response_for.uri").unwrap_or_default();
                    responses.push((String::new(), uri, code, body_digest(&f)));
                }
            } else if let Some(m) = s("http.request.method") {
                let uri = s("http.request.full_uri").unwrap_or_default();
                requests.push((m, uri, 0, body_digest(&f)));
            }
        }
    }
    let want_req: Vec<Key> = truth.iter().map(|r| (r.method.clone(), r.url.clone(), 0, hex(&r.req_body_sha256))).collect();
    let want_resp: Vec<Key> = truth.iter().map(|r| (String::new(), r.url.clone(), r.status, hex(&r.resp_body_sha256))).collect();
    assert_eq!(requests.len(), truth.len(), "request count");
    assert_eq!(responses.len(), truth.len(), "response count");
    assert_eq!(sorted(requests), sorted(want_req), "requests differ");
    assert_eq!(sorted(responses), sorted(want_resp), "responses differ");
    // The mix is exercised.
    for enc in ["gzip", "br", "identity"] {
        assert!(truth.iter().any(|r| r.content_encoding == enc), "{enc}");
    }
    assert!(truth.iter().any(|r| r.chunked));
    assert!(truth.iter().any(|r| r.client.is_ipv6()));
}

#[test]
fn tshark_agrees_with_truth_pcap() {
    if !tshark_available() {
        {
            // Past the test harness's capture, so the skip shows in the normal output.
            use std::io::Write as _;
            let _ = writeln!(std::io::stderr(), "notice: tshark not installed: skipping");
        }
        return;
    }
    let fmt = CaptureFormat::from_name("pcap", LinkType::Ethernet).unwrap();
    check(&fmt, 2 << 20, 1);
}

#[test]
fn tshark_agrees_with_truth_pcapng_ns() {
    if !tshark_available() {
        {
            // Past the test harness's capture, so the skip shows in the normal output.
            use std::io::Write as _;
            let _ = writeln!(std::io::stderr(), "notice: tshark not installed: skipping");
        }
        return;
    }
    // Two interfaces (NULL at µs, Linux SLL at ns), big-endian pcap with ns
    // and raw IP.
    let fmt = CaptureFormat::from_name("pcapng", LinkType::Null).unwrap();
    check(&fmt, 512 << 10, 2);
    let fmt = CaptureFormat::from_name("pcap-be-ns", LinkType::Raw).unwrap();
    check(&fmt, 512 << 10, 3);
}
