//! The command line: flags in, a validated configuration out, then the commands.
//!
//! Exit status of `convert`: 0 when every input converted, 1 when any failed, 2 for usage
//! errors (clap's). `replay` has its own (see [`crate::replay`]).
//! A fatal problem with one input is one line on standard error naming the file (and the byte
//! offset where it applies); the other inputs are still processed.

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};

use clap::{Args, Parser, Subcommand};

use crate::capture::Input;
use crate::flow::FlowLimits;
use crate::http::HttpLimits;
use crate::pipeline::{Config, Converter, Summary};
pub use crate::replay::ReplayArgs;

pub mod witness;

#[derive(Parser, Debug)]
#[command(name = "apitool", version, about = "Turn packet captures of HTTP API traffic into HAR files, fast and in bounded memory.")]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Convert pcap/pcapng captures to HAR 1.2 (one HAR per input).
    Convert(ConvertArgs),
    /// Replay a recording (HAR or capture) against a target and report what changed.
    Replay(ReplayArgs),
    /// Read witness files: print their hashes, or dump them as JSON or text format.
    Witness(witness::WitnessArgs),
    /// Profile how reassembly uses memory on captures (nothing is written): peaks, caps hit,
    /// exchanges damaged, heap, a timeline; a table, JSON, an SVG plot, or a sweep of a cap.
    Profile(crate::profile::ProfileArgs),
}

/// Parses sizes such as `4096`, `64k`, `16MiB`, `1G`.
pub fn parse_size(s: &str) -> Result<usize, String> {
    let t = s.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: u64 = num.parse().map_err(|_| format!("'{s}' is not a size (examples: 4096, 64k, 16MiB, 1G)"))?;
    let mult: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" | "kib" => 1 << 10,
        "m" | "mb" | "mib" => 1 << 20,
        "g" | "gb" | "gib" => 1 << 30,
        _ => return Err(format!("'{s}': unknown unit '{unit}' (use k, M or G)")),
    };
    n.checked_mul(mult).and_then(|v| usize::try_from(v).ok()).ok_or_else(|| format!("'{s}' is too large"))
}

#[derive(Args, Debug)]
pub struct ConvertArgs {
    /// Captures to convert: pcap or pcapng files, directories (their *.pcap, *.pcapng, *.cap
    /// files), or - for standard input.
    #[arg(required = true, value_name = "INPUT")]
    pub inputs: Vec<PathBuf>,

    /// Where to write: a file for a single input (- for standard output), or a directory
    /// (created if missing) that receives one NAME.har (NAME.witness) per input.
    #[arg(short, long, value_name = "OUT")]
    pub output: PathBuf,

    #[command(flatten)]
    pub out: witness::OutputArgs,

    #[command(flatten)]
    pub caps: CapArgs,

    /// No progress bar and no summary on standard error (errors are still printed).
    #[arg(short, long)]
    pub quiet: bool,

    /// Also write the summary of every input as JSON to FILE.
    #[arg(long, value_name = "FILE")]
    pub summary_json: Option<PathBuf>,
}

fn default_threads() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

impl ConvertArgs {
    /// The validated configuration.
    pub fn config(&self) -> Result<Config, String> {
        Ok(Config { output: self.out.options()?, ..self.caps.config()? })
    }
}

/// The worker threads and caps, shared by `convert` and `profile`.
#[derive(Args, Debug, Clone)]
pub struct CapArgs {
    /// Worker threads for reassembly and parsing. The output does not depend on it (peak
    /// memory does).
    #[arg(long, value_name = "N", default_value_t = default_threads())]
    pub threads: usize,

    /// Out-of-order bytes buffered per connection; past it the oldest hole becomes a gap.
    #[arg(long, value_name = "SIZE", default_value = "4MiB", value_parser = parse_size)]
    pub max_ooo_per_conn: usize,

    /// Out-of-order bytes buffered in all connections; past it the largest buffers are
    /// flushed with gaps. Checked between windows of the capture (every 4 MiB or 32768
    /// frames), like --max-flows and --idle-timeout.
    #[arg(long, value_name = "SIZE", default_value = "32MiB", value_parser = parse_size)]
    pub max_ooo_total: usize,

