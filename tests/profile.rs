//! `apitool profile` on generated captures: cap hits and damaged exchanges agree with the HAR
//! that `convert` writes with the same caps, the JSON holds its fields, the SVG plot is valid
//! and carries its series, sweeps are monotone where they must be, and directories give a row
//! per file and a total.

mod common;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use apitool::synth::adversarial::{AdvParams, Mode, write_adversarial};
use apitool::synth::pcap::LinkType;
use apitool::synth::{CaptureFormat, SynthConfig, generate_to};
use serde_json::Value;

use common::*;

/// The captures, generated once: `impaired.pcap` (ordinary traffic, a third of the
/// connections impaired, among them reordered segments) and `ooo.pcap` (one response in
/// 60 000 segments arriving in random order). Both span several windows of the pipeline, so
/// that the caps checked between windows come into play.
fn corpus() -> &'static Path {
    static DIR: OnceLock<tempfile::TempDir> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let fmt = CaptureFormat::from_name("pcap", LinkType::Ethernet).unwrap();
        let cfg = SynthConfig { seed: 3, target_bytes: 20 << 20, impair: 0.3, concurrency: 32, ..SynthConfig::default() };
        let f = std::fs::File::create(dir.path().join("impaired.pcap")).unwrap();
        generate_to(&cfg, &fmt, std::io::BufWriter::new(f), &mut |_| Ok(())).unwrap();
        let f = std::fs::File::create(dir.path().join("ooo.pcap")).unwrap();
        let mut w = fmt.writer(std::io::BufWriter::new(f)).unwrap();
        let p = AdvParams { seed: 1, count: 60_000, size: 0, interfaces: 1 };
        write_adversarial(Mode::OutOfOrder, &p, &mut w, &mut |_| Ok(())).unwrap();
        w.into_inner().flush().unwrap();
        dir
    })
    .path()
}

fn capture(name: &str) -> PathBuf {
    corpus().join(name)
}

fn run_ok(args: &[&std::ffi::OsStr]) -> std::process::Output {
    let o = apitool(args);
    assert!(o.status.success(), "apitool {args:?} failed ({}):\n{}", o.status, stderr(&o));
    o
}

/// `apitool profile ARGS --json`, parsed.
fn profile_json(inputs: &[&Path], extra: &[&str]) -> Value {
    let mut args: Vec<&std::ffi::OsStr> = vec!["profile".as_ref()];
    args.extend(inputs.iter().map(|p| p.as_os_str()));
    args.extend(extra.iter().map(std::ffi::OsStr::new));
    args.push("--json".as_ref());
    let o = run_ok(&args);
    serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("profile --json is JSON: {e}\n{}", String::from_utf8_lossy(&o.stdout)))
}

/// `apitool convert INPUT -o HAR ARGS --summary-json`: the HAR's entries and the summary.
fn convert_har(input: &Path, extra: &[&str]) -> (Vec<Value>, Value) {
    let dir = tempfile::tempdir().unwrap();
    let har = dir.path().join("out.har");
    let sum = dir.path().join("summary.json");
    let mut args: Vec<&std::ffi::OsStr> = vec!["convert".as_ref(), input.as_os_str(), "-o".as_ref(), har.as_os_str()];
    args.extend(extra.iter().map(std::ffi::OsStr::new));
    args.extend(["-q".as_ref(), "--summary-json".as_ref(), sum.as_os_str()]);
    run_ok(&args);
    let h: Value = serde_json::from_slice(&std::fs::read(&har).unwrap()).unwrap();
    let s: Value = serde_json::from_slice(&std::fs::read(&sum).unwrap()).unwrap();
    (h["log"]["entries"].as_array().unwrap().clone(), s["inputs"][0].clone())
}

/// Whether an anomaly text names the cap of `flag`.
fn names_cap(anomaly: &str, flag: &str) -> bool {
    match flag {
        "--max-body" => anomaly.contains("truncated at the decoded size cap"),
        "--max-head" => anomaly.contains("(--max-head, --max-headers)"),
        f => anomaly.contains(&format!("({f})")),
    }
}

fn cap<'a>(caps: &'a Value, flag: &str) -> &'a Value {
    caps.as_array().unwrap().iter().find(|c| c["flag"] == flag).unwrap_or_else(|| panic!("a row for {flag}: {caps}"))
}

