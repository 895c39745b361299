//! HAR 1.2 written as a stream: the envelope by hand, one entry at a time.
//!
//! Contract: [`write_entry`] serializes one [`Exchange`] into a byte buffer as a HAR entry
//! object; [`HarWriter`] writes the envelope around entries given to it in order, never
//! holding more than one. Bodies are `text` when the decoded body is UTF-8, base64 with
//! `"encoding": "base64"` otherwise. Times come from packet timestamps, in milliseconds with
//! microsecond precision; `time` is the exact sum of the timings that are not -1.

use std::io::{self, Write};

use crate::capture::Ts;
use crate::proto::Side;
use crate::proto::http1::{Anomaly, Exchange, Message};
use crate::proto::sse::{SseEvent, SseLimits, SseParser};
use crate::proto::ws::session::{WsLog, WsRecord};
use crate::proto::ws::{OP_BINARY, OP_CLOSE, OP_CONTINUATION, OP_PING, OP_PONG, OP_TEXT};

use super::json::{write_bytes_str, write_str};
use super::time::{http_date_to_iso, iso8601};

/// The key entries are ordered by: start time, then connection, then position on it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct EntryKey {
    pub start: Ts,
    pub conn: u64,
    pub index: u32,
}

/// When an exchange's HAR entry starts: at the SYN for a connection's first exchange when the
/// handshake was seen (the connect time is part of it), else at its first byte.
pub fn entry_start(ex: &Exchange) -> Ts {
    match connect_micros(ex) {
        Some(_) => ex.conn.syn_ts.unwrap_or(ex.start()),
        None => ex.start(),
    }
}

pub fn entry_key(ex: &Exchange) -> EntryKey {
    EntryKey { start: entry_start(ex), conn: ex.conn.id, index: ex.index }
}

fn connect_micros(ex: &Exchange) -> Option<i64> {
    connect_and_stall(ex).map(|(c, _)| c)
}

/// On a connection's first exchange whose handshake was seen: the handshake (SYN to the
/// client's ACK) and the time the request then waited before its first byte was sent (which
/// browsers' HAR exports count as `blocked`, "stalled"). Together they run from the SYN to the
/// request, so the timings cover the whole exchange.
fn connect_and_stall(ex: &Exchange) -> Option<(i64, i64)> {
    if ex.index != 0 {
        return None;
    }
    let req = ex.request.as_ref()?;
    let syn = ex.conn.syn_ts?;
    let start = req.first_ts.max(syn);
    let est = ex.conn.established_ts.unwrap_or(start).clamp(syn, start);
    Some((syn.micros_until(est), est.micros_until(start)))
}

/// Writes a number of microseconds as milliseconds with three decimals.
fn write_ms(out: &mut Vec<u8>, micros: i64) {
    if micros < 0 {
        out.extend_from_slice(b"-1");
        return;
    }
    let _ = write!(out, "{}.{:03}", micros / 1000, micros % 1000);
}

/// Serializes one exchange as a HAR entry (a JSON object, no trailing separator), in a buffer
/// grown once to the entry's exact size.
pub fn write_entry(out: &mut Vec<u8>, ex: &Exchange) {
    entry_parts(ex).write_into(out);
}

/// A body's `text` (and `encoding`) fields, to be written where the entry's skeleton leaves a
/// hole for them.
#[derive(Clone, Copy, Debug)]
struct BodyText<'a> {
    body: &'a [u8],
    /// The body is written base64-encoded.
    base64: bool,
    /// The name of the field that says so (`encoding`, or `_encoding` in `postData`).
    key: &'static str,
    /// Bytes the fields take, written; when not `exact`, at least what an unescaped text
    /// takes (the body is small: it is escaped as it is written, and written as base64
    /// instead if its text came out longer).
    len: usize,
    exact: bool,
}

/// Bodies of at least this many bytes have the exact size of their text counted before it is
/// written (a pass over the body); the entry of an exchange with one is sized exactly. Below
/// it the entry is written in one pass into room for the worst case, which costs less time
/// than counting (a second pass over every body) and little memory (such entries are held
/// within the reorder buffer's cap); from it on, the entry goes to the sink's temporary file
/// as it is written (`pipeline::STREAM_ENTRY_MIN`), and exact sizes keep a capped body's
/// cost at about twice the cap.
const EXACT_MIN: usize = 1 << 20;

/// Bytes of the body fields opening (`,"text":"`).
const TEXT_OPEN: &[u8] = b",\"text\":\"";

impl<'a> BodyText<'a> {
    /// `text` as it is when the body is UTF-8 and escaping it does not make it longer than
    /// base64 would (a body mostly of control bytes, zeros say, is six times its size
    /// escaped: it is written as base64, a third over its size), else base64.
    fn new(body: &'a [u8], key: &'static str, exact: bool) -> BodyText<'a> {
        let b64 = base64::encoded_len(body.len(), true).unwrap_or(usize::MAX);
        let base64_form = BodyText { body, base64: true, key, len: TEXT_OPEN.len() + b64 + Self::tail_len(key), exact: true };
        if !exact {
            if simdutf8::basic::from_utf8(body).is_err() {
                return base64_form;
            }
            return BodyText { body, base64: false, key, len: TEXT_OPEN.len() + body.len() + 1, exact: false };
        }
        match super::json::utf8_escaped_len(body) {
            Some(n) if n <= b64 => BodyText { body, base64: false, key, len: TEXT_OPEN.len() + n + 1, exact: true },
            _ => base64_form,
        }
    }

    fn base64_len(&self) -> usize {
        base64::encoded_len(self.body.len(), true).unwrap_or(usize::MAX)
    }

    /// `","encoding":"base64"`: after the base64 text's closing quote.
    fn tail_len(key: &str) -> usize {
        3 + key.len() + 3 + 6 + 1
    }

    fn write_tail(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(b"\",\"");
        out.extend_from_slice(self.key.as_bytes());
        out.extend_from_slice(b"\":\"base64\"");
    }

    /// Writes the fields into `out` (which has room for them: nothing is reallocated).
    fn write_into(&self, out: &mut Vec<u8>) {
        let start = out.len();
        out.extend_from_slice(TEXT_OPEN);
        if self.base64 {
            push_base64(out, self.body);
            self.write_tail(out);
        } else if self.exact {
            super::json::push_escaped_exact(out, self.body, self.len - TEXT_OPEN.len() - 1);
            out.push(b'"');
        } else {
            super::json::push_escaped(out, self.body);
            if !self.exact && out.len() - start - TEXT_OPEN.len() > self.base64_len() {
                // Longer escaped than base64: base64 after all.
                out.truncate(start);
                return BodyText { base64: true, ..*self }.write_into(out);
            }
            out.push(b'"');
        }
        debug_assert!(!self.exact || out.len() - start == self.len);
    }

    /// Writes the fields to `w` in pieces through `buf` (a body is never copied whole).
    fn write_to(&self, w: &mut dyn Write, buf: &mut Vec<u8>) -> io::Result<()> {
        if !self.exact {
            // Small: whole, as into memory.
            buf.clear();
            self.write_into(buf);
            return w.write_all(buf);
        }
        const PIECE: usize = 48 << 10;
        w.write_all(TEXT_OPEN)?;
        let mut rest = self.body;
        while !rest.is_empty() {
            buf.clear();
            if self.base64 {
                // Whole groups of three bytes encode on their own, without padding.
                let n = if rest.len() <= PIECE { rest.len() } else { PIECE };
                let (p, r) = rest.split_at(n);
                rest = r;
                push_base64(buf, p);
            } else {
                // At a character boundary: the body is UTF-8.
                let mut n = rest.len().min(PIECE);
                while n < rest.len() && (rest[n] & 0xc0) == 0x80 {
                    n -= 1;
                }
                let (p, r) = rest.split_at(n);
                rest = r;
                super::json::push_escaped(buf, p);
            }
            w.write_all(buf)?;
        }
        buf.clear();
        if self.base64 {
            self.write_tail(buf);
        } else {
            buf.push(b'"');
        }
        w.write_all(buf)
    }
}

