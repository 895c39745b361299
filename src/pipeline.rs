//! The conversion pipeline: a capture in, HAR entries out, in bounded memory.
//!
//! The capture is processed as a stream of windows (a few MiB of records each). Within a
//! window, frames are decoded in order and their segments dealt to shards by connection; the
//! shards then run in parallel (rayon), each owning its connections. Each exchange a shard
//! finishes becomes a task of its own: it is serialized (HAR entry, witness) into the sink of
//! whichever worker thread takes it, so the threads stay busy while the last shards of a window
//! finish. Between windows, the caps that span shards are applied, idle connections end, and
//! finished entries are written in order (start time, connection, position) up to a
//! watermark: the start of the earliest exchange still in progress, but never more than the
//! order window ([`Config::order_window_ns`]) behind the capture's time. So an exchange that
//! stays open (a long poll, an event stream, a connection open when the capture ends) holds
//! back the output for the window at most; it is written when it ends, out of time order,
//! counted and marked `writtenLate`. Entries waiting for their turn are held serialized, in
//! memory only: past [`Config::reorder_mem`] the oldest are written at once. Nothing here
//! depends on the number of threads: the output is the same bytes whatever it is.
//!
//! With a witness output ([`Converter::convert_to`]), the sinks also build each exchange's
//! witness, encode it and hash it; the HAR entry and the witness travel together as one record
//! through the reorder buffer (so witnesses come out in the same order as entries), and the
//! writer thread writes each part to its own output, dropping duplicate witnesses when asked.
//! Filters and redaction are applied in the sinks too. With HAR output only and neither
//! filters nor redaction, records are the HAR entries themselves and nothing else is done.

use std::collections::BTreeMap;
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use rayon::prelude::*;
use serde::Serialize;

use crate::capture::{Format, Frame, FrameReader, Input, Next, OpenError, Ts};
use crate::flow::{FlowLimits, FlowStats, Shard};
use crate::ir::Digest;
use crate::ir::body::IrStats;
use crate::ir::build::{WitnessBuilder, WitnessOptions};
use crate::ir::redact::Redactor;
use crate::output::filter::Filter;
use crate::output::har::{self, EntryKey, HarWriter};
use crate::output::witness::WitnessWriter;
use crate::proto::http1::{Exchange, ExchangeSink, HttpLimits, HttpStats};
use crate::wire::defrag::{DefragLimits, DefragStats, Defragmenter};
use crate::wire::{self, Decoded, Skip, TcpSegment};

/// Everything that shapes a conversion.
#[derive(Clone, Debug)]
pub struct Config {
    pub flow: FlowLimits,
    pub http: HttpLimits,
    /// HTTP/2 caps (header list, open streams, HPACK table).
    pub h2: crate::proto::h2::H2Limits,
    /// TLS decryption: the key log from `--keylog` (a pcapng input's Decryption Secrets
    /// Blocks are added to it for that input).
    pub tls: crate::proto::tls::TlsLimits,
    pub defrag: DefragLimits,
    /// Link and tunnel decoding (TZSP on a port of the user's choosing).
    pub wire: wire::WireOptions,
    /// Worker threads (at least 1).
    pub threads: usize,
    /// Capture bytes per window.
    pub window_bytes: usize,
    /// Frames per window.
    pub window_frames: usize,
    /// Serialized entries held in memory while waiting for their turn; past it the oldest are
    /// written, and an exchange that ends later with an earlier start is written out of order.
    pub reorder_mem: usize,
    /// How long (capture time, nanoseconds) the output waits for an exchange still in
    /// progress before writing later ones; one that ends after that is written when it ends,
    /// out of time order (counted, and marked `writtenLate` in `_apitool`).
    pub order_window_ns: i64,
    /// Report the connections holding the most memory in each [`Progress`] (costs a pass over
    /// the connections per window).
    pub observe_connections: bool,
    /// Witness construction, deduplication, filters and redaction.
    pub output: OutputOptions,
    /// When this becomes true (a signal handler sets it), the conversion stops reading at the
    /// next window (or the next read of a stream) and ends as at the end of the input: the
    /// connections in flight are finished and the outputs closed. The summary says
    /// `interrupted`.
    pub stop: Option<Arc<AtomicBool>>,
}

/// What is written and how, beyond the HAR defaults.
#[derive(Clone, Debug, Default)]
pub struct OutputOptions {
    /// How witnesses are built (when a witness output is given); its `redact` is ignored in
    /// favour of [`OutputOptions::redact`].
    pub witness: WitnessOptions,
    /// Drop a witness whose hash was already written.
    pub dedup: bool,
    /// Only exchanges that pass are written (to both outputs).
    pub filter: Option<Arc<Filter>>,
    /// Sensitive values are replaced in both outputs.
    pub redact: Option<Arc<Redactor>>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            flow: FlowLimits::default(),
            http: HttpLimits::default(),
            h2: crate::proto::h2::H2Limits::default(),
            tls: crate::proto::tls::TlsLimits::default(),
            defrag: DefragLimits::default(),
            wire: wire::WireOptions::default(),
            threads: std::thread::available_parallelism().map_or(1, |n| n.get()),
            window_bytes: 1 << 20,
            window_frames: 8192,
            reorder_mem: 8 << 20,
            order_window_ns: 5_000_000_000,
            observe_connections: false,
            output: OutputOptions::default(),
            stop: None,
        }
    }
}

impl Config {
    fn stopped(&self) -> bool {
        self.stop.as_ref().is_some_and(|s| s.load(Ordering::Relaxed))
    }
}

/// What happened while converting one input.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Summary {
    pub input: String,
    pub format: String,
    /// Bytes of input (those read before the stop, when interrupted).
    pub bytes: u64,
    pub frames: u64,
    /// Frames whose capture was cut by the snap length.
    pub frames_snap_cut: u64,
    pub tcp_segments: u64,
    /// Frames per link type that is not decoded.
    pub unsupported_linktypes: BTreeMap<u32, u64>,
    pub not_ip: u64,
    pub not_tcp: u64,
    /// Frames whose headers were cut short or invalid, by layer.
    pub malformed: BTreeMap<&'static str, u64>,
    pub too_deep: u64,
    pub ip_fragments: DefragStats,
    pub tcp: FlowStats,
    pub http: HttpStats,
    /// Connections of protocols recognized but not decoded yet.
    pub protocols: crate::proto::Detected,
    /// HTTP/2 connections and their streams' troubles.
    pub h2: crate::proto::h2::H2Stats,
    /// TLS decryption.
    pub tls: crate::proto::tls::TlsStats,
    /// TLS connections not decrypted, with their SNI and client random (the first
    /// [`crate::proto::tls::MAX_UNDECRYPTED_LISTED`]).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub tls_undecrypted: Vec<crate::proto::tls::Undecrypted>,
    /// Key logs read from the input's Decryption Secrets Blocks (pcapng).
    #[serde(skip_serializing_if = "is_zero")]
    pub tls_secrets_blocks: u64,
    pub entries: u64,
    pub entries_with_anomalies: u64,
    /// Entries written after a later-starting one (capture time going backwards).
    pub entries_out_of_order: u64,
    /// Entries that waited in the temporary file: those finished in a window past the sinks'
    /// share of the reorder buffer (`--order-mem`; a large one written in pieces, its bodies
    /// serialized straight into the file).
    pub entries_spilled: u64,
    /// Their bytes, in all.
    pub bytes_spilled: u64,
    /// The most the temporary files held at once, bytes, at most (each sink's own peak, added
    /// up; the files are emptied once a window's entries are read back, so this stays bounded
    /// whatever the size of the capture).
    pub peak_spill_file_bytes: u64,
    /// The capture ends in the middle of a record at this offset.
    pub truncated_at: Option<u64>,
    /// A record that cannot be read, and where.
    pub corrupt: Option<(u64, String)>,
    /// Peak bytes buffered by reassembly (out-of-order data), seen between windows.
    pub peak_reassembly_bytes: u64,
    /// Peak connections tracked, seen between windows.
    pub peak_flows: u64,
    /// Peak serialized entries waiting for their turn, bytes.
    pub peak_pending_entry_bytes: u64,
    /// Peak bytes held by bodies in progress (coded ones still encoded), seen between
    /// windows: what `HttpLimits::max_bodies_total` is checked against.
    pub peak_body_bytes: u64,
    /// Exchanges left out by `--host`/`--path` filters.
    #[serde(skip_serializing_if = "is_zero")]
    pub filtered_out: u64,
    /// Values replaced by redaction in the HAR entries.
    #[serde(skip_serializing_if = "is_zero")]
    pub har_redactions: u64,
    /// The conversion was stopped (a signal) before the end of the input; what was read up
    /// to there was converted and the outputs are complete.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub interrupted: bool,
    /// With a witness output.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub witnesses: Option<WitnessSummary>,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// What happened to the witnesses of one input.
#[derive(Clone, Debug, Default, Serialize)]
pub struct WitnessSummary {
    pub written: u64,
    /// Dropped by `--dedup` (their hash was already written).
    pub duplicates: u64,
    /// Responses without their request have no witness.
    pub without_request: u64,
    /// Construction counters: bodies that failed to parse by type, nesting cut, samples,
    /// values redacted in witnesses.
    #[serde(flatten)]
    pub ir: IrStats,
}

