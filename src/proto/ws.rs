//! WebSocket framing (RFC 6455) with `permessage-deflate` (RFC 7692), one direction of a
//! connection at a time, from the reassembled byte stream after the `101` handshake.
//!
//! # Contract
//!
//! - [`WsDirection::push`] takes the stream's bytes in any pieces (frame headers and payloads
//!   split anywhere) and hands on every complete message: text and binary messages reassembled
//!   from their fragments (control frames between fragments come out on their own, first),
//!   close, ping and pong frames as messages of their own. Payloads are unmasked; compressed
//!   messages are inflated (one inflater per direction kept across messages unless
//!   `*_no_context_takeover` was negotiated).
//! - **The decoded size is capped** by [`WsLimits::max_message`] per message: the bytes kept
//!   never exceed it, [`WsMessage::size`] still counts them all and `truncated` says so.
//!   Decoding past the cap goes on (with context takeover the next messages need the window)
//!   up to [`WsLimits::max_inflate`] per message, then stops, and the context is lost.
//! - **Never a message that was not one.** A gap inside a frame's payload keeps the framing
//!   (the gap's length is known): that message comes out marked [`Damage::Gap`] with the bytes
//!   before the gap. A gap across a frame header loses the framing: the message in progress
//!   comes out damaged, and parsing starts again only at the start of a later piece where a
//!   chain of frame headers verifies (valid opcodes, reserved bits, mask bit for the direction,
//!   minimal lengths, fragmentation order; two headers ending exactly at a piece boundary, or
//!   four in a row). Bytes skipped meanwhile are counted.
//! - **Compressed messages after a loss are exact or marked.** When the inflater's history is
//!   lost (a gap in a compressed message, a decoding error, a message past
//!   [`WsLimits::max_inflate`]), later compressed messages are inflated with an empty history:
//!   a message that refers back to what was lost fails to inflate ("invalid distance too far
//!   back") and is marked [`Damage::ContextLost`]; one that inflates is exactly what was sent.
//! - No allocation per byte; memory is the message in progress (at most the cap), the inflater
//!   (about 40 KiB while compressed messages flow) and, while resynchronising, a bounded scan
//!   buffer of [`RESYNC_WINDOW`] bytes.

use std::fmt;

use flate2::{Decompress, FlushDecompress, Status};

use crate::capture::Ts;

/// Continuation frame.
pub const OP_CONTINUATION: u8 = 0;
/// Text message (UTF-8).
pub const OP_TEXT: u8 = 1;
/// Binary message.
pub const OP_BINARY: u8 = 2;
/// Close (status code and reason).
pub const OP_CLOSE: u8 = 8;
/// Ping.
pub const OP_PING: u8 = 9;
/// Pong.
pub const OP_PONG: u8 = 10;

/// Bytes held at most while looking for the framing again after a gap.
pub const RESYNC_WINDOW: usize = 256 * 1024;

/// Piece starts remembered at most in the scan buffer.
const MAX_PIECE_STARTS: usize = 4096;

/// The deflate tail that RFC 7692 senders remove from each compressed message.
const DEFLATE_TAIL: [u8; 4] = [0x00, 0x00, 0xff, 0xff];

/// Scratch buffer for inflating.
const SCRATCH: usize = 16 * 1024;

/// What `permessage-deflate` settles for one direction.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Deflate {
    /// The sender starts each message with an empty window (`*_no_context_takeover`).
    pub no_context_takeover: bool,
    /// The sender's LZ77 window, 8 to 15 bits (`*_max_window_bits`); 15 when not negotiated.
    /// Decoding uses a full window, which any smaller window's output also decodes with.
    pub max_window_bits: u8,
}

/// The extensions the server accepted in its `101` (`Sec-WebSocket-Extensions`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Extensions {
    /// `permessage-deflate` for [client → server, server → client], when accepted.
    pub deflate: Option<[Deflate; 2]>,
    /// Another extension that may use the reserved bits (e.g. `x-webkit-deflate-frame`):
    /// messages with RSV1 set are then kept as they came, marked [`Damage::Unsupported`].
    pub other: Option<String>,
}