/// For each setting: every cap's hits are the counters `convert` reports, and the exchanges
/// it damaged are the HAR entries whose anomalies name it.
#[test]
fn cap_hits_and_damaged_exchanges_match_the_har() {
    let settings: &[(&str, &[&str])] = &[
        ("ooo.pcap", &["--max-ooo-per-conn", "64k"]),
        ("impaired.pcap", &["--max-ooo-per-conn", "1k"]),
        ("impaired.pcap", &["--max-flows", "6"]),
        ("impaired.pcap", &["--idle-timeout", "0.02", "--max-body", "2k"]),
        ("impaired.pcap", &["--max-ooo-total", "1k", "--max-head", "200"]),
    ];
    for (file, caps) in settings {
        let input = capture(file);
        let prof = profile_json(&[&input], caps);
        let p = &prof["inputs"][0];
        let (entries, summary) = convert_har(&input, caps);
        let what = format!("{file} {caps:?}");
        assert_eq!(p["exchanges"], entries.len(), "{what}: exchanges");
        let anomalies: Vec<Vec<String>> = entries
            .iter()
            .map(|e| e["_apitool"]["anomalies"].as_array().unwrap().iter().map(|a| a.as_str().unwrap().to_string()).collect())
            .collect();
        let counters = [
            ("--max-ooo-per-conn", &summary["tcp"]["ooo_conn_cap_hits"]),
            ("--max-ooo-total", &summary["tcp"]["ooo_total_cap_hits"]),
            ("--max-flows", &summary["tcp"]["flow_cap_evictions"]),
            ("--idle-timeout", &summary["tcp"]["idle_timeouts"]),
            ("--max-body", &summary["http"]["truncated_bodies"]),
            ("--max-head", &summary["http"]["oversized_heads"]),
        ];
        let mut any = 0;
        for (flag, counter) in counters {
            let row = cap(&p["caps"], flag);
            assert_eq!(&row["hits"], counter, "{what}: {flag} hits");
            let marked = anomalies.iter().filter(|a| a.iter().any(|x| names_cap(x, flag))).count();
            assert_eq!(row["exchanges_damaged"], marked, "{what}: {flag} damaged exchanges");
            any += marked;
        }
        let by_any = anomalies.iter().filter(|a| a.iter().any(|x| counters.iter().any(|(f, _)| names_cap(x, f)))).count() as u64;
        assert_eq!(p["exchanges_damaged_by_caps"], by_any, "{what}: damaged by caps");
        assert!(by_any as usize <= any);
        assert_eq!(p["exchanges_damaged"], summary["entries_with_anomalies"], "{what}: damaged");
    }
    // The settings above are meant to hit their caps.
    let p = &profile_json(&[&capture("ooo.pcap")], &["--max-ooo-per-conn", "64k"])["inputs"][0];
    let row = cap(&p["caps"], "--max-ooo-per-conn");
    assert!(row["hits"].as_u64().unwrap() > 0 && row["exchanges_damaged"] == 1, "{row}");
    let p = &profile_json(&[&capture("impaired.pcap")], &["--max-ooo-per-conn", "1k"])["inputs"][0];
    assert!(cap(&p["caps"], "--max-ooo-per-conn")["exchanges_damaged"].as_u64().unwrap() > 1, "{}", p["caps"]);
    let p = &profile_json(&[&capture("impaired.pcap")], &["--max-flows", "6"])["inputs"][0];
    assert!(cap(&p["caps"], "--max-flows")["exchanges_damaged"].as_u64().unwrap() > 0, "{}", p["caps"]);
}

