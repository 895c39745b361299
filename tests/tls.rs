//! TLS decryption on the recorded TLS captures: the facts of each entry (`_apitool.tls`)
//! against the handshake as tshark reads it, tshark's own decryption agreeing on the
//! requests, the connections that cannot be decrypted counted and listed, the key log inside
//! a pcapng (wherever the block is), and secrets kept out of every output. Method, URL,
//! status and bodies against the clients' truth are checked by `testdata_truth.rs`.

mod common;

use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::Path;
use std::process::Command;

use serde_json::Value;

use common::*;

/// tshark's fields, one row per packet that passes `filter`.
fn tshark_fields(file: &str, keys: Option<&str>, filter: &str, fields: &[&str]) -> Vec<Vec<String>> {
    let mut c = Command::new("tshark");
    c.current_dir(root()).args(["-r", file, "-Y", filter, "-T", "fields"]);
    if let Some(k) = keys {
        c.args(["-o", &format!("tls.keylog_file:{k}")]);
    }
    for f in fields {
        c.args(["-e", f]);
    }
    let o = c.output().expect("running tshark");
    assert!(o.status.success(), "tshark failed: {}", String::from_utf8_lossy(&o.stderr));
    String::from_utf8_lossy(&o.stdout).lines().map(|l| l.split('\t').map(String::from).collect()).collect()
}

fn skip_without_tshark() -> bool {
    if tshark_available() {
        return false;
    }
    let _ = writeln!(std::io::stderr(), "notice: tshark not installed: skipping the tshark checks");
    true
}

/// Converts with `--keylog testdata/NAME.keys` (when there is one and `extra` gives no other)
/// and a JSON summary.
fn convert_tls(file: &str, dir: &Path, extra: &[&str]) -> (Value, Value) {
    let name = file.split('.').next().unwrap();
    let har = dir.join(format!("{name}.har"));
    let summary = dir.join(format!("{name}.summary.json"));
    let mut args = vec!["--quiet", "--summary-json", summary.to_str().unwrap()];
    let keys = format!("testdata/{name}.keys");
    if root().join(&keys).is_file() && !extra.contains(&"--keylog") {
        args.extend(["--keylog", keys.as_str()]);
    }
    args.extend(extra);
    convert(file, &har, &args);
    let h = read_har(&std::fs::read(&har).unwrap(), name);
    let s: Value = serde_json::from_slice(&std::fs::read(&summary).unwrap()).unwrap();
    (h, s["inputs"][0].clone())
}

fn entries(har: &Value) -> &Vec<Value> {
    har["log"]["entries"].as_array().expect("entries")
}

/// The IANA numbers of the suites the captures use.
fn suite_id(name: &str) -> &'static str {
    match name {
        "TLS_AES_128_GCM_SHA256" => "0x1301",
        "TLS_AES_256_GCM_SHA384" => "0x1302",
        "TLS_CHACHA20_POLY1305_SHA256" => "0x1303",
        "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256" => "0xc02f",
        "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384" => "0xc030",
        "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256" => "0xcca8",
        "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA" => "0xc013",
        "TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA" => "0xc014",
        "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA256" => "0xc027",
        "TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA384" => "0xc028",
        other => panic!("a suite the captures do not use: {other}"),
    }
}