impl Extensions {
    /// Reads the server's `Sec-WebSocket-Extensions` values (every header line of that name,
    /// in order). The server accepts at most one `permessage-deflate` offer; a malformed
    /// parameter makes the extension unusable, which is said as `other`.
    pub fn from_response<'a>(values: impl IntoIterator<Item = &'a [u8]>) -> Extensions {
        let mut ext = Extensions::default();
        for value in values {
            let value = String::from_utf8_lossy(value);
            for offer in split_outside_quotes(&value, ',') {
                let mut params = split_outside_quotes(offer, ';').into_iter().map(str::trim);
                let name = params.next().unwrap_or("").to_ascii_lowercase();
                if name.is_empty() {
                    continue;
                }
                if name != "permessage-deflate" || ext.deflate.is_some() {
                    ext.other.get_or_insert(name);
                    continue;
                }
                match parse_deflate(params) {
                    Some(d) => ext.deflate = Some(d),
                    None => {
                        ext.other.get_or_insert_with(|| "permessage-deflate (malformed)".into());
                    }
                }
            }
        }
        ext
    }
}

fn split_outside_quotes(s: &str, sep: char) -> Vec<&str> {
    let mut out = Vec::new();
    let (mut start, mut quoted) = (0, false);
    for (i, c) in s.char_indices() {
        if c == '"' {
            quoted = !quoted;
        } else if c == sep && !quoted {
            out.push(&s[start..i]);
            start = i + 1;
        }
    }
    out.push(&s[start..]);
    out
}

fn parse_deflate<'a>(params: impl Iterator<Item = &'a str>) -> Option<[Deflate; 2]> {
    let full = Deflate { no_context_takeover: false, max_window_bits: 15 };
    let (mut client, mut server) = (full, full);
    for p in params {
        if p.is_empty() {
            continue;
        }
        let (key, value) = match p.split_once('=') {
            Some((k, v)) => (k.trim().to_ascii_lowercase(), Some(v.trim().trim_matches('"'))),
            None => (p.to_ascii_lowercase(), None),
        };
        let bits = |v: Option<&str>| -> Option<u8> {
            let b: u8 = v?.parse().ok()?;
            (8..=15).contains(&b).then_some(b)
        };
        match key.as_str() {
            "client_no_context_takeover" if value.is_none() => client.no_context_takeover = true,
            "server_no_context_takeover" if value.is_none() => server.no_context_takeover = true,
            "client_max_window_bits" => client.max_window_bits = bits(value)?,
            "server_max_window_bits" => server.max_window_bits = bits(value)?,
            _ => return None,
        }
    }
    Some([client, server])
}

/// Limits for one direction.
#[derive(Clone, Copy, Debug)]
pub struct WsLimits {
    /// Decoded bytes kept per message (`--max-body`); the rest is counted.
    pub max_message: usize,
    /// Decoded bytes inflated at most per compressed message, kept or not, so that a
    /// compression bomb costs bounded time; past it the inflater's history is lost.
    pub max_inflate: u64,
}

impl Default for WsLimits {
    fn default() -> Self {
        WsLimits { max_message: 16 << 20, max_inflate: 256 << 20 }
    }
}

/// Why a message is not exactly what was sent.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Damage {
    /// Bytes of the message were not captured; `data` holds what came before them.
    Gap { missing: u64 },
    /// The framing was lost inside the message (a gap across a frame header).
    FramingLost,
    /// The stream ended inside the message.
    Unfinished,
    /// The compressed payload did not inflate; `data` holds what inflated before the error.
    Inflate(String),
    /// The message refers back to compressed history that was lost earlier.
    ContextLost,
    /// Compressed by an extension this parser does not decode; `data` is the payload as sent.
    Unsupported(String),
    /// A frame broke the protocol (a continuation without a message, a message inside one).
    Protocol(&'static str),
}

impl fmt::Display for Damage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Damage::Gap { missing } => write!(f, "{missing} bytes of the message were not captured"),
            Damage::FramingLost => f.write_str("the framing was lost inside the message"),
            Damage::Unfinished => f.write_str("the connection ended inside the message"),
            Damage::Inflate(e) => write!(f, "the compressed message did not inflate: {e}"),
            Damage::ContextLost => f.write_str("the message refers to compressed data that was not captured"),
            Damage::Unsupported(x) => write!(f, "compressed by the unsupported extension {x}"),
            Damage::Protocol(why) => f.write_str(why),
        }
    }
}

