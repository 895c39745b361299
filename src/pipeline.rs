//! The conversion pipeline: a capture in, HAR entries out, in bounded memory.
//!
//! The capture is processed as a stream of windows (a few MiB of records each). Within a
//! window, frames are decoded in order and their segments dealt to shards by connection; the
//! shards then run in parallel (rayon), each owning its connections. Between windows, the
//! caps that span shards are applied, idle connections end, and finished entries whose start
//! is before every exchange still in progress are written in order (start time, connection,
//! position). Entries waiting for their turn are held serialized, and spill to a temporary file
//! past a memory cap. Nothing here depends on the number of threads: the output is the same
//! bytes whatever it is.

use std::collections::BTreeMap;
use std::io::{self, Read, Seek, SeekFrom, Write};

use rayon::prelude::*;
use serde::Serialize;

use crate::capture::{Format, Frame, FrameReader, Input, Next, OpenError, Ts};
use crate::flow::{FlowLimits, FlowStats, Shard};
use crate::http::{Exchange, ExchangeSink, HttpLimits, HttpStats};
use crate::out::har::{self, EntryKey, HarWriter};
use crate::wire::defrag::{DefragLimits, DefragStats, Defragmenter};
use crate::wire::{self, Decoded, Skip, TcpSegment};

/// Everything that shapes a conversion.
#[derive(Clone, Debug)]
pub struct Config {
    pub flow: FlowLimits,
    pub http: HttpLimits,
    pub defrag: DefragLimits,
    /// Worker threads (at least 1).
    pub threads: usize,
    /// Capture bytes per window.
    pub window_bytes: usize,
    /// Frames per window.
    pub window_frames: usize,
    /// Serialized entries held in memory while waiting for their turn; more spill to a
    /// temporary file.
    pub reorder_mem: usize,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            flow: FlowLimits::default(),
            http: HttpLimits::default(),
            defrag: DefragLimits::default(),
            threads: std::thread::available_parallelism().map_or(1, |n| n.get()),
            window_bytes: 8 << 20,
            window_frames: 65_536,
            reorder_mem: 16 << 20,
        }
    }
}

/// What happened while converting one input.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Summary {
    pub input: String,
    pub format: String,
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
    pub entries: u64,
    pub entries_with_anomalies: u64,
    /// Entries written after a later-starting one (capture time going backwards).
    pub entries_out_of_order: u64,
    /// Entries that waited in the temporary file.
    pub entries_spilled: u64,
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
}

/// Why an input could not be converted at all.
#[derive(Debug, thiserror::Error)]
pub enum ConvertError {
    #[error("{0}")]
    Open(#[from] OpenError),
    #[error("read error at byte {offset}: {source}")]
    Read { offset: u64, source: io::Error },
    #[error("write error: {0}")]
    Write(io::Error),
}

/// Collects the entries a shard produces, serialized.
#[derive(Default)]
pub struct EntrySink {
    entries: Vec<(EntryKey, Vec<u8>)>,
    anomalous: u64,
}

impl ExchangeSink for EntrySink {
    fn exchange(&mut self, ex: Exchange) {
        let key = har::entry_key(&ex);
        if har::is_damaged(&ex.anomalies) {
            self.anomalous += 1;
        }
        let mut buf = Vec::with_capacity(1024 + ex.response.as_ref().map_or(0, |r| r.body.len() * 4 / 3));
        har::write_entry(&mut buf, &ex);
        self.entries.push((key, buf));
    }
}

/// Holds serialized entries until every earlier one is known.
struct Reorder {
    mem: BTreeMap<EntryKey, Vec<u8>>,
    mem_bytes: usize,
    cap: usize,
    spill: Option<std::fs::File>,
    spill_len: u64,
    spilled: BTreeMap<EntryKey, (u64, u32)>,
    last: Option<EntryKey>,
    out_of_order: u64,
    spilled_total: u64,
    peak: usize,
}

impl Reorder {
    fn new(cap: usize) -> Reorder {
        Reorder {
            mem: BTreeMap::new(),
            mem_bytes: 0,
            cap,
            spill: None,
            spill_len: 0,
            spilled: BTreeMap::new(),
            last: None,
            out_of_order: 0,
            spilled_total: 0,
            peak: 0,
        }
    }

