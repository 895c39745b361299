//! The command line: flags in, a validated configuration out, then the commands.
//!
//! Exit status of `convert`: 0 when every input converted, 1 when any failed, 2 for usage
//! errors (clap's, and outputs that would clobber an input or each other), 130 when a signal
//! interrupted it. `replay` has its own (see [`crate::replay`]).
//! A fatal problem with one input is one line on standard error naming the file (and the byte
//! offset where it applies); the other inputs are still processed.

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use clap::{Args, Parser, Subcommand};

use crate::capture::Input;
use crate::flow::FlowLimits;
use crate::pipeline::{Config, Converter, Summary};
use crate::proto::http1::HttpLimits;
pub use crate::replay::ReplayArgs;

pub mod witness;

#[derive(Parser, Debug)]
#[command(name = "apitool", version, long_version = long_version(), about = "Turn packet captures of HTTP API traffic into HAR files, fast and in bounded memory.")]
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
    /// Print a shell completion script to standard output (see the README to install it).
    #[command(after_help = "Examples:
  apitool completions bash > ~/.local/share/bash-completion/completions/apitool
  apitool completions zsh > ~/.zfunc/_apitool
  apitool completions fish > ~/.config/fish/completions/apitool.fish
  apitool completions powershell >> $PROFILE

Exit status: 0 written; 1 standard output could not be written; 2 bad flags.")]
    Completions {
        #[arg(value_enum, value_name = "SHELL")]
        shell: Shell,
    },
    /// Print the man page (roff) to standard output: apitool(1), or apitool-SUBCOMMAND(1).
    #[command(after_help = "Examples:
  apitool man > ~/.local/share/man/man1/apitool.1
  apitool man convert | man -l -

Exit status: 0 written; 1 standard output could not be written; 2 bad flags or an unknown \
subcommand.")]
    Man {
        /// The subcommand whose page to print (default: the page of apitool itself).
        #[arg(value_name = "SUBCOMMAND")]
        subcommand: Option<String>,
    },
}

/// The shells `apitool completions` writes scripts for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Shell {
    Bash,
    Zsh,
    Fish,
    Powershell,
}

/// `apitool completions SHELL`.
fn completions(shell: Shell) -> i32 {
    use clap::CommandFactory;
    let mut cmd = Cli::command();
    let mut out = Vec::new();
    let s = match shell {
        Shell::Bash => clap_complete::Shell::Bash,
        Shell::Zsh => clap_complete::Shell::Zsh,
        Shell::Fish => clap_complete::Shell::Fish,
        Shell::Powershell => clap_complete::Shell::PowerShell,
    };
    clap_complete::generate(s, &mut cmd, "apitool", &mut out);
    write_stdout(&out)
}

/// `apitool man [SUBCOMMAND]`.
fn man(subcommand: Option<&str>) -> i32 {
    use clap::CommandFactory;
    let mut top = Cli::command();
    top.build();
    let page = match subcommand {
        None => top,
        Some(name) => match top.find_subcommand(name) {
            // The page of `apitool NAME` is named apitool-NAME.
            Some(sub) => {
                // Names are &'static in clap without its `string` feature; this runs once.
                let page: &'static str = Box::leak(format!("apitool-{name}").into_boxed_str());
                sub.clone().name(page).bin_name(format!("apitool {name}"))
            }
            None => {
                let names: Vec<String> = top.get_subcommands().map(|c| c.get_name().to_string()).filter(|n| n != "help").collect();
                eprintln!("apitool: man: no subcommand {name:?} (one of: {})", names.join(", "));
                return 2;
            }
        },
    };
    let mut out = Vec::new();
    if let Err(e) = clap_mangen::Man::new(page).render(&mut out) {
        eprintln!("apitool: man: {e}");
        return 1;
    }
    write_stdout(&out)
}

fn write_stdout(bytes: &[u8]) -> i32 {
    let mut o = std::io::stdout().lock();
    match o.write_all(bytes).and_then(|_| o.flush()) {
        Ok(()) => 0,
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => 0,
        Err(e) => {
            eprintln!("apitool: cannot write to standard output: {e}");
            1
        }
    }
}

/// `apitool --version`: the version, the commit it was built from, the build profile, the
/// decoders and outputs built in, and the SIMD features compiled in and found on this CPU.
pub fn long_version() -> &'static str {
    let commit = option_env!("APITOOL_COMMIT").map_or_else(|| "commit unknown".to_string(), |c| format!("commit {c}"));
    let profile = option_env!("APITOOL_PROFILE").unwrap_or("unknown");
    let mut s = format!(
        "{} ({commit}, {profile} build)\nfeatures: +gzip,+deflate,+br,+zstd (decoders), +har,+witness (outputs), +pcap,+pcapng (inputs)",
        env!("CARGO_PKG_VERSION")
    );
    #[cfg(target_arch = "x86_64")]
    {
        let compiled =
            [("SSE2", cfg!(target_feature = "sse2")), ("SSSE3", cfg!(target_feature = "ssse3")), ("AVX2", cfg!(target_feature = "avx2"))];
        let runtime = [
            ("SSE2", std::arch::is_x86_feature_detected!("sse2")),
            ("SSSE3", std::arch::is_x86_feature_detected!("ssse3")),
            ("AVX2", std::arch::is_x86_feature_detected!("avx2")),
        ];
        let list = |v: &[(&str, bool)]| v.iter().map(|(n, on)| format!("{}{n}", if *on { '+' } else { '-' })).collect::<Vec<_>>().join(",");
        s.push_str(&format!("\nsimd(compile): {}\nsimd(runtime): {}", list(&compiled), list(&runtime)));
    }
    Box::leak(s.into_boxed_str())
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

/// When to colour what a subcommand colours.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum ColorWhen {
    /// When the stream coloured is a terminal and NO_COLOR is not set.
    #[default]
    Auto,
    Always,
    Never,
}