/// One message (or control frame) of one direction.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WsMessage {
    /// The first frame's opcode: [`OP_TEXT`], [`OP_BINARY`], [`OP_CLOSE`], [`OP_PING`],
    /// [`OP_PONG`], or [`OP_CONTINUATION`] for fragments found without their start.
    pub opcode: u8,
    /// The payload, unmasked and inflated, at most [`WsLimits::max_message`] bytes.
    pub data: Vec<u8>,
    /// The whole payload's decoded length (past the cap too, as far as it was decoded).
    pub size: u64,
    /// Payload bytes on the wire (compressed, before unmasking), all frames.
    pub wire_size: u64,
    /// Frames it came in.
    pub frames: u32,
    /// Sent compressed (RSV1 on its first frame).
    pub compressed: bool,
    /// Decoded bytes past the cap were not kept.
    pub truncated: bool,
    /// When its first and its last byte were captured.
    pub first_ts: Ts,
    pub last_ts: Ts,
    /// Why it is not exactly what was sent, if it is not.
    pub damage: Option<Damage>,
}

impl WsMessage {
    fn new(opcode: u8, compressed: bool, ts: Ts) -> Self {
        WsMessage {
            opcode,
            data: Vec::new(),
            size: 0,
            wire_size: 0,
            frames: 0,
            compressed,
            truncated: false,
            first_ts: ts,
            last_ts: ts,
            damage: None,
        }
    }

    /// A control frame's message.
    pub fn is_control(&self) -> bool {
        self.opcode >= OP_CLOSE
    }

    /// A close frame's status code and reason (either may be absent).
    pub fn close_code(&self) -> Option<(Option<u16>, &[u8])> {
        if self.opcode != OP_CLOSE {
            return None;
        }
        match self.data.as_slice() {
            [a, b, reason @ ..] => Some((Some(u16::from_be_bytes([*a, *b])), reason)),
            _ => Some((None, &[])),
        }
    }
}

/// Counters of one direction.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct WsStats {
    pub frames: u64,
    pub messages: u64,
    pub damaged: u64,
    pub truncated: u64,
    /// Times the framing was found again after a gap.
    pub resyncs: u64,
    /// Bytes passed over without framing (after a gap, before the framing was found again).
    pub bytes_skipped: u64,
    /// Frames whose header broke the protocol (reserved bits, bad lengths) where framing was
    /// otherwise intact: the framing is taken as lost there.
    pub bad_headers: u64,
}

/// A parsed frame header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Header {
    fin: bool,
    rsv1: bool,
    opcode: u8,
    mask: Option<[u8; 4]>,
    len: u64,
    /// Bytes the header takes.
    size: usize,
}

enum Parsed {
    Header(Header),
    /// More bytes needed.
    Short,
    /// Not a valid header.
    Bad,
}

/// Reads a frame header from `b`. With `strict`, what a resynchronising scan accepts: the
/// mask bit must be the direction's, lengths minimal, the reserved bits only what the
/// extensions allow; in sync, only what makes the frame unparseable is refused.
fn parse_header(b: &[u8], strict: Option<(bool, bool)>) -> Parsed {
    let [b0, b1, ..] = *b else { return Parsed::Short };
    let fin = b0 & 0x80 != 0;
    let rsv1 = b0 & 0x40 != 0;
    let opcode = b0 & 0x0f;
    let masked = b1 & 0x80 != 0;
    let len7 = b1 & 0x7f;
    if b0 & 0x30 != 0 || !matches!(opcode, 0 | 1 | 2 | 8 | 9 | 10) {
        return Parsed::Bad;
    }
    let control = opcode >= OP_CLOSE;
    if control && (!fin || len7 > 125 || rsv1) {
        return Parsed::Bad;
    }
    if let Some((client, deflate)) = strict
        && (masked != client || (rsv1 && !(deflate && (opcode == OP_TEXT || opcode == OP_BINARY))))
    {
        return Parsed::Bad;
    }
    let ext = match len7 {
        126 => 2,
        127 => 8,
        _ => 0,
    };
    let size = 2 + ext + if masked { 4 } else { 0 };
    if b.len() < size {
        return Parsed::Short;
    }
    let len = match ext {
        2 => u16::from_be_bytes([b[2], b[3]]) as u64,
        8 => u64::from_be_bytes(b[2..10].try_into().expect("8 bytes")),
        _ => len7 as u64,
    };
    if len >> 63 != 0 {
        return Parsed::Bad;
    }
    if strict.is_some() && ((ext == 2 && len < 126) || (ext == 8 && len <= 0xffff)) {
        return Parsed::Bad;
    }
    let mask = masked.then(|| b[size - 4..size].try_into().expect("4 bytes"));
    Parsed::Header(Header { fin, rsv1, opcode, mask, len, size })
}

