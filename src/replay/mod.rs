//! `apitool replay`: send recorded requests to a target and report what changed.
//!
//! Contract:
//!
//! - Input: a recording ([`har_in::open`]): any HAR 1.2 document, or a pcap/pcapng capture
//!   converted on the fly, read as a stream while the requests go out. Entries are selected
//!   with `--filter`; entries that cannot be replayed (no request recorded, CONNECT) are
//!   reported as skipped.
//! - Sending ([`client`]): the entries of one recorded connection (`_apitool.flow`, else the
//!   HAR `connection`; entries that name none form one connection) are sent in recorded order
//!   on one client connection, reopened when the target closes it (or when more recorded
//!   connections wait between their entries than [`PARKED_PER_WORKER`] per worker keeps open).
//!   Recorded connections run concurrently, at most `--concurrency` at once, and all requests
//!   together at most `--rate` per second. Every exchange is bounded by `--timeout`
//!   (connecting, sending, waiting, receiving the body) and every body by `--max-body`; the
//!   whole run by `--deadline`, past which nothing more is sent (the rest is `not_run`).
//!   After a connection-level failure (refused, reset, or a timeout with nothing received) the
//!   rest of that recorded connection fails at once (`connection_failed`) instead of waiting
//!   for the timeout again on each exchange.
//! - Comparing ([`compare`]): status, header fields (volatile ones ignored), decoded body.
//! - Reporting ([`report`]): each exchange is `unchanged`, `changed`, `failed` (no response,
//!   or one that could not be read whole), `skipped` (nothing to send, or nothing recorded to
//!   compare with) or `not_run` (interrupted, or the deadline passed). A failure belongs to its
//!   exchange: the run goes on. The report lists exchanges in recording order, whatever order
//!   they completed in.
//! - Stopping: the `stop` flag (set by Ctrl-C or SIGTERM in the command) ends the run at
//!   once: exchanges still waiting are `not_run`, the partial report is written (not the
//!   `--record` baseline, which would lose them), and requests in flight are abandoned (each
//!   is bounded by the timeout anyway). A second signal exits at once.
//! - Memory: the recording is never held whole: entries are queued for sending as they are
//!   read, [`QUEUE_BUDGET`] bytes at most (reading waits past it), and each is dropped once
//!   sent; what stays is the report (about 1 KB per exchange, plus its differences).
//!   With `--record`, each exchange's baseline entry (compact JSON: the recorded request and
//!   the response received, at most `--max-body`) is kept until the end, when the new
//!   baseline is written.
//! - Exit status ([`RunReport::exit_status`]): 0 when every exchange replayed is unchanged
//!   (or skipped), 1 when one changed, failed or could not run, when no selected entry could
//!   be sent, or when the recording is unreadable (as in every subcommand), 130 when
//!   interrupted; the command adds 2 for bad flags or a report that cannot be written.

pub mod args;
pub mod client;
pub mod compare;
mod h2;
pub mod har_in;
pub mod record;
pub mod report;
pub mod tls;

use std::collections::{HashMap, VecDeque};
use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant, SystemTime};

use serde::Serialize;

pub use args::ReplayArgs;
use client::{Client, ClientConfig, Received};
use compare::{CompareConfig, Difference, Side};
use har_in::RecEntry;

/// What happened to one exchange.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Unchanged,
    Changed,
    Failed,
    Skipped,
    NotRun,
}

impl Outcome {
    pub fn label(self) -> &'static str {
        match self {
            Outcome::Unchanged => "OK",
            Outcome::Changed => "CHANGED",
            Outcome::Failed => "FAILED",
            Outcome::Skipped => "SKIPPED",
            Outcome::NotRun => "NOT RUN",
        }
    }
}

/// The result of one exchange.
#[derive(Clone, Debug, Serialize)]
pub struct ExchangeReport {
    /// Position in the recording, from 1.
    pub entry: usize,
    /// The recorded connection, as the recording names it.
    pub connection: Option<String>,
    pub method: String,
    /// The recorded URL.
    pub url: String,
    /// Path and query sent (before the target's base path).
    pub target: String,
    pub outcome: Outcome,
    pub recorded_status: Option<u16>,
    pub received_status: Option<u16>,
    /// From sending the request to the end of the response, milliseconds.
    pub time_ms: Option<f64>,
    /// Why the exchange failed or was skipped.
    pub error: Option<String>,
    /// `refused`, `reset`, `closed`, `timeout`, `protocol`, `request`, `io`, `body_too_large`,
    /// `connection_failed` (not sent: an earlier exchange on the same recorded connection
    /// failed at the connection level).
    pub error_kind: Option<&'static str>,
    pub differences: Vec<Difference>,
    /// Differences found past the listing cap.
    pub more_differences: usize,
    pub notes: Vec<String>,
    /// The response, kept for `--record`.
    #[serde(skip)]
    pub received: Option<Box<Received>>,
    /// The recorded request object and `_apitool.flow`, kept for `--record` until the
    /// exchange ends.
    #[serde(skip)]
    pub request_json: Option<serde_json::Value>,
    #[serde(skip)]
    pub flow_json: Option<serde_json::Value>,
    /// The `--record` baseline entry, made when the exchange ended.
    #[serde(skip)]
    pub record: Option<Vec<u8>>,
}