/// Where a conversion stands, told after each window (for progress bars and `apitool
/// profile`). Figures are taken between windows, after idle connections were swept.
#[derive(Clone, Debug, Default)]
pub struct Progress {
    /// Input bytes consumed so far.
    pub bytes: u64,
    /// The latest capture time seen.
    pub ts: Ts,
    /// Connections tracked (before the sweep of idle ones).
    pub open_flows: usize,
    /// Out-of-order bytes held by reassembly (before the sweep).
    pub reassembly_bytes: usize,
    /// Bytes held by the HTTP parsers: heads being collected, bodies decoded so far.
    pub http_bytes: usize,
    /// Serialized entries waiting for their turn, in memory.
    pub pending_entry_bytes: usize,
    /// Counters so far, summed over the shards.
    pub tcp: FlowStats,
    pub http: HttpStats,
    /// With [`Config::observe_connections`]: the connections holding the most buffered bytes
    /// (id, out-of-order bytes + HTTP bytes), largest first, at most 10.
    pub top_connections: Vec<(u64, usize)>,
    /// Connections and out-of-order bytes after the sweep: what `FlowLimits::max_flows` and
    /// `FlowLimits::max_ooo_total` are checked against.
    pub swept_flows: usize,
    pub swept_reassembly_bytes: usize,
}

/// Why an input could not be converted at all.
#[derive(Debug, thiserror::Error)]
pub enum ConvertError {
    #[error("{0}")]
    Open(#[from] OpenError),
    #[error("read error at byte {offset}: {source}")]
    Read { offset: u64, source: io::Error },
    /// Not one frame could be read: the first record that should hold one is damaged.
    #[error("unreadable record at byte {offset} ({why}): not one frame could be read")]
    NoFrames { offset: u64, why: String },
    #[error("write error: {0}")]
    Write(io::Error),
}

impl ConvertError {
    /// The one-line message for an input named `name` (write errors name the input, callers
    /// that know the output name it instead).
    pub fn message(&self, name: &str) -> String {
        match self {
            ConvertError::Open(o) => format!("{name}: byte 0: {o}"),
            ConvertError::Read { offset, source } => format!("{name}: byte {offset}: read error: {source}"),
            ConvertError::NoFrames { offset, why } => {
                format!("{name}: byte {offset}: unreadable record ({why}): not one frame could be read")
            }
            ConvertError::Write(w) => format!("{name}: {w}"),
        }
    }
}

/// An input whose format was recognised and whose first records were checked, before any
/// output is written.
enum Source {
    Mapped(memmap2::Mmap),
    /// A stream, with its first bytes read into `buf` (`eof`: that was all of it).
    Stream {
        r: Box<dyn Read + Send>,
        buf: Vec<u8>,
        eof: bool,
    },
}

/// Checks that `data` (the start of a capture) is a capture whose first record holding a
/// packet can be read: an input whose first records are damaged is a failed input, not an
/// empty capture. A record cut short (more bytes may come, or the capture is truncated) and a
/// capture without records pass.
fn check_start(data: &[u8]) -> Result<(), ConvertError> {
    let (mut r, mut pos) = FrameReader::open(data)?;
    while pos < data.len() {
        match r.next(&data[pos..]) {
            Next::Frame(..) | Next::NeedMore(_) => return Ok(()),
            Next::Skip(n) => pos += n.max(1),
            Next::Corrupt(why) => return Err(ConvertError::NoFrames { offset: pos as u64, why }),
        }
    }
    Ok(())
}

/// Reads from `r` into the spare capacity of `buf` (nothing is zeroed first) until it holds
/// `need` bytes, the input ends (`eof`) or `stop` is set; `base` is the stream offset of
/// `buf[0]`, for the error's offset.
fn fill(r: &mut dyn Read, buf: &mut Vec<u8>, eof: &mut bool, need: usize, base: u64, cfg: &Config) -> Result<(), ConvertError> {
    // Read in pieces so that a stop request is seen while a slow stream trickles in.
    const PIECE: u64 = 256 << 10;
    while !*eof && buf.len() < need && !cfg.stopped() {
        let want = ((need - buf.len()) as u64).min(PIECE);
        buf.reserve(want as usize);
        match (&mut *r).take(want).read_to_end(buf) {
            // Less than asked for: the input ended (a terminal is not read again after ^D).
            Ok(k) if (k as u64) < want => *eof = true,
            Ok(_) => {}
            Err(e) => return Err(ConvertError::Read { offset: base + buf.len() as u64, source: e }),
        }
    }
    Ok(())
}

/// Collects the entries a shard produces, serialized. Past `cap` bytes held (0: no cap), the
/// window's further entries wait in a temporary file: a window of capture can make far more
/// HAR than it has bytes (a 20-byte request is a 1 KB entry).
///
/// The default sink writes HAR entries only. [`EntrySink::with_output`] makes framed records
/// (`[HAR length: u32][HAR entry][witness hash: 8 bytes][witness]`) holding the HAR entry
/// and/or the witness, after filters and redaction.
#[derive(Default)]
pub struct EntrySink {
    entries: Vec<(EntryKey, Pending)>,
    anomalous: u64,
    emit: Option<Box<Emit>>,
    bytes: usize,
    cap: usize,
    spill: Option<std::fs::File>,
    /// Entries in `spill`, in order: key and length.
    spilled: Vec<(EntryKey, u32)>,
    /// Entries ever spilled.
    spilled_total: u64,
    /// Their bytes.
    spilled_bytes_total: u64,
    /// Bytes in `spill` now, and the most it held.
    spill_len: u64,
    peak_spill_len: u64,
    /// A write to `spill` failed (reported when the entries are collected).
    error: Option<io::Error>,
    /// The witness of the exchange being written (reused).
    wit: Vec<u8>,
    /// A piece of a body being written to `spill`.
    piece: Vec<u8>,
}

const LATE_MARK: &[u8] = b",\"writtenLate\":true";

/// Marks a serialized HAR entry that ends at `at_end` (with its `_apitool` object, then the
/// entry's own closing brace) as written out of its time order.
fn mark_late(entry: &mut Vec<u8>, at_end: usize) {
    debug_assert!(entry[..at_end].ends_with(b"}}"));
    let at = at_end - 2;
    entry.splice(at..at, LATE_MARK.iter().copied());
}

/// Marks the HAR entry of a record (plain, or framed as [`Record`] describes) as late.
fn mark_record_late(rec: &mut Vec<u8>, framed: bool) {
    if !framed {
        let n = rec.len();
        return mark_late(rec, n);
    }
    let n = u32::from_le_bytes(rec[..4].try_into().expect("4 bytes")) as usize;
    if n > 0 {
        mark_late(rec, 4 + n);
        rec[..4].copy_from_slice(&((n + LATE_MARK.len()) as u32).to_le_bytes());
    }
}

/// A record waiting for its turn.
enum Pending {
    /// Serialized (plain, or framed as [`Record`] describes).
    Bytes(Vec<u8>),
    /// A large HAR entry (at least [`STREAM_ENTRY_MIN`]), still as its exchange: the writer
    /// thread serializes it straight to the output, its bodies in pieces, so that while it
    /// waits and while it is written its decoded bodies are its only copy in memory.
    Large(Box<Large>),
}

struct Large {
    ex: Exchange,
    /// Of a framed record, the witness part (hash and encoding; empty for none).
    witness: Vec<u8>,
    /// Written out of its time order (see [`mark_late`]).
    late: bool,
    /// Heap bytes it holds, counted against the caps.
    held: usize,
}

impl Pending {
    /// Memory it holds: a serialized record's length, a large entry's exchange and witness.
    fn len(&self) -> usize {
        match self {
            Pending::Bytes(b) => b.len(),
            Pending::Large(l) => l.held,
        }
    }

    fn mark_late(&mut self, framed: bool) {
        match self {
            Pending::Bytes(b) => mark_record_late(b, framed),
            Pending::Large(l) => l.late = true,
        }
    }

    /// Serialized, as the writer writes it.
    #[cfg(test)]
    fn into_bytes(self, framed: bool) -> Vec<u8> {
        match self {
            Pending::Bytes(b) => b,
            Pending::Large(l) => {
                let mut v = Rec { har: Some(har::entry_parts(&l.ex)), framed, witness: &l.witness }.to_vec();
                if l.late {
                    mark_record_late(&mut v, framed);
                }
                v
            }
        }
    }
}

/// What a sink does beyond HAR entries.
struct Emit {
    har: bool,
    witness: Option<WitnessBuilder>,
    filter: Option<Arc<Filter>>,
    redact: Option<Arc<Redactor>>,
    filtered: u64,
    har_redactions: u64,
    without_request: u64,
}

/// A framed record: `[HAR entry length: u32 LE][HAR entry][witness hash: 8][witness, length
/// delimited]`; an empty witness part means no witness.
struct Record;

impl Record {
    fn split(rec: &[u8]) -> (&[u8], Option<(Digest, &[u8])>) {
        let n = u32::from_le_bytes(rec[..4].try_into().expect("4 bytes")) as usize;
        let har = &rec[4..4 + n];
        let rest = &rec[4 + n..];
        let mut d = [0u8; 8];
        d.copy_from_slice(&rest[..8]);
        let w = &rest[8..];
        (har, (!w.is_empty()).then_some((Digest(d), w)))
    }
}

impl EntrySink {
    /// Whether these outputs need framed records: anything but HAR alone, unfiltered and
    /// unredacted.
    fn framed(har: bool, witness: bool, opts: &OutputOptions) -> bool {
        !(har && !witness && opts.filter.is_none() && opts.redact.is_none())
    }

