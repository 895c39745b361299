//! Synthetic capture generator: realistic HTTP/1.x API traffic of any size,
//! or one of the adversarial captures, with optional ground truth (TSV).
//!
//! ```text
//! cargo run --release --example gencap -- --size 1G --seed 42 -o big.pcap \
//!     [--truth big.truth.tsv] [--format pcap|pcap-be|pcap-ns|pcap-be-ns|pcapng] \
//!     [--link ethernet|raw|null|sll] [--impair 0.01] [--concurrency 64]
//!     [--profile recorded] [--big-share S] [--stream-share S] [--open-at-end S]
//! cargo run --release --example gencap -- --adversarial syn-flood -o syn.pcap [--count N] [--size 4G]
//! ```

use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::process::ExitCode;
use std::time::Instant;

use apitool::synth::adversarial::{self, AdvParams, Mode};
use apitool::synth::pcap::LinkType;
use apitool::synth::{CaptureFormat, PacketSink, Summary, SynthConfig, TruthRecord, TruthTsv, generate, parse_size};
use clap::Parser;

#[derive(Parser, Debug)]
#[command(about = "Generate a synthetic capture of HTTP/1.x API traffic")]
struct Args {
    /// Target capture size (1G, 200M, 512K, bytes); for bombs: decoded size;
    /// for huge-header: the header line length.
    #[arg(long)]
    size: Option<String>,
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Output file ("-" for stdout).
    #[arg(short, long)]
    output: String,
    /// Ground truth, one TSV line per exchange.
    #[arg(long)]
    truth: Option<String>,
    /// pcap, pcap-be, pcap-ns, pcap-be-ns or pcapng.
    #[arg(long, default_value = "pcap")]
    format: String,
    /// ethernet, raw, null or sll (pcapng adds a second, SLL interface).
    #[arg(long, default_value = "ethernet")]
    link: String,
    /// Snap length (frames longer are cut).
    #[arg(long)]
    snaplen: Option<u32>,
    /// Share of connections with one impairment.
    #[arg(long, default_value_t = 0.0)]
    impair: f64,
    /// Connections open at once.
    #[arg(long, default_value_t = 64)]
    concurrency: usize,
    /// Share of IPv6 connections.
    #[arg(long)]
    ipv6: Option<f64>,
    /// Write an adversarial capture instead: syn-flood, ooo, overlap,
    /// seq-wrap, gzip-bomb, br-bomb, zstd-bomb, huge-header, many-headers,
    /// chunk-overflow, bad-content-length, te-cl.
    #[arg(long)]
    adversarial: Option<String>,
    /// Flows / segments / headers for adversarial modes (bombs: connections, interleaved).
    #[arg(long)]
    count: Option<u64>,
    /// default, or recorded: the traits of recorded traffic (big binary and compressed
    /// bodies, more compressed responses, event streams, connections left open at the end);
    /// the options below override its shares.
    #[arg(long, default_value = "default")]
    profile: String,
    /// Share of exchanges fetching a big static file (binaries up to 4 MB, text up to 1.4 MB).
    #[arg(long)]
    big_share: Option<f64>,
    /// Share of connections carrying a long-lived server-sent event stream.
    #[arg(long)]
    stream_share: Option<f64>,
    /// Share of the connections open when the size is reached that are left open.
    #[arg(long)]
    open_at_end: Option<f64>,
}

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("gencap: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> Result<(), String> {
    let a = Args::parse();
    let link = LinkType::from_name(&a.link).ok_or_else(|| format!("unknown link type {:?}", a.link))?;
    let mut format = CaptureFormat::from_name(&a.format, link).ok_or_else(|| format!("unknown format {:?}", a.format))?;
    if let Some(s) = a.snaplen {
        match &mut format {
            CaptureFormat::Pcap(o) => o.snaplen = s,
            CaptureFormat::PcapNg { interfaces, .. } => interfaces.iter_mut().for_each(|i| i.snaplen = s),
        }
    }
    let size = match &a.size {
        Some(s) => Some(parse_size(s).ok_or_else(|| format!("bad size {s:?}"))?),
        None => None,
    };
    let out: Box<dyn Write> = if a.output == "-" {
        Box::new(io::stdout().lock())
    } else {
        Box::new(File::create(&a.output).map_err(|e| format!("{}: {e}", a.output))?)
    };
    let out = BufWriter::with_capacity(1 << 20, out);
    let mut truth_w = match &a.truth {
        Some(p) => {
            Some(File::create(p).map(|f| BufWriter::with_capacity(1 << 16, f)).and_then(TruthTsv::new).map_err(|e| format!("{p}: {e}"))?)
        }
        None => None,
    };
    let mut on_truth = |r: &TruthRecord| -> io::Result<()> {
        match &mut truth_w {
            Some(t) => t.write(r),
            None => Ok(()),
        }
    };
    let mut w = format.writer(out).map_err(|e| format!("{}: {e}", a.output))?;
    let t0 = Instant::now();
    let res: io::Result<Summary> = match &a.adversarial {
        Some(name) => {
            let mode = Mode::from_name(name).ok_or_else(|| {
                let names: Vec<&str> = adversarial::MODES.iter().map(|m| m.0).collect();
                format!("unknown adversarial mode {name:?} (one of {})", names.join(", "))
            })?;
            let p = AdvParams { seed: a.seed, count: a.count.unwrap_or(0), size: size.unwrap_or(0), interfaces: format.interfaces() };
            adversarial::write_adversarial(mode, &p, &mut w, &mut on_truth)
        }
        None => {
            let mut cfg = SynthConfig {
                seed: a.seed,
                target_bytes: size.unwrap_or(64 << 20),
                concurrency: a.concurrency,
                impair: a.impair,
                interfaces: format.interfaces(),
                snaplen: format.min_snaplen(),
                record_overhead: format.record_overhead(),
                ..SynthConfig::default()
            };
            if let Some(v6) = a.ipv6 {
                cfg.ipv6_share = v6;
            }
            cfg = match a.profile.as_str() {
                "default" => cfg,
                "recorded" => cfg.recorded_profile(),
                p => return Err(format!("unknown profile {p:?} (default or recorded)")),
            };
            for (name, v, field) in [
                ("--big-share", a.big_share, &mut cfg.big_share),
                ("--stream-share", a.stream_share, &mut cfg.stream_share),
                ("--open-at-end", a.open_at_end, &mut cfg.open_at_end),
            ] {
                if let Some(v) = v {
                    if !(0.0..=1.0).contains(&v) {
                        return Err(format!("{name} must be within 0..=1, not {v}"));
                    }
                    *field = v;
                }
            }
            generate(&cfg, &mut w, &mut on_truth)
        }
    };
    let s = res.map_err(|e| format!("{}: {e}", a.output))?;
    let bytes = w.bytes_written();
    w.into_inner().flush().map_err(|e| format!("{}: {e}", a.output))?;
    if let Some(t) = truth_w {
        t.into_inner().flush().map_err(|e| format!("truth: {e}"))?;
    }
    let secs = t0.elapsed().as_secs_f64();
    eprintln!(
        "wrote {bytes} bytes ({:.1} MiB), {} packets, {} connections, {} exchanges ({} impaired, {} unrecoverable) in {secs:.2} s: {:.0} MB/s",
        bytes as f64 / (1 << 20) as f64,
        s.packets,
        s.connections,
        s.exchanges,
        s.impaired_exchanges,
        s.unrecoverable_exchanges,
        bytes as f64 / 1e6 / secs.max(1e-9)
    );
    Ok(())
}
