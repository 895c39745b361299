//! The programs people load HARs into read every HAR that the `testdata/` captures make, and
//! the HAR of the edge cases of `tests/common/edge.rs`.
//!
//! - haralyzer (PyPI): every property of its `HarEntry`, `Request` and `Response`
//!   (`tests/support/haralyzer-read.py`); `entry.response.text` used to raise KeyError on
//!   entries without a body.
//! - mitmproxy: `mitmdump -n -r FILE` loads the HAR (it refuses a whole file when one entry's
//!   `Content-Encoding` is a coding it cannot apply again, such as `gzip, br`); and the
//!   WebSocket messages of `ws.pcap` go through mitmproxy's HAR loader and writer unchanged
//!   (`tests/support/mitmproxy-websocket.py`).
//! - har-to-k6 (npm): `har-to-k6 FILE -o SCRIPT` writes a k6 script (it used to fail on
//!   multipart file parts without a `value`, and still exits 0 when it fails, so the script
//!   itself is checked).
//!
//! mitmproxy and har-to-k6 are run once over one HAR holding every entry (see [`all_in_one`]),
//! haralyzer once over all the files.
//!
//! A program that is not installed is skipped with a line on standard error (written past the
//! test harness's capture, so it shows in the normal output); with `APITOOL_REQUIRE_CONSUMERS=1`
//! (as `.ci/run` sets it) a missing program fails the test instead. The Python programs are
//! looked for first in the virtual environment `.ci/run` installs them into
//! (`$APITOOL_CONSUMERS_VENV`, by default `~/.cache/apitool/consumers-venv`), then on PATH.

mod common;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicUsize, Ordering};

use common::*;

fn required() -> bool {
    std::env::var_os("APITOOL_REQUIRE_CONSUMERS").is_some_and(|v| v == "1")
}

/// Says that a program is missing: a failure when the programs are required, else a notice
/// that shows in the normal test output.
fn missing(program: &str, install: &str) {
    assert!(!required(), "APITOOL_REQUIRE_CONSUMERS=1 but {program} is not installed ({install})");
    let _ = writeln!(std::io::stderr(), "notice: {program} is not installed ({install}): its HAR check is skipped");
}

fn venv_bin() -> Option<PathBuf> {
    let venv = match std::env::var_os("APITOOL_CONSUMERS_VENV") {
        Some(v) => PathBuf::from(v),
        None => PathBuf::from(std::env::var_os("HOME")?).join(".cache/apitool/consumers-venv"),
    };
    let bin = venv.join("bin");
    bin.is_dir().then_some(bin)
}

/// A program in the consumers' virtual environment, else on PATH.
fn find(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    venv_bin().into_iter().chain(std::env::split_paths(&path)).map(|d| d.join(name)).find(|p| p.is_file())
}

/// Every capture of `testdata/` converted once (shared by the tests of this file).
fn hars() -> &'static [PathBuf] {
    static HARS: OnceLock<Vec<PathBuf>> = OnceLock::new();
    HARS.get_or_init(|| {
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("consumers");
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let caps = captures_with_truth();
        let out: Vec<PathBuf> = caps.iter().map(|c| dir.join(format!("{}.har", c.name))).collect();
        each_parallel(&caps, |i, c| {
            convert(&c.file, &out[i], &["--quiet", "--threads", "1"]);
            None
        });
        // And the forms readers trip over (tests/common/edge.rs).
        let (cap, har) = (dir.join("edge.pcap"), dir.join("edge.har"));
        edge::write_capture(&cap);
        let o = apitool([std::ffi::OsStr::new("convert"), cap.as_os_str(), "-o".as_ref(), har.as_os_str(), "--quiet".as_ref()]);
        assert!(o.status.success(), "convert edge.pcap: {}", stderr(&o));
        let mut out = out;
        out.push(har);
        out
    })
}