#[test]
fn tls_facts_agree_with_the_handshakes_tshark_reads() {
    let dir = tempfile::tempdir().unwrap();
    let check_tshark = !skip_without_tshark();
    for (file, version) in [
        ("tls13.pcap", "TLS 1.3"),
        ("tls12.pcap", "TLS 1.2"),
        ("tls-keyupdate.pcap", "TLS 1.3"),
        ("tls-dsb.pcapng", "TLS 1.3"),
        ("tls-hrr.pcap", "TLS 1.3"),
    ] {
        let (har, _) = convert_tls(file, dir.path(), &[]);
        // Connections in the order they open: the HAR's connection ids are their first frames.
        let mut by_conn: BTreeMap<u64, Vec<&Value>> = BTreeMap::new();
        for e in entries(&har) {
            by_conn.entry(e["_apitool"]["flow"].as_u64().unwrap()).or_default().push(e);
            let t = &e["_apitool"]["tls"];
            assert_eq!(t["version"], version, "{file}");
            assert_eq!(t["sni"], "api.test", "{file}");
            // curl offers ALPN, s_client does not.
            let alpn = if file.starts_with("tls-keyupdate") { Value::Null } else { "http/1.1".into() };
            assert_eq!(t["alpn"], alpn, "{file}");
            assert!(e["request"]["url"].as_str().unwrap().starts_with("https://api.test:84"), "{file}: {}", e["request"]["url"]);
        }
        let truth = read_truth(&testdata().join(format!("{}.truth.tsv", file.split('.').next().unwrap())));
        // Every connection's suite is the one its notes name.
        for (c, list) in by_conn.values().enumerate() {
            let suite = list[0]["_apitool"]["tls"]["cipherSuite"].as_str().unwrap();
            assert!(list.iter().all(|e| e["_apitool"]["tls"]["cipherSuite"] == suite));
            let notes = &truth.iter().find(|r| r.conn == c).unwrap().notes;
            let named = [
                ("aes128gcm", "AES_128_GCM"),
                ("aes256gcm", "AES_256_GCM"),
                ("chacha20", "CHACHA20"),
                ("sha1", "CBC_SHA"),
                ("sha256", "CBC_SHA256"),
                ("sha384", "CBC_SHA384"),
            ];
            for (tag, part) in named {
                if notes.iter().any(|n| n == tag) {
                    assert!(suite.contains(part), "{file} connection {c}: {suite} for {notes:?}");
                }
            }
        }
        if !check_tshark {
            continue;
        }
        // The suite each ServerHello chose, per TCP stream in opening order, as tshark reads it.
        let hellos =
            tshark_fields(&format!("testdata/{file}"), None, "tls.handshake.type == 2", &["tcp.stream", "tls.handshake.ciphersuite"]);
        let ours: Vec<&str> = by_conn.values().map(|l| suite_id(l[0]["_apitool"]["tls"]["cipherSuite"].as_str().unwrap())).collect();
        // The last ServerHello of each stream (after a HelloRetryRequest, the second).
        let mut last: BTreeMap<u64, &str> = BTreeMap::new();
        for r in &hellos {
            last.insert(r[0].parse().unwrap(), r[1].as_str());
        }
        let theirs: Vec<&str> = last.into_values().collect();
        // tls13's last connection has no key and no entries.
        assert_eq!(ours[..], theirs[..ours.len()], "{file}");
    }
}

#[test]
fn cbc_suites_cover_both_mac_orders() {
    // The capture's CBC connections are what their notes say: the server agreed to
    // encrypt-then-MAC (extension 22) on the `etm` ones and not on the `mte` ones.
    if skip_without_tshark() {
        return;
    }
    let truth = read_truth(&testdata().join("tls12.truth.tsv"));
    let hellos = tshark_fields("testdata/tls12.pcap", None, "tls.handshake.type == 2", &["tcp.stream", "tls.handshake.extension.type"]);
    let mut seen = [0, 0];
    for (c, h) in hellos.iter().enumerate() {
        let etm = h[1].split(',').any(|t| t == "22");
        let notes = &truth.iter().find(|r| r.conn == c).unwrap().notes;
        if notes.iter().any(|n| n == "etm") {
            assert!(etm, "connection {c}");
            seen[0] += 1;
        }
        if notes.iter().any(|n| n == "mte") {
            assert!(!etm, "connection {c}");
            seen[1] += 1;
        }
    }
    assert_eq!(seen, [2, 2]);
}

#[test]
fn tshark_decrypts_the_same_requests() {
    if skip_without_tshark() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    for file in ["tls13.pcap", "tls12.pcap", "tls-keyupdate.pcap", "tls-dsb.pcapng", "tls-hrr.pcap"] {
        let (har, _) = convert_tls(file, dir.path(), &[]);
        let name = file.split('.').next().unwrap();
        let keys = format!("testdata/{name}.keys");
        let keys = root().join(&keys).is_file().then_some(keys.as_str());
        let rows = tshark_fields(&format!("testdata/{file}"), keys, "http.request", &["http.request.method", "http.request.full_uri"]);
        let theirs: Vec<(String, String)> = rows.into_iter().map(|r| (r[0].clone(), r[1].clone())).collect();
        let ours: Vec<(String, String)> = entries(&har)
            .iter()
            .map(|e| (e["request"]["method"].as_str().unwrap().to_string(), e["request"]["url"].as_str().unwrap().to_string()))
            .collect();
        assert!(!ours.is_empty(), "{file}");
        assert_eq!(ours, theirs, "{file}");
    }
}

