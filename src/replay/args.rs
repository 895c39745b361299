//! The flags of `apitool replay` and their validation into a [`ReplayConfig`].

use std::io::IsTerminal;
use std::path::PathBuf;
use std::time::Duration;

use clap::Args;

use super::client::{ClientConfig, Target};
use super::compare::{CompareConfig, JsonPattern};
use super::{Filter, ReplayConfig, Verbosity};
use crate::cli::parse_size;

pub use crate::cli::ColorWhen;

#[derive(Args, Debug, Clone)]
#[command(after_help = "Examples:
  apitool replay base.har --target http://127.0.0.1:8080
  apitool replay base.har --target http://127.0.0.1:8080 --record base.har
  apitool replay t.pcap --target http://127.0.0.1:8080/v2 --filter path=^/api/
  apitool replay base.har --target http://h:80 --filter 'path=!^/admin'
  apitool replay base.har --target http://h:80 --deadline 300 --report-junit j.xml
  apitool replay base.har --target http://127.0.0.1:8080 -v --color always | less -R
  apitool replay base.har --target https://127.0.0.1:8443 --cacert ca.pem

Common flags: -q prints no progress bar and, of the report, only the final count; -v also \
lists the exchanges that did not change (and those not run); --color colours the report on \
standard output (auto: when standard output is a terminal and NO_COLOR is not set).

Exit status: 0 nothing changed; 1 a response changed, a request failed or did not run, no \
selected entry could be sent, or the recording is unreadable; 2 bad flags or an unwritable \
report; 130 interrupted (partial report written).")]
#[command(mut_arg("quiet", |a| a.help("No progress bar, and of the report only the final count (errors are still printed)")))]
#[command(mut_arg("verbose", |a| a.help("Also list the exchanges that did not change")))]
#[command(mut_arg("color", |a| a.help("Colour the report (auto: when standard output is a terminal and NO_COLOR is not set)")))]
pub struct ReplayArgs {
    /// The recording: a HAR 1.2 file (from `apitool convert`, a browser or a proxy) or a
    /// pcap/pcapng capture (converted first); - for standard input.
    #[arg(value_name = "RECORDING")]
    pub recording: PathBuf,

    /// Where to send the requests: `http://HOST[:PORT]` or `https://HOST[:PORT]`, optionally
    /// with a base path put before every recorded path (`http://127.0.0.1:8080/v2`).
    #[arg(long, value_name = "URL")]
    pub target: String,

    /// Send the recorded Host header instead of the target's host (default: the target's).
    #[arg(long)]
    pub keep_host: bool,

    /// Send every request over HTTP/2 in cleartext with prior knowledge (h2c) instead of
    /// HTTP/1.1. gRPC calls go over h2c without it (they cannot go over HTTP/1.1). Over an
    /// https target the server's ALPN choice decides instead.
    #[arg(long)]
    pub http2_prior_knowledge: bool,

    /// For an https target: trust only the PEM certificates in FILE (default: the system's
    /// certificate store).
    #[arg(long, value_name = "FILE")]
    pub cacert: Option<PathBuf>,

    /// For an https target: accept any certificate (its handshake signature is still
    /// checked).
    #[arg(long, short = 'k')]
    pub insecure: bool,

    /// A TLS key log to decrypt a capture recording's HTTPS with (as `convert --keylog`);
    /// repeatable.
    #[arg(long, value_name = "FILE")]
    pub keylog: Vec<PathBuf>,

    /// Recorded connections replayed at the same time (the requests of one connection always
    /// go in order on one connection).
    #[arg(long, value_name = "N", default_value_t = 8)]
    pub concurrency: usize,

    /// At most N requests per second over all connections (0: no limit).
    #[arg(long, value_name = "N", default_value_t = 0.0)]
    pub rate: f64,

    /// Seconds allowed for each exchange: connecting, sending, waiting and reading the whole
    /// response.
    #[arg(long, value_name = "SECS", default_value_t = 30.0)]
    pub timeout: f64,

    /// Seconds for the whole run: past it nothing more is sent, the exchanges in flight end as
    /// timed out and the rest are reported not run (exit status 1). Default: no limit.
    #[arg(long, value_name = "SECS")]
    pub deadline: Option<f64>,

    /// Replay only the entries that match (repeatable; all must match): method=REGEX,
    /// host=REGEX, path=REGEX (path and query), or a REGEX over "METHOD HOST/PATH?QUERY";
    /// !REGEX (path=!^/admin, !^DELETE ) selects the entries it does not match. Another KEY= is
    /// refused. Default: every entry.
    #[arg(long, value_name = "SPEC")]
    pub filter: Vec<String>,