/// One HAR holding the entries of all of [`hars`], in their order. mitmproxy and har-to-k6
/// take a HAR entry by entry and refuse the whole file when one entry fails, so loading this
/// file checks every entry in one start of the program (each start costs about a second);
/// when it fails, each HAR is loaded on its own to name the ones at fault.
fn all_in_one() -> &'static Path {
    static ALL: OnceLock<PathBuf> = OnceLock::new();
    ALL.get_or_init(|| {
        let mut entries = Vec::new();
        for f in hars() {
            let v = read_har(&std::fs::read(f).unwrap(), &f.display().to_string());
            entries.extend(v["log"]["entries"].as_array().unwrap().iter().cloned());
        }
        let har = serde_json::json!({"log": {"version": "1.2", "creator": {"name": "apitool", "version": "test"}, "entries": entries}});
        let p = Path::new(env!("CARGO_TARGET_TMPDIR")).join("consumers-all.har");
        std::fs::write(&p, serde_json::to_vec(&har).unwrap()).unwrap();
        p
    })
}

/// Runs `check` on the HAR of all entries, then, when it fails, on each HAR to name the ones
/// that fail; returns the failures.
fn check_all(check: impl Fn(&Path) -> Option<String> + Sync) -> Vec<String> {
    let all = all_in_one();
    match check(all) {
        None => Vec::new(),
        Some(e) => {
            let each = each_parallel(hars(), |_, f| check(f));
            if each.is_empty() { vec![e] } else { each }
        }
    }
}

/// Runs `f` over `items` on a few threads; returns the failures it reported, in order.
fn each_parallel<T: Sync>(items: &[T], f: impl Fn(usize, &T) -> Option<String> + Sync) -> Vec<String> {
    let next = AtomicUsize::new(0);
    let mut failures: Vec<(usize, String)> = std::thread::scope(|s| {
        let workers: Vec<_> = (0..3)
            .map(|_| {
                s.spawn(|| {
                    let mut mine = Vec::new();
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        let Some(item) = items.get(i) else { break mine };
                        if let Some(e) = f(i, item) {
                            mine.push((i, e));
                        }
                    }
                })
            })
            .collect();
        workers.into_iter().flat_map(|w| w.join().expect("worker")).collect()
    });
    failures.sort();
    failures.into_iter().map(|(_, e)| e).collect()
}

fn output_text(o: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
}

/// The last lines of a program's output, for a failure message.
fn tail(s: &str) -> String {
    let lines: Vec<&str> = s.lines().collect();
    lines[lines.len().saturating_sub(6)..].join("\n    ")
}

#[test]
fn haralyzer_reads_every_har() {
    let Some(python) = find("python3") else {
        return missing("haralyzer", "python3 not found");
    };
    let has = Command::new(&python).args(["-c", "import haralyzer"]).stderr(Stdio::null()).status().is_ok_and(|s| s.success());
    if !has {
        return missing("haralyzer", "pip install haralyzer");
    }
    let files = hars();
    let o = Command::new(&python).arg(root().join("tests/support/haralyzer-read.py")).args(files).output().expect("python runs");
    assert!(o.status.success(), "haralyzer cannot read our HARs:\n{}", output_text(&o));
    let _ = writeln!(std::io::stderr(), "haralyzer read {} HAR files", files.len());
}

#[test]
fn mitmproxy_loads_every_har() {
    let Some(mitmdump) = find("mitmdump") else {
        return missing("mitmproxy", "pip install mitmproxy");
    };
    let conf = Path::new(env!("CARGO_TARGET_TMPDIR")).join("mitmproxy-conf");
    let failures = check_all(|f| {
        let o = Command::new(&mitmdump)
            .args(["-n", "-q", "--set"])
            .arg(format!("confdir={}", conf.display()))
            .arg("-r")
            .arg(f)
            .stdin(Stdio::null())
            .output()
            .expect("mitmdump runs");
        let text = output_text(&o);
        (!o.status.success() || text.contains("Failed to read") || text.contains("corrupted"))
            .then(|| format!("{}: mitmdump {}:\n    {}", f.display(), o.status, tail(&text)))
    });
    assert!(failures.is_empty(), "mitmproxy refuses our HARs:\n{}", failures.join("\n"));
    let _ = writeln!(std::io::stderr(), "mitmproxy loaded the entries of {} HAR files", hars().len());
}