impl ExchangeReport {
    fn new(e: &RecEntry, outcome: Outcome) -> ExchangeReport {
        ExchangeReport {
            entry: e.index + 1,
            connection: e.conn.clone(),
            method: e.method.clone(),
            url: e.url.clone(),
            target: e.target.clone(),
            outcome,
            recorded_status: e.response.as_ref().map(|r| r.status),
            received_status: None,
            time_ms: None,
            error: None,
            error_kind: None,
            differences: Vec::new(),
            more_differences: 0,
            notes: e.notes.clone(),
            received: None,
            request_json: None,
            flow_json: None,
            record: None,
        }
    }

    /// `#3 GET /api/users/1`.
    pub fn title(&self) -> String {
        if self.method.is_empty() {
            format!("#{} (no request)", self.entry)
        } else {
            format!("#{} {} {}", self.entry, self.method, self.target)
        }
    }
}

/// How many exchanges ended how.
#[derive(Clone, Debug, Default, Serialize, PartialEq, Eq)]
pub struct Counts {
    /// Exchanges selected (all but those `--filter` left out).
    pub exchanges: usize,
    /// Selected exchanges that can be sent (not skipped for having no request, CONNECT, ...).
    /// None is a failure: a run that replays nothing is not a green CI step.
    pub replayable: usize,
    pub unchanged: usize,
    pub changed: usize,
    pub failed: usize,
    pub skipped: usize,
    pub not_run: usize,
    /// Entries of the recording left out by `--filter`.
    pub filtered_out: usize,
}

/// The result of a run.
#[derive(Clone, Debug, Serialize)]
pub struct RunReport {
    pub recording: String,
    /// `HAR`, or the capture format the recording was converted from.
    pub format: String,
    pub target: String,
    /// Wall-clock start, ISO 8601.
    pub started: String,
    pub duration_ms: f64,
    /// Stopped by a signal before every exchange ran.
    pub interrupted: bool,
    /// `--deadline` passed before every exchange ran.
    pub deadline_passed: bool,
    /// The recording could not be read to its end: why (the entries before it were replayed).
    pub recording_error: Option<String>,
    /// Entries read from the recording (selected or not).
    pub entries_read: usize,
    pub counts: Counts,
    pub exchanges: Vec<ExchangeReport>,
}

impl RunReport {
    /// 130 when interrupted; 1 when an exchange changed, failed or could not run, when nothing
    /// could be replayed, or when the recording could not be read to its end; else 0.
    pub fn exit_status(&self) -> i32 {
        if self.interrupted {
            130
        } else if self.counts.changed > 0
            || self.counts.failed > 0
            || self.counts.not_run > 0
            || self.counts.replayable == 0
            || self.recording_error.is_some()
        {
            1
        } else {
            0
        }
    }
}

/// Which field a `--filter` looks at.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FilterField {
    Method,
    Host,
    Path,
    /// `METHOD HOST/PATH?QUERY`.
    Line,
}

/// One `--filter`: a regular expression over a field of the recorded request that must match,
/// or (written `!REGEX`) must not.
#[derive(Clone, Debug)]
pub struct Filter {
    pub field: FilterField,
    pub re: regex::Regex,
    /// `!REGEX`: the entry is selected when the expression does not match.
    pub negate: bool,
}

impl std::str::FromStr for Filter {
    type Err = String;

    /// `method=`, `host=`, `path=` or no key (the whole request line); a value that starts
    /// with `!` denies. Any other `KEY=` (letters, digits, `-`, `_` before the first `=`) is
    /// an unknown key, refused rather than taken for a regular expression: a typo such as
    /// `paht=^/api` would otherwise select nothing, or everything.
    fn from_str(s: &str) -> Result<Self, String> {
        let (field, pat) = match s.split_once('=') {
            Some((key, pat)) if !key.is_empty() && key.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_') => {
                let field = match key.to_ascii_lowercase().as_str() {
                    "method" => FilterField::Method,
                    "host" => FilterField::Host,
                    "path" => FilterField::Path,
                    _ => {
                        return Err(format!(
                            "--filter {s}: unknown key {key:?} (the keys are method=, host=, path=; without a key the \
                             regex is over \"METHOD HOST/PATH?QUERY\")"
                        ));
                    }
                };
                (field, pat)
            }
            _ => (FilterField::Line, s),
        };
        let (negate, pat) = match pat.strip_prefix('!') {
            Some(p) => (true, p),
            None => (false, pat),
        };
        let re = regex::Regex::new(pat).map_err(|e| format!("--filter {s}: {e}"))?;
        Ok(Filter { field, re, negate })
    }
}