/// The frame being read.
#[derive(Clone, Copy, Debug)]
struct Frame {
    head: Header,
    /// Payload bytes read so far (for the mask's phase).
    done: u64,
    /// Bytes of this frame's payload were lost; the rest of it is passed over.
    lost: bool,
}

/// One direction of a WebSocket connection.
pub struct WsDirection {
    /// Frames from the client (masked).
    client: bool,
    deflate: Option<Deflate>,
    other_ext: Option<String>,
    limits: WsLimits,
    /// A frame header split across pieces.
    head: [u8; 14],
    head_len: usize,
    frame: Option<Frame>,
    /// The text or binary message in progress (between its first and its FIN frame).
    msg: Option<WsMessage>,
    /// The control frame in progress.
    ctrl: Option<WsMessage>,
    /// The inflater, made at the first compressed message.
    z: Option<Decompress>,
    /// The inflater must start afresh before the next compressed message (a loss, an error,
    /// a finished stream): an empty history makes references to what was lost fail.
    z_reset: bool,
    /// The inflater's history is the whole of the direction's compressed data since it began
    /// (nothing lost), so a reference it cannot follow is corruption, not a loss.
    z_complete: bool,
    /// Decoded bytes of the message in progress, kept or not.
    inflated: u64,
    scratch: Vec<u8>,
    /// `Some` while the framing is lost: the bytes since the piece where scanning started and
    /// the offsets in it where pieces began.
    lost: Option<Scan>,
    stats: WsStats,
}

#[derive(Default)]
struct Scan {
    buf: Vec<u8>,
    starts: Vec<usize>,
    /// Timestamps of those pieces.
    ts: Vec<Ts>,
}

impl WsDirection {
    /// One direction: `client` for the client's frames (masked), with the extensions the
    /// handshake settled.
    pub fn new(client: bool, ext: &Extensions, limits: WsLimits) -> Self {
        WsDirection {
            client,
            deflate: ext.deflate.map(|d| d[if client { 0 } else { 1 }]),
            other_ext: ext.other.clone(),
            limits,
            head: [0; 14],
            head_len: 0,
            frame: None,
            msg: None,
            ctrl: None,
            z: None,
            z_reset: false,
            z_complete: true,
            inflated: 0,
            scratch: Vec::new(),
            lost: None,
            stats: WsStats::default(),
        }
    }

    pub fn stats(&self) -> &WsStats {
        &self.stats
    }

    /// Bytes of the stream, captured at `ts`; complete messages go to `out`.
    pub fn push(&mut self, data: &[u8], ts: Ts, out: &mut impl FnMut(WsMessage)) {
        if self.lost.is_some() {
            self.scan(data, ts, false, out);
        } else {
            self.parse(data, ts, out);
        }
    }

    /// `len` bytes of the stream were not captured.
    pub fn gap(&mut self, len: u64, ts: Ts, out: &mut impl FnMut(WsMessage)) {
        if len == 0 {
            return;
        }
        if let Some(scan) = &mut self.lost {
            // Still lost: what was scanned cannot continue across the gap.
            self.stats.bytes_skipped += scan.buf.len() as u64;
            *scan = Scan::default();
            return;
        }
        if self.head_len == 0
            && let Some(f) = &mut self.frame
            && len <= f.head.len - f.done
        {
            // Inside one payload (up to its end): the framing holds; this frame's
            // message is damaged.
            f.done += len;
            f.lost = true;
            let f = *f;
            let control = f.head.opcode >= OP_CLOSE;
            let m = if control { self.ctrl.as_mut() } else { self.msg.as_mut() };
            if let Some(m) = m {
                m.wire_size += len;
                m.last_ts = ts;
                add_damage(m, Damage::Gap { missing: len });
                if m.compressed {
                    self.lose_history();
                }
            }
            if f.done == f.head.len {
                self.frame = None;
                self.end_frame(f, ts, out);
            } else {
                self.frame = Some(f);
            }
            return;
        }
        // The gap reaches past the frame (or into a header): the framing is lost.
        self.head_len = 0;
        self.frame = None;
        for m in [self.ctrl.take(), self.msg.take()].into_iter().flatten() {
            self.emit_damaged(m, Damage::FramingLost, out);
        }
        self.lose_history();
        self.lost = Some(Scan::default());
    }

