//! Helpers shared by the integration tests that run the built binary on `testdata/`.
//!
//! Each test file compiles its own copy of this module and uses part of it.
#![allow(dead_code)]

pub mod edge;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use base64::Engine;
use serde_json::Value;
use sha2::{Digest, Sha256};

/// The binary under test.
pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_apitool")
}

/// The crate root: tests run the binary from here with relative input paths, so that what it
/// writes (the HAR comment names the input) does not depend on where the checkout is.
pub fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

pub fn testdata() -> PathBuf {
    root().join("testdata")
}

/// `apitool ARGS...`, run from the crate root, standard input closed.
pub fn apitool<I, S>(args: I) -> Output
where
    I: IntoIterator<Item = S>,
    S: AsRef<std::ffi::OsStr>,
{
    Command::new(bin()).args(args).current_dir(root()).stdin(Stdio::null()).output().expect("the apitool binary runs")
}

/// `apitool ARGS...` with `input` on its standard input.
pub fn apitool_stdin<I, S>(args: I, input: &[u8]) -> Output
where
    I: IntoIterator<Item = S>,
    S: AsRef<std::ffi::OsStr>,
{
    use std::io::Write;
    let mut child = Command::new(bin())
        .args(args)
        .current_dir(root())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the apitool binary runs");
    let mut stdin = child.stdin.take().expect("piped");
    let data = input.to_vec();
    // Written from another thread so that a full stdout pipe cannot deadlock us.
    let writer = std::thread::spawn(move || {
        let _ = stdin.write_all(&data);
    });
    let out = child.wait_with_output().expect("apitool finishes");
    writer.join().expect("stdin writer");
    out
}

/// tshark is on the PATH (tests that compare with it are skipped, with a note, when not).
pub fn tshark_available() -> bool {
    Command::new("tshark").arg("-v").output().map(|o| o.status.success()).unwrap_or(false)
}