/// Bodies larger than this have no `params` in `postData` (the form's fields, or the
/// multipart parts' values, decoded): they would be a second copy of the body, and the body
/// is in `text` whatever its size.
pub const MAX_PARAMS_BODY: usize = 1 << 20;

/// A serialized entry whose bodies are not written yet: the rest of the entry (small: heads,
/// timings, `_apitool`), and where each body's fields go. Its exact size is known before a
/// byte of the bodies is written, so it is written into a buffer of that size or streamed.
pub struct EntryParts<'a> {
    skel: Vec<u8>,
    /// Every body's size is exact (the exchange has a large one).
    exact: bool,
    /// Where in `skel` each body's fields go, in order.
    holes: Vec<(usize, BodyText<'a>)>,
}

impl EntryParts<'_> {
    /// Bytes of the entry, written: exact when [`EntryParts::is_exact`], else at least the
    /// size of its bodies unescaped.
    pub fn len(&self) -> usize {
        self.skel.len() + self.holes.iter().map(|(_, b)| b.len).sum::<usize>()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether [`EntryParts::len`] is the exact size (an exchange with a body of 64 KiB or
    /// more); else the entry is small, and its bodies' text is measured as it is written.
    pub fn is_exact(&self) -> bool {
        self.exact
    }

    /// Appends the entry to `out`, grown once to the exact size (a small entry may grow again
    /// by its bodies' escapes).
    pub fn write_into(&self, out: &mut Vec<u8>) {
        out.reserve_exact(self.len());
        let mut at = 0;
        for (pos, b) in &self.holes {
            out.extend_from_slice(&self.skel[at..*pos]);
            b.write_into(out);
            at = *pos;
        }
        out.extend_from_slice(&self.skel[at..]);
    }

    /// Writes the entry to `w`, its bodies in pieces through `buf`.
    pub fn write_to(&self, w: &mut dyn Write, buf: &mut Vec<u8>) -> io::Result<()> {
        self.write_to_marked(w, buf, b"")
    }

    /// Writes the entry to `w` as [`EntryParts::write_to`] does, with `mark` (members, each
    /// after a comma) added at the end of its `_apitool` object.
    pub fn write_to_marked(&self, w: &mut dyn Write, buf: &mut Vec<u8>, mark: &[u8]) -> io::Result<()> {
        let mut at = 0;
        for (pos, b) in &self.holes {
            w.write_all(&self.skel[at..*pos])?;
            b.write_to(w, buf)?;
            at = *pos;
        }
        let tail = &self.skel[at..];
        // The entry ends with its `_apitool` object's closing brace and its own.
        match tail.len().checked_sub(2) {
            Some(n) if !mark.is_empty() && &tail[n..] == b"}}" => {
                w.write_all(&tail[..n])?;
                w.write_all(mark)?;
                w.write_all(&tail[n..])
            }
            _ => w.write_all(tail),
        }
    }
}

/// Serializes one exchange as a HAR entry, its bodies left to write ([`EntryParts`]).
pub fn entry_parts(ex: &Exchange) -> EntryParts<'_> {
    let exact = [ex.request.as_ref(), ex.response.as_ref()].iter().flatten().any(|m| m.body.len() >= EXACT_MIN);
    let mut parts = EntryParts { skel: Vec::with_capacity(1024), exact, holes: Vec::new() };
    write_skeleton(&mut parts, ex);
    parts
}

/// Appends `b` in standard base64 with padding (SIMD where the machine has it), into spare
/// capacity: no zero-filling first.
fn push_base64(out: &mut Vec<u8>, b: &[u8]) {
    let b64 = base64_simd::STANDARD;
    let n = b64.encoded_length(b.len());
    out.reserve(n);
    let written = b64.encode(b, base64_simd::Out::from_uninit_slice(&mut out.spare_capacity_mut()[..n])).len();
    debug_assert_eq!(written, n);
    // SAFETY: `encode` initialised the first `n` bytes of the spare capacity.
    unsafe { out.set_len(out.len() + n) };
}

fn write_skeleton<'a>(parts: &mut EntryParts<'a>, ex: &'a Exchange) {
    let EntryParts { skel: out, holes, exact } = parts;
    let exact = *exact;
    let req = ex.request.as_ref();
    let resp = ex.response.as_ref();
    let (connect, blocked) = match connect_and_stall(ex) {
        Some((c, b)) => (Some(c), Some(b)),
        None => (None, None),
    };
    let (send, wait, receive) = match (req, resp) {
        (Some(q), Some(r)) => (q.first_ts.micros_until(q.last_ts), q.last_ts.micros_until(r.first_ts), r.first_ts.micros_until(r.last_ts)),
        (Some(q), None) => (q.first_ts.micros_until(q.last_ts), 0, 0),
        (None, Some(r)) => (0, 0, r.first_ts.micros_until(r.last_ts)),
        (None, None) => (0, 0, 0),
    };
    let total = blocked.unwrap_or(0) + connect.unwrap_or(0) + send + wait + receive;
    out.extend_from_slice(b"{\"startedDateTime\":\"");
    iso8601(out, entry_start(ex));
    out.extend_from_slice(b"\",\"time\":");
    write_ms(out, total);
    out.extend_from_slice(b",\"request\":");
    write_request(out, holes, exact, ex, req);
    out.extend_from_slice(b",\"response\":");
    write_response(out, holes, exact, resp, ex.h2.is_some());
    out.extend_from_slice(b",\"cache\":{},\"timings\":{\"blocked\":");
    write_ms(out, blocked.unwrap_or(-1));
    out.extend_from_slice(b",\"dns\":-1,\"connect\":");
    write_ms(out, connect.unwrap_or(-1));
    out.extend_from_slice(b",\"send\":");
    write_ms(out, send);
    out.extend_from_slice(b",\"wait\":");
    write_ms(out, wait);
    out.extend_from_slice(b",\"receive\":");
    write_ms(out, receive);
    out.extend_from_slice(b",\"ssl\":-1},\"serverIPAddress\":\"");
    let _ = write!(out, "{}", ex.conn.server.addr());
    let _ = write!(out, "\",\"connection\":\"{}\"", ex.conn.id);
    if let Some(ws) = ex.websocket.as_deref() {
        write_websocket_messages(out, ws);
    }
    write_private(out, ex);
    out.push(b'}');
}

