//! Streaming content decoding with a cap on the decoded size.
//!
//! Contract: a [`BodyDecoder`] is built from a message's codings (Content-Encoding, then any
//! Transfer-Encoding other than chunked) and fed the entity bytes in pieces of any size with
//! [`BodyDecoder::push`]; [`BodyDecoder::finish`] ends it. Decoded bytes go into
//! [`BodyDecoder::out`], never more than the cap: past it decoding stops at once (a small
//! compressed body that would expand to gigabytes costs no more than the cap) and the body is
//! marked truncated. A decoding error keeps what was decoded so far; when nothing could be
//! decoded, the still-encoded bytes are kept instead, so no content is lost silently.
//!
//! Supported codings: gzip (x-gzip, several members), deflate (zlib-wrapped or raw, detected
//! from the first bytes), br, zstd (window capped to 8 MiB), identity; stacked in any order.

use flate2::{Decompress, FlushDecompress, Status};

/// A content coding.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Coding {
    Gzip,
    Deflate,
    Brotli,
    Zstd,
}

impl Coding {
    /// Parses one coding name; `None` for identity (and unknown names, reported by
    /// [`parse_codings`]).
    pub fn from_name(name: &[u8]) -> Option<Coding> {
        let n = trim(name);
        if n.eq_ignore_ascii_case(b"gzip") || n.eq_ignore_ascii_case(b"x-gzip") {
            Some(Coding::Gzip)
        } else if n.eq_ignore_ascii_case(b"deflate") {
            Some(Coding::Deflate)
        } else if n.eq_ignore_ascii_case(b"br") {
            Some(Coding::Brotli)
        } else if n.eq_ignore_ascii_case(b"zstd") {
            Some(Coding::Zstd)
        } else {
            None
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Coding::Gzip => "gzip",
            Coding::Deflate => "deflate",
            Coding::Brotli => "br",
            Coding::Zstd => "zstd",
        }
    }
}

pub(crate) fn trim(b: &[u8]) -> &[u8] {
    let s = b.iter().position(|c| !c.is_ascii_whitespace()).unwrap_or(b.len());
    let e = b.iter().rposition(|c| !c.is_ascii_whitespace()).map_or(s, |e| e + 1);
    &b[s..e.max(s)]
}

/// Splits a comma-separated coding list into codings in the order they were applied.
/// Returns the first name that is not understood, if any (identity and chunked are skipped).
pub fn parse_codings<'a>(list: &'a [u8], out: &mut Vec<Coding>) -> Option<&'a [u8]> {
    let mut unknown = None;
    for name in list.split(|&c| c == b',') {
        let n = trim(name);
        if n.is_empty() || n.eq_ignore_ascii_case(b"identity") || n.eq_ignore_ascii_case(b"chunked") {
            continue;
        }
        match Coding::from_name(n) {
            Some(c) => out.push(c),
            None => {
                if unknown.is_none() {
                    unknown = Some(n);
                }
            }
        }
    }
    unknown
}

/// How feeding went.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Flow {
    More,
    /// The cap was reached: stop decoding.
    Full,
}

type Sink<'a> = dyn FnMut(&[u8]) -> Flow + 'a;

const SCRATCH: usize = 16 * 1024;

thread_local! {
    /// Output buffers of finished decoding stages, reused by the next ones on this thread (a
    /// new buffer would be allocated and zeroed for every compressed body otherwise).
    static SCRATCH_POOL: std::cell::RefCell<Vec<Vec<u8>>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// A stage's output buffer, taken from this thread's pool and given back when dropped.
struct Scratch(Vec<u8>);

impl Scratch {
    fn take() -> Scratch {
        let v = SCRATCH_POOL.with(|p| p.borrow_mut().pop()).unwrap_or_else(|| vec![0; SCRATCH]);
        Scratch(v)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let v = std::mem::take(&mut self.0);
        SCRATCH_POOL.with(|p| {
            let mut p = p.borrow_mut();
            if p.len() < 16 {
                p.push(v);
            }
        });
    }
}

impl std::ops::Deref for Scratch {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        &self.0
    }
}

impl std::ops::DerefMut for Scratch {
    fn deref_mut(&mut self) -> &mut [u8] {
        &mut self.0
    }
}

enum Stage {
    Gzip(Box<GzipStage>),
    Deflate(Box<DeflateStage>),
    Brotli(Box<BrotliStage>),
    Zstd(Box<ZstdStage>),
}

impl Stage {
    fn new(c: Coding) -> Result<Stage, String> {
        Ok(match c {
            Coding::Gzip => Stage::Gzip(Box::new(GzipStage::new())),
            Coding::Deflate => {
                Stage::Deflate(Box::new(DeflateStage { inner: None, sniff: Vec::new(), scratch: Scratch::take(), done: false }))
            }
            Coding::Brotli => Stage::Brotli(Box::new(BrotliStage::new())),
            Coding::Zstd => Stage::Zstd(Box::new(ZstdStage::new()?)),
        })
    }

    fn push(&mut self, input: &[u8], next: &mut Sink<'_>) -> Result<Flow, String> {
        match self {
            Stage::Gzip(s) => s.push(input, next),
            Stage::Deflate(s) => s.push(input, next),
            Stage::Brotli(s) => s.push(input, next),
            Stage::Zstd(s) => s.push(input, next),
        }
    }

    /// Ends the stream; an error if it stopped before its end.
    fn finish(&mut self, next: &mut Sink<'_>) -> Result<Flow, String> {
        match self {
            Stage::Gzip(s) => s.finish(next),
            Stage::Deflate(s) => s.finish(next),
            Stage::Brotli(s) => {
                if s.done {
                    Ok(Flow::More)
                } else {
                    Err("br: stream ends early".into())
                }
            }
            Stage::Zstd(s) => {
                if s.frame_done || !s.seen_input {
                    Ok(Flow::More)
                } else {
                    Err("zstd: stream ends early".into())
                }
            }
        }
    }
}

/// Where a deflate stream's output goes: on through a sink (to the next stage, or to the body
/// from a scratch buffer), or straight into the body when the stage is the only one.
trait Output {
    /// One `decompress` call over `input`, its output checksummed into `crc` when given and
    /// passed on. Returns the status, the input used, the bytes produced and the flow.
    fn step(
        &mut self,
        d: &mut Decompress,
        scratch: &mut [u8],
        input: &[u8],
        crc: Option<&mut flate2::Crc>,
    ) -> Result<(Status, usize, usize, Flow), flate2::DecompressError>;
}