    fn push(&mut self, key: EntryKey, bytes: Vec<u8>) -> io::Result<()> {
        if self.mem_bytes + bytes.len() > self.cap && bytes.len() <= u32::MAX as usize {
            // Spill: the file keeps the bytes, memory keeps where they are.
            if self.spill.is_none() {
                self.spill = Some(tempfile::tempfile()?);
            }
            let f = self.spill.as_mut().expect("created above");
            f.seek(SeekFrom::Start(self.spill_len))?;
            f.write_all(&bytes)?;
            self.spilled.insert(key, (self.spill_len, bytes.len() as u32));
            self.spill_len += bytes.len() as u64;
            self.spilled_total += 1;
            return Ok(());
        }
        self.mem_bytes += bytes.len();
        self.peak = self.peak.max(self.mem_bytes);
        self.mem.insert(key, bytes);
        Ok(())
    }

    /// Writes every entry that starts before `watermark` (all of them for `None`).
    fn release<W: Write>(&mut self, watermark: Option<Ts>, out: &mut HarWriter<W>) -> io::Result<()> {
        loop {
            let a = self.mem.first_key_value().map(|(k, _)| *k);
            let b = self.spilled.first_key_value().map(|(k, _)| *k);
            let key = match (a, b) {
                (Some(a), Some(b)) => a.min(b),
                (Some(a), None) => a,
                (None, Some(b)) => b,
                (None, None) => break,
            };
            if watermark.is_some_and(|w| key.start >= w) {
                break;
            }
            if self.last.is_some_and(|l| key < l) {
                self.out_of_order += 1;
            }
            self.last = Some(key);
            if Some(key) == a {
                let bytes = self.mem.remove(&key).expect("present");
                self.mem_bytes -= bytes.len();
                out.entry(&bytes)?;
            } else {
                let (off, len) = self.spilled.remove(&key).expect("present");
                let f = self.spill.as_mut().expect("spilled entries have a file");
                f.seek(SeekFrom::Start(off))?;
                let mut buf = vec![0; len as usize];
                f.read_exact(&mut buf)?;
                out.entry(&buf)?;
            }
        }
        if self.spilled.is_empty() && self.spill_len > 0 {
            // Everything spilled was written: start the file over.
            if let Some(f) = self.spill.as_mut() {
                f.set_len(0)?;
            }
            self.spill_len = 0;
        }
        Ok(())
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

/// One conversion in progress.
struct Engine<'c> {
    cfg: &'c Config,
    pool: &'c rayon::ThreadPool,
    reader: FrameReader,
    defrag: Defragmenter,
    shards: Vec<Shard<EntrySink>>,
    reorder: Reorder,
    summary: Summary,
    max_ts: Ts,
    list_caps: Vec<usize>,
}

impl<'c> Engine<'c> {
    fn new(cfg: &'c Config, pool: &'c rayon::ThreadPool, reader: FrameReader) -> Engine<'c> {
        let n = cfg.threads.max(1);
        let shards = (0..n).map(|_| Shard::new(cfg.flow, cfg.http, EntrySink::default())).collect();
        Engine {
            cfg,
            pool,
            reader,
            defrag: Defragmenter::new(cfg.defrag),
            shards,
            reorder: Reorder::new(cfg.reorder_mem),
            summary: Summary::default(),
            max_ts: Ts(i64::MIN),
            list_caps: vec![0; n],
        }
    }