fn write_private(out: &mut Vec<u8>, ex: &Exchange) {
    let msgs = ex.request.iter().chain(ex.response.iter());
    let first = msgs.clone().map(|m| m.first_frame).min().unwrap_or(0);
    let last = msgs.map(|m| m.last_frame).max().unwrap_or(0);
    let _ = write!(
        out,
        ",\"_apitool\":{{\"flow\":{},\"exchange\":{},\"client\":\"{}\",\"server\":\"{}\",\"firstFrame\":{first},\"lastFrame\":{last}",
        ex.conn.id, ex.index, ex.conn.client, ex.conn.server
    );
    match ex.request.as_ref() {
        Some(r) => {
            // The request-target exactly as sent (the URL above is absolute).
            out.extend_from_slice(b",\"target\":");
            write_bytes_str(out, r.head.target());
        }
        None => out.extend_from_slice(b",\"noRequest\":true"),
    }
    if let Some(r) = ex.response.as_ref()
        && coding_moved(r)
    {
        out.extend_from_slice(b",\"contentEncoding\":");
        let mut v = Vec::new();
        for (i, f) in r.head.field_all("content-encoding").enumerate() {
            if i > 0 {
                v.extend_from_slice(b", ");
            }
            v.extend_from_slice(f);
        }
        write_header_value(out, &v);
    }
    if let Some(t) = ex.tunnel.as_deref() {
        out.extend_from_slice(b",\"tunnel\":");
        write_str(out, t);
    }
    if let Some(h2) = ex.h2.as_deref() {
        write_h2(out, h2);
        if let Some(g) = h2.grpc.as_deref() {
            write_grpc(out, g);
        }
    }
    if let Some(t) = ex.tls.as_deref() {
        write_tls(out, t);
    }
    if !ex.interim.is_empty() {
        out.extend_from_slice(b",\"interimStatus\":[");
        for (i, s) in ex.interim.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            let _ = write!(out, "{s}");
        }
        out.push(b']');
    }
    if let Some(r) = ex.response.as_ref()
        && !r.body_times.is_empty()
        && !r.body_is_encoded
    {
        write_events(out, r);
    }
    if let Some(ws) = ex.websocket.as_deref() {
        write_websocket_summary(out, ws);
    }
    if let Some(r) = ex.response.as_ref()
        && !r.trailers.is_empty()
    {
        out.extend_from_slice(b",\"trailers\":");
        write_pairs(out, r.trailers.iter().map(|(n, v)| (n.as_slice(), v.as_slice())));
    }
    // What truncated bodies lost past the cap: `bytes` of the body not kept (for a coded
    // body, what decoded past the cap before decoding stopped), `notDecoded` encoded bytes
    // never decoded.
    let cut = [("request", ex.request.as_ref()), ("response", ex.response.as_ref())];
    if cut.iter().any(|(_, m)| m.is_some_and(|m| m.body_truncated)) {
        out.extend_from_slice(b",\"bodyDropped\":{");
        let mut first = true;
        for (name, m) in cut {
            if let Some(m) = m.filter(|m| m.body_truncated) {
                if !first {
                    out.push(b',');
                }
                first = false;
                let _ = write!(out, "\"{name}\":{{\"bytes\":{},\"notDecoded\":{}}}", m.body_dropped, m.body_not_decoded);
            }
        }
        out.push(b'}');
    }
    out.extend_from_slice(b",\"anomalies\":[");
    for (i, a) in ex.anomalies.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        write_str(out, &a.to_string());
    }
    out.extend_from_slice(b"]}");
}

/// Server-sent events kept at most per entry in `_apitool.events` by default (`--max-messages`
/// sets it); the rest are counted in `_apitool.eventsDropped`.
pub const MAX_EVENTS: usize = crate::proto::http1::MAX_MESSAGES;

/// A WebSocket's messages as Chrome's HAR export writes them: `"_resourceType":"websocket"`
/// and `"_webSocketMessages":[{"type":"send"|"receive","time":<epoch seconds>,"opcode":N,
/// "data":"..."}]`, in capture order, text as text and other messages as base64. Chrome
/// lists data messages only (text and binary: ping, pong and close frames never reach its
/// network log); so does this list, and the control frames are in
/// `_apitool.webSocket.control` in the same form. A message that is not exactly what was sent
/// says so (`_damaged`, `_truncated` with `_size`, its decoded size); a text message whose
/// bytes are not UTF-8 (cut by a gap or the cap) is base64 with `"_encoding":"base64"`.
fn write_websocket_messages(out: &mut Vec<u8>, ws: &WsLog) {
    out.extend_from_slice(b",\"_resourceType\":\"websocket\",\"_webSocketMessages\":[");
    write_ws_records(out, ws.messages.iter().filter(|r| !r.msg.is_control()));
    out.push(b']');
}

fn write_ws_records<'a>(out: &mut Vec<u8>, records: impl Iterator<Item = &'a WsRecord>) {
    for (i, r) in records.enumerate() {
        if i > 0 {
            out.push(b',');
        }
        let m = &r.msg;
        out.extend_from_slice(if r.side == Side::Client { b"{\"type\":\"send\",\"time\":" } else { b"{\"type\":\"receive\",\"time\":" });
        epoch_seconds(out, r.time());
        let _ = write!(out, ",\"opcode\":{},\"data\":", m.opcode);
        let text = if m.opcode == OP_TEXT { std::str::from_utf8(&m.data).ok() } else { None };
        match text {
            Some(t) => write_str(out, t),
            None => {
                out.push(b'"');
                push_base64(out, &m.data);
                out.push(b'"');
                if m.opcode == OP_TEXT {
                    out.extend_from_slice(b",\"_encoding\":\"base64\"");
                }
            }
        }
        if m.truncated {
            let _ = write!(out, ",\"_truncated\":true,\"_size\":{}", m.size);
        }
        if let Some(d) = &m.damage {
            out.extend_from_slice(b",\"_damaged\":");
            write_str(out, &d.to_string());
        }
        out.push(b'}');
    }
}