/// A value tshark writes (`-T json`) as one object or a list of them, as a list.
pub fn list(v: &Value) -> Vec<&Value> {
    match v {
        Value::Array(a) => a.iter().collect(),
        Value::Null => Vec::new(),
        v => vec![v],
    }
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Converts `testdata/FILE` to `out` (a .har path); panics with stderr when it fails.
pub fn convert(file: &str, out: &Path, extra: &[&str]) -> Output {
    let input = format!("testdata/{file}");
    let mut args: Vec<std::ffi::OsString> = vec!["convert".into(), input.into(), "-o".into(), out.into()];
    args.extend(extra.iter().map(Into::into));
    let o = apitool(&args);
    assert!(o.status.success(), "apitool convert testdata/{file} failed ({}):\n{}", o.status, stderr(&o));
    o
}

/// A capture of `testdata/` with its truth file.
#[derive(Clone, Debug)]
pub struct Capture {
    /// The file name without its extension (`keepalive`, `two-interfaces`).
    pub name: String,
    /// The file name (`keepalive.pcap`, `two-interfaces.pcapng`).
    pub file: String,
    pub truth: PathBuf,
}

/// Every capture in `testdata/` that has a `NAME.truth.tsv`, sorted by name. A truth file
/// without its capture fails the test.
pub fn captures_with_truth() -> Vec<Capture> {
    let dir = testdata();
    let mut out = Vec::new();
    for e in std::fs::read_dir(&dir).expect("testdata/ is readable") {
        let p = e.expect("dir entry").path();
        let Some(fname) = p.file_name().and_then(|n| n.to_str()) else { continue };
        let Some(name) = fname.strip_suffix(".truth.tsv") else { continue };
        let file = ["pcap", "pcapng"]
            .iter()
            .map(|ext| format!("{name}.{ext}"))
            .find(|f| dir.join(f).is_file())
            .unwrap_or_else(|| panic!("{fname} has no capture beside it"));
        out.push(Capture { name: name.to_string(), file, truth: p.clone() });
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    assert!(out.len() >= 30, "testdata/ holds its captures ({} found)", out.len());
    out
}

/// The tags of a truth row that say the capture lost part of the exchange.
pub const DAMAGE_TAGS: [&str; 4] = ["gap", "midstream", "truncated", "snaplen"];

/// One row of a `*.truth.tsv` file.
#[derive(Clone, Debug)]
pub struct TruthRow {
    /// 1-based line number in the file.
    pub line: usize,
    pub conn: usize,
    pub method: String,
    pub url: String,
    pub status: Option<u16>,
    pub req_body: Option<(u64, String)>,
    pub resp_body: Option<(u64, String)>,
    pub notes: Vec<String>,
}

impl TruthRow {
    pub fn damaged(&self) -> bool {
        self.notes.iter().any(|n| DAMAGE_TAGS.contains(&n.as_str()))
    }

    pub fn has_note(&self, tag: &str) -> bool {
        self.notes.iter().any(|n| n == tag)
    }

    /// The URL our HAR must carry: the truth has the authority form for CONNECT, we write
    /// `https://` + authority for port 443 and `http://` + authority for any other port.
    pub fn expected_url(&self) -> String {
        match self.method.as_str() {
            "CONNECT" if self.url.ends_with(":443") => format!("https://{}", self.url),
            "CONNECT" => format!("http://{}", self.url),
            _ => self.url.clone(),
        }
    }
}

pub fn read_truth(path: &Path) -> Vec<TruthRow> {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut lines = text.lines().enumerate();
    let (_, header) = lines.next().expect("truth header");
    let want = "conn\tmethod\turl\tstatus\treq_body_len\treq_body_sha256\tresp_body_len\tresp_body_sha256\tnotes";
    assert_eq!(header, want, "{}: unexpected header", path.display());
    let body = |len: &str, sha: &str, what: &str, n: usize| -> Option<(u64, String)> {
        match (len, sha) {
            ("", "") => None,
            (l, s) => Some((l.parse().unwrap_or_else(|_| panic!("{}:{n}: bad {what} length", path.display())), s.to_string())),
        }
    };
    let mut rows = Vec::new();
    for (i, l) in lines {
        if l.is_empty() {
            continue;
        }
        let n = i + 1;
        let f: Vec<&str> = l.split('\t').collect();
        assert_eq!(f.len(), 9, "{}:{n}: expected 9 columns", path.display());
        rows.push(TruthRow {
            line: n,
            conn: f[0].parse().unwrap_or_else(|_| panic!("{}:{n}: bad conn", path.display())),
            method: f[1].to_string(),
            url: f[2].to_string(),
            status: (!f[3].is_empty()).then(|| f[3].parse().unwrap_or_else(|_| panic!("{}:{n}: bad status", path.display()))),
            req_body: body(f[4], f[5], "request body", n),
            resp_body: body(f[6], f[7], "response body", n),
            notes: f[8].split(';').filter(|s| !s.is_empty()).map(String::from).collect(),
        });
    }
    rows
}

pub fn sha256_hex(b: &[u8]) -> String {
    Sha256::digest(b).iter().map(|x| format!("{x:02x}")).collect()
}

/// The bytes of a HAR `text` field: base64-decoded when `encoding` (in `content`) or
/// `_encoding` (in `postData`, which has no such field in HAR 1.2) is `base64`.
pub fn har_text_bytes(obj: &Value) -> Option<Vec<u8>> {
    let text = obj.get("text")?.as_str()?;
    match obj.get("encoding").or_else(|| obj.get("_encoding")).and_then(Value::as_str) {
        Some("base64") => Some(base64::engine::general_purpose::STANDARD.decode(text).expect("valid base64 in a HAR text")),
        Some(other) => panic!("unknown HAR text encoding {other:?}"),
        None => Some(text.as_bytes().to_vec()),
    }
}

/// A HAR timing value (milliseconds, written with three decimals) in microseconds; -1 stays -1.
pub fn micros(v: &Value) -> i64 {
    let f = v.as_f64().unwrap_or_else(|| panic!("not a number: {v}"));
    if f == -1.0 {
        return -1;
    }
    let us = f * 1000.0;
    let r = us.round();
    assert!((us - r).abs() < 1e-6, "{v} has more than three decimals");
    r as i64
}

/// Parses an ISO 8601 date-time as HAR writes it (`2024-01-02T03:04:05.123456Z`, or with an
/// offset `+01:00`) into microseconds since the Unix epoch.
pub fn parse_iso8601(s: &str) -> i64 {
    let bad = || -> ! { panic!("not an ISO 8601 date-time: {s:?}") };
    let b = s.as_bytes();
    if b.len() < 20 || b[4] != b'-' || b[7] != b'-' || b[10] != b'T' || b[13] != b':' || b[16] != b':' {
        bad();
    }
    let num = |r: std::ops::Range<usize>| -> i64 { s.get(r).and_then(|x| x.parse().ok()).unwrap_or_else(|| bad()) };
    let (y, mo, d, h, mi, sec) = (num(0..4), num(5..7), num(8..10), num(11..13), num(14..16), num(17..19));
    let mut i = 19;
    let mut frac_us = 0i64;
    if b.get(i) == Some(&b'.') {
        let start = i + 1;
        i = start;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        let digits = &s[start..i];
        if digits.is_empty() {
            bad();
        }
        let mut d6: String = digits.chars().take(6).collect();
        while d6.len() < 6 {
            d6.push('0');
        }
        frac_us = d6.parse().unwrap_or_else(|_| bad());
    }
    let offset_s = match &s[i..] {
        "Z" => 0,
        o if o.len() == 6 && (o.starts_with('+') || o.starts_with('-')) && &o[3..4] == ":" => {
            let sign = if o.starts_with('-') { -1 } else { 1 };
            sign * (num(i + 1..i + 3) * 3600 + num(i + 4..i + 6) * 60)
        }
        _ => bad(),
    };
    // Days from the civil date (Howard Hinnant's algorithm).
    let y2 = if mo <= 2 { y - 1 } else { y };
    let era = y2.div_euclid(400);
    let yoe = y2 - era * 400;
    let mp = (mo + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    ((days * 86_400 + h * 3600 + mi * 60 + sec - offset_s) * 1_000_000) + frac_us
}

/// Reads a HAR produced by the binary: as JSON, and as HAR 1.2 with the `har` crate (which
/// fails on a document that does not have the HAR 1.2 shape).
pub fn read_har(bytes: &[u8], what: &str) -> Value {
    let typed = har::from_slice(bytes).unwrap_or_else(|e| panic!("{what}: not readable as HAR by the har crate: {e:?}"));
    assert_eq!(typed.version(), har::HarVersion::V1_2, "{what}: HAR version");
    let har::Spec::V1_2(log) = &typed.log else { unreachable!() };
    let v: Value = serde_json::from_slice(bytes).unwrap_or_else(|e| panic!("{what}: not JSON: {e}"));
    let entries = v["log"]["entries"].as_array().unwrap_or_else(|| panic!("{what}: no log.entries array"));
    assert_eq!(log.entries.len(), entries.len(), "{what}: the har crate sees every entry");
    for (t, e) in log.entries.iter().zip(entries) {
        // The typed view agrees with the raw one on the fields the tests compare.
        assert_eq!(t.request.method, e["request"]["method"].as_str().unwrap_or_default(), "{what}: method");
        assert_eq!(t.request.url, e["request"]["url"].as_str().unwrap_or_default(), "{what}: url");
        assert_eq!(Some(t.response.status), e["response"]["status"].as_i64(), "{what}: status");
        assert_eq!(t.connection.as_deref(), e["connection"].as_str(), "{what}: connection");
        assert_eq!(t.started_date_time, e["startedDateTime"].as_str().unwrap_or_default(), "{what}: startedDateTime");
    }
    v
}

/// How HAR files are checked against the HAR 1.2 JSON schema of the npm `har-validator`.
pub enum Validator {
    /// A `har-validator` command on PATH, run as `har-validator FILE`.
    Cli(PathBuf),
    /// The `har-validator` package (version 5 is a library without a command) run by node
    /// through `tests/support/validate-har.js`, with NODE_PATH set to the folder it is in.
    Node { node: PathBuf, node_path: PathBuf },
}

fn on_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path).map(|d| d.join(name)).find(|p| p.is_file())
}

/// The validator, or `None` (with a notice on stderr) when it is not installed.
pub fn har_validator() -> Option<Validator> {
    if let Some(p) = on_path("har-validator") {
        return Some(Validator::Cli(p));
    }
    let node = on_path("node").or_else(|| on_path("nodejs"));
    if let Some(node) = &node {
        let mut dirs: Vec<PathBuf> = std::env::var_os("NODE_PATH").map(|v| std::env::split_paths(&v).collect()).unwrap_or_default();
        // Global packages live in PREFIX/lib/node_modules, PREFIX being where node is.
        let real = std::fs::canonicalize(node).unwrap_or_else(|_| node.clone());
        if let Some(prefix) = real.parent().and_then(Path::parent) {
            dirs.push(prefix.join("lib/node_modules"));
        }
        dirs.push("/usr/local/lib/node_modules".into());
        dirs.push("/usr/lib/node_modules".into());
        if !dirs.iter().any(|d| d.join("har-validator/package.json").is_file())
            && let Some(npm) = on_path("npm")
            && let Ok(o) = Command::new(npm).args(["root", "-g"]).stderr(Stdio::null()).output()
        {
            dirs.push(PathBuf::from(String::from_utf8_lossy(&o.stdout).trim()));
        }
        if let Some(d) = dirs.into_iter().find(|d| d.join("har-validator/package.json").is_file()) {
            return Some(Validator::Node { node: node.clone(), node_path: d });
        }
    }
    // CI installs it and says so: there, a missing validator is a failure, not a skip.
    assert!(
        std::env::var_os("APITOOL_REQUIRE_HAR_VALIDATOR").is_none(),
        "APITOOL_REQUIRE_HAR_VALIDATOR is set but har-validator is not installed"
    );
    {
        // Past the test harness's capture, so the skip shows in the normal output; once per
        // test program.
        use std::io::Write as _;
        static ONCE: std::sync::Once = std::sync::Once::new();
        ONCE.call_once(|| {
            let _ = writeln!(
                std::io::stderr(),
                "notice: har-validator is not installed (npm install -g har-validator): HAR schema validation skipped"
            );
        });
    }
    None
}

impl Validator {
    /// Validates the files; returns the validator's complaints for those it rejects.
    pub fn check(&self, files: &[PathBuf]) -> Result<(), String> {
        match self {
            Validator::Cli(cmd) => {
                let mut errors = String::new();
                for f in files {
                    let o = Command::new(cmd).arg(f).output().expect("har-validator runs");
                    if !o.status.success() {
                        errors.push_str(&format!(
                            "{}: {}{}\n",
                            f.display(),
                            String::from_utf8_lossy(&o.stdout),
                            String::from_utf8_lossy(&o.stderr)
                        ));
                    }
                }
                if errors.is_empty() { Ok(()) } else { Err(errors) }
            }
            Validator::Node { node, node_path } => {
                let script = root().join("tests/support/validate-har.js");
                let o = Command::new(node).arg(script).args(files).env("NODE_PATH", node_path).output().expect("node runs");
                if o.status.success() {
                    Ok(())
                } else {
                    Err(format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr)))
                }
            }
        }
    }
}