#[test]
fn json_holds_the_fields() {
    let v = profile_json(&[&capture("ooo.pcap")], &["--max-ooo-per-conn", "256k"]);
    let p = &v["inputs"][0];
    assert_eq!(p["input"], capture("ooo.pcap").display().to_string());
    for k in [
        "bytes",
        "frames",
        "connections",
        "exchanges",
        "exchanges_damaged",
        "exchanges_damaged_by_caps",
        "peak_buffered_bytes",
        "peak_reassembly_bytes",
        "peak_http_bytes",
        "peak_pending_entry_bytes",
        "peak_open_flows",
    ] {
        assert!(p[k].is_u64(), "{k}: {}", p[k]);
    }
    assert!(p["duration"].is_f64() && p["peak_buffered_at"].is_f64());
    // The out-of-order response is held up to the cap, and no more.
    let peak = p["peak_conn_reassembly_bytes"].as_u64().unwrap();
    assert!(peak > 128 << 10 && peak <= 256 << 10, "peak per connection {peak}");
    let between = p["peak_reassembly_bytes"].as_u64().unwrap();
    assert!(between > 0 && between <= peak, "peak between windows {between}");
    assert!(p["peak_buffered_bytes"].as_u64().unwrap() >= between);
    assert_eq!(p["peak_open_flows"], 1);
    // The binary counts allocations.
    assert!(p["heap"]["allocations"].as_u64().unwrap() > 100, "{}", p["heap"]);
    assert!(p["heap"]["peak_bytes"].as_u64().unwrap() > peak, "{}", p["heap"]);
    let caps: Vec<&str> = p["caps"].as_array().unwrap().iter().map(|c| c["flag"].as_str().unwrap()).collect();
    assert_eq!(
        caps,
        ["--max-ooo-per-conn", "--max-ooo-total", "--max-flows", "--idle-timeout", "--max-body", "--max-bodies-total", "--max-head"]
    );
    let row = cap(&p["caps"], "--max-ooo-per-conn");
    assert_eq!(row["limit"], "256 KiB");
    assert_eq!(row["peak_held"], peak);
    let top = p["top_connections"].as_array().unwrap();
    assert_eq!(top.len(), 1);
    assert!(top[0]["id"].is_u64() && top[0]["peak_bytes"].as_u64().unwrap() >= between);
    let tl = p["timeline"].as_array().unwrap();
    assert!(!tl.is_empty());
    let mut last_t = 0.0;
    let mut hits = 0;
    for s in tl {
        let t = s["t"].as_f64().unwrap();
        assert!(t >= last_t, "timeline in capture-time order");
        last_t = t;
        for k in ["ts_ns", "input_bytes", "open_flows", "reassembly_bytes", "http_bytes", "pending_entry_bytes"] {
            assert!(s[k].is_u64() || s[k].is_i64(), "{k}: {s}");
        }
        assert!(s["heap_peak"].is_u64());
        hits += s["cap_hits"]["max-ooo-per-conn"].as_u64().unwrap_or(0);
    }
    // Hits after the last window (at the end of the capture) are in the total only.
    assert!(hits > 0 && hits <= row["hits"].as_u64().unwrap());
    assert_eq!(v["total"]["inputs"], 1);
    assert!(v["failed"].as_array().unwrap().is_empty());
}

#[test]
fn table_by_default() {
    let o = run_ok(&["profile".as_ref(), capture("ooo.pcap").as_os_str(), "--max-ooo-per-conn".as_ref(), "64k".as_ref()]);
    let t = String::from_utf8(o.stdout).unwrap();
    for want in [
        "ooo.pcap: pcap",
        "peak buffered between windows:",
        "one connection:",
        "heap: peak",
        "exchanges damaged",
        "--max-ooo-per-conn",
        "top connections",
        "capture time",
    ] {
        assert!(t.contains(want), "the table has {want:?}:\n{t}");
    }
    let row = t.lines().find(|l| l.trim_start().starts_with("--max-ooo-per-conn")).unwrap();
    let cells: Vec<&str> = row.split_whitespace().collect();
    assert_eq!(cells[1..3], ["64", "KiB"], "{row}");
    assert_eq!(*cells.last().unwrap(), "1", "one exchange damaged: {row}");
}

