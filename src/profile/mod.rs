//! `apitool profile`: how reassembly used memory on a capture or a corpus of captures.
//!
//! Contract: [`profile_input`] runs the conversion pipeline ([`Converter::convert`]) on one
//! input with the caps of its [`Config`], writing nothing (the HAR goes to
//! [`std::io::sink`]), and returns an [`InputProfile`]: the peaks of what was buffered
//! (out-of-order bytes, HTTP parser bytes, entries waiting for their turn, open connections),
//! the connections that held the most, the bytes held against each cap, every cap hit with
//! the exchanges it damaged (the same exchanges whose HAR anomalies name that cap), the
//! allocations and peak heap (with the counting allocator of [`alloc`]), and a timeline
//! against capture time. Figures are taken between windows of the capture, as the pipeline
//! reports them ([`Progress`]); the timeline keeps at most [`MAX_SAMPLES`] points (adjacent
//! windows are merged, keeping maxima), so the profile's own memory does not grow with the
//! capture.
//!
//! [`command`] runs it over files and directories (per input and in total), renders a table
//! or JSON ([`report`]), plots the timeline as SVG ([`plot`]), and with `--sweep` reruns the
//! corpus once per value of a cap and tabulates peak memory against exchanges lost.

pub mod alloc;
pub mod plot;
pub mod report;

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use clap::Args;
use serde::Serialize;

use crate::capture::{FrameReader, Input, Next, Ts};
use crate::cli::{CapArgs, check_idle, parse_size};
use crate::flow::FlowStats;
use crate::pipeline::{Config, Converter, Progress, Summary};
use crate::proto::http1::{Cap, HttpStats};

/// Most timeline points kept per input.
pub const MAX_SAMPLES: usize = 2048;

/// Connections whose peaks are tracked at once (the largest are kept).
const MAX_TRACKED_CONNS: usize = 4096;

/// Connections reported per input.
pub const TOP_CONNECTIONS: usize = 10;

#[derive(Args, Debug)]
#[command(after_help = "Examples:
  apitool profile capture.pcap
  apitool profile corpus/ --json > profile.json
  apitool profile capture.pcap --plot memory.svg
  apitool profile corpus/ --sweep per-conn=1MiB,4MiB,16MiB
  apitool profile -v capture.pcap

Common flags: the report goes to standard output and standard error carries only errors, so -q \
changes nothing there (it is accepted, as in every subcommand); -v adds to the table every TCP \
and HTTP counter of each input, those at zero too, and every point of the timeline (default: \
folded into 20 rows); the JSON always has all of them; --color colours the apitool: of error \
messages (red).

Exit status: 0 every input profiled; 1 an input could not be read (unreadable, not a capture) \
or a plot could not be written; 2 bad flags; 130 interrupted (the report covers what was read).")]
pub struct ProfileArgs {
    /// Captures to profile: pcap or pcapng files, directories (their *.pcap, *.pcapng, *.cap
    /// files), or - for standard input.
    #[arg(required = true, value_name = "INPUT")]
    pub inputs: Vec<PathBuf>,

    /// Print the report as JSON instead of a table.
    #[arg(long)]
    pub json: bool,

    /// Plot buffered bytes and open connections against capture time, with cap hits marked,
    /// as SVG (another extension is refused). With several inputs, one FILE-INPUT.svg per
    /// input.
    #[arg(long, value_name = "FILE.svg", conflicts_with = "sweep")]
    pub plot: Option<PathBuf>,

    /// Rerun once per value of a cap and tabulate peak memory against exchanges lost, e.g.
    /// per-conn=1MiB,4MiB,16MiB. Caps: per-conn, total, flows, idle, body, head, headers (or
    /// their flag names, max-ooo-per-conn...). May be given several times.
    #[arg(long, value_name = "CAP=V1,V2,...", value_parser = Sweep::parse)]
    pub sweep: Vec<Sweep>,

    #[command(flatten)]
    pub caps: CapArgs,

    #[command(flatten)]
    pub common: crate::cli::CommonArgs,
}

impl ProfileArgs {
    /// The validated configuration (the same as `convert` with the same flags, connections
    /// observed).
    pub fn config(&self) -> Result<Config, String> {
        Ok(Config { observe_connections: true, ..self.caps.config()? })
    }
}

/// A cap that `--sweep` varies.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum SweepCap {
    MaxOooPerConn,
    MaxOooTotal,
    MaxFlows,
    IdleTimeout,
    MaxBody,
    MaxHead,
    MaxHeaders,
}

impl SweepCap {
    const NAMES: &[(&str, &str, SweepCap)] = &[
        ("per-conn", "max-ooo-per-conn", SweepCap::MaxOooPerConn),
        ("total", "max-ooo-total", SweepCap::MaxOooTotal),
        ("flows", "max-flows", SweepCap::MaxFlows),
        ("idle", "idle-timeout", SweepCap::IdleTimeout),
        ("body", "max-body", SweepCap::MaxBody),
        ("head", "max-head", SweepCap::MaxHead),
        ("headers", "max-headers", SweepCap::MaxHeaders),
    ];