impl Filter {
    pub fn matches(&self, e: &RecEntry) -> bool {
        let hit = match self.field {
            FilterField::Method => self.re.is_match(&e.method),
            FilterField::Host => self.re.is_match(&e.host),
            FilterField::Path => self.re.is_match(&e.target),
            FilterField::Line => self.re.is_match(&format!("{} {}{}", e.method, e.host, e.target)),
        };
        hit != self.negate
    }
}

/// How much the text report shows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verbosity {
    /// The final count only.
    Quiet,
    /// Changed, failed and skipped exchanges, then the count.
    Normal,
    /// Every exchange.
    Verbose,
}

/// A validated `replay` configuration.
#[derive(Clone, Debug)]
pub struct ReplayConfig {
    pub recording: PathBuf,
    pub client: ClientConfig,
    /// Recorded connections replayed at once (at least 1).
    pub concurrency: usize,
    /// Requests per second over all connections; `None` for no cap.
    pub rate: Option<f64>,
    /// Every filter must match for an entry to be replayed.
    pub filters: Vec<Filter>,
    pub compare: CompareConfig,
    pub report_json: Option<PathBuf>,
    pub report_junit: Option<PathBuf>,
    pub record: Option<PathBuf>,
    pub color: bool,
    pub verbosity: Verbosity,
    /// Key material to decrypt a capture recording's TLS connections (`--keylog`).
    pub tls: crate::proto::tls::TlsLimits,
}

/// Spaces requests evenly: at most one per `interval`, over all threads.
struct Rate {
    interval: Duration,
    next: Mutex<Instant>,
}

impl Rate {
    /// Waits for the next slot; false when stopped meanwhile.
    fn wait(&self, stop: &AtomicBool) -> bool {
        let at = {
            let mut next = self.next.lock().unwrap_or_else(|e| e.into_inner());
            let at = (*next).max(Instant::now());
            *next = at + self.interval;
            at
        };
        loop {
            if stop.load(Ordering::Relaxed) {
                return false;
            }
            let now = Instant::now();
            if now >= at {
                return true;
            }
            std::thread::sleep((at - now).min(Duration::from_millis(50)));
        }
    }
}

/// Replays and compares one exchange.
fn run_one(client: &mut Client, cfg: &ReplayConfig, e: &RecEntry, r: &mut ExchangeReport) -> Option<client::Failure> {
    let keep = cfg.record.is_some();
    let fail = |r: &mut ExchangeReport, f: &client::Failure| {
        r.outcome = Outcome::Failed;
        r.error = Some(f.message.clone());
        r.error_kind = Some(f.kind);
    };
    r.outcome = Outcome::Failed;
    r.error = None;
    let p = match client::prepare(&cfg.client, e) {
        Ok(p) => p,
        Err(f) => {
            fail(r, &f);
            return None;
        }
    };
    r.notes.extend(p.notes.iter().cloned());
    let t0 = Instant::now();
    let got = match client.send(&p) {
        Ok(g) => g,
        Err(f) => {
            fail(r, &f);
            r.time_ms = Some(t0.elapsed().as_secs_f64() * 1e3);
            return Some(f);
        }
    };
    r.received_status = Some(got.status);
    r.time_ms = Some(got.elapsed.as_secs_f64() * 1e3);
    if let Some(d) = &got.decode_error {
        r.notes.push(format!("received body: {d}"));
    }
    match &e.response {
        None => {
            r.outcome = Outcome::Skipped;
            r.error = Some("no response recorded: nothing to compare with".into());
        }
        Some(rec) => {
            let rec_body = match (&rec.body_unreliable, &rec.body) {
                (Some(why), _) => {
                    r.notes.push(format!("recorded body not compared: {why}"));
                    None
                }
                (None, None) => {
                    r.notes.push("recorded body not compared: the recording does not hold it".into());
                    None
                }
                (None, Some(b)) => Some(&b[..]),
            };
            let got_body = (!got.truncated).then_some(&got.body[..]);
            let c = compare::compare(
                &cfg.compare,
                Side { status: rec.status, headers: &rec.headers, trailers: &rec.trailers, body: rec_body },
                Side { status: got.status, headers: &got.headers, trailers: &got.trailers, body: got_body },
            );
            r.outcome = if c.is_empty() { Outcome::Unchanged } else { Outcome::Changed };
            r.differences = c.differences;
            r.more_differences = c.more;
        }
    }
    if got.truncated {
        r.outcome = Outcome::Failed;
        r.error = Some(format!("response body larger than --max-body ({} bytes): cut there, body not compared", cfg.client.max_body));
        r.error_kind = Some("body_too_large");
    }
    if keep {
        r.received = Some(Box::new(got));
    }
    None
}