    /// Connections tracked at once; past it the least recently active are ended (checked
    /// between windows of the capture).
    #[arg(long, value_name = "N", default_value_t = 100_000)]
    pub max_flows: usize,

    /// Seconds of capture time without a packet after which a connection is ended (checked
    /// between windows of the capture).
    #[arg(long, value_name = "SECS", default_value_t = 120.0)]
    pub idle_timeout: f64,

    /// A hole in a TCP stream is taken for bytes never captured once the receiver has
    /// acknowledged this many bytes past it (until then the missing segment may still come
    /// later in the file: captures are not in the order the receiver saw).
    #[arg(long, value_name = "SIZE", default_value = "1MiB", value_parser = parse_size)]
    pub gap_grace_bytes: usize,

    /// ... or once this many seconds of capture time went by since the receiver first
    /// acknowledged past it.
    #[arg(long, value_name = "SECS", default_value_t = 10.0)]
    pub gap_grace: f64,

    /// Seconds of capture time the output waits for an exchange still in progress (a long
    /// poll, an event stream, a connection open at the end) before writing the ones that
    /// started after it; an exchange that ends later is written when it ends, out of time
    /// order, marked `writtenLate` in `_apitool` and counted in the summary.
    #[arg(long, value_name = "SECS", default_value_t = 5.0)]
    pub order_window: f64,

    /// Largest decoded body kept per message; past it the body is truncated and flagged.
    #[arg(long, value_name = "SIZE", default_value = "16MiB", value_parser = parse_size)]
    pub max_body: usize,

    /// Largest message head (start line and header fields).
    #[arg(long, value_name = "SIZE", default_value = "128KiB", value_parser = parse_size)]
    pub max_head: usize,

    /// Most header fields in one message head.
    #[arg(long, value_name = "N", default_value_t = 1024)]
    pub max_headers: usize,

    /// A UDP port that carries TZSP (packets forwarded by a remote sniffer), decoded besides
    /// the standard port 37008.
    #[arg(long, value_name = "PORT", value_parser = clap::value_parser!(u16).range(1..))]
    pub tzsp_port: Option<u16>,
}

impl CapArgs {
    /// The configuration these flags make, validated (everything else at its default).
    pub fn config(&self) -> Result<Config, String> {
        if self.threads == 0 {
            return Err("--threads must be at least 1".into());
        }
        check_idle(self.idle_timeout)?;
        if !(self.order_window >= 0.0 && self.order_window.is_finite()) {
            return Err("--order-window must be a number of seconds, 0 or more".into());
        }
        if !(self.gap_grace >= 0.0 && self.gap_grace.is_finite()) {
            return Err("--gap-grace must be a number of seconds, 0 or more".into());
        }
        if self.max_flows == 0 {
            return Err("--max-flows must be at least 1".into());
        }
        Ok(Config {
            flow: FlowLimits {
                max_ooo_per_conn: self.max_ooo_per_conn,
                max_ooo_total: self.max_ooo_total,
                max_flows: self.max_flows,
                idle_timeout_ns: (self.idle_timeout * 1e9) as i64,
                gap_grace_bytes: self.gap_grace_bytes as u64,
                gap_grace_ns: (self.gap_grace * 1e9) as i64,
            },
            http: HttpLimits { max_head: self.max_head.max(64), max_headers: self.max_headers, max_body: self.max_body },
            threads: self.threads,
            order_window_ns: (self.order_window * 1e9) as i64,
            wire: crate::wire::WireOptions { tzsp_port: self.tzsp_port.unwrap_or(0) },
            ..Config::default()
        })
    }
}

/// `--idle-timeout` (or a swept value of it) is a positive, finite number of seconds.
pub fn check_idle(secs: f64) -> Result<(), String> {
    if secs > 0.0 && secs.is_finite() { Ok(()) } else { Err("--idle-timeout must be a positive number of seconds".into()) }
}