    fn from_name(name: &str) -> Option<SweepCap> {
        let n = name.trim().trim_start_matches("--");
        Self::NAMES.iter().find(|(short, long, _)| n == *short || n == *long).map(|x| x.2)
    }

    /// The flag it sets.
    pub fn flag(self) -> &'static str {
        match self {
            SweepCap::MaxHeaders => "--max-headers",
            c => c.cap().flag(),
        }
    }

    /// The cap whose hits and damage it governs.
    pub fn cap(self) -> Cap {
        match self {
            SweepCap::MaxOooPerConn => Cap::MaxOooPerConn,
            SweepCap::MaxOooTotal => Cap::MaxOooTotal,
            SweepCap::MaxFlows => Cap::MaxFlows,
            SweepCap::IdleTimeout => Cap::IdleTimeout,
            SweepCap::MaxBody => Cap::MaxBody,
            SweepCap::MaxHead | SweepCap::MaxHeaders => Cap::MaxHead,
        }
    }

    /// Sets the cap in a configuration.
    fn apply(self, cfg: &mut Config, v: SweepValue) {
        match (self, v) {
            (SweepCap::MaxOooPerConn, SweepValue::Count(n)) => cfg.flow.max_ooo_per_conn = n,
            (SweepCap::MaxOooTotal, SweepValue::Count(n)) => cfg.flow.max_ooo_total = n,
            (SweepCap::MaxFlows, SweepValue::Count(n)) => cfg.flow.max_flows = n,
            (SweepCap::IdleTimeout, SweepValue::Secs(s)) => cfg.flow.idle_timeout_ns = (s * 1e9) as i64,
            (SweepCap::MaxBody, SweepValue::Count(n)) => cfg.http.max_body = n,
            (SweepCap::MaxHead, SweepValue::Count(n)) => cfg.http.max_head = n.max(64),
            (SweepCap::MaxHeaders, SweepValue::Count(n)) => cfg.http.max_headers = n,
            _ => unreachable!("values are parsed for their cap"),
        }
    }
}

/// A value of a swept cap: bytes or a count, or seconds.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
#[serde(untagged)]
pub enum SweepValue {
    Count(usize),
    Secs(f64),
}

/// `--sweep CAP=V1,V2,...`
#[derive(Clone, Debug, PartialEq)]
pub struct Sweep {
    pub cap: SweepCap,
    /// Each value as written, and parsed.
    pub values: Vec<(String, SweepValue)>,
}

impl Sweep {
    pub fn parse(s: &str) -> Result<Sweep, String> {
        let names = || SweepCap::NAMES.iter().map(|x| x.0).collect::<Vec<_>>().join(", ");
        let (name, list) = s.split_once('=').ok_or_else(|| format!("'{s}': expected CAP=V1,V2,... (caps: {})", names()))?;
        let cap = SweepCap::from_name(name).ok_or_else(|| format!("'{name}': unknown cap (one of {})", names()))?;
        let mut values = Vec::new();
        for v in list.split(',').map(str::trim).filter(|v| !v.is_empty()) {
            let parsed = match cap {
                SweepCap::IdleTimeout => {
                    let secs: f64 = v.trim_end_matches('s').parse().map_err(|_| format!("'{v}' is not a number of seconds"))?;
                    check_idle(secs)?;
                    SweepValue::Secs(secs)
                }
                SweepCap::MaxFlows | SweepCap::MaxHeaders => {
                    let n: usize = v.parse().map_err(|_| format!("'{v}' is not a count"))?;
                    if cap == SweepCap::MaxFlows && n == 0 {
                        return Err("--max-flows must be at least 1".into());
                    }
                    SweepValue::Count(n)
                }
                _ => SweepValue::Count(parse_size(v)?),
            };
            values.push((v.to_string(), parsed));
        }
        if values.is_empty() {
            return Err(format!("'{s}': no values to sweep"));
        }
        Ok(Sweep { cap, values })
    }
}

/// Per-cap figures, with a cap as a key.
pub type PerCap<T> = BTreeMap<Cap, T>;

/// One point of the timeline: the state between two windows of the capture.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Sample {
    /// Capture time, seconds since the first packet.
    pub t: f64,
    /// Capture time, nanoseconds since the Unix epoch.
    pub ts_ns: i64,
    /// Input bytes read so far.
    pub input_bytes: u64,
    /// Connections tracked (those that ended in the window included, until the sweep).
    pub open_flows: u64,
    /// Connections still open after the sweep: what --max-flows is checked against.
    pub live_flows: u64,
    /// Out-of-order bytes held by reassembly.
    pub reassembly_bytes: u64,
    /// Out-of-order bytes after the sweep: what --max-ooo-total is checked against.
    pub live_reassembly_bytes: u64,
    /// Bytes held by the HTTP parsers (heads being collected, bodies being decoded).
    pub http_bytes: u64,
    /// Serialized entries waiting for their turn.
    pub pending_entry_bytes: u64,
    /// Heap bytes live at the end of the window (with the counting allocator).
    pub heap_live: Option<u64>,
    /// The most heap bytes live during the window.
    pub heap_peak: Option<u64>,
    /// Cap hits during the window (only caps that were hit).
    pub cap_hits: PerCap<u64>,
}