/// Runs a raw deflate/zlib `Decompress` over `input` into `out`. Returns the flow, how much
/// input was consumed and whether the stream ended.
fn inflate<O: Output + ?Sized>(
    out: &mut O,
    d: &mut Decompress,
    scratch: &mut [u8],
    mut input: &[u8],
    mut crc: Option<&mut flate2::Crc>,
    what: &str,
) -> Result<(Flow, usize, bool), String> {
    let start_len = input.len();
    loop {
        let (status, used, produced, flow) =
            out.step(d, scratch, input, crc.as_deref_mut()).map_err(|e| format!("{what}: {}", e.message().unwrap_or("invalid data")))?;
        input = &input[used..];
        if flow == Flow::Full {
            return Ok((Flow::Full, start_len - input.len(), false));
        }
        match status {
            Status::StreamEnd => return Ok((Flow::More, start_len - input.len(), true)),
            _ if used == 0 && produced == 0 => return Ok((Flow::More, start_len - input.len(), false)),
            _ => {}
        }
    }
}

impl Output for Sink<'_> {
    fn step(
        &mut self,
        d: &mut Decompress,
        scratch: &mut [u8],
        input: &[u8],
        crc: Option<&mut flate2::Crc>,
    ) -> Result<(Status, usize, usize, Flow), flate2::DecompressError> {
        let (before_in, before_out) = (d.total_in(), d.total_out());
        let r = d.decompress(input, scratch, FlushDecompress::None);
        let used = (d.total_in() - before_in) as usize;
        let produced = (d.total_out() - before_out) as usize;
        if let Some(c) = crc {
            c.update(&scratch[..produced]);
        }
        // What decoded before a data error is passed on too (and counted) before the error.
        let flow = if produced > 0 { self(&scratch[..produced]) } else { Flow::More };
        Ok((r?, used, produced, flow))
    }
}

/// The body's buffer and counters, written by the last stage directly (no copy through a
/// scratch buffer).
struct BodyOut<'a> {
    out: &'a mut Vec<u8>,
    decoded: &'a mut u64,
    truncated: &'a mut bool,
    cap: usize,
}

impl Output for BodyOut<'_> {
    fn step(
        &mut self,
        d: &mut Decompress,
        scratch: &mut [u8],
        input: &[u8],
        crc: Option<&mut flate2::Crc>,
    ) -> Result<(Status, usize, usize, Flow), flate2::DecompressError> {
        let room = self.cap.saturating_sub(self.out.len());
        // Grow by doubling (at least a scratch buffer's worth), never past the cap.
        reserve_capped(self.out, SCRATCH.min(room), self.cap);
        if room == 0 || self.out.capacity() - self.out.len() > room {
            // At the cap (whatever still decodes is past it), or more room than the cap leaves
            // (`decompress_vec` fills all of it): through the scratch buffer and the sink,
            // which keeps only what fits and counts the rest.
            let mut sink = |b: &[u8]| sink(self.out, self.decoded, self.truncated, self.cap, b);
            return (&mut sink as &mut Sink<'_>).step(d, scratch, input, crc);
        }
        // The spare capacity is at most the room left: the cap holds whatever this produces,
        // a data error included (the bytes before it are written and counted all the same).
        let (before_in, before) = (d.total_in(), self.out.len());
        let r = d.decompress_vec(input, self.out, FlushDecompress::None);
        let used = (d.total_in() - before_in) as usize;
        let produced = self.out.len() - before;
        debug_assert!(self.out.len() <= self.cap);
        *self.decoded += produced as u64;
        if let Some(c) = crc {
            c.update(&self.out[before..]);
        }
        Ok((r?, used, produced, Flow::More))
    }
}

struct DeflateStage {
    inner: Option<Decompress>,
    sniff: Vec<u8>,
    scratch: Scratch,
    done: bool,
}

impl DeflateStage {
    fn push<O: Output + ?Sized>(&mut self, input: &[u8], next: &mut O) -> Result<Flow, String> {
        if self.done {
            return Ok(Flow::More);
        }
        if self.inner.is_none() {
            // "deflate" is meant to be zlib-wrapped, but many servers send raw deflate: look at
            // the first two bytes.
            self.sniff.extend_from_slice(input);
            if self.sniff.len() < 2 {
                return Ok(Flow::More);
            }
            let (cmf, flg) = (self.sniff[0], self.sniff[1]);
            let zlib = cmf & 0x0f == 8 && cmf >> 4 <= 7 && ((cmf as u16) << 8 | flg as u16).is_multiple_of(31);
            self.inner = Some(Decompress::new(zlib));
            let data = std::mem::take(&mut self.sniff);
            return self.run(&data, next);
        }
        self.run(input, next)
    }

    fn run<O: Output + ?Sized>(&mut self, input: &[u8], next: &mut O) -> Result<Flow, String> {
        let d = self.inner.as_mut().expect("set before run");
        let (flow, _, end) = inflate(next, d, &mut self.scratch[..], input, None, "deflate")?;
        self.done = end;
        Ok(flow)
    }