/// Runs the program; returns the exit status.
pub fn run(cli: Cli) -> i32 {
    match cli.command {
        Command::Convert(args) => convert(&args),
        Command::Replay(args) => crate::replay::command(&args),
        Command::Witness(args) => witness::command(&args),
        Command::Profile(args) => crate::profile::command(&args),
    }
}

fn is_capture_name(p: &Path) -> bool {
    p.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| matches!(e.to_ascii_lowercase().as_str(), "pcap" | "pcapng" | "cap" | "dmp" | "trace"))
}

/// Expands directories into their capture files (sorted by name).
pub(crate) fn expand_inputs(inputs: &[PathBuf]) -> Vec<Result<PathBuf, String>> {
    let mut out = Vec::new();
    for p in inputs {
        if p.as_os_str() != "-" && p.is_dir() {
            match std::fs::read_dir(p) {
                Ok(rd) => {
                    let mut files: Vec<PathBuf> =
                        rd.filter_map(|e| e.ok().map(|e| e.path())).filter(|f| f.is_file() && is_capture_name(f)).collect();
                    files.sort();
                    if files.is_empty() {
                        out.push(Err(format!("{}: no capture files (*.pcap, *.pcapng, *.cap) in this directory", p.display())));
                    }
                    out.extend(files.into_iter().map(Ok));
                }
                Err(e) => out.push(Err(format!("{}: {e}", p.display()))),
            }
        } else {
            out.push(Ok(p.clone()));
        }
    }
    out
}

fn convert(args: &ConvertArgs) -> i32 {
    let cfg = match args.config() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("apitool: {e}");
            return 2;
        }
    };
    let inputs = expand_inputs(&args.inputs);
    let many = inputs.len() > 1 || args.inputs.iter().any(|p| p.is_dir());
    let out_is_dir = many || args.output.is_dir() || args.output.to_string_lossy().ends_with('/');
    let formats = args.out.format;
    if formats.har && formats.witness && args.output.as_os_str() == "-" {
        eprintln!("apitool: -f har,witness writes two files: give a file or directory, not -");
        return 2;
    }
    let ext = if formats.har { "har" } else { "witness" };
    if out_is_dir {
        if args.output.as_os_str() == "-" {
            eprintln!("apitool: several inputs need an output directory, not -");
            return 2;
        }
        if let Err(e) = std::fs::create_dir_all(&args.output) {
            eprintln!("apitool: {}: cannot create output directory: {e}", args.output.display());
            return 1;
        }
    }
    let converter = Converter::new(cfg);
    let mut failed = false;
    let mut summaries: Vec<Summary> = Vec::new();
    let mut used_names = std::collections::HashSet::new();
    let interactive = !args.quiet && std::io::stderr().is_terminal();
    for input in inputs {
        let path = match input {
            Ok(p) => p,
            Err(e) => {
                eprintln!("apitool: {e}");
                failed = true;
                continue;
            }
        };
        let name = path.display().to_string();
        let target = if out_is_dir {
            let stem = if path.as_os_str() == "-" {
                "stdin".to_string()
            } else {
                path.file_stem().map_or("capture".into(), |s| s.to_string_lossy().into_owned())
            };
            let mut candidate = format!("{stem}.{ext}");
            let mut k = 1;
            while !used_names.insert(candidate.clone()) {
                k += 1;
                candidate = format!("{stem}-{k}.{ext}");
            }
            args.output.join(candidate)
        } else {
            args.output.clone()
        };
        let (har_target, wit_target) = match (formats.har, formats.witness) {
            (true, true) => (Some(target.clone()), Some(witness::witness_path(&target))),
            (false, _) => (None, Some(target.clone())),
            (true, false) => (Some(target.clone()), None),
        };
        match convert_one(&converter, &path, &name, har_target.as_deref(), wit_target.as_deref(), interactive) {
            Ok(summary) => {
                if !args.quiet {
                    eprint!("{}", human_summary(&summary, &target));
                    if let (Some(w), Some(t)) = (&summary.witnesses, &wit_target) {
                        eprint!("{}", witness_summary(w, t));
                    }
                }
                summaries.push(summary);
            }
            // convert_one's empty message: standard output was closed (BrokenPipe), not an error.
            Err(msg) if msg.is_empty() => {}
            Err(msg) => {
                eprintln!("apitool: {msg}");
                failed = true;
            }
        }
    }
    if let Some(path) = &args.summary_json {
        let json = serde_json::json!({ "inputs": summaries, "failed": failed });
        let write = std::fs::File::create(path).and_then(|mut f| {
            serde_json::to_writer_pretty(&mut f, &json)?;
            f.write_all(b"\n")
        });
        if let Err(e) = write {
            eprintln!("apitool: {}: cannot write the summary: {e}", path.display());
            failed = true;
        }
    }
    if failed { 1 } else { 0 }
}