/// Recorded entries queued for sending hold at most this many bytes (bodies, header fields,
/// URLs) before reading the recording waits; one larger entry is let through alone.
pub const QUEUE_BUDGET: usize = 8 << 20;

/// Idle client connections kept open for recorded connections that wait for their next
/// entry, per worker; past it the least recently used are closed (and reopened when needed).
pub const PARKED_PER_WORKER: usize = 8;

/// One selected entry waiting to be sent.
struct Job {
    slot: usize,
    entry: RecEntry,
    bytes: usize,
}

/// A recorded connection: the entries read and not yet sent, and its client.
#[derive(Default)]
struct ConnState {
    queue: VecDeque<Job>,
    /// A worker is sending its entries.
    busy: bool,
    /// In `Sched::ready`.
    ready: bool,
    /// The open client connection, kept between entries.
    client: Option<Client>,
    /// Set after a connection-level failure: why the rest is not sent.
    failed: Option<String>,
    /// When the client was parked (for closing the least recently used).
    parked_at: u64,
}

/// The reports in recording order, in chunks: growing never copies (nor holds twice) the
/// reports already made.
#[derive(Default)]
struct Slots {
    chunks: Vec<Vec<ExchangeReport>>,
    len: usize,
}

impl Slots {
    const CHUNK: usize = 4096;

    fn len(&self) -> usize {
        self.len
    }

    fn push(&mut self, r: ExchangeReport) {
        if self.chunks.last().is_none_or(|c| c.len() == Self::CHUNK) {
            self.chunks.push(Vec::with_capacity(Self::CHUNK));
        }
        self.chunks.last_mut().expect("a chunk").push(r);
        self.len += 1;
    }

    fn get(&self, i: usize) -> &ExchangeReport {
        &self.chunks[i / Self::CHUNK][i % Self::CHUNK]
    }

    fn set(&mut self, i: usize, r: ExchangeReport) {
        self.chunks[i / Self::CHUNK][i % Self::CHUNK] = r;
    }

    fn into_vec(self) -> Vec<ExchangeReport> {
        let mut v = Vec::with_capacity(self.len);
        for c in self.chunks {
            v.extend(c);
        }
        v
    }
}

/// What the reader, the workers and the collector share.
struct Sched {
    conns: HashMap<Option<String>, ConnState>,
    /// Connections with entries to send and no worker, in the order they became ready.
    ready: VecDeque<Option<String>>,
    queued_bytes: usize,
    /// Entries queued or being sent.
    pending: usize,
    /// Every exchange of the recording, selected, in recording order.
    slots: Slots,
    /// Selected exchanges that can be sent, and those with a result.
    replayable: usize,
    done: usize,
    filtered_out: usize,
    /// Every entry has been read (or reading failed).
    read_done: bool,
    /// Reading the recording failed here (after `read` entries).
    read_error: Option<String>,
    read: usize,
    /// Stop taking entries: interrupted, or the deadline passed.
    halt: bool,
    parked: usize,
    clock: u64,
}

struct Shared {
    s: Mutex<Sched>,
    /// Something changed: an entry queued or sent, reading ended, halt.
    cv: Condvar,
}