    /// A sink for the outputs asked for; `None` of both filter and redaction with HAR only is
    /// the default sink.
    pub fn with_output(har: bool, witness: bool, opts: &OutputOptions) -> EntrySink {
        if !Self::framed(har, witness, opts) {
            return EntrySink::default();
        }
        let witness = witness.then(|| WitnessBuilder::new(WitnessOptions { redact: opts.redact.clone(), ..opts.witness.clone() }));
        EntrySink {
            emit: Some(Box::new(Emit {
                har,
                witness,
                filter: opts.filter.clone(),
                redact: opts.redact.clone(),
                filtered: 0,
                har_redactions: 0,
                without_request: 0,
            })),
            ..EntrySink::default()
        }
    }
}

impl Emit {
    /// Filters, builds and encodes the witness (into `wit`, after its hash), redacts: the
    /// exchange to write, or `None` when it is filtered out.
    fn prepare(&mut self, mut ex: Exchange, wit: &mut Vec<u8>) -> Option<Exchange> {
        if let Some(f) = &self.filter
            && !f.keep(&ex)
        {
            self.filtered += 1;
            return None;
        }
        // The witness first: it is built from the exchange as captured (it redacts by type).
        wit.clear();
        if let Some(b) = &mut self.witness {
            match b.build(&ex) {
                Some(w) => {
                    wit.extend_from_slice(&w.digest.0);
                    b.encode(&w, wit);
                    b.recycle(w);
                }
                None => self.without_request += 1,
            }
        }
        if self.har
            && let Some(r) = &self.redact
        {
            self.har_redactions += r.redact_exchange(&mut ex);
        }
        Some(ex)
    }
}

/// Entries of at least this many bytes wait as their exchange ([`Pending::Large`]) and are
/// serialized by the writer straight to the output, rather than into a buffer beside the
/// exchange; past the sink's cap they go to its temporary file, their bodies in pieces.
const STREAM_ENTRY_MIN: usize = 1 << 20;

/// A record as it is written (see [`Record`]): a HAR entry's parts and, framed, the witness
/// part (its hash and encoding, empty for none).
struct Rec<'a> {
    har: Option<har::EntryParts<'a>>,
    framed: bool,
    witness: &'a [u8],
}

impl Rec<'_> {
    fn har_len(&self) -> usize {
        self.har.as_ref().map_or(0, |h| h.len())
    }

    /// Its size (see [`har::EntryParts::len`]: exact for a large entry, else a little
    /// under).
    fn len(&self) -> usize {
        if self.framed { 4 + self.har_len() + 8.max(self.witness.len()) } else { self.har_len() }
    }

    fn is_exact(&self) -> bool {
        self.har.as_ref().is_none_or(|h| h.is_exact())
    }

    /// Into a buffer of the record's exact size, with room to mark it late.
    fn to_vec(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.len() + LATE_MARK.len());
        if self.framed {
            out.extend_from_slice(&[0; 4]);
        }
        if let Some(h) = &self.har {
            h.write_into(&mut out);
        }
        if self.framed {
            let n = (out.len() - 4) as u32;
            out[..4].copy_from_slice(&n.to_le_bytes());
        }
        if self.framed {
            self.write_witness(&mut out);
        }
        // An entry not sized exactly grew by doubling while its text was escaped: it waits in
        // the reorder buffer, which counts lengths, so it gives back what it does not use.
        let want = out.len() + LATE_MARK.len();
        if out.capacity() > want + want / 8 {
            out.shrink_to(want);
        }
        out
    }

    fn write_witness(&self, out: &mut Vec<u8>) {
        if self.witness.is_empty() {
            out.extend_from_slice(&[0; 8]);
        } else {
            out.extend_from_slice(self.witness);
        }
    }

    fn write_to(&self, w: &mut dyn Write, buf: &mut Vec<u8>) -> io::Result<()> {
        if self.framed {
            w.write_all(&(self.har_len() as u32).to_le_bytes())?;
        }
        if let Some(h) = &self.har {
            h.write_to(w, buf)?;
        }
        if self.framed {
            let mut tail = Vec::new();
            self.write_witness(&mut tail);
            w.write_all(&tail)?;
        }
        Ok(())
    }
}

impl ExchangeSink for EntrySink {
    fn exchange(&mut self, ex: Exchange) {
        let key = har::entry_key(&ex);
        let damaged = har::is_damaged(&ex.anomalies);
        let mut wit = std::mem::take(&mut self.wit);
        let (ex, har, framed) = match self.emit.as_deref_mut() {
            Some(e) => match e.prepare(ex, &mut wit) {
                Some(ex) => (ex, e.har, true),
                None => {
                    self.wit = wit;
                    return;
                }
            },
            None => (ex, true, false),
        };
        self.anomalous += u64::from(damaged);
        let rec = Rec { har: har.then(|| har::entry_parts(&ex)), framed, witness: &wit };
        let len = rec.len();
        let large = har && len >= STREAM_ENTRY_MIN && rec.is_exact();
        let held = if large { exchange_bytes(&ex) + wit.len() } else { len };
        if self.cap > 0 && self.bytes + held > self.cap && self.error.is_none() && len <= u32::MAX as usize {
            match self.spill_record(&rec) {
                Ok(len) => {
                    self.spilled_total += 1;
                    self.spilled_bytes_total += len as u64;
                    self.spill_len += len as u64;
                    self.peak_spill_len = self.peak_spill_len.max(self.spill_len);
                    self.spilled.push((key, len as u32));
                    drop(rec);
                    self.wit = wit;
                    return;
                }
                Err(e) => self.error = Some(e),
            }
        }
        if large {
            drop(rec);
            let witness = if framed { wit.clone() } else { Vec::new() };
            self.wit = wit;
            self.bytes += held;
            self.entries.push((key, Pending::Large(Box::new(Large { ex, witness, late: false, held }))));
            return;
        }
        let buf = rec.to_vec();
        drop(rec);
        drop(ex);
        self.wit = wit;
        self.bytes += buf.len();
        self.entries.push((key, Pending::Bytes(buf)));
    }
}

impl EntrySink {
    /// Writes a record to the temporary file, a large one's bodies in pieces; returns its
    /// length.
    fn spill_record(&mut self, rec: &Rec<'_>) -> io::Result<usize> {
        if self.spill.is_none() {
            self.spill = Some(tempfile::tempfile()?);
        }
        let f = self.spill.as_mut().expect("created above");
        if !rec.is_exact() {
            let v = rec.to_vec();
            f.write_all(&v)?;
            return Ok(v.len());
        }
        let mut w = io::BufWriter::with_capacity(64 << 10, f);
        rec.write_to(&mut w, &mut self.piece)?;
        w.flush()?;
        self.piece = Vec::new();
        Ok(rec.len())
    }

    /// Hands every entry to `push`, in the order they came, and starts over empty.
    #[cfg(test)]
    fn drain(&mut self, push: &mut dyn FnMut(EntryKey, Vec<u8>) -> io::Result<()>) -> io::Result<()> {
        self.drain_held(push)?;
        self.drain_spilled(push)
    }