impl Sample {
    /// Bytes the connections hold: reassembly and HTTP parsers.
    pub fn buffered(&self) -> u64 {
        self.reassembly_bytes + self.http_bytes
    }

    /// Folds the next sample in: the later time, the larger figures, the hits added.
    fn merge(&mut self, b: &Sample) {
        self.t = b.t;
        self.ts_ns = b.ts_ns;
        self.input_bytes = b.input_bytes;
        self.open_flows = self.open_flows.max(b.open_flows);
        self.live_flows = self.live_flows.max(b.live_flows);
        self.live_reassembly_bytes = self.live_reassembly_bytes.max(b.live_reassembly_bytes);
        self.reassembly_bytes = self.reassembly_bytes.max(b.reassembly_bytes);
        self.http_bytes = self.http_bytes.max(b.http_bytes);
        self.pending_entry_bytes = self.pending_entry_bytes.max(b.pending_entry_bytes);
        self.heap_live = b.heap_live;
        self.heap_peak = self.heap_peak.max(b.heap_peak);
        for (c, n) in &b.cap_hits {
            *self.cap_hits.entry(*c).or_default() += n;
        }
    }
}

/// The timeline, at most [`MAX_SAMPLES`] points: when full, adjacent points are merged.
#[derive(Debug, Default)]
struct Timeline {
    samples: Vec<Sample>,
    /// Windows per point.
    per_point: usize,
    /// Windows folded into the last point so far.
    filled: usize,
}

impl Timeline {
    fn push(&mut self, s: Sample) {
        let per_point = self.per_point.max(1);
        if self.filled > 0 && self.filled < per_point {
            self.samples.last_mut().expect("a point being filled").merge(&s);
            self.filled += 1;
            return;
        }
        if self.samples.len() == MAX_SAMPLES {
            let old = std::mem::take(&mut self.samples);
            for pair in old.chunks(2) {
                let mut a = pair[0].clone();
                if let Some(b) = pair.get(1) {
                    a.merge(b);
                }
                self.samples.push(a);
            }
            self.per_point = per_point * 2;
        }
        self.samples.push(s);
        self.filled = 1;
    }
}

/// The bytes held against one cap, its hits and the exchanges they damaged.
#[derive(Clone, Debug, Serialize)]
pub struct CapUse {
    pub cap: Cap,
    pub flag: &'static str,
    /// The limit in force (bytes, connections, seconds or header fields, as the flag takes).
    pub limit: String,
    /// The most held against it, as the cap sees it (bytes, or connections for --max-flows):
    /// at any time for --max-ooo-per-conn, between windows for the others. `None` where nothing
    /// is held (the idle timeout, the head caps).
    pub peak_held: Option<u64>,
    pub hits: u64,
    /// Exchanges damaged by it: whose anomalies name it. (A head cap that drops both messages
    /// of an exchange leaves nothing to mark: compare with its hits.)
    pub exchanges_damaged: u64,
}

/// A connection among those that held the most.
#[derive(Clone, Debug, Serialize)]
pub struct ConnPeak {
    /// The connection's id (its first frame's number, as `_apitool.flow` in the HAR).
    pub id: u64,
    /// The most it held (out-of-order and HTTP parser bytes), between windows.
    pub peak_bytes: u64,
    /// When, in seconds of capture time since the first packet.
    pub at: f64,
}

/// Heap figures from the counting allocator.
#[derive(Clone, Copy, Debug, Default, Serialize)]
pub struct Heap {
    pub allocations: u64,
    pub peak_bytes: u64,
}