impl ColorWhen {
    /// Whether to colour a stream that is (`terminal`) or is not a terminal.
    pub fn enabled(self, terminal: bool) -> bool {
        match self {
            ColorWhen::Always => true,
            ColorWhen::Never => false,
            ColorWhen::Auto => terminal && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty()),
        }
    }

    /// Whether to colour standard error.
    pub fn stderr(self) -> bool {
        self.enabled(std::io::stderr().is_terminal())
    }
}

/// `-q`, `-v` and `--color`, the same in every subcommand that prints progress or a summary
/// (`convert`, `profile`, `witness hash|dump`, `replay`). Each subcommand's help says what
/// `-v` adds there.
#[derive(Args, Debug, Clone, Default)]
pub struct CommonArgs {
    /// No progress bar and no summary on standard error (errors are still printed).
    #[arg(short, long, conflicts_with = "verbose")]
    pub quiet: bool,

    /// More detail (see below what it adds to this subcommand).
    #[arg(short, long, action = clap::ArgAction::Count)]
    pub verbose: u8,

    /// Colour (auto: when standard error is a terminal and NO_COLOR is not set).
    #[arg(long, value_name = "WHEN", value_enum, default_value_t = ColorWhen::Auto)]
    pub color: ColorWhen,
}

/// The `apitool:` that starts an error message, bold red when `color`.
pub fn error_prefix(color: bool) -> &'static str {
    if color { "\x1b[1;31mapitool:\x1b[0m" } else { "apitool:" }
}

#[derive(Args, Debug)]
#[command(after_help = "Examples:
  apitool convert capture.pcap -o capture.har
  apitool convert a.pcap b.pcapng dir/ -o out/
  tcpdump -i eth0 -w - 'tcp port 80' | apitool convert - -o live.har
  apitool convert -f har,witness --redact capture.pcapng -o out.har
  apitool convert -v capture.pcap -o capture.har

Common flags: -q prints no progress bar and no summary; -v also lists every counter of the \
summary that is zero; --color colours the counters that are not zero (yellow) and the apitool: \
of error messages (red).

Exit status: 0 every input converted; 1 an input failed (unreadable, not a capture, not one \
frame readable) or an output could not be written; 2 bad flags or outputs that would clobber an \
input or each other; 130 interrupted (the outputs are closed complete).")]
pub struct ConvertArgs {
    /// Captures to convert: pcap or pcapng files, directories (their *.pcap, *.pcapng, *.cap
    /// files), or - for standard input.
    #[arg(required = true, value_name = "INPUT")]
    pub inputs: Vec<PathBuf>,

    /// Where to write: a file for a single input (- for standard output), or a directory
    /// that receives one NAME.har (NAME.witness) per input: an existing one, or DIR/ (with
    /// the slash) created if missing. Several inputs need a directory. No output may be an
    /// input.
    #[arg(short, long, value_name = "OUT")]
    pub output: PathBuf,

    #[command(flatten)]
    pub out: witness::OutputArgs,

    #[command(flatten)]
    pub caps: CapArgs,

    #[command(flatten)]
    pub common: CommonArgs,

    /// Also write the summary of every input as JSON to FILE (- for standard output).
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
    /// flushed with gaps. Checked between windows of the capture (every 1 MiB or 8192
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

    /// Memory for entries waiting for their turn (serialized, or a large entry's exchange),
    /// counted in bytes held; past it the oldest are written at once, and any that end later
    /// but started earlier are written late, marked as for --order-window
    #[arg(long, value_name = "SIZE", default_value = "8MiB", value_parser = parse_size)]
    pub order_mem: usize,

    /// Largest decoded body kept per message; past it the body is truncated and flagged.
    #[arg(long, value_name = "SIZE", default_value = "16MiB", value_parser = parse_size)]
    pub max_body: usize,

    /// Bytes held by the bodies in progress of all connections (a coded body counts its
    /// encoded bytes until it ends, when it is decoded); past it the largest are truncated
    /// where they are and flagged. Checked between windows of the capture, like
    /// --max-ooo-total.
    #[arg(long, value_name = "SIZE", default_value = "64MiB", value_parser = parse_size)]
    pub max_bodies_total: usize,

    /// Messages kept per entry: a WebSocket connection's messages (in
    /// `_webSocketMessages`), a response's server-sent events (in `_apitool.events`); the
    /// rest are counted. A WebSocket also keeps at most --max-bodies-total bytes of messages.
    #[arg(long, value_name = "N", default_value_t = crate::proto::http1::MAX_MESSAGES)]
    pub max_messages: usize,

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

    /// Largest HTTP/2 header list of one message (name + value + 32 bytes per field, as
    /// RFC 9113 counts) and header block held; past it the message's fields are dropped and
    /// marked.
    #[arg(long, value_name = "SIZE", default_value = "256KiB", value_parser = parse_size)]
    pub h2_max_header_list: usize,

    /// HTTP/2 streams open at once on one connection; past it new streams are written with
    /// their headers only and marked.
    #[arg(long, value_name = "N", default_value_t = 1000)]
    pub h2_max_streams: usize,

    /// HPACK dynamic table kept per direction of an HTTP/2 connection; header blocks that
    /// use entries past it are marked as not decodable (never guessed).
    #[arg(long, value_name = "SIZE", default_value = "64KiB", value_parser = parse_size)]
    pub h2_max_table: usize,

    /// A TLS key log (NSS format, as written where SSLKEYLOGFILE is set) to decrypt TLS
    /// connections with; repeatable (for a client random in several, the last line read
    /// wins). A pcapng input's Decryption Secrets Blocks are used too.
    #[arg(long, value_name = "FILE")]
    pub keylog: Vec<PathBuf>,
}