    /// Hands the entries held in memory to `push`.
    #[cfg(test)]
    fn drain_held(&mut self, push: &mut dyn FnMut(EntryKey, Vec<u8>) -> io::Result<()>) -> io::Result<()> {
        let framed = self.emit.is_some();
        for (k, b) in self.entries.drain(..) {
            push(k, b.into_bytes(framed))?;
        }
        self.bytes = 0;
        match self.error.take() {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    /// Hands the entries that went to the temporary file to `push`.
    #[cfg(test)]
    fn drain_spilled(&mut self, push: &mut dyn FnMut(EntryKey, Vec<u8>) -> io::Result<()>) -> io::Result<()> {
        if let Some(f) = self.spill.as_mut().filter(|_| !self.spilled.is_empty()) {
            f.seek(SeekFrom::Start(0))?;
            for (k, len) in self.spilled.drain(..) {
                // With room to mark it late without growing it.
                let mut buf = Vec::with_capacity(len as usize + LATE_MARK.len());
                buf.resize(len as usize, 0);
                f.read_exact(&mut buf)?;
                push(k, buf)?;
            }
            f.set_len(0)?;
            f.seek(SeekFrom::Start(0))?;
        }
        self.spill_len = 0;
        Ok(())
    }
}

/// Where an entry of a window waits: in a sink's memory (sink, position) or in its file
/// (sink, offset, length).
#[derive(Clone, Copy)]
enum Held {
    Mem(usize, usize),
    File(usize, u64, u32),
}

impl EntrySink {
    /// Lists where each of this sink's entries is (as sink `i`) into `index`, and hands over
    /// those held in memory, by position.
    fn index_entries(&mut self, i: usize, index: &mut Vec<(EntryKey, Held)>) -> io::Result<Vec<Option<Pending>>> {
        if let Some(e) = self.error.take() {
            return Err(e);
        }
        let mem: Vec<Option<Pending>> = self
            .entries
            .drain(..)
            .enumerate()
            .map(|(j, (k, b))| {
                index.push((k, Held::Mem(i, j)));
                Some(b)
            })
            .collect();
        self.bytes = 0;
        let mut off = 0u64;
        for &(k, len) in &self.spilled {
            index.push((k, Held::File(i, off, len)));
            off += len as u64;
        }
        Ok(mem)
    }

    /// An entry of the temporary file, with room to mark it late without growing it.
    fn read_spilled(&mut self, off: u64, len: u32) -> io::Result<Vec<u8>> {
        let f = self.spill.as_mut().ok_or_else(|| io::Error::other("an entry of a temporary file that is not there"))?;
        let mut buf = Vec::with_capacity(len as usize + LATE_MARK.len());
        buf.resize(len as usize, 0);
        f.seek(SeekFrom::Start(off))?;
        f.read_exact(&mut buf)?;
        Ok(buf)
    }

    /// Empties the temporary file once its entries were read.
    fn clear_spilled(&mut self) -> io::Result<()> {
        if let Some(f) = self.spill.as_mut().filter(|_| !self.spilled.is_empty()) {
            f.set_len(0)?;
            f.seek(SeekFrom::Start(0))?;
        }
        self.spilled.clear();
        self.spill_len = 0;
        Ok(())
    }
}

/// Holds serialized entries until every earlier one is known, within the order window and
/// the memory cap (nothing goes to disk).
struct Reorder {
    mem: BTreeMap<EntryKey, Pending>,
    mem_bytes: usize,
    cap: usize,
    last: Option<EntryKey>,
    out_of_order: u64,
    peak: usize,
    /// Records are framed (see [`Record`]) rather than plain HAR entries.
    framed: bool,
}

impl Reorder {
    fn new(cap: usize, framed: bool) -> Reorder {
        Reorder { mem: BTreeMap::new(), mem_bytes: 0, cap, last: None, out_of_order: 0, peak: 0, framed }
    }

    fn push(&mut self, key: EntryKey, bytes: Pending) {
        self.mem_bytes += bytes.len();
        self.peak = self.peak.max(self.mem_bytes);
        self.mem.insert(key, bytes);
    }

    /// Moves entries that start before `watermark` (all of them for `None`) into `batch`, in
    /// order, until the batch holds `max_bytes`; past the watermark too while more than the
    /// memory cap is held. Returns whether entries to release are left.
    fn release(&mut self, watermark: Option<Ts>, batch: &mut Vec<Pending>, max_bytes: usize) -> bool {
        let mut bytes = 0;
        while let Some(entry) = self.mem.first_entry() {
            if bytes >= max_bytes {
                return true;
            }
            let key = *entry.key();
            if watermark.is_some_and(|w| key.start >= w) && self.mem_bytes <= self.cap {
                break;
            }
            let late = self.last.is_some_and(|l| key < l);
            self.last = self.last.max(Some(key));
            let mut entry = entry.remove();
            self.mem_bytes -= entry.len();
            if late {
                // It ended after entries that started later were written.
                self.out_of_order += 1;
                entry.mark_late(self.framed);
            }
            bytes += entry.len();
            batch.push(entry);
        }
        false
    }
}

/// A segment dealt to a shard: borrowed from the capture, or owned (reassembled from IP
/// fragments).
enum SegRef<'w> {
    Borrowed(TcpSegment<'w>),
    Owned(Box<(TcpSegment<'static>, Vec<u8>)>),
}

/// Progress of a window.
enum WindowEnd {
    /// The budget was used up; more records follow.
    Budget,
    /// No bytes left.
    End,
    /// The record at the end needs this many more bytes.
    NeedMore(usize),
    Corrupt(String),
}

/// Reading and decoding: frames of a window dealt to the shards' segment lists.
struct Reader {
    reader: FrameReader,
    defrag: Defragmenter,
    wire: wire::WireOptions,
    /// Frame-level counters (the summary's).
    summary: Summary,
    max_ts: Ts,
    list_caps: Vec<usize>,
    window_bytes: usize,
    window_frames: usize,
}

/// One window's segments, per shard, and what ended it.
struct Window<'w> {
    lists: Vec<Vec<SegRef<'w>>>,
    pos: usize,
    end: WindowEnd,
    /// The latest capture time seen up to the end of this window.
    now: Ts,
}

impl Reader {
    /// Reads records from `buf[pos..]` within the window budget and deals their segments.
    fn window<'w>(&mut self, buf: &'w [u8], mut pos: usize) -> Window<'w> {
        let n = self.list_caps.len();
        let mut lists: Vec<Vec<SegRef<'w>>> = self.list_caps.iter().map(|&c| Vec::with_capacity(c + c / 8)).collect();
        let start = pos;
        let mut frames = 0;
        let end = loop {
            if pos >= buf.len() {
                break WindowEnd::End;
            }
            if pos - start >= self.window_bytes || frames >= self.window_frames {
                break WindowEnd::Budget;
            }
            match self.reader.next(&buf[pos..]) {
                Next::Frame(f, used) => {
                    pos += used;
                    frames += 1;
                    self.frame(&f, &mut lists, n);
                }
                Next::Skip(used) => pos += used,
                Next::NeedMore(k) => break WindowEnd::NeedMore(k),
                Next::Corrupt(why) => break WindowEnd::Corrupt(why),
            }
        };
        for (c, l) in self.list_caps.iter_mut().zip(&lists) {
            *c = l.len();
        }
        Window { lists, pos, end, now: self.max_ts }
    }

    fn frame<'w>(&mut self, f: &Frame<'w>, lists: &mut [Vec<SegRef<'w>>], n: usize) {
        let s = &mut self.summary;
        s.frames += 1;
        if f.orig_len as usize > f.data.len() {
            s.frames_snap_cut += 1;
        }
        if f.ts > self.max_ts {
            self.max_ts = f.ts;
        }
        match wire::decode_with(f, self.wire) {
            Decoded::Tcp(seg) => {
                s.tcp_segments += 1;
                let i = (seg.key.shard_hash() % n as u64) as usize;
                lists[i].push(SegRef::Borrowed(seg));
            }
            Decoded::Fragment(frag) => {
                if let Some(payload) = self.defrag.push(f.ts, &frag) {
                    match wire::decode_reassembled_with(f.index, f.ts, &frag, &payload, self.wire) {
                        Decoded::Tcp(seg) => {
                            s.tcp_segments += 1;
                            let i = (seg.key.shard_hash() % n as u64) as usize;
                            let owned = TcpSegment { payload: &[], ..seg };
                            // The segment's payload is a slice of the datagram: keep its range.
                            let off = seg.payload.as_ptr() as usize - payload.as_ptr() as usize;
                            let data = payload[off..off + seg.payload.len()].to_vec();
                            lists[i].push(SegRef::Owned(Box::new((owned, data))));
                        }
                        Decoded::Skip(k) => skip(s, k),
                        Decoded::Fragment(_) => skip(s, Skip::TooDeep),
                    }
                }
            }
            Decoded::Skip(k) => skip(s, k),
        }
    }
}

fn skip(s: &mut Summary, k: Skip) {
    match k {
        Skip::UnsupportedLinktype(lt) => *s.unsupported_linktypes.entry(lt).or_default() += 1,
        Skip::NotIp => s.not_ip += 1,
        Skip::NotTcp => s.not_tcp += 1,
        Skip::Malformed(layer) => *s.malformed.entry(layer).or_default() += 1,
        Skip::TooDeep => s.too_deep += 1,
    }
}

/// One sink per worker thread, shared by the shards: exchanges are serialized on whichever
/// thread is free.
type Sinks = Arc<[Mutex<EntrySink>]>;

/// A sink's lock (a panic while holding it has already failed the conversion).
fn lock(m: &Mutex<EntrySink>) -> std::sync::MutexGuard<'_, EntrySink> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// The sink of the current worker thread (the first one outside the pool).
fn own_sink(sinks: &[Mutex<EntrySink>]) -> std::sync::MutexGuard<'_, EntrySink> {
    lock(&sinks[rayon::current_thread_index().unwrap_or(0) % sinks.len()])
}

/// Exchanges a shard finished, waiting to be handed out as tasks: at most [`HANDOFF_MAX`]
/// (one segment can end thousands of pipelined exchanges); past it they are serialized at once,
/// as they come, so memory does not grow with them.
struct Handoff {
    queue: Vec<Exchange>,
    sinks: Sinks,
}

const HANDOFF_MAX: usize = 64;

/// Bytes of exchanges handed out and not yet serialized, at most: past it, and for exchanges
/// over a quarter of it, the shard's thread serializes them itself, so that no large body waits
/// while the shard decodes the next one.
const IN_FLIGHT_MAX: usize = 2 << 20;

/// About how much memory an exchange holds.
fn exchange_bytes(ex: &Exchange) -> usize {
    let m = |m: &Option<crate::proto::http1::Message>| {
        m.as_ref().map_or(0, |m| m.head.raw.len() + m.head.headers.len() * 16 + m.body.capacity())
    };
    std::mem::size_of::<Exchange>() + m(&ex.request) + m(&ex.response)
}

impl ExchangeSink for Handoff {
    fn exchange(&mut self, ex: Exchange) {
        if self.queue.len() < HANDOFF_MAX {
            self.queue.push(ex);
        } else {
            own_sink(&self.sinks).exchange(ex);
        }
    }
}

impl Handoff {
    /// Serializes the waiting exchanges on this thread.
    fn flush(&mut self) {
        if !self.queue.is_empty() {
            let mut sink = own_sink(&self.sinks);
            for ex in self.queue.drain(..) {
                sink.exchange(ex);
            }
        }
    }
}

/// Runs a window's segments through the shards, in parallel, and serializes the exchanges
/// they finish into the sinks. Exchanges are independent of each other: each one becomes a task
/// of its own, which a thread takes when it is free, so the threads stay balanced where shards
/// alone would not (a shard's connections are processed in order, in one task).
fn process(shards: &mut [Shard<Handoff>], lists: &[Vec<SegRef<'_>>], sinks: &[Mutex<EntrySink>]) {
    let seg = |shard: &mut Shard<Handoff>, s: &SegRef<'_>| match s {
        SegRef::Borrowed(seg) => shard.segment(seg),
        SegRef::Owned(b) => {
            let (seg, data) = &**b;
            let seg = TcpSegment { payload: data, ..*seg };
            shard.segment(&seg);
        }
    };
    if shards.len() == 1 {
        let shard = &mut shards[0];
        for s in &lists[0] {
            seg(shard, s);
            shard.sink.flush();
        }
        return;
    }
    let in_flight = std::sync::atomic::AtomicUsize::new(0);
    let in_flight = &in_flight;
    rayon::scope(|scope| {
        shards.par_iter_mut().zip(lists.par_iter()).for_each(|(shard, list)| {
            for s in list {
                seg(shard, s);
                for ex in shard.sink.queue.drain(..) {
                    use std::sync::atomic::Ordering::Relaxed;
                    let n = exchange_bytes(&ex);
                    let before = in_flight.load(Relaxed);
                    if n > IN_FLIGHT_MAX / 4 || before + n > IN_FLIGHT_MAX {
                        own_sink(sinks).exchange(ex);
                        continue;
                    }
                    in_flight.fetch_add(n, Relaxed);
                    scope.spawn(move |_| {
                        own_sink(sinks).exchange(ex);
                        in_flight.fetch_sub(n, Relaxed);
                    });
                }
            }
        })
    });
}