impl Shared {
    fn lock(&self) -> std::sync::MutexGuard<'_, Sched> {
        self.s.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Why an entry of a failed connection is not sent.
fn not_sent(r: &mut ExchangeReport, why: &str) {
    r.outcome = Outcome::Failed;
    r.error = Some(why.to_string());
    r.error_kind = Some("connection_failed");
}

/// An entry taken to send: its connection, the job, the connection's client, and why it is
/// not sent (an earlier connection-level failure).
type Taken = (Option<String>, Job, Option<Client>, Option<String>);

fn worker(shared: &Shared, cfg: &ReplayConfig, rate: Option<&Rate>, stop: &AtomicBool, parked_max: usize) {
    // The next entry of the connection this worker just sent on, taken without going through
    // the ready list (fewer wake-ups; the connection stays with this worker while it has
    // entries queued).
    let mut next: Option<Taken> = None;
    loop {
        // Take the next entry of a ready connection.
        let (key, job, mut client, failed) = match next.take() {
            Some(n) => n,
            None => {
                let mut s = shared.lock();
                loop {
                    if s.halt {
                        return;
                    }
                    if let Some(key) = s.ready.pop_front() {
                        let c = s.conns.get_mut(&key).expect("a ready connection is known");
                        c.ready = false;
                        let Some(job) = c.queue.pop_front() else { continue };
                        c.busy = true;
                        let failed = c.failed.clone();
                        let client = c.client.take();
                        if client.is_some() {
                            s.parked -= 1;
                        }
                        s.queued_bytes -= job.bytes;
                        shared.cv.notify_all();
                        break (key, job, client, failed);
                    }
                    if s.read_done && s.pending == 0 {
                        return;
                    }
                    s = shared.cv.wait(s).unwrap_or_else(|e| e.into_inner());
                }
            }
        };
        let mut report = {
            let s = shared.lock();
            s.slots.get(job.slot).clone()
        };
        let mut failure = None;
        match failed {
            Some(why) => not_sent(&mut report, &why),
            None => {
                let past_deadline = || cfg.client.deadline.is_some_and(|d| Instant::now() >= d);
                if rate.is_some_and(|r| !r.wait(stop)) || stop.load(Ordering::Relaxed) || past_deadline() {
                    // Interrupted, or the deadline passed, before it was sent: the entry stays
                    // not run.
                    let mut s = shared.lock();
                    s.halt = true;
                    if let Some(c) = s.conns.get_mut(&key) {
                        c.busy = false;
                    }
                    shared.cv.notify_all();
                    return;
                }
                let c = client.get_or_insert_with(|| Client::new(&cfg.client));
                failure = run_one(c, cfg, &job.entry, &mut report);
            }
        }
        if cfg.record.is_some() {
            // Only the baseline entry is kept until the end, not the request and response.
            match record::entry_bytes(&report) {
                Ok(b) => report.record = b,
                Err(e) => report.notes.push(format!("not recorded: {e}")),
            }
            report.received = None;
            report.request_json = None;
            report.flow_json = None;
        }
        let mut s = shared.lock();
        s.slots.set(job.slot, report);
        s.done += 1;
        s.pending -= 1;
        let clock = s.clock + 1;
        s.clock = clock;
        let halted = s.halt;
        let c = s.conns.get_mut(&key).expect("a busy connection is known");
        c.busy = false;
        if let Some(f) = failure.filter(|f| f.connection_level) {
            c.failed = Some(format!("not sent: entry #{} on the same recorded connection failed ({})", job.entry.index + 1, f.message));
            client = None;
        }
        if !halted && let Some(job) = c.queue.pop_front() {
            // Go on with this connection at once.
            c.busy = true;
            let failed = c.failed.clone();
            s.queued_bytes -= job.bytes;
            shared.cv.notify_all();
            next = Some((key, job, client, failed));
            continue;
        }
        let mut parked = false;
        if let Some(cl) = client {
            c.client = Some(cl);
            c.parked_at = clock;
            parked = true;
        }
        if parked {
            s.parked += 1;
            if s.parked > parked_max {
                // Close the least recently used idle client connection.
                let oldest =
                    s.conns.iter().filter(|(_, c)| c.client.is_some() && !c.busy).min_by_key(|(_, c)| c.parked_at).map(|(k, _)| k.clone());
                if let Some(k) = oldest
                    && let Some(c) = s.conns.get_mut(&k)
                {
                    c.client = None;
                    s.parked -= 1;
                }
            }
        }
        shared.cv.notify_all();
    }
}

/// Queues one entry read from the recording (the reader's side); false when the run halted.
fn queue_entry(shared: &Shared, cfg: &ReplayConfig, e: RecEntry) -> bool {
    let mut s = shared.lock();
    s.read += 1;
    if !cfg.filters.iter().all(|f| f.matches(&e)) {
        s.filtered_out += 1;
        return !s.halt;
    }
    let slot = s.slots.len();
    let mut r = ExchangeReport::new(&e, Outcome::NotRun);
    if cfg.record.is_some() {
        r.request_json = Some(e.request_json.clone());
        r.flow_json = e.flow_json.clone();
    }
    if let Some(why) = &e.unreplayable {
        r.outcome = Outcome::Skipped;
        r.error = Some(why.clone());
        s.slots.push(r);
        return !s.halt;
    }
    r.error = Some("not run".into());
    s.slots.push(r);
    let bytes = e.approx_bytes();
    // Wait while the queue is full (one entry larger than the budget goes alone).
    while !s.halt && s.queued_bytes > 0 && s.queued_bytes + bytes > QUEUE_BUDGET {
        s = shared.cv.wait(s).unwrap_or_else(|e| e.into_inner());
    }
    if s.halt {
        return false;
    }
    s.replayable += 1;
    s.pending += 1;
    s.queued_bytes += bytes;
    let key = e.conn.clone();
    let c = s.conns.entry(key.clone()).or_default();
    c.queue.push_back(Job { slot, entry: e, bytes });
    if !c.busy && !c.ready {
        c.ready = true;
        s.ready.push_back(key);
    }
    shared.cv.notify_all();
    true
}

/// Replays the entries `source` reads against the target, reading while sending: the
/// recording is never held whole, only the entries queued for sending ([`QUEUE_BUDGET`]).
/// `progress` is told the exchanges done and the replayable ones read so far. Returns when
/// every selected exchange has a result, at once when `stop` is set, or at `--deadline`.
pub fn replay(cfg: &ReplayConfig, source: har_in::Source, stop: Arc<AtomicBool>, progress: &mut dyn FnMut(usize, usize)) -> RunReport {
    let t0 = Instant::now();
    let started = {
        let ns = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).map_or(0, |d| d.as_nanos() as i64);
        let mut b = Vec::new();
        crate::output::time::iso8601(&mut b, crate::capture::Ts(ns));
        String::from_utf8_lossy(&b).into_owned()
    };
    let format = source.format.clone();
    let shared = Arc::new(Shared {
        s: Mutex::new(Sched {
            conns: HashMap::new(),
            ready: VecDeque::new(),
            queued_bytes: 0,
            pending: 0,
            slots: Slots::default(),
            replayable: 0,
            done: 0,
            filtered_out: 0,
            read_done: false,
            read_error: None,
            read: 0,
            halt: false,
            parked: 0,
            clock: 0,
        }),
        cv: Condvar::new(),
    });
    let rate = cfg.rate.map(|r| Arc::new(Rate { interval: Duration::from_secs_f64(1.0 / r), next: Mutex::new(Instant::now()) }));
    let workers = cfg.concurrency.max(1);
    let mut spawn_error = None;
    let mut handles = Vec::new();
    for w in 0..workers {
        let (shared, rate, cfg, stop) = (shared.clone(), rate.clone(), cfg.clone(), stop.clone());
        let parked_max = PARKED_PER_WORKER * workers;
        match std::thread::Builder::new()
            .name(format!("replay-{w}"))
            .spawn(move || worker(&shared, &cfg, rate.as_deref(), &stop, parked_max))
        {
            Ok(h) => handles.push(h),
            Err(e) => spawn_error = Some(e),
        }
    }
    if handles.is_empty() {
        let mut s = shared.lock();
        s.read_done = true;
        s.read_error = Some(format!("cannot start a thread: {}", spawn_error.map(|e| e.to_string()).unwrap_or_default()));
    } else {
        let (sh, cfg2) = (shared.clone(), cfg.clone());
        let reader = std::thread::Builder::new().name("replay-read".into()).spawn(move || {
            let r = source.run(&mut |e| queue_entry(&sh, &cfg2, e));
            let mut s = sh.lock();
            s.read_done = true;
            if let Err(e) = r {
                s.read_error = Some(e);
            }
            sh.cv.notify_all();
        });
        if let Err(e) = reader {
            let mut s = shared.lock();
            s.read_done = true;
            s.read_error = Some(format!("cannot start a thread: {e}"));
        }
    }
    let mut interrupted = false;
    let mut deadline_passed = false;
    let mut halted_at: Option<Instant> = None;
    {
        let mut s = shared.lock();
        loop {
            progress(s.done, s.replayable);
            let finished = s.read_done && s.pending == 0;
            if finished {
                break;
            }
            if stop.load(Ordering::Relaxed) && !interrupted {
                interrupted = true;
                s.halt = true;
                shared.cv.notify_all();
                // Requests in flight are abandoned (each is bounded by its timeout anyway).
                break;
            }
            if let Some(d) = cfg.client.deadline
                && Instant::now() >= d
                && !deadline_passed
            {
                deadline_passed = true;
                s.halt = true;
                halted_at = Some(Instant::now());
                shared.cv.notify_all();
            }
            // At the deadline, the exchanges in flight end (their own deadline is the same):
            // wait for them a little, then report what has no result as not run.
            if halted_at.is_some_and(|h| h.elapsed() > Duration::from_secs(2)) || (deadline_passed && s.done == s.replayable) {
                break;
            }
            if deadline_passed && s.pending > 0 && s.conns.values().all(|c| !c.busy) {
                break;
            }
            s = shared.cv.wait_timeout(s, Duration::from_millis(50)).unwrap_or_else(|e| e.into_inner()).0;
        }
        s.halt = true;
        shared.cv.notify_all();
    }
    if !interrupted {
        // Every worker has returned or is about to (halted); none is in flight past the deadline.
        for h in handles {
            if h.is_finished() {
                let _ = h.join();
            }
        }
    }
    let mut s = shared.lock();
    let why = if interrupted {
        "not run: interrupted"
    } else if deadline_passed {
        "not run: the --deadline passed"
    } else {
        "not run"
    };
    let exchanges: Vec<ExchangeReport> = std::mem::take(&mut s.slots)
        .into_vec()
        .into_iter()
        .map(|mut r| {
            if r.outcome == Outcome::NotRun {
                r.error = Some(why.into());
            }
            r
        })
        .collect();
    let mut counts = Counts { exchanges: exchanges.len(), filtered_out: s.filtered_out, replayable: s.replayable, ..Counts::default() };
    for x in &exchanges {
        match x.outcome {
            Outcome::Unchanged => counts.unchanged += 1,
            Outcome::Changed => counts.changed += 1,
            Outcome::Failed => counts.failed += 1,
            Outcome::Skipped => counts.skipped += 1,
            Outcome::NotRun => counts.not_run += 1,
        }
    }
    RunReport {
        recording: crate::cli::input_name(&cfg.recording),
        format,
        target: cfg.client.target.to_string(),
        started,
        duration_ms: t0.elapsed().as_secs_f64() * 1e3,
        interrupted,
        deadline_passed,
        recording_error: s.read_error.take(),
        entries_read: s.read,
        counts,
        exchanges,
    }
}