/// An output: standard output (buffered), a temporary file that becomes the target when the
/// conversion succeeds, or a target that is not a regular file (`/dev/null`, a FIFO, a
/// terminal), written in place: renaming a file over it would replace the device.
enum Output {
    Stdout(std::io::BufWriter<std::io::Stdout>),
    File(std::fs::File, tempfile::TempPath, PathBuf),
    Special(std::fs::File),
}

/// Whether `target` exists and is something other than a regular file or a directory.
pub(crate) fn is_special(target: &Path) -> bool {
    std::fs::metadata(target).is_ok_and(|m| !m.is_file() && !m.is_dir())
}

impl Output {
    fn open(target: &Path) -> Result<Output, String> {
        if target.as_os_str() == "-" {
            return Ok(Output::Stdout(std::io::BufWriter::with_capacity(1 << 20, std::io::stdout())));
        }
        if is_special(target) {
            return std::fs::OpenOptions::new()
                .write(true)
                .open(target)
                .map(Output::Special)
                .map_err(|e| format!("{}: cannot write: {}", target.display(), os_error(&e)));
        }
        let dir = target.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
        let tmp = tempfile::Builder::new()
            .prefix(".apitool-")
            .suffix(".tmp")
            .tempfile_in(dir)
            .map_err(|e| format!("{}: cannot write: {}", target.display(), os_error(&e)))?;
        let (file, tmp_path) = tmp.into_parts();
        // The temporary file is private (0600); the output gets the mode an existing file has,
        // or the usual 0644.
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(target).map_or(0o644, |m| m.permissions().mode() & 0o7777);
            let _ = file.set_permissions(std::fs::Permissions::from_mode(mode));
        }
        Ok(Output::File(file, tmp_path, target.to_path_buf()))
    }

    /// Flushes standard output, or moves the temporary file to the target.
    fn finish(self) -> std::io::Result<()> {
        match self {
            Output::Stdout(mut w) => w.flush(),
            Output::File(_, tmp, target) => tmp.persist(&target).map(|_| ()).map_err(|e| e.error),
            Output::Special(mut f) => f.flush(),
        }
    }
}

impl Write for Output {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match self {
            Output::Stdout(w) => w.write(buf),
            Output::File(f, ..) | Output::Special(f) => f.write(buf),
        }
    }
    fn write_vectored(&mut self, bufs: &[std::io::IoSlice<'_>]) -> std::io::Result<usize> {
        match self {
            Output::Stdout(w) => w.write_vectored(bufs),
            // The converter writes whole entries with vectored writes: no buffer in between.
            Output::File(f, ..) | Output::Special(f) => f.write_vectored(bufs),
        }
    }
    fn flush(&mut self) -> std::io::Result<()> {
        match self {
            Output::Stdout(w) => w.flush(),
            Output::File(f, ..) | Output::Special(f) => f.flush(),
        }
    }
}