/// Reads the key logs of `--keylog` (none: no key log). A line that cannot be read is
/// reported by its number only: key logs hold secrets.
pub fn read_keylogs(paths: &[PathBuf]) -> Result<crate::proto::tls::TlsLimits, String> {
    use crate::proto::tls::keylog::{KeyLog, KeyLogLimits};
    if paths.is_empty() {
        return Ok(crate::proto::tls::TlsLimits::default());
    }
    let mut log = KeyLog::new(KeyLogLimits::default());
    for p in paths {
        let data = std::fs::read(p).map_err(|e| format!("--keylog {}: {}", p.display(), os_error(&e)))?;
        let before = log.problems.len();
        let bad_before = log.stats.bad_lines;
        log.add(&data);
        for problem in &log.problems[before..] {
            eprintln!("apitool: warning: --keylog {}: {problem} (skipped)", p.display());
        }
        let unreported = (log.stats.bad_lines - bad_before).saturating_sub((log.problems.len() - before) as u64);
        if unreported > 0 {
            eprintln!("apitool: warning: --keylog {}: {unreported} more lines skipped", p.display());
        }
    }
    Ok(crate::proto::tls::TlsLimits { keylog: Some(std::sync::Arc::new(log)) })
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
            http: HttpLimits {
                max_head: self.max_head.max(64),
                max_headers: self.max_headers,
                max_body: self.max_body,
                max_bodies_total: self.max_bodies_total,
                max_messages: self.max_messages,
            },
            h2: crate::proto::h2::H2Limits {
                max_header_list: self.h2_max_header_list,
                max_streams: self.h2_max_streams.max(1),
                max_table: self.h2_max_table,
            },
            threads: self.threads,
            order_window_ns: (self.order_window * 1e9) as i64,
            reorder_mem: self.order_mem.max(1 << 16),
            wire: crate::wire::WireOptions { tzsp_port: self.tzsp_port.unwrap_or(0) },
            tls: read_keylogs(&self.keylog)?,
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
        Command::Completions { shell } => completions(shell),
        Command::Man { subcommand } => man(subcommand.as_deref()),
    }
}

fn is_capture_name(p: &Path) -> bool {
    p.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| matches!(e.to_ascii_lowercase().as_str(), "pcap" | "pcapng" | "cap" | "dmp" | "trace"))
}

/// Expands directories into their capture files (sorted by name).
pub(crate) fn expand_inputs(inputs: &[PathBuf]) -> Vec<Result<PathBuf, String>> {
    expand_inputs_named(inputs).into_iter().map(|(_, r)| r).collect()
}

/// How an input is named in messages and summaries: its path, or "standard input" for `-`.
pub fn input_name(path: &Path) -> String {
    if path.as_os_str() == "-" { "standard input".into() } else { path.display().to_string() }
}

/// How an output is named in messages: its path, or "standard output" for `-`.
fn output_name(path: &Path) -> String {
    if path.as_os_str() == "-" { "standard output".into() } else { path.display().to_string() }
}

/// Whether two paths name the same file: the same device and inode when both exist, else the
/// same canonical path (that of the parent directory for a file not created yet).
pub(crate) fn same_file(a: &Path, b: &Path) -> bool {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        if let (Ok(x), Ok(y)) = (std::fs::metadata(a), std::fs::metadata(b)) {
            return x.dev() == y.dev() && x.ino() == y.ino();
        }
    }
    fn canonical(p: &Path) -> Option<PathBuf> {
        if let Ok(c) = p.canonicalize() {
            return Some(c);
        }
        let name = p.file_name()?;
        let parent = p.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
        parent.canonicalize().ok().map(|d| d.join(name))
    }
    match (canonical(a), canonical(b)) {
        (Some(x), Some(y)) => x == y,
        _ => a == b,
    }
}

/// One input of `convert` and where its outputs go.
struct Planned {
    path: PathBuf,
    name: String,
    /// The output named in the summary line.
    target: PathBuf,
    har: Option<PathBuf>,
    witness: Option<PathBuf>,
}

/// An input that could not be expanded (a directory without captures): its name and why.
type Unplanned = (String, String);

/// Where each input's outputs go, checked before anything is read or written: a usage error
/// (exit status 2) when two outputs would be the same file, or an output the same file as an
/// input. Inputs that could not be expanded are kept with their message. Also says whether
/// the output is a directory.
fn plan(args: &ConvertArgs) -> Result<(Vec<Result<Planned, Unplanned>>, bool), String> {
    let named = expand_inputs_named(&args.inputs);
    let many = named.len() > 1 || args.inputs.iter().any(|p| p.as_os_str() != "-" && p.is_dir());
    let stdout = args.output.as_os_str() == "-";
    let looks_like_dir = args.output.is_dir() || args.output.to_string_lossy().ends_with('/');
    let formats = args.out.format;
    if formats.har && formats.witness && stdout {
        return Err("-f har,witness writes two files: give a file or directory, not -".into());
    }
    if many && stdout {
        return Err("several inputs need an output directory, not -".into());
    }
    if many && !looks_like_dir {
        return Err(format!(
            "several inputs need an output directory: -o DIR/ (with a trailing slash, or an existing directory), not -o {}",
            args.output.display()
        ));
    }
    let out_is_dir = many || looks_like_dir;
    let ext = if formats.har { "har" } else { "witness" };
    let mut used_names = std::collections::HashSet::new();
    let mut planned = Vec::new();
    for (arg, input) in named {
        let path = match input {
            Ok(p) => p,
            Err(e) => {
                planned.push(Err((input_name(&arg), e)));
                continue;
            }
        };
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
        let (har, witness) = match (formats.har, formats.witness) {
            (true, true) => (Some(target.clone()), Some(witness::witness_path(&target))),
            (false, _) => (None, Some(target.clone())),
            (true, false) => (Some(target.clone()), None),
        };
        if let (Some(h), Some(w)) = (&har, &witness)
            && same_file(h, w)
        {
            return Err(format!(
                "-f har,witness would write the HAR and the witnesses to the same file {}: name the output NAME.har (witnesses go to NAME.witness)",
                h.display()
            ));
        }
        planned.push(Ok(Planned { name: input_name(&path), path, target, har, witness }));
    }
    // No output may be an input (or the summary), whichever names they are given by.
    let inputs: Vec<&Path> =
        planned.iter().filter_map(|p| p.as_ref().ok()).map(|p| p.path.as_path()).filter(|p| p.as_os_str() != "-").collect();
    let mut outputs: Vec<(&Path, &str)> = Vec::new();
    for p in planned.iter().filter_map(|p| p.as_ref().ok()) {
        outputs.extend(p.har.as_deref().map(|h| (h, "the HAR output")));
        outputs.extend(p.witness.as_deref().map(|w| (w, "the witness output")));
    }
    if let Some(sum) = args.summary_json.as_deref().filter(|s| s.as_os_str() != "-") {
        outputs.push((sum, "the --summary-json file"));
    }
    for (out, what) in &outputs {
        if out.as_os_str() == "-" || is_special(out) {
            continue;
        }
        if let Some(input) = inputs.iter().find(|i| same_file(i, out)) {
            return Err(format!(
                "{what} {} is the input {}: refusing to overwrite it (give another output)",
                out.display(),
                input.display()
            ));
        }
    }
    if let Some(sum) = args.summary_json.as_deref() {
        let clash = if sum.as_os_str() == "-" {
            outputs.iter().any(|(o, _)| o.as_os_str() == "-")
        } else {
            outputs[..outputs.len() - 1].iter().any(|(o, _)| o.as_os_str() != "-" && same_file(o, sum))
        };
        if clash {
            return Err(format!("--summary-json {} is also an output of the conversion: give another file", output_name(sum)));
        }
    }
    Ok((planned, out_is_dir))
}

