//! `apitool replay` over HTTP/2 in cleartext (h2c with prior knowledge), against servers that
//! are independent HTTP/2 implementations: grpcio (gRPC core) for the recorded gRPC calls of
//! `testdata/grpc.pcap`, and hyper-h2 (`testdata/tools/h2_server.py --prior-knowledge`) for
//! the recorded HTTP/2 exchanges of `testdata/h2c-upgrade.pcap` and for flow control and the
//! body cap. The servers are the ones the captures were recorded from; each logs what it
//! received and sent, and the test checks that log against the recording's own truth (the
//! requests arrived as recorded), then what replay reported: nothing changed against the same
//! server, exactly the known changes against the same server started with `--changed`.
//!
//! The servers need Python with `grpc` and `h2`: looked for in `.ci/run`'s virtual
//! environment (`$APITOOL_CONSUMERS_VENV`), then as `python3` on PATH. Without them the tests
//! say so and pass, unless `APITOOL_REQUIRE_CONSUMERS=1` (as `.ci/run` sets it).

mod common;

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine;
use serde_json::{Value, json};

use common::*;

fn required() -> bool {
    std::env::var_os("APITOOL_REQUIRE_CONSUMERS").is_some_and(|v| v == "1")
}

/// A Python that can import `module`.
fn python_with(module: &str) -> Option<PathBuf> {
    let venv = std::env::var_os("APITOOL_CONSUMERS_VENV")
        .map(PathBuf::from)
        .or_else(|| Some(PathBuf::from(std::env::var_os("HOME")?).join(".cache/apitool/consumers-venv")));
    let mut candidates: Vec<PathBuf> = venv.into_iter().map(|v| v.join("bin/python")).collect();
    candidates.push(PathBuf::from("python3"));
    let found = candidates
        .into_iter()
        .find(|p| Command::new(p).args(["-c", &format!("import {module}")]).stderr(Stdio::null()).status().is_ok_and(|s| s.success()));
    if found.is_none() {
        assert!(!required(), "APITOOL_REQUIRE_CONSUMERS=1 but no Python with the {module} module");
        let _ = writeln!(std::io::stderr(), "notice: no Python with the {module} module: this HTTP/2 replay test is skipped");
    }
    found
}

/// A server started for one test, stopped (by its process id) when dropped.
struct Server {
    child: Child,
    port: u16,
    log: PathBuf,
}

impl Server {
    /// Starts `script` with `--port 0 --ready FILE --log FILE` and `args`, and waits (at most
    /// 30 s) for the port it writes into the ready file.
    fn start(python: &Path, script: &str, pre: &[&str], args: &[&str], dir: &Path) -> Server {
        let ready = dir.join(format!("{}.ready", args.join("").replace('-', "")));
        let log = dir.join(format!("{script}{}.log", args.join("")));
        let _ = std::fs::remove_file(&ready);
        let _ = std::fs::remove_file(&log);
        let child = Command::new(python)
            .arg(root().join("testdata/tools").join(script))
            .args(pre)
            .args(["--port", "0", "--ready"])
            .arg(&ready)
            .arg("--log")
            .arg(&log)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .spawn()
            .expect("python runs");
        let mut server = Server { child, port: 0, log };
        let t0 = Instant::now();
        while t0.elapsed() < Duration::from_secs(30) {
            if let Ok(s) = std::fs::read_to_string(&ready)
                && let Ok(p) = s.trim().parse::<u16>()
            {
                server.port = p;
                return server;
            }
            if let Ok(Some(st)) = server.child.try_wait() {
                panic!("{script} exited early: {st}");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("{script} did not get ready in 30 s");
    }

    fn target(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

/// `apitool ARGS`, killed (and the test failed) past 120 s.
fn run(args: &[&str]) -> Run {
    let mut child = Command::new(bin())
        .args(args)
        .current_dir(root())
        .env_remove("http_proxy")
        .env_remove("HTTP_PROXY")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("apitool runs");
    let mut out = child.stdout.take().unwrap();
    let mut err = child.stderr.take().unwrap();
    let t_out = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = out.read_to_string(&mut s);
        s
    });
    let t_err = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = err.read_to_string(&mut s);
        s
    });
    let t0 = Instant::now();
    let status = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break st;
        }
        if t0.elapsed() > Duration::from_secs(120) {
            let _ = child.kill();
            let _ = child.wait();
            panic!("apitool {args:?} still running after 120 s");
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    Run { code: status.code().unwrap_or(-1), stdout: t_out.join().unwrap(), stderr: t_err.join().unwrap() }
}