/// How one input used memory.
#[derive(Clone, Debug, Default, Serialize)]
pub struct InputProfile {
    pub input: String,
    pub format: String,
    pub bytes: u64,
    pub frames: u64,
    pub connections: u64,
    /// Exchanges written (what `convert` would write).
    pub exchanges: u64,
    /// Exchanges with a damage anomaly, whatever the cause.
    pub exchanges_damaged: u64,
    /// Exchanges damaged by at least one cap.
    pub exchanges_damaged_by_caps: u64,
    /// Capture time from the first packet to the last, seconds.
    pub duration: f64,
    /// Capture time of the first packet, nanoseconds since the Unix epoch.
    pub start_ns: i64,
    /// The most bytes the connections held (reassembly + HTTP parsers), and when.
    pub peak_buffered_bytes: u64,
    pub peak_buffered_at: f64,
    pub peak_reassembly_bytes: u64,
    /// The most out-of-order bytes one direction of a connection held, at any time (not only
    /// between windows).
    pub peak_conn_reassembly_bytes: u64,
    pub peak_http_bytes: u64,
    pub peak_pending_entry_bytes: u64,
    /// Entries that waited in the temporary file past `--order-mem`, their bytes, and the most
    /// the file held at once (an upper bound).
    pub entries_spilled: u64,
    pub bytes_spilled: u64,
    pub peak_spill_file_bytes: u64,
    /// Connections tracked, those that ended in a window included.
    pub peak_open_flows: u64,
    /// What the caps checked between windows saw (after idle connections were ended).
    pub peak_live_flows: u64,
    pub peak_live_reassembly_bytes: u64,
    /// `None` without the counting allocator.
    pub heap: Option<Heap>,
    pub caps: Vec<CapUse>,
    pub top_connections: Vec<ConnPeak>,
    pub timeline: Vec<Sample>,
    /// The pipeline's summary counters.
    #[serde(skip)]
    pub tcp: FlowStats,
    #[serde(skip)]
    pub http: HttpStats,
}

/// Totals over a corpus: peaks are the largest of any input (inputs run one after another),
/// counts are summed.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Totals {
    pub inputs: usize,
    pub bytes: u64,
    pub frames: u64,
    pub connections: u64,
    pub exchanges: u64,
    pub exchanges_damaged: u64,
    pub exchanges_damaged_by_caps: u64,
    pub peak_buffered_bytes: u64,
    pub peak_reassembly_bytes: u64,
    pub peak_conn_reassembly_bytes: u64,
    pub peak_http_bytes: u64,
    pub peak_pending_entry_bytes: u64,
    pub entries_spilled: u64,
    pub bytes_spilled: u64,
    pub peak_spill_file_bytes: u64,
    pub peak_open_flows: u64,
    pub peak_live_flows: u64,
    pub heap: Option<Heap>,
    /// The process's peak resident set (whole run), where the system reports it.
    pub peak_rss_bytes: Option<u64>,
    pub caps: Vec<CapUse>,
}

impl Totals {
    pub fn of(inputs: &[InputProfile]) -> Totals {
        let mut t = Totals { inputs: inputs.len(), ..Totals::default() };
        for p in inputs {
            t.bytes += p.bytes;
            t.frames += p.frames;
            t.connections += p.connections;
            t.exchanges += p.exchanges;
            t.exchanges_damaged += p.exchanges_damaged;
            t.exchanges_damaged_by_caps += p.exchanges_damaged_by_caps;
            t.peak_buffered_bytes = t.peak_buffered_bytes.max(p.peak_buffered_bytes);
            t.peak_reassembly_bytes = t.peak_reassembly_bytes.max(p.peak_reassembly_bytes);
            t.peak_conn_reassembly_bytes = t.peak_conn_reassembly_bytes.max(p.peak_conn_reassembly_bytes);
            t.peak_http_bytes = t.peak_http_bytes.max(p.peak_http_bytes);
            t.peak_pending_entry_bytes = t.peak_pending_entry_bytes.max(p.peak_pending_entry_bytes);
            t.entries_spilled += p.entries_spilled;
            t.bytes_spilled += p.bytes_spilled;
            t.peak_spill_file_bytes = t.peak_spill_file_bytes.max(p.peak_spill_file_bytes);
            t.peak_open_flows = t.peak_open_flows.max(p.peak_open_flows);
            t.peak_live_flows = t.peak_live_flows.max(p.peak_live_flows);
            if let Some(h) = p.heap {
                let th = t.heap.get_or_insert_with(Heap::default);
                th.allocations += h.allocations;
                th.peak_bytes = th.peak_bytes.max(h.peak_bytes);
            }
            if t.caps.is_empty() {
                t.caps = p.caps.clone();
            } else {
                for (a, b) in t.caps.iter_mut().zip(&p.caps) {
                    a.peak_held = a.peak_held.max(b.peak_held);
                    a.hits += b.hits;
                    a.exchanges_damaged += b.exchanges_damaged;
                }
            }
        }
        t.peak_rss_bytes = peak_rss();
        t
    }
}

/// The process's peak resident set size.
fn peak_rss() -> Option<u64> {
    // SAFETY: getrusage writes into the zeroed struct we pass and reads nothing else.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    let ok = unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) } == 0;
    // ru_maxrss is in KiB on Linux.
    (ok && ru.ru_maxrss > 0).then(|| ru.ru_maxrss as u64 * 1024)
}

/// The capture time of an input's first packet, when it can be read without consuming the
/// input (a mapped file).
fn first_packet_ts(input: &Input) -> Option<Ts> {
    let Input::Mapped { map } = input else { return None };
    let data: &[u8] = map;
    let (mut reader, mut pos) = FrameReader::open(data).ok()?;
    for _ in 0..64 {
        match reader.next(data.get(pos..)?) {
            Next::Frame(f, _) => return Some(f.ts),
            Next::Skip(used) => pos += used,
            _ => return None,
        }
    }
    None
}