/// Expands directories into their capture files (sorted by name), each with the argument it
/// came from.
fn expand_inputs_named(inputs: &[PathBuf]) -> Vec<(PathBuf, Result<PathBuf, String>)> {
    let mut out = Vec::new();
    for p in inputs {
        if p.as_os_str() != "-" && p.is_dir() {
            match std::fs::read_dir(p) {
                Ok(rd) => {
                    let mut files: Vec<PathBuf> =
                        rd.filter_map(|e| e.ok().map(|e| e.path())).filter(|f| f.is_file() && is_capture_name(f)).collect();
                    files.sort();
                    if files.is_empty() {
                        out.push((
                            p.clone(),
                            Err(format!("{}: no capture files (*.pcap, *.pcapng, *.cap) in this directory", p.display())),
                        ));
                    }
                    out.extend(files.into_iter().map(|f| (p.clone(), Ok(f))));
                }
                Err(e) => out.push((p.clone(), Err(format!("{}: {e}", p.display())))),
            }
        } else {
            out.push((p.clone(), Ok(p.clone())));
        }
    }
    out
}

/// Temporary output files not yet moved to their targets: removed when a second signal ends
/// the program at once.
static TEMPORARIES: std::sync::Mutex<Vec<PathBuf>> = std::sync::Mutex::new(Vec::new());

/// A temporary output listed in [`TEMPORARIES`] while it lives.
struct Registered(PathBuf);

impl Registered {
    fn new(path: &Path) -> Registered {
        if let Ok(mut t) = TEMPORARIES.lock() {
            t.push(path.to_path_buf());
        }
        Registered(path.to_path_buf())
    }
}

impl Drop for Registered {
    fn drop(&mut self) {
        if let Ok(mut t) = TEMPORARIES.lock() {
            t.retain(|p| p != &self.0);
        }
    }
}

/// Signals are not watched outside Unix.
#[cfg(not(unix))]
pub(crate) fn watch_signals(_stop: Arc<AtomicBool>) {}

/// Watches SIGINT and SIGTERM while `convert` runs: the first sets `stop` (the conversion
/// ends as at the end of its input and the outputs are completed), the second removes the
/// temporary outputs and exits at once with status 130.
#[cfg(unix)]
pub(crate) fn watch_signals(stop: Arc<AtomicBool>) {
    use signal_hook::consts::{SIGINT, SIGTERM};
    let Ok(mut signals) = signal_hook::iterator::Signals::new([SIGINT, SIGTERM]) else {
        return;
    };
    let _ = std::thread::Builder::new().name("apitool-signals".into()).spawn(move || {
        for _ in signals.forever() {
            if stop.swap(true, Ordering::SeqCst) {
                if let Ok(t) = TEMPORARIES.lock() {
                    for p in t.iter() {
                        let _ = std::fs::remove_file(p);
                    }
                }
                eprintln!("apitool: interrupted again: stopped at once, nothing written");
                std::process::exit(130);
            }
            eprintln!("apitool: interrupted: finishing the exchanges read so far (interrupt again to stop at once)");
        }
    });
}