fn convert_one(
    conv: &Converter,
    path: &Path,
    name: &str,
    har_target: Option<&Path>,
    wit_target: Option<&Path>,
    interactive: bool,
) -> Result<Summary, String> {
    let input = Input::open(path).map_err(|e| format!("{name}: {e}"))?;
    let bar = if interactive {
        let bar = match input.size() {
            Some(n) => indicatif::ProgressBar::new(n),
            None => indicatif::ProgressBar::new_spinner(),
        };
        bar.set_style(
            indicatif::ProgressStyle::with_template("{msg} [{bar:30}] {bytes}/{total_bytes} {binary_bytes_per_sec} eta {eta}")
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
                .progress_chars("=> "),
        );
        bar.set_message(name.to_string());
        Some(bar)
    } else {
        None
    };
    let mut progress = |p: &crate::pipeline::Progress| {
        if let Some(b) = &bar {
            b.set_position(p.bytes);
        }
    };
    let mut har = har_target.map(Output::open).transpose()?;
    let mut wit = wit_target.map(Output::open).transpose()?;
    let target = har_target.or(wit_target).unwrap_or(Path::new("-"));
    let converted = conv.convert_to(input, name, har.as_mut(), wit.as_mut(), &mut progress).map(|(s, _, _)| s);
    let result = converted.and_then(|s| {
        for o in [har, wit].into_iter().flatten() {
            o.finish().map_err(crate::pipeline::ConvertError::Write)?;
        }
        Ok(s)
    });
    if let Some(b) = bar {
        b.finish_and_clear();
    }
    result.map_err(|e| match e {
        crate::pipeline::ConvertError::Open(o) => format!("{name}: byte 0: {o}"),
        crate::pipeline::ConvertError::Read { offset, source } => format!("{name}: byte {offset}: read error: {source}"),
        crate::pipeline::ConvertError::Write(w) if w.kind() == std::io::ErrorKind::BrokenPipe => String::new(),
        crate::pipeline::ConvertError::Write(w) => format!("{}: cannot write: {w}", target.display()),
    })
}

/// An I/O error's own message, without the temporary file's name that tempfile adds.
fn os_error(e: &std::io::Error) -> String {
    let msg = e.to_string();
    match msg.find(" at path ") {
        Some(p) => msg[..p].to_string(),
        None => msg,
    }
}