fn cap_hits(tcp: &FlowStats, http: &HttpStats) -> [(Cap, u64); 7] {
    [
        (Cap::MaxOooPerConn, tcp.ooo_conn_cap_hits),
        (Cap::MaxOooTotal, tcp.ooo_total_cap_hits),
        (Cap::MaxFlows, tcp.flow_cap_evictions),
        (Cap::IdleTimeout, tcp.idle_timeouts),
        (Cap::MaxBody, http.truncated_bodies),
        (Cap::MaxBodiesTotal, http.bodies_cut_by_total),
        (Cap::MaxHead, http.oversized_heads),
    ]
}

/// The limit of a cap in a configuration, as its flag takes it.
fn limit_text(cap: Cap, cfg: &Config) -> String {
    match cap {
        Cap::MaxOooPerConn => report::size(cfg.flow.max_ooo_per_conn as u64),
        Cap::MaxOooTotal => report::size(cfg.flow.max_ooo_total as u64),
        Cap::MaxFlows => cfg.flow.max_flows.to_string(),
        Cap::IdleTimeout => format!("{}s", cfg.flow.idle_timeout_ns as f64 / 1e9),
        Cap::MaxBody => report::size(cfg.http.max_body as u64),
        Cap::MaxBodiesTotal => report::size(cfg.http.max_bodies_total as u64),
        Cap::MaxHead => format!("{}, {} fields", report::size(cfg.http.max_head as u64), cfg.http.max_headers),
    }
}

/// Profiles one input with `conv`'s configuration (which should observe connections).
pub fn profile_input(conv: &Converter, path: &Path, name: &str) -> Result<InputProfile, String> {
    let input = Input::open(path).map_err(|e| format!("{name}: {e}"))?;
    let first = first_packet_ts(&input);
    let counting = alloc::active();
    let heap_start = alloc::snapshot();
    alloc::reset_peak();
    let mut timeline = Timeline::default();
    let mut origin: Option<Ts> = first;
    let mut prev_hits = [0u64; Cap::ALL.len()];
    let mut conns: HashMap<u64, (u64, f64)> = HashMap::new();
    let mut p = InputProfile { input: name.to_string(), ..InputProfile::default() };
    let mut heap_peak = 0u64;
    let mut on_progress = |pr: &Progress| {
        let origin = *origin.get_or_insert(pr.ts);
        let t = (pr.ts.0 - origin.0).max(0) as f64 / 1e9;
        let hits = cap_hits(&pr.tcp, &pr.http);
        let mut cap_hits = PerCap::new();
        for (i, (cap, n)) in hits.iter().enumerate() {
            if *n > prev_hits[i] {
                cap_hits.insert(*cap, n - prev_hits[i]);
            }
            prev_hits[i] = *n;
        }
        let (heap_live, window_peak) = if counting {
            let wp = alloc::reset_peak();
            heap_peak = heap_peak.max(wp);
            (Some(alloc::snapshot().live), Some(wp))
        } else {
            (None, None)
        };
        let s = Sample {
            t,
            ts_ns: pr.ts.0,
            input_bytes: pr.bytes,
            open_flows: pr.open_flows as u64,
            live_flows: pr.swept_flows as u64,
            live_reassembly_bytes: pr.swept_reassembly_bytes as u64,
            reassembly_bytes: pr.reassembly_bytes as u64,
            http_bytes: pr.http_bytes as u64,
            pending_entry_bytes: pr.pending_entry_bytes as u64,
            heap_live,
            heap_peak: window_peak,
            cap_hits,
        };
        if s.buffered() > p.peak_buffered_bytes || timeline.samples.is_empty() {
            p.peak_buffered_bytes = s.buffered();
            p.peak_buffered_at = t;
        }
        p.peak_reassembly_bytes = p.peak_reassembly_bytes.max(s.reassembly_bytes);
        p.peak_http_bytes = p.peak_http_bytes.max(s.http_bytes);
        p.peak_pending_entry_bytes = p.peak_pending_entry_bytes.max(s.pending_entry_bytes);
        p.peak_open_flows = p.peak_open_flows.max(s.open_flows);
        p.peak_live_flows = p.peak_live_flows.max(s.live_flows);
        p.peak_live_reassembly_bytes = p.peak_live_reassembly_bytes.max(s.live_reassembly_bytes);
        for &(id, bytes) in &pr.top_connections {
            let e = conns.entry(id).or_insert((0, t));
            if bytes as u64 > e.0 {
                *e = (bytes as u64, t);
            }
        }
        if conns.len() > MAX_TRACKED_CONNS {
            let mut v: Vec<(u64, u64)> = conns.iter().map(|(id, (b, _))| (*b, *id)).collect();
            v.sort_unstable_by(|a, b| b.cmp(a));
            let keep: std::collections::HashSet<u64> = v.iter().take(MAX_TRACKED_CONNS / 4).map(|x| x.1).collect();
            conns.retain(|id, _| keep.contains(id));
        }
        timeline.push(s);
    };
    let result = conv.convert(input, name, std::io::sink(), &mut on_progress);
    let (summary, _) = result.map_err(|e| e.message(name))?;
    if counting {
        heap_peak = heap_peak.max(alloc::reset_peak());
        let end = alloc::snapshot();
        p.heap = Some(Heap { allocations: end.allocations - heap_start.allocations, peak_bytes: heap_peak });
    }
    finish(&mut p, &summary, conv.config(), timeline, conns, origin);
    Ok(p)
}