    /// The stream ended (FIN, RST, end of capture): a message in progress comes out marked.
    pub fn end(&mut self, out: &mut impl FnMut(WsMessage)) {
        if self.lost.is_some() {
            self.scan(&[], Ts(0), true, out);
        }
        if let Some(scan) = self.lost.take() {
            self.stats.bytes_skipped += scan.buf.len() as u64;
        }
        for m in [self.ctrl.take(), self.msg.take()].into_iter().flatten() {
            self.emit_damaged(m, Damage::Unfinished, out);
        }
        self.frame = None;
        self.head_len = 0;
    }

    fn emit_damaged(&mut self, mut m: WsMessage, why: Damage, out: &mut impl FnMut(WsMessage)) {
        add_damage(&mut m, why);
        self.emit(m, out);
    }

    fn emit(&mut self, m: WsMessage, out: &mut impl FnMut(WsMessage)) {
        self.stats.messages += 1;
        self.stats.damaged += m.damage.is_some() as u64;
        self.stats.truncated += m.truncated as u64;
        out(m);
    }

    /// Compressed history may have been lost: start the inflater afresh at the next message.
    fn lose_history(&mut self) {
        if self.deflate.is_some() {
            self.z_reset = true;
            self.z_complete = false;
        }
    }

    /// Parses in sync.
    fn parse(&mut self, mut data: &[u8], ts: Ts, out: &mut impl FnMut(WsMessage)) {
        while !data.is_empty() {
            let Some(mut f) = self.frame else {
                // A header, possibly continued from the last piece.
                let take = (self.head.len() - self.head_len).min(data.len());
                self.head[self.head_len..self.head_len + take].copy_from_slice(&data[..take]);
                let avail = self.head_len + take;
                match parse_header(&self.head[..avail], None) {
                    Parsed::Short => {
                        self.head_len = avail;
                        return;
                    }
                    Parsed::Bad => {
                        // Not a frame where one must be: the framing is lost from here.
                        self.stats.bad_headers += 1;
                        let rest = data;
                        let prefix = self.head_len;
                        let held = self.head;
                        self.head_len = 0;
                        for m in [self.ctrl.take(), self.msg.take()].into_iter().flatten() {
                            self.emit_damaged(m, Damage::FramingLost, out);
                        }
                        self.lose_history();
                        let mut scan = Scan::default();
                        scan.buf.extend_from_slice(&held[..prefix]);
                        self.lost = Some(scan);
                        // The bad byte cannot start a frame; later piece starts may.
                        self.scan(rest, ts, false, out);
                        return;
                    }
                    Parsed::Header(h) => {
                        let used = h.size - self.head_len;
                        self.head_len = 0;
                        data = &data[used..];
                        self.start_frame(h, ts, out);
                        if self.frame.is_none() {
                            continue;
                        }
                    }
                }
                continue;
            };
            let n = (f.head.len - f.done).min(data.len() as u64) as usize;
            let (payload, rest) = data.split_at(n);
            data = rest;
            self.payload(&mut f, payload, ts);
            f.done += n as u64;
            if f.done == f.head.len {
                self.frame = None;
                self.end_frame(f, ts, out);
            } else {
                self.frame = Some(f);
            }
        }
    }

    /// A frame's header was read.
    fn start_frame(&mut self, h: Header, ts: Ts, out: &mut impl FnMut(WsMessage)) {
        self.stats.frames += 1;
        let f = Frame { head: h, done: 0, lost: false };
        if h.opcode >= OP_CLOSE {
            let mut m = WsMessage::new(h.opcode, false, ts);
            m.frames = 1;
            self.ctrl = Some(m);
        } else if h.opcode == OP_CONTINUATION {
            if self.msg.is_none() {
                let mut m = WsMessage::new(OP_CONTINUATION, false, ts);
                m.damage = Some(Damage::Protocol("a continuation frame without the start of its message"));
                self.msg = Some(m);
            }
            if let Some(m) = &mut self.msg {
                m.frames += 1;
                m.last_ts = ts;
            }
        } else {
            if let Some(m) = self.msg.take() {
                self.emit_damaged(m, Damage::Protocol("a new message began before this one ended"), out);
            }
            let mut m = WsMessage::new(h.opcode, h.rsv1, ts);
            m.frames = 1;
            if h.rsv1 {
                match (self.deflate, &self.other_ext) {
                    (Some(_), _) => self.start_inflate(),
                    (None, ext) => {
                        let x = ext.clone().unwrap_or_else(|| "(none negotiated)".into());
                        m.damage = Some(Damage::Unsupported(x));
                    }
                }
            }
            self.inflated = 0;
            self.msg = Some(m);
        }
        self.frame = Some(f);
        if h.len == 0 {
            self.frame = None;
            self.end_frame(f, ts, out);
        }
    }