/// An output file written at the end, made at the start (so a bad path fails before the
/// run) in the directory of its final name, and renamed into place when complete.
/// A path that exists and is not a regular file (`/dev/null`, a FIFO) is written in place.
struct Output {
    path: PathBuf,
    tmp: Option<tempfile::NamedTempFile>,
}

impl Output {
    fn create(path: &std::path::Path) -> Result<Output, String> {
        if crate::cli::is_special(path) {
            return Ok(Output { path: path.to_path_buf(), tmp: None });
        }
        let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(std::path::Path::new("."));
        let tmp = tempfile::Builder::new()
            .prefix(".apitool-")
            .suffix(".tmp")
            .tempfile_in(dir)
            .map_err(|e| format!("{}: cannot write: {e}", path.display()))?;
        // The temporary file is private (0600); the output gets the mode an existing file has,
        // or the usual 0644, as `convert` gives its outputs.
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(path).map_or(0o644, |m| m.permissions().mode() & 0o7777);
            let _ = tmp.as_file().set_permissions(std::fs::Permissions::from_mode(mode));
        }
        Ok(Output { path: path.to_path_buf(), tmp: Some(tmp) })
    }

    fn write(self, f: impl FnOnce(&mut dyn Write) -> std::io::Result<()>) -> Result<(), String> {
        let err = |e: &dyn std::fmt::Display| format!("{}: cannot write: {e}", self.path.display());
        let Some(tmp) = self.tmp else {
            let file = std::fs::OpenOptions::new().write(true).open(&self.path).map_err(|e| err(&e))?;
            let mut w = std::io::BufWriter::new(file);
            return f(&mut w).and_then(|_| w.flush()).map_err(|e| err(&e));
        };
        let mut w = std::io::BufWriter::new(tmp.as_file());
        f(&mut w).and_then(|_| w.flush()).map_err(|e| err(&e))?;
        drop(w);
        tmp.persist(&self.path).map_err(|e| err(&e.error))?;
        Ok(())
    }
}