fn finish(p: &mut InputProfile, s: &Summary, cfg: &Config, timeline: Timeline, conns: HashMap<u64, (u64, f64)>, origin: Option<Ts>) {
    p.format = s.format.clone();
    p.bytes = s.bytes;
    p.frames = s.frames;
    p.connections = s.tcp.flows;
    p.exchanges = s.entries;
    p.exchanges_damaged = s.entries_with_anomalies;
    p.exchanges_damaged_by_caps = s.http.damaged_by_cap.any;
    p.start_ns = origin.map_or(0, |o| o.0);
    p.duration = timeline.samples.last().map_or(0.0, |x| x.t);
    // Peaks of the summary are the pipeline's own (taken at the same points).
    p.peak_reassembly_bytes = p.peak_reassembly_bytes.max(s.peak_reassembly_bytes);
    p.peak_open_flows = p.peak_open_flows.max(s.peak_flows);
    p.peak_pending_entry_bytes = p.peak_pending_entry_bytes.max(s.peak_pending_entry_bytes);
    p.entries_spilled = s.entries_spilled;
    p.bytes_spilled = s.bytes_spilled;
    p.peak_spill_file_bytes = s.peak_spill_file_bytes;
    p.peak_conn_reassembly_bytes = s.tcp.ooo_conn_peak_bytes;
    p.caps = cap_hits(&s.tcp, &s.http)
        .into_iter()
        .map(|(cap, hits)| CapUse {
            cap,
            flag: cap.flag(),
            limit: limit_text(cap, cfg),
            peak_held: match cap {
                Cap::MaxOooPerConn => Some(p.peak_conn_reassembly_bytes),
                Cap::MaxOooTotal => Some(p.peak_live_reassembly_bytes),
                Cap::MaxFlows => Some(p.peak_live_flows),
                Cap::MaxBody => Some(p.peak_http_bytes),
                Cap::MaxBodiesTotal => Some(s.peak_body_bytes),
                Cap::IdleTimeout | Cap::MaxHead => None,
            },
            hits,
            exchanges_damaged: s.http.damaged_by_cap.get(cap),
        })
        .collect();
    let mut top: Vec<ConnPeak> = conns.into_iter().map(|(id, (peak_bytes, at))| ConnPeak { id, peak_bytes, at }).collect();
    top.sort_unstable_by(|a, b| b.peak_bytes.cmp(&a.peak_bytes).then(a.id.cmp(&b.id)));
    top.truncate(TOP_CONNECTIONS);
    p.top_connections = top;
    p.timeline = timeline.samples;
    p.tcp = s.tcp;
    p.http = s.http;
}

/// One row of a sweep: the corpus run with one value of the cap.
#[derive(Clone, Debug, Serialize)]
pub struct SweepRow {
    /// The value as written.
    pub value: String,
    pub setting: SweepValue,
    pub peak_buffered_bytes: u64,
    pub peak_reassembly_bytes: u64,
    pub peak_conn_reassembly_bytes: u64,
    pub peak_open_flows: u64,
    pub peak_live_flows: u64,
    pub peak_heap_bytes: Option<u64>,
    pub exchanges: u64,
    /// Exchanges damaged by any cap.
    pub exchanges_damaged_by_caps: u64,
    /// Exchanges damaged by the swept cap.
    pub exchanges_damaged_by_this_cap: u64,
    /// Hits of the swept cap.
    pub hits: u64,
}

/// A sweep's table.
#[derive(Clone, Debug, Serialize)]
pub struct SweepTable {
    pub cap: SweepCap,
    pub flag: &'static str,
    pub rows: Vec<SweepRow>,
}

/// Everything `apitool profile` reports.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Report {
    pub inputs: Vec<InputProfile>,
    pub total: Option<Totals>,
    pub sweeps: Vec<SweepTable>,
    /// Inputs that could not be read, with why.
    pub failed: Vec<String>,
    /// A signal stopped the run: the input being read was profiled as far as it was read, the
    /// inputs (and sweep values) after it were not.
    pub interrupted: bool,
}