/// The plot is well-formed SVG with a line per series, a legend naming them, and cap hits.
#[test]
fn plot_writes_an_svg() {
    use quick_xml::events::Event;
    let dir = tempfile::tempdir().unwrap();
    let svg = dir.path().join("p.svg");
    let input = capture("ooo.pcap");
    run_ok(&["profile".as_ref(), input.as_os_str(), "--max-ooo-per-conn".as_ref(), "64k".as_ref(), "--plot".as_ref(), svg.as_os_str()]);
    let text = std::fs::read_to_string(&svg).unwrap();
    let mut reader = quick_xml::Reader::from_str(&text);
    reader.config_mut().check_end_names = true;
    let (mut depth, mut root, mut lines, mut texts) = (0i32, None, 0, Vec::new());
    loop {
        match reader.read_event().unwrap_or_else(|e| panic!("not well-formed XML: {e}")) {
            Event::Start(e) => {
                root.get_or_insert_with(|| e.name().as_ref().to_string());
                depth += 1;
            }
            Event::Empty(e) if e.name().as_ref() == "polyline" => lines += 1,
            Event::End(_) => depth -= 1,
            Event::Text(t) => texts.push(t.as_ref().to_string()),
            Event::Eof => break,
            _ => {}
        }
    }
    assert_eq!(depth, 0);
    assert_eq!(root.as_deref(), Some("svg"));
    assert!(lines >= 4, "buffered, reassembly, HTTP, open connections: {lines} polylines");
    let texts: Vec<String> = texts.iter().map(|t| t.trim().to_string()).filter(|t| !t.is_empty()).collect();
    let all = texts.join("\n");
    for want in [
        "heap (peak in each window)",
        "entries waiting for their turn",
        "buffered (reassembly + HTTP)",
        "reassembly",
        "HTTP parsers",
        "open connections",
        "cap hit: --max-ooo-per-conn",
        "capture time",
    ] {
        assert!(all.contains(want), "the plot names {want:?}: {all}");
    }
    // The series are steps: every segment of a data line (stroke width 2) is horizontal or
    // vertical, never a slope between two sparse samples.
    let mut series = 0;
    for (i, _) in text.match_indices("stroke-width=\"2\" points=\"") {
        let rest = &text[i + "stroke-width=\"2\" points=\"".len()..];
        let pts: Vec<(f64, f64)> = rest[..rest.find('"').unwrap()]
            .split_whitespace()
            .map(|p| {
                let (x, y) = p.split_once(',').unwrap();
                (x.parse().unwrap(), y.parse().unwrap())
            })
            .collect();
        if pts.len() < 4 {
            continue; // a legend swatch
        }
        series += 1;
        for w in pts.windows(2) {
            assert!(w[0].0 == w[1].0 || w[0].1 == w[1].1, "a sloped segment {w:?}");
        }
    }
    assert!(series >= 6, "heap, entries waiting, buffered, reassembly, HTTP, connections: {series}");
    // Tick labels are round numbers of one unit: the byte axis names its unit, and the labels
    // of each axis are distinct numbers evenly spaced.
    assert!(texts.iter().any(|t| ["B held", "KiB held", "MiB held", "GiB held"].contains(&t.trim())), "{all}");
    // Runs of numeric labels; a new axis starts where the numbers go down.
    let mut numbers: Vec<Vec<f64>> = Vec::new();
    let mut run: Vec<f64> = Vec::new();
    for t in &texts {
        match t.parse::<f64>() {
            Ok(v) if run.last() == Some(&v) => panic!("a tick label repeated: {v} in {all}"),
            Ok(v) if run.last().is_none_or(|&l| v > l) => run.push(v),
            Ok(v) => numbers.push(std::mem::replace(&mut run, vec![v])),
            Err(_) => numbers.push(std::mem::take(&mut run)),
        }
    }
    numbers.push(run);
    numbers.retain(|r| r.len() >= 3);
    assert!(numbers.len() >= 2, "two numbered axes: {all}");
    for ticks in &numbers {
        let step = ticks[1] - ticks[0];
        assert!(step > 0.0, "{ticks:?}");
        for w in ticks.windows(2) {
            assert!(((w[1] - w[0]) - step).abs() <= step * 1e-6, "ticks evenly spaced and distinct: {ticks:?}");
        }
    }
}