    fn finish(&mut self, next: &mut Sink<'_>) -> Result<Flow, String> {
        if self.inner.is_none() && !self.sniff.is_empty() {
            let data = std::mem::take(&mut self.sniff);
            self.inner = Some(Decompress::new(false));
            self.run(&data, next)?;
        }
        if self.done || self.inner.is_none() {
            Ok(Flow::More)
        } else {
            // Many servers omit the end of a deflate stream; what was decoded is complete
            // enough, but say so.
            Err("deflate: stream ends early".into())
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum GzPhase {
    Header,
    Body,
    Trailer,
    /// After a member: another one may follow.
    Between,
}

struct GzipStage {
    phase: GzPhase,
    hdr: Vec<u8>,
    inflater: Decompress,
    crc: flate2::Crc,
    scratch: Scratch,
    members: u32,
}

/// Length of a complete gzip header at the start of `h`, `Ok(None)` when more bytes are needed.
fn gzip_header_len(h: &[u8]) -> Result<Option<usize>, String> {
    if h.len() >= 2 && (h[0] != 0x1f || h[1] != 0x8b) {
        return Err("gzip: not in gzip format".into());
    }
    if h.len() < 10 {
        return Ok(None);
    }
    if h[2] != 8 {
        return Err("gzip: unknown compression method".into());
    }
    let flg = h[3];
    let mut p = 10;
    if flg & 0x04 != 0 {
        if h.len() < p + 2 {
            return Ok(None);
        }
        p += 2 + u16::from_le_bytes([h[p], h[p + 1]]) as usize;
    }
    for bit in [0x08, 0x10] {
        if flg & bit != 0 {
            match h.get(p..).and_then(|r| r.iter().position(|&c| c == 0)) {
                Some(z) => p += z + 1,
                None => return Ok(None),
            }
        }
    }
    if flg & 0x02 != 0 {
        p += 2;
    }
    Ok(if h.len() >= p { Some(p) } else { None })
}

impl GzipStage {
    fn new() -> GzipStage {
        GzipStage {
            phase: GzPhase::Header,
            hdr: Vec::new(),
            inflater: Decompress::new(false),
            crc: flate2::Crc::new(),
            scratch: Scratch::take(),
            members: 0,
        }
    }

    fn push<O: Output + ?Sized>(&mut self, mut input: &[u8], next: &mut O) -> Result<Flow, String> {
        while !input.is_empty() {
            match self.phase {
                GzPhase::Header | GzPhase::Between => {
                    if self.phase == GzPhase::Between && self.hdr.is_empty() && input[0] != 0x1f {
                        // Bytes after the last member that are not another member: ignore
                        // zero padding, complain about anything else.
                        if input.iter().all(|&b| b == 0) {
                            return Ok(Flow::More);
                        }
                        return Err("gzip: trailing garbage after the last member".into());
                    }
                    let take = input.len().min(64 * 1024);
                    self.hdr.extend_from_slice(&input[..take]);
                    input = &input[take..];
                    match gzip_header_len(&self.hdr)? {
                        None => {
                            if self.hdr.len() > 64 * 1024 {
                                return Err("gzip: header too long".into());
                            }
                        }
                        Some(n) => {
                            let rest = self.hdr.split_off(n);
                            self.hdr.clear();
                            self.inflater.reset(false);
                            self.crc.reset();
                            self.phase = GzPhase::Body;
                            if self.push(&rest, next)? == Flow::Full {
                                return Ok(Flow::Full);
                            }
                        }
                    }
                }
                GzPhase::Body => {
                    let (flow, used, end) = inflate(next, &mut self.inflater, &mut self.scratch[..], input, Some(&mut self.crc), "gzip")?;
                    input = &input[used..];
                    if flow == Flow::Full {
                        return Ok(Flow::Full);
                    }
                    if end {
                        self.phase = GzPhase::Trailer;
                    } else if used == 0 {
                        return Ok(Flow::More);
                    }
                }
                GzPhase::Trailer => {
                    let need = 8 - self.hdr.len();
                    let take = need.min(input.len());
                    self.hdr.extend_from_slice(&input[..take]);
                    input = &input[take..];
                    if self.hdr.len() == 8 {
                        let crc = u32::from_le_bytes([self.hdr[0], self.hdr[1], self.hdr[2], self.hdr[3]]);
                        let isize = u32::from_le_bytes([self.hdr[4], self.hdr[5], self.hdr[6], self.hdr[7]]);
                        self.hdr.clear();
                        self.members += 1;
                        self.phase = GzPhase::Between;
                        if crc != self.crc.sum() || isize != self.crc.amount() {
                            return Err("gzip: checksum mismatch".into());
                        }
                    }
                }
            }
        }
        Ok(Flow::More)
    }

    fn finish(&mut self, _next: &mut Sink<'_>) -> Result<Flow, String> {
        match self.phase {
            GzPhase::Between => Ok(Flow::More),
            GzPhase::Header if self.hdr.is_empty() && self.members == 0 => Ok(Flow::More),
            GzPhase::Trailer => Err("gzip: trailer cut short".into()),
            _ => Err("gzip: stream ends early".into()),
        }
    }
}

type BrState = brotli::BrotliState<brotli::HeapAlloc<u8>, brotli::HeapAlloc<u32>, brotli::HeapAlloc<brotli::HuffmanCode>>;

struct BrotliStage {
    state: Box<BrState>,
    scratch: Scratch,
    done: bool,
}

impl BrotliStage {
    fn new() -> BrotliStage {
        // `new_strict` keeps the standard 16 MiB window limit (no large-window streams).
        let state = BrState::new_strict(
            brotli::HeapAlloc::<u8>::new(0),
            brotli::HeapAlloc::<u32>::new(0),
            brotli::HeapAlloc::<brotli::HuffmanCode>::new(brotli::HuffmanCode::default()),
        );
        BrotliStage { state: Box::new(state), scratch: Scratch::take(), done: false }
    }

    fn push(&mut self, input: &[u8], next: &mut Sink<'_>) -> Result<Flow, String> {
        if self.done {
            return if input.is_empty() { Ok(Flow::More) } else { Err("br: data after the end of the stream".into()) };
        }
        let mut avail_in = input.len();
        let mut in_off = 0;
        loop {
            let mut avail_out = self.scratch.len();
            let mut out_off = 0;
            let mut total = 0;
            let r = brotli::BrotliDecompressStream(
                &mut avail_in,
                &mut in_off,
                input,
                &mut avail_out,
                &mut out_off,
                &mut self.scratch[..],
                &mut total,
                &mut self.state,
            );
            if out_off > 0 && next(&self.scratch[..out_off]) == Flow::Full {
                return Ok(Flow::Full);
            }
            match r {
                brotli::BrotliResult::ResultSuccess => {
                    self.done = true;
                    return Ok(Flow::More);
                }
                brotli::BrotliResult::NeedsMoreInput => return Ok(Flow::More),
                brotli::BrotliResult::NeedsMoreOutput => continue,
                brotli::BrotliResult::ResultFailure => return Err("br: invalid data".into()),
            }
        }
    }
}

struct ZstdStage {
    dec: zstd::stream::raw::Decoder<'static>,
    scratch: Scratch,
    frame_done: bool,
    seen_input: bool,
}

impl ZstdStage {
    fn new() -> Result<ZstdStage, String> {
        use zstd::stream::raw::DParameter;
        let mut dec = zstd::stream::raw::Decoder::new().map_err(|e| format!("zstd: {e}"))?;
        // Frames that need a window over 8 MiB are refused rather than allocated.
        dec.set_parameter(DParameter::WindowLogMax(23)).map_err(|e| format!("zstd: {e}"))?;
        Ok(ZstdStage { dec, scratch: Scratch::take(), frame_done: false, seen_input: false })
    }

    fn push(&mut self, input: &[u8], next: &mut Sink<'_>) -> Result<Flow, String> {
        use zstd::stream::raw::{InBuffer, Operation, OutBuffer};
        if !input.is_empty() {
            self.seen_input = true;
        }
        let mut inb = InBuffer::around(input);
        loop {
            let mut outb = OutBuffer::around(&mut self.scratch[..]);
            let r = self.dec.run(&mut inb, &mut outb);
            let produced = outb.pos();
            // What decoded before an error is passed on before the error, as for deflate.
            if produced > 0 && next(&self.scratch[..produced]) == Flow::Full {
                return Ok(Flow::Full);
            }
            let hint = r.map_err(|e| format!("zstd: {e}"))?;
            self.frame_done = hint == 0;
            if inb.pos() >= input.len() && produced < self.scratch.len() {
                return Ok(Flow::More);
            }
        }
    }
}

/// Content codings undone on one body at most. A message that lists more (a hostile head can
/// list tens of thousands, each a decoder with its own buffers and window) is kept encoded,
/// with a decoding error that says why.
pub const MAX_CODINGS: usize = 4;

/// Most room made for a body before its bytes come ([`BodyDecoder::expect`]). A declared
/// length is only a claim: a few thousand connections each declaring a large body, and
/// sending none of it, must not reserve gigabytes (4 MiB each did). Larger bodies grow as
/// their bytes come.
pub const MAX_RESERVE: usize = 64 << 10;

/// Encoded bytes a deferred decoder keeps beyond the cap ([`BodyDecoder::deferred`]): a
/// coding's framing can make the encoded form of a body a little longer than the body (stored
/// deflate blocks, raw zstd and brotli blocks: a few bytes per 64 KiB), so an encoded body
/// slightly over the cap may still decode to one under it.
pub const DEFER_MARGIN: usize = 64 << 10;

/// Decodes one message body, keeping at most `cap` decoded bytes.
pub struct BodyDecoder {
    /// Decoding stages, the first applied to the wire bytes.
    stages: Vec<Stage>,
    /// Decoded bytes (at most the cap).
    pub out: Vec<u8>,
    cap: usize,
    /// The cap was reached: `out` holds only its first `cap` bytes.
    pub truncated: bool,
    /// Bytes decoded in all (including what did not fit under the cap, as far as decoding
    /// went).
    pub decoded_len: u64,
    /// Encoded bytes seen.
    pub encoded_len: u64,
    /// The first decoding error.
    pub error: Option<String>,
    /// Encoded bytes kept until decoding produced output, to fall back on (and, deferred,
    /// the encoded body until [`BodyDecoder::finish`]).
    raw: Vec<u8>,
    raw_overflow: bool,
    stopped: bool,
    /// Codings were asked for (even if no stage could be built for them).
    coded: bool,
    /// Decoding waits for [`BodyDecoder::finish`].
    defer: bool,
    /// [`BodyDecoder::cut`] stopped it.
    cut: bool,
    /// Encoded bytes handed to the decoding stages when decoding stopped at the cap.
    stopped_at: Option<u64>,
    /// [`BodyDecoder::finish`] was called.
    finished: bool,
}

impl BodyDecoder {
    /// A decoder undoing `codings` (listed in the order they were applied).
    pub fn new(codings: &[Coding], cap: usize) -> BodyDecoder {
        let mut stages = Vec::with_capacity(codings.len().min(MAX_CODINGS));
        let mut error = None;
        if codings.len() > MAX_CODINGS {
            error = Some(format!("{} content codings stacked, more than the {MAX_CODINGS} undone", codings.len()));
        } else {
            for &c in codings.iter().rev() {
                match Stage::new(c) {
                    Ok(s) => stages.push(s),
                    Err(e) => error = Some(e),
                }
            }
        }
        BodyDecoder {
            stopped: error.is_some(),
            stages,
            out: Vec::new(),
            cap,
            truncated: false,
            decoded_len: 0,
            encoded_len: 0,
            error,
            raw: Vec::new(),
            raw_overflow: false,
            coded: !codings.is_empty(),
            defer: false,
            cut: false,
            stopped_at: None,
            finished: false,
        }
    }

    /// A decoder that keeps a coded body encoded while it arrives (at most the cap plus
    /// [`DEFER_MARGIN`] of it) and decodes it in [`BodyDecoder::finish`]. A body in progress
    /// then costs its encoded size, which grows only as fast as bytes are captured, however
    /// much it expands: only the message being finished holds its decoded form. A body
    /// without codings is kept as it comes, as by [`BodyDecoder::new`].
    pub fn deferred(codings: &[Coding], cap: usize) -> BodyDecoder {
        let mut d = BodyDecoder::new(codings, cap);
        d.defer = d.coded && !d.stopped;
        d
    }

    /// Makes room for a body whose entity (as sent, before content decoding) is about
    /// `bytes` long: at most the cap, and at most [`MAX_RESERVE`] ahead of time, so that it
    /// does not grow by repeated copies.
    pub fn expect(&mut self, bytes: u64) {
        if self.defer {
            let n = (bytes.min(self.raw_cap() as u64) as usize).min(MAX_RESERVE);
            self.raw.reserve_exact(n);
            return;
        }
        // Compressed bodies decode to several times their size.
        let bytes = if self.coded { bytes.saturating_mul(4) } else { bytes };
        let n = (bytes.min(self.cap as u64) as usize).min(MAX_RESERVE);
        self.out.reserve_exact(n);
    }

    /// Whether any decoding is done at all.
    pub fn is_identity(&self) -> bool {
        !self.coded
    }

    /// Heap bytes this decoder holds for the body (decoded and encoded bytes; not the
    /// decoding stages' own state).
    pub fn held_bytes(&self) -> usize {
        self.out.capacity() + self.raw.capacity()
    }

    /// Whether [`BodyDecoder::cut`] stopped it.
    pub fn was_cut(&self) -> bool {
        self.cut
    }

    /// Stops keeping more of the body (a budget over many bodies was hit): what was kept so
    /// far is the body, marked truncated; later bytes are only counted. Deferred, what was
    /// kept of the encoded body is decoded by [`BodyDecoder::finish`] as usual.
    pub fn cut(&mut self) {
        if self.cut || (self.stopped && !self.defer) {
            return;
        }
        self.cut = true;
        if self.defer {
            self.raw_overflow = true;
        } else {
            self.stopped = true;
            self.truncated = true;
            self.stopped_at.get_or_insert(self.encoded_len);
        }
    }

    /// Bytes of the body, decoded, known to be past what was kept: for a body without
    /// codings, all that came after the cap; for a coded one, what decoded past it before
    /// decoding stopped (a lower bound: the rest was not decoded, see
    /// [`BodyDecoder::undecoded_len`]). Zero when the body was not truncated.
    pub fn dropped_len(&self) -> u64 {
        if !self.truncated {
            return 0;
        }
        if !self.coded || self.fell_back_to_raw() {
            return self.encoded_len.saturating_sub(self.out.len() as u64);
        }
        self.decoded_len.saturating_sub(self.out.len() as u64)
    }

    /// Encoded bytes of a coded body that were never decoded because decoding stopped at the
    /// cap (or at [`BodyDecoder::cut`]): those after the piece of input where it stopped (a
    /// deferred decoder feeds 4 KiB pieces).
    pub fn undecoded_len(&self) -> u64 {
        if !self.coded || self.fell_back_to_raw() {
            return 0;
        }
        self.stopped_at.map_or(0, |at| self.encoded_len.saturating_sub(at))
    }

    fn raw_cap(&self) -> usize {
        self.cap.saturating_add(DEFER_MARGIN)
    }

    /// Feeds encoded bytes.
    pub fn push(&mut self, data: &[u8]) {
        self.encoded_len += data.len() as u64;
        if self.defer {
            if !self.raw_overflow {
                let cap = self.raw_cap();
                keep_upto(&mut self.raw, &mut self.raw_overflow, cap, data);
            }
            return;
        }
        if self.coded && self.decoded_len == 0 && !self.truncated {
            // Until decoding produces output, keep the bytes to fall back on.
            self.keep_raw(data);
        }
        self.decode(data, self.encoded_len);
    }

    /// Runs `data` through the stages; `fed` is the count of encoded bytes handed to them
    /// once this is done.
    fn decode(&mut self, data: &[u8], fed: u64) {
        if self.stopped {
            return;
        }
        let mut out = BodyOut { out: &mut self.out, decoded: &mut self.decoded_len, truncated: &mut self.truncated, cap: self.cap };
        let r = match &mut self.stages[..] {
            // One deflate-family stage (the usual case) decodes straight into the body.
            [Stage::Gzip(s)] => s.push(data, &mut out),
            [Stage::Deflate(s)] => s.push(data, &mut out),
            stages => run_stages(stages, 0, data, &mut |b| sink(out.out, out.decoded, out.truncated, out.cap, b), false),
        };
        if matches!(r, Ok(Flow::Full)) {
            self.stopped_at = Some(fed);
        }
        self.after(r);
    }

    fn keep_raw(&mut self, data: &[u8]) {
        if self.raw_overflow {
            return;
        }
        let cap = self.cap;
        keep_upto(&mut self.raw, &mut self.raw_overflow, cap, data);
    }

    fn after(&mut self, r: Result<Flow, String>) {
        match r {
            Ok(Flow::Full) => self.stopped = true,
            Ok(Flow::More) => {
                if self.decoded_len > 0 && !self.defer {
                    self.raw = Vec::new();
                }
            }
            Err(e) => {
                self.error = Some(e);
                self.stopped = true;
            }
        }
    }

    /// Ends the body. After it, `out` holds the content to show. Calling it again does
    /// nothing.
    pub fn finish(&mut self) {
        if self.finished {
            return;
        }
        self.finished = true;
        if self.defer {
            self.finish_deferred();
            return;
        }
        if !self.stopped && self.encoded_len > 0 {
            self.flush_stages();
        }
        if self.fell_back_to_raw() {
            // Nothing decoded: show the bytes as they came.
            self.out = std::mem::take(&mut self.raw);
            self.truncated = self.raw_overflow;
        }
        self.raw = Vec::new();
        self.stopped = true;
    }

    /// Ends every stage's stream: what the decoders still hold goes to the body.
    fn flush_stages(&mut self) {
        let r = run_stages(
            &mut self.stages,
            0,
            &[],
            &mut |b| sink(&mut self.out, &mut self.decoded_len, &mut self.truncated, self.cap, b),
            true,
        );
        self.after(r);
    }

    /// Decodes the encoded body kept by a deferred decoder.
    fn finish_deferred(&mut self) {
        self.defer = false;
        let raw = std::mem::take(&mut self.raw);
        // A complete gzip body that states a size within the cap: in one call, into a buffer
        // of that size.
        if !self.raw_overflow
            && matches!(self.stages[..], [Stage::Gzip(_)])
            && let Some(out) = super::oneshot::gunzip(&raw, self.cap)
        {
            self.decoded_len = out.len() as u64;
            self.out = out;
            self.stopped = true;
            return;
        }
        // In pieces, so that decoding stops soon after the cap and says where (to within a
        // piece).
        const PIECE: usize = 4 << 10;
        let mut fed = 0u64;
        for piece in raw.chunks(PIECE) {
            fed += piece.len() as u64;
            self.decode(piece, fed);
            if self.stopped {
                break;
            }
        }
        let cut_short = self.raw_overflow && !self.stopped;
        if cut_short {
            // The encoded body was kept only in part (past the cap and its margin, or cut by
            // a budget): what its kept part decodes to is all there is, and the rest is not
            // an error of the stream.
            self.stopped = true;
            self.truncated = true;
            self.stopped_at = Some(raw.len() as u64);
        } else if !self.stopped && self.encoded_len > 0 {
            self.flush_stages();
        }
        if self.fell_back_to_raw() {
            // Nothing decoded: show the bytes as they came, up to the cap.
            let mut raw = raw;
            self.truncated = self.raw_overflow || raw.len() > self.cap;
            raw.truncate(self.cap);
            if raw.capacity() > self.cap {
                raw.shrink_to_fit();
            }
            self.out = raw;
        }
        self.stopped = true;
    }

    /// Whether decoding failed and `out` holds encoded bytes.
    pub fn fell_back_to_raw(&self) -> bool {
        self.error.is_some() && self.decoded_len == 0 && self.coded
    }
}

/// Appends `data` to `buf` up to `cap` bytes in all; sets `overflow` when some did not fit.
fn keep_upto(buf: &mut Vec<u8>, overflow: &mut bool, cap: usize, data: &[u8]) {
    let room = cap.saturating_sub(buf.len());
    let keep = data.len().min(room);
    reserve_capped(buf, keep, cap);
    buf.extend_from_slice(&data[..keep]);
    if data.len() > room {
        *overflow = true;
    }
}

fn sink(out: &mut Vec<u8>, decoded: &mut u64, truncated: &mut bool, cap: usize, b: &[u8]) -> Flow {
    *decoded += b.len() as u64;
    let room = cap.saturating_sub(out.len());
    let keep = b.len().min(room);
    reserve_capped(out, keep, cap);
    out.extend_from_slice(&b[..keep]);
    if b.len() > room {
        *truncated = true;
        return Flow::Full;
    }
    Flow::More
}

/// Makes room for `need` more bytes in `out`, a buffer that never holds more than `cap`:
/// grows by doubling (amortized, as `Vec` does) but never to a capacity past the cap, so a
/// capped body costs at most the cap, not the next power of two above it.
fn reserve_capped(out: &mut Vec<u8>, need: usize, cap: usize) {
    if out.capacity() - out.len() >= need {
        return;
    }
    let want = out.len() + need;
    let target = out.capacity().saturating_mul(2).max(SCRATCH).min(cap).max(want);
    out.reserve_exact(target - out.len());
}

/// Feeds `data` to stage `i`, its output to stage `i + 1`, and so on to `last`.
fn run_stages(stages: &mut [Stage], i: usize, data: &[u8], last: &mut Sink<'_>, finish: bool) -> Result<Flow, String> {
    if i == stages.len() {
        return Ok(if data.is_empty() { Flow::More } else { last(data) });
    }
    let (head, tail) = stages.split_at_mut(i + 1);
    let stage = &mut head[i];
    let mut err: Option<String> = None;
    let mut next = |b: &[u8]| -> Flow {
        match run_stages(tail, 0, b, last, false) {
            Ok(f) => f,
            Err(e) => {
                err = Some(e);
                Flow::Full
            }
        }
    };
    let mut flow = if data.is_empty() { Ok(Flow::More) } else { stage.push(data, &mut next) };
    if finish && matches!(flow, Ok(Flow::More)) {
        flow = stage.finish(&mut next);
        if matches!(flow, Ok(Flow::More)) {
            if let Some(e) = err.take() {
                return Err(e);
            }
            return run_stages(tail, 0, &[], last, true);
        }
    }
    if let Some(e) = err {
        return Err(e);
    }
    flow
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn gzip(data: &[u8]) -> Vec<u8> {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        e.write_all(data).unwrap();
        e.finish().unwrap()
    }
    fn zlib(data: &[u8]) -> Vec<u8> {
        let mut e = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::fast());
        e.write_all(data).unwrap();
        e.finish().unwrap()
    }
    fn raw_deflate(data: &[u8]) -> Vec<u8> {
        let mut e = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::fast());
        e.write_all(data).unwrap();
        e.finish().unwrap()
    }
    fn br(data: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        {
            let mut w = brotli::CompressorWriter::new(&mut out, 4096, 5, 22);
            w.write_all(data).unwrap();
        }
        out
    }
    fn zstd_enc(data: &[u8]) -> Vec<u8> {
        zstd::encode_all(data, 3).unwrap()
    }

    fn sample() -> Vec<u8> {
        (0..50_000u32).flat_map(|i| format!("{{\"id\":{i},\"v\":\"x{}\"}},", i % 97).into_bytes()).collect()
    }

    /// Decodes `enc` fed in pieces of `step` bytes.
    fn decode(codings: &[Coding], enc: &[u8], step: usize, cap: usize) -> BodyDecoder {
        let mut d = BodyDecoder::new(codings, cap);
        for piece in enc.chunks(step.max(1)) {
            d.push(piece);
        }
        d.finish();
        d
    }

    #[test]
    fn every_coding_decodes_at_every_piece_size() {
        let plain = sample();
        let cases: Vec<(Vec<Coding>, Vec<u8>)> = vec![
            (vec![Coding::Gzip], gzip(&plain)),
            (vec![Coding::Deflate], zlib(&plain)),
            (vec![Coding::Deflate], raw_deflate(&plain)),
            (vec![Coding::Brotli], br(&plain)),
            (vec![Coding::Zstd], zstd_enc(&plain)),
            // gzip applied first, then br.
            (vec![Coding::Gzip, Coding::Brotli], br(&gzip(&plain))),
            (vec![Coding::Brotli, Coding::Zstd, Coding::Deflate], raw_deflate(&zstd_enc(&br(&plain)))),
        ];
        for (codings, enc) in &cases {
            for step in [1, 2, 3, 7, 100, 1460, 65_536, usize::MAX] {
                if step < 7 && enc.len() > 20_000 {
                    // Byte-by-byte over the large body is slow in debug builds; the small-step
                    // cases run on a short prefix below.
                    continue;
                }
                let d = decode(codings, enc, step.min(enc.len()), 1 << 30);
                assert_eq!(d.error, None, "{codings:?} step {step}");
                assert!(!d.truncated);
                assert!(d.out == plain, "{codings:?} step {step}: {} vs {}", d.out.len(), plain.len());
            }
        }
        let small = b"{\"hello\":\"world\",\"n\":[1,2,3]}".repeat(3);
        for (codings, enc) in [
            (vec![Coding::Gzip], gzip(&small)),
            (vec![Coding::Brotli], br(&small)),
            (vec![Coding::Zstd], zstd_enc(&small)),
            (vec![Coding::Gzip, Coding::Brotli], br(&gzip(&small))),
        ] {
            for step in 1..8 {
                let d = decode(&codings, &enc, step, 1 << 20);
                assert_eq!(d.out, small, "{codings:?} step {step}");
                assert_eq!(d.error, None);
            }
        }
    }

    #[test]
    fn multi_member_gzip() {
        let mut enc = gzip(b"hello ");
        enc.extend(gzip(b"world"));
        let d = decode(&[Coding::Gzip], &enc, 3, 1000);
        assert_eq!(d.out, b"hello world");
        assert_eq!(d.error, None);
    }

    #[test]
    fn bombs_stop_at_the_cap() {
        let zeros = vec![0u8; 64 << 20];
        for (c, enc) in [(Coding::Gzip, gzip(&zeros)), (Coding::Brotli, br(&zeros)), (Coding::Zstd, zstd_enc(&zeros))] {
            assert!(enc.len() < 1 << 20);
            let d = decode(&[c], &enc, 4096, 1 << 20);
            assert!(d.truncated, "{c:?}");
            assert_eq!(d.out.len(), 1 << 20);
            // Decoding stopped soon after the cap, not at the end of the bomb.
            assert!(d.decoded_len < 2 << 20, "{c:?} decoded {}", d.decoded_len);
        }
    }

    #[test]
    fn errors_keep_what_decoded_or_the_raw_bytes() {
        // Not compressed at all: the raw bytes are kept.
        let d = decode(&[Coding::Gzip], b"plain text", 4, 1000);
        assert!(d.error.is_some());
        assert!(d.fell_back_to_raw());
        assert_eq!(d.out, b"plain text");
        // Cut short: the decoded prefix is kept and the error says so.
        let plain = sample();
        let enc = gzip(&plain);
        let d = decode(&[Coding::Gzip], &enc[..enc.len() / 2], 1000, 1 << 30);
        assert!(d.error.as_deref().unwrap().contains("ends early"));
        assert!(!d.out.is_empty() && plain.starts_with(&d.out));
        // Corrupted checksum.
        let mut enc = gzip(b"abc");
        let n = enc.len();
        enc[n - 8] ^= 1;
        let d = decode(&[Coding::Gzip], &enc, 100, 1000);
        assert_eq!(d.out, b"abc");
        assert!(d.error.as_deref().unwrap().contains("checksum"));
    }

    #[test]
    fn too_many_stacked_codings_are_kept_encoded() {
        // A head may list thousands of codings: no decoder is built for them (each would have
        // its buffers and window), and the body is kept as it came, flagged.
        let mut codings = Vec::new();
        assert_eq!(parse_codings(&b"br,".repeat(40_000), &mut codings), None);
        let body = gzip(b"still encoded");
        let d = decode(&codings, &body, 7, 1000);
        assert!(d.fell_back_to_raw());
        assert!(d.error.as_deref().unwrap().contains("40000 content codings stacked"), "{:?}", d.error);
        assert_eq!(d.out, body);
        let d = decode(&codings, &body, 7, 10);
        assert_eq!((d.out.len(), d.truncated), (10, true));
        // Up to the limit, stacked codings decode.
        let d = decode(&[Coding::Gzip; MAX_CODINGS], &gzip(&gzip(&gzip(&gzip(b"four")))), 3, 100);
        assert_eq!((d.out.as_slice(), d.error), (&b"four"[..], None));
    }

    #[test]
    fn a_declared_length_reserves_little_ahead_of_the_bytes() {
        let mut d = BodyDecoder::new(&[], 16 << 20);
        d.expect(1 << 30);
        assert!(d.out.capacity() <= MAX_RESERVE, "{}", d.out.capacity());
        let mut d = BodyDecoder::new(&[], 100);
        d.expect(1 << 30);
        assert!(d.out.capacity() <= 100 + 16, "{}", d.out.capacity());
    }

    /// The `decode` fuzz target's finding (`fuzz/regressions/decode/raw-deflate-error-past-the-cap`):
    /// raw deflate that decodes two bytes and then hits a data error, under a cap of one byte.
    /// The error returned before the bytes written past the cap were cut and counted.
    #[test]
    fn a_data_error_past_the_cap_keeps_only_the_cap() {
        let enc = [0xaa, 0x4c, 0x01, 0xff];
        for step in 1..=enc.len() {
            let d = decode(&[Coding::Deflate], &enc, step, 1);
            assert_eq!(d.out.len(), 1, "step {step}");
            assert!(d.truncated, "step {step}");
            assert!(d.decoded_len >= 2, "step {step}: {}", d.decoded_len);
        }
        // Stacked, the same stream goes through a scratch buffer to the body.
        let d = decode(&[Coding::Deflate, Coding::Deflate], &raw_deflate(&enc), 3, 1);
        assert_eq!((d.out.len(), d.truncated), (1, true));
    }

    /// Deferred, a coded body is kept encoded until the end (its cost while it arrives is its
    /// encoded size), then decodes as it would have: exactly, within the cap, flagged.
    #[test]
    fn deferred_decoding_keeps_the_encoded_body_until_the_end() {
        let plain = sample();
        let enc = gzip(&plain);
        let mut d = BodyDecoder::deferred(&[Coding::Gzip], 1 << 30);
        for piece in enc.chunks(1000) {
            d.push(piece);
            assert!(d.out.is_empty());
        }
        assert!(d.held_bytes() < 2 * enc.len(), "{}", d.held_bytes());
        d.finish();
        assert!(d.out == plain && d.error.is_none() && !d.truncated);
        // A bomb: the encoded body is small, decoding stops at the cap and says how much of
        // the encoded body it never read.
        let zeros = vec![0u8; 8 << 20];
        let enc = gzip(&zeros);
        let mut d = BodyDecoder::deferred(&[Coding::Gzip], 100_000);
        enc.chunks(1460).for_each(|p| d.push(p));
        d.finish();
        assert_eq!((d.out.len(), d.truncated, d.error.as_deref()), (100_000, true, None));
        assert!(d.undecoded_len() > 0 && d.undecoded_len() < enc.len() as u64, "{}", d.undecoded_len());
        assert!(d.dropped_len() < (1 << 20), "{}", d.dropped_len());
        // An encoded body longer than the cap and its margin: only its start is kept, and what
        // that decodes to is flagged truncated, not an error.
        let noise = plain_body(2, 300_000, 7);
        let enc = gzip(&noise);
        assert!(enc.len() > 10 + DEFER_MARGIN);
        let mut d = BodyDecoder::deferred(&[Coding::Gzip], 10);
        enc.chunks(1460).for_each(|p| d.push(p));
        assert!(d.held_bytes() <= 10 + DEFER_MARGIN);
        d.finish();
        assert_eq!((&d.out[..], d.truncated, d.error.as_deref()), (&noise[..10], true, None));
        // Cut by a budget while it arrives: the part kept decodes, marked.
        let mut d = BodyDecoder::deferred(&[Coding::Gzip], 1 << 30);
        let enc = gzip(&noise);
        d.push(&enc[..enc.len() / 2]);
        d.cut();
        d.push(&enc[enc.len() / 2..]);
        d.finish();
        assert!(d.was_cut() && d.truncated && d.error.is_none());
        assert!(!d.out.is_empty() && noise.starts_with(&d.out));
        assert_eq!(d.undecoded_len(), (enc.len() - enc.len() / 2) as u64);
        // Identity, cut: everything after is dropped, and counted.
        let mut d = BodyDecoder::deferred(&[], 1 << 30);
        d.push(b"0123456789");
        d.cut();
        d.push(b"abc");
        d.finish();
        assert_eq!((&d.out[..], d.truncated, d.dropped_len(), d.undecoded_len()), (&b"0123456789"[..], true, 3, 0));
        // Finishing twice (at a gap, then at the message's end) keeps what the first kept.
        for mut d in [BodyDecoder::new(&[Coding::Gzip], 100), BodyDecoder::deferred(&[Coding::Gzip], 100)] {
            d.push(b"not gzip at all");
            d.finish();
            d.finish();
            assert_eq!((&d.out[..], d.fell_back_to_raw()), (&b"not gzip at all"[..], true));
        }
        // Identity past the cap.
        let d = decode(&[], b"0123456789", 3, 4);
        assert_eq!((&d.out[..], d.truncated, d.dropped_len()), (&b"0123"[..], true, 6));
    }

    /// How a property-test case encodes one layer.
    #[derive(Clone, Copy, Debug)]
    enum Enc {
        Gzip,
        Zlib,
        RawDeflate,
        Br,
        Zstd,
    }

    impl Enc {
        const ALL: [Enc; 5] = [Enc::Gzip, Enc::Zlib, Enc::RawDeflate, Enc::Br, Enc::Zstd];
        fn coding(self) -> Coding {
            match self {
                Enc::Gzip => Coding::Gzip,
                Enc::Zlib | Enc::RawDeflate => Coding::Deflate,
                Enc::Br => Coding::Brotli,
                Enc::Zstd => Coding::Zstd,
            }
        }
        fn encode(self, data: &[u8]) -> Vec<u8> {
            match self {
                Enc::Gzip => gzip(data),
                Enc::Zlib => zlib(data),
                Enc::RawDeflate => raw_deflate(data),
                Enc::Br => br(data),
                Enc::Zstd => zstd_enc(data),
            }
        }
    }

    /// What is done to the encoded stream before it is decoded.
    #[derive(Clone, Copy, Debug)]
    enum Damage {
        None,
        /// Cut at a point (a fraction of its length, in 1/65536).
        Cut(u16),
        /// Bytes after the end of a valid stream.
        Garbage,
        /// One bit flipped somewhere.
        Flip(u16, u8),
    }

    fn damage() -> impl Strategy<Value = Damage> {
        prop_oneof![
            Just(Damage::None),
            any::<u16>().prop_map(Damage::Cut),
            Just(Damage::Garbage),
            (any::<u16>(), 0u8..8).prop_map(|(a, b)| Damage::Flip(a, b)),
        ]
    }

    /// A body of `len` bytes: zeros (the bomb), repeated text, or noise (does not compress).
    fn plain_body(kind: u8, len: usize, seed: u32) -> Vec<u8> {
        const TEXT: &[u8] = b"{\"id\":17,\"name\":\"plain text\"},";
        let mut x = seed | 1;
        (0..len)
            .map(|i| match kind {
                0 => 0,
                1 => TEXT[i % TEXT.len()],
                _ => {
                    x ^= x << 13;
                    x ^= x >> 17;
                    x ^= x << 5;
                    x as u8
                }
            })
            .collect()
    }

    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

        /// The fuzz target's invariant as a property, over every coding, stacks of up to three,
        /// damaged streams, piece splits and caps: the bytes kept never exceed the cap (after
        /// every piece, and with no buffer capacity past it); they are a prefix of the true
        /// decoded body (or of the encoded bytes, when nothing decoded); a valid stream keeps
        /// exactly `min(len, cap)` bytes, flagged truncated when it was longer.
        #[test]
        fn the_cap_holds_exactly(
            kind in 0u8..3,
            len in prop_oneof![0usize..64, 0usize..6000],
            seed in any::<u32>(),
            stack in proptest::collection::vec(proptest::sample::select(Enc::ALL.to_vec()), 0..=3),
            dmg in damage(),
            max_piece in proptest::sample::select(vec![1usize, 2, 7, 100, 1460, 70_000]),
            cap in prop_oneof![0usize..8, 0usize..4096],
            deferred in any::<bool>(),
        ) {
            let plain = plain_body(kind, len, seed);
            let mut enc = plain.clone();
            for e in &stack {
                enc = e.encode(&enc);
            }
            match dmg {
                Damage::None => {}
                Damage::Cut(at) => enc.truncate(enc.len() * at as usize / 65536),
                Damage::Garbage => enc.extend_from_slice(b"\x01garbage after the end"),
                Damage::Flip(at, bit) => {
                    if !enc.is_empty() {
                        let i = enc.len() * at as usize / 65536;
                        enc[i] ^= 1 << bit;
                    }
                }
            }
            // Without codings the body is the bytes as they came, damage included.
            let (plain, dmg) = if stack.is_empty() { (enc.clone(), Damage::None) } else { (plain, dmg) };
            let codings: Vec<Coding> = stack.iter().map(|e| e.coding()).collect();
            let mut d = if deferred { BodyDecoder::deferred(&codings, cap) } else { BodyDecoder::new(&codings, cap) };
            let mut x = seed.rotate_left(7) | 1;
            let mut rest = &enc[..];
            while !rest.is_empty() {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                let n = (x as usize % max_piece + 1).min(rest.len());
                d.push(&rest[..n]);
                rest = &rest[n..];
                prop_assert!(d.out.len() <= cap, "kept {} over the cap {cap} while decoding", d.out.len());
                prop_assert!(d.out.capacity() <= cap, "capacity {} over the cap {cap}", d.out.capacity());
            }
            d.finish();
            prop_assert!(d.out.len() <= cap, "kept {} over the cap {cap}", d.out.len());
            prop_assert!(d.out.capacity() <= cap, "capacity {} over the cap {cap}", d.out.capacity());
            prop_assert_eq!(d.encoded_len, enc.len() as u64);
            if d.truncated {
                prop_assert_eq!(d.out.len(), cap, "truncated short of the cap");
            }
            if d.fell_back_to_raw() {
                prop_assert!(enc.starts_with(&d.out), "the raw bytes kept are not the body's first ones");
            } else {
                prop_assert!(d.decoded_len >= d.out.len() as u64);
                if d.decoded_len > cap as u64 {
                    prop_assert!(d.truncated, "decoded {} past the cap {cap} without saying so", d.decoded_len);
                }
                if !matches!(dmg, Damage::Flip(..)) {
                    prop_assert!(plain.starts_with(&d.out), "kept bytes are not a prefix of the decoded body");
                }
            }
            if matches!(dmg, Damage::None) {
                prop_assert_eq!(&d.error, &None);
                prop_assert_eq!(&d.out[..], &plain[..plain.len().min(cap)]);
                prop_assert_eq!(d.truncated, plain.len() > cap);
            }
        }
    }

    #[test]
    fn coding_lists() {
        let mut v = Vec::new();
        assert_eq!(parse_codings(b"gzip, identity ,br", &mut v), None);
        assert_eq!(v, vec![Coding::Gzip, Coding::Brotli]);
        v.clear();
        assert_eq!(parse_codings(b"compress, gzip", &mut v), Some(&b"compress"[..]));
        assert_eq!(v, vec![Coding::Gzip]);
    }
}