fn convert(args: &ConvertArgs) -> i32 {
    let mut cfg = match args.config() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("apitool: {e}");
            return 2;
        }
    };
    let (planned, out_is_dir) = match plan(args) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("apitool: {e}");
            return 2;
        }
    };
    if out_is_dir && let Err(e) = std::fs::create_dir_all(&args.output) {
        eprintln!("apitool: {}: cannot create output directory: {e}", args.output.display());
        return 1;
    }
    let stop = Arc::new(AtomicBool::new(false));
    watch_signals(stop.clone());
    cfg.stop = Some(stop.clone());
    let converter = Converter::new(cfg);
    let mut failed = false;
    let mut records: Vec<serde_json::Value> = Vec::new();
    let interactive = !args.common.quiet && std::io::stderr().is_terminal();
    let color = args.common.color.stderr();
    let style = SummaryStyle { all: args.common.verbose > 0, color };
    for p in planned {
        let p = match p {
            Ok(p) => p,
            Err((name, e)) => {
                eprintln!("{} {e}", error_prefix(color));
                records.push(serde_json::json!({ "input": name, "error": e }));
                failed = true;
                continue;
            }
        };
        if stop.load(Ordering::SeqCst) {
            records.push(serde_json::json!({ "input": p.name, "error": "not converted: interrupted", "interrupted": true }));
            continue;
        }
        match convert_one(&converter, &p.path, &p.name, p.har.as_deref(), p.witness.as_deref(), interactive) {
            Ok(summary) => {
                if !args.common.quiet {
                    eprint!("{}", human_summary_styled(&summary, &p.target, style));
                    if let (Some(w), Some(t)) = (&summary.witnesses, &p.witness) {
                        eprint!("{}", witness_summary_styled(w, t, style));
                    }
                }
                records.push(
                    serde_json::to_value(&summary).unwrap_or_else(|e| serde_json::json!({ "input": p.name, "error": e.to_string() })),
                );
            }
            // convert_one's empty message: standard output was closed (BrokenPipe), not an error.
            Err(msg) if msg.is_empty() => {}
            Err(msg) => {
                eprintln!("{} {msg}", error_prefix(color));
                records.push(serde_json::json!({ "input": p.name, "error": msg }));
                failed = true;
            }
        }
    }
    let interrupted = stop.load(Ordering::SeqCst);
    if let Some(path) = &args.summary_json {
        let json = serde_json::json!({ "inputs": records, "failed": failed, "interrupted": interrupted });
        let write = |w: &mut dyn Write| -> std::io::Result<()> {
            serde_json::to_writer_pretty(&mut *w, &json)?;
            w.write_all(b"\n")?;
            w.flush()
        };
        let written = if path.as_os_str() == "-" {
            write(&mut std::io::stdout().lock())
        } else {
            std::fs::File::create(path).and_then(|mut f| write(&mut f))
        };
        match written {
            Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => {}
            Err(e) => {
                eprintln!("apitool: {}: cannot write the summary: {e}", output_name(path));
                failed = true;
            }
            Ok(()) => {}
        }
    }
    if interrupted {
        130
    } else if failed {
        1
    } else {
        0
    }
}

/// An output: standard output (buffered; nothing of a conversion that fails before its first
/// megabyte reaches it), a temporary file that becomes the target when the conversion
/// succeeds, or a target that is not a regular file (`/dev/null`, a FIFO, a terminal), written
/// in place: renaming a file over it would replace the device.
enum Output {
    Stdout(StdoutOutput),
    File(std::fs::File, tempfile::TempPath, PathBuf, Registered),
    Special(std::fs::File),
}

/// Standard output behind a buffer that is dropped, not flushed, unless the output is
/// finished: a failed conversion writes nothing more.
struct StdoutOutput(Option<std::io::BufWriter<std::io::Stdout>>);

impl StdoutOutput {
    fn get(&mut self) -> std::io::Result<&mut std::io::BufWriter<std::io::Stdout>> {
        self.0.as_mut().ok_or_else(|| std::io::Error::other("standard output already finished"))
    }
}

impl Drop for StdoutOutput {
    fn drop(&mut self) {
        if let Some(w) = self.0.take() {
            // Discard what is buffered: `into_parts` does not flush.
            let _ = w.into_parts();
        }
    }
}

/// Whether `target` exists and is something other than a regular file or a directory.
pub(crate) fn is_special(target: &Path) -> bool {
    std::fs::metadata(target).is_ok_and(|m| !m.is_file() && !m.is_dir())
}

impl Output {
    fn open(target: &Path) -> Result<Output, String> {
        if target.as_os_str() == "-" {
            return Ok(Output::Stdout(StdoutOutput(Some(std::io::BufWriter::with_capacity(1 << 20, std::io::stdout())))));
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
        let registered = Registered::new(&tmp_path);
        // The temporary file is private (0600); the output gets the mode an existing file has,
        // or the usual 0644.
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(target).map_or(0o644, |m| m.permissions().mode() & 0o7777);
            let _ = file.set_permissions(std::fs::Permissions::from_mode(mode));
        }
        Ok(Output::File(file, tmp_path, target.to_path_buf(), registered))
    }

    /// Flushes standard output, or moves the temporary file to the target.
    fn finish(self) -> std::io::Result<()> {
        match self {
            Output::Stdout(mut w) => match w.0.take() {
                Some(mut b) => b.flush(),
                None => Ok(()),
            },
            Output::File(_, tmp, target, _registered) => tmp.persist(&target).map(|_| ()).map_err(|e| e.error),
            Output::Special(mut f) => f.flush(),
        }
    }
}