/// Profiles every input; `each` sees each profile first (to plot it, or to drop what will not
/// be reported, so that a large corpus costs little memory).
fn run_corpus(
    cfg: &Config,
    inputs: &[Result<PathBuf, String>],
    failed: &mut Vec<String>,
    each: &mut dyn FnMut(&mut InputProfile),
) -> Vec<InputProfile> {
    let conv = Converter::new(cfg.clone());
    let mut out = Vec::new();
    for input in inputs {
        if cfg.stop.as_ref().is_some_and(|s| s.load(std::sync::atomic::Ordering::Relaxed)) {
            break;
        }
        match input {
            Ok(path) => match profile_input(&conv, path, &path.display().to_string()) {
                Ok(mut p) => {
                    each(&mut p);
                    out.push(p);
                }
                Err(e) => failed.push(e),
            },
            Err(e) => failed.push(e.clone()),
        }
    }
    out
}

/// Runs a sweep over the corpus.
pub fn sweep(base: &Config, sw: &Sweep, inputs: &[Result<PathBuf, String>], failed: &mut Vec<String>) -> SweepTable {
    let mut rows = Vec::new();
    for (text, v) in &sw.values {
        if base.stop.as_ref().is_some_and(|s| s.load(std::sync::atomic::Ordering::Relaxed)) {
            break;
        }
        let mut cfg = base.clone();
        sw.cap.apply(&mut cfg, *v);
        let mut fails = Vec::new();
        let profiles = run_corpus(&cfg, inputs, &mut fails, &mut |p| {
            p.timeline = Vec::new();
            p.top_connections = Vec::new();
        });
        for f in fails {
            if !failed.contains(&f) {
                failed.push(f);
            }
        }
        let t = Totals::of(&profiles);
        let cap = sw.cap.cap();
        let this = t.caps.iter().find(|c| c.cap == cap);
        rows.push(SweepRow {
            value: text.clone(),
            setting: *v,
            peak_buffered_bytes: t.peak_buffered_bytes,
            peak_reassembly_bytes: t.peak_reassembly_bytes,
            peak_conn_reassembly_bytes: t.peak_conn_reassembly_bytes,
            peak_open_flows: t.peak_open_flows,
            peak_live_flows: t.peak_live_flows,
            peak_heap_bytes: t.heap.map(|h| h.peak_bytes),
            exchanges: t.exchanges,
            exchanges_damaged_by_caps: t.exchanges_damaged_by_caps,
            exchanges_damaged_by_this_cap: this.map_or(0, |c| c.exchanges_damaged),
            hits: this.map_or(0, |c| c.hits),
        });
    }
    SweepTable { cap: sw.cap, flag: sw.cap.flag(), rows }
}

/// Where the plot of one input goes: `FILE` for a single input, `FILE-STEM.svg` for several.
/// A `--plot` name is checked before anything is read: plots are SVG, so another extension
/// (`x.png`) is refused rather than written as SVG under a misleading name, and a directory
/// that does not exist is one clear line, not a drawing backend's error after the profile.
fn check_plot_path(plot: &Path) -> Result<(), String> {
    let ext = plot.extension().and_then(|e| e.to_str()).unwrap_or("");
    if !ext.eq_ignore_ascii_case("svg") {
        return Err(format!(
            "--plot {}: plots are written as SVG only; name the file FILE.svg{}",
            plot.display(),
            if ext.is_empty() { String::new() } else { format!(" (not .{ext})") }
        ));
    }
    let dir = plot.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    if !dir.is_dir() {
        return Err(format!("--plot {}: directory {} does not exist", plot.display(), dir.display()));
    }
    Ok(())
}

fn plot_path(plot: &Path, input: &str, several: bool, used: &mut std::collections::HashSet<PathBuf>) -> PathBuf {
    if !several {
        return plot.to_path_buf();
    }
    let base = plot.with_extension("");
    let stem = Path::new(input).file_stem().map_or("stdin".into(), |s| s.to_string_lossy().into_owned());
    let mut k = 1;
    loop {
        let suffix = if k == 1 { stem.clone() } else { format!("{stem}-{k}") };
        let mut name = base.as_os_str().to_owned();
        name.push(format!("-{suffix}.svg"));
        let p = PathBuf::from(name);
        if used.insert(p.clone()) {
            return p;
        }
        k += 1;
    }
}