/// `_apitool.webSocket`: what the connection carried beyond the messages listed, counted
/// over all messages (kept or not): `messages` (data and control), `kept`, `dropped` (past
/// `--max-messages` or the bytes cap, with `droppedBytes` and `droppedBy`), `byOpcode`,
/// `damaged`, `truncated`, `close` (the first close frame: `from`, `code`, `reason`), the
/// negotiated `protocol` and `extensions`, and `control`: the ping, pong and close frames
/// kept, as `_webSocketMessages` writes messages.
fn write_websocket_summary(out: &mut Vec<u8>, ws: &WsLog) {
    let _ = write!(out, ",\"webSocket\":{{\"messages\":{},\"kept\":{},\"dropped\":{}", ws.seen, ws.messages.len(), ws.dropped);
    if ws.dropped > 0 {
        let _ = write!(out, ",\"droppedBytes\":{}", ws.dropped_bytes);
        if let Some(by) = ws.dropped_by {
            out.extend_from_slice(b",\"droppedBy\":");
            write_str(out, by);
        }
    }
    out.extend_from_slice(b",\"byOpcode\":{");
    let mut first = true;
    for (op, n) in ws.by_opcode.iter().enumerate().filter(|(_, n)| **n > 0) {
        if !first {
            out.push(b',');
        }
        first = false;
        let name = match op as u8 {
            OP_CONTINUATION => "continuation".to_string(),
            OP_TEXT => "text".into(),
            OP_BINARY => "binary".into(),
            OP_CLOSE => "close".into(),
            OP_PING => "ping".into(),
            OP_PONG => "pong".into(),
            o => o.to_string(),
        };
        let _ = write!(out, "\"{name}\":{n}");
    }
    let _ = write!(out, "}},\"damaged\":{},\"truncated\":{}", ws.damaged, ws.truncated);
    out.extend_from_slice(b",\"close\":");
    match &ws.close {
        None => out.extend_from_slice(b"null"),
        Some(c) => {
            out.extend_from_slice(if c.side == Side::Client {
                b"{\"from\":\"client\",\"code\":"
            } else {
                b"{\"from\":\"server\",\"code\":"
            });
            match c.code {
                Some(c) => {
                    let _ = write!(out, "{c}");
                }
                None => out.extend_from_slice(b"null"),
            }
            out.extend_from_slice(b",\"reason\":");
            write_bytes_str(out, &c.reason);
            out.push(b'}');
        }
    }
    for (key, v) in [("protocol", &ws.protocol), ("extensions", &ws.extensions)] {
        if let Some(v) = v {
            let _ = write!(out, ",\"{key}\":");
            write_str(out, v);
        }
    }
    out.extend_from_slice(b",\"control\":[");
    write_ws_records(out, ws.messages.iter().filter(|r| r.msg.is_control()));
    out.extend_from_slice(b"]}");
}

/// `_apitool.h2`: the stream id, the pseudo-header fields of each side (kept out of
/// `headers`), whether the stream was pushed (and by which stream's PUSH_PROMISE), and for
/// stream 1 after `Upgrade: h2c`, `upgraded`.
fn write_h2(out: &mut Vec<u8>, h2: &crate::proto::h2::H2Facts) {
    let _ = write!(out, ",\"h2\":{{\"streamId\":{},\"pseudo\":{{\"request\":", h2.stream);
    let obj = |out: &mut Vec<u8>, fields: &[crate::proto::h2::Field]| {
        out.push(b'{');
        for (i, (n, v)) in fields.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            write_bytes_str(out, n);
            out.push(b':');
            write_header_value(out, v);
        }
        out.push(b'}');
    };
    obj(out, &h2.request_pseudo);
    out.extend_from_slice(b",\"response\":");
    obj(out, &h2.response_pseudo);
    let _ = write!(out, "}},\"pushed\":{}", h2.pushed_by.is_some());
    if let Some(p) = h2.pushed_by {
        let _ = write!(out, ",\"promisedOn\":{p}");
    }
    if h2.upgraded {
        out.extend_from_slice(b",\"upgraded\":true");
    }
    out.push(b'}');
}

/// `_apitool.grpc`: the call's `service` and `method` (from the path), its `requests` and
/// `responses` as `{"length", "compressed", "data"}` (the message decompressed, in base64;
/// `error` when it could not be decompressed, `truncated` when cut at `--max-body`),
/// `requestsDropped`/`responsesDropped` past 10,000 each, and the `status` and `message`
/// of the response's `grpc-status`/`grpc-message` (`null` when it sent none).
fn write_grpc(out: &mut Vec<u8>, g: &crate::proto::h2::grpc::Grpc) {
    out.extend_from_slice(b",\"grpc\":{\"service\":");
    write_str(out, &g.service);
    out.extend_from_slice(b",\"method\":");
    write_str(out, &g.method);
    for (name, side) in [("requests", &g.requests), ("responses", &g.responses)] {
        let _ = write!(out, ",\"{name}\":[");
        for (i, m) in side.messages.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            let _ = write!(out, "{{\"length\":{},\"compressed\":{},\"data\":\"", m.length, m.compressed);
            push_base64(out, &m.data);
            out.push(b'"');
            if let Some(e) = &m.error {
                out.extend_from_slice(b",\"error\":");
                write_str(out, e);
            }
            if m.truncated {
                out.extend_from_slice(b",\"truncated\":true");
            }
            out.push(b'}');
        }
        out.push(b']');
        if side.dropped > 0 {
            let _ = write!(out, ",\"{name}Dropped\":{}", side.dropped);
        }
    }
    match g.status {
        Some(st) => {
            let _ = write!(out, ",\"status\":{st}");
        }
        None => out.extend_from_slice(b",\"status\":null"),
    }
    out.extend_from_slice(b",\"message\":");
    match &g.message {
        Some(m) => write_str(out, m),
        None => out.extend_from_slice(b"null"),
    }
    out.push(b'}');
}