    /// Also ignore this response header when comparing (repeatable). Always ignored: Date,
    /// Server, ETag, Last-Modified, Expires, Age, Content-Length, Set-Cookie values, request
    /// and trace ids (X-Request-Id, Traceparent, ...), hop-by-hop fields.
    #[arg(long, value_name = "NAME")]
    pub ignore_header: Vec<String>,

    /// Ignore this part of JSON bodies when comparing (repeatable): a JSON Pointer
    /// (`/meta/generated_at`, `*` for any member or position) or a JSONPath like `$.items[*].id`.
    /// Default: none.
    #[arg(long, value_name = "PATH")]
    pub ignore_json: Vec<String>,

    /// Largest response body read (decoded); past it the body is cut, not compared, and the
    /// exchange fails.
    #[arg(long, value_name = "SIZE", default_value = "16MiB", value_parser = parse_size)]
    pub max_body: usize,

    /// Differences listed per exchange; more are counted.
    #[arg(long, value_name = "N", default_value_t = 50)]
    pub max_differences: usize,

    /// Also write the report as JSON to FILE (default: not written).
    #[arg(long, value_name = "FILE")]
    pub report_json: Option<PathBuf>,

    /// Also write the report as JUnit XML to FILE, one test case per exchange (default: not
    /// written).
    #[arg(long, value_name = "FILE")]
    pub report_junit: Option<PathBuf>,

    /// Write the responses received as a new HAR baseline to FILE (default: not written). FILE
    /// may be the recording itself: it is replaced only at the end of a complete run.
    #[arg(long, value_name = "FILE")]
    pub record: Option<PathBuf>,

    #[command(flatten)]
    pub common: crate::cli::CommonArgs,
}

impl ReplayArgs {
    /// The validated configuration.
    pub fn config(&self) -> Result<ReplayConfig, String> {
        let target: Target = self.target.parse()?;
        if !target.tls && (self.cacert.is_some() || self.insecure) {
            return Err("--cacert and --insecure apply to https:// targets only".into());
        }
        if self.insecure && self.cacert.is_some() {
            return Err("--cacert and --insecure cannot be used together".into());
        }
        let tls =
            if target.tls { Some(std::sync::Arc::new(super::tls::TlsSetup::new(self.cacert.as_deref(), self.insecure)?)) } else { None };
        if self.concurrency == 0 {
            return Err("--concurrency must be at least 1".into());
        }
        if !(self.rate >= 0.0 && self.rate.is_finite()) {
            return Err("--rate must be a number of requests per second, 0 for no limit".into());
        }
        if !(self.timeout > 0.0 && self.timeout.is_finite() && self.timeout <= 86_400.0) {
            return Err("--timeout must be a positive number of seconds".into());
        }
        if let Some(d) = self.deadline
            && !(d > 0.0 && d.is_finite() && d <= 31_536_000.0)
        {
            return Err("--deadline must be a positive number of seconds".into());
        }
        if self.max_body == 0 {
            return Err("--max-body must be more than 0".into());
        }
        let filters = self.filter.iter().map(|f| f.parse::<Filter>()).collect::<Result<Vec<_>, _>>()?;
        let mut compare = CompareConfig { max_differences: self.max_differences.max(1), ..CompareConfig::default() };
        for h in &self.ignore_header {
            let h = h.trim().to_ascii_lowercase();
            if h.is_empty() || !h.bytes().all(|c| c.is_ascii_graphic() && c != b':') {
                return Err(format!("--ignore-header {h:?}: not a header name"));
            }
            compare.ignore_headers.insert(h);
        }
        compare.ignore_json = self
            .ignore_json
            .iter()
            .map(|p| p.parse::<JsonPattern>().map_err(|e| format!("--ignore-json {e}")))
            .collect::<Result<_, _>>()?;
        // The report goes to standard output: that is the stream `auto` looks at.
        let color = self.common.color.enabled(std::io::stdout().is_terminal());
        Ok(ReplayConfig {
            recording: self.recording.clone(),
            client: ClientConfig {
                target,
                keep_host: self.keep_host,
                timeout: Duration::from_secs_f64(self.timeout),
                max_body: self.max_body,
                deadline: self.deadline.map(|d| std::time::Instant::now() + Duration::from_secs_f64(d)),
                http2: self.http2_prior_knowledge,
                tls,
            },
            tls: crate::cli::read_keylogs(&self.keylog)?,
            concurrency: self.concurrency,
            rate: (self.rate > 0.0).then_some(self.rate),
            filters,
            compare,
            report_json: self.report_json.clone(),
            report_junit: self.report_junit.clone(),
            record: self.record.clone(),
            color,
            verbosity: if self.common.quiet {
                Verbosity::Quiet
            } else if self.common.verbose > 0 {
                Verbosity::Verbose
            } else {
                Verbosity::Normal
            },
        })
    }
}