/// A smaller per-connection cap never holds more.
#[test]
fn sweep_is_monotone() {
    let v = profile_json(&[&capture("ooo.pcap")], &["--sweep", "per-conn=16k,64k,256k,16MiB"]);
    let sweeps = v["sweeps"].as_array().unwrap();
    assert_eq!(sweeps.len(), 1);
    assert_eq!(sweeps[0]["flag"], "--max-ooo-per-conn");
    let rows = sweeps[0]["rows"].as_array().unwrap();
    let values: Vec<&str> = rows.iter().map(|r| r["value"].as_str().unwrap()).collect();
    assert_eq!(values, ["16k", "64k", "256k", "16MiB"]);
    for w in rows.windows(2) {
        let (a, b) = (&w[0], &w[1]);
        let n = |r: &Value, k: &str| r[k].as_u64().unwrap();
        assert!(n(a, "peak_reassembly_bytes") <= n(b, "peak_reassembly_bytes"), "{a} vs {b}");
        assert!(n(a, "peak_conn_reassembly_bytes") <= n(b, "peak_conn_reassembly_bytes"), "{a} vs {b}");
        assert!(n(a, "peak_conn_reassembly_bytes") <= a["setting"].as_u64().unwrap());
        assert!(n(a, "peak_buffered_bytes") <= n(b, "peak_buffered_bytes"), "{a} vs {b}");
        // (Hits need not be monotone: a smaller cap skips larger holes, fewer times.)
        assert!(n(a, "hits") > 0, "{a}");
    }
    // 16 MiB holds the whole shuffled response (60 000 pieces of 100 bytes, each with its
    // bookkeeping): the cap is never hit.
    let last = rows.last().unwrap();
    assert_eq!(last["hits"], 0);
    assert_eq!(last["exchanges_damaged_by_this_cap"], 0);
    assert_eq!(rows[0]["exchanges_damaged_by_this_cap"], 1);

    // The table, and a sweep over a directory: one row per value, for the whole corpus.
    let o = run_ok(&["profile".as_ref(), corpus().as_os_str(), "--sweep".as_ref(), "flows=4,1000".as_ref()]);
    let t = String::from_utf8(o.stdout).unwrap();
    assert!(t.contains("sweep of --max-flows"), "{t}");
    let row =
        |v: &str| t.lines().find(|l| l.split_whitespace().next() == Some(v)).unwrap_or_else(|| panic!("a row for {v}:\n{t}")).to_string();
    let (small, large) = (row("4"), row("1000"));
    // exchanges: the sixth column (value, buffered x2, reassembly x2, conns...): compare the
    // JSON instead of parsing units.
    let v = profile_json(&[corpus()], &["--sweep", "flows=4,1000"]);
    let rows = v["sweeps"][0]["rows"].as_array().unwrap();
    let one = profile_json(&[&capture("impaired.pcap")], &[])["inputs"][0]["exchanges"].as_u64().unwrap()
        + profile_json(&[&capture("ooo.pcap")], &[])["inputs"][0]["exchanges"].as_u64().unwrap();
    assert_eq!(rows[1]["exchanges"], one, "the sweep sums the corpus: {small} / {large}");
    assert!(rows[0]["hits"].as_u64().unwrap() > 0 && rows[1]["hits"] == 0);
}

#[test]
fn directory_gives_a_row_per_file_and_a_total() {
    let v = profile_json(&[corpus()], &[]);
    let inputs = v["inputs"].as_array().unwrap();
    let names: Vec<String> =
        inputs.iter().map(|p| Path::new(p["input"].as_str().unwrap()).file_name().unwrap().to_string_lossy().into_owned()).collect();
    assert_eq!(names, ["impaired.pcap", "ooo.pcap"]);
    let t = &v["total"];
    assert_eq!(t["inputs"], 2);
    let sum = |k: &str| inputs.iter().map(|p| p[k].as_u64().unwrap()).sum::<u64>();
    let max = |k: &str| inputs.iter().map(|p| p[k].as_u64().unwrap()).max().unwrap();
    for k in ["bytes", "frames", "connections", "exchanges", "exchanges_damaged"] {
        assert_eq!(t[k], sum(k), "total {k}");
    }
    for k in ["peak_buffered_bytes", "peak_reassembly_bytes", "peak_open_flows", "peak_live_flows"] {
        assert_eq!(t[k], max(k), "total {k}");
    }
    assert!(t["peak_rss_bytes"].as_u64().unwrap() > 0);

    let o = run_ok(&["profile".as_ref(), corpus().as_os_str()]);
    let text = String::from_utf8(o.stdout).unwrap();
    assert!(text.contains("corpus: 2 inputs"), "{text}");
    let table: Vec<&str> = text.lines().skip_while(|l| !l.starts_with("corpus:")).collect();
    for name in ["impaired.pcap", "ooo.pcap", "total"] {
        assert!(table.iter().any(|l| l.contains(name) && l.split_whitespace().count() >= 9), "a row for {name}:\n{text}");
    }
}