/// The `replay` command: returns the exit status.
pub fn command(args: &ReplayArgs) -> i32 {
    let cfg = match args.config() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("apitool: {e}");
            return 2;
        }
    };
    // A report over the recording would destroy it (`--record` may replace it: that is a
    // new baseline, written only after a complete run).
    if cfg.recording.as_os_str() != "-"
        && let Some(o) = [&cfg.report_json, &cfg.report_junit].into_iter().flatten().find(|o| crate::cli::same_file(o, &cfg.recording))
    {
        eprintln!("apitool: {}: is the recording; write the report to another file", o.display());
        return 2;
    }
    let open = |p: &Option<PathBuf>| p.as_deref().map(Output::create).transpose();
    let (json_out, junit_out, record_out) = match (open(&cfg.report_json), open(&cfg.report_junit), open(&cfg.record)) {
        (Ok(a), Ok(b), Ok(c)) => (a, b, c),
        (Err(e), _, _) | (_, Err(e), _) | (_, _, Err(e)) => {
            eprintln!("apitool: {e}");
            return 2;
        }
    };
    // An unreadable recording is exit status 1, as an unreadable input is in every subcommand.
    let source = match har_in::open(&cfg.recording, cfg.record.is_some(), cfg.tls.clone()) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("apitool: {e}");
            return 1;
        }
    };
    // First Ctrl-C (or SIGTERM): stop and write the partial report. A second one: exit now.
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        let r = signal_hook::flag::register_conditional_shutdown(sig, 130, stop.clone())
            .and_then(|_| signal_hook::flag::register(sig, stop.clone()));
        if let Err(e) = r {
            eprintln!("apitool: cannot handle signal {sig}: {e}");
        }
    }
    let bar = (cfg.verbosity != Verbosity::Quiet && std::io::stderr().is_terminal()).then(|| {
        let b = indicatif::ProgressBar::new(0);
        b.set_style(
            indicatif::ProgressStyle::with_template("replay [{bar:30}] {pos}/{len} exchanges {per_sec} eta {eta}")
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
                .progress_chars("=> "),
        );
        b
    });
    let report = replay(&cfg, source, stop, &mut |done, total| {
        if let Some(b) = &bar {
            b.set_length(total as u64);
            b.set_position(done as u64);
        }
    });
    if let Some(b) = bar {
        b.finish_and_clear();
    }
    if let Some(e) = &report.recording_error {
        eprintln!("apitool: {e}");
        if report.entries_read == 0 {
            // Not one entry: an unreadable recording, not a run.
            return 1;
        }
    } else if report.counts.replayable == 0 && !report.interrupted {
        eprintln!("apitool: {}: no entry to replay{}", report.recording, if cfg.filters.is_empty() { "" } else { " (see --filter)" });
    }
    let mut status = report.exit_status();
    let text = report::text(&report, cfg.color, cfg.verbosity);
    let mut out = std::io::stdout().lock();
    if let Err(e) = out.write_all(text.as_bytes()).and_then(|_| out.flush())
        && e.kind() != std::io::ErrorKind::BrokenPipe
    {
        eprintln!("apitool: cannot write the report: {e}");
        status = 2;
    }
    let mut written = Vec::new();
    if let Some(o) = json_out {
        written.push(o.write(|w| report::write_json(w, &report)));
    }
    if let Some(o) = junit_out {
        written.push(o.write(|w| w.write_all(report::junit(&report).as_bytes())));
    }
    if let Some(o) = record_out {
        if report.interrupted || report.deadline_passed || report.recording_error.is_some() {
            // A partial baseline would lose the entries that did not run.
            eprintln!("apitool: {}: not written, the run did not replay the whole recording", o.path.display());
        } else {
            written.push(o.write(|w| record::write_har(w, &report)));
        }
    }
    for r in written {
        if let Err(e) = r {
            eprintln!("apitool: {e}");
            status = 2;
        }
    }
    status
}
#[cfg(test)]
mod tests {
    use super::*;