/// The validator's complaints about HAR files, if any; `None` also when it is not installed
/// (with a notice).
pub fn har_validation_errors(files: &[PathBuf]) -> Option<String> {
    let v = har_validator()?;
    match v.check(files) {
        Ok(()) => {
            eprintln!("har-validator accepted {} HAR files", files.len());
            None
        }
        Err(e) => Some(format!("har-validator rejects our output:\n{e}")),
    }
}

/// Validates HAR files when the validator is installed (with a notice when it is not).
pub fn validate_hars(files: &[PathBuf]) {
    if let Some(e) = har_validation_errors(files) {
        panic!("{e}");
    }
}

/// Counts the records of a pcap or pcapng file, independently of the code under test: pcap
/// records whose data is complete; pcapng enhanced, simple and obsolete packet blocks.
pub fn count_frames(data: &[u8]) -> u64 {
    let magic = &data[..4];
    let le32 = |b: &[u8]| u32::from_le_bytes(b[..4].try_into().unwrap()) as usize;
    let be32 = |b: &[u8]| u32::from_be_bytes(b[..4].try_into().unwrap()) as usize;
    match magic {
        [0xd4, 0xc3, 0xb2, 0xa1] | [0x4d, 0x3c, 0xb2, 0xa1] | [0xa1, 0xb2, 0xc3, 0xd4] | [0xa1, 0xb2, 0x3c, 0x4d] => {
            let rd = if magic[0] == 0xa1 { be32 } else { le32 };
            let (mut off, mut n) = (24, 0);
            while off + 16 <= data.len() {
                let incl = rd(&data[off + 8..]);
                if off + 16 + incl > data.len() {
                    break;
                }
                off += 16 + incl;
                n += 1;
            }
            n
        }
        [0x0a, 0x0d, 0x0d, 0x0a] => {
            // Byte order from the section header's magic.
            let rd = if data[8..12] == [0x4d, 0x3c, 0x2b, 0x1a] { le32 } else { be32 };
            let (mut off, mut n) = (0, 0);
            while off + 12 <= data.len() {
                let (ty, len) = (rd(&data[off..]), rd(&data[off + 4..]));
                if len < 12 || off + len > data.len() {
                    break;
                }
                if matches!(ty, 2 | 3 | 6) {
                    n += 1;
                }
                off += len;
            }
            n
        }
        _ => panic!("not a capture"),
    }
}