    fn start_inflate(&mut self) {
        let no_takeover = self.deflate.is_some_and(|d| d.no_context_takeover);
        match &mut self.z {
            None => self.z = Some(Decompress::new(false)),
            Some(z) if self.z_reset || no_takeover => z.reset(false),
            Some(_) => {}
        }
        self.z_reset = false;
        if no_takeover {
            // Every message is a stream of its own: nothing before it can be missing.
            self.z_complete = true;
        }
        if self.scratch.len() < SCRATCH {
            self.scratch.resize(SCRATCH, 0);
        }
    }

    /// Payload bytes of frame `f` (at offset `f.done`).
    fn payload(&mut self, f: &mut Frame, payload: &[u8], ts: Ts) {
        let control = f.head.opcode >= OP_CLOSE;
        let Some(m) = (if control { self.ctrl.as_mut() } else { self.msg.as_mut() }) else { return };
        m.wire_size += payload.len() as u64;
        m.last_ts = ts;
        // After a loss inside the message, what follows is not kept: `data` is the bytes before it.
        let cut = matches!(m.damage, Some(Damage::Gap { .. } | Damage::FramingLost | Damage::Inflate(_) | Damage::ContextLost));
        if f.lost || cut || payload.is_empty() {
            return;
        }
        // Unmask into a small stack buffer, a block at a time.
        let mut block = [0u8; 4096];
        for (i, chunk) in payload.chunks(block.len()).enumerate() {
            let b = &mut block[..chunk.len()];
            b.copy_from_slice(chunk);
            if let Some(k) = f.head.mask {
                let phase = (f.done as usize + i * 4096) % 4;
                for (j, x) in b.iter_mut().enumerate() {
                    *x ^= k[(phase + j) % 4];
                }
            }
            let m = if control { self.ctrl.as_mut() } else { self.msg.as_mut() };
            let m = m.expect("the message is there");
            if !m.compressed || self.deflate.is_none() {
                // Plain, or compressed by an extension this parser does not decode: as sent.
                keep(m, b, self.limits.max_message);
            } else if m.damage.is_none() {
                let z = Inflate { z: self.z.as_mut(), complete: self.z_complete, done: &mut self.inflated };
                if !z.run(m, &mut self.scratch, b, self.limits) {
                    self.z_reset = true;
                    self.z_complete = false;
                }
            }
        }
    }

    /// The last byte of frame `f` was read.
    fn end_frame(&mut self, f: Frame, ts: Ts, out: &mut impl FnMut(WsMessage)) {
        if f.head.opcode >= OP_CLOSE {
            if let Some(mut m) = self.ctrl.take() {
                m.last_ts = ts;
                self.emit(m, out);
            }
            return;
        }
        if !f.head.fin {
            return;
        }
        let Some(mut m) = self.msg.take() else { return };
        m.last_ts = ts;
        if m.compressed && self.deflate.is_some() {
            if m.damage.is_none() {
                let z = Inflate { z: self.z.as_mut(), complete: self.z_complete, done: &mut self.inflated };
                if !z.run(&mut m, &mut self.scratch, &DEFLATE_TAIL, self.limits) {
                    self.z_reset = true;
                    self.z_complete = false;
                }
            } else {
                // Not inflated to its end: the inflater is somewhere inside this message.
                self.lose_history();
            }
        }
        self.emit(m, out);
    }