/// The shards, the order of entries, and the channel to the writer thread.
struct Engine<'c> {
    cfg: &'c Config,
    pool: &'c rayon::ThreadPool,
    /// Reassembly and HTTP.
    shards: Vec<Shard<Handoff>>,
    /// One sink per worker thread: serialized records, until the next [`Engine::between`].
    sinks: Sinks,
    reorder: Reorder,
    summary: Summary,
    out: Outbox,
}

/// Bytes of released entries on their way to the writer thread, and whether it stopped.
type InFlight = Arc<(Mutex<(usize, bool)>, std::sync::Condvar)>;

/// The writer thread's queue: a few batches, and a few MiB of them at most (one batch, however
/// large, always goes), so that large entries do not pile up in it: four 20 MiB entries would
/// be 80 MiB waiting.
struct Outbox {
    tx: std::sync::mpsc::SyncSender<Vec<Pending>>,
    in_flight: InFlight,
    max_bytes: usize,
}

impl Outbox {
    /// Hands a batch to the writer, waiting while the bytes already handed over would be too
    /// many with it; an error when the writer stopped.
    fn send(&self, batch: Vec<Pending>) -> Result<(), ()> {
        let n: usize = batch.iter().map(Pending::len).sum();
        let (m, cv) = &*self.in_flight;
        let mut g = m.lock().unwrap_or_else(|e| e.into_inner());
        while g.0 > 0 && g.0 + n > self.max_bytes && !g.1 {
            g = cv.wait(g).unwrap_or_else(|e| e.into_inner());
        }
        if g.1 {
            return Err(());
        }
        g.0 += n;
        drop(g);
        self.tx.send(batch).map_err(|_| ())
    }
}

/// The writer's side of [`InFlight`]: gives back the bytes of each batch written, and says
/// when the writer stops (however it stops).
struct ToWriter(InFlight);

impl ToWriter {
    fn done(&self, n: usize) {
        let (m, cv) = &*self.0;
        let mut g = m.lock().unwrap_or_else(|e| e.into_inner());
        g.0 = g.0.saturating_sub(n);
        cv.notify_all();
    }
}

impl Drop for ToWriter {
    fn drop(&mut self) {
        let (m, cv) = &*self.0;
        m.lock().unwrap_or_else(|e| e.into_inner()).1 = true;
        cv.notify_all();
    }
}

/// Shards per worker thread: more shards than threads lets work stealing even out windows
/// where a few connections carry most of the bytes. The output does not depend on it.
const SHARDS_PER_THREAD: usize = 4;

impl<'c> Engine<'c> {
    fn new(
        cfg: &'c Config,
        tls: crate::proto::tls::TlsLimits,
        pool: &'c rayon::ThreadPool,
        out: Outbox,
        har: bool,
        witness: bool,
    ) -> Engine<'c> {
        // The entries of one window are held up to the reorder buffer's cap in all.
        let t = cfg.threads.max(1);
        let sink = || EntrySink { cap: (cfg.reorder_mem / t).max(1), ..EntrySink::with_output(har, witness, &cfg.output) };
        let sinks: Sinks = (0..t).map(|_| Mutex::new(sink())).collect();
        let n = shard_count(cfg);
        let limits = crate::proto::Limits { http: cfg.http, h2: cfg.h2, tls };
        let shards = (0..n).map(|_| Shard::new(cfg.flow, limits.clone(), Handoff { queue: Vec::new(), sinks: sinks.clone() })).collect();
        let reorder = Reorder::new(cfg.reorder_mem, EntrySink::framed(har, witness, &cfg.output));
        Engine { cfg, pool, shards, sinks, reorder, summary: Summary::default(), out }
    }

    /// Between windows: caps across shards, idle connections, and handing what is ready to the
    /// writer. `now` is the latest capture time of the window just processed.
    fn between(&mut self, now: Ts, defrag: &mut Defragmenter, progress: &mut Progress) -> io::Result<()> {
        let flows_before: usize = self.shards.iter().map(|s| s.open_flows()).sum();
        let buffered_before: usize = self.shards.iter().map(|s| s.buffered_bytes()).sum();
        progress.ts = now;
        progress.open_flows = flows_before;
        progress.reassembly_bytes = buffered_before;
        progress.http_bytes = self.shards.iter().map(|s| s.handler_buffered_bytes()).sum();
        progress.tcp = FlowStats::default();
        progress.http = HttpStats::default();
        for sh in &self.shards {
            add_flow(&mut progress.tcp, &sh.stats);
            add_http(&mut progress.http, &sh.proto_stats.http);
        }
        if self.cfg.observe_connections {
            let mut all: Vec<(u64, usize)> = self.shards.iter().flat_map(|s| s.conn_memory()).filter(|c| c.1 > 0).collect();
            all.sort_unstable_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
            all.truncate(10);
            progress.top_connections = all;
        }
        self.summary.peak_flows = self.summary.peak_flows.max(flows_before as u64);
        self.summary.peak_reassembly_bytes = self.summary.peak_reassembly_bytes.max(buffered_before as u64);
        for s in &mut self.shards {
            s.sweep(now);
        }
        defrag.expire(now);
        // Caps that span shards, applied in an order that does not depend on the sharding.
        let flows: usize = self.shards.iter().map(|s| s.open_flows()).sum();
        let buffered: usize = self.shards.iter().map(|s| s.buffered_bytes()).sum();
        (progress.swept_flows, progress.swept_reassembly_bytes) = (flows, buffered);
        let n = self.shards.len() as u64;
        if flows > self.cfg.flow.max_flows {
            let mut all: Vec<(Ts, u64, wire::FlowKey)> =
                self.shards.iter().flat_map(|s| s.conn_usage().into_iter().map(|(k, id, last, _)| (last, id, k))).collect();
            all.sort_unstable();
            for (_, _, key) in all.into_iter().take(flows - self.cfg.flow.max_flows) {
                self.shards[(key.shard_hash() % n) as usize].evict(key, now);
            }
        }
        if buffered > self.cfg.flow.max_ooo_total {
            let mut all: Vec<(std::cmp::Reverse<usize>, u64, wire::FlowKey)> = self
                .shards
                .iter()
                .flat_map(|s| s.conn_usage().into_iter().filter(|u| u.3 > 0).map(|(k, id, _, b)| (std::cmp::Reverse(b), id, k)))
                .collect();
            all.sort_unstable();
            let mut total = buffered;
            for (std::cmp::Reverse(b), _, key) in all {
                if total <= self.cfg.flow.max_ooo_total {
                    break;
                }
                self.shards[(key.shard_hash() % n) as usize].flush_buffers(key, now);
                total -= b;
            }
        }
        let (usage, bodies): (Vec<_>, Vec<usize>) = self.shards.iter().map(|s| s.body_usage()).unzip();
        let bodies: usize = bodies.iter().sum();
        self.summary.peak_body_bytes = self.summary.peak_body_bytes.max(bodies as u64);
        if bodies > self.cfg.http.max_bodies_total {
            // The largest bodies first, as for out-of-order data; a body cut keeps what it
            // holds until its message ends, and is not cut again.
            let mut all: Vec<(std::cmp::Reverse<usize>, u64, wire::FlowKey)> =
                usage.into_iter().flatten().map(|(k, id, b)| (std::cmp::Reverse(b), id, k)).collect();
            all.sort_unstable();
            let mut total = bodies;
            for (std::cmp::Reverse(b), _, key) in all {
                if total <= self.cfg.http.max_bodies_total {
                    break;
                }
                self.shards[(key.shard_hash() % n) as usize].cut_bodies(key);
                total -= b;
            }
        }
        self.collect()?;
        progress.pending_entry_bytes = self.reorder.mem_bytes;
        let pending = self.shards.iter().filter_map(|s| s.pending_start()).min();
        // An exchange in progress holds back later ones for the order window at most.
        let watermark = match pending {
            Some(p) => p.min(now).max(Ts(now.0.saturating_sub(self.cfg.order_window_ns))),
            None => now,
        };
        self.send(Some(watermark))
    }

    /// Releases entries before `watermark` to the writer thread, in batches of a sixteenth of
    /// the reorder buffer's cap (512 KiB by default; entries read back from its file would
    /// otherwise all be in memory at once). Up to six batches are alive (one written, four
    /// waiting, one filled), so small batches keep memory flat when the writer is the slower
    /// side (a real file rather than /dev/null): with quarter batches a 1 GB capture peaked
    /// at 50 MB against 34 MB for 64 MB; with sixteenths, 35 MB. Four may wait so that the
    /// shards do not wait for the writer between windows (with one, 115 ms of a 3.9 s run).
    fn send(&mut self, watermark: Option<Ts>) -> io::Result<()> {
        let max = (self.cfg.reorder_mem / 16).max(1);
        loop {
            let mut batch = Vec::new();
            let more = self.reorder.release(watermark, &mut batch, max);
            if !batch.is_empty() && self.out.send(batch).is_err() {
                // The writer stopped on an error; its result says which.
                return Err(io::Error::other("the writer stopped"));
            }
            if !more {
                return Ok(());
            }
        }
    }

    /// Serializes the exchanges that ended between windows (idle connections, caps), then moves
    /// the sinks' records into the reorder buffer.
    fn collect(&mut self) -> io::Result<()> {
        let shards = &mut self.shards;
        self.pool.install(|| shards.par_iter_mut().for_each(|s| s.sink.flush()));
        // Every entry of the window, from every sink, in key order, the oldest going out at
        // once while the reorder buffer holds more than its cap (any that come after later ones
        // are marked as written late). So what the buffer holds at each step, and what goes out
        // past its cap, depends on the window's entries only: not on which thread's sink an
        // entry landed in, nor on how much a sink could hold in memory (its share of the
        // buffer, which depends on the number of threads).
        let mut sinks: Vec<_> = self.sinks.iter().map(|s| lock(s)).collect();
        let mut index = Vec::new();
        let mut mem = Vec::with_capacity(sinks.len());
        for (i, s) in sinks.iter_mut().enumerate() {
            self.summary.entries_with_anomalies += std::mem::take(&mut s.anomalous);
            mem.push(s.index_entries(i, &mut index)?);
        }
        index.sort_unstable_by_key(|e| e.0);
        let max = (self.cfg.reorder_mem / 16).max(1);
        let (reorder, out) = (&mut self.reorder, &self.out);
        for (key, at) in index {
            let bytes = match at {
                Held::Mem(i, j) => mem[i][j].take().expect("each entry once"),
                Held::File(i, off, len) => Pending::Bytes(sinks[i].read_spilled(off, len)?),
            };
            reorder.push(key, bytes);
            while reorder.mem_bytes > reorder.cap {
                let mut batch = Vec::new();
                reorder.release(Some(Ts(i64::MIN)), &mut batch, max);
                if batch.is_empty() {
                    break;
                }
                out.send(batch).map_err(|_| io::Error::other("the writer stopped"))?;
            }
        }
        for s in &mut sinks {
            s.clear_spilled()?;
        }
        self.summary.peak_pending_entry_bytes = self.summary.peak_pending_entry_bytes.max(self.reorder.peak as u64);
        Ok(())
    }

    /// Ends everything, hands what is left to the writer, and completes the summary.
    fn finish(&mut self, now: Ts, reader: &mut Reader) -> io::Result<()> {
        reader.defrag.finish();
        for s in &mut self.shards {
            s.finish(now);
        }
        self.collect()?;
        self.send(None)?;
        let s = &mut self.summary;
        let r = std::mem::take(&mut reader.summary);
        s.frames = r.frames;
        s.frames_snap_cut = r.frames_snap_cut;
        s.tcp_segments = r.tcp_segments;
        s.unsupported_linktypes = r.unsupported_linktypes;
        s.not_ip = r.not_ip;
        s.not_tcp = r.not_tcp;
        s.malformed = r.malformed;
        s.too_deep = r.too_deep;
        s.ip_fragments = reader.defrag.stats;
        for sh in &self.shards {
            add_flow(&mut s.tcp, &sh.stats);
            add_http(&mut s.http, &sh.proto_stats.http);
            s.protocols += sh.proto_stats.detected;
            s.h2 += sh.proto_stats.h2;
            s.tls += sh.proto_stats.tls;
            let room = crate::proto::tls::MAX_UNDECRYPTED_LISTED.saturating_sub(s.tls_undecrypted.len());
            s.tls_undecrypted.extend(sh.proto_stats.tls_undecrypted.iter().take(room).cloned());
        }
        s.entries_out_of_order = self.reorder.out_of_order;
        for sink in self.sinks.iter() {
            let sink = lock(sink);
            s.entries_spilled += sink.spilled_total;
            s.bytes_spilled += sink.spilled_bytes_total;
            // The sinks' files are emptied together, after each window: their peaks add up.
            s.peak_spill_file_bytes += sink.peak_spill_len;
        }
        s.format = reader.reader.format().to_string();
        for sink in self.sinks.iter() {
            let sink = lock(sink);
            if let Some(e) = sink.emit.as_deref() {
                s.filtered_out += e.filtered;
                s.har_redactions += e.har_redactions;
                if let Some(b) = &e.witness {
                    let w = s.witnesses.get_or_insert_with(WitnessSummary::default);
                    w.without_request += e.without_request;
                    w.ir.add(&b.stats);
                }
            }
        }
        Ok(())
    }
}

