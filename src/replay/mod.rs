//! `apitool replay`: send recorded requests to a target and report what changed.
//!
//! Contract:
//!
//! - Input: a recording ([`har_in::load`]): any HAR 1.2 document, or a pcap/pcapng capture
//!   converted on the fly. Entries are selected with `--filter`; entries that cannot be
//!   replayed (no request recorded, CONNECT) are reported as skipped.
//! - Sending ([`client`]): the entries of one recorded connection (`_apitool.flow`, else the
//!   HAR `connection`; entries that name none form one connection) are sent in recorded order
//!   on one client connection, reopened only when the target closes it. Recorded connections
//!   run concurrently, at most `--concurrency` at once, and all requests together at most
//!   `--rate` per second. Every exchange is bounded by `--timeout` (connecting, sending,
//!   waiting, receiving the body) and every body by `--max-body`.
//! - Comparing ([`compare`]): status, header fields (volatile ones ignored), decoded body.
//! - Reporting ([`report`]): each exchange is `unchanged`, `changed`, `failed` (no response,
//!   or one that could not be read whole), `skipped` (nothing to send, or nothing recorded to
//!   compare with) or `not_run` (interrupted). A failure belongs to its exchange: the run goes
//!   on. The report lists exchanges in recording order, whatever order they completed in.
//! - Stopping: the `stop` flag (set by Ctrl-C or SIGTERM in the command) ends the run at
//!   once: exchanges still waiting are `not_run`, the partial report is written (not the
//!   `--record` baseline, which would lose them), and requests in flight are abandoned (each
//!   is bounded by the timeout anyway). A second signal exits at once.
//! - Memory: the recording is read whole (bodies included) before the run; received bodies
//!   are kept only for `--record`, each at most `--max-body`.
//! - Exit status ([`RunReport::exit_status`]): 0 when every exchange replayed is unchanged
//!   (or skipped), 1 when one changed, failed or could not run, 130 when interrupted; the command adds 2 for
//!   bad flags, an unreadable recording, or a report that cannot be written.

pub mod args;
pub mod client;
pub mod compare;
pub mod har_in;
pub mod record;
pub mod report;

use std::collections::HashMap;
use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant, SystemTime};

use serde::Serialize;

pub use args::ReplayArgs;
use client::{ClientConfig, Received};
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
    /// `refused`, `reset`, `closed`, `timeout`, `protocol`, `request`, `io`, `body_too_large`.
    pub error_kind: Option<&'static str>,
    pub differences: Vec<Difference>,
    /// Differences found past the listing cap.
    pub more_differences: usize,
    pub notes: Vec<String>,
    /// The response, kept for `--record`.
    #[serde(skip)]
    pub received: Option<Received>,
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
    pub counts: Counts,
    pub exchanges: Vec<ExchangeReport>,
}