    /// Reads records from `buf[pos..]` within the window budget and runs them through the
    /// shards. Returns the new position and why it stopped.
    fn window(&mut self, buf: &[u8], mut pos: usize) -> (usize, WindowEnd) {
        let n = self.shards.len();
        let mut lists: Vec<Vec<SegRef<'_>>> = self.list_caps.iter().map(|&c| Vec::with_capacity(c)).collect();
        let start = pos;
        let mut frames = 0;
        let end = loop {
            if pos >= buf.len() {
                break WindowEnd::End;
            }
            if pos - start >= self.cfg.window_bytes || frames >= self.cfg.window_frames {
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
        let run = |shard: &mut Shard<EntrySink>, list: &Vec<SegRef<'_>>| {
            for s in list {
                match s {
                    SegRef::Borrowed(seg) => shard.segment(seg),
                    SegRef::Owned(b) => {
                        let (seg, data) = &**b;
                        let seg = TcpSegment { payload: data, ..*seg };
                        shard.segment(&seg);
                    }
                }
            }
        };
        if n == 1 {
            run(&mut self.shards[0], &lists[0]);
        } else {
            let shards = &mut self.shards;
            self.pool.install(|| shards.par_iter_mut().zip(lists.par_iter()).for_each(|(s, l)| run(s, l)));
        }
        (pos, end)
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
        match wire::decode(f) {
            Decoded::Tcp(seg) => {
                s.tcp_segments += 1;
                let i = (seg.key.shard_hash() % n as u64) as usize;
                lists[i].push(SegRef::Borrowed(seg));
            }
            Decoded::Fragment(frag) => {
                if let Some(payload) = self.defrag.push(f.ts, &frag) {
                    match wire::decode_reassembled(f.index, f.ts, &frag, &payload) {
                        Decoded::Tcp(seg) => {
                            s.tcp_segments += 1;
                            let i = (seg.key.shard_hash() % n as u64) as usize;
                            let owned = TcpSegment { payload: &[], ..seg };
                            // The segment's payload is a slice of the datagram: keep its range.
                            let off = seg.payload.as_ptr() as usize - payload.as_ptr() as usize;
                            let data = payload[off..off + seg.payload.len()].to_vec();
                            lists[i].push(SegRef::Owned(Box::new((owned, data))));
                        }
                        Decoded::Skip(k) => self.skip(k),
                        Decoded::Fragment(_) => self.skip(Skip::TooDeep),
                    }
                }
            }
            Decoded::Skip(k) => self.skip(k),
        }
    }

    fn skip(&mut self, k: Skip) {
        let s = &mut self.summary;
        match k {
            Skip::UnsupportedLinktype(lt) => *s.unsupported_linktypes.entry(lt).or_default() += 1,
            Skip::NotIp => s.not_ip += 1,
            Skip::NotTcp => s.not_tcp += 1,
            Skip::Malformed(layer) => *s.malformed.entry(layer).or_default() += 1,
            Skip::TooDeep => s.too_deep += 1,
        }
    }

    /// Between windows: caps across shards, idle connections, and writing what is ready.
    fn between<W: Write>(&mut self, out: &mut HarWriter<W>) -> io::Result<()> {
        let now = self.max_ts;
        let flows_before: usize = self.shards.iter().map(|s| s.open_flows()).sum();
        let buffered_before: usize = self.shards.iter().map(|s| s.buffered_bytes()).sum();
        self.summary.peak_flows = self.summary.peak_flows.max(flows_before as u64);
        self.summary.peak_reassembly_bytes = self.summary.peak_reassembly_bytes.max(buffered_before as u64);
        for s in &mut self.shards {
            s.sweep(now);
        }
        self.defrag.expire(now);
        // Caps that span shards, applied in an order that does not depend on the sharding.
        let flows: usize = self.shards.iter().map(|s| s.open_flows()).sum();
        let buffered: usize = self.shards.iter().map(|s| s.buffered_bytes()).sum();
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
        self.collect()?;
        let pending = self.shards.iter().filter_map(|s| s.pending_start()).min();
        let watermark = match pending {
            Some(p) => p.min(now),
            None => now,
        };
        self.reorder.release(Some(watermark), out)
    }

    /// Moves the shards' finished entries into the reorder buffer.
    fn collect(&mut self) -> io::Result<()> {
        for s in &mut self.shards {
            self.summary.entries_with_anomalies += std::mem::take(&mut s.sink.anomalous);
            for (k, b) in s.sink.entries.drain(..) {
                self.reorder.push(k, b)?;
            }
        }
        self.summary.peak_pending_entry_bytes = self.summary.peak_pending_entry_bytes.max(self.reorder.peak as u64);
        Ok(())
    }

    /// Ends everything and writes what is left.
    fn finish<W: Write>(&mut self, out: &mut HarWriter<W>) -> io::Result<()> {
        let now = self.max_ts.max(Ts(0));
        self.defrag.finish();
        for s in &mut self.shards {
            s.finish(now);
        }
        self.collect()?;
        self.reorder.release(None, out)?;
        let s = &mut self.summary;
        s.ip_fragments = self.defrag.stats;
        for sh in &self.shards {
            add_flow(&mut s.tcp, &sh.stats);
            add_http(&mut s.http, &sh.http_stats);
        }
        s.entries = out.entries();
        s.entries_out_of_order = self.reorder.out_of_order;
        s.entries_spilled = self.reorder.spilled_total;
        s.format = self.reader.format().to_string();
        Ok(())
    }
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
        segments_ignored,
        rst_ignored
    );
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
        decode_errors,
        unsupported_codings,
        bad_framing,
        resyncs,
        resync_skipped_bytes,
        tunnels,
        tunnel_bytes,
        non_http_connections
    );
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