#[test]
fn a_hello_retry_request_is_followed() {
    let dir = tempfile::tempdir().unwrap();
    let (har, s) = convert_tls("tls-hrr.pcap", dir.path(), &[]);
    assert_eq!(entries(&har).len(), 2);
    assert_eq!(s["tls"]["decrypted_connections"], 1);
    if skip_without_tshark() {
        return;
    }
    // The capture has one: a ServerHello whose random is SHA-256("HelloRetryRequest"), then
    // two ClientHellos with one random.
    let sh = tshark_fields("testdata/tls-hrr.pcap", None, "tls.handshake.type == 2", &["tls.handshake.random"]);
    assert_eq!(sh.len(), 2);
    assert_eq!(sh[0][0], "cf21ad74e59a6111be1d8c021e65b891c2a211167abb8c5e079e09e2c8a8339c");
    let ch = tshark_fields("testdata/tls-hrr.pcap", None, "tls.handshake.type == 1", &["tls.handshake.random"]);
    assert_eq!(ch.len(), 2);
    assert_eq!(ch[0], ch[1]);
}

#[test]
fn key_updates_are_followed() {
    let dir = tempfile::tempdir().unwrap();
    let (har, s) = convert_tls("tls-keyupdate.pcap", dir.path(), &[]);
    assert_eq!(entries(&har).len(), 3);
    let t = &s["tls"];
    assert_eq!(t["decryption_failed"], 0);
    if skip_without_tshark() {
        return;
    }
    // As many KeyUpdate messages as tshark decrypts: the client's two and the server's
    // answer to the one that asked for it.
    let updates =
        tshark_fields("testdata/tls-keyupdate.pcap", Some("testdata/tls-keyupdate.keys"), "tls.handshake.type == 24", &["frame.number"]);
    assert_eq!(t["key_updates"].as_u64(), Some(updates.len() as u64));
    assert_eq!(updates.len(), 3);
}

#[test]
fn a_connection_without_its_key_is_counted_and_listed() {
    let dir = tempfile::tempdir().unwrap();
    let (har, s) = convert_tls("tls13.pcap", dir.path(), &[]);
    let t = &s["tls"];
    assert_eq!((t["connections"].as_u64(), t["decrypted_connections"].as_u64(), t["no_key"].as_u64()), (Some(4), Some(3), Some(1)));
    let list = s["tls_undecrypted"].as_array().unwrap();
    assert_eq!(list.len(), 1);
    let u = &list[0];
    assert_eq!((u["reason"].as_str(), u["sni"].as_str()), (Some("no_key"), Some("api.test")));
    let random = u["client_random"].as_str().unwrap();
    // Its client random is in no line of the key log, and it is the ClientHello's of the
    // connection that has no entry.
    let keys = std::fs::read_to_string(testdata().join("tls13.keys")).unwrap();
    assert!(!keys.contains(random));
    let flows: Vec<u64> = entries(&har).iter().map(|e| e["_apitool"]["flow"].as_u64().unwrap()).collect();
    assert!(!flows.contains(&u["flow"].as_u64().unwrap()));
    if !skip_without_tshark() {
        let hellos = tshark_fields("testdata/tls13.pcap", None, "tls.handshake.type == 1", &["tcp.stream", "tls.handshake.random"]);
        assert_eq!(hellos.last().unwrap()[1], random);
    }
    // -v says it in words, with the client random to look for.
    let o = apitool([
        "convert",
        "testdata/tls13.pcap",
        "--keylog",
        "testdata/tls13.keys",
        "-v",
        "-o",
        dir.path().join("v.har").to_str().unwrap(),
    ]);
    assert!(o.status.success());
    let err = stderr(&o);
    assert!(err.contains(&format!("not decrypted (no key for the client random): SNI api.test, client random {random}")), "{err}");
    assert!(err.contains("1 TLS connection not decrypted: no key for the client random"), "{err}");
}

#[test]
fn without_a_key_log_tls_is_counted_not_decrypted() {
    let dir = tempfile::tempdir().unwrap();
    let (har, s) = convert_tls("tls12.pcap", dir.path(), &["--keylog", "/dev/null"]);
    assert!(entries(&har).is_empty());
    assert_eq!(s["tls"]["no_key"], 7);
    let out = dir.path().join("none.har");
    let summary = dir.path().join("none.json");
    convert("tls12.pcap", &out, &["--quiet", "--summary-json", summary.to_str().unwrap()]);
    let s: Value = serde_json::from_slice(&std::fs::read(&summary).unwrap()).unwrap();
    assert_eq!(s["inputs"][0]["protocols"]["tls_connections"], 7);
    assert_eq!(s["inputs"][0]["tls_undecrypted"].as_array().unwrap().len(), 7);
    assert_eq!(s["inputs"][0]["entries"], 0);
}

