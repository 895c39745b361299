//! The command line of the built binary: help, several inputs, directories, exit statuses,
//! error messages, the JSON summary, `--quiet`, a capture cut short, and the flags every
//! subcommand shares (`-q`, `-v`, `--color`).

mod common;

use std::path::{Path, PathBuf};

use serde_json::Value;

use common::*;

/// Help text with its line wrapping undone.
fn flat(s: &[u8]) -> String {
    String::from_utf8_lossy(s).split_whitespace().collect::<Vec<_>>().join(" ")
}

#[test]
fn help_mentions_every_flag_with_its_default() {
    let o = apitool(["--help"]);
    assert!(o.status.success(), "--help exits 0");
    let top = flat(&o.stdout);
    for want in ["convert", "--help", "--version"] {
        assert!(top.contains(want), "apitool --help mentions {want}:\n{top}");
    }

    let o = apitool(["convert", "--help"]);
    assert!(o.status.success(), "convert --help exits 0");
    let help = flat(&o.stdout);
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get()).to_string();
    let flags: &[(&str, Option<&str>)] = &[
        ("-o, --output <OUT>", None),
        ("--threads <N>", Some(&threads)),
        ("--max-ooo-per-conn <SIZE>", Some("4MiB")),
        ("--max-ooo-total <SIZE>", Some("32MiB")),
        ("--max-flows <N>", Some("100000")),
        ("--idle-timeout <SECS>", Some("120")),
        ("--gap-grace-bytes <SIZE>", Some("1MiB")),
        ("--gap-grace <SECS>", Some("10")),
        ("--order-window <SECS>", Some("5")),
        ("--order-mem <SIZE>", Some("8MiB")),
        ("--max-body <SIZE>", Some("16MiB")),
        ("--max-bodies-total <SIZE>", Some("64MiB")),
        ("--max-messages <N>", Some("10000")),
        ("--max-head <SIZE>", Some("128KiB")),
        ("--max-headers <N>", Some("1024")),
        ("--tzsp-port <PORT>", None),
        ("--h2-max-header-list <SIZE>", Some("256KiB")),
        ("--h2-max-streams <N>", Some("1000")),
        ("--h2-max-table <SIZE>", Some("64KiB")),
        ("--keylog <FILE>", None),
        ("-q, --quiet", None),
        ("-v, --verbose...", None),
        ("--color <WHEN>", Some("auto")),
        ("--summary-json <FILE>", None),
        ("-f, --format <FORMATS>", Some("har")),
        ("--dedup", None),
        ("--template-paths", None),
        ("--redact", None),
        ("--redact-patterns <FILE>", None),
        ("--zero-values", None),
        ("--max-list <N>", Some("32")),
        ("--host <REGEX>", None),
        ("--path <REGEX>", None),
        ("-h, --help", None),
    ];
    for (flag, default) in flags {
        let at = help.find(flag).unwrap_or_else(|| panic!("convert --help mentions {flag}:\n{help}"));
        // The flag's description runs to the next flag.
        let rest = &help[at + flag.len()..];
        let end = flags.iter().filter_map(|(f, _)| rest.find(f)).min().unwrap_or(rest.len());
        let desc = &rest[..end];
        match default {
            Some(d) => assert!(desc.contains(&format!("[default: {d}]")), "{flag} shows its default {d}: {desc:?}"),
            None => assert!(!desc.contains("[default:"), "{flag} has no default: {desc:?}"),
        }
    }
    // Every flag the help lists is one of the above (a new flag needs its line here).
    let listed = help.split(' ').filter(|w| w.starts_with("--")).collect::<std::collections::BTreeSet<_>>();
    for w in listed {
        assert!(flags.iter().any(|(f, _)| f.split([' ', ',']).any(|x| x == w)), "convert --help lists {w}, which this test does not know");
    }
    for w in ["INPUT", "pcapng", "standard input"] {
        assert!(help.contains(w), "convert --help explains the inputs ({w})");
    }
}

/// Copies testdata captures into `dir` (created), returning the copies.
fn copy_captures(dir: &Path, files: &[&str]) -> Vec<PathBuf> {
    std::fs::create_dir_all(dir).unwrap();
    files
        .iter()
        .map(|f| {
            let to = dir.join(f);
            std::fs::copy(testdata().join(f), &to).unwrap();
            to
        })
        .collect()
}

/// An output directory argument: the path with a trailing slash.
fn dir_arg(p: &Path) -> String {
    format!("{}/", p.display())
}

/// The names of the files in a directory, sorted.
fn listing(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    v.sort();
    v
}

/// The entries of a HAR, as the har crate and serde_json read them.
fn entries(path: &Path) -> Vec<Value> {
    let v = read_har(&std::fs::read(path).unwrap(), &path.display().to_string());
    v["log"]["entries"].as_array().unwrap().clone()
}