    fn entry(method: &str, host: &str, target: &str) -> RecEntry {
        let har = format!(r#"{{"log":{{"entries":[{{"request":{{"method":"{method}","url":"http://{host}{target}","headers":[]}}}}]}}}}"#);
        har_in::parse_har(har.as_bytes(), false).unwrap().remove(0)
    }

    #[test]
    fn filters() {
        let e = entry("POST", "api.test:8080", "/v1/orders?x=1");
        let m = |spec: &str| spec.parse::<Filter>().unwrap().matches(&e);
        assert!(m("method=^POST$") && !m("method=GET"));
        assert!(m("host=^api\\.test") && !m("host=other"));
        assert!(m("path=^/v1/") && m("path=x=1$") && !m("path=^/v2"));
        assert!(m("^POST api.test:8080/v1/orders") && !m("^GET "));
        assert!("path=(".parse::<Filter>().is_err());
        // `!` denies, with a key or without.
        assert!(!m("path=!^/v1/") && m("path=!^/v2"));
        assert!(m("method=!GET") && !m("method=!^POST$"));
        assert!(!m("!^POST ") && m("!^GET "));
        // A key that is not one is refused, whatever its case; a regex without a key may hold `=`.
        for bad in ["paht=^/v1", "url=x", "Status=200", "x-y=1"] {
            let err = bad.parse::<Filter>().unwrap_err();
            assert!(err.contains("unknown key"), "{bad}: {err}");
        }
        assert!(m("PATH=^/v1/") && m("orders\\?x=1$") && m("^POST .*x=1"));
    }

    #[test]
    fn rate_spaces_requests() {
        let r = Rate { interval: Duration::from_millis(30), next: Mutex::new(Instant::now()) };
        let stop = AtomicBool::new(false);
        let t0 = Instant::now();
        for _ in 0..4 {
            assert!(r.wait(&stop));
        }
        assert!(t0.elapsed() >= Duration::from_millis(90));
        stop.store(true, Ordering::Relaxed);
        assert!(!r.wait(&stop));
    }
}
