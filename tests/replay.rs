//! `apitool replay` end to end: real HTTP servers on 127.0.0.1 started inside the tests,
//! traffic recorded to them (as a HAR written by `--record`, and as a pcap converted on the
//! fly), then replayed against the same server, a changed one, and broken ones.
//!
//! Every server stops when its test ends (its threads poll a stop flag), every loop is bounded
//! in time, every run of the binary has a deadline, and nothing leaves loopback.

use std::collections::BTreeMap;
use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

// ---------------------------------------------------------------------------------------------
// The server

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    /// The API as recorded.
    Original,
    /// One JSON field (GET /api/users/1 $.name), one status (POST /api/orders 201 -> 200) and
    /// one header (GET /api/list Cache-Control) changed.
    Changed,
    /// Reads the request, never answers.
    Stall,
    /// Sends a head announcing 100000 bytes, then 10 bytes, then nothing.
    NeverEnds,
    /// Reads the request, then resets the connection.
    Reset,
    /// Sends a head announcing 100000 bytes and 10 of them, then resets the connection.
    ResetMidBody,
}

#[derive(Clone, Debug)]
struct Logged {
    conn: u64,
    method: String,
    target: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Logged {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
}

struct Server {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    log: Arc<Mutex<Vec<Logged>>>,
    thread: Option<thread::JoinHandle<()>>,
}

/// No server thread lives longer than this, whatever happens.
const SERVER_LIFETIME: Duration = Duration::from_secs(30);

impl Server {
    fn start(mode: Mode) -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let addr = listener.local_addr().unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let log = Arc::new(Mutex::new(Vec::new()));
        let (stop2, log2) = (stop.clone(), log.clone());
        let thread = thread::spawn(move || {
            let deadline = Instant::now() + SERVER_LIFETIME;
            let counter = Arc::new(AtomicU64::new(0));
            let mut conns = Vec::new();
            let mut next_conn = 0;
            while !stop2.load(Ordering::Relaxed) && Instant::now() < deadline {
                match listener.accept() {
                    Ok((s, _)) => {
                        next_conn += 1;
                        let (stop, log, counter) = (stop2.clone(), log2.clone(), counter.clone());
                        let id = next_conn;
                        conns.push(thread::spawn(move || serve(s, id, mode, &stop, &log, &counter, deadline)));
                    }
                    Err(e) if e.kind() == ErrorKind::WouldBlock => thread::sleep(Duration::from_millis(5)),
                    Err(_) => thread::sleep(Duration::from_millis(5)),
                }
            }
            stop2.store(true, Ordering::Relaxed);
            for c in conns {
                let _ = c.join();
            }
        });
        Server { addr, stop, log, thread: Some(thread) }
    }

    fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    fn take_log(&self) -> Vec<Logged> {
        std::mem::take(&mut *self.log.lock().unwrap())
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// A request as the server read it: method, target, header fields, body.
type Request = (String, String, Vec<(String, String)>, Vec<u8>);

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// Reads one request; `None` at the end of the connection or when stopped.
fn read_request(s: &mut TcpStream, buf: &mut Vec<u8>, stop: &AtomicBool, deadline: Instant) -> Option<Request> {
    let mut chunk = [0u8; 8192];
    let mut fill = |buf: &mut Vec<u8>| -> bool {
        loop {
            if stop.load(Ordering::Relaxed) || Instant::now() > deadline {
                return false;
            }
            match s.read(&mut chunk) {
                Ok(0) => return false,
                Ok(n) => {
                    buf.extend_from_slice(&chunk[..n]);
                    return true;
                }
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut | ErrorKind::Interrupted) => {}
                Err(_) => return false,
            }
        }
    };
    let end = loop {
        if let Some(p) = find(buf, b"\r\n\r\n") {
            break p;
        }
        if !fill(buf) {
            return None;
        }
    };
    let head = String::from_utf8_lossy(&buf[..end]).into_owned();
    let mut lines = head.split("\r\n");
    let mut first = lines.next()?.split(' ');
    let method = first.next()?.to_string();
    let target = first.next()?.to_string();
    let headers: Vec<(String, String)> =
        lines.filter_map(|l| l.split_once(':')).map(|(n, v)| (n.trim().to_string(), v.trim().to_string())).collect();
    let len: usize = headers.iter().find(|(n, _)| n.eq_ignore_ascii_case("content-length")).and_then(|(_, v)| v.parse().ok()).unwrap_or(0);
    while buf.len() < end + 4 + len {
        if !fill(buf) {
            return None;
        }
    }
    let body = buf[end + 4..end + 4 + len].to_vec();
    buf.drain(..end + 4 + len);
    Some((method, target, headers, body))
}

fn wait_until_stopped(stop: &AtomicBool, deadline: Instant) {
    while !stop.load(Ordering::Relaxed) && Instant::now() < deadline {
        thread::sleep(Duration::from_millis(10));
    }
}

fn reset(s: &TcpStream) {
    use std::os::fd::AsRawFd;
    let linger = libc::linger { l_onoff: 1, l_linger: 0 };
    // SAFETY: a valid socket descriptor and a correctly sized linger struct.
    unsafe {
        libc::setsockopt(
            s.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            &linger as *const libc::linger as *const libc::c_void,
            std::mem::size_of::<libc::linger>() as libc::socklen_t,
        );
    }
}

fn big_body() -> Vec<u8> {
    (0..300 * 1024).map(|i| b'a' + (i % 26) as u8).collect()
}

fn serve(mut s: TcpStream, conn: u64, mode: Mode, stop: &AtomicBool, log: &Mutex<Vec<Logged>>, counter: &AtomicU64, deadline: Instant) {
    let _ = s.set_nonblocking(false);
    let _ = s.set_read_timeout(Some(Duration::from_millis(20)));
    let mut buf = Vec::new();
    while let Some((method, target, headers, body)) = read_request(&mut s, &mut buf, stop, deadline) {
        let logged = Logged { conn, method: method.clone(), target: target.clone(), headers: headers.clone(), body: body.clone() };
        log.lock().unwrap().push(logged.clone());
        match mode {
            Mode::Stall => return wait_until_stopped(stop, deadline),
            Mode::Reset => return reset(&s),
            Mode::ResetMidBody => {
                let _ = s.write_all(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 100000\r\n\r\n0123456789");
                thread::sleep(Duration::from_millis(50));
                return reset(&s);
            }
            Mode::NeverEnds => {
                let _ = s.write_all(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 100000\r\n\r\n0123456789");
                return wait_until_stopped(stop, deadline);
            }
            Mode::Original | Mode::Changed => {}
        }
        let changed = mode == Mode::Changed;
        let n = counter.fetch_add(1, Ordering::Relaxed);
        // Volatile fields, different on every response: replay must ignore them.
        let mut extra = vec![
            ("Date".to_string(), format!("Mon, 0{} Jan 2024 00:00:{:02} GMT", 1 + n % 9, n % 60)),
            ("Server".to_string(), format!("test/{n}")),
            ("X-Request-Id".to_string(), format!("req-{n}")),
            ("ETag".to_string(), format!("\"{n}\"")),
        ];
        let (status, ctype, body): (u16, &str, Vec<u8>) = match (method.as_str(), target.as_str()) {
            ("GET", "/api/users/1") => {
                extra.push(("Set-Cookie".into(), format!("sid={n}; Path=/; HttpOnly")));
                let name = if changed { "alicia" } else { "alice" };
                let v = json!({"id": 1, "name": name, "roles": ["admin", "dev"], "meta": {"version": 3}});
                (200, "application/json", v.to_string().into_bytes())
            }
            ("POST", "/api/orders") => {
                let echo: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
                (if changed { 200 } else { 201 }, "application/json", json!({"ok": true, "order": echo}).to_string().into_bytes())
            }
            ("GET", t) if t.starts_with("/api/list") => {
                extra.push(("Cache-Control".into(), if changed { "no-store" } else { "max-age=60" }.into()));
                let page = t.split("page=").nth(1).unwrap_or("1");
                let v = json!({"page": page, "items": (0..20).map(|i| json!({"id": i, "label": format!("item {i}")})).collect::<Vec<_>>()});
                let plain = v.to_string().into_bytes();
                let gzip = headers.iter().any(|(n, v)| n.eq_ignore_ascii_case("accept-encoding") && v.contains("gzip"));
                if gzip {
                    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
                    e.write_all(&plain).unwrap();
                    extra.push(("Content-Encoding".into(), "gzip".into()));
                    (200, "application/json", e.finish().unwrap())
                } else {
                    (200, "application/json", plain)
                }
            }
            ("GET", "/robots.txt") => (200, "text/plain", b"User-agent: *\nDisallow: /admin\nAllow: /\n".to_vec()),
            ("GET", "/logo.bin") => (200, "application/octet-stream", (0..=255u8).cycle().take(1000).collect()),
            ("GET", "/big") => (200, "text/plain", big_body()),
            _ => (404, "text/plain", b"not found\n".to_vec()),
        };
        let mut resp = format!("HTTP/1.1 {status} X\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\n", body.len());
        for (k, v) in extra {
            resp.push_str(&format!("{k}: {v}\r\n"));
        }
        resp.push_str("\r\n");
        let mut bytes = resp.into_bytes();
        bytes.extend_from_slice(&body);
        if s.write_all(&bytes).is_err() {
            return;
        }
        if logged.header("connection").is_some_and(|c| c.eq_ignore_ascii_case("close")) {
            return;
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Running the binary

struct Run {
    status: i32,
    stdout: String,
    stderr: String,
    took: Duration,
}

fn apitool(args: &[&str], limit: Duration) -> Run {
    let t0 = Instant::now();
    let mut child = Command::new(env!("CARGO_BIN_EXE_apitool"))
        .args(args)
        .env_remove("http_proxy")
        .env_remove("HTTP_PROXY")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = child.stdout.take().unwrap();
    let mut err = child.stderr.take().unwrap();
    let t_out = thread::spawn(move || {
        let mut s = String::new();
        let _ = out.read_to_string(&mut s);
        s
    });
    let t_err = thread::spawn(move || {
        let mut s = String::new();
        let _ = err.read_to_string(&mut s);
        s
    });
    let status = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break st;
        }
        if t0.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            panic!("apitool {args:?} still running after {limit:?}: it hangs");
        }
        thread::sleep(Duration::from_millis(10));
    };
    Run { status: status.code().unwrap_or(-1), stdout: t_out.join().unwrap(), stderr: t_err.join().unwrap(), took: t0.elapsed() }
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// The recording the tests start from: two connections, five requests, no responses.
fn seed(dir: &Path) -> PathBuf {
    let req = |method: &str, path: &str, headers: Value, body: Option<Value>| {
        let mut r = json!({"method": method, "url": format!("http://shop.example{path}"), "httpVersion": "HTTP/1.1",
            "cookies": [], "headers": headers, "queryString": [], "headersSize": -1, "bodySize": -1});
        if let Some(b) = body {
            r["postData"] = json!({"mimeType": "application/json", "text": b.to_string()});
        }
        r
    };
    let h = |extra: &[(&str, &str)]| {
        let mut v = vec![json!({"name": "Host", "value": "shop.example"}), json!({"name": "Connection", "value": "keep-alive"})];
        v.extend(extra.iter().map(|(n, x)| json!({"name": n, "value": x})));
        Value::Array(v)
    };
    let entry = |conn: &str, request: Value| {
        json!({"startedDateTime": "2024-01-01T00:00:00.000Z", "time": 0, "request": request,
            "response": {"status": 0, "statusText": "", "httpVersion": "", "cookies": [], "headers": [],
                "content": {"size": 0, "mimeType": "x-unknown"}, "redirectURL": "", "headersSize": -1, "bodySize": -1},
            "cache": {}, "timings": {"send": 0, "wait": 0, "receive": 0}, "connection": conn})
    };
    let har = json!({"log": {"version": "1.2", "creator": {"name": "test", "version": "1"}, "entries": [
        entry("1", req("GET", "/api/users/1", h(&[("Accept", "application/json")]), None)),
        entry("2", req("GET", "/robots.txt", h(&[]), None)),
        // A wrong Content-Length: replay must send the right one.
        entry("1", req("POST", "/api/orders", h(&[("Content-Type", "application/json"), ("Content-Length", "999")]),
            Some(json!({"item": "pen", "qty": 2})))),
        entry("2", req("GET", "/logo.bin", h(&[("Keep-Alive", "timeout=5"), ("TE", "trailers")]), None)),
        entry("1", req("GET", "/api/list?page=2", h(&[("Accept-Encoding", "gzip")]), None)),
    ]}});
    let p = dir.join("seed.har");
    std::fs::write(&p, serde_json::to_vec_pretty(&har).unwrap()).unwrap();
    p
}

/// The baseline: the seed replayed against the original server with `--record`.
fn baseline(dir: &Path) -> PathBuf {
    let server = Server::start(Mode::Original);
    let seed = seed(dir);
    let base = dir.join("base.har");
    let r = apitool(&["replay", s(&seed), "--target", &server.url(), "--record", s(&base)], Duration::from_secs(20));
    // Nothing recorded to compare with: every exchange is skipped, and that is not a change.
    assert_eq!(r.status, 0, "{}{}", r.stdout, r.stderr);
    assert!(r.stdout.contains("5 exchanges: 0 unchanged, 0 changed, 0 failed, 5 skipped"), "{}", r.stdout);
    base
}

fn read_json(p: &Path) -> Value {
    serde_json::from_slice(&std::fs::read(p).unwrap()).unwrap()
}

/// The JSON report's exchanges by title, each with its outcome and differences.
fn outcomes(report: &Value) -> BTreeMap<String, (String, Vec<String>)> {
    report["exchanges"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| {
            let title = format!("{} {}", x["method"].as_str().unwrap(), x["target"].as_str().unwrap());
            let diffs = x["differences"]
                .as_array()
                .unwrap()
                .iter()
                .map(|d| format!("{} {} {} -> {}", d["kind"].as_str().unwrap(), d["path"].as_str().unwrap(), d["recorded"], d["received"]))
                .collect();
            (title, (x["outcome"].as_str().unwrap().to_string(), diffs))
        })
        .collect()
}

/// A JUnit document, checked: well-formed (a strict parser, end tags matched), counts in the
/// suite attributes equal to the test cases. Returns (test case name, child element) pairs.
fn junit(p: &Path) -> Vec<(String, Option<String>)> {
    use quick_xml::events::Event;
    let text = std::fs::read_to_string(p).unwrap();
    let mut reader = quick_xml::Reader::from_str(&text);
    reader.config_mut().check_end_names = true;
    let mut stack: Vec<String> = Vec::new();
    let mut cases: Vec<(String, Option<String>)> = Vec::new();
    let mut suite_counts: Vec<BTreeMap<String, String>> = Vec::new();
    let attrs = |e: &quick_xml::events::BytesStart<'_>| -> BTreeMap<String, String> {
        e.attributes()
            .map(|a| {
                let a = a.unwrap();
                (a.key.as_ref().to_string(), a.normalized_value(quick_xml::XmlVersion::Implicit1_0).unwrap().into_owned())
            })
            .collect()
    };
    let mut open = |e: &quick_xml::events::BytesStart<'_>, stack: &[String], cases: &mut Vec<(String, Option<String>)>| {
        let name = e.name().as_ref().to_string();
        let a = attrs(e);
        match name.as_str() {
            "testsuites" | "testsuite" => suite_counts.push(a),
            "testcase" => {
                assert_eq!(stack.last().map(String::as_str), Some("testsuite"));
                cases.push((a["name"].clone(), None));
            }
            "failure" | "error" | "skipped" => {
                assert_eq!(stack.last().map(String::as_str), Some("testcase"));
                assert!(a.contains_key("message"));
                cases.last_mut().unwrap().1 = Some(name.clone());
            }
            other => panic!("unexpected element {other}"),
        }
        name
    };
    loop {
        match reader.read_event().unwrap_or_else(|e| panic!("{}: not well-formed XML: {e}", p.display())) {
            Event::Start(e) => {
                let n = open(&e, &stack, &mut cases);
                stack.push(n);
            }
            Event::Empty(e) => {
                open(&e, &stack, &mut cases);
            }
            Event::End(_) => {
                stack.pop();
            }
            Event::Eof => break,
            _ => {}
        }
    }
    assert!(stack.is_empty());
    let count = |k: &str| cases.iter().filter(|c| c.1.as_deref() == Some(k)).count().to_string();
    for a in &suite_counts {
        assert_eq!(a["tests"], cases.len().to_string());
        assert_eq!(a["failures"], count("failure"));
        assert_eq!(a["errors"], count("error"));
        assert_eq!(a["skipped"], count("skipped"));
    }
    assert_eq!(suite_counts.len(), 2);
    cases
}

/// The requests the server saw, per connection, in order.
fn by_connection(log: &[Logged]) -> Vec<Vec<String>> {
    let mut m: BTreeMap<u64, Vec<String>> = BTreeMap::new();
    for l in log {
        m.entry(l.conn).or_default().push(format!("{} {}", l.method, l.target));
    }
    let mut v: Vec<Vec<String>> = m.into_values().collect();
    v.sort();
    v
}

const LIMIT: Duration = Duration::from_secs(20);

// ---------------------------------------------------------------------------------------------
// (a) The same server: nothing changed.

#[test]
fn same_server_reports_no_change() {
    let dir = tempfile::tempdir().unwrap();
    let base = baseline(dir.path());
    let server = Server::start(Mode::Original);
    let (rj, ju) = (dir.path().join("r.json"), dir.path().join("r.xml"));
    let r = apitool(&["replay", s(&base), "--target", &server.url(), "--report-json", s(&rj), "--report-junit", s(&ju)], LIMIT);
    assert_eq!(r.status, 0, "{}{}", r.stdout, r.stderr);
    assert_eq!(r.stdout.lines().count(), 1, "only the count: {}", r.stdout);
    assert!(r.stdout.starts_with("5 exchanges: 5 unchanged, 0 changed, 0 failed replaying"), "{}", r.stdout);
    let report = read_json(&rj);
    assert_eq!(report["counts"]["unchanged"], 5);
    assert!(junit(&ju).iter().all(|(_, child)| child.is_none()));

    // One client connection per recorded connection, requests in recorded order.
    let log = server.take_log();
    assert_eq!(
        by_connection(&log),
        [vec!["GET /api/users/1", "POST /api/orders", "GET /api/list?page=2"], vec!["GET /robots.txt", "GET /logo.bin"],]
    );
    // Host rewritten, hop-by-hop fields dropped, Content-Length recomputed, body sent.
    let post = log.iter().find(|l| l.method == "POST").unwrap();
    assert_eq!(post.body, br#"{"item":"pen","qty":2}"#);
    assert_eq!(post.header("content-length"), Some("22"));
    assert_eq!(post.header("content-type"), Some("application/json"));
    for l in &log {
        assert_eq!(l.header("host"), Some(server.addr.to_string().as_str()));
        for hop in ["connection", "keep-alive", "te"] {
            assert!(l.header(hop).is_none(), "{hop} sent: {l:?}");
        }
        assert!(l.header("user-agent").is_none(), "no header of the client's own");
    }
    assert_eq!(log.iter().find(|l| l.target.starts_with("/api/list")).unwrap().header("accept-encoding"), Some("gzip"));
    assert!(log.iter().filter(|l| l.method == "GET").all(|l| l.header("content-length").is_none()));

    // The baseline recorded the responses: gzip decoded, binary as base64, connections kept.
    let b = read_json(&base);
    let entries = b["log"]["entries"].as_array().unwrap();
    assert_eq!(entries.len(), 5);
    assert_eq!(entries[4]["response"]["content"]["text"].as_str().unwrap().chars().next(), Some('{'));
    assert_eq!(entries[3]["response"]["content"]["encoding"], "base64");
    assert_eq!(entries[2]["response"]["status"], 201);
    assert_eq!(entries[0]["connection"], "1");
    assert_eq!(entries[0]["request"]["url"], "http://shop.example/api/users/1", "the request is kept as recorded");
}

/// A capture as the recording: real traffic to the server, captured as a pcap (raw IPv4),
/// replayed directly and after `apitool convert`.
#[test]
fn capture_recording_replays_without_change() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(Mode::Original);
    let host = server.addr.to_string();
    let conns = [
        vec![
            format!("GET /api/users/1 HTTP/1.1\r\nHost: {host}\r\nAccept: application/json\r\n\r\n").into_bytes(),
            format!("POST /api/orders HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\nContent-Length: 22\r\n\r\n{{\"item\":\"pen\",\"qty\":2}}").into_bytes(),
            format!("GET /api/list?page=3 HTTP/1.1\r\nHost: {host}\r\nAccept-Encoding: gzip\r\n\r\n").into_bytes(),
        ],
        vec![
            format!("GET /robots.txt HTTP/1.1\r\nHost: {host}\r\n\r\n").into_bytes(),
            format!("GET /logo.bin HTTP/1.1\r\nHost: {host}\r\n\r\n").into_bytes(),
        ],
    ];
    // Send them for real and keep both directions.
    let mut recorded = Vec::new();
    for reqs in &conns {
        let mut c = TcpStream::connect(server.addr).unwrap();
        c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut pairs = Vec::new();
        let mut buf = Vec::new();
        for q in reqs {
            c.write_all(q).unwrap();
            let resp = read_response(&mut c, &mut buf);
            pairs.push((q.clone(), resp));
        }
        recorded.push(pairs);
    }
    let pcap = dir.path().join("traffic.pcap");
    std::fs::write(&pcap, write_pcap(&recorded, server.addr.port())).unwrap();
    server.take_log();

    let rj = dir.path().join("r.json");
    let r = apitool(&["replay", s(&pcap), "--target", &server.url(), "--report-json", s(&rj), "-v"], LIMIT);
    assert_eq!(r.status, 0, "{}{}", r.stdout, r.stderr);
    let report = read_json(&rj);
    assert!(report["format"].as_str().unwrap().starts_with("pcap"), "{}", report["format"]);
    assert_eq!(report["counts"]["unchanged"], 5, "{}", r.stdout);
    assert_eq!(r.stdout.lines().filter(|l| l.starts_with("OK")).count(), 5, "{}", r.stdout);
    assert_eq!(
        by_connection(&server.take_log()),
        [vec!["GET /api/users/1", "POST /api/orders", "GET /api/list?page=3"], vec!["GET /robots.txt", "GET /logo.bin"],]
    );

    let har = dir.path().join("traffic.har");
    let c = apitool(&["convert", s(&pcap), "-o", s(&har), "-q"], LIMIT);
    assert_eq!(c.status, 0, "{}", c.stderr);
    let r = apitool(&["replay", s(&har), "--target", &server.url()], LIMIT);
    assert_eq!(r.status, 0, "{}{}", r.stdout, r.stderr);
    assert!(r.stdout.starts_with("5 exchanges: 5 unchanged"), "{}", r.stdout);
}

fn read_response(c: &mut TcpStream, buf: &mut Vec<u8>) -> Vec<u8> {
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut chunk = [0u8; 8192];
    loop {
        if let Some(end) = find(buf, b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
            let len: usize = head.lines().find_map(|l| l.strip_prefix("content-length:")).map(|v| v.trim().parse().unwrap()).unwrap();
            if buf.len() >= end + 4 + len {
                return buf.drain(..end + 4 + len).collect();
            }
        }
        assert!(Instant::now() < deadline, "no complete response");
        let n = c.read(&mut chunk).unwrap();
        assert!(n > 0, "connection closed early");
        buf.extend_from_slice(&chunk[..n]);
    }
}

/// A pcap (LINKTYPE_RAW, IPv4) of TCP connections from 127.0.0.1:40001.. to the server port:
/// handshake, the exchanges in MSS-sized segments, FIN both ways.
fn write_pcap(conns: &[Vec<(Vec<u8>, Vec<u8>)>], port: u16) -> Vec<u8> {
    let mut out = Vec::new();
    for v in [0xa1b2_c3d4u32, 0x0004_0002, 0, 0, 65_535, 101] {
        out.extend_from_slice(&v.to_le_bytes());
    }
    let mut ts: u64 = 1_700_000_000_000_000;
    let mut packet = |out: &mut Vec<u8>, from_client: bool, cport: u16, seq: u32, ack: u32, flags: u8, payload: &[u8]| {
        ts += 100;
        let (sp, dp) = if from_client { (cport, port) } else { (port, cport) };
        let total = 40 + payload.len();
        let mut p = vec![0x45, 0, (total >> 8) as u8, total as u8, 0, 0, 0x40, 0, 64, 6, 0, 0, 127, 0, 0, 1, 127, 0, 0, 1];
        p.extend_from_slice(&sp.to_be_bytes());
        p.extend_from_slice(&dp.to_be_bytes());
        p.extend_from_slice(&seq.to_be_bytes());
        p.extend_from_slice(&ack.to_be_bytes());
        p.extend_from_slice(&[0x50, flags, 0xff, 0xff, 0, 0, 0, 0]);
        p.extend_from_slice(payload);
        for v in [(ts / 1_000_000) as u32, (ts % 1_000_000) as u32, p.len() as u32, p.len() as u32] {
            out.extend_from_slice(&v.to_le_bytes());
        }
        out.extend_from_slice(&p);
    };
    const SYN: u8 = 0x02;
    const ACK: u8 = 0x10;
    const PSH: u8 = 0x08;
    const FIN: u8 = 0x01;
    for (k, pairs) in conns.iter().enumerate() {
        let cport = 40_001 + k as u16;
        let (mut cs, mut ss) = (1000u32, 9000u32);
        packet(&mut out, true, cport, cs, 0, SYN, &[]);
        packet(&mut out, false, cport, ss, cs + 1, SYN | ACK, &[]);
        cs += 1;
        ss += 1;
        packet(&mut out, true, cport, cs, ss, ACK, &[]);
        for (q, r) in pairs {
            for seg in q.chunks(1400) {
                packet(&mut out, true, cport, cs, ss, ACK | PSH, seg);
                cs += seg.len() as u32;
            }
            for seg in r.chunks(1400) {
                packet(&mut out, false, cport, ss, cs, ACK | PSH, seg);
                ss += seg.len() as u32;
            }
        }
        packet(&mut out, true, cport, cs, ss, FIN | ACK, &[]);
        packet(&mut out, false, cport, ss, cs + 1, FIN | ACK, &[]);
        packet(&mut out, true, cport, cs + 1, ss + 1, ACK, &[]);
    }
    out
}

// ---------------------------------------------------------------------------------------------
// (b) A changed server: exactly the three changes.

#[test]
fn changed_server_reports_exactly_the_changes() {
    let dir = tempfile::tempdir().unwrap();
    let base = baseline(dir.path());
    let server = Server::start(Mode::Changed);
    let (rj, ju) = (dir.path().join("r.json"), dir.path().join("r.xml"));
    let r = apitool(
        &["replay", s(&base), "--target", &server.url(), "--report-json", s(&rj), "--report-junit", s(&ju), "--color", "never"],
        LIMIT,
    );
    assert_eq!(r.status, 1, "{}{}", r.stdout, r.stderr);
    let report = read_json(&rj);
    let got = outcomes(&report);
    let want: BTreeMap<String, (String, Vec<String>)> = [
        // Plain JSON values: a string is a string, a status a number.
        ("GET /api/users/1", "changed", vec![r#"json $.name "alice" -> "alicia""#]),
        ("POST /api/orders", "changed", vec![r#"status  201 -> 200"#]),
        ("GET /api/list?page=2", "changed", vec![r#"header cache-control "max-age=60" -> "no-store""#]),
        ("GET /robots.txt", "unchanged", vec![]),
        ("GET /logo.bin", "unchanged", vec![]),
    ]
    .into_iter()
    .map(|(t, o, d)| (t.to_string(), (o.to_string(), d.into_iter().map(String::from).collect())))
    .collect();
    assert_eq!(got, want);
    assert_eq!(
        report["counts"],
        json!({"exchanges": 5, "replayable": 5, "unchanged": 2, "changed": 3, "failed": 0, "skipped": 0, "not_run": 0, "filtered_out": 0})
    );

    // The text report: a line per changed exchange, its difference below, then the count.
    let lines: Vec<&str> = r.stdout.lines().collect();
    assert_eq!(lines.len(), 7, "{}", r.stdout);
    assert!(lines[0].starts_with("CHANGED  #1 GET /api/users/1  [connection 1]"), "{}", lines[0]);
    assert_eq!(lines[1], r#"    body $.name: "alice" -> "alicia""#);
    assert!(lines[2].starts_with("CHANGED  #3 POST /api/orders"), "{}", lines[2]);
    assert_eq!(lines[3], "    status: 201 -> 200");
    assert!(lines[4].starts_with("CHANGED  #5 GET /api/list?page=2"));
    assert_eq!(lines[5], r#"    header cache-control: "max-age=60" -> "no-store""#);
    assert!(lines[6].starts_with("5 exchanges: 2 unchanged, 3 changed, 0 failed"));
    assert!(!r.stdout.contains('\x1b'));

    let cases = junit(&ju);
    assert_eq!(cases.len(), 5);
    let failing: Vec<&str> = cases.iter().filter(|c| c.1.as_deref() == Some("failure")).map(|c| c.0.as_str()).collect();
    assert_eq!(failing, ["#1 GET /api/users/1", "#3 POST /api/orders", "#5 GET /api/list?page=2"]);

    // Colour on request; ignoring the changed parts leaves only the status change.
    let r = apitool(&["replay", s(&base), "--target", &server.url(), "--color", "always"], LIMIT);
    assert!(r.stdout.contains("\x1b[1;33mCHANGED"), "{}", r.stdout);
    let r = apitool(
        &[
            "replay",
            s(&base),
            "--target",
            &server.url(),
            "--ignore-json",
            "$.name",
            "--ignore-header",
            "Cache-Control",
            "--report-json",
            s(&rj),
        ],
        LIMIT,
    );
    assert_eq!(r.status, 1);
    assert_eq!(read_json(&rj)["counts"]["changed"], 1, "{}", r.stdout);
    assert!(r.stdout.contains("status: 201 -> 200"));
}

// ---------------------------------------------------------------------------------------------
// (c) Broken targets: reported on each exchange, the run goes on, nothing hangs.

fn failures(dir: &Path, base: &Path, target: &str, extra: &[&str]) -> (Run, Value) {
    let (rj, ju) = (dir.join("f.json"), dir.join("f.xml"));
    let mut args = vec!["replay", s(base), "--target", target, "--report-json", s(&rj), "--report-junit", s(&ju)];
    args.extend_from_slice(extra);
    let r = apitool(&args, LIMIT);
    assert_eq!(r.status, 1, "{}{}", r.stdout, r.stderr);
    let report = read_json(&rj);
    let cases = junit(&ju);
    assert!(cases.iter().all(|c| c.1.as_deref() == Some("error")), "{cases:?}");
    (r, report)
}

fn kinds(report: &Value) -> Vec<String> {
    report["exchanges"].as_array().unwrap().iter().map(|x| x["error_kind"].as_str().unwrap_or("-").to_string()).collect()
}

#[test]
fn target_down_is_reported() {
    let dir = tempfile::tempdir().unwrap();
    let base = baseline(dir.path());
    let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let (r, report) = failures(dir.path(), &base, &format!("http://127.0.0.1:{port}"), &[]);
    // The first exchange of each recorded connection is refused; the rest of that connection
    // fails at once, saying why.
    assert_eq!(kinds(&report), ["refused", "refused", "connection_failed", "connection_failed", "connection_failed"]);
    assert_eq!(report["counts"]["failed"], 5);
    assert!(r.stdout.contains("FAILED   #1 GET /api/users/1"), "{}", r.stdout);
    assert!(r.stdout.contains("    connection refused"), "{}", r.stdout);
    assert!(r.stdout.contains("    not sent: entry #1 on the same recorded connection failed (connection refused)"), "{}", r.stdout);
    assert!(r.took < Duration::from_secs(5));
}

#[test]
fn resets_are_reported() {
    let dir = tempfile::tempdir().unwrap();
    let base = baseline(dir.path());
    let server = Server::start(Mode::Reset);
    let (_, report) = failures(dir.path(), &base, &server.url(), &["--timeout", "5"]);
    assert_eq!(kinds(&report), ["reset", "reset", "connection_failed", "connection_failed", "connection_failed"]);
    // One request per recorded connection reached the server: after the reset the rest of
    // that connection was not sent.
    assert_eq!(server.take_log().len(), 2);
    drop(server);

    // A reset in the middle of a response body is a reset (not "closed"), with what came.
    let server = Server::start(Mode::ResetMidBody);
    let (r, report) = failures(dir.path(), &base, &server.url(), &["--timeout", "5"]);
    assert_eq!(kinds(&report), ["reset", "reset", "connection_failed", "connection_failed", "connection_failed"]);
    assert!(r.stdout.contains("connection reset by the target while receiving the body (10 bytes received)"), "{}", r.stdout);
}

#[test]
fn stalls_and_endless_bodies_time_out() {
    let dir = tempfile::tempdir().unwrap();
    let base = baseline(dir.path());
    let server = Server::start(Mode::Stall);
    let (r, report) = failures(dir.path(), &base, &server.url(), &["--timeout", "0.3"]);
    // Nothing received before the timeout: the connection failed, the rest of it is not sent
    // (one timeout per recorded connection, not one per exchange).
    assert_eq!(kinds(&report), ["timeout", "timeout", "connection_failed", "connection_failed", "connection_failed"]);
    assert!(r.stdout.contains("timed out after 0.3s waiting for the response"), "{}", r.stdout);
    assert!(r.took < Duration::from_secs(2), "{:?}", r.took);
    assert_eq!(server.take_log().len(), 2);
    drop(server);

    let server = Server::start(Mode::NeverEnds);
    let (r, report) = failures(dir.path(), &base, &server.url(), &["--timeout", "0.3"]);
    // Bytes came: the target is alive, each exchange is tried.
    assert_eq!(kinds(&report), ["timeout"; 5]);
    assert!(r.stdout.contains("timed out after 0.3s receiving the body (10 bytes received)"), "{}", r.stdout);
    assert!(r.took < Duration::from_secs(4), "{:?}", r.took);
}

#[test]
fn huge_bodies_are_capped_and_flagged() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(Mode::Original);
    let har = json!({"log": {"version": "1.2", "entries": [
        {"request": {"method": "GET", "url": "http://x/big", "headers": []},
         "response": {"status": 200, "headers": [{"name": "Content-Type", "value": "text/plain"}],
            "content": {"size": 307200, "mimeType": "text/plain", "text": String::from_utf8(big_body()).unwrap()}}},
        {"request": {"method": "GET", "url": "http://x/robots.txt", "headers": []},
         "response": {"status": 200, "headers": [{"name": "Content-Type", "value": "text/plain"}],
            "content": {"size": 40, "mimeType": "text/plain", "text": "User-agent: *\nDisallow: /admin\nAllow: /\n"}}}
    ]}});
    let p = dir.path().join("big.har");
    std::fs::write(&p, har.to_string()).unwrap();
    let (r, report) = {
        let (rj, ju) = (dir.path().join("f.json"), dir.path().join("f.xml"));
        let r = apitool(
            &["replay", s(&p), "--target", &server.url(), "--max-body", "64k", "--report-json", s(&rj), "--report-junit", s(&ju)],
            LIMIT,
        );
        junit(&ju);
        (r, read_json(&rj))
    };
    assert_eq!(r.status, 1, "{}{}", r.stdout, r.stderr);
    assert_eq!(kinds(&report), ["body_too_large", "-"]);
    assert_eq!(report["exchanges"][1]["outcome"], "unchanged", "the run goes on");
    // Within the cap, the same body is no change.
    let r = apitool(&["replay", s(&p), "--target", &server.url()], LIMIT);
    assert_eq!(r.status, 0, "{}", r.stdout);
}

#[test]
fn ctrl_c_stops_with_a_partial_report() {
    let dir = tempfile::tempdir().unwrap();
    let base = baseline(dir.path());
    let server = Server::start(Mode::Stall);
    let rj = dir.path().join("i.json");
    let mut child = Command::new(env!("CARGO_BIN_EXE_apitool"))
        .args(["replay", s(&base), "--target", &server.url(), "--timeout", "20", "--concurrency", "1", "--report-json", s(&rj)])
        .args(["--record", s(&base)])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Wait until the first request is in flight.
    let t0 = Instant::now();
    while server.log.lock().unwrap().is_empty() {
        assert!(t0.elapsed() < Duration::from_secs(10), "no request arrived");
        thread::sleep(Duration::from_millis(10));
    }
    // SAFETY: sending a signal to our own child.
    unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGINT) };
    let t1 = Instant::now();
    let status = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break st;
        }
        if t1.elapsed() > Duration::from_secs(5) {
            let _ = child.kill();
            let _ = child.wait();
            panic!("Ctrl-C did not stop the replay");
        }
        thread::sleep(Duration::from_millis(10));
    };
    assert_eq!(status.code(), Some(130));
    let mut out = String::new();
    child.stdout.take().unwrap().read_to_string(&mut out).unwrap();
    assert!(out.contains("interrupted"), "{out}");
    let report = read_json(&rj);
    assert_eq!(report["interrupted"], true);
    // Reading the recording stops at the interrupt too, so under load fewer than all 5
    // entries may have been read; every one that was is reported, the stalled one not run.
    let read = report["entries_read"].as_u64().unwrap();
    assert!((1..=5).contains(&read), "{report}");
    assert_eq!(report["counts"]["not_run"], read, "the stalled request never finished: {report}");
    assert_eq!(report["exchanges"][0]["outcome"], "not_run", "{report}");
    // The baseline is left as it was rather than replaced by a partial one.
    assert_eq!(read_json(&base)["log"]["entries"].as_array().unwrap().len(), 5);
    let left: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().ends_with(".tmp"))
        .collect();
    assert!(left.is_empty(), "temporary files left: {left:?}");
}

// ---------------------------------------------------------------------------------------------
// Selection, Host, rate, usage errors.

#[test]
fn filter_keep_host_and_rate() {
    let dir = tempfile::tempdir().unwrap();
    let base = baseline(dir.path());
    let server = Server::start(Mode::Original);
    let rj = dir.path().join("r.json");
    let r = apitool(
        &[
            "replay",
            s(&base),
            "--target",
            &server.url(),
            "--filter",
            "path=^/api/",
            "--filter",
            "method=GET",
            "--keep-host",
            "--rate",
            "10",
            "--report-json",
            s(&rj),
        ],
        LIMIT,
    );
    assert_eq!(r.status, 0, "{}{}", r.stdout, r.stderr);
    let report = read_json(&rj);
    assert_eq!(report["counts"]["exchanges"], 2);
    assert_eq!(report["counts"]["filtered_out"], 3);
    let log = server.take_log();
    assert_eq!(log.iter().map(|l| l.target.as_str()).collect::<Vec<_>>(), ["/api/users/1", "/api/list?page=2"]);
    assert!(log.iter().all(|l| l.header("host") == Some("shop.example")));
    assert!(r.took >= Duration::from_millis(100), "two requests at 10/s take 0.1 s at least");

    // A base path on the target goes before every recorded path.
    let r = apitool(&["replay", s(&base), "--target", &format!("{}/v2", server.url()), "--filter", "GET shop.example/robots", "-q"], LIMIT);
    assert_eq!(r.status, 1, "404 on /v2/robots.txt");
    assert_eq!(server.take_log()[0].target, "/v2/robots.txt");
}

#[test]
fn usage_errors_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let base = seed(dir.path());
    let junk = dir.path().join("junk.har");
    std::fs::write(&junk, "this is not JSON").unwrap();
    let truncated_pcap = dir.path().join("bad.pcap");
    std::fs::write(&truncated_pcap, 0xa1b2_c3d4u32.to_le_bytes()).unwrap();
    for args in [
        vec!["replay", s(&base), "--target", "ftp://x"],
        vec!["replay", s(&base), "--target", "http://127.0.0.1:1", "--ignore-json", "$..x"],
        vec!["replay", s(&base), "--target", "http://127.0.0.1:1", "--filter", "path=("],
        vec!["replay", s(&base), "--target", "http://127.0.0.1:1", "--concurrency", "0"],
        vec!["replay", s(&base), "--target", "http://127.0.0.1:1", "--report-json", "/nonexistent/dir/r.json"],
        vec!["replay", s(&base), "--target", "http://127.0.0.1:1", "--report-json", s(&base)],
        vec!["replay", s(&base), "--target", "http://127.0.0.1:1", "--filter", "paht=^/api"],
        vec!["replay", s(&base), "--target", "http://127.0.0.1:1", "--deadline", "0"],
        vec!["replay", s(&base)],
    ] {
        let r = apitool(&args, LIMIT);
        assert_eq!(r.status, 2, "{args:?}: {}{}", r.stdout, r.stderr);
        assert!(!r.stderr.is_empty());
    }
    let r = apitool(&["replay", s(&base), "--target", "http://127.0.0.1:1", "--filter", "paht=^/api"], LIMIT);
    assert!(r.stderr.contains("unknown key \"paht\""), "{}", r.stderr);

    // An unreadable recording: exit status 1, as an unreadable input in convert, profile and
    // witness; one line naming it, no report.
    let rj = dir.path().join("u.json");
    for (rec, why) in [
        (s(&junk), "not a HAR file nor a pcap/pcapng capture"),
        (s(&truncated_pcap), "unreadable capture"),
        ("/nonexistent.har", "cannot open"),
    ] {
        let r = apitool(&["replay", rec, "--target", "http://127.0.0.1:1", "--report-json", s(&rj)], LIMIT);
        assert_eq!(r.status, 1, "{rec}: {}{}", r.stdout, r.stderr);
        assert_eq!(r.stderr.lines().count(), 1, "{}", r.stderr);
        assert!(r.stderr.contains(rec) && r.stderr.contains(why), "{}", r.stderr);
        assert!(!rj.exists());
    }
    for cmd in [&["convert", s(&junk), "-o", s(&dir.path().join("x.har"))][..], &["profile", s(&junk)], &["witness", "hash", s(&junk)]] {
        let r = apitool(cmd, LIMIT);
        assert_eq!(r.status, 1, "{cmd:?}: {}{}", r.stdout, r.stderr);
    }
}

/// Zero selected entries (or none that can be sent) is a failure, never a green CI step.
#[test]
fn nothing_to_replay_fails() {
    let dir = tempfile::tempdir().unwrap();
    let base = seed(dir.path());
    let rj = dir.path().join("r.json");
    let r = apitool(&["replay", s(&base), "--target", "http://127.0.0.1:1", "--filter", "path=^/nothing", "--report-json", s(&rj)], LIMIT);
    assert_eq!(r.status, 1, "{}{}", r.stdout, r.stderr);
    assert!(r.stderr.contains("no entry to replay (see --filter)"), "{}", r.stderr);
    let report = read_json(&rj);
    assert_eq!((report["counts"]["exchanges"].as_u64(), report["counts"]["filtered_out"].as_u64()), (Some(0), Some(5)));
    // Only a response without its request: selected, but nothing to send.
    let only = dir.path().join("only.har");
    std::fs::write(
        &only,
        json!({"log": {"entries": [{"request": {"method": "GET", "url": "http://10.0.0.1/"}, "response": {"status": 200},
            "_apitool": {"noRequest": true}}]}})
        .to_string(),
    )
    .unwrap();
    let r = apitool(&["replay", s(&only), "--target", "http://127.0.0.1:1"], LIMIT);
    assert_eq!(r.status, 1, "{}{}", r.stdout, r.stderr);
    assert!(r.stdout.contains("1 exchange: 0 unchanged, 0 changed, 0 failed, 1 skipped"), "{}", r.stdout);
}

/// `--filter` with `!REGEX` selects what the expression does not match.
#[test]
fn filter_negation() {
    let dir = tempfile::tempdir().unwrap();
    let base = baseline(dir.path());
    let server = Server::start(Mode::Original);
    let rj = dir.path().join("r.json");
    let r = apitool(
        &["replay", s(&base), "--target", &server.url(), "--filter", "path=!^/api/", "--filter", "!^POST ", "--report-json", s(&rj)],
        LIMIT,
    );
    assert_eq!(r.status, 0, "{}{}", r.stdout, r.stderr);
    let mut sent: Vec<String> = server.take_log().iter().map(|l| l.target.clone()).collect();
    sent.sort();
    assert_eq!(sent, ["/logo.bin", "/robots.txt"]);
    assert_eq!(read_json(&rj)["counts"]["filtered_out"], 3);
}

/// `--deadline` bounds the whole run: a stalled target costs the deadline, not exchanges x
/// timeout; what did not run is reported, exit status 1.
#[test]
fn deadline_bounds_the_run() {
    let dir = tempfile::tempdir().unwrap();
    let base = baseline(dir.path());
    let server = Server::start(Mode::NeverEnds);
    let rj = dir.path().join("d.json");
    let r = apitool(
        &[
            "replay",
            s(&base),
            "--target",
            &server.url(),
            "--timeout",
            "20",
            "--deadline",
            "0.5",
            "--concurrency",
            "1",
            "--report-json",
            s(&rj),
        ],
        LIMIT,
    );
    assert_eq!(r.status, 1, "{}{}", r.stdout, r.stderr);
    assert!(r.took < Duration::from_secs(4), "{:?}", r.took);
    let report = read_json(&rj);
    assert_eq!(report["deadline_passed"], true);
    let outcomes: Vec<&str> = report["exchanges"].as_array().unwrap().iter().map(|x| x["outcome"].as_str().unwrap()).collect();
    assert_eq!(outcomes[0], "failed", "{report}");
    assert!(report["exchanges"][0]["error"].as_str().unwrap().contains("--deadline passed while receiving the body"), "{report}");
    assert_eq!(outcomes.iter().filter(|o| **o == "not_run").count(), 4, "{outcomes:?}");
    assert!(report["exchanges"][4]["error"].as_str().unwrap().contains("--deadline passed"));
}

/// `--record` keeps header names as the target sent them and the address they came from, and
/// writes a file as `convert` does (mode 0644, not the temporary file's 0600).
#[test]
fn record_keeps_header_case_and_address() {
    let dir = tempfile::tempdir().unwrap();
    let base = baseline(dir.path());
    let b = read_json(&base);
    let e = &b["log"]["entries"][0];
    let names: Vec<&str> = e["response"]["headers"].as_array().unwrap().iter().map(|h| h["name"].as_str().unwrap()).collect();
    assert_eq!(&names[..4], ["Content-Type", "Content-Length", "Date", "Server"], "as the server wrote them");
    assert_eq!(e["serverIPAddress"], "127.0.0.1");
    assert_eq!(e["response"]["statusText"], "X", "the reason phrase received");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(std::fs::metadata(&base).unwrap().permissions().mode() & 0o777, 0o644);
    }
}
