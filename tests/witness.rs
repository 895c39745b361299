//! Witness output of the built binary on `testdata/` captures and on a generated one: the file
//! decodes with the `api_spec` types, `witness hash` agrees with hashes recomputed from the
//! decoded messages, `--dedup` drops exactly the repeats, redaction leaves no secret in either
//! output, filters apply to both, and adding the witness output leaves the HAR unchanged.

mod common;

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use apitool::ir::{self, pb};
use common::*;
use serde_json::Value;

const CAPTURES: &[&str] =
    &["post-bodies.pcap", "keepalive.pcap", "pipelined.pcap", "chunked-gzip.pcap", "concurrent.pcap", "two-interfaces.pcapng"];

/// Decodes a witness file by hand: varint length, then a `Witness` message, to the end.
fn decode(bytes: &[u8]) -> Vec<pb::Witness> {
    let mut out = Vec::new();
    let mut rest = bytes;
    while !rest.is_empty() {
        let len = prost::encoding::decode_varint(&mut rest).expect("a varint length") as usize;
        assert!(len <= rest.len(), "a witness runs past the end of the file");
        out.push(<pb::Witness as prost::Message>::decode(&rest[..len]).expect("a Witness message"));
        rest = &rest[len..];
    }
    out
}

fn run_ok(args: &[&str]) -> std::process::Output {
    let o = apitool(args);
    assert!(o.status.success(), "apitool {args:?} failed ({}):\n{}", o.status, stderr(&o));
    o
}

fn convert_to(input: &Path, out: &Path, extra: &[&str]) {
    let mut args = vec!["convert", input.to_str().unwrap(), "-o", out.to_str().unwrap(), "-q"];
    args.extend(extra);
    run_ok(&args);
}

fn hash_lines(w: &[pb::Witness]) -> Vec<String> {
    w.iter()
        .map(|w| {
            let h = match w.method.as_ref().and_then(|m| m.meta.as_ref()).and_then(|m| m.meta.as_ref()) {
                Some(pb::method_meta::Meta::Http(h)) => h,
                other => panic!("a witness without HTTP metadata: {other:?}"),
            };
            format!("{} {} {}", ir::digest(w), h.method, h.path_template)
        })
        .collect()
}

/// A generated capture of realistic API traffic (credentials, cookies, login forms).
fn synth_capture(dir: &Path) -> PathBuf {
    let cfg = apitool::synth::SynthConfig { seed: 11, target_bytes: 3 << 20, ..Default::default() };
    let format = apitool::synth::pcap::CaptureFormat::from_name("pcap", apitool::synth::pcap::LinkType::Ethernet).unwrap();
    let (_, bytes) = apitool::synth::generate_to(&cfg, &format, Vec::new(), &mut |_| Ok(())).unwrap();
    let p = dir.join("synth.pcap");
    std::fs::write(&p, bytes).unwrap();
    p
}

#[test]
fn witnesses_decode_and_hash_lines_agree() {
    let tmp = tempfile::tempdir().unwrap();
    for cap in CAPTURES {
        let input = testdata().join(cap);
        let out = tmp.path().join(format!("{cap}.witness"));
        convert_to(&input, &out, &["-f", "witness", "--template-paths"]);
        let bytes = std::fs::read(&out).unwrap();
        let ws = decode(&bytes);
        let rows = read_truth(&testdata().join(format!("{}.truth.tsv", cap.rsplit_once('.').unwrap().0)));
        assert!(!ws.is_empty() && ws.len() <= rows.len(), "{cap}: {} witnesses for {} exchanges", ws.len(), rows.len());
        for w in &ws {
            let m = w.method.as_ref().unwrap();
            for (k, d) in m.args.iter().chain(&m.responses) {
                assert_eq!(k, &ir::digest_text(d), "{cap}: a map key is the hash of its value");
            }
        }
        let o = run_ok(&["witness", "hash", out.to_str().unwrap()]);
        let got: Vec<String> = String::from_utf8(o.stdout).unwrap().lines().map(String::from).collect();
        assert_eq!(got, hash_lines(&ws), "{cap}: witness hash");

        // dump: one JSON object per witness; text format parses back to the same messages.
        let o = run_ok(&["witness", "dump", out.to_str().unwrap()]);
        let lines: Vec<Value> = String::from_utf8(o.stdout).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
        assert_eq!(lines.len(), ws.len());
        assert_eq!(lines[0]["method"]["id"]["apiType"], "HTTP_REST");
        let o = run_ok(&["witness", "dump", "--text", out.to_str().unwrap()]);
        let text = String::from_utf8(o.stdout).unwrap();
        let first: pb::Witness = ir::text::parse(text.split("\n\n").next().unwrap()).unwrap();
        assert_eq!(first, ws[0]);
    }
    // Text-format witnesses are read too (the shared vectors, when present).
    let v = root().join("../shared/ir-vectors/generalize_witnesses/gitlab.3.concrete.pb.txt");
    if v.exists() {
        let w: pb::Witness = ir::text::parse(&std::fs::read_to_string(&v).unwrap()).unwrap();
        let o = run_ok(&["witness", "hash", v.to_str().unwrap()]);
        assert_eq!(String::from_utf8(o.stdout).unwrap().trim_end(), hash_lines(&[w])[0]);
    }
}