fn plural(n: u64, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

/// The witness part of the summary in words.
pub fn witness_summary(w: &crate::pipeline::WitnessSummary, target: &Path) -> String {
    let mut out = format!("  {} -> {}\n", plural(w.written, "witness", "witnesses"), target.display());
    let mut note = |n: u64, what: &str| {
        if n > 0 {
            out.push_str(&format!("  {n} {what}\n"));
        }
    };
    note(w.duplicates, "duplicate witnesses dropped (--dedup)");
    note(w.without_request, "responses without a request have no witness");
    let u = &w.ir.unparsed_bodies;
    for (n, ty) in [(u.json, "JSON"), (u.yaml, "YAML"), (u.xml, "XML"), (u.form, "form"), (u.multipart, "multipart")] {
        note(n, &format!("bodies that did not parse as {ty} (kept as a string or bytes sample)"));
    }
    note(w.ir.depth_capped, "body values nested too deep (cut)");
    note(w.ir.list_elements_dropped, "list elements past --max-list left out of witnesses");
    note(w.ir.redactions, "values redacted in witnesses");
    out
}

/// The summary in words: totals, then every counter that is not zero.
pub fn human_summary(s: &Summary, target: &Path) -> String {
    let mut out = String::new();
    use std::fmt::Write as _;
    let _ = writeln!(
        out,
        "{}: {}, {} bytes, {}, {}, {} -> {}",
        s.input,
        s.format,
        s.bytes,
        plural(s.frames, "frame", "frames"),
        plural(s.tcp.flows, "connection", "connections"),
        plural(s.entries, "exchange", "exchanges"),
        target.display()
    );
    let mut notes: Vec<String> = Vec::new();
    fn note_in(notes: &mut Vec<String>, n: u64, what: &str) {
        if n > 0 {
            notes.push(format!("{n} {what}"));
        }
    }
    macro_rules! note {
        ($n:expr, $what:expr) => {
            note_in(&mut notes, $n, $what)
        };
    }
    if let Some(off) = s.truncated_at {
        notes.push(format!("the capture ends in the middle of a record at byte {off} (file cut short)"));
    }
    if let Some((off, why)) = &s.corrupt {
        notes.push(format!("unreadable record at byte {off} ({why}); the rest of the file was skipped"));
    }
    for (lt, n) in &s.unsupported_linktypes {
        notes.push(format!("{n} frames of unsupported link type {lt} skipped"));
    }
    note!(s.frames_snap_cut, "frames cut short by the snap length");
    for (layer, n) in &s.malformed {
        notes.push(format!("{n} frames with a malformed {layer}"));
    }
    note!(s.too_deep, "frames with tunnels nested too deep");
    note!(s.ip_fragments.reassembled, "IP datagrams reassembled from fragments");
    note!(s.ip_fragments.dropped, "incomplete IP datagrams dropped (fragments missing or over the cap)");
    note!(s.ip_fragments.bad, "bad IP fragments");
    let t = &s.tcp;
    note!(t.retransmitted_segments, "retransmitted TCP segments ignored");
    note!(t.late_segments, "TCP segments that came after their bytes were declared missing (see --gap-grace)");
    note!(t.out_of_order_segments, "out-of-order TCP segments reordered");
    note!(t.overlap_conflicts, "overlapping TCP segments with conflicting bytes (first seen kept)");
    if t.gaps > 0 {
        notes.push(format!("{} gaps in TCP streams ({} bytes never captured)", t.gaps, t.gap_bytes));
    }
    note!(t.snaplen_cut_bytes, "payload bytes lost to the snap length");
    note!(t.out_of_window_segments, "TCP segments far outside their stream ignored");
    note!(t.ooo_conn_cap_hits, "times the per-connection out-of-order cap forced a gap (--max-ooo-per-conn)");
    note!(t.ooo_total_cap_hits, "connections flushed by the total out-of-order cap (--max-ooo-total)");
    note!(t.flow_cap_evictions, "connections ended early by the open-connection cap (--max-flows)");
    note!(t.idle_timeouts, "connections ended by the idle timeout (--idle-timeout)");
    note!(t.ended_at_capture_end, "connections still open at the end of the capture");
    note!(t.port_reuse, "connections that reused the ports of an earlier one");
    note!(t.stray_syns, "SYNs contradicting a live connection, ignored");
    note!(t.rst_ignored, "RSTs not honoured because the connection went on");
    let h = &s.http;
    note!(h.non_http_connections, "connections that are not HTTP/1.x (ignored)");
    note!(h.no_response, "requests without a response");
    note!(h.no_request, "responses without a request");
    note!(h.unpaired_responses, "responses after lost data whose request cannot be told (written without one)");
    note!(h.paired_after_loss, "responses placed on their request by TCP evidence (after lost data, or captured before it)");
    note!(h.interim_responses, "interim (1xx) responses");
    note!(h.lenient_heads, "malformed message heads read leniently");
    note!(h.malformed_heads, "unparseable message heads skipped");
    note!(h.oversized_heads, "message heads over the size or field cap (--max-head, --max-headers)");
    note!(h.messages_with_gaps, "messages with bytes missing from the capture");
    note!(h.incomplete_messages, "messages cut short by the end of their connection");
    note!(h.truncated_bodies, "bodies truncated at the decoded size cap (--max-body)");
    note!(h.decode_errors, "bodies that failed to decode");
    note!(h.unsupported_codings, "bodies with an unsupported content coding (kept encoded)");
    note!(h.bad_framing, "messages with malformed chunked framing");
    if h.resyncs > 0 {
        notes.push(format!("{} resynchronisations on the next message ({} bytes skipped)", h.resyncs, h.resync_skipped_bytes));
    }
    note!(h.tunnels, "CONNECT or Upgrade tunnels (bytes that are not HTTP are not parsed)");
    note!(h.http_tunnels, "CONNECT or SOCKS tunnels whose HTTP was parsed (see _apitool.tunnel)");
    note!(s.entries_with_anomalies, "exchanges with anomalies (see _apitool.anomalies)");
    note!(
        s.entries_out_of_order,
        "exchanges written out of time order, marked writtenLate (they ended after later ones were written: --order-window)"
    );
    note!(s.filtered_out, "exchanges left out by --host/--path");
    note!(s.har_redactions, "values redacted in the HAR");
    for n in notes {
        let _ = writeln!(out, "  {n}");
    }
    out
}
