//! A large capture from time-shifted copies of a recorded one, as a merged or rotated capture
//! would hold them: copy `k` is every frame moved `k × spacing` later, its clients moved to
//! their own addresses and ports (see `apitool::synth::copies`).
//!
//! ```text
//! cargo run --release --example capcopies -- IN.pcap -o OUT.pcap [--copies 16 | --size 1G] [--spacing SECONDS]
//! ```
//!
//! `--spacing` defaults to the capture's duration plus one millisecond: the copies follow one
//! another, as the files of a rotated capture do, each ending with what was still open when its
//! recording stopped. A smaller spacing makes them overlap in time; their frames are then merged
//! in timestamp order (copy order for equal times), as a merge of captures taken at once would
//! be. `--size` picks the number of copies whose total is nearest to it. The output is a legacy
//! pcap (little-endian; nanosecond timestamps when the input's were, else microseconds) with
//! the input's link type; the input may be pcap or pcapng with one link type.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::process::ExitCode;

use apitool::capture::{Format, FrameReader, Next};
use apitool::synth::copies::{Servers, Shifted, shift_client};
use apitool::synth::parse_size;
use clap::Parser;

#[derive(Parser, Debug)]
#[command(about = "Build a large capture from time-shifted copies of a recorded one")]
struct Args {
    /// The recorded capture (pcap or pcapng).
    input: String,
    #[arg(short, long)]
    output: String,
    /// Number of copies (the first is the original).
    #[arg(long, conflicts_with = "size")]
    copies: Option<u32>,
    /// Target size instead of a count (1G, 512M, bytes).
    #[arg(long)]
    size: Option<String>,
    /// Seconds between the starts of two copies (default: the capture's duration + 1 ms).
    #[arg(long)]
    spacing: Option<f64>,
}

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("capcopies: {e}");
            ExitCode::FAILURE
        }
    }
}

/// One frame of the input: where its bytes are in the file and its capture time.
struct Rec {
    ts: i64,
    start: usize,
    len: usize,
    orig_len: u32,
}

fn run() -> Result<(), String> {
    let a = Args::parse();
    let file = File::open(&a.input).map_err(|e| format!("{}: {e}", a.input))?;
    // SAFETY: read-only private map of a file nobody else writes during the run.
    let map = unsafe { memmap2::Mmap::map(&file) }.map_err(|e| format!("{}: {e}", a.input))?;
    let (mut reader, mut pos) = FrameReader::open(&map).map_err(|e| format!("{}: {e}", a.input))?;
    let nanos = matches!(reader.format(), Format::Pcap { nanos: true, .. });

    // First pass: the frames, the link type, the servers.
    let mut recs = Vec::new();
    let mut servers = Servers::default();
    let mut linktype = None;
    let mut truncated = false;
    while pos < map.len() {
        match reader.next(&map[pos..]) {
            Next::Frame(f, used) => {
                match linktype {
                    None => linktype = Some(f.linktype),
                    Some(l) if l != f.linktype => {
                        return Err(format!("{}: more than one link type ({l} and {}); not supported", a.input, f.linktype));
                    }
                    _ => {}
                }
                servers.observe(f.linktype, f.data);
                let start = f.data.as_ptr() as usize - map.as_ptr() as usize;
                recs.push(Rec { ts: f.ts.0, start, len: f.data.len(), orig_len: f.orig_len });
                pos += used;
            }
            Next::Skip(used) => pos += used,
            Next::NeedMore(_) => {
                truncated = true;
                break;
            }
            Next::Corrupt(why) => return Err(format!("{}: offset {pos}: {why}", a.input)),
        }
    }
    let (Some(linktype), Some(first), Some(last)) = (linktype, recs.first(), recs.last()) else {
        return Err(format!("{}: no frames", a.input));
    };
    if truncated {
        eprintln!("capcopies: {}: the last record is cut short; copying the {} whole ones", a.input, recs.len());
    }
    let duration = last.ts - first.ts;
    let per_copy: u64 = recs.iter().map(|r| 16 + r.len as u64).sum();
    let copies = match (&a.copies, &a.size) {
        (Some(n), _) => *n,
        (None, Some(s)) => {
            let want = parse_size(s).ok_or_else(|| format!("bad size {s:?}"))?;
            ((want as f64 / per_copy as f64).round() as u32).max(1)
        }
        (None, None) => 16,
    };
    if copies == 0 || copies > 65535 {
        return Err(format!("--copies must be within 1..=65535, not {copies}"));
    }
    let spacing = match a.spacing {
        Some(s) if s.is_finite() && s >= 0.0 => (s * 1e9) as i64,
        Some(s) => return Err(format!("bad --spacing {s}")),
        None => duration + 1_000_000,
    };

    let out = File::create(&a.output).map_err(|e| format!("{}: {e}", a.output))?;
    let mut w = BufWriter::with_capacity(1 << 20, out);
    let mut header = Vec::with_capacity(24);
    header.extend_from_slice(&if nanos { 0xa1b2_3c4du32 } else { 0xa1b2_c3d4u32 }.to_le_bytes());
    header.extend_from_slice(&2u16.to_le_bytes());
    header.extend_from_slice(&4u16.to_le_bytes());
    header.extend_from_slice(&[0; 8]);
    header.extend_from_slice(&262_144u32.to_le_bytes());
    header.extend_from_slice(&linktype.to_le_bytes());
    let werr = |e: std::io::Error| format!("{}: {e}", a.output);
    w.write_all(&header).map_err(werr)?;

    // Merge the copies by time: the next frame of each copy in a heap (ties: lower copy first).
    let mut heap: BinaryHeap<Reverse<(i64, u32, usize)>> = BinaryHeap::with_capacity(copies as usize);
    for k in 0..copies {
        heap.push(Reverse((recs[0].ts + i64::from(k) * spacing, k, 0)));
    }
    let mut buf = Vec::with_capacity(65536);
    let (mut written, mut other) = (0u64, 0u64);
    while let Some(Reverse((ts, k, i))) = heap.pop() {
        let r = &recs[i];
        buf.clear();
        buf.extend_from_slice(&map[r.start..r.start + r.len]);
        if shift_client(linktype, &mut buf, &servers, k) == Shifted::Other {
            other += 1;
        }
        let (sec, frac) = (ts.div_euclid(1_000_000_000), ts.rem_euclid(1_000_000_000));
        let frac = if nanos { frac } else { frac / 1_000 };
        let sec = u32::try_from(sec).map_err(|_| format!("timestamp {ts} ns does not fit a pcap record"))?;
        for v in [sec, frac as u32, buf.len() as u32, r.orig_len] {
            w.write_all(&v.to_le_bytes()).map_err(werr)?;
        }
        w.write_all(&buf).map_err(werr)?;
        written += 1;
        if let Some(n) = recs.get(i + 1) {
            heap.push(Reverse((n.ts + i64::from(k) * spacing, k, i + 1)));
        }
    }
    w.flush().map_err(werr)?;
    let bytes = std::fs::metadata(&a.output).map(|m| m.len()).unwrap_or(0);
    eprintln!(
        "wrote {} ({bytes} bytes): {copies} copies of {} frames, {:.3} s apart ({}), {} servers, {written} frames, {other} left unchanged (not TCP)",
        a.output,
        recs.len(),
        spacing as f64 / 1e9,
        if spacing > duration { "one after the other" } else { "overlapping, merged by time" },
        servers.len(),
    );
    Ok(())
}