/// The timestamp of every frame of a pcap or pcapng file, in nanoseconds since the epoch,
/// read independently of the code under test (`None` for pcapng simple packet blocks, which
/// have none). Frame numbers are 1-based: frame `n` is at index `n - 1`.
pub fn frame_times(data: &[u8]) -> Vec<Option<i64>> {
    let le32 = |b: &[u8]| u32::from_le_bytes(b[..4].try_into().unwrap());
    let be32 = |b: &[u8]| u32::from_be_bytes(b[..4].try_into().unwrap());
    let le16 = |b: &[u8]| u16::from_le_bytes(b[..2].try_into().unwrap());
    let be16 = |b: &[u8]| u16::from_be_bytes(b[..2].try_into().unwrap());
    let mut out = Vec::new();
    match &data[..4] {
        [0x0a, 0x0d, 0x0d, 0x0a] => {
            let little = data[8..12] == [0x4d, 0x3c, 0x2b, 0x1a];
            let rd32 = if little { le32 } else { be32 };
            let rd16 = if little { le16 } else { be16 };
            // Per interface: units per second of its timestamps.
            let mut units: Vec<u128> = Vec::new();
            let mut off = 0;
            while off + 12 <= data.len() {
                let (ty, len) = (rd32(&data[off..]), rd32(&data[off + 4..]) as usize);
                if len < 12 || off + len > data.len() {
                    break;
                }
                let block = &data[off..off + len];
                match ty {
                    0x0a0d0d0a => units.clear(),
                    1 => {
                        let mut per_sec: u128 = 1_000_000;
                        let mut o = 16;
                        while o + 4 <= len - 4 {
                            let (code, olen) = (rd16(&block[o..]), rd16(&block[o + 2..]) as usize);
                            if code == 0 {
                                break;
                            }
                            if code == 9 && olen == 1 {
                                let v = block[o + 4];
                                per_sec = if v & 0x80 == 0 { 10u128.pow(v as u32) } else { 1u128 << (v & 0x7f) };
                            }
                            assert!(code != 14, "if_tsoffset is not supported by this reader");
                            o += 4 + olen.div_ceil(4) * 4;
                        }
                        units.push(per_sec);
                    }
                    2 | 6 => {
                        let iface = if ty == 6 { rd32(&block[8..]) as usize } else { rd16(&block[8..]) as usize };
                        let t = ((rd32(&block[12..]) as u128) << 32) | rd32(&block[16..]) as u128;
                        out.push(Some((t * 1_000_000_000 / units[iface]) as i64));
                    }
                    3 => out.push(None),
                    _ => {}
                }
                off += len;
            }
        }
        magic => {
            let (rd32, nanos) = match magic {
                [0xd4, 0xc3, 0xb2, 0xa1] => (le32 as fn(&[u8]) -> u32, false),
                [0x4d, 0x3c, 0xb2, 0xa1] => (le32 as fn(&[u8]) -> u32, true),
                [0xa1, 0xb2, 0xc3, 0xd4] => (be32 as fn(&[u8]) -> u32, false),
                [0xa1, 0xb2, 0x3c, 0x4d] => (be32 as fn(&[u8]) -> u32, true),
                _ => panic!("not a capture"),
            };
            let mut off = 24;
            while off + 16 <= data.len() {
                let incl = rd32(&data[off + 8..]) as usize;
                if off + 16 + incl > data.len() {
                    break;
                }
                let (s, f) = (rd32(&data[off..]) as i64, rd32(&data[off + 4..]) as i64);
                out.push(Some(s * 1_000_000_000 + if nanos { f } else { f * 1000 }));
                off += 16 + incl;
            }
        }
    }
    out
}