    /// Converts one input, writing a HAR document to `out`. `progress` is told the number of
    /// input bytes consumed so far, after each window.
    pub fn convert<W: Write>(&self, input: Input, name: &str, out: W, progress: &mut dyn FnMut(u64)) -> Result<(Summary, W), ConvertError> {
        let comment = format!("converted from {name} by apitool");
        match input {
            Input::Mapped { map } => {
                // Sequential reading; pages already consumed are dropped as we go.
                let _ = map.advise(memmap2::Advice::Sequential);
                let data: &[u8] = &map;
                let (reader, hl) = FrameReader::open(data)?;
                let mut har = HarWriter::new(out, env!("CARGO_PKG_VERSION"), Some(&comment)).map_err(ConvertError::Write)?;
                let mut eng = Engine::new(&self.cfg, &self.pool, reader);
                eng.summary.input = name.to_string();
                eng.summary.bytes = data.len() as u64;
                let mut pos = hl;
                let mut released = 0usize;
                loop {
                    let (p, end) = eng.window(data, pos);
                    pos = p;
                    eng.between(&mut har).map_err(ConvertError::Write)?;
                    release_pages(&map, &mut released, pos);
                    progress(pos as u64);
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
                }
                eng.finish(&mut har).map_err(ConvertError::Write)?;
                let w = har.finish().map_err(ConvertError::Write)?;
                Ok((eng.summary, w))
            }
            Input::Stream(mut r) => self.convert_stream(&mut *r, name, out, &comment, progress),
        }
    }

    fn convert_stream<W: Write>(
        &self,
        r: &mut dyn Read,
        name: &str,
        out: W,
        comment: &str,
        progress: &mut dyn FnMut(u64),
    ) -> Result<(Summary, W), ConvertError> {
        let want = self.cfg.window_bytes + (1 << 20);
        let mut buf: Vec<u8> = Vec::with_capacity(want);
        let mut eof = false;
        let mut base: u64 = 0; // stream offset of buf[0]
        let mut fill = |buf: &mut Vec<u8>, eof: &mut bool, need: usize, base: u64| -> Result<(), ConvertError> {
            if !*eof && buf.len() < need {
                // Reads into the spare capacity (nothing is zeroed first) until `need` bytes
                // are there or the input ends.
                let old = buf.len();
                let want = (need - old) as u64;
                buf.reserve(need - old);
                match (&mut *r).take(want).read_to_end(buf) {
                    Ok(k) if (k as u64) < want => *eof = true,
                    Ok(_) => {}
                    Err(e) => return Err(ConvertError::Read { offset: base + buf.len() as u64, source: e }),
                }
            }
            Ok(())
        };
        fill(&mut buf, &mut eof, want, base)?;
        let (reader, hl) = FrameReader::open(&buf)?;
        let mut har = HarWriter::new(out, env!("CARGO_PKG_VERSION"), Some(comment)).map_err(ConvertError::Write)?;
        let mut eng = Engine::new(&self.cfg, &self.pool, reader);
        eng.summary.input = name.to_string();
        let mut pos = hl;
        loop {
            let (p, end) = eng.window(&buf, pos);
            pos = p;
            eng.between(&mut har).map_err(ConvertError::Write)?;
            progress(base + pos as u64);
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
            // Keep the unread tail, then read on.
            buf.drain(..pos);
            base += pos as u64;
            pos = 0;
            let need = want.max(buf.len() + need_more);
            fill(&mut buf, &mut eof, need, base)?;
        }
        eng.summary.bytes = base + buf.len() as u64;
        eng.finish(&mut har).map_err(ConvertError::Write)?;
        let w = har.finish().map_err(ConvertError::Write)?;
        Ok((eng.summary, w))
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