#[test]
fn plots_one_file_per_input_of_a_directory() {
    let dir = tempfile::tempdir().unwrap();
    let svg = dir.path().join("mem.svg");
    run_ok(&["profile".as_ref(), corpus().as_os_str(), "--plot".as_ref(), svg.as_os_str()]);
    for f in ["mem-impaired.svg", "mem-ooo.svg"] {
        let t = std::fs::read_to_string(dir.path().join(f)).unwrap_or_else(|e| panic!("{f}: {e}"));
        assert!(t.starts_with("<svg") && t.trim_end().ends_with("</svg>"), "{f}");
    }
}

#[test]
fn usage_errors_exit_2() {
    let input = capture("ooo.pcap");
    for bad in [["--sweep", "nope=1,2"], ["--sweep", "per-conn"], ["--sweep", "per-conn=1x"], ["--sweep", "idle=0"], ["--max-flows", "0"]] {
        let mut args: Vec<&std::ffi::OsStr> = vec!["profile".as_ref(), input.as_os_str()];
        args.extend(bad.iter().map(std::ffi::OsStr::new));
        let o = apitool(&args);
        assert_eq!(o.status.code(), Some(2), "{bad:?}: {}", stderr(&o));
        assert!(!stderr(&o).is_empty());
    }
    let o = apitool(["profile", "testdata/does-not-exist.pcap"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("does-not-exist.pcap"), "{}", stderr(&o));
}

/// SIGINT or SIGTERM during `profile` (here of a capture that never ends, on standard input)
/// ends the input as at its end: the report covers what was read, says "interrupted", and the
/// exit status is 130.
#[test]
fn an_interrupt_reports_what_was_read_and_exits_130() {
    for (signal, json) in [("INT", true), ("TERM", false)] {
        let mut args = vec!["profile", "-"];
        if json {
            args.push("--json");
        }
        let (child, feeder) = endless_stdin(&args);
        kill(&child, signal);
        let o = child.wait_with_output().unwrap();
        feeder.join().unwrap();
        assert_eq!(o.status.code(), Some(130), "{signal}: {}", stderr(&o));
        let out = String::from_utf8_lossy(&o.stdout).into_owned();
        if json {
            let v: Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"));
            assert_eq!(v["interrupted"], true, "{out}");
            let frames = v["inputs"][0]["frames"].as_u64().unwrap_or_else(|| panic!("{out}"));
            assert!(frames > 1000, "the 8 MiB read before the signal are profiled ({frames} frames)");
        } else {
            assert!(out.contains("interrupted: the profile covers what was read before the signal"), "{out}");
            assert!(out.contains("standard input") || out.contains('-'), "{out}");
        }
    }
}

/// `--plot` writes SVG or refuses: another extension, or a directory that does not exist, is a
/// usage error stated in one line before anything is read, and nothing is written.
#[test]
fn plot_names_are_checked() {
    let dir = tempfile::tempdir().unwrap();
    let input = testdata().join("keepalive.pcap");
    for (name, why) in [("x.png", "plots are written as SVG only; name the file FILE.svg (not .png)"), ("nodir/x.svg", "does not exist")] {
        let plot = dir.path().join(name);
        let o = apitool([std::ffi::OsStr::new("profile"), input.as_os_str(), "--plot".as_ref(), plot.as_os_str()]);
        assert_eq!(o.status.code(), Some(2), "{name}: {}", stderr(&o));
        let err = stderr(&o);
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(err.contains(why), "{err}");
        assert!(o.stdout.is_empty(), "nothing profiled");
        assert!(!plot.exists());
    }
    let plot = dir.path().join("m.SVG");
    let o = apitool([std::ffi::OsStr::new("profile"), input.as_os_str(), "--plot".as_ref(), plot.as_os_str()]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(std::fs::read_to_string(&plot).unwrap().starts_with("<svg"));
}