#[test]
fn adding_witnesses_leaves_the_har_unchanged_and_output_is_deterministic() {
    let tmp = tempfile::tempdir().unwrap();
    let synth = synth_capture(tmp.path());
    let mut inputs: Vec<PathBuf> = CAPTURES.iter().map(|c| testdata().join(c)).collect();
    inputs.push(synth);
    for input in &inputs {
        let name = input.file_name().unwrap().to_string_lossy().to_string();
        let a = tmp.path().join(format!("{name}.a.har"));
        let b = tmp.path().join(format!("{name}.b.har"));
        convert_to(input, &a, &["-f", "har"]);
        convert_to(input, &b, &["-f", "har,witness", "--threads", "2"]);
        assert!(std::fs::read(&a).unwrap() == std::fs::read(&b).unwrap(), "{name}: the HAR differs with -f har,witness");
        let w1 = tmp.path().join(format!("{name}.1.witness"));
        convert_to(input, &w1, &["-f", "witness", "--threads", "1"]);
        let both = std::fs::read(b.with_extension("witness")).unwrap();
        assert!(std::fs::read(&w1).unwrap() == both, "{name}: witnesses depend on the thread count or on -f");
    }
}

#[test]
fn dedup_drops_exactly_the_repeats() {
    let tmp = tempfile::tempdir().unwrap();
    let synth = synth_capture(tmp.path());
    let all = tmp.path().join("all.witness");
    let dedup = tmp.path().join("dedup.witness");
    // Zeroed values make repeats of the same call shape.
    convert_to(&synth, &all, &["-f", "witness", "--template-paths", "--zero-values"]);
    convert_to(&synth, &dedup, &["-f", "witness", "--template-paths", "--zero-values", "--dedup"]);
    let all = decode(&std::fs::read(&all).unwrap());
    let got = decode(&std::fs::read(&dedup).unwrap());
    let mut seen = HashSet::new();
    let want: Vec<pb::Witness> = all.iter().filter(|w| seen.insert(ir::digest(*w))).cloned().collect();
    assert!(want.len() < all.len(), "the capture has repeats ({} of {})", want.len(), all.len());
    assert_eq!(got, want);

    // The summary counts both.
    let sum = tmp.path().join("s.json");
    convert_to(
        &synth,
        &tmp.path().join("x.witness"),
        &["-f", "witness", "--template-paths", "--zero-values", "--dedup", "--summary-json", sum.to_str().unwrap()],
    );
    let v: Value = serde_json::from_slice(&std::fs::read(&sum).unwrap()).unwrap();
    let w = &v["inputs"][0]["witnesses"];
    assert_eq!(w["written"].as_u64(), Some(want.len() as u64));
    assert_eq!(w["duplicates"].as_u64(), Some((all.len() - want.len()) as u64));
}

/// Values that must not survive redaction, read from an unredacted HAR.
fn secrets(har: &Value) -> Vec<String> {
    let mut out = HashSet::new();
    for e in har["log"]["entries"].as_array().unwrap() {
        for (side, list) in [("request", "headers"), ("response", "headers")] {
            for h in e[side][list].as_array().unwrap() {
                let name = h["name"].as_str().unwrap().to_ascii_lowercase();
                let value = h["value"].as_str().unwrap();
                match name.as_str() {
                    "authorization" => {
                        out.insert(value.split(' ').next_back().unwrap().to_string());
                    }
                    "cookie" => out.extend(value.split(';').filter_map(|c| c.split_once('=')).map(|(_, v)| v.trim().to_string())),
                    "set-cookie" => out.extend(value.split(';').next().and_then(|c| c.split_once('=')).map(|(_, v)| v.to_string())),
                    _ => {}
                }
            }
        }
        for p in e["request"]["postData"]["params"].as_array().into_iter().flatten() {
            let name = p["name"].as_str().unwrap_or("");
            if name.contains("password") || name.contains("token") {
                out.insert(p["value"].as_str().unwrap().to_string());
            }
        }
        for text in [e["request"]["postData"]["text"].as_str(), e["response"]["content"]["text"].as_str()].into_iter().flatten() {
            if let Ok(v) = serde_json::from_str::<Value>(text) {
                collect_json(&v, false, &mut out);
            }
        }
    }
    // Short values (`dark`, `1`) could turn up anywhere by chance.
    out.into_iter().filter(|s| s.len() >= 6).collect()
}