fn dir(name: &str) -> PathBuf {
    let d = Path::new(env!("CARGO_TARGET_TMPDIR")).join("replay_h2").join(name);
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// Replays `recording` against `target` with `extra` flags; the JSON report.
fn replay(recording: &str, target: &str, extra: &[&str], d: &Path, name: &str) -> (Run, Value) {
    let report = d.join(format!("{name}.json"));
    let mut args = vec!["replay", recording, "--target", target, "--timeout", "20", "--report-json", s(&report)];
    args.extend_from_slice(extra);
    let r = run(&args);
    let v: Value = serde_json::from_slice(&std::fs::read(&report).unwrap_or_default())
        .unwrap_or_else(|e| panic!("no JSON report ({e}); stdout {} stderr {}", r.stdout, r.stderr));
    (r, v)
}

/// Entry number (from 1) -> (outcome, differences as `kind path: recorded -> received`).
fn outcomes(report: &Value) -> BTreeMap<u64, (String, Vec<String>)> {
    report["exchanges"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| {
            let diffs = x["differences"]
                .as_array()
                .unwrap()
                .iter()
                .map(|d| format!("{} {}: {} -> {}", d["kind"].as_str().unwrap(), d["path"].as_str().unwrap(), d["recorded"], d["received"]))
                .collect();
            (x["entry"].as_u64().unwrap(), (x["outcome"].as_str().unwrap().to_string(), diffs))
        })
        .collect()
}

/// The gRPC client's record: per call, its path and the messages it sent (base64).
fn grpc_truth() -> Vec<(String, Vec<String>)> {
    let calls = std::fs::read_to_string(testdata().join("grpc.calls.tsv")).unwrap();
    let messages = std::fs::read_to_string(testdata().join("grpc.messages.tsv")).unwrap();
    let mut out: Vec<(String, Vec<String>)> =
        calls.lines().skip(1).map(|l| (l.split('\t').nth(2).unwrap().to_string(), Vec::new())).collect();
    for l in messages.lines().skip(1) {
        let f: Vec<&str> = l.split('\t').collect();
        if f[1] == "send" {
            out[f[0].parse::<usize>().unwrap()].1.push(f[5].to_string());
        }
    }
    out
}

/// What the gRPC server's log says it received, per call, sorted like `grpc_truth` sorted.
fn grpc_received(log: &str) -> Vec<(String, Vec<String>)> {
    let mut v: Vec<(String, Vec<String>)> = log
        .lines()
        .map(|l| {
            let j: Value = serde_json::from_str(l).unwrap();
            let got = j["received"].as_array().unwrap().iter().map(|m| m.as_str().unwrap().to_string()).collect();
            (j["path"].as_str().unwrap().to_string(), got)
        })
        .collect();
    v.sort();
    v
}

#[test]
fn grpc_calls_replay_unchanged_and_record_a_baseline() {
    let Some(py) = python_with("grpc") else { return };
    let d = dir("grpc-same");
    let server = Server::start(&py, "grpc_app.py", &["serve"], &[], &d);
    let (r, report) = replay("testdata/grpc.pcap", &server.target(), &["--record", s(&d.join("new.har"))], &d, "first");
    assert_eq!(r.code, 0, "stdout {} stderr {}", r.stdout, r.stderr);
    let o = outcomes(&report);
    assert_eq!(o.len(), 10, "{o:?}");
    assert!(o.values().all(|(out, diffs)| out == "unchanged" && diffs.is_empty()), "{o:?}");

    // Every call reached the server with the messages the recording's client sent. The
    // UNIMPLEMENTED call (no handler) is not in the server's log.
    let mut want: Vec<(String, Vec<String>)> = grpc_truth().into_iter().filter(|(p, _)| !p.ends_with("/Missing")).collect();
    want.sort();
    assert_eq!(grpc_received(&server.log()), want);

    // The new baseline is a valid HAR that replays unchanged (its trailers carry the status).
    let new = d.join("new.har");
    validate_hars(std::slice::from_ref(&new));
    let har: Value = serde_json::from_slice(&std::fs::read(&new).unwrap()).unwrap();
    let entries = har["log"]["entries"].as_array().unwrap();
    assert_eq!(entries.len(), 10);
    assert!(entries.iter().all(|e| e["response"]["httpVersion"] == "HTTP/2.0"));
    let (r, report) = replay(s(&new), &server.target(), &[], &d, "again");
    assert_eq!(r.code, 0, "stdout {} stderr {}", r.stdout, r.stderr);
    assert!(outcomes(&report).values().all(|(out, _)| out == "unchanged"), "{report}");
}

#[test]
fn grpc_changes_are_reported_by_message_and_status() {
    let Some(py) = python_with("grpc") else { return };
    let d = dir("grpc-changed");
    let server = Server::start(&py, "grpc_app.py", &["serve"], &["--changed"], &d);
    let (r, report) = replay("testdata/grpc.pcap", &server.target(), &[], &d, "changed");
    assert_eq!(r.code, 1, "stdout {} stderr {}", r.stdout, r.stderr);
    let o = outcomes(&report);
    let changed: BTreeMap<u64, Vec<String>> =
        o.iter().filter(|(_, (out, _))| out != "unchanged").map(|(k, (out, d))| (*k, [vec![out.clone()], d.clone()].concat())).collect();
    let mut want = BTreeMap::new();
    want.insert(1, vec!["changed".to_string(), r#"grpc responses[0]: "echo: hello, gRPC" -> "echo 2: hello, gRPC""#.to_string()]);
    want.insert(
        2,
        vec![
            "changed".into(),
            r#"grpc responses: "5 messages" -> "4 messages""#.into(),
            r#"grpc responses[4]: "last item" -> null"#.into(),
        ],
    );
    want.insert(
        6,
        vec![
            "changed".into(),
            "grpc status: 5 -> 7".into(),
            r#"grpc message: "no such item: «café» at 100% (id 42)" -> "not yours: item 42""#.into(),
        ],
    );
    // Call 4's answer is gzip-compressed per message: compared decompressed, and cut for the
    // report, so only its start is checked.
    let five = changed.get(&5).cloned().unwrap_or_default();
    assert!(
        five.len() == 2 && five[1].starts_with(r#"grpc responses[0]: "echo: {\"id\": 0"#) && five[1].contains(r#"-> "echo 2: {\"id\": 0"#),
        "{five:?}"
    );
    let mut rest = changed.clone();
    rest.remove(&5);
    assert_eq!(rest, want);
}

#[test]
fn h2c_prior_knowledge_replays_recorded_http2() {
    let Some(py) = python_with("h2") else { return };
    let d = dir("h2c");
    let same = Server::start(&py, "h2_server.py", &[], &["--prior-knowledge", "--connections", "64"], &d);
    let (r, report) = replay("testdata/h2c-upgrade.pcap", &same.target(), &["--http2-prior-knowledge"], &d, "same");
    assert_eq!(r.code, 0, "stdout {} stderr {}", r.stdout, r.stderr);
    let o = outcomes(&report);
    assert_eq!(o.len(), 4);
    assert!(o.values().all(|(out, _)| out == "unchanged"), "{o:?}");
    // The server (HTTP/2 only) answered each request of the recording's truth, on stream 1 of
    // its own connection, with the bodies the recording's client received.
    let truth = read_truth(&testdata().join("h2c-upgrade.truth.tsv"));
    let mut logged: Vec<Vec<String>> = same.log().lines().map(|l| l.split('\t').skip(1).map(str::to_string).collect()).collect();
    logged.sort();
    let mut want: Vec<Vec<String>> = truth
        .iter()
        .map(|t| {
            let path = t.url.split_once("8083").unwrap().1.to_string();
            vec!["1".into(), t.method.clone(), path, t.status.unwrap().to_string(), t.resp_body.clone().unwrap().1]
        })
        .collect();
    want.sort();
    assert_eq!(logged, want);

    let changed = Server::start(&py, "h2_server.py", &[], &["--prior-knowledge", "--changed", "--connections", "64"], &d);
    let (r, report) = replay("testdata/h2c-upgrade.pcap", &changed.target(), &["--http2-prior-knowledge"], &d, "changed");
    assert_eq!(r.code, 1);
    let o = outcomes(&report);
    let kinds: Vec<(u64, String, usize)> = o.iter().map(|(k, (out, d))| (*k, out.clone(), d.len())).collect();
    // /text/300 is 6 lines, each with a "fox"; the 404 became 410.
    assert_eq!(kinds, [(1, "unchanged".into(), 0), (2, "changed".into(), 6), (3, "unchanged".into(), 0), (4, "changed".into(), 1)]);
    assert_eq!(o[&4].1, ["status : 404 -> 410"]);
    assert!(o[&2].1.iter().all(|l| l.starts_with("text body line") || l.starts_with("text line")), "{:?}", o[&2].1);
}

/// The text h2_server.py answers /text/N with.
fn text(n: usize) -> Vec<u8> {
    let line = b"the quick brown fox jumps over the lazy dog 0123456789\n";
    line.iter().copied().cycle().take(n).collect()
}

#[test]
fn h2c_flow_control_and_the_body_cap() {
    let Some(py) = python_with("h2") else { return };
    let d = dir("h2c-flow");
    let server = Server::start(&py, "h2_server.py", &[], &["--prior-knowledge", "--connections", "64"], &d);
    // A request body four times the server's 64 KiB stream window (sending waits for its
    // WINDOW_UPDATEs), a 20 MB response (more than our 16 MiB windows: we refill them), then
    // a body past --max-body, and on the same recorded connection a request after it.
    let post: Vec<u8> = (0..262_144u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8).collect();
    let b64 = |b: &[u8]| base64::engine::general_purpose::STANDARD.encode(b);
    let entry = |conn: &str, method: &str, path: &str, post: Option<&[u8]>, body: &[u8], mime: &str| {
        let mut req = json!({"method": method, "url": format!("http://example.test{path}"), "httpVersion": "HTTP/2.0",
            "headers": [], "queryString": [], "cookies": [], "headersSize": -1, "bodySize": 0});
        if let Some(p) = post {
            req["postData"] = json!({"mimeType": "application/octet-stream", "text": b64(p), "encoding": "base64"});
            req["bodySize"] = json!(p.len());
        }
        json!({"startedDateTime": "2026-12-04T00:00:00.000Z", "time": 1, "connection": conn, "request": req,
            "response": {"status": 200, "statusText": "", "httpVersion": "HTTP/2.0", "cookies": [],
                "headers": [{"name": "content-type", "value": mime}],
                "content": {"size": body.len(), "mimeType": mime, "text": b64(body), "encoding": "base64"},
                "redirectURL": "", "headersSize": -1, "bodySize": body.len()},
            "cache": {}, "timings": {"send": 0, "wait": 1, "receive": 0}})
    };
    let big = text(20_000_000);
    let har = json!({"log": {"version": "1.2", "creator": {"name": "test", "version": "1"}, "entries": [
        entry("a", "POST", "/echo", Some(&post), &post, "application/octet-stream"),
        entry("b", "GET", "/text/20000000", None, &big, "text/plain"),
        entry("c", "GET", "/text/3000000", None, &text(3_000_000), "text/plain"),
        entry("c", "GET", "/text/300", None, &text(300), "text/plain"),
    ]}});
    let path = d.join("flow.har");
    std::fs::write(&path, serde_json::to_vec(&har).unwrap()).unwrap();
    let (r, report) = replay(s(&path), &server.target(), &["--http2-prior-knowledge", "--max-body", "24MiB"], &d, "flow");
    assert_eq!(r.code, 0, "stdout {} stderr {}", r.stdout, r.stderr);
    assert!(outcomes(&report).values().all(|(out, _)| out == "unchanged"), "{report}");

    let (r, report) = replay(s(&path), &server.target(), &["--http2-prior-knowledge", "--max-body", "1MiB"], &d, "cap");
    assert_eq!(r.code, 1);
    let x = report["exchanges"].as_array().unwrap();
    let kinds: Vec<(&str, &str)> = x.iter().map(|x| (x["outcome"].as_str().unwrap(), x["error_kind"].as_str().unwrap_or(""))).collect();
    assert_eq!(kinds, [("unchanged", ""), ("failed", "body_too_large"), ("failed", "body_too_large"), ("unchanged", "")]);
}

/// A program on PATH.
fn on_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path).map(|d| d.join(name)).find(|p| p.is_file())
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// nginx serving the static files the TLS and h2c captures were recorded from (made by
/// `server.py --gen-static`, fixed contents and mtimes), on three ports: TLS with HTTP/2
/// (ALPN h2), TLS with HTTP/1.1 only, and h2c with prior knowledge. A certificate for
/// 127.0.0.1 is made at start with openssl. Stopped by its process id when dropped.
struct Nginx {
    child: Child,
    dir: PathBuf,
    tls_h2: u16,
    tls_h1: u16,
    h2c: u16,
}

impl Nginx {
    fn start(d: &Path) -> Option<Nginx> {
        let (Some(nginx), Some(openssl)) =
            (on_path("nginx").or_else(|| Some(PathBuf::from("/usr/sbin/nginx")).filter(|p| p.is_file())), on_path("openssl"))
        else {
            assert!(!required(), "APITOOL_REQUIRE_CONSUMERS=1 but nginx or openssl is not installed");
            let _ = writeln!(std::io::stderr(), "notice: nginx or openssl is not installed: the nginx replay test is skipped");
            return None;
        };
        let www = d.join("www");
        let st = Command::new("python3").arg(root().join("testdata/tools/server.py")).arg("--gen-static").arg(&www).status().unwrap();
        assert!(st.success(), "server.py --gen-static");
        let st = Command::new(openssl)
            .args(["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=127.0.0.1"])
            .args(["-addext", "subjectAltName=IP:127.0.0.1", "-addext", "basicConstraints=critical,CA:FALSE"])
            .arg("-keyout")
            .arg(d.join("key.pem"))
            .arg("-out")
            .arg(d.join("cert.pem"))
            .stderr(Stdio::null())
            .status()
            .unwrap();
        assert!(st.success(), "openssl req");
        let (tls_h2, tls_h1, h2c) = (free_port(), free_port(), free_port());
        let p = d.display();
        // The recording's settings that shape responses (gzip, ETag), and a log that says
        // which protocol each request came over.
        let conf = format!(
            "worker_processes 1;\npid {p}/nginx.pid;\nerror_log {p}/error.log warn;\nevents {{ worker_connections 64; }}\n\
             http {{\n types {{ text/html html; text/css css; text/plain txt; application/json json; application/octet-stream bin; }}\n\
             default_type application/octet-stream;\n client_body_temp_path {p}/cb; proxy_temp_path {p}/px; fastcgi_temp_path {p}/fc; uwsgi_temp_path {p}/uw; scgi_temp_path {p}/sc;\n\
             log_format proto '$server_port\\t$server_protocol\\t$request_method\\t$request_uri\\t$status';\n\
             access_log {p}/access.log proto;\n server_tokens off; sendfile off;\n\
             gzip on; gzip_types text/css text/plain application/json; gzip_min_length 256; gzip_comp_level 6; gzip_vary on; etag on;\n\
             ssl_certificate {p}/cert.pem; ssl_certificate_key {p}/key.pem; ssl_protocols TLSv1.2 TLSv1.3;\n\
             server {{ listen 127.0.0.1:{tls_h2} ssl http2; root {p}/www; }}\n\
             server {{ listen 127.0.0.1:{tls_h1} ssl; root {p}/www; }}\n\
             server {{ listen 127.0.0.1:{h2c} http2; root {p}/www; }}\n}}\n"
        );
        std::fs::write(d.join("nginx.conf"), conf).unwrap();
        let child = Command::new(nginx)
            .arg("-p")
            .arg(d)
            .arg("-c")
            .arg(d.join("nginx.conf"))
            .args(["-g", "daemon off;"])
            .stdin(Stdio::null())
            .stderr(std::fs::File::create(d.join("stderr.log")).unwrap())
            .spawn()
            .unwrap();
        let mut n = Nginx { child, dir: d.to_path_buf(), tls_h2, tls_h1, h2c };
        let t0 = Instant::now();
        while [tls_h2, tls_h1, h2c].iter().any(|&p| std::net::TcpStream::connect(("127.0.0.1", p)).is_err()) {
            if let Ok(Some(st)) = n.child.try_wait() {
                panic!("nginx exited: {st}: {}", std::fs::read_to_string(d.join("stderr.log")).unwrap_or_default());
            }
            assert!(t0.elapsed() < Duration::from_secs(20), "nginx did not listen in 20 s");
            std::thread::sleep(Duration::from_millis(50));
        }
        Some(n)
    }

    /// (port, protocol, method, path, status) of each request nginx logged, from the start or
    /// since the last call.
    fn take_log(&mut self) -> Vec<(u16, String, String, String, u16)> {
        let p = self.dir.join("access.log");
        // nginx writes a line when the response is done; the client may have its response
        // before that.
        std::thread::sleep(Duration::from_millis(200));
        let s = std::fs::read_to_string(&p).unwrap_or_default();
        std::fs::write(&p, "").unwrap();
        s.lines()
            .map(|l| {
                let f: Vec<&str> = l.split('\t').collect();
                (f[0].parse().unwrap(), f[1].to_string(), f[2].to_string(), f[3].to_string(), f[4].parse().unwrap())
            })
            .collect()
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn nginx_over_tls_with_alpn_and_h2c() {
    let d = dir("nginx");
    let Some(mut ng) = Nginx::start(&d) else { return };
    let cacert = d.join("cert.pem");
    let https = |port: u16| format!("https://127.0.0.1:{port}");
    let all_unchanged = |report: &Value, n: usize| {
        let o = outcomes(report);
        assert_eq!(o.len(), n, "{o:?}");
        assert!(o.values().all(|(out, _)| out == "unchanged"), "{o:?}");
    };
    let truth_requests = |name: &str| -> Vec<(String, String, u16)> {
        let mut v: Vec<(String, String, u16)> = read_truth(&testdata().join(format!("{name}.truth.tsv")))
            .iter()
            .filter(|t| !t.has_note("nokey"))
            .map(|t| {
                let path = t.url.splitn(4, '/').nth(3).map(|p| format!("/{p}")).unwrap();
                (t.method.clone(), path, t.status.unwrap())
            })
            .collect();
        v.sort();
        v
    };
    let logged = |log: Vec<(u16, String, String, String, u16)>, port: u16, proto: &str| -> Vec<(String, String, u16)> {
        assert!(log.iter().all(|l| l.0 == port && l.1 == proto), "expected every request on {port} over {proto}: {log:?}");
        let mut v: Vec<(String, String, u16)> = log.into_iter().map(|l| (l.2, l.3, l.4)).collect();
        v.sort();
        v
    };

    // HTTP/2 over TLS: recorded over h2, replayed over h2 as the server chose by ALPN.
    let key = |n: &str| testdata().join(format!("{n}.keys")).to_str().unwrap().to_string();
    let (r, report) =
        replay("testdata/tls-h2.pcap", &https(ng.tls_h2), &["--keylog", &key("tls-h2"), "--cacert", s(&cacert)], &d, "tls-h2");
    assert_eq!(r.code, 0, "stdout {} stderr {}", r.stdout, r.stderr);
    all_unchanged(&report, 2);
    assert_eq!(logged(ng.take_log(), ng.tls_h2, "HTTP/2.0"), truth_requests("tls-h2"));

    // Recorded over HTTP/1.1 (TLS 1.3 with KeyUpdates): only http/1.1 is offered, so the same
    // h2-capable server answers over HTTP/1.1.
    let (r, report) = replay(
        "testdata/tls-keyupdate.pcap",
        &https(ng.tls_h2),
        &["--keylog", &key("tls-keyupdate"), "--cacert", s(&cacert)],
        &d,
        "keyupdate",
    );
    assert_eq!(r.code, 0, "stdout {} stderr {}", r.stdout, r.stderr);
    all_unchanged(&report, 3);
    assert_eq!(logged(ng.take_log(), ng.tls_h2, "HTTP/1.1"), truth_requests("tls-keyupdate"));

    // Every suite of the TLS 1.2 recording, against an HTTP/1.1-only TLS server.
    let (r, report) = replay("testdata/tls12.pcap", &https(ng.tls_h1), &["--keylog", &key("tls12"), "--cacert", s(&cacert)], &d, "tls12");
    assert_eq!(r.code, 0, "stdout {} stderr {}", r.stdout, r.stderr);
    all_unchanged(&report, 14);
    assert_eq!(logged(ng.take_log(), ng.tls_h1, "HTTP/1.1"), truth_requests("tls12"));

    // h2c with prior knowledge, the recording's 8 interleaved streams sent one at a time (its
    // POSTs went to a backend this nginx does not have).
    let (r, report) = replay(
        "testdata/h2c-prior.pcap",
        &format!("http://127.0.0.1:{}", ng.h2c),
        &["--http2-prior-knowledge", "--filter", "path=!^/echo"],
        &d,
        "h2c",
    );
    assert_eq!(r.code, 0, "stdout {} stderr {}", r.stdout, r.stderr);
    all_unchanged(&report, 9);
    let want: Vec<(String, String, u16)> = truth_requests("h2c-prior").into_iter().filter(|t| t.1 != "/echo").collect();
    assert_eq!(logged(ng.take_log(), ng.h2c, "HTTP/2.0"), want);

    // The self-signed certificate is not in the system's store: refused, with the way out
    // named; with --insecure it goes.
    let (r, report) = replay("testdata/tls-h2.pcap", &https(ng.tls_h2), &["--keylog", &key("tls-h2")], &d, "untrusted");
    assert_eq!(r.code, 1);
    let x = &report["exchanges"][0];
    assert_eq!(x["error_kind"], "tls", "{x}");
    assert!(x["error"].as_str().unwrap().contains("--cacert"), "{x}");
    let (r, report) = replay("testdata/tls-h2.pcap", &https(ng.tls_h2), &["--keylog", &key("tls-h2"), "--insecure"], &d, "insecure");
    assert_eq!(r.code, 0, "stdout {} stderr {}", r.stdout, r.stderr);
    all_unchanged(&report, 2);

    // gRPC needs HTTP/2: a TLS server that does not offer h2 fails each call, saying so.
    let (r, report) = replay("testdata/grpc.pcap", &https(ng.tls_h1), &["--insecure"], &d, "grpc-h1");
    assert_eq!(r.code, 1);
    let errors: Vec<&str> = report["exchanges"].as_array().unwrap().iter().map(|x| x["error"].as_str().unwrap_or("")).collect();
    assert!(errors.iter().all(|e| e.contains("did not agree to HTTP/2")), "{errors:?}");
    let _ = ng.take_log();
}