/// Runs apitool with ARGS, its standard input an endless capture (copies of keepalive.pcap,
/// 8 MiB at once, then a copy every 20 ms for at most a minute, until the pipe closes).
pub fn endless_stdin(args: &[&str]) -> (std::process::Child, std::thread::JoinHandle<()>) {
    use std::io::Write;
    let mut child = std::process::Command::new(bin())
        .args(args)
        .current_dir(root())
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let data = std::fs::read(testdata().join("keepalive.pcap")).unwrap();
    let header = data[..24].to_vec();
    let copy = move |k: u32| {
        let mut out = Vec::new();
        let mut off = 24;
        while off + 16 <= data.len() {
            let incl = u32::from_le_bytes(data[off + 8..off + 12].try_into().unwrap()) as usize;
            let ts = u32::from_le_bytes(data[off..off + 4].try_into().unwrap()) + 1000 * k;
            out.extend_from_slice(&ts.to_le_bytes());
            out.extend_from_slice(&data[off + 4..off + 16 + incl]);
            off += 16 + incl;
        }
        out
    };
    stdin.write_all(&header).unwrap();
    let mut k = 0;
    let mut written = 0;
    while written < 8 << 20 {
        let c = copy(k);
        stdin.write_all(&c).unwrap();
        written += c.len();
        k += 1;
    }
    let feeder = std::thread::spawn(move || {
        let t = std::time::Instant::now();
        while t.elapsed() < std::time::Duration::from_secs(60) {
            if stdin.write_all(&copy(k)).is_err() {
                return;
            }
            k += 1;
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    });
    (child, feeder)
}

/// Sends SIGNAL (`INT`, `TERM`) to a child.
pub fn kill(child: &std::process::Child, signal: &str) {
    let s = std::process::Command::new("kill").args([&format!("-{signal}"), &child.id().to_string()]).status().unwrap();
    assert!(s.success(), "kill -{signal}");
}
