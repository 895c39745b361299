//! Golden HAR files: our output for a few captures, byte for byte, in `testdata/golden/`.
//!
//! A change in the output fails this test until the golden files are regenerated on purpose:
//! `APITOOL_BLESS=1 cargo test --test golden` rewrites them (then review the diff).

mod common;

use std::path::PathBuf;

use common::*;

const GOLDEN: &[&str] = &[
    "keepalive.pcap",
    "pipelined.pcap",
    "chunked-gzip.pcap",
    "post-bodies.pcap",
    "status-204-304.pcap",
    "connect-upgrade.pcap",
    "midstream.pcap",
    "two-interfaces.pcapng",
];

fn golden_dir() -> PathBuf {
    testdata().join("golden")
}

fn bless() -> bool {
    std::env::var_os("APITOOL_BLESS").is_some_and(|v| v == "1")
}

/// Where two outputs first differ, for the failure message: the entry (HAR entries are one per
/// line) and the text around the first differing byte.
fn first_difference(want: &[u8], got: &[u8]) -> String {
    let at = want.iter().zip(got).position(|(a, b)| a != b).unwrap_or(want.len().min(got.len()));
    let line = want[..at].iter().filter(|&&c| c == b'\n').count();
    let show = |b: &[u8]| String::from_utf8_lossy(&b[at.saturating_sub(80)..(at + 80).min(b.len())]).into_owned();
    let place = if line == 0 { "the envelope".to_string() } else { format!("entry {}", line - 1) };
    format!(
        "first difference at byte {at} (line {}, {place}); golden {} bytes, ours {} bytes\n  golden: …{}…\n  ours:   …{}…",
        line + 1,
        want.len(),
        got.len(),
        show(want),
        show(got)
    )
}

#[test]
fn output_matches_the_golden_files() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = golden_dir();
    let mut failures = Vec::new();
    let mut files = Vec::new();
    for file in GOLDEN {
        let stem = file.rsplit_once('.').unwrap().0;
        let out = tmp.path().join(format!("{stem}.har"));
        convert(file, &out, &["--quiet", "--threads", "2"]);
        let got = std::fs::read(&out).unwrap();
        read_har(&got, file);
        let golden = dir.join(format!("{stem}.har"));
        if bless() {
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::write(&golden, &got).unwrap();
            eprintln!("blessed {}", golden.display());
        } else {
            match std::fs::read(&golden) {
                Ok(want) if want == got => {}
                Ok(want) => {
                    failures.push(format!("{file}: output differs from testdata/golden/{stem}.har: {}", first_difference(&want, &got)))
                }
                Err(e) => failures.push(format!("{file}: testdata/golden/{stem}.har: {e}")),
            }
        }
        files.push(golden);
    }
    // No golden file without its capture in the list.
    for name in std::fs::read_dir(&dir)
        .map(|rd| rd.map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect::<Vec<_>>())
        .unwrap_or_default()
    {
        let stem = name.strip_suffix(".har").unwrap_or(&name);
        if !GOLDEN.iter().any(|f| f.rsplit_once('.').unwrap().0 == stem) {
            failures.push(format!("testdata/golden/{name} belongs to no capture of this test"));
        }
    }
    assert!(
        failures.is_empty(),
        "{}\n\nIf the change is intended, regenerate with APITOOL_BLESS=1 cargo test --test golden and review the diff.",
        failures.join("\n")
    );
    if !bless() {
        validate_hars(&files);
    }
}