#[test]
fn several_inputs_and_a_directory_into_an_output_directory() {
    let tmp = tempfile::tempdir().unwrap();
    // Several files.
    let out = tmp.path().join("out");
    let o =
        apitool(["convert", "testdata/keepalive.pcap", "testdata/two-interfaces.pcapng", "testdata/zstd.pcap", "-q", "-o", &dir_arg(&out)]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(listing(&out), ["keepalive.har", "two-interfaces.har", "zstd.har"]);
    // Each is what converting that input alone gives.
    for name in ["keepalive", "two-interfaces", "zstd"] {
        let file = if name == "two-interfaces" { format!("{name}.pcapng") } else { format!("{name}.pcap") };
        let alone = tmp.path().join(format!("{name}.alone.har"));
        convert(&file, &alone, &["-q"]);
        assert!(std::fs::read(&alone).unwrap() == std::fs::read(out.join(format!("{name}.har"))).unwrap(), "{name}: same HAR alone");
    }

    // A directory: its captures (*.pcap, *.pcapng, *.cap), nothing else; into a directory
    // that does not exist yet.
    let input = tmp.path().join("in");
    copy_captures(&input, &["pipelined.pcap", "simple.pcapng", "http10.pcap"]);
    std::fs::copy(testdata().join("concurrent.pcap"), input.join("concurrent.cap")).unwrap();
    std::fs::write(input.join("notes.txt"), "not a capture").unwrap();
    std::fs::copy(testdata().join("keepalive.truth.tsv"), input.join("keepalive.truth.tsv")).unwrap();
    let out2 = tmp.path().join("new/nested");
    let o = apitool(["convert", input.to_str().unwrap(), "-q", "-o", &dir_arg(&out2)]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(listing(&out2), ["concurrent.har", "http10.har", "pipelined.har", "simple.har"]);
    assert_eq!(entries(&out2.join("concurrent.har")).len(), 12);
    assert_eq!(entries(&out2.join("simple.har")).len(), 4);

    // Two inputs with the same name do not overwrite each other.
    let other = tmp.path().join("other");
    copy_captures(&other, &["pipelined.pcap"]);
    std::fs::copy(testdata().join("zstd.pcap"), other.join("pipelined.pcap")).unwrap();
    let out3 = tmp.path().join("out3");
    let o = apitool([
        "convert",
        input.join("pipelined.pcap").to_str().unwrap(),
        other.join("pipelined.pcap").to_str().unwrap(),
        "-q",
        "-o",
        &dir_arg(&out3),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(listing(&out3), ["pipelined-2.har", "pipelined.har"]);
    assert_eq!(entries(&out3.join("pipelined.har")).len(), 3);
    assert_eq!(entries(&out3.join("pipelined-2.har")).len(), 2, "the second is zstd's");

    let mut hars: Vec<PathBuf> = Vec::new();
    for d in [&out, &out2, &out3] {
        hars.extend(listing(d).into_iter().map(|n| d.join(n)));
    }
    validate_hars(&hars);
}

#[test]
fn a_bad_input_fails_alone_with_status_1() {
    let tmp = tempfile::tempdir().unwrap();
    let garbage = tmp.path().join("garbage.pcap");
    std::fs::write(&garbage, "GET / HTTP/1.1\r\nHost: example\r\n\r\nthis is not a capture\n").unwrap();
    let empty = tmp.path().join("empty.pcap");
    std::fs::write(&empty, "").unwrap();
    let missing = tmp.path().join("missing.pcap");
    let out = tmp.path().join("out");
    let o = apitool([
        "convert",
        "testdata/keepalive.pcap",
        garbage.to_str().unwrap(),
        empty.to_str().unwrap(),
        missing.to_str().unwrap(),
        "testdata/zstd.pcap",
        "-q",
        "-o",
        &dir_arg(&out),
    ]);
    assert_eq!(o.status.code(), Some(1), "a bad input makes the status 1: {}", stderr(&o));
    // The good inputs are still written, in full.
    assert_eq!(listing(&out), ["keepalive.har", "zstd.har"]);
    assert_eq!(entries(&out.join("keepalive.har")).len(), 4);
    assert_eq!(entries(&out.join("zstd.har")).len(), 2);
    // One line per bad input, naming it.
    let err = stderr(&o);
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(lines.len(), 3, "one error line per bad input, nothing else with --quiet:\n{err}");
    let line_of = |p: &Path| {
        let p = p.to_str().unwrap();
        lines.iter().find(|l| l.contains(p)).copied().unwrap_or_else(|| panic!("an error line names {p}:\n{err}"))
    };
    let g = line_of(&garbage);
    assert!(g.contains("byte 0") && g.contains("not a pcap or pcapng"), "unrecognised input: {g}");
    let e = line_of(&empty);
    assert!(e.contains("byte 0") && e.contains("empty"), "empty input: {e}");
    let m = line_of(&missing);
    assert!(m.contains("No such file"), "missing input: {m}");
    for l in &lines {
        assert!(l.starts_with("apitool: "), "error lines start with the program name: {l}");
    }
    // Nothing is left behind for the failed inputs (no partial HAR, no temporary file).
    assert!(!out.join("garbage.har").exists() && !out.join("empty.har").exists());

    // A single bad input to a file: status 1, no output file.
    let single = tmp.path().join("single.har");
    let o = apitool(["convert", garbage.to_str().unwrap(), "-o", single.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1));
    assert!(!single.exists(), "no HAR is written for an unreadable input");
    assert_eq!(listing(tmp.path()).iter().filter(|n| n.contains(".tmp")).count(), 0, "no temporary file is left");

    // A directory without captures.
    let empty_dir = tmp.path().join("nothing");
    std::fs::create_dir(&empty_dir).unwrap();
    std::fs::write(empty_dir.join("readme.txt"), "x").unwrap();
    let o = apitool(["convert", empty_dir.to_str().unwrap(), "-o", &dir_arg(&tmp.path().join("o2"))]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains(empty_dir.to_str().unwrap()) && stderr(&o).contains("no capture files"), "{}", stderr(&o));

    validate_hars(&[out.join("keepalive.har"), out.join("zstd.har")]);
}

#[test]
fn all_inputs_converted_is_status_0() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    let o = apitool(["convert", "testdata/keepalive.pcap", "testdata/midstream.pcap", "-q", "-o", &dir_arg(&out)]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(o.stderr.is_empty() && o.stdout.is_empty());
    validate_hars(&[out.join("keepalive.har"), out.join("midstream.har")]);
}

#[test]
fn usage_errors_are_status_2() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("x.har");
    let out = out.to_str().unwrap();
    let cases: &[(&[&str], &str)] = &[
        (&["convert", "--no-such-flag", "testdata/keepalive.pcap", "-o", out], "--no-such-flag"),
        (&["convert", "--threads", "0", "testdata/keepalive.pcap", "-o", out], "--threads"),
        (&["convert", "--threads", "many", "testdata/keepalive.pcap", "-o", out], "--threads"),
        (&["convert", "--max-body", "12 parsecs", "testdata/keepalive.pcap", "-o", out], "--max-body"),
        (&["convert", "--idle-timeout", "0", "testdata/keepalive.pcap", "-o", out], "--idle-timeout"),
        (&["convert", "testdata/keepalive.pcap"], "--output"),
        (&["convert", "-o", out], "INPUT"),
        (&["convert", "testdata/keepalive.pcap", "testdata/zstd.pcap", "-o", "-"], "output directory"),
        (&["frobnicate"], "frobnicate"),
    ];
    for (args, mention) in cases {
        let o = apitool(*args);
        assert_eq!(o.status.code(), Some(2), "apitool {args:?} is a usage error: {}", stderr(&o));
        assert!(stderr(&o).contains(mention), "apitool {args:?}: the message mentions {mention}: {}", stderr(&o));
        assert!(!Path::new(out).exists(), "apitool {args:?} wrote nothing");
    }
}

#[test]
fn an_unwritable_output_fails_with_status_1() {
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("a-file");
    std::fs::write(&file, "x").unwrap();
    for target in [tmp.path().join("no-such-dir/x.har"), file.join("x.har")] {
        let t = target.to_str().unwrap();
        let o = apitool(["convert", "testdata/keepalive.pcap", "-o", t]);
        assert_eq!(o.status.code(), Some(1), "-o {t}: {}", stderr(&o));
        let err = stderr(&o);
        let line = err.lines().find(|l| l.starts_with("apitool: ")).unwrap_or_else(|| panic!("-o {t}: an error line: {err}"));
        assert!(line.contains(t) && line.contains("cannot write"), "-o {t}: the message names the output: {line}");
        assert!(!target.exists());
    }
    // An output directory that cannot be created (its parent is a file).
    let o = apitool(["convert", "testdata/keepalive.pcap", "testdata/zstd.pcap", "-o", &dir_arg(&file.join("sub"))]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(stderr(&o).contains("cannot create output directory"), "{}", stderr(&o));
    // A summary that cannot be written.
    let har = tmp.path().join("ok.har");
    let o = apitool([
        "convert",
        "testdata/keepalive.pcap",
        "-q",
        "-o",
        har.to_str().unwrap(),
        "--summary-json",
        file.join("s.json").to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(stderr(&o).contains("cannot write the summary"), "{}", stderr(&o));
    assert!(har.exists(), "the HAR is still written");
    validate_hars(&[har]);
}

/// Where a pcap file is cut short: the offset of its incomplete last record, if any.
fn pcap_cut_at(data: &[u8]) -> Option<u64> {
    assert_eq!(&data[..4], [0xd4, 0xc3, 0xb2, 0xa1], "a little-endian µs pcap");
    let mut off = 24;
    while off < data.len() {
        if off + 16 > data.len() {
            return Some(off as u64);
        }
        let incl = u32::from_le_bytes(data[off + 8..off + 12].try_into().unwrap()) as usize;
        if off + 16 + incl > data.len() {
            return Some(off as u64);
        }
        off += 16 + incl;
    }
    None
}

#[test]
fn summary_json_has_per_input_counters() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    let sum = tmp.path().join("summary.json");
    let inputs = ["keepalive.pcap", "concurrent.pcap", "two-interfaces.pcapng", "truncated-file.pcap", "ipv4-fragments.pcap"];
    let mut args: Vec<String> = vec!["convert".into()];
    args.extend(inputs.iter().map(|f| format!("testdata/{f}")));
    args.extend(["-q", "-o", &dir_arg(&out), "--summary-json", sum.to_str().unwrap()].map(String::from));
    let o = apitool(&args);
    assert!(o.status.success(), "{}", stderr(&o));
    let v: Value = serde_json::from_slice(&std::fs::read(&sum).unwrap()).expect("the summary is JSON");
    assert_eq!(v["failed"], Value::Bool(false));
    let list = v["inputs"].as_array().expect("inputs");
    assert_eq!(list.len(), inputs.len());
    for (s, file) in list.iter().zip(inputs) {
        let data = std::fs::read(testdata().join(file)).unwrap();
        let rows = read_truth(&testdata().join(format!("{}.truth.tsv", file.rsplit_once('.').unwrap().0)));
        let conns = rows.iter().map(|r| r.conn).collect::<std::collections::BTreeSet<_>>().len() as u64;
        assert_eq!(s["input"], format!("testdata/{file}"));
        assert_eq!(s["bytes"].as_u64(), Some(data.len() as u64), "{file}: bytes");
        assert_eq!(s["frames"].as_u64(), Some(count_frames(&data)), "{file}: frames");
        assert_eq!(s["tcp"]["flows"].as_u64(), Some(conns), "{file}: tcp.flows");
        assert_eq!(s["entries"].as_u64(), Some(rows.len() as u64), "{file}: entries");
        assert_eq!(s["http"]["exchanges"].as_u64(), Some(rows.len() as u64), "{file}: http.exchanges");
        let truncated = (file == "truncated-file.pcap").then(|| pcap_cut_at(&data).expect("the file is cut"));
        assert_eq!(s["truncated_at"].as_u64(), truncated, "{file}: truncated_at");
    }
    assert_eq!(list[4]["ip_fragments"]["reassembled"].as_u64().map(|n| n > 0), Some(true), "fragments were reassembled");

    // Failed inputs are in the list too, in order, each with its error; "failed" says so.
    let sum2 = tmp.path().join("summary2.json");
    let empty_dir = tmp.path().join("no-captures");
    std::fs::create_dir(&empty_dir).unwrap();
    let o = apitool([
        "convert",
        "testdata/zstd.pcap",
        "testdata/README.md",
        empty_dir.to_str().unwrap(),
        "-q",
        "-o",
        &dir_arg(&tmp.path().join("out2")),
        "--summary-json",
        sum2.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(1));
    let v: Value = serde_json::from_slice(&std::fs::read(&sum2).unwrap()).expect("the summary is JSON");
    assert_eq!(v["failed"], Value::Bool(true));
    assert_eq!(v["interrupted"], Value::Bool(false));
    let list = v["inputs"].as_array().unwrap();
    assert_eq!(list.len(), 3, "{v}");
    assert_eq!(list[0]["input"], "testdata/zstd.pcap");
    assert!(list[0].get("error").is_none() && list[0]["entries"] == 2, "{}", list[0]);
    assert_eq!(list[1]["input"], "testdata/README.md");
    let err = list[1]["error"].as_str().expect("the failed input's error");
    assert!(err.contains("testdata/README.md") && err.contains("not a pcap or pcapng"), "{err}");
    assert_eq!(list[2]["input"], empty_dir.to_str().unwrap());
    assert!(list[2]["error"].as_str().is_some_and(|e| e.contains("no capture files")), "{}", list[2]);
}

#[test]
fn quiet_prints_nothing_for_a_clean_capture() {
    let tmp = tempfile::tempdir().unwrap();
    let har = tmp.path().join("k.har");
    let o = apitool(["convert", "testdata/keepalive.pcap", "--quiet", "-o", har.to_str().unwrap()]);
    assert!(o.status.success());
    assert!(o.stderr.is_empty(), "--quiet: nothing on stderr, got {:?}", stderr(&o));
    assert!(o.stdout.is_empty());
    // Without it, one line: the input, its counts and where the HAR went.
    let o = apitool(["convert", "testdata/keepalive.pcap", "-o", har.to_str().unwrap()]);
    assert!(o.status.success());
    let err = stderr(&o);
    assert_eq!(err.lines().count(), 1, "a clean capture's summary is one line: {err}");
    for want in ["testdata/keepalive.pcap", "32 frames", "1 connection", "4 exchanges", har.to_str().unwrap()] {
        assert!(err.contains(want), "the summary mentions {want:?}: {err}");
    }
    // -o - writes the HAR on stdout and nothing else.
    let o = apitool(["convert", "testdata/keepalive.pcap", "-q", "-o", "-"]);
    assert!(o.status.success() && o.stderr.is_empty());
    assert!(o.stdout == std::fs::read(&har).unwrap(), "-o - gives the same bytes as -o FILE");
    validate_hars(&[har]);
}

#[test]
fn a_truncated_capture_converts_and_says_where_it_was_cut() {
    let tmp = tempfile::tempdir().unwrap();
    let har = tmp.path().join("t.har");
    let cut = pcap_cut_at(&std::fs::read(testdata().join("truncated-file.pcap")).unwrap()).expect("the file is cut");
    let o = apitool(["convert", "testdata/truncated-file.pcap", "-o", har.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(0), "a cut capture is not an error: {}", stderr(&o));
    let err = stderr(&o);
    assert!(err.contains(&format!("ends in the middle of a record at byte {cut}")), "the summary mentions the cut at byte {cut}: {err}");
    let e = entries(&har);
    assert_eq!(e.len(), 4);
    assert!(!e[3]["_apitool"]["anomalies"].as_array().unwrap().is_empty(), "the cut exchange is flagged");
    // The same through standard input.
    let data = std::fs::read(testdata().join("truncated-file.pcap")).unwrap();
    let o = apitool_stdin(["convert", "-", "-o", tmp.path().join("s.har").to_str().unwrap()], &data);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(stderr(&o).contains(&format!("at byte {cut}")), "stdin: {}", stderr(&o));
    validate_hars(&[har]);
}

/// `testdata/keepalive.pcap` with its records repeated `copies` times, each copy 1000 s after
/// the previous one (the same connection again, long after it ended).
fn repeated_keepalive(copies: u32) -> Vec<u8> {
    let data = std::fs::read(testdata().join("keepalive.pcap")).unwrap();
    let mut out = data[..24].to_vec();
    for k in 0..copies {
        let mut off = 24;
        while off + 16 <= data.len() {
            let incl = u32::from_le_bytes(data[off + 8..off + 12].try_into().unwrap()) as usize;
            let ts = u32::from_le_bytes(data[off..off + 4].try_into().unwrap()) + 1000 * k;
            out.extend_from_slice(&ts.to_le_bytes());
            out.extend_from_slice(&data[off + 4..off + 16 + incl]);
            off += 16 + incl;
        }
    }
    out
}

#[test]
fn a_closed_standard_output_is_not_an_error() {
    // Like `apitool convert big.pcap -o - | head -c 10`: the reader goes away early.
    let tmp = tempfile::tempdir().unwrap();
    let input = tmp.path().join("big.pcap");
    std::fs::write(&input, repeated_keepalive(8)).unwrap();
    let mut child = std::process::Command::new(bin())
        .args(["convert", input.to_str().unwrap(), "-q", "-o", "-"])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = child.stdout.take().unwrap();
    let mut head = [0u8; 10];
    std::io::Read::read_exact(&mut stdout, &mut head).unwrap();
    assert_eq!(&head, b"{\"log\":{\"v");
    drop(stdout);
    let o = child.wait_with_output().unwrap();
    assert!(o.stderr.is_empty(), "nothing on stderr: {:?}", stderr(&o));
    assert_eq!(o.status.code(), Some(0), "a closed pipe is success");

    // The whole output, for comparison: 8 times keepalive's exchanges (about 0.5 MB, more
    // than a pipe holds, so the early close above did cut the output).
    let o = apitool(["convert", input.to_str().unwrap(), "-q", "-o", "-"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(o.stdout.len() > 4 << 16, "the HAR is larger than a pipe buffer ({} bytes)", o.stdout.len());
    let v = read_har(&o.stdout, "repeated keepalive");
    assert_eq!(v["log"]["entries"].as_array().map(Vec::len), Some(32));
    let full = tmp.path().join("big.har");
    std::fs::write(&full, &o.stdout).unwrap();
    validate_hars(&[full]);
}

#[test]
fn a_fifo_or_device_output_is_written_in_place_not_replaced() {
    use std::os::unix::fs::FileTypeExt;
    // Regular outputs are written to a temporary file renamed over the target; a target that
    // is a FIFO or a device must be written to instead (run as root, the rename would replace
    // /dev/null with a regular file).
    let input = testdata().join("keepalive.pcap");
    let tmp = tempfile::tempdir().unwrap();
    let fifo = tmp.path().join("out.fifo");
    if std::process::Command::new("mkfifo").arg(&fifo).status().is_ok_and(|s| s.success()) {
        for format in ["har", "witness"] {
            let path = fifo.clone();
            // Blocks until apitool opens the FIFO, ends when apitool closes it.
            let reader = std::thread::spawn(move || std::fs::read(path).unwrap());
            let o = apitool(["convert", "-q", "-f", format, input.to_str().unwrap(), "-o", fifo.to_str().unwrap()]);
            // On failure the reader may never be released: do not wait for it.
            assert!(o.status.success(), "{format}: {}", stderr(&o));
            assert!(std::fs::metadata(&fifo).unwrap().file_type().is_fifo(), "{format}: the FIFO is still a FIFO");
            // apitool opened and closed it, so the reader is done or about to be (bounded wait).
            for _ in 0..3000 {
                if reader.is_finished() {
                    break;
                }
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
            assert!(reader.is_finished(), "{format}: nothing was written to the FIFO");
            let bytes = reader.join().unwrap();
            match format {
                "har" => {
                    let v = read_har(&bytes, "HAR through a FIFO");
                    assert_eq!(v["log"]["entries"].as_array().map(Vec::len), Some(4));
                }
                _ => {
                    let file = tmp.path().join("through-fifo.witness");
                    std::fs::write(&file, &bytes).unwrap();
                    let o = apitool(["witness", "hash", file.to_str().unwrap()]);
                    assert!(o.status.success(), "{}", stderr(&o));
                    assert_eq!(o.stdout.iter().filter(|&&c| c == b'\n').count(), 4, "four witnesses");
                }
            }
        }
    }
    let o = apitool(["convert", "-q", input.to_str().unwrap(), "-o", "/dev/null"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(std::fs::metadata("/dev/null").unwrap().file_type().is_char_device(), "/dev/null is still a character device");
}

/// The temporary files apitool writes outputs to, left in `dir`.
fn temporaries(dir: &Path) -> Vec<String> {
    listing(dir).into_iter().filter(|n| n.starts_with(".apitool-") && n.ends_with(".tmp")).collect()
}

#[test]
fn an_output_that_is_an_input_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let cap = copy_captures(tmp.path(), &["keepalive.pcap"]).remove(0);
    let original = std::fs::read(&cap).unwrap();
    // The same path, another spelling of it, a hard link to it: all the same file.
    let link = tmp.path().join("link.har");
    std::fs::hard_link(&cap, &link).unwrap();
    let dotted = tmp.path().join(".").join("keepalive.pcap");
    let c = cap.to_str().unwrap();
    let cases: Vec<Vec<&str>> = vec![
        vec!["convert", c, "-o", c],
        vec!["convert", c, "-o", dotted.to_str().unwrap()],
        vec!["convert", c, "-o", link.to_str().unwrap()],
        vec!["convert", c, "-f", "witness", "-o", c],
        vec!["convert", c, "-q", "-o", "-", "--summary-json", c],
    ];
    for args in &cases {
        let o = apitool(args);
        assert_eq!(o.status.code(), Some(2), "apitool {args:?}: {}", stderr(&o));
        let err = stderr(&o);
        assert_eq!(err.lines().count(), 1, "one line: {err}");
        assert!(err.contains("is the input") && err.contains(c), "apitool {args:?}: {err}");
        assert!(o.stdout.is_empty(), "nothing written to standard output");
        assert_eq!(std::fs::read(&cap).unwrap(), original, "apitool {args:?} left the capture as it was");
    }
    assert!(temporaries(tmp.path()).is_empty());

    // HAR and witnesses to one file: refused, nothing written.
    let both = tmp.path().join("both.witness");
    let o = apitool(["convert", c, "-f", "har,witness", "-o", both.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("same file"), "{}", stderr(&o));
    assert!(!both.exists());
    // The summary on an output: refused.
    let har = tmp.path().join("k.har");
    let o = apitool(["convert", c, "-o", har.to_str().unwrap(), "--summary-json", har.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(!har.exists());
    let o = apitool(["convert", c, "-o", "-", "--summary-json", "-"]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(o.stdout.is_empty());
    // An output beside the input is fine.
    let o = apitool(["convert", c, "-q", "-f", "har,witness", "-o", har.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(har.exists() && tmp.path().join("k.witness").exists());
}

#[test]
fn several_inputs_need_an_output_directory() {
    let tmp = tempfile::tempdir().unwrap();
    let name = tmp.path().join("name.har");
    let o = apitool(["convert", "testdata/keepalive.pcap", "testdata/zstd.pcap", "-o", name.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    let err = stderr(&o);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("several inputs") && err.contains("-o DIR/"), "{err}");
    assert!(!name.exists(), "no directory (or file) called name.har");
    // A directory input is several inputs.
    let o = apitool(["convert", "testdata", "-o", name.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(!name.exists());
    // With a trailing slash it is a directory, created.
    let o = apitool(["convert", "testdata/keepalive.pcap", "testdata/zstd.pcap", "-q", "-o", &dir_arg(&name)]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(listing(&name), ["keepalive.har", "zstd.har"]);
    // An existing directory needs no slash.
    let o = apitool(["convert", "testdata/keepalive.pcap", "testdata/http10.pcap", "-q", "-o", name.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(listing(&name), ["http10.har", "keepalive.har", "zstd.har"]);
}

#[test]
fn summary_json_dash_is_standard_output() {
    let tmp = tempfile::tempdir().unwrap();
    let har = tmp.path().join("k.har");
    let o = apitool(["convert", "testdata/keepalive.pcap", "-q", "-o", har.to_str().unwrap(), "--summary-json", "-"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let v: Value = serde_json::from_slice(&o.stdout).expect("the summary on standard output");
    assert_eq!(v["inputs"][0]["input"], "testdata/keepalive.pcap");
    assert_eq!(v["inputs"][0]["entries"], 4);
    assert!(!tmp.path().join("-").exists() && !Path::new("-").exists(), "no file called -");
}

/// A pcap file header (little-endian, µs, Ethernet) and a first record header that cannot be
/// one (a record of 2 GB).
fn pcap_with_an_implausible_first_record() -> Vec<u8> {
    let mut v = std::fs::read(testdata().join("keepalive.pcap")).unwrap()[..24].to_vec();
    v.extend([1, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0x7f, 0xff, 0xff, 0xff, 0x7f]);
    v.extend([0u8; 64]);
    v
}

#[test]
fn an_input_without_one_readable_frame_is_a_failed_input() {
    let tmp = tempfile::tempdir().unwrap();
    let bad_pcap = tmp.path().join("bad-record.pcap");
    std::fs::write(&bad_pcap, pcap_with_an_implausible_first_record()).unwrap();
    // A pcapng whose first block (the section header) has a length that is not a multiple of 4.
    let mut ng = std::fs::read(testdata().join("simple.pcapng")).unwrap();
    ng[4..8].copy_from_slice(&13u32.to_le_bytes());
    let bad_ng = tmp.path().join("bad-block.pcapng");
    std::fs::write(&bad_ng, &ng).unwrap();
    for (file, offset) in [(&bad_pcap, 24), (&bad_ng, 0)] {
        let har = tmp.path().join("out.har");
        let o = apitool(["convert", file.to_str().unwrap(), "-o", har.to_str().unwrap()]);
        assert_eq!(o.status.code(), Some(1), "{}: {}", file.display(), stderr(&o));
        let err = stderr(&o);
        assert_eq!(err.lines().count(), 1, "one line: {err}");
        assert!(err.contains(file.to_str().unwrap()) && err.contains(&format!("byte {offset}")), "names the file and offset: {err}");
        assert!(err.contains("not one frame"), "{err}");
        assert!(!har.exists() && temporaries(tmp.path()).is_empty(), "nothing written");
        // From standard input to standard output: nothing on standard output.
        let o = apitool_stdin(["convert", "-", "-o", "-"], &std::fs::read(file).unwrap());
        assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
        assert!(o.stdout.is_empty(), "standard output: {:?}", String::from_utf8_lossy(&o.stdout));
        assert!(stderr(&o).contains(&format!("standard input: byte {offset}")), "{}", stderr(&o));
    }
    // In the summary, with its error, beside a good input.
    let sum = tmp.path().join("s.json");
    let o = apitool([
        "convert",
        bad_pcap.to_str().unwrap(),
        "testdata/keepalive.pcap",
        "-q",
        "-o",
        &dir_arg(&tmp.path().join("o")),
        "--summary-json",
        sum.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let v: Value = serde_json::from_slice(&std::fs::read(&sum).unwrap()).unwrap();
    assert!(v["inputs"][0]["error"].as_str().is_some_and(|e| e.contains("byte 24")), "{v}");
    assert_eq!(v["inputs"][1]["entries"], 4);
    // A capture with no records at all is not damaged: 0 frames, status 0.
    let empty = tmp.path().join("header-only.pcap");
    std::fs::write(&empty, &pcap_with_an_implausible_first_record()[..24]).unwrap();
    let o = apitool(["convert", empty.to_str().unwrap(), "-o", tmp.path().join("e.har").to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(stderr(&o).contains("0 frames"), "{}", stderr(&o));
}

#[test]
fn a_fatal_input_error_writes_nothing_to_standard_output() {
    let o = apitool_stdin(["convert", "-", "-o", "-"], b"hi\n");
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(o.stdout.is_empty(), "standard output: {:?}", String::from_utf8_lossy(&o.stdout));
    let err = stderr(&o);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.starts_with("apitool: standard input: byte 0: "), "standard input is named: {err}");
}

#[test]
fn standard_input_is_named_and_summaries_are_grammatical() {
    let tmp = tempfile::tempdir().unwrap();
    let data = std::fs::read(testdata().join("keepalive.pcap")).unwrap();
    let o = apitool_stdin(["convert", "-", "-o", "-", "--summary-json", tmp.path().join("s.json").to_str().unwrap()], &data);
    assert!(o.status.success(), "{}", stderr(&o));
    let err = stderr(&o);
    assert!(err.starts_with("standard input: pcap") && err.contains("-> standard output"), "{err}");
    let v: Value = serde_json::from_slice(&std::fs::read(tmp.path().join("s.json")).unwrap()).unwrap();
    assert_eq!(v["inputs"][0]["input"], "standard input");
    // "1 connection", never "1 connections": every summary of every shipped capture.
    let one_plural = regex::Regex::new(r"(^|[ (])1 ([a-z][a-z()/-]*[^su]s)\b").unwrap();
    let mut seen_one = 0;
    for f in listing(&testdata()).into_iter().filter(|f| f.ends_with(".pcap") || f.ends_with(".pcapng")) {
        let o = apitool(["convert", &format!("testdata/{f}"), "-o", tmp.path().join("x.har").to_str().unwrap()]);
        let err = stderr(&o);
        for line in err.lines() {
            assert!(!one_plural.is_match(line), "{f}: {line}");
            seen_one += line.matches(" 1 ").count() + usize::from(line.trim_start().starts_with("1 "));
        }
    }
    assert!(seen_one > 3, "the captures have counters at 1 ({seen_one})");
}

/// `apitool convert - ARGS` fed an endless capture (keepalive's records again and again, each
/// copy later than the last): 8 MiB at once, then a trickle, until the process ends or 60 s
/// pass. Returns the child once the first 8 MiB are written.
fn convert_endless_stdin(args: &[&str]) -> (std::process::Child, std::thread::JoinHandle<()>) {
    let mut all = vec!["convert", "-"];
    all.extend_from_slice(args);
    endless_stdin(&all)
}

#[test]
fn an_interrupt_completes_the_har_and_exits_130() {
    let tmp = tempfile::tempdir().unwrap();
    let har = tmp.path().join("live.har");
    let sum = tmp.path().join("s.json");
    let (child, feeder) = convert_endless_stdin(&["-o", har.to_str().unwrap(), "--summary-json", sum.to_str().unwrap()]);
    kill(&child, "INT");
    let o = child.wait_with_output().unwrap();
    feeder.join().unwrap();
    assert_eq!(o.status.code(), Some(130), "{}", stderr(&o));
    let err = stderr(&o);
    assert!(err.contains("interrupted"), "the summary says so: {err}");
    let v = read_har(&std::fs::read(&har).expect("the HAR is written"), "interrupted HAR");
    let n = v["log"]["entries"].as_array().unwrap().len();
    assert!(n >= 4, "the exchanges read before the interrupt are in the HAR ({n})");
    let s: Value = serde_json::from_slice(&std::fs::read(&sum).unwrap()).unwrap();
    assert_eq!(s["interrupted"], Value::Bool(true), "{s}");
    assert_eq!(s["inputs"][0]["interrupted"], Value::Bool(true), "{s}");
    assert_eq!(s["inputs"][0]["entries"].as_u64(), Some(n as u64));
    assert!(temporaries(tmp.path()).is_empty());
    validate_hars(&[har]);

    // SIGTERM the same, with witnesses.
    let wit = tmp.path().join("live.witness");
    let (child, feeder) = convert_endless_stdin(&["-q", "-f", "witness", "-o", wit.to_str().unwrap()]);
    kill(&child, "TERM");
    let o = child.wait_with_output().unwrap();
    feeder.join().unwrap();
    assert_eq!(o.status.code(), Some(130), "{}", stderr(&o));
    let o = apitool(["witness", "hash", wit.to_str().unwrap()]);
    assert!(o.status.success() && !o.stdout.is_empty(), "the witness file is complete: {}", stderr(&o));
    assert!(temporaries(tmp.path()).is_empty());
}

#[test]
fn a_second_interrupt_exits_at_once_and_leaves_no_temporary_file() {
    let tmp = tempfile::tempdir().unwrap();
    let har = tmp.path().join("live.har");
    let (child, feeder) = convert_endless_stdin(&["-q", "-o", har.to_str().unwrap()]);
    kill(&child, "INT");
    kill(&child, "INT");
    let o = child.wait_with_output().unwrap();
    feeder.join().unwrap();
    assert_eq!(o.status.code(), Some(130), "{}", stderr(&o));
    assert!(temporaries(tmp.path()).is_empty(), "no temporary file: {:?}", listing(tmp.path()));
    // The first signal may have completed the HAR before the second came: then it is whole.
    if har.exists() {
        read_har(&std::fs::read(&har).unwrap(), "HAR finished before the second signal");
    }
}

#[test]
fn version_names_the_commit_and_the_features() {
    let o = apitool(["--version"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(out.starts_with(&format!("apitool {} (", env!("CARGO_PKG_VERSION"))), "{out}");
    assert!(out.contains("features: +gzip,+deflate,+br,+zstd"), "{out}");
    // Built from a git checkout: the commit is the one checked out (or the build names none).
    let head = std::process::Command::new("git").args(["rev-parse", "--short", "HEAD"]).current_dir(root()).output();
    match head {
        Ok(h) if h.status.success() && std::env::var_os("APITOOL_COMMIT").is_none() => {
            let h = String::from_utf8_lossy(&h.stdout).trim().to_string();
            assert!(out.contains(&format!("commit {h}")), "the commit {h}: {out}");
        }
        _ => assert!(out.contains("commit "), "{out}"),
    }
    // -V stays one short line.
    let o = apitool(["-V"]);
    assert_eq!(String::from_utf8_lossy(&o.stdout).trim(), format!("apitool {}", env!("CARGO_PKG_VERSION")));
}

/// `apitool completions SHELL` prints a script that names every subcommand and flag; the bash
/// one is valid bash (checked with `bash -n` when bash is installed).
#[test]
fn completions_for_every_shell() {
    for shell in ["bash", "zsh", "fish", "powershell"] {
        let o = apitool(["completions", shell]);
        assert!(o.status.success(), "{shell}: {}", stderr(&o));
        let script = String::from_utf8(o.stdout).unwrap();
        for word in ["convert", "replay", "profile", "witness", "max-body", "report-json", "deadline"] {
            assert!(script.contains(word), "{shell}: {word} missing");
        }
        if shell == "bash" {
            let dir = tempfile::tempdir().unwrap();
            let p = dir.path().join("apitool.bash");
            std::fs::write(&p, &script).unwrap();
            match std::process::Command::new("bash").arg("-n").arg(&p).output() {
                Ok(c) => assert!(c.status.success(), "bash -n: {}", String::from_utf8_lossy(&c.stderr)),
                Err(_) => eprintln!("notice: bash not found; the bash completion script was not parsed"),
            }
        }
    }
    let o = apitool(["completions", "tcsh"]);
    assert_eq!(o.status.code(), Some(2));
}

/// `apitool man` prints apitool(1); `apitool man SUBCOMMAND` the page of that subcommand, with
/// its flags; groff (when installed) formats them without a warning.
#[test]
fn man_pages() {
    let o = apitool(["man"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let page = String::from_utf8(o.stdout).unwrap();
    assert!(page.contains(".TH apitool 1"), "{page}");
    for sub in ["convert", "replay", "profile", "witness"] {
        assert!(page.contains(sub), "apitool(1) lists {sub}");
        let o = apitool(["man", sub]);
        assert!(o.status.success(), "{sub}: {}", stderr(&o));
        let page = String::from_utf8(o.stdout).unwrap();
        assert!(page.contains(&format!(".TH apitool-{sub} 1")), "{page}");
        assert!(page.contains("Exit status"), "{sub}: the page ends with the exit statuses");
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("page.1");
        std::fs::write(&p, &page).unwrap();
        if let Ok(g) = std::process::Command::new("groff").args(["-man", "-Tutf8", "-ww", "-z"]).arg(&p).output() {
            assert!(g.status.success() && g.stderr.is_empty(), "groff on apitool-{sub}(1): {}", String::from_utf8_lossy(&g.stderr));
        }
    }
    let o = apitool(["man", "nope"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("no subcommand \"nope\""), "{}", stderr(&o));
}

// ---- -q, -v and --color: the same in every subcommand ----

const ESC: &str = "\x1b[";

/// A server that answers every request with `200 OK`, `text/plain`, `ok`, and closes.
fn ok_server() -> String {
    use std::io::{Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for s in listener.incoming() {
            let Ok(mut s) = s else { continue };
            let _ = s.set_read_timeout(Some(std::time::Duration::from_secs(10)));
            let mut head = Vec::new();
            let mut b = [0u8; 1024];
            while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                match s.read(&mut b) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => head.extend_from_slice(&b[..n]),
                }
            }
            let _ = s.write_all(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok");
        }
    });
    format!("http://{addr}")
}

/// A HAR of one GET whose recorded response is what [`ok_server`] answers.
fn ok_recording(dir: &Path) -> PathBuf {
    let har = serde_json::json!({"log": {"version": "1.2", "creator": {"name": "test", "version": "1"}, "entries": [{
        "startedDateTime": "2024-01-01T00:00:00.000Z", "time": 1,
        "request": {"method": "GET", "url": "http://10.0.0.1/x", "httpVersion": "HTTP/1.1", "headers": [],
            "queryString": [], "cookies": [], "headersSize": -1, "bodySize": 0},
        "response": {"status": 200, "statusText": "OK", "httpVersion": "HTTP/1.1",
            "headers": [{"name": "Content-Type", "value": "text/plain"}], "cookies": [],
            "content": {"size": 2, "mimeType": "text/plain", "text": "ok"}, "redirectURL": "", "headersSize": -1, "bodySize": 2},
        "cache": {}, "timings": {"send": 0, "wait": 1, "receive": 0}}]}});
    let p = dir.join("base.har");
    std::fs::write(&p, serde_json::to_vec(&har).unwrap()).unwrap();
    p
}

/// Every subcommand that prints progress or a summary, as arguments after `apitool` (the
/// common flags go at the end), each with the stream its summary or report goes to.
struct Sub {
    name: &'static str,
    args: Vec<String>,
}

fn subcommands(dir: &Path) -> Vec<Sub> {
    let har = dir.join("k.har");
    let o = apitool(["convert", "-f", "har,witness", "-q", "testdata/keepalive.pcap", "-o", har.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    let wit = dir.join("k.witness").to_str().unwrap().to_string();
    let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
    vec![
        Sub { name: "convert", args: s(&["convert", "testdata/retransmitted.pcap", "-o", dir.join("c.har").to_str().unwrap()]) },
        Sub { name: "profile", args: s(&["profile", "testdata/keepalive.pcap"]) },
        Sub { name: "witness hash", args: s(&["witness", "hash", &wit]) },
        Sub { name: "witness dump", args: s(&["witness", "dump", &wit]) },
        Sub { name: "replay", args: s(&["replay", ok_recording(dir).to_str().unwrap(), "--target", &ok_server(), "--timeout", "10"]) },
    ]
}

fn run_with(sub: &Sub, extra: &[&str], no_color: bool) -> std::process::Output {
    let mut c = std::process::Command::new(bin());
    c.current_dir(root()).args(&sub.args).args(extra);
    if no_color {
        c.env("NO_COLOR", "1");
    } else {
        c.env_remove("NO_COLOR");
    }
    c.output().unwrap()
}

#[test]
fn every_subcommand_takes_the_common_flags() {
    let dir = tempfile::tempdir().unwrap();
    for sub in subcommands(dir.path()) {
        for extra in [
            &["-q"][..],
            &["--quiet"],
            &["-v"],
            &["-vv"],
            &["--verbose"],
            &["--color", "never"],
            &["--color", "always"],
            &["--color", "auto"],
        ] {
            let o = run_with(&sub, extra, false);
            assert!(o.status.success(), "{} {extra:?}: {:?}\n{}", sub.name, o.status, stderr(&o));
        }
        let o = run_with(&sub, &["--color", "sometimes"], false);
        assert_eq!(o.status.code(), Some(2), "{} --color sometimes is a usage error", sub.name);
    }
}

#[test]
fn quiet_with_verbose_is_a_usage_error_everywhere() {
    let dir = tempfile::tempdir().unwrap();
    for sub in subcommands(dir.path()) {
        for extra in [&["-q", "-v"][..], &["--verbose", "--quiet"]] {
            let o = run_with(&sub, extra, false);
            assert_eq!(o.status.code(), Some(2), "{} {extra:?}", sub.name);
            assert!(stderr(&o).contains("cannot be used with"), "{} {extra:?}: {}", sub.name, stderr(&o));
        }
    }
}

#[test]
fn quiet_prints_nothing_on_stderr_and_verbose_prints_more() {
    let dir = tempfile::tempdir().unwrap();
    for sub in subcommands(dir.path()) {
        let quiet = run_with(&sub, &["-q"], false);
        assert!(quiet.status.success(), "{}", sub.name);
        assert!(quiet.stderr.is_empty(), "{} -q: nothing on stderr, got {:?}", sub.name, stderr(&quiet));
        let normal = run_with(&sub, &[], false);
        let verbose = run_with(&sub, &["-v"], false);
        // What -v adds goes where that subcommand's summary or report goes.
        let (n, v) = match sub.name {
            "convert" | "witness hash" | "witness dump" => (normal.stderr.len(), verbose.stderr.len()),
            _ => (normal.stdout.len(), verbose.stdout.len()),
        };
        assert!(v > n, "{} -v prints more than without ({v} <= {n} bytes)", sub.name);
    }
    // What each -v adds.
    let subs = subcommands(dir.path());
    let v = run_with(&subs[0], &["-v"], false);
    assert!(stderr(&v).contains("  0 bad IP fragments"), "convert -v lists the zero counters:\n{}", stderr(&v));
    let d = run_with(&subs[0], &[], false);
    assert!(!stderr(&d).contains("  0 "), "convert lists no zero counter by default:\n{}", stderr(&d));
    let v = run_with(&subs[1], &["-v"], false);
    assert!(String::from_utf8_lossy(&v.stdout).contains("tcp.retransmitted_segments"), "profile -v lists the counters");
    let v = run_with(&subs[2], &["-v"], false);
    assert!(stderr(&v).ends_with("k.witness: 4 witnesses\n"), "witness -v: {}", stderr(&v));
    let v = run_with(&subs[4], &["-v"], false);
    assert!(String::from_utf8_lossy(&v.stdout).starts_with("OK "), "replay -v lists the unchanged exchange");
}

#[test]
fn color_always_paints_and_never_or_no_color_do_not() {
    let dir = tempfile::tempdir().unwrap();
    let subs = subcommands(dir.path());
    // Where there is colour: convert's summary (counters not zero), replay's report (-v: the
    // unchanged exchange's label), and the error line of an input that failed.
    let text = |o: &std::process::Output| format!("{}{}", String::from_utf8_lossy(&o.stdout), stderr(o));
    let convert = run_with(&subs[0], &["--color", "always"], false);
    assert!(stderr(&convert).contains("  \x1b[33m3 retransmitted TCP segments ignored\x1b[0m"), "{:?}", stderr(&convert));
    let replay = run_with(&subs[4], &["-v", "--color", "always"], false);
    assert!(String::from_utf8_lossy(&replay.stdout).contains(ESC), "replay --color always: {:?}", text(&replay));
    for sub in &subs {
        for (extra, no_color) in [(&["--color", "never"][..], false), (&["--color", "auto"], true), (&[][..], true), (&[][..], false)] {
            let mut args = extra.to_vec();
            args.push("-v");
            let o = run_with(sub, &args, no_color);
            assert!(!text(&o).contains(ESC), "{} {args:?} NO_COLOR={no_color}: no escapes, got {:?}", sub.name, text(&o));
        }
        // Colour off is the same bytes as no flag at all (auto off a terminal).
        if sub.name != "replay" {
            let plain = run_with(sub, &[], false);
            let never = run_with(sub, &["--color", "never"], false);
            assert_eq!(plain.stderr, never.stderr, "{}", sub.name);
        }
    }
    // The error of an input that failed, in every subcommand that reads inputs.
    for args in [
        vec!["convert", "no-such.pcap", "-o", "-"],
        vec!["profile", "no-such.pcap"],
        vec!["witness", "hash", "no-such.witness"],
        vec!["witness", "dump", "no-such.witness"],
    ] {
        let sub = Sub { name: "error", args: args.iter().map(|s| s.to_string()).collect() };
        let on = run_with(&sub, &["--color", "always"], false);
        assert_eq!(on.status.code(), Some(1), "{args:?}");
        assert!(stderr(&on).starts_with("\x1b[1;31mapitool:\x1b[0m no-such"), "{args:?}: {:?}", stderr(&on));
        let off = run_with(&sub, &["--color", "never"], false);
        assert!(stderr(&off).starts_with("apitool: no-such"), "{args:?}: {:?}", stderr(&off));
    }
}

#[test]
fn every_help_explains_the_common_flags() {
    for args in [&["convert"][..], &["profile"], &["witness", "hash"], &["witness", "dump"], &["replay"]] {
        let mut a = args.to_vec();
        a.push("--help");
        let o = apitool(&a);
        assert!(o.status.success());
        let help = flat(&o.stdout);
        for want in ["-q, --quiet", "-v, --verbose", "--color <WHEN>", "Common flags:", "Exit status:", "Example"] {
            assert!(help.contains(want), "{args:?} --help mentions {want}:\n{help}");
        }
    }
}