fn shard_count(cfg: &Config) -> usize {
    if cfg.threads <= 1 { 1 } else { cfg.threads * SHARDS_PER_THREAD }
}

macro_rules! add_fields {
    ($a:expr, $b:expr, $($f:ident),*) => { $( $a.$f += $b.$f; )* };
}

fn add_flow(a: &mut FlowStats, b: &FlowStats) {
    add_fields!(
        a,
        b,
        segments,
        payload_bytes,
        flows,
        retransmitted_segments,
        late_segments,
        out_of_order_segments,
        overlap_conflicts,
        gaps,
        gap_bytes,
        snaplen_cut_bytes,
        out_of_window_segments,
        ooo_conn_cap_hits,
        ooo_total_cap_hits,
        flow_cap_evictions,
        idle_timeouts,
        closed_fin,
        closed_rst,
        ended_at_capture_end,
        port_reuse,
        stray_syns,
        segments_ignored,
        rst_ignored
    );
    a.ooo_conn_peak_bytes = a.ooo_conn_peak_bytes.max(b.ooo_conn_peak_bytes);
}

fn add_http(a: &mut HttpStats, b: &HttpStats) {
    add_fields!(
        a,
        b,
        requests,
        responses,
        interim_responses,
        exchanges,
        no_response,
        no_request,
        lenient_heads,
        malformed_heads,
        oversized_heads,
        messages_with_gaps,
        incomplete_messages,
        truncated_bodies,
        bodies_cut_by_total,
        body_bytes_dropped,
        body_bytes_not_decoded,
        decode_errors,
        unsupported_codings,
        bad_framing,
        resyncs,
        resync_skipped_bytes,
        tunnels,
        tunnel_bytes,
        http_tunnels,
        non_http_connections,
        unpaired_responses,
        paired_after_loss,
        damaged_by_cap,
        ws_connections,
        ws_messages,
        ws_messages_dropped,
        ws_messages_damaged,
        ws_messages_truncated,
        ws_resyncs,
        ws_bytes_skipped
    );
}

/// What the writer thread hands back: the writers and the number of records it wrote.
type Written<H, V> = (Option<HarWriter<H>>, Option<WitnessWriter<V>>, u64);

/// Writes serialized records (see [`Pending::Bytes`]) to the outputs.
fn write_run<H: Write, V: Write>(
    run: &[Pending],
    framed: bool,
    har: &mut Option<HarWriter<H>>,
    wit: &mut Option<WitnessWriter<V>>,
) -> io::Result<()> {
    fn bytes(p: &Pending) -> &[u8] {
        match p {
            Pending::Bytes(b) => b,
            Pending::Large(_) => unreachable!("a run holds serialized records only"),
        }
    }
    if run.is_empty() {
        return Ok(());
    }
    if !framed {
        let entries: Vec<&[u8]> = run.iter().map(bytes).collect();
        if let Some(h) = har {
            h.entry_batch(&entries)?;
        }
        return Ok(());
    }
    // One pair of slice lists per run (a few per window).
    let mut hars: Vec<&[u8]> = Vec::with_capacity(run.len());
    let mut wits: Vec<(Digest, &[u8])> = Vec::with_capacity(run.len());
    for rec in run {
        let (h, w) = Record::split(bytes(rec));
        hars.push(h);
        wits.extend(w);
    }
    if let Some(h) = har {
        h.entry_batch(&hars)?;
    }
    if let Some(w) = wit {
        w.write_batch(&wits)?;
    }
    Ok(())
}

/// Serializes a large entry straight to the HAR output (its bodies in pieces through `buf`),
/// and writes its witness.
fn write_large<H: Write, V: Write>(
    l: &Large,
    har: &mut Option<HarWriter<H>>,
    wit: &mut Option<WitnessWriter<V>>,
    buf: &mut Vec<u8>,
) -> io::Result<()> {
    if let Some(h) = har {
        let parts = har::entry_parts(&l.ex);
        h.entry_with(|w| parts.write_to_marked(w, buf, if l.late { LATE_MARK } else { b"" }))?;
        *buf = Vec::new();
    }
    if let Some(w) = wit
        && l.witness.len() > 8
    {
        let mut d = [0u8; 8];
        d.copy_from_slice(&l.witness[..8]);
        w.write_batch(&[(Digest(d), &l.witness[8..])])?;
    }
    Ok(())
}

/// Converts captures to HAR with a fixed configuration and thread pool.
pub struct Converter {
    cfg: Config,
    pool: rayon::ThreadPool,
}

impl Converter {
    pub fn new(cfg: Config) -> Converter {
        let threads = cfg.threads.max(1);
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .thread_name(|i| format!("apitool-{i}"))
            .build()
            .expect("a thread pool can be built");
        Converter { cfg, pool }
    }

    pub fn config(&self) -> &Config {
        &self.cfg
    }

    fn reader(&self, reader: FrameReader) -> Reader {
        Reader {
            reader,
            defrag: Defragmenter::new(self.cfg.defrag),
            wire: self.cfg.wire,
            summary: Summary::default(),
            max_ts: Ts(i64::MIN),
            list_caps: vec![0; shard_count(&self.cfg)],
            window_bytes: self.cfg.window_bytes,
            window_frames: self.cfg.window_frames,
        }
    }