/// The events of a `text/event-stream` response, each with the capture time of the piece
/// that completed it: `"events":[{"time":<epoch seconds>,"event","data","id"}]`.
fn write_events(out: &mut Vec<u8>, r: &Message) {
    let body = &r.body[..];
    // The body is already capped: one event may be as long as all of it.
    let mut p = SseParser::new(SseLimits { max_line: body.len(), max_data: body.len() });
    let mut n = 0usize;
    let max = r.max_events;
    out.extend_from_slice(b",\"events\":[");
    let mut write = |e: SseEvent| {
        n += 1;
        if n > max {
            return;
        }
        if n > 1 {
            out.push(b',');
        }
        out.extend_from_slice(b"{\"time\":");
        epoch_seconds(out, e.time);
        out.extend_from_slice(b",\"event\":");
        write_str(out, &e.event);
        out.extend_from_slice(b",\"data\":");
        write_str(out, &e.data);
        out.extend_from_slice(b",\"id\":");
        write_str(out, &e.id);
        if let Some(ms) = e.retry {
            let _ = write!(out, ",\"retry\":{ms}");
        }
        if e.truncated {
            out.extend_from_slice(b",\"truncated\":true");
        }
        out.push(b'}');
    };
    let mut from = 0;
    for &(upto, ts) in &r.body_times {
        let upto = upto.min(body.len());
        if upto > from {
            p.push(&body[from..upto], ts, &mut write);
            from = upto;
        }
    }
    if from < body.len() {
        let ts = r.body_times.last().map_or(r.last_ts, |m| m.1);
        p.push(&body[from..], ts, &mut write);
    }
    p.end();
    out.push(b']');
    if n > max {
        let _ = write!(out, ",\"eventsDropped\":{}", n - max);
    }
    if p.stats().unfinished > 0 {
        out.extend_from_slice(b",\"eventUnfinished\":true");
    }
}

/// A capture time as fractional seconds since the epoch (microseconds), as browsers write
/// message times in HAR.
fn epoch_seconds(out: &mut Vec<u8>, ts: Ts) {
    let us = ts.0.div_euclid(1_000);
    let _ = write!(out, "{}.{:06}", us.div_euclid(1_000_000), us.rem_euclid(1_000_000));
}

fn write_pairs<'a>(out: &mut Vec<u8>, pairs: impl Iterator<Item = (&'a [u8], &'a [u8])>) {
    out.push(b'[');
    for (i, (n, v)) in pairs.enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.extend_from_slice(b"{\"name\":");
        write_bytes_str(out, n);
        out.extend_from_slice(b",\"value\":");
        write_header_value(out, v);
        out.push(b'}');
    }
    out.push(b']');
}

/// A header value with obs-fold line breaks turned into single spaces.
fn write_header_value(out: &mut Vec<u8>, v: &[u8]) {
    if v.contains(&b'\n') {
        let mut flat = Vec::with_capacity(v.len());
        let mut i = 0;
        while i < v.len() {
            if v[i] == b'\r' || v[i] == b'\n' {
                while i < v.len() && matches!(v[i], b'\r' | b'\n' | b' ' | b'\t') {
                    i += 1;
                }
                flat.push(b' ');
            } else {
                flat.push(v[i]);
                i += 1;
            }
        }
        write_bytes_str(out, &flat);
    } else {
        write_bytes_str(out, v);
    }
}

/// `_apitool.tls`: what the TLS connection the exchange was decrypted from says (never a
/// secret).
fn write_tls(out: &mut Vec<u8>, t: &crate::proto::tls::TlsFacts) {
    out.extend_from_slice(b",\"tls\":{\"version\":");
    write_str(out, t.version);
    out.extend_from_slice(b",\"cipherSuite\":");
    write_str(out, t.cipher_suite);
    for (k, v) in [(&b",\"sni\":"[..], &t.sni), (&b",\"alpn\":"[..], &t.alpn)] {
        out.extend_from_slice(k);
        match v.as_deref() {
            Some(v) => write_str(out, v),
            None => out.extend_from_slice(b"null"),
        }
    }
    out.push(b'}');
}

/// Builds the absolute URL of a request, keeping its request-target as sent.
///
/// By the form of the target (RFC 9112, section 3.2):
/// - absolute-form (`http://…`, `https://…`): the target itself;
/// - authority-form of a `CONNECT` (`host:port`): `https://host:port` when the port is 443,
///   else `http://host:port` (a tunnel has no path);
/// - origin-form (`/path?query`): `http://` + the Host header (else the target of the proxy
///   tunnel the request went through, else the server address, with its port unless 80) +
///   the target;
/// - asterisk-form (`OPTIONS *`), an empty target and a request line without a target
///   (`OPTIONS HTTP/1.1`, whose version is then `httpVersion`): the origin with the path `/`,
///   which is what a URL parser makes of an origin; any other target is taken as a path
///   after `/`.
///
/// The raw target is in `_apitool.target` whatever its form. Only bytes that a URL cannot
/// hold are percent-encoded ([`needs_escape`]).
pub fn request_url(ex: &Exchange, m: &Message) -> Vec<u8> {
    if let Some(h2) = ex.h2.as_deref()
        && !h2.upgraded
    {
        return h2_url(ex, h2, m);
    }
    let target = m.head.target();
    let mut url = Vec::with_capacity(target.len() + 32);
    let lower = |b: &[u8], p: &[u8]| b.len() >= p.len() && b[..p.len()].eq_ignore_ascii_case(p);
    if lower(target, b"http://") || lower(target, b"https://") {
        push_url_bytes(&mut url, target);
        return url;
    }
    if m.head.method().eq_ignore_ascii_case(b"CONNECT") && is_authority(target) {
        let port = target.rsplit(|&c| c == b':').next().unwrap_or(b"");
        url.extend_from_slice(if port == b"443" { b"https://" } else { b"http://" });
        push_url_bytes(&mut url, target);
        return url;
    }
    let target = if missing_target(m) { &b""[..] } else { target };
    url.extend_from_slice(scheme(ex));
    let host = m.head.field("host").map(crate::proto::http1::decode::trim).filter(|h| !h.is_empty());
    // Decrypted from TLS without a Host header: the server name the client asked for.
    let sni = ex.tls.as_ref().and_then(|t| t.sni.as_deref()).filter(|s| !s.is_empty());
    let host = host.or(sni.map(str::as_bytes));
    // Without a Host header: the target of the tunnel the request went through, else the
    // server's address.
    let tunnel = ex.tunnel.as_deref().and_then(|t| t.split_once(' ')).map(|(_, a)| a.strip_suffix(":80").unwrap_or(a));
    match (host, tunnel) {
        (Some(h), _) => push_url_bytes(&mut url, h),
        (None, Some(t)) if !t.is_empty() => push_url_bytes(&mut url, t.as_bytes()),
        (None, _) => push_server(&mut url, ex),
    }
    if target.first() == Some(&b'/') {
        push_url_bytes(&mut url, target);
    } else {
        url.push(b'/');
        if target != b"*" {
            push_url_bytes(&mut url, target);
        }
    }
    url
}