    /// Looks for the framing again, from the starts of pieces, in the bytes since it was lost.
    fn scan(&mut self, data: &[u8], ts: Ts, at_end: bool, out: &mut impl FnMut(WsMessage)) {
        let (client, deflate) = (self.client, self.deflate.is_some() || self.other_ext.is_some());
        let mut scan = self.lost.take().expect("lost");
        if !data.is_empty() {
            if scan.starts.len() == MAX_PIECE_STARTS {
                scan.starts.remove(0);
                scan.ts.remove(0);
            }
            scan.starts.push(scan.buf.len());
            scan.ts.push(ts);
            scan.buf.extend_from_slice(data);
        }
        let mut i = 0;
        while i < scan.starts.len() {
            let at = scan.starts[i];
            match verify_chain(&scan.buf[at..], &scan.starts[i + 1..], at, client, deflate, at_end) {
                Verdict::Yes => {
                    self.stats.resyncs += 1;
                    self.stats.bytes_skipped += at as u64;
                    // Parse from there, piece by piece, with each piece's time (a header that
                    // does not hold on the way loses the framing again and scans the rest).
                    let buf = std::mem::take(&mut scan.buf);
                    for k in i..scan.starts.len() {
                        let end = scan.starts.get(k + 1).copied().unwrap_or(buf.len());
                        self.push(&buf[scan.starts[k]..end], scan.ts[k], out);
                    }
                    return;
                }
                Verdict::No => i += 1,
                Verdict::Wait => break,
            }
        }
        // Drop what can no longer start a frame, and keep the scan bounded.
        let keep_from = if i < scan.starts.len() { scan.starts[i] } else { scan.buf.len() };
        let mut keep_from = keep_from;
        if scan.buf.len() - keep_from > RESYNC_WINDOW {
            // The oldest candidate could not be confirmed within the window: give it up.
            keep_from = scan.starts.iter().copied().find(|&s| s > keep_from).unwrap_or(scan.buf.len());
        }
        if keep_from > 0 {
            self.stats.bytes_skipped += keep_from as u64;
            scan.buf.drain(..keep_from);
            let n = scan.starts.iter().take_while(|&&s| s < keep_from).count();
            scan.starts.drain(..n);
            scan.ts.drain(..n);
            for s in &mut scan.starts {
                *s -= keep_from;
            }
        }
        self.lost = Some(scan);
    }
}

enum Verdict {
    Yes,
    No,
    Wait,
}

/// Whether a chain of frames starts at `b[0]`: four valid headers in a row, or two or more
/// whose last frame ends exactly where a later piece starts (`starts`, offsets in the scan
/// buffer, `base` being `b`'s) or where the stream ended (`at_end`).
fn verify_chain(b: &[u8], starts: &[usize], base: usize, client: bool, deflate: bool, at_end: bool) -> Verdict {
    let mut pos = 0usize;
    let mut headers = 0;
    let mut open = false; // a data message is open (its FIN not seen)
    loop {
        match parse_header(&b[pos..], Some((client, deflate))) {
            Parsed::Bad => return Verdict::No,
            Parsed::Short => {
                if pos == b.len() && headers >= 2 && at_end {
                    return Verdict::Yes;
                }
                return if at_end { Verdict::No } else { Verdict::Wait };
            }
            Parsed::Header(h) => {
                // Fragmentation order: continuations only inside a message, a new message only
                // outside one; the first header must begin a message or be a control frame.
                let control = h.opcode >= OP_CLOSE;
                if !control {
                    if (h.opcode == OP_CONTINUATION) != open {
                        return Verdict::No;
                    }
                    if h.opcode == OP_CONTINUATION && h.rsv1 {
                        return Verdict::No;
                    }
                    open = !h.fin;
                }
                headers += 1;
                if headers >= 4 {
                    return Verdict::Yes;
                }
                let end = pos as u64 + h.size as u64 + h.len;
                if end > b.len() as u64 {
                    // More bytes decide (the scan gives the candidate up past its window).
                    return if at_end { Verdict::No } else { Verdict::Wait };
                }
                pos = end as usize;
                let aligned = starts.contains(&(base + pos)) || (at_end && pos == b.len());
                if headers >= 2 && aligned {
                    return Verdict::Yes;
                }
            }
        }
    }
}

fn add_damage(m: &mut WsMessage, why: Damage) {
    if m.damage.is_none() {
        m.damage = Some(why);
    }
}

/// Keeps `b` in the message, up to the cap.
fn keep(m: &mut WsMessage, b: &[u8], cap: usize) {
    m.size += b.len() as u64;
    let room = cap.saturating_sub(m.data.len());
    if b.len() > room {
        m.truncated = true;
    }
    let n = b.len().min(room);
    if m.data.capacity() - m.data.len() < n {
        let want = (m.data.len() + n).max(m.data.capacity() * 2).min(cap);
        m.data.reserve_exact(want - m.data.len());
    }
    m.data.extend_from_slice(&b[..n]);
}