    /// Converts one input, writing a HAR document to `out` (from a thread of its own, with
    /// vectored writes: `out` needs no buffering of its own). `progress` is told where the
    /// conversion stands after each window.
    pub fn convert<W: Write + Send>(
        &self,
        input: Input,
        name: &str,
        out: W,
        progress: &mut dyn FnMut(&Progress),
    ) -> Result<(Summary, W), ConvertError> {
        let (s, har, _) = self.convert_to(input, name, Some(out), None::<io::Sink>, progress)?;
        Ok((s, har.expect("a HAR output was given")))
    }

    /// Converts one input to a HAR document (`har`), length-delimited witnesses (`witness`) or
    /// both in one pass; each output is written from the writer thread with vectored writes.
    /// Witnesses come out in the order of the HAR entries; with [`OutputOptions::dedup`] a
    /// witness whose hash was already written is dropped.
    pub fn convert_to<H: Write + Send, V: Write + Send>(
        &self,
        input: Input,
        name: &str,
        har: Option<H>,
        witness: Option<V>,
        progress: &mut dyn FnMut(&Progress),
    ) -> Result<(Summary, Option<H>, Option<V>), ConvertError> {
        // The input's format and first records are checked before a byte is written.
        let source = match input {
            Input::Mapped { map } => {
                check_start(&map)?;
                Source::Mapped(map)
            }
            Input::Stream(mut r) => {
                let mut buf = Vec::with_capacity(self.stream_window());
                let mut eof = false;
                fill(&mut *r, &mut buf, &mut eof, self.stream_window(), 0, &self.cfg)?;
                check_start(&buf)?;
                Source::Stream { r, buf, eof }
            }
        };
        let comment = format!("converted from {name} by apitool");
        let want_har = har.is_some();
        let want_witness = witness.is_some();
        let framed = EntrySink::framed(want_har, want_witness, &self.cfg.output);
        let har = match har {
            Some(out) => Some(HarWriter::new(out, env!("CARGO_PKG_VERSION"), Some(&comment)).map_err(ConvertError::Write)?),
            None => None,
        };
        let wit = witness.map(|w| WitnessWriter::new(w, self.cfg.output.dedup));
        // Released entries go to the writer in batches; up to four wait while one is written.
        let (tx, rx) = std::sync::mpsc::sync_channel::<Vec<Pending>>(4);
        let in_flight: InFlight = Arc::default();
        let written = ToWriter(in_flight.clone());
        let tx = Outbox { tx, in_flight, max_bytes: (self.cfg.reorder_mem / 4).max(1) };
        std::thread::scope(|scope| {
            let writer = std::thread::Builder::new()
                .name("apitool-writer".into())
                .spawn_scoped(scope, move || -> io::Result<Written<H, V>> {
                    let (mut har, mut wit) = (har, wit);
                    let written = written;
                    let mut records = 0u64;
                    let mut buf = Vec::new();
                    for batch in rx {
                        records += batch.len() as u64;
                        let n: usize = batch.iter().map(Pending::len).sum();
                        // Runs of serialized records in one go each, large entries one by one.
                        for run in batch.split_inclusive(|p| matches!(p, Pending::Large(_))) {
                            let (run, large) = match run.split_last() {
                                Some((Pending::Large(l), rest)) => (rest, Some(l)),
                                _ => (run, None),
                            };
                            write_run(run, framed, &mut har, &mut wit)?;
                            if let Some(l) = large {
                                write_large(l, &mut har, &mut wit, &mut buf)?;
                            }
                        }
                        drop(batch);
                        written.done(n);
                    }
                    Ok((har, wit, records))
                })
                .map_err(|e| ConvertError::Write(io::Error::other(e)))?;
            // Keys in the input itself (pcapng Decryption Secrets Blocks, which may come after the
            // packets they unlock): read before the packets, added to the key log given. A
            // stream is not read ahead: the blocks in its first window (where editcap puts
            // them, after the section header) are used.
            let (tls, blocks) = match &source {
                Source::Mapped(map) => crate::proto::tls::keylog::with_secrets_blocks(&self.cfg.tls, map),
                Source::Stream { buf, .. } => crate::proto::tls::keylog::with_secrets_blocks(&self.cfg.tls, buf),
            };
            let mut eng = Engine::new(&self.cfg, tls, &self.pool, tx, want_har, want_witness);
            eng.summary.tls_secrets_blocks = blocks;
            let result = match source {
                Source::Mapped(map) => self.run_mapped(&map, &mut eng, progress),
                Source::Stream { mut r, buf, eof } => self.run_stream(&mut *r, buf, eof, &mut eng, progress),
            };
            let summary = std::mem::take(&mut eng.summary);
            drop(eng);
            let written = writer.join().map_err(|_| ConvertError::Write(io::Error::other("the writer thread panicked")))?;
            let mut summary = Summary { input: name.to_string(), ..summary };
            // Records that could not be read and not one frame before them: a failed input
            // (the outputs are dropped unfinished), not an empty capture.
            let result = match (result, &summary.corrupt) {
                (Ok(()), Some((offset, why))) if summary.frames == 0 => Err(ConvertError::NoFrames { offset: *offset, why: why.clone() }),
                (r, _) => r,
            };
            match (result, written) {
                (Err(ConvertError::Write(_)), Err(e)) | (Ok(()), Err(e)) => Err(ConvertError::Write(e)),
                (Err(e), _) => Err(e),
                (Ok(()), Ok((har, wit, records))) => {
                    summary.entries = har.as_ref().map_or(records, |h| h.entries());
                    let har = match har {
                        Some(h) => Some(h.finish().map_err(ConvertError::Write)?),
                        None => None,
                    };
                    let wit = match wit {
                        Some(w) => {
                            let s = summary.witnesses.get_or_insert_with(WitnessSummary::default);
                            s.written = w.written();
                            s.duplicates = w.duplicates();
                            Some(w.finish().map_err(ConvertError::Write)?)
                        }
                        None => None,
                    };
                    Ok((summary, har, wit))
                }
            }
        })
    }

    /// A memory-mapped capture: decoding of the next window runs while the shards process the
    /// current one; consumed pages are released as we go.
    fn run_mapped(&self, map: &memmap2::Mmap, eng: &mut Engine<'_>, progress: &mut dyn FnMut(&Progress)) -> Result<(), ConvertError> {
        let _ = map.advise(memmap2::Advice::Sequential);
        let data: &[u8] = map;
        let (reader, hl) = FrameReader::open(data)?;
        let mut reader = self.reader(reader);
        eng.summary.bytes = data.len() as u64;
        let mut released = 0usize;
        let mut win = reader.window(data, hl);
        loop {
            let more = matches!(win.end, WindowEnd::Budget);
            let (pos, now) = (win.pos, win.now);
            let next = if more {
                let lists = &win.lists;
                let (next, ()) =
                    self.pool.install(|| rayon::join(|| reader.window(data, pos), || process(&mut eng.shards, lists, &eng.sinks)));
                Some(next)
            } else {
                self.pool.install(|| process(&mut eng.shards, &win.lists, &eng.sinks));
                None
            };
            let end = std::mem::replace(&mut win.end, WindowEnd::End);
            drop(win);
            let mut p = Progress { bytes: pos as u64, ..Progress::default() };
            eng.between(now, &mut reader.defrag, &mut p).map_err(ConvertError::Write)?;
            release_pages(map, &mut released, pos);
            progress(&p);
            if matches!(end, WindowEnd::Budget) && self.cfg.stopped() {
                // The summary counts the bytes read, as for a stream.
                eng.summary.interrupted = true;
                eng.summary.bytes = pos as u64;
                break;
            }
            match end {
                WindowEnd::Budget => {}
                WindowEnd::End => break,
                WindowEnd::NeedMore(_) => {
                    eng.summary.truncated_at = Some(pos as u64);
                    break;
                }
                WindowEnd::Corrupt(why) => {
                    eng.summary.corrupt = Some((pos as u64, why));
                    break;
                }
            }
            win = next.expect("a next window after a full one");
        }
        let now = reader.max_ts.max(Ts(0));
        eng.finish(now, &mut reader).map_err(ConvertError::Write)
    }

    /// Bytes read from a stream before a window is cut from them.
    fn stream_window(&self) -> usize {
        self.cfg.window_bytes + (1 << 20)
    }

    /// A stream: read window by window into a buffer that keeps the unread tail. `buf` holds
    /// its first bytes (all of them when `eof`).
    fn run_stream(
        &self,
        r: &mut dyn Read,
        mut buf: Vec<u8>,
        mut eof: bool,
        eng: &mut Engine<'_>,
        progress: &mut dyn FnMut(&Progress),
    ) -> Result<(), ConvertError> {
        let want = self.stream_window();
        let mut base: u64 = 0; // stream offset of buf[0]
        let (reader, hl) = FrameReader::open(&buf)?;
        let mut reader = self.reader(reader);
        let mut pos = hl;
        loop {
            let win = reader.window(&buf, pos);
            self.pool.install(|| process(&mut eng.shards, &win.lists, &eng.sinks));
            let (p, now, end) = (win.pos, win.now, win.end);
            pos = p;
            let mut p = Progress { bytes: base + pos as u64, ..Progress::default() };
            eng.between(now, &mut reader.defrag, &mut p).map_err(ConvertError::Write)?;
            progress(&p);
            let need_more = match end {
                WindowEnd::Budget => 0,
                WindowEnd::End if eof => break,
                WindowEnd::End => 1,
                WindowEnd::NeedMore(_) if eof => {
                    eng.summary.truncated_at = Some(base + pos as u64);
                    break;
                }
                WindowEnd::NeedMore(k) => k,
                WindowEnd::Corrupt(why) => {
                    eng.summary.corrupt = Some((base + pos as u64, why));
                    break;
                }
            };
            if self.cfg.stopped() {
                // What was read but not yet cut into a window is left unread.
                eng.summary.interrupted = true;
                buf.truncate(pos);
                break;
            }
            // Keep the unread tail, then read on.
            buf.drain(..pos);
            base += pos as u64;
            pos = 0;
            let need = want.max(buf.len() + need_more);
            fill(r, &mut buf, &mut eof, need, base, &self.cfg)?;
        }
        eng.summary.bytes = base + buf.len() as u64;
        let now = reader.max_ts.max(Ts(0));
        eng.finish(now, &mut reader).map_err(ConvertError::Write)
    }
}