/// The blocks of a little-endian pcapng file.
fn pcapng_blocks(data: &[u8]) -> Vec<&[u8]> {
    let mut out = Vec::new();
    let mut at = 0;
    while at + 12 <= data.len() {
        let len = u32::from_le_bytes(data[at + 4..at + 8].try_into().unwrap()) as usize;
        out.push(&data[at..at + len]);
        at += len;
    }
    assert_eq!(at, data.len());
    out
}

#[test]
fn the_key_log_inside_a_pcapng_is_read_wherever_it_is() {
    let dir = tempfile::tempdir().unwrap();
    let (har, s) = convert_tls("tls-dsb.pcapng", dir.path(), &[]);
    assert_eq!(entries(&har).len(), 2);
    assert_eq!(s["tls_secrets_blocks"], 1);
    // The same file with its Decryption Secrets Block moved after the packets it unlocks.
    let data = std::fs::read(testdata().join("tls-dsb.pcapng")).unwrap();
    let blocks = pcapng_blocks(&data);
    let is_dsb = |b: &[u8]| u32::from_le_bytes(b[..4].try_into().unwrap()) == 0x0A;
    assert_eq!(blocks.iter().filter(|b| is_dsb(b)).count(), 1);
    let mut moved: Vec<u8> = blocks.iter().filter(|b| !is_dsb(b)).flat_map(|b| b.iter().copied()).collect();
    moved.extend_from_slice(blocks.iter().find(|b| is_dsb(b)).unwrap());
    let path = dir.path().join("dsb-last.pcapng");
    std::fs::write(&path, &moved).unwrap();
    let out = dir.path().join("dsb-last.har");
    let o = apitool(["convert", path.to_str().unwrap(), "-q", "-o", out.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    let moved_har = read_har(&std::fs::read(&out).unwrap(), "dsb-last");
    let urls = |h: &Value| entries(h).iter().map(|e| e["request"]["url"].clone()).collect::<Vec<_>>();
    assert_eq!(urls(&moved_har), urls(&har));
    // Read as a stream, the block at the start of the file is used too.
    let o = apitool_stdin(["convert", "-", "-q", "-o", "-"], &data);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(urls(&read_har(&o.stdout, "stdin")), urls(&har));
}

#[test]
fn secrets_never_reach_the_outputs() {
    let dir = tempfile::tempdir().unwrap();
    for name in ["tls13", "tls12", "tls-keyupdate"] {
        let keys = std::fs::read_to_string(testdata().join(format!("{name}.keys"))).unwrap();
        let secrets: Vec<&str> = keys.lines().filter_map(|l| l.split(' ').nth(2)).filter(|s| s.len() >= 64).collect();
        assert!(!secrets.is_empty());
        let har = dir.path().join(format!("{name}.har"));
        let wit = dir.path().join(format!("{name}.witness"));
        let summary = dir.path().join(format!("{name}.json"));
        let keylog = format!("testdata/{name}.keys");
        for (out, format) in [(&har, "har"), (&wit, "witness")] {
            let o = apitool([
                "convert",
                &format!("testdata/{name}.pcap"),
                "-v",
                "-f",
                format,
                "--keylog",
                &keylog,
                "--summary-json",
                summary.to_str().unwrap(),
                "-o",
                out.to_str().unwrap(),
            ]);
            assert!(o.status.success(), "{}", stderr(&o));
            let mut all = std::fs::read(out).unwrap();
            all.extend(std::fs::read(&summary).unwrap());
            all.extend(&o.stderr);
            all.extend(&o.stdout);
            let text = String::from_utf8_lossy(&all).to_lowercase();
            for s in &secrets {
                // Any 16 hex digits of a secret.
                for i in (0..s.len() - 16).step_by(8) {
                    assert!(!text.contains(&s[i..i + 16].to_lowercase()), "{name}: a secret in the {format} output or summary");
                }
            }
        }
    }
    // A key log line that cannot be read is reported by its number, not its content.
    let bad = dir.path().join("bad.keys");
    std::fs::write(&bad, "CLIENT_RANDOM 00112233 deadbeefcafe0123456789abcdef\n").unwrap();
    let o = apitool([
        "convert",
        "testdata/tls12.pcap",
        "-q",
        "--keylog",
        bad.to_str().unwrap(),
        "-o",
        dir.path().join("b.har").to_str().unwrap(),
    ]);
    assert!(o.status.success());
    let err = stderr(&o);
    assert!(err.contains("line 1"), "{err}");
    assert!(!err.contains("deadbeef") && !err.contains("00112233"), "{err}");
    // A key log that cannot be read at all is a usage error.
    let o = apitool(["convert", "testdata/tls12.pcap", "--keylog", "/nonexistent/keys", "-o", dir.path().join("c.har").to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
}