/// An HTTP/2 request's URL: `:scheme` (else the connection's) `://` `:authority` (else the
/// Host field, else the server's address) and `:path` (for CONNECT, no path).
fn h2_url(ex: &Exchange, h2: &crate::proto::h2::H2Facts, m: &Message) -> Vec<u8> {
    let mut url = Vec::with_capacity(64);
    let fallback: &[u8] = if ex.tls.is_some() { b"https" } else { h2.scheme.as_bytes() };
    let scheme = h2.request(":scheme").filter(|s| !s.is_empty()).unwrap_or(fallback);
    push_url_bytes(&mut url, scheme);
    url.extend_from_slice(b"://");
    let authority = h2.request(":authority").filter(|a| !a.is_empty()).or_else(|| m.head.field("host"));
    match authority {
        Some(a) => push_url_bytes(&mut url, a),
        None => push_server(&mut url, ex),
    }
    let path = h2.request(":path").unwrap_or(b"");
    if path.first() == Some(&b'/') {
        push_url_bytes(&mut url, path);
    } else if !m.head.method().eq_ignore_ascii_case(b"CONNECT") {
        url.push(b'/');
        if path != b"*" {
            push_url_bytes(&mut url, path);
        }
    }
    url
}

/// The URL of a response seen without its request: the server's origin and `/`.
pub fn server_url(ex: &Exchange) -> Vec<u8> {
    let mut url = scheme(ex).to_vec();
    match ex.tls.as_ref().and_then(|t| t.sni.as_deref()).filter(|s| !s.is_empty()) {
        Some(sni) => push_url_bytes(&mut url, sni.as_bytes()),
        None => push_server(&mut url, ex),
    }
    url.push(b'/');
    url
}

/// `https://` for an exchange decrypted from TLS, else `http://`.
fn scheme(ex: &Exchange) -> &'static [u8] {
    if ex.tls.is_some() { b"https://" } else { b"http://" }
}

/// The server's address as a URL host (IPv6 in brackets), with its port unless it is the
/// scheme's default (80, or 443 over TLS).
fn push_server(url: &mut Vec<u8>, ex: &Exchange) {
    let s = ex.conn.server;
    let _ = match s.addr() {
        std::net::IpAddr::V4(a) => write!(url, "{a}"),
        std::net::IpAddr::V6(a) => write!(url, "[{a}]"),
    };
    if s.port != if ex.tls.is_some() { 443 } else { 80 } {
        let _ = write!(url, ":{}", s.port);
    }
}

/// Whether the request line has a method and a version but no target (`OPTIONS HTTP/1.1`):
/// the lenient parser then reads the version as the target and leaves the version empty.
fn missing_target(m: &Message) -> bool {
    let t = m.head.target();
    m.head.version().is_empty() && t.len() == 8 && t.starts_with(b"HTTP/") && t[5].is_ascii_digit() && t[6] == b'.' && t[7].is_ascii_digit()
}

/// Whether a `CONNECT` target is in authority form (`host:port`): not empty, no path.
fn is_authority(t: &[u8]) -> bool {
    !t.is_empty() && !t.contains(&b'/') && t != b"*"
}

/// Bytes that a URL cannot hold as they are, percent-encoded: C0 controls, space, DEL and
/// every non-ASCII byte (what the WHATWG URL parser encodes in every part of a URL, the C0
/// control percent-encode set, plus the space it would strip or encode). Everything else,
/// `|`, `\`, `^`, `{`, `}`, `"`, `<`, `>` and `` ` `` included, is kept as it was sent, so the
/// URL's path and query are the request-target's bytes.
pub fn needs_escape(c: u8) -> bool {
    c <= b' ' || c >= 0x7f
}

fn push_url_bytes(url: &mut Vec<u8>, b: &[u8]) {
    for &c in b {
        if needs_escape(c) {
            let _ = write!(url, "%{c:02X}");
        } else {
            url.push(c);
        }
    }
}

/// name=value pairs of a query string or urlencoded form, decoded.
fn write_params(out: &mut Vec<u8>, q: &[u8], as_query: bool) {
    out.push(b'[');
    let mut first = true;
    for part in q.split(|&c| c == b'&') {
        if part.is_empty() {
            continue;
        }
        let (n, v) = match part.iter().position(|&c| c == b'=') {
            Some(p) => (&part[..p], &part[p + 1..]),
            None => (part, &b""[..]),
        };
        if !first {
            out.push(b',');
        }
        first = false;
        out.extend_from_slice(b"{\"name\":");
        write_bytes_str(out, &crate::ir::body::form::percent_decode(n, true));
        out.extend_from_slice(b",\"value\":");
        write_bytes_str(out, &crate::ir::body::form::percent_decode(v, true));
        out.push(b'}');
    }
    let _ = as_query;
    out.push(b']');
}

fn write_request<'a>(out: &mut Vec<u8>, holes: &mut Vec<(usize, BodyText<'a>)>, exact: bool, ex: &Exchange, req: Option<&'a Message>) {
    let Some(m) = req else {
        // A response without its request: what is known of the request is its server. HAR
        // readers want a method (har-to-k6 refuses an empty one), so the entry says GET, the
        // method that is safe to send again, and says in `comment` (and in the anomaly "no
        // request") that the request was not captured.
        out.extend_from_slice(b"{\"method\":\"GET\",\"url\":");
        write_bytes_str(out, &server_url(ex));
        out.extend_from_slice(
            b",\"httpVersion\":\"\",\"cookies\":[],\"headers\":[],\"queryString\":[],\"headersSize\":-1,\"bodySize\":-1,\"comment\":\"request not captured: method and URL are placeholders\"}",
        );
        return;
    };
    out.extend_from_slice(b"{\"method\":");
    write_bytes_str(out, m.head.method());
    out.extend_from_slice(b",\"url\":");
    let url = request_url(ex, m);
    write_bytes_str(out, &url);
    out.extend_from_slice(b",\"httpVersion\":");
    write_bytes_str(out, if missing_target(m) { m.head.target() } else { m.head.version() });
    out.extend_from_slice(b",\"cookies\":[");
    let mut first = true;
    for v in m.head.field_all("cookie") {
        for c in v.split(|&c| c == b';') {
            let c = crate::proto::http1::decode::trim(c);
            if c.is_empty() {
                continue;
            }
            let (n, val) = match c.iter().position(|&x| x == b'=') {
                Some(p) => (&c[..p], &c[p + 1..]),
                None => (c, &b""[..]),
            };
            if !first {
                out.push(b',');
            }
            first = false;
            out.extend_from_slice(b"{\"name\":");
            write_bytes_str(out, crate::proto::http1::decode::trim(n));
            out.extend_from_slice(b",\"value\":");
            write_bytes_str(out, crate::proto::http1::decode::trim(val));
            out.push(b'}');
        }
    }
    out.extend_from_slice(b"],\"headers\":");
    write_pairs(out, m.head.fields());
    out.extend_from_slice(b",\"queryString\":");
    let target = m.head.target();
    let query = target.iter().position(|&c| c == b'?').map_or(&b""[..], |p| {
        let q = &target[p + 1..];
        &q[..q.iter().position(|&c| c == b'#').unwrap_or(q.len())]
    });
    write_params(out, query, true);
    if !m.body.is_empty() || m.body_wire_len > 0 {
        let mime = m.head.field("content-type").unwrap_or(b"");
        out.extend_from_slice(b",\"postData\":{\"mimeType\":");
        write_bytes_str(out, mime);
        let lower_mime: Vec<u8> = mime.to_ascii_lowercase();
        if m.body.len() > MAX_PARAMS_BODY {
            // No second copy of a large body.
        } else if lower_mime.starts_with(b"application/x-www-form-urlencoded") {
            out.extend_from_slice(b",\"params\":");
            write_params(out, &m.body, false);
        } else if lower_mime.starts_with(b"multipart/form-data")
            && let Some(params) = super::multipart::params(mime, &m.body)
        {
            out.extend_from_slice(b",\"params\":");
            out.extend_from_slice(&params);
        }
        holes.push((out.len(), BodyText::new(&m.body, "_encoding", exact)));
        out.push(b'}');
    }
    // HTTP/2 headers are HPACK-coded (-1, unknown); the HTTP/1.1 request of an h2c upgrade
    // has its own head.
    let head_size = if ex.h2.as_deref().is_some_and(|h| !h.upgraded) { -1 } else { m.head.raw.len() as i64 };
    let _ = write!(out, ",\"headersSize\":{head_size},\"bodySize\":{}}}", m.body_wire_len);
}