impl RunReport {
    /// 130 when interrupted, 1 when an exchange changed, failed or could not run, else 0.
    pub fn exit_status(&self) -> i32 {
        if self.interrupted {
            130
        } else if self.counts.changed > 0 || self.counts.failed > 0 || self.counts.not_run > 0 {
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

/// One `--filter`: a regular expression over a field of the recorded request.
#[derive(Clone, Debug)]
pub struct Filter {
    pub field: FilterField,
    pub re: regex::Regex,
}

impl std::str::FromStr for Filter {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let (field, pat) = if let Some(p) = s.strip_prefix("method=") {
            (FilterField::Method, p)
        } else if let Some(p) = s.strip_prefix("host=") {
            (FilterField::Host, p)
        } else if let Some(p) = s.strip_prefix("path=") {
            (FilterField::Path, p)
        } else {
            (FilterField::Line, s)
        };
        let re = regex::Regex::new(pat).map_err(|e| format!("--filter {s}: {e}"))?;
        Ok(Filter { field, re })
    }
}

impl Filter {
    pub fn matches(&self, e: &RecEntry) -> bool {
        match self.field {
            FilterField::Method => self.re.is_match(&e.method),
            FilterField::Host => self.re.is_match(&e.host),
            FilterField::Path => self.re.is_match(&e.target),
            FilterField::Line => self.re.is_match(&format!("{} {}{}", e.method, e.host, e.target)),
        }
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
fn run_one(agent: &ureq::Agent, cfg: &ReplayConfig, e: &RecEntry, keep: bool) -> ExchangeReport {
    let mut r = ExchangeReport::new(e, Outcome::Failed);
    let fail = |r: &mut ExchangeReport, f: client::Failure| {
        r.outcome = Outcome::Failed;
        r.error = Some(f.message);
        r.error_kind = Some(f.kind);
    };
    let p = match client::prepare(&cfg.client, e) {
        Ok(p) => p,
        Err(f) => {
            fail(&mut r, f);
            return r;
        }
    };
    r.notes.extend(p.notes.iter().cloned());
    let t0 = Instant::now();
    let got = match client::send(agent, &cfg.client, p) {
        Ok(g) => g,
        Err(f) => {
            fail(&mut r, f);
            r.time_ms = Some(t0.elapsed().as_secs_f64() * 1e3);
            return r;
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
                Side { status: rec.status, headers: &rec.headers, body: rec_body },
                Side { status: got.status, headers: &got.headers, body: got_body },
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
        r.received = Some(got);
    }
    r
}

/// Replays `entries` against the target. `progress` is told the number of exchanges done.
/// Returns when every selected exchange has a result, or at once when `stop` is set.
pub fn replay(
    cfg: &ReplayConfig,
    entries: Arc<Vec<RecEntry>>,
    format: &str,
    stop: Arc<AtomicBool>,
    progress: &mut dyn FnMut(usize, usize),
) -> RunReport {
    let t0 = Instant::now();
    let started = {
        let ns = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).map_or(0, |d| d.as_nanos() as i64);
        let mut b = Vec::new();
        crate::out::time::iso8601(&mut b, crate::capture::Ts(ns));
        String::from_utf8_lossy(&b).into_owned()
    };
    let mut counts = Counts::default();
    // Selected entries: their reports in recording order, and the connections to replay.
    let mut slots: Vec<Option<ExchangeReport>> = Vec::new();
    let mut slot_of: HashMap<usize, usize> = HashMap::new();
    let mut groups: Vec<Vec<usize>> = Vec::new();
    let mut group_of: HashMap<Option<&str>, usize> = HashMap::new();
    for (i, e) in entries.iter().enumerate() {
        if !cfg.filters.iter().all(|f| f.matches(e)) {
            counts.filtered_out += 1;
            continue;
        }
        slot_of.insert(i, slots.len());
        if let Some(why) = &e.unreplayable {
            let mut r = ExchangeReport::new(e, Outcome::Skipped);
            r.error = Some(why.clone());
            slots.push(Some(r));
            continue;
        }
        slots.push(None);
        let g = *group_of.entry(e.conn.as_deref()).or_insert_with(|| {
            groups.push(Vec::new());
            groups.len() - 1
        });
        groups[g].push(i);
    }
    let pending_total = slots.iter().filter(|s| s.is_none()).count();
    let (tx, rx) = mpsc::channel::<(usize, ExchangeReport)>();
    let groups = Arc::new(groups);
    let next = Arc::new(AtomicUsize::new(0));
    let rate = cfg.rate.map(|r| Arc::new(Rate { interval: Duration::from_secs_f64(1.0 / r), next: Mutex::new(Instant::now()) }));
    let keep = cfg.record.is_some();
    let workers = cfg.concurrency.max(1).min(groups.len());
    for w in 0..workers {
        let (tx, groups, next, entries, stop, rate, cfg) =
            (tx.clone(), groups.clone(), next.clone(), entries.clone(), stop.clone(), rate.clone(), cfg.clone());
        let spawned = std::thread::Builder::new().name(format!("replay-{w}")).spawn(move || {
            loop {
                let g = next.fetch_add(1, Ordering::Relaxed);
                if g >= groups.len() || stop.load(Ordering::Relaxed) {
                    return;
                }
                // One client, so one connection, per recorded connection.
                let agent = client::agent(&cfg.client);
                for &i in &groups[g] {
                    if stop.load(Ordering::Relaxed) || rate.as_ref().is_some_and(|r| !r.wait(&stop)) {
                        return;
                    }
                    let r = run_one(&agent, &cfg, &entries[i], keep);
                    if tx.send((i, r)).is_err() {
                        return;
                    }
                }
            }
        });
        if let Err(e) = spawned {
            eprintln!("apitool: cannot start a replay thread: {e}");
            break;
        }
    }
    drop(tx);
    let mut done = 0;
    let mut interrupted = false;
    progress(0, pending_total);
    while done < pending_total {
        if stop.load(Ordering::Relaxed) {
            interrupted = true;
            break;
        }
        match rx.recv_timeout(Duration::from_millis(50)) {
            Ok((i, r)) => {
                slots[slot_of[&i]] = Some(r);
                done += 1;
                progress(done, pending_total);
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
        }
    }
    // Whatever has no result did not run (interrupted, or a thread could not start).
    let selected: Vec<&RecEntry> = entries.iter().enumerate().filter(|(i, _)| slot_of.contains_key(i)).map(|(_, e)| e).collect();
    let exchanges: Vec<ExchangeReport> = slots
        .into_iter()
        .zip(selected)
        .map(|(s, e)| {
            s.unwrap_or_else(|| {
                let mut r = ExchangeReport::new(e, Outcome::NotRun);
                r.error = Some(if interrupted { "not run: interrupted".into() } else { "not run".into() });
                r
            })
        })
        .collect();
    counts.exchanges = exchanges.len();
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
        recording: cfg.recording.display().to_string(),
        format: format.to_string(),
        target: cfg.client.target.to_string(),
        started,
        duration_ms: t0.elapsed().as_secs_f64() * 1e3,
        interrupted,
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
    let open = |p: &Option<PathBuf>| p.as_deref().map(Output::create).transpose();
    let (json_out, junit_out, record_out) = match (open(&cfg.report_json), open(&cfg.report_junit), open(&cfg.record)) {
        (Ok(a), Ok(b), Ok(c)) => (a, b, c),
        (Err(e), _, _) | (_, Err(e), _) | (_, _, Err(e)) => {
            eprintln!("apitool: {e}");
            return 2;
        }
    };
    let rec = match har_in::load(&cfg.recording, cfg.record.is_some()) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("apitool: {e}");
            return 2;
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
    let entries = Arc::new(rec.entries);
    if !entries.iter().any(|e| cfg.filters.iter().all(|f| f.matches(e))) {
        eprintln!(
            "apitool: {}: no entry to replay{}",
            cfg.recording.display(),
            if cfg.filters.is_empty() { "" } else { " (see --filter)" }
        );
    }
    let report = replay(&cfg, entries.clone(), &rec.format, stop, &mut |done, total| {
        if let Some(b) = &bar {
            b.set_length(total as u64);
            b.set_position(done as u64);
        }
    });
    if let Some(b) = bar {
        b.finish_and_clear();
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
        if report.interrupted {
            // A partial baseline would lose the entries that did not run.
            eprintln!("apitool: {}: not written, the run was interrupted", o.path.display());
        } else {
            written.push(o.write(|w| record::write_har(w, &entries, &report)));
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