/// mitmproxy's HAR loader makes a flow of each WebSocket handshake of `ws.pcap` but does not
/// read `_webSocketMessages` (mitmproxy only writes them, in its HAR export): the script
/// gives each flow the entry's messages as mitmproxy `WebSocketMessage`s and has mitmproxy's
/// HAR writer write it again, which must give the entry's messages back field for field (so
/// text, base64, types and times are written as mitmproxy writes them); the messages it
/// lists must be the recording client's, per connection and direction, in order.
#[test]
fn mitmproxy_reads_the_websocket_messages() {
    let Some(python) = find("python3") else {
        return missing("mitmproxy", "python3 not found");
    };
    let has = Command::new(&python).args(["-c", "import mitmproxy.io.har"]).stderr(Stdio::null()).status().is_ok_and(|s| s.success());
    if !has {
        return missing("mitmproxy", "pip install mitmproxy");
    }
    let har = Path::new(env!("CARGO_TARGET_TMPDIR")).join("consumers-ws.har");
    convert("ws.pcap", &har, &["--quiet"]);
    let o = Command::new(&python).arg(root().join("tests/support/mitmproxy-websocket.py")).arg(&har).output().expect("python runs");
    assert!(o.status.success(), "mitmproxy does not write our WebSocket messages back as they are:\n{}", output_text(&o));
    // entry URL, then its messages: (conn, send, opcode, length, sha256)
    let mut got = Vec::new();
    let mut conn = None;
    for line in String::from_utf8(o.stdout).unwrap().lines() {
        let f: Vec<&str> = line.split(' ').collect();
        match f[0] {
            "entry" => conn = Some(f[1].rsplit_once("conn=").unwrap().1.to_string()),
            "message" => got.push((conn.clone().unwrap(), f[1] == "send", f[2].to_string(), f[3].to_string(), f[4].to_string())),
            _ => panic!("{line:?}"),
        }
    }
    let truth = std::fs::read_to_string(testdata().join("ws.messages.tsv")).unwrap();
    let want: Vec<(String, bool, String, String, String)> = truth
        .lines()
        .skip(1)
        .map(|l| l.split('\t').collect::<Vec<_>>())
        .filter(|f| f[2] == "1" || f[2] == "2")
        .map(|f| (f[0].to_string(), f[1] == "send", f[2].to_string(), f[3].to_string(), f[4].to_string()))
        .collect();
    for send in [true, false] {
        let side = |v: &[(String, bool, String, String, String)]| v.iter().filter(|m| m.1 == send).cloned().collect::<Vec<_>>();
        let (mut g, mut w) = (side(&got), side(&want));
        // Per connection, in order (the entries are in time order; so are the connections).
        g.sort_by(|a, b| a.0.cmp(&b.0));
        w.sort_by(|a, b| a.0.cmp(&b.0));
        assert_eq!(g, w, "the {} messages mitmproxy reads are the client's", if send { "sent" } else { "received" });
    }
    assert_eq!(got.len(), 72, "24 data messages on each of 3 connections");
    let _ = writeln!(std::io::stderr(), "mitmproxy read {} WebSocket messages", got.len());
}

#[test]
fn har_to_k6_converts_every_har() {
    let Some(k6) = find("har-to-k6") else {
        return missing("har-to-k6", "npm install -g har-to-k6");
    };
    let failures = check_all(|f| {
        let script = f.with_extension("k6.js");
        let _ = std::fs::remove_file(&script);
        let o = Command::new(&k6).arg(f).arg("-o").arg(&script).stdin(Stdio::null()).output().expect("har-to-k6 runs");
        let text = output_text(&o);
        let js = std::fs::read_to_string(&script).unwrap_or_default();
        // It exits 0 even when it fails: the script must be there, with its requests.
        let ok = o.status.success() && !text.contains("error:") && js.contains("export default function") && js.contains("http.");
        (!ok).then(|| format!("{}: har-to-k6 {}:\n    {}", f.display(), o.status, tail(&text)))
    });
    assert!(failures.is_empty(), "har-to-k6 cannot convert our HARs:\n{}", failures.join("\n"));
    let _ = writeln!(std::io::stderr(), "har-to-k6 converted the entries of {} HAR files", hars().len());
}