fn write_response<'a>(out: &mut Vec<u8>, holes: &mut Vec<(usize, BodyText<'a>)>, exact: bool, resp: Option<&'a Message>, h2: bool) {
    let Some(m) = resp else {
        out.extend_from_slice(b"{\"status\":0,\"statusText\":\"\",\"httpVersion\":\"\",\"cookies\":[],\"headers\":[],\"content\":{\"size\":0,\"mimeType\":\"x-unknown\",\"text\":\"\"},\"redirectURL\":\"\",\"headersSize\":-1,\"bodySize\":-1}");
        return;
    };
    let _ = write!(out, "{{\"status\":{},\"statusText\":", m.head.status());
    write_bytes_str(out, m.head.reason());
    out.extend_from_slice(b",\"httpVersion\":");
    write_bytes_str(out, m.head.version());
    out.extend_from_slice(b",\"cookies\":[");
    for (i, v) in m.head.field_all("set-cookie").enumerate() {
        if i > 0 {
            out.push(b',');
        }
        write_set_cookie(out, v);
    }
    out.extend_from_slice(b"],\"headers\":");
    let moved = coding_moved(m);
    write_pairs(out, m.head.fields().filter(|(n, _)| !(moved && n.eq_ignore_ascii_case(b"content-encoding"))));
    // The size of the body as it was, also when --redact changed its text.
    let size = m.unredacted_len.unwrap_or(m.body.len() as u64);
    let _ = write!(out, ",\"content\":{{\"size\":{size}");
    if !m.codings.is_empty() && !m.body_is_encoded && !m.body_truncated {
        let _ = write!(out, ",\"compression\":{}", size as i64 - m.entity_len as i64);
    }
    out.extend_from_slice(b",\"mimeType\":");
    match m.head.field("content-type") {
        Some(ct) => write_bytes_str(out, ct),
        None => out.extend_from_slice(b"\"x-unknown\""),
    }
    // `text` even when there is no body (HEAD, 204/304, tunnels, a body lost at a gap): HAR
    // readers such as haralyzer read it unconditionally; `size` is the bytes it holds.
    holes.push((out.len(), BodyText::new(&m.body, "encoding", exact)));
    out.extend_from_slice(b"},\"redirectURL\":");
    write_bytes_str(out, m.head.field("location").unwrap_or(b""));
    // HTTP/2 headers are HPACK-coded: their size on the wire is not the head's (-1, unknown).
    let head_size = if h2 { -1 } else { m.head.raw.len() as i64 };
    let _ = write!(out, ",\"headersSize\":{head_size},\"bodySize\":{}}}", m.body_wire_len);
}

/// Content codings that HAR readers apply again to the decoded `text` when they rebuild the
/// response (mitmproxy does, and refuses the whole HAR when it cannot).
const READER_CODINGS: [&[u8]; 5] = [b"gzip", b"deflate", b"br", b"zstd", b"identity"];

/// Whether the response's Content-Encoding fields are left out of `headers` (and kept in
/// `_apitool.contentEncoding`): the HAR holds the decoded body, which no longer has the coding,
/// so the header stays only when it names one coding that a reader can apply again (as
/// browsers' HAR exports keep `Content-Encoding: gzip` beside the decoded text) and the body
/// written is its decoded form (or empty). A list of codings (`gzip, br`), a coding readers
/// do not know, or a body kept still encoded because decoding failed moves the header.
fn coding_moved(m: &Message) -> bool {
    let mut fields = m.head.field_all("content-encoding");
    let Some(first) = fields.next() else { return false };
    if fields.next().is_some() {
        return true;
    }
    let v = crate::proto::http1::decode::trim(first);
    let known = READER_CODINGS.iter().any(|c| v.eq_ignore_ascii_case(c));
    !known || (m.body_is_encoded && !m.body.is_empty())
}

fn write_set_cookie(out: &mut Vec<u8>, v: &[u8]) {
    let mut parts = v.split(|&c| c == b';');
    let first = crate::proto::http1::decode::trim(parts.next().unwrap_or(b""));
    let (n, val) = match first.iter().position(|&x| x == b'=') {
        Some(p) => (&first[..p], &first[p + 1..]),
        None => (first, &b""[..]),
    };
    out.extend_from_slice(b"{\"name\":");
    write_bytes_str(out, crate::proto::http1::decode::trim(n));
    out.extend_from_slice(b",\"value\":");
    write_bytes_str(out, crate::proto::http1::decode::trim(val));
    for attr in parts {
        let attr = crate::proto::http1::decode::trim(attr);
        let (k, v) = match attr.iter().position(|&x| x == b'=') {
            Some(p) => (crate::proto::http1::decode::trim(&attr[..p]), crate::proto::http1::decode::trim(&attr[p + 1..])),
            None => (attr, &b""[..]),
        };
        if k.eq_ignore_ascii_case(b"path") {
            out.extend_from_slice(b",\"path\":");
            write_bytes_str(out, v);
        } else if k.eq_ignore_ascii_case(b"domain") {
            out.extend_from_slice(b",\"domain\":");
            write_bytes_str(out, v);
        } else if k.eq_ignore_ascii_case(b"expires") {
            if let Some(iso) = http_date_to_iso(v) {
                out.extend_from_slice(b",\"expires\":");
                write_str(out, &iso);
            }
        } else if k.eq_ignore_ascii_case(b"httponly") {
            out.extend_from_slice(b",\"httpOnly\":true");
        } else if k.eq_ignore_ascii_case(b"secure") {
            out.extend_from_slice(b",\"secure\":true");
        }
    }
    out.push(b'}');
}