/// Runs `apitool profile`; returns the exit status (0 every input profiled, 1 some failed or
/// an output could not be written, 2 bad flags, 130 interrupted: the first SIGINT or SIGTERM
/// ends the input being read as at its end and the report covers what was read; a second
/// exits at once).
pub fn command(args: &ProfileArgs) -> i32 {
    alloc::enable();
    let mut cfg = match args.config() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("apitool: {e}");
            return 2;
        }
    };
    if let Some(plot) = &args.plot
        && let Err(e) = check_plot_path(plot)
    {
        eprintln!("apitool: {e}");
        return 2;
    }
    let inputs = crate::cli::expand_inputs(&args.inputs);
    if !args.sweep.is_empty() && inputs.iter().any(|i| matches!(i, Ok(p) if p.as_os_str() == "-")) {
        eprintln!("apitool: --sweep reads its inputs once per value: standard input (-) cannot be swept");
        return 2;
    }
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    crate::cli::watch_signals(stop.clone());
    cfg.stop = Some(stop.clone());
    let mut report = Report::default();
    let mut failed = false;
    if args.sweep.is_empty() {
        let several = inputs.len() > 1;
        let mut used = std::collections::HashSet::new();
        let mut each = |p: &mut InputProfile| {
            if let Some(plot) = &args.plot {
                let path = plot_path(plot, &p.input, several, &mut used);
                if let Err(e) = plot::write_svg(&path, p) {
                    eprintln!("apitool: {}: cannot write the plot: {e}", path.display());
                    failed = true;
                }
            }
            if !args.json && args.common.verbose == 0 {
                // The table shows a few rows of the timeline (every one with -v).
                p.timeline = report::fold(&p.timeline, report::TABLE_ROWS);
            }
        };
        report.inputs = run_corpus(&cfg, &inputs, &mut report.failed, &mut each);
        report.total = Some(Totals::of(&report.inputs));
    } else {
        for sw in &args.sweep {
            let table = sweep(&cfg, sw, &inputs, &mut report.failed);
            report.sweeps.push(table);
        }
    }
    failed |= !report.failed.is_empty();
    report.interrupted = stop.load(std::sync::atomic::Ordering::SeqCst);
    let color = args.common.color.stderr();
    for f in &report.failed {
        eprintln!("{} {f}", crate::cli::error_prefix(color));
    }
    let text = if args.json { report::json(&report) } else { report::table_with(&report, args.common.verbose > 0) };
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    if let Err(e) = out.write_all(text.as_bytes()).and_then(|_| out.flush())
        && e.kind() != std::io::ErrorKind::BrokenPipe
    {
        eprintln!("apitool: cannot write the report: {e}");
        failed = true;
    }
    if report.interrupted {
        130
    } else if failed {
        1
    } else {
        0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sweeps_parse() {
        let s = Sweep::parse("per-conn=1MiB,4MiB, 16MiB").unwrap();
        assert_eq!(s.cap, SweepCap::MaxOooPerConn);
        let v: Vec<SweepValue> = s.values.iter().map(|x| x.1).collect();
        assert_eq!(v, [SweepValue::Count(1 << 20), SweepValue::Count(4 << 20), SweepValue::Count(16 << 20)]);
        assert_eq!(Sweep::parse("--max-flows=10,100").unwrap().values[1].1, SweepValue::Count(100));
        assert_eq!(Sweep::parse("idle=0.5,30s").unwrap().values[1].1, SweepValue::Secs(30.0));
        assert_eq!(Sweep::parse("headers=64").unwrap().cap.flag(), "--max-headers");
        for bad in ["per-conn", "nope=1", "per-conn=", "flows=0", "idle=-1", "body=1x"] {
            assert!(Sweep::parse(bad).is_err(), "{bad}");
        }
        let mut cfg = Config::default();
        SweepCap::IdleTimeout.apply(&mut cfg, SweepValue::Secs(1.5));
        assert_eq!(cfg.flow.idle_timeout_ns, 1_500_000_000);
    }

    #[test]
    fn timeline_stays_bounded_and_keeps_maxima() {
        let mut tl = Timeline::default();
        let n = MAX_SAMPLES * 5 + 3;
        for i in 0..n {
            let mut s = Sample { t: i as f64, open_flows: (i % 7) as u64, ..Sample::default() };
            if i == 5_000 {
                s.reassembly_bytes = 999;
                s.cap_hits.insert(Cap::MaxFlows, 2);
            }
            tl.push(s);
        }
        assert!(tl.samples.len() <= MAX_SAMPLES, "{}", tl.samples.len());
        assert!(tl.samples.len() > MAX_SAMPLES / 4);
        assert_eq!(tl.samples.last().unwrap().t, (n - 1) as f64);
        assert!(tl.samples.windows(2).all(|w| w[0].t < w[1].t));
        assert_eq!(tl.samples.iter().map(|s| s.reassembly_bytes).max(), Some(999));
        assert_eq!(tl.samples.iter().filter_map(|s| s.cap_hits.get(&Cap::MaxFlows)).sum::<u64>(), 2);
        assert!(tl.samples.iter().all(|s| s.open_flows == 6), "each point spans at least seven windows");
    }

    #[test]
    fn sizes_read_well() {
        assert_eq!(report::size(0), "0 B");
        assert_eq!(report::size(4 << 20), "4 MiB");
        assert_eq!(report::size(1536), "1.5 KiB");
        assert_eq!(report::size(3 << 30), "3 GiB");
    }
}