fn collect_json(v: &Value, sensitive: bool, out: &mut HashSet<String>) {
    match v {
        Value::Object(m) => {
            for (k, v) in m {
                collect_json(v, sensitive || k.contains("token") || k.contains("password") || k.contains("secret"), out);
            }
        }
        Value::Array(a) => a.iter().for_each(|x| collect_json(x, sensitive, out)),
        Value::String(s) if sensitive => {
            out.insert(s.clone());
        }
        _ => {}
    }
}

/// Walks witnesses with the IR visitor: every primitive below a sensitive field name, query
/// key, header or cookie must be marked sensitive; returns how many were checked.
fn check_marked(ws: &[pb::Witness]) -> usize {
    use apitool::ir::visit::{Context, Visitor, Walk, Walker};
    struct Check {
        r: apitool::ir::redact::Redactor,
        depth_sensitive: Vec<usize>,
        checked: usize,
        bad: Vec<String>,
    }
    impl<'a> Visitor<'a> for Check {
        fn struct_field(&mut self, cx: &Context<'_, 'a>, name: &'a str, _: &'a pb::Data) -> Walk {
            if self.r.sensitive_name(name.as_bytes()) {
                self.depth_sensitive.push(cx.depth());
            }
            Walk::Continue
        }
        fn leave_data(&mut self, cx: &Context<'_, 'a>, _: &'a pb::Data) -> Walk {
            while self.depth_sensitive.last().is_some_and(|&d| d >= cx.depth()) {
                self.depth_sensitive.pop();
            }
            Walk::Continue
        }
        fn primitive(&mut self, cx: &Context<'_, 'a>, p: &'a pb::Primitive) -> Walk {
            use pb::http_meta::Location as L;
            let named = match cx.location() {
                Some(L::Header(h)) if cx.depth() == 1 => self.r.sensitive_name(h.key.as_bytes()),
                Some(L::Query(q)) if cx.depth() == 1 => self.r.sensitive_name(q.key.as_bytes()),
                Some(L::Cookie(_)) => true,
                _ => false,
            };
            if named || !self.depth_sensitive.is_empty() {
                self.checked += 1;
                if !p.akita_annotations.as_ref().is_some_and(|a| a.is_sensitive) {
                    self.bad.push(format!("{}", cx.path()));
                }
            }
            Walk::Continue
        }
    }
    let mut c = Check { r: apitool::ir::redact::Redactor::builtin(), depth_sensitive: Vec::new(), checked: 0, bad: Vec::new() };
    let mut walker = Walker::new();
    for w in ws {
        assert!(walker.witness(w, &mut c).is_continue());
    }
    assert!(c.bad.is_empty(), "sensitive values not marked: {:?}", &c.bad[..c.bad.len().min(10)]);
    c.checked
}

fn contains(hay: &[u8], needle: &str) -> bool {
    memchr::memmem::find(hay, needle.as_bytes()).is_some()
}