/// Writes the HAR envelope around entries handed over one at a time.
pub struct HarWriter<W: Write> {
    w: W,
    entries: u64,
}

impl<W: Write> HarWriter<W> {
    pub fn new(mut w: W, creator_version: &str, comment: Option<&str>) -> io::Result<HarWriter<W>> {
        let mut head = Vec::new();
        head.extend_from_slice(b"{\"log\":{\"version\":\"1.2\",\"creator\":{\"name\":\"apitool\",\"version\":");
        write_str(&mut head, creator_version);
        head.push(b'}');
        if let Some(c) = comment {
            head.extend_from_slice(b",\"comment\":");
            write_str(&mut head, c);
        }
        head.extend_from_slice(b",\"entries\":[\n");
        w.write_all(&head)?;
        Ok(HarWriter { w, entries: 0 })
    }

    /// Writes one serialized entry.
    pub fn entry(&mut self, bytes: &[u8]) -> io::Result<()> {
        if self.entries > 0 {
            self.w.write_all(b",\n")?;
        }
        self.entries += 1;
        self.w.write_all(bytes)
    }

    /// Writes one entry that `write` serializes straight to the output.
    pub fn entry_with(&mut self, write: impl FnOnce(&mut dyn Write) -> io::Result<()>) -> io::Result<()> {
        if self.entries > 0 {
            self.w.write_all(b",\n")?;
        }
        self.entries += 1;
        write(&mut self.w)
    }

    /// Writes serialized entries in one go (vectored writes: the entries are not copied into
    /// a buffer first).
    pub fn entry_batch<B: AsRef<[u8]>>(&mut self, batch: &[B]) -> io::Result<()> {
        const SEP: &[u8] = b",\n";
        let mut slices: Vec<io::IoSlice<'_>> = Vec::with_capacity(batch.len() * 2);
        for e in batch {
            if self.entries > 0 {
                slices.push(io::IoSlice::new(SEP));
            }
            self.entries += 1;
            slices.push(io::IoSlice::new(e.as_ref()));
        }
        super::write_all_slices(&mut self.w, &mut slices)
    }

    pub fn entries(&self) -> u64 {
        self.entries
    }

    /// Closes the envelope and returns the writer.
    pub fn finish(mut self) -> io::Result<W> {
        self.w.write_all(b"\n]}}\n")?;
        self.w.flush()?;
        Ok(self.w)
    }
}

/// Whether an anomaly list marks the exchange as damaged (for counting).
pub fn is_damaged(anomalies: &[Anomaly]) -> bool {
    anomalies.iter().any(|a| !matches!(a, Anomaly::Tunnel | Anomaly::LenientHead { .. } | Anomaly::MidStream))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::capture::Ts;
    use crate::proto::http1::{ConnMeta, Exchange, Message};
    use crate::wire::Endpoint;

    fn msg(raw: &[u8], request: bool, body: Vec<u8>) -> Message {
        Message::whole(crate::proto::http1::head::parse(raw.to_vec(), request, 100).unwrap(), body, Ts(1_000), Ts(2_000))
    }

    fn exchange(req_body: Vec<u8>, resp_body: Vec<u8>) -> Exchange {
        let ep = |p| Endpoint::from_addr("10.0.0.1".parse().unwrap(), p);
        Exchange {
            conn: ConnMeta { id: 1, client: ep(40000), server: ep(80), syn_ts: None, established_ts: None },
            index: 0,
            request: Some(msg(b"POST /x HTTP/1.1\r\nHost: a\r\nContent-Type: text/plain\r\n\r\n", true, req_body)),
            response: Some(msg(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\n", false, resp_body)),
            interim: vec![],
            anomalies: vec![],
            tunnel: None,
            websocket: None,
            h2: None,
            tls: None,
        }
    }

    /// The bodies as a HAR reader reads them back.
    fn bodies(entry: &[u8]) -> (serde_json::Value, Vec<u8>, Vec<u8>) {
        use base64::Engine;
        let v: serde_json::Value = serde_json::from_slice(entry).unwrap();
        let get = |c: &serde_json::Value| {
            let t = c["text"].as_str().unwrap();
            if c["encoding"] == "base64" || c["_encoding"] == "base64" {
                base64::engine::general_purpose::STANDARD.decode(t).unwrap()
            } else {
                t.as_bytes().to_vec()
            }
        };
        let (q, r) = (get(&v["request"]["postData"]), get(&v["response"]["content"]));
        (v, q, r)
    }

    /// Small and large bodies, text, control bytes, binary: the entry reads back to the
    /// same bodies, whether written into memory or streamed; a large entry's buffer is its
    /// exact size; text whose escaping would be longer than base64 is base64.
    #[test]
    fn entries_are_sized_exactly_and_read_back() {
        let text = b"{\"id\":1,\"name\":\"caf\xc3\xa9 \\\"quoted\\\"\"}\n".repeat(3000);
        let zeros = vec![0u8; 70_000];
        let binary: Vec<u8> = (0..100_000u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8).collect();
        let few_ctl = b"line\tone\x01\n".repeat(10);
        let cases = [
            (b"small".to_vec(), few_ctl.clone()),
            (vec![0u8; 100], b"x".to_vec()),
            (text.clone(), zeros.clone()),
            (binary.clone(), text.clone()),
            (few_ctl.clone(), binary.clone()),
        ];
        for (q, r) in cases {
            let ex = exchange(q.clone(), r.clone());
            let mut mem = Vec::new();
            write_entry(&mut mem, &ex);
            let parts = entry_parts(&ex);
            if parts.is_exact() {
                assert_eq!(parts.len(), mem.len());
                assert_eq!(mem.capacity(), mem.len());
            }
            let mut streamed = Vec::new();
            parts.write_to(&mut streamed, &mut Vec::new()).unwrap();
            assert!(streamed == mem, "streamed and in-memory entries differ");
            let (v, got_q, got_r) = bodies(&mem);
            assert!(got_q == q && got_r == r);
            for (c, b) in [(&v["request"]["postData"], &q), (&v["response"]["content"], &r)] {
                let is_b64 = c["encoding"] == "base64" || c["_encoding"] == "base64";
                let utf8 = std::str::from_utf8(b).is_ok();
                let escaped = if utf8 { super::super::json::escaped_len(b) } else { usize::MAX };
                assert_eq!(is_b64, escaped > base64::encoded_len(b.len(), true).unwrap(), "{} bytes", b.len());
            }
        }
    }
}