/// Tells the kernel that the pages before `upto` will not be read again, so resident memory
/// stays flat however large the capture.
fn release_pages(map: &memmap2::Mmap, released: &mut usize, upto: usize) {
    const PAGE: usize = 4096;
    let end = upto / PAGE * PAGE;
    if end > *released + (1 << 20) {
        // SAFETY: the map is a read-only, file-backed private mapping; dropping its pages only
        // makes a later access read them from the file again. No reference into these pages
        // outlives the window that used them (segments are dropped and retained data is
        // copied before this call).
        unsafe {
            let _ = map.unchecked_advise_range(memmap2::UncheckedAdvice::DontNeed, *released, end - *released);
        }
        *released = end;
    }
}

/// The capture format of an input, without converting it.
pub fn sniff_format(head: &[u8]) -> Result<Format, OpenError> {
    FrameReader::open(head).map(|(r, _)| r.format())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::http1::{Chunk, ConnMeta, Ctx, HttpConn, Side};
    use crate::wire::Endpoint;

    #[test]
    fn entries_past_the_sink_cap_wait_in_a_file_and_come_back_in_order() {
        let ep = |port| Endpoint { ip: [0; 16], port, v6: false };
        let mut conn = HttpConn::new(ConnMeta { id: 1, client: ep(40000), server: ep(80), syn_ts: None, established_ts: None });
        conn.clean_start(Side::Client);
        let mut sink = EntrySink { cap: 4096, ..EntrySink::default() };
        let limits = HttpLimits::default();
        let mut stats = HttpStats::default();
        let reqs: Vec<u8> = (0..100).flat_map(|i| format!("GET /{i} HTTP/1.1\r\n\r\n").into_bytes()).collect();
        let mut cx = Ctx { limits: &limits, stats: &mut stats, sink: &mut sink };
        conn.data(Side::Client, &reqs, Chunk { ts: Ts(1), frame: 1, offset: 0, ack: None }, &mut cx);
        conn.end(true, Ts(2), &mut cx);
        assert!(sink.bytes <= 4096 && !sink.spilled.is_empty());
        for _ in 0..2 {
            let mut got = Vec::new();
            sink.drain(&mut |k, b| {
                got.push((k, b));
                Ok(())
            })
            .unwrap();
            assert_eq!(got.len(), 100);
            for (i, (k, b)) in got.iter().enumerate() {
                assert_eq!(k.index, i as u32);
                let url = format!("\"target\":\"/{i}\"");
                assert!(b.windows(url.len()).any(|w| w == url.as_bytes()), "{}", String::from_utf8_lossy(b));
            }
            assert!(sink.entries.is_empty() && sink.spilled.is_empty() && sink.bytes == 0);
            // The sink is reused window after window.
            for (k, b) in got {
                sink.entries.push((k, Pending::Bytes(b)));
            }
            sink.drain(&mut |_, _| Ok(())).unwrap();
            let mut cx = Ctx { limits: &limits, stats: &mut stats, sink: &mut sink };
            let mut conn = HttpConn::new(ConnMeta { id: 1, client: ep(40000), server: ep(80), syn_ts: None, established_ts: None });
            conn.clean_start(Side::Client);
            conn.data(Side::Client, &reqs, Chunk { ts: Ts(1), frame: 1, offset: 0, ack: None }, &mut cx);
            conn.end(true, Ts(2), &mut cx);
        }
    }

    #[test]
    fn released_entries_go_out_in_bounded_batches() {
        let mut r = Reorder::new(1 << 20, false);
        for i in 0..100u32 {
            r.push(EntryKey { start: Ts(i as i64), conn: 1, index: i }, Pending::Bytes(vec![b'x'; 1000]));
        }
        let mut sizes = Vec::new();
        loop {
            let mut batch = Vec::new();
            let more = r.release(None, &mut batch, 10_000);
            sizes.push(batch.len());
            if !more {
                break;
            }
        }
        assert_eq!(sizes.iter().sum::<usize>(), 100);
        assert!(sizes.iter().all(|&n| n <= 10), "{sizes:?}");
    }

    #[test]
    fn past_the_cap_the_oldest_entries_are_released_before_the_watermark() {
        let mut r = Reorder::new(10_000, false);
        let entry = |n: usize| [&b"{\"_apitool\":{\"x\":\""[..], &vec![b'x'; n - 21], b"\"}}"].concat();
        for i in 0..30u32 {
            r.push(EntryKey { start: Ts(100 + i as i64), conn: 1, index: i }, Pending::Bytes(entry(1000)));
        }
        // Nothing is before the watermark, but 30 000 bytes are held against a 10 000 cap.
        let mut batch = Vec::new();
        while r.release(Some(Ts(50)), &mut batch, 4_000) {}
        assert_eq!(batch.len(), 20, "released down to the cap");
        assert_eq!(r.mem_bytes, 10_000);
        // An entry that starts before those written is late.
        r.push(EntryKey { start: Ts(10), conn: 2, index: 0 }, Pending::Bytes(entry(30)));
        let mut batch = Vec::new();
        while r.release(None, &mut batch, 1 << 20) {}
        assert_eq!(r.out_of_order, 1);
        let v: serde_json::Value = serde_json::from_slice(&batch.remove(0).into_bytes(false)).unwrap();
        assert_eq!(v["_apitool"]["writtenLate"], true);
        let v: serde_json::Value = serde_json::from_slice(&batch.remove(0).into_bytes(false)).unwrap();
        assert_eq!(v["_apitool"].get("writtenLate"), None);
    }

    /// A large entry waits as its exchange and is serialized by the writer, marked late when
    /// it is: the same bytes as the entry serialized in memory.
    #[test]
    fn a_large_entry_is_written_from_its_exchange() {
        use crate::proto::http1::{Message, head};
        let ep = |port| Endpoint { ip: [127, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0], port, v6: false };
        let unit = b"{\"id\": 12345, \"v\": 1}\n";
        let body: Vec<u8> = (0..1_500_000usize).map(|i| unit[i % unit.len()]).collect();
        let msg = |raw: &[u8], request, body| {
            Message::whole(head::parse(raw.to_vec(), request, 100).unwrap(), body, Ts(1_000_000), Ts(2_000_000))
        };
        let ex = || Exchange {
            conn: ConnMeta { id: 7, client: ep(40000), server: ep(80), syn_ts: None, established_ts: None },
            index: 0,
            request: Some(msg(b"GET /big HTTP/1.1\r\nHost: a\r\n\r\n", true, Vec::new())),
            response: Some(msg(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n\r\n", false, body.clone())),
            interim: vec![],
            anomalies: vec![],
            tunnel: None,
            websocket: None,
            h2: None,
            tls: None,
        };
        let mut sink = EntrySink { cap: 64 << 20, ..EntrySink::default() };
        sink.exchange(ex());
        let Some((_, Pending::Large(large))) = sink.entries.pop() else { panic!("a large entry waits as its exchange") };
        let want = har::entry_parts(&ex()).len();
        for late in [false, true] {
            let mut l = Large { ex: ex(), witness: Vec::new(), late: false, held: large.held };
            let mut p = Pending::Large(Box::new(Large { ex: ex(), witness: Vec::new(), late: false, held: large.held }));
            if late {
                p.mark_late(false);
                l.late = true;
            }
            let mut har = Some(HarWriter::new(Vec::new(), "0", None).unwrap());
            let mut wit: Option<WitnessWriter<Vec<u8>>> = None;
            write_large(&l, &mut har, &mut wit, &mut Vec::new()).unwrap();
            let out = har.unwrap().finish().unwrap();
            let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
            let e = &v["log"]["entries"][0];
            assert!(e["response"]["content"]["text"].as_str().unwrap().as_bytes() == &body[..], "the body as text");
            assert_eq!(e["_apitool"].get("writtenLate").is_some(), late);
            // The same bytes as in memory.
            let mem = p.into_bytes(false);
            assert_eq!(mem.len(), want + if late { LATE_MARK.len() } else { 0 });
            let start = out.windows(2).position(|w| w == b"[\n").unwrap() + 2;
            assert!(out[start..start + mem.len()] == mem[..], "the same bytes as in memory");
        }
        assert!(large.held >= body.len() && large.held < body.len() + 4096, "held {}", large.held);
    }

    #[test]
    fn a_late_entry_is_marked_in_its_apitool_object() {
        let mut e = br#"{"a":1,"_apitool":{"flow":1,"anomalies":[]}}"#.to_vec();
        let n = e.len();
        mark_late(&mut e, n);
        let v: serde_json::Value = serde_json::from_slice(&e).unwrap();
        assert_eq!(v["_apitool"]["writtenLate"], true);
        assert_eq!(v["_apitool"]["flow"], 1);
    }
}