#[test]
fn redaction_leaves_no_secret_in_either_output() {
    let tmp = tempfile::tempdir().unwrap();
    let synth = synth_capture(tmp.path());
    for input in [synth, testdata().join("keepalive.pcap"), testdata().join("pipelined.pcap")] {
        let name = input.file_name().unwrap().to_string_lossy().to_string();
        let plain = tmp.path().join(format!("{name}.plain.har"));
        convert_to(&input, &plain, &["-f", "har,witness"]);
        let har: Value = serde_json::from_slice(&std::fs::read(&plain).unwrap()).unwrap();
        let secrets = secrets(&har);
        assert!(!secrets.is_empty(), "{name}: the capture holds secrets");
        let plain_w = std::fs::read(plain.with_extension("witness")).unwrap();
        assert!(secrets.iter().any(|s| contains(&plain_w, s)), "{name}: unredacted witnesses hold some of the secrets");

        let red = tmp.path().join(format!("{name}.red.har"));
        convert_to(&input, &red, &["-f", "har,witness", "--redact"]);
        let har_bytes = std::fs::read(&red).unwrap();
        let w_bytes = std::fs::read(red.with_extension("witness")).unwrap();
        for s in &secrets {
            assert!(!contains(&har_bytes, s), "{name}: {s:?} is still in the redacted HAR");
            assert!(!contains(&w_bytes, s), "{name}: {s:?} is still in the redacted witnesses");
        }
        // The redacted HAR is still a HAR with every entry, and the witnesses still decode.
        let red_har: Value = serde_json::from_slice(&har_bytes).unwrap();
        assert_eq!(red_har["log"]["entries"].as_array().unwrap().len(), har["log"]["entries"].as_array().unwrap().len());
        // content.size stays the size of the body as it was, whatever redaction changed in its text.
        let sizes = |h: &Value, side: &str| -> Vec<Value> {
            h["log"]["entries"].as_array().unwrap().iter().map(|e| e[side]["content"]["size"].clone()).collect()
        };
        assert_eq!(sizes(&red_har, "response"), sizes(&har, "response"), "{name}");
        let changed = red_har["log"]["entries"]
            .as_array()
            .unwrap()
            .iter()
            .zip(har["log"]["entries"].as_array().unwrap())
            .filter(|(r, p)| r["response"]["content"]["text"] != p["response"]["content"]["text"])
            .count();
        if changed > 0 {
            let o = apitool(["convert", input.to_str().unwrap(), "-o", red.to_str().unwrap(), "--redact"]);
            assert!(stderr(&o).contains("redacted in the HAR"), "the count is reported: {}", stderr(&o));
        }
        let red_ws = decode(&w_bytes);
        assert_eq!(red_ws.len(), decode(&plain_w).len());
        assert!(check_marked(&red_ws) > 0, "{name}: sensitive values were found and checked");
    }
}

#[test]
fn user_patterns_redact_too() {
    let tmp = tempfile::tempdir().unwrap();
    let pats = tmp.path().join("patterns.txt");
    std::fs::write(&pats, "# the test server's name\napitool-testserver\nname:^user-agent$\n").unwrap();
    let out = tmp.path().join("k.har");
    convert_to(&testdata().join("keepalive.pcap"), &out, &["-f", "har,witness", "--redact-patterns", pats.to_str().unwrap()]);
    for f in [out.clone(), out.with_extension("witness")] {
        let b = std::fs::read(&f).unwrap();
        assert!(!contains(&b, "apitool-testserver") && !contains(&b, "curl/"), "{}", f.display());
    }
    std::fs::write(&pats, "(unclosed\n").unwrap();
    let o = apitool(["convert", "testdata/keepalive.pcap", "-o", out.to_str().unwrap(), "--redact-patterns", pats.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2), "a bad pattern is a usage error: {}", stderr(&o));
}

#[test]
fn filters_apply_to_both_outputs() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("k.har");
    convert_to(&testdata().join("keepalive.pcap"), &out, &["-f", "har,witness", "--path", "!^/data/", "--host", "^127\\.0\\.0\\.1$"]);
    let har: Value = serde_json::from_slice(&std::fs::read(&out).unwrap()).unwrap();
    let urls: Vec<&str> = har["log"]["entries"].as_array().unwrap().iter().map(|e| e["request"]["url"].as_str().unwrap()).collect();
    assert_eq!(urls.len(), 3, "{urls:?}");
    assert!(urls.iter().all(|u| !u.contains("/data/")));
    let ws = decode(&std::fs::read(out.with_extension("witness")).unwrap());
    assert_eq!(ws.len(), 3);
    assert!(hash_lines(&ws).iter().all(|l| !l.contains("/data/")));
    // A host that matches nothing leaves nothing.
    convert_to(&testdata().join("keepalive.pcap"), &out, &["-f", "har,witness", "--host", "example\\.org"]);
    assert!(std::fs::read(out.with_extension("witness")).unwrap().is_empty());
}

#[test]
fn usage_errors() {
    let o = apitool(["convert", "testdata/keepalive.pcap", "-o", "-", "-f", "har,witness"]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    let o = apitool(["convert", "testdata/keepalive.pcap", "-o", "-", "-f", "json"]);
    assert_eq!(o.status.code(), Some(2));
    let o = apitool(["convert", "testdata/keepalive.pcap", "-o", "-", "--dedup"]);
    assert_eq!(o.status.code(), Some(2), "--dedup without witnesses: {}", stderr(&o));
    // Witnesses to standard output.
    let o = run_ok(&["convert", "testdata/post-bodies.pcap", "-o", "-", "-f", "witness", "-q"]);
    assert_eq!(decode(&o.stdout).len(), 4);
    // A file that is not a witness file.
    let o = apitool(["witness", "hash", "testdata/keepalive.pcap"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("testdata/keepalive.pcap"), "{}", stderr(&o));
}