impl Write for Output {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match self {
            Output::Stdout(w) => w.get()?.write(buf),
            Output::File(f, ..) | Output::Special(f) => f.write(buf),
        }
    }
    fn write_vectored(&mut self, bufs: &[std::io::IoSlice<'_>]) -> std::io::Result<usize> {
        match self {
            Output::Stdout(w) => w.get()?.write_vectored(bufs),
            // The converter writes whole entries with vectored writes: no buffer in between.
            Output::File(f, ..) | Output::Special(f) => f.write_vectored(bufs),
        }
    }
    fn flush(&mut self) -> std::io::Result<()> {
        match self {
            Output::Stdout(w) => w.get()?.flush(),
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
        crate::pipeline::ConvertError::Write(w) if w.kind() == std::io::ErrorKind::BrokenPipe => String::new(),
        crate::pipeline::ConvertError::Write(w) => format!("{}: cannot write: {w}", output_name(target)),
        e => e.message(name),
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

/// `n` and a phrase whose `{one|many}` alternatives agree with it: `counted(1,
/// "request{|s} without a response")` is "1 request without a response".
fn counted(n: u64, phrase: &str) -> String {
    let mut out = format!("{n} ");
    let mut rest = phrase;
    while let Some(open) = rest.find('{') {
        let Some(close) = rest[open..].find('}').map(|c| open + c) else {
            break;
        };
        out.push_str(&rest[..open]);
        let alt = &rest[open + 1..close];
        let (one, many) = alt.split_once('|').unwrap_or((alt, alt));
        out.push_str(if n == 1 { one } else { many });
        rest = &rest[close + 1..];
    }
    out.push_str(rest);
    out
}

/// How a summary is printed: `all` lists the counters that are zero too (`-v`), `color`
/// paints the others yellow (`--color`).
#[derive(Clone, Copy, Debug, Default)]
pub struct SummaryStyle {
    pub all: bool,
    pub color: bool,
}

/// One counter line of a summary (`n` is the count it says), in `style`.
fn counter_line(out: &mut String, n: u64, text: &str, style: SummaryStyle) {
    if n == 0 && !style.all {
        return;
    }
    if style.color && n > 0 {
        out.push_str(&format!("  \x1b[33m{text}\x1b[0m\n"));
    } else {
        out.push_str(&format!("  {text}\n"));
    }
}

/// The witness part of the summary in words.
pub fn witness_summary(w: &crate::pipeline::WitnessSummary, target: &Path) -> String {
    witness_summary_styled(w, target, SummaryStyle::default())
}

/// [`witness_summary`] in `style`.
pub fn witness_summary_styled(w: &crate::pipeline::WitnessSummary, target: &Path, style: SummaryStyle) -> String {
    let mut out = format!("  {} -> {}\n", plural(w.written, "witness", "witnesses"), output_name(target));
    let mut note = |n: u64, what: &str| counter_line(&mut out, n, &counted(n, what), style);
    note(w.duplicates, "duplicate witness{|es} dropped (--dedup)");
    note(w.without_request, "response{|s} without a request {has|have} no witness");
    let u = &w.ir.unparsed_bodies;
    for (n, ty) in [(u.json, "JSON"), (u.yaml, "YAML"), (u.xml, "XML"), (u.form, "form"), (u.multipart, "multipart")] {
        note(n, &format!("{{body|bodies}} that did not parse as {ty} (kept as a string or bytes sample)"));
    }
    note(w.ir.depth_capped, "body value{|s} nested too deep (cut)");
    note(w.ir.list_elements_dropped, "list element{|s} past --max-list left out of witnesses");
    note(w.ir.redactions, "value{|s} redacted in witnesses");
    out
}

/// The summary in words: totals, then every counter that is not zero.
pub fn human_summary(s: &Summary, target: &Path) -> String {
    human_summary_styled(s, target, SummaryStyle::default())
}

/// [`human_summary`] in `style`: with `all`, the counters that are zero too.
pub fn human_summary_styled(s: &Summary, target: &Path, style: SummaryStyle) -> String {
    let mut out = String::new();
    use std::fmt::Write as _;
    let _ = writeln!(
        out,
        "{}: {}, {}, {}, {}, {} -> {}",
        s.input,
        s.format,
        plural(s.bytes, "byte", "bytes"),
        plural(s.frames, "frame", "frames"),
        plural(s.tcp.flows, "connection", "connections"),
        plural(s.entries, "exchange", "exchanges"),
        output_name(target)
    );
    // Each note with the count it says (one for the notes that are not counters).
    let mut notes: Vec<(String, u64)> = Vec::new();
    fn note_in(notes: &mut Vec<(String, u64)>, n: u64, what: &str) {
        notes.push((counted(n, what), n));
    }
    macro_rules! note {
        ($n:expr, $what:expr) => {
            note_in(&mut notes, $n, $what)
        };
    }
    if s.interrupted {
        notes.push((format!("interrupted: converted what was read up to byte {} (the output is complete)", s.bytes), 1));
    }
    if let Some(off) = s.truncated_at {
        notes.push((format!("the capture ends in the middle of a record at byte {off} (file cut short)"), 1));
    }
    if let Some((off, why)) = &s.corrupt {
        notes.push((format!("unreadable record at byte {off} ({why}); the rest of the file was skipped"), 1));
    }
    for (lt, n) in &s.unsupported_linktypes {
        notes.push((counted(*n, &format!("frame{{|s}} of unsupported link type {lt} skipped")), *n));
    }
    note!(s.frames_snap_cut, "frame{|s} cut short by the snap length");
    for (layer, n) in &s.malformed {
        notes.push((counted(*n, &format!("frame{{|s}} with a malformed {layer}")), *n));
    }
    note!(s.too_deep, "frame{|s} with tunnels nested too deep");
    note!(s.ip_fragments.reassembled, "IP datagram{|s} reassembled from fragments");
    note!(s.ip_fragments.dropped, "incomplete IP datagram{|s} dropped (fragments missing or over the cap)");
    note!(s.ip_fragments.bad, "bad IP fragment{|s}");
    let t = &s.tcp;
    note!(t.retransmitted_segments, "retransmitted TCP segment{|s} ignored");
    note!(t.late_segments, "TCP segment{|s} that came after {its|their} bytes were declared missing (see --gap-grace)");
    note!(t.out_of_order_segments, "out-of-order TCP segment{|s} reordered");
    note!(t.overlap_conflicts, "overlapping TCP segment{|s} with conflicting bytes (first seen kept)");
    notes.push((
        format!("{} in TCP streams ({} never captured)", plural(t.gaps, "gap", "gaps"), plural(t.gap_bytes, "byte", "bytes")),
        t.gaps,
    ));
    note!(t.snaplen_cut_bytes, "payload byte{|s} lost to the snap length");
    note!(t.out_of_window_segments, "TCP segment{|s} far outside {its|their} stream ignored");
    note!(t.ooo_conn_cap_hits, "time{|s} the per-connection out-of-order cap forced a gap (--max-ooo-per-conn)");
    note!(t.ooo_total_cap_hits, "connection{|s} flushed by the total out-of-order cap (--max-ooo-total)");
    note!(t.flow_cap_evictions, "connection{|s} ended early by the open-connection cap (--max-flows)");
    note!(t.idle_timeouts, "connection{|s} ended by the idle timeout (--idle-timeout)");
    note!(t.ended_at_capture_end, "connection{|s} still open at the end of the capture");
    note!(t.port_reuse, "connection{|s} that reused the ports of an earlier one");
    note!(t.stray_syns, "SYN{|s} contradicting a live connection, ignored");
    note!(t.rst_ignored, "RST{|s} not honoured because the connection went on");
    note!(s.protocols.tls_connections, "TLS connection{|s} not decrypted: no key log given (see --keylog; -v lists them)");
    {
        let t = &s.tls;
        note!(t.connections, "TLS connection{|s} read with the key log");
        note!(t.decrypted_connections, "TLS connection{|s} decrypted");
        note!(t.no_key, "TLS connection{|s} not decrypted: no key for the client random (see --keylog; -v lists them)");
        note!(t.unsupported_version, "TLS connection{|s} not decrypted: unsupported TLS version");
        note!(t.unsupported_suite, "TLS connection{|s} not decrypted: unsupported cipher suite");
        note!(t.handshake_not_captured, "TLS connection{|s} not decrypted: handshake not captured");
        note!(
            t.decryption_failed,
            "TLS connection{|s} whose decryption failed (a record did not verify, or records lost after missing bytes)"
        );
        note!(t.early_data_records_skipped, "TLS 1.3 early data record{|s} skipped (no key)");
        note!(t.key_updates, "TLS 1.3 key update{|s} followed");
        note!(t.resyncs, "TLS record stream{|s} found again after missing bytes");
        note!(t.lost_sync, "TLS record stream{|s} lost after missing bytes");
        note!(t.held_over_cap, "TLS side{|s} stopped: too many records waiting for keys");
        note!(s.tls_secrets_blocks, "TLS key log{|s} read from the capture's Decryption Secrets Blocks");
        if style.all {
            for u in &s.tls_undecrypted {
                notes.push((
                    format!(
                        "TLS connection {} {} -> {} not decrypted ({}): SNI {}, client random {}",
                        u.flow,
                        u.client,
                        u.server,
                        u.reason.describe(),
                        u.sni.as_deref().unwrap_or("-"),
                        u.client_random.as_deref().unwrap_or("not captured")
                    ),
                    1,
                ));
            }
        }
    }
    let h2 = &s.h2;
    note!(h2.connections, "HTTP/2 connection{|s}");
    note!(h2.header_blocks_unknown, "HTTP/2 header block{|s} not decodable after lost data (HPACK table unknown; fields marked unknown)");
    note!(h2.hpack_errors, "malformed HTTP/2 header block{|s}");
    note!(h2.header_lists_over_cap, "HTTP/2 header list{|s} over the cap (--h2-max-header-list)");
    note!(h2.streams_over_cap, "HTTP/2 stream{|s} past the open-stream cap (--h2-max-streams), not followed");
    note!(h2.frame_errors, "malformed HTTP/2 frame{|s}");
    note!(h2.frames_skipped, "HTTP/2 frame{|s} too large to hold, skipped");
    note!(h2.resets, "HTTP/2 stream{|s} reset (RST_STREAM)");
    note!(h2.goaways, "HTTP/2 GOAWAY{|s}");
    note!(h2.pushed, "HTTP/2 pushed stream{|s}");
    note!(h2.sides_lost, "HTTP/2 direction{|s} whose frame boundaries were lost at a gap");
    note!(h2.midstream_sides, "HTTP/2 direction{|s} captured from the middle");
    note!(h2.bytes_not_parsed, "HTTP/2 byte{|s} skipped while finding frames again");
    note!(h2.orphan_data_bytes, "HTTP/2 DATA byte{|s} of streams not known (begun before the capture or not followed)");
    note!(h2.grpc_messages_truncated, "gRPC message{|s} truncated at the decoded size cap (--max-body)");
    let h = &s.http;
    note!(h.non_http_connections, "connection{|s} that {is|are} not HTTP/1.x (ignored)");
    note!(h.no_response, "request{|s} without a response");
    note!(h.no_request, "response{|s} without a request");
    note!(h.unpaired_responses, "response{|s} after lost data whose request cannot be told (written without one)");
    note!(h.paired_after_loss, "response{|s} placed on {its|their} request by TCP evidence (after lost data, or captured before it)");
    note!(h.interim_responses, "interim (1xx) response{|s}");
    note!(h.lenient_heads, "malformed message head{|s} read leniently");
    note!(h.malformed_heads, "unparseable message head{|s} skipped");
    note!(h.oversized_heads, "message head{|s} over the size or field cap (--max-head, --max-headers)");
    note!(h.messages_with_gaps, "message{|s} with bytes missing from the capture");
    note!(h.incomplete_messages, "message{|s} cut short by the end of {its|their} connection");
    note!(h.truncated_bodies, "{body|bodies} truncated at the decoded size cap (--max-body)");
    note!(h.bodies_cut_by_total, "{body|bodies} truncated at the cap on bodies in progress in all (--max-bodies-total)");
    {
        let mut line = format!("{} of truncated bodies dropped past the caps", plural(h.body_bytes_dropped, "byte", "bytes"));
        if h.body_bytes_not_decoded > 0 {
            line.push_str(&format!(" (and {} never decoded)", plural(h.body_bytes_not_decoded, "encoded byte", "encoded bytes")));
        }
        notes.push((line, h.body_bytes_dropped + h.body_bytes_not_decoded));
    }
    note!(h.decode_errors, "{body|bodies} that failed to decode");
    note!(h.unsupported_codings, "{body|bodies} with an unsupported content coding (kept encoded)");
    note!(h.bad_framing, "message{|s} with malformed chunked framing");
    notes.push((
        format!(
            "{} on the next message ({} skipped)",
            plural(h.resyncs, "resynchronisation", "resynchronisations"),
            plural(h.resync_skipped_bytes, "byte", "bytes")
        ),
        h.resyncs,
    ));
    note!(h.tunnels, "CONNECT or Upgrade tunnel{|s} (bytes that are not HTTP are not parsed)");
    note!(h.http_tunnels, "CONNECT or SOCKS tunnel{|s} whose HTTP was parsed (see _apitool.tunnel)");
    note!(h.ws_connections, "WebSocket connection{|s} parsed (see _webSocketMessages)");
    note!(h.ws_messages_dropped, "WebSocket message{|s} counted but not kept (--max-messages, --max-bodies-total)");
    note!(h.ws_messages_damaged, "WebSocket message{|s} damaged by missing bytes or bad frames");
    note!(h.ws_messages_truncated, "WebSocket message{|s} truncated at the decoded size cap (--max-body)");
    note!(h.ws_resyncs, "WebSocket resynchronisation{|s} after lost framing");
    note!(s.entries_with_anomalies, "exchange{|s} with anomalies (see _apitool.anomalies)");
    note!(
        s.entries_out_of_order,
        "exchange{|s} written out of time order, marked writtenLate ({it|they} ended after later ones were written: --order-window)"
    );
    if s.entries_spilled > 0 {
        notes.push((
            format!(
                "{} ({}) waited in a temporary file past --order-mem (at most {} on disk at once)",
                plural(s.entries_spilled, "entry", "entries"),
                crate::profile::report::size(s.bytes_spilled),
                crate::profile::report::size(s.peak_spill_file_bytes)
            ),
            s.entries_spilled,
        ));
    }
    note!(s.filtered_out, "exchange{|s} left out by --host/--path");
    note!(s.har_redactions, "value{|s} redacted in the HAR");
    for (text, n) in notes {
        counter_line(&mut out, n, &text, style);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counted_phrases_agree_with_their_number() {
        assert_eq!(counted(1, "request{|s} without a response"), "1 request without a response");
        assert_eq!(counted(2, "request{|s} without a response"), "2 requests without a response");
        assert_eq!(counted(1, "{body|bodies} that {is|are} odd"), "1 body that is odd");
        assert_eq!(counted(0, "{body|bodies} that {is|are} odd"), "0 bodies that are odd");
        assert_eq!(counted(3, "no braces"), "3 no braces");
        assert_eq!(counted(1, "unclosed {brace"), "1 unclosed {brace");
    }

    /// Every counter at 1: no line says "1 ...s", every counter at 2 has its plural.
    #[test]
    fn every_summary_line_is_singular_for_one() {
        let mut s = Summary { input: "x".into(), format: "pcap".into(), bytes: 1, frames: 1, ..Summary::default() };
        s.frames_snap_cut = 1;
        s.unsupported_linktypes.insert(9, 1);
        s.malformed.insert("TCP header", 1);
        s.too_deep = 1;
        s.ip_fragments.reassembled = 1;
        s.ip_fragments.dropped = 1;
        s.ip_fragments.bad = 1;
        let t = &mut s.tcp;
        t.flows = 1;
        for c in [
            &mut t.retransmitted_segments,
            &mut t.out_of_order_segments,
            &mut t.overlap_conflicts,
            &mut t.gaps,
            &mut t.gap_bytes,
            &mut t.snaplen_cut_bytes,
            &mut t.out_of_window_segments,
            &mut t.ooo_conn_cap_hits,
            &mut t.ooo_total_cap_hits,
            &mut t.flow_cap_evictions,
            &mut t.idle_timeouts,
            &mut t.ended_at_capture_end,
            &mut t.port_reuse,
            &mut t.rst_ignored,
        ] {
            *c = 1;
        }
        let h = &mut s.http;
        for c in [
            &mut h.non_http_connections,
            &mut h.no_response,
            &mut h.no_request,
            &mut h.interim_responses,
            &mut h.lenient_heads,
            &mut h.malformed_heads,
            &mut h.oversized_heads,
            &mut h.messages_with_gaps,
            &mut h.incomplete_messages,
            &mut h.truncated_bodies,
            &mut h.bodies_cut_by_total,
            &mut h.body_bytes_dropped,
            &mut h.body_bytes_not_decoded,
            &mut h.decode_errors,
            &mut h.unsupported_codings,
            &mut h.bad_framing,
            &mut h.resyncs,
            &mut h.resync_skipped_bytes,
            &mut h.tunnels,
        ] {
            *c = 1;
        }
        s.protocols.tls_connections = 1;
        let h2 = &mut s.h2;
        for c in [
            &mut h2.connections,
            &mut h2.header_blocks_unknown,
            &mut h2.hpack_errors,
            &mut h2.header_lists_over_cap,
            &mut h2.streams_over_cap,
            &mut h2.frame_errors,
            &mut h2.frames_skipped,
            &mut h2.resets,
            &mut h2.goaways,
            &mut h2.pushed,
            &mut h2.sides_lost,
            &mut h2.midstream_sides,
            &mut h2.bytes_not_parsed,
            &mut h2.orphan_data_bytes,
            &mut h2.grpc_messages_truncated,
        ] {
            *c = 1;
        }
        s.entries = 1;
        s.entries_with_anomalies = 1;
        s.entries_out_of_order = 1;
        s.filtered_out = 1;
        s.har_redactions = 1;
        let text = human_summary(&s, Path::new("-"));
        // The totals, then one line per counter (gaps and resynchronisations carry their bytes).
        assert_eq!(text.lines().count(), 1 + 7 + (14 - 1) + 1 + 15 + (19 - 2) + 4, "{text}");
        let plural_after_one = regex::Regex::new(r"\b1 [A-Za-z()/-]*(s|es|ies)\b").unwrap();
        for line in text.lines() {
            // Words ending in s that are singular.
            let stripped = line.replace("1 TCP", "TCP").replace("1 IP", "IP");
            let m = plural_after_one.find(&stripped).map(|m| m.as_str().to_string());
            assert!(m.is_none() || m.as_deref().is_some_and(|m| m.ends_with("us")), "{line:?}: {m:?}");
        }
        for want in [
            "1 byte,",
            "1 frame,",
            "1 connection,",
            "1 exchange ->",
            "1 request without",
            "1 body that failed",
            "1 connection that is not",
            "1 TLS connection not decrypted",
            "1 HTTP/2 connection\n",
            "1 gap in TCP streams (1 byte never",
            "1 resynchronisation on",
            "standard output",
        ] {
            assert!(text.contains(want), "{want:?} in {text}");
        }
    }
}