/// The direction's inflater, lent for one piece of a message.
struct Inflate<'a> {
    z: Option<&'a mut Decompress>,
    complete: bool,
    /// Decoded bytes of the message so far, kept or not.
    done: &'a mut u64,
}

impl Inflate<'_> {
    /// Inflates `input` into the message, up to the caps. False when the inflater cannot go on
    /// with this direction's stream (an error, a finished stream, the inflate cap).
    fn run(self, m: &mut WsMessage, scratch: &mut [u8], mut input: &[u8], limits: WsLimits) -> bool {
        let Some(z) = self.z else { return false };
        while !input.is_empty() {
            if *self.done >= limits.max_inflate {
                // Decoded as far as it is worth: the rest of the message, and the history it
                // would have made, are given up.
                m.truncated = true;
                return false;
            }
            let (before_in, before_out) = (z.total_in(), z.total_out());
            let r = z.decompress(input, scratch, FlushDecompress::Sync);
            let used = (z.total_in() - before_in) as usize;
            let produced = (z.total_out() - before_out) as usize;
            input = &input[used..];
            *self.done += produced as u64;
            keep(m, &scratch[..produced], limits.max_message);
            match r {
                Err(e) => {
                    let msg = e.to_string();
                    let lost = !self.complete && msg.contains("too far back");
                    add_damage(m, if lost { Damage::ContextLost } else { Damage::Inflate(msg) });
                    return false;
                }
                // A final block ended the stream: the next message starts a new one, and its
                // references to this one's history can no longer be followed.
                Ok(Status::StreamEnd) => return false,
                Ok(_) if used == 0 && produced == 0 => return true,
                Ok(_) => {}
            }
        }
        true
    }
}

/// Writing frames, for tests, fuzzing and synthetic captures.
pub mod encode {
    use flate2::{Compress, Compression, FlushCompress};

    /// One frame: header (minimal length encoding) and payload, masked with `mask` if given.
    pub fn frame(fin: bool, rsv1: bool, opcode: u8, mask: Option<[u8; 4]>, payload: &[u8]) -> Vec<u8> {
        let mut v = Vec::with_capacity(payload.len() + 14);
        v.push((fin as u8) << 7 | (rsv1 as u8) << 6 | (opcode & 0x0f));
        let m = if mask.is_some() { 0x80 } else { 0 };
        match payload.len() {
            n @ 0..=125 => v.push(m | n as u8),
            n @ 126..=0xffff => {
                v.push(m | 126);
                v.extend((n as u16).to_be_bytes());
            }
            n => {
                v.push(m | 127);
                v.extend((n as u64).to_be_bytes());
            }
        }
        match mask {
            Some(k) => {
                v.extend(k);
                v.extend(payload.iter().enumerate().map(|(i, b)| b ^ k[i % 4]));
            }
            None => v.extend_from_slice(payload),
        }
        v
    }

    /// A `permessage-deflate` compressor for one direction.
    pub struct Deflater {
        z: Compress,
        no_context_takeover: bool,
    }

    impl Deflater {
        pub fn new(window_bits: u8, no_context_takeover: bool) -> Self {
            // zlib cannot write raw deflate with an 8-bit window; RFC 7692 senders use 9.
            let bits = window_bits.clamp(9, 15);
            Deflater { z: Compress::new_with_window_bits(Compression::default(), false, bits), no_context_takeover }
        }

        /// One message's compressed payload, the trailing `00 00 ff ff` removed.
        pub fn message(&mut self, data: &[u8]) -> Vec<u8> {
            let mut out = Vec::with_capacity(data.len() / 2 + 64);
            let mut input = data;
            loop {
                if out.capacity() - out.len() < 64 {
                    out.reserve(out.capacity().max(64));
                }
                let before = self.z.total_in();
                self.z.compress_vec(input, &mut out, FlushCompress::Sync).expect("deflate");
                input = &input[(self.z.total_in() - before) as usize..];
                if input.is_empty() && out.ends_with(&super::DEFLATE_TAIL) && out.capacity() > out.len() {
                    break;
                }
            }
            out.truncate(out.len() - 4);
            if self.no_context_takeover {
                self.z.reset();
            }
            out
        }
    }
}

pub mod session;

#[cfg(test)]
mod tests;
