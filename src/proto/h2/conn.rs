//! The HTTP/2 stream handler of one connection: frames from both directions, one HPACK
//! decoder per direction, each stream one [`Exchange`].
//!
//! Contract: an [`H2Conn`] gets the same events as any handler (bytes in order per side, gaps,
//! closes, the end) and hands each stream, when both its sides are over (END_STREAM,
//! RST_STREAM, or the connection's end), to the sink as an exchange. DATA frames are never
//! held whole: their bytes go to the stream's body decoder as they come (the body is capped
//! by `--max-body` like HTTP/1's); other frames are held until complete, at most
//! [`H2Limits::max_header_list`] bytes (a header block), past which they are skipped and
//! counted. Bytes missing inside a DATA frame lose only that body's bytes; missing bytes
//! anywhere else lose the frame boundaries and the HPACK table of that direction: frames are
//! searched for again (two plausible frame headers in a row) and the streams whose header
//! blocks cannot be decoded any more are marked, never given guessed headers.

use std::collections::BTreeMap;

use super::frame::{self, Frame, Header};
use super::hpack::{BlockError, Decoder, Field};
use super::{H2Anomaly, H2Facts, H2Limits};
use crate::capture::Ts;
use crate::proto::http1::decode::{self, BodyDecoder};
use crate::proto::http1::head::{Head, Span, StartLine};
use crate::proto::http1::{Anomaly, Exchange, HttpLimits, Message};
use crate::proto::{Chunk, ConnMeta, Ctx, Side};

/// Bytes searched for frame headers after frame boundaries were lost, before giving up the
/// direction (the rest of it is counted, not parsed).
const RESYNC_SCAN: usize = 1 << 20;

/// Frame lengths taken as plausible when searching for frames again.
const RESYNC_MAX_LEN: u32 = 1 << 20;

/// A DATA frame whose payload is arriving.
#[derive(Clone, Copy, Debug)]
struct DataRun {
    stream: u32,
    end_stream: bool,
    /// Payload bytes still to come.
    left: u32,
    /// The padding-length byte is still to come.
    pad_byte: bool,
    /// Of `left`, the padding at the end.
    pad: u32,
}

/// A header block being put together from HEADERS or PUSH_PROMISE and CONTINUATION frames.
struct Block {
    stream: u32,
    /// For PUSH_PROMISE: the promised stream.
    promised: Option<u32>,
    end_stream: bool,
    bytes: Vec<u8>,
    first: Chunk,
    /// Over the cap: its bytes are not kept (the direction's table is lost).
    dropped: bool,
}

enum St {
    /// Client preface bytes still to skip.
    Preface(usize),
    /// Expecting a frame header.
    Frames,
    /// In a DATA frame's payload.
    Data(DataRun),
    /// Skipping the payload of a frame not kept.
    Skip(u32),
    /// Frame boundaries are lost: searching.
    Lost { scanned: usize },
    /// Given up.
    Off,
}

/// One direction.
struct Dir {
    st: St,
    /// A frame header or whole frame being collected (non-DATA frames only).
    buf: Vec<u8>,
    /// Where the frame being collected started.
    frame_first: Option<Chunk>,
    /// Decodes the header blocks this side sends.
    hpack: Decoder,
    block: Option<Block>,
    /// Nothing seen yet on this side.
    fresh: bool,
    clean_start: bool,
}

/// One message (the request or the response side of a stream).
struct Msg {
    /// Regular fields, wire order.
    fields: Vec<Field>,
    pseudo: Vec<Field>,
    /// The fields could not be decoded: what they were is unknown.
    unknown: bool,
    dec: Option<BodyDecoder>,
    codings: Vec<decode::Coding>,
    body_wire_len: u64,
    gap: u64,
    first: Chunk,
    last: Chunk,
    trailers: Vec<Field>,
    done: bool,
    /// A message given whole (the HTTP/1 request of an `Upgrade: h2c`).
    given: Option<Message>,
}

struct Stream {
    req: Option<Msg>,
    resp: Option<Msg>,
    interim: Vec<u16>,
    anomalies: Vec<Anomaly>,
    pushed_by: Option<u32>,
    start: Ts,
    reset: bool,
    upgraded: bool,
    /// Position on the connection: streams are numbered as they open (so that entries that
    /// start together keep the order their streams were opened in), whenever they end.
    index: u32,
}

impl Stream {
    fn new(start: Ts) -> Stream {
        Stream {
            req: None,
            resp: None,
            interim: Vec::new(),
            anomalies: Vec::new(),
            pushed_by: None,
            start,
            reset: false,
            upgraded: false,
            index: 0,
        }
    }

    fn over(&self) -> bool {
        self.reset || (self.req.as_ref().is_some_and(|m| m.done) && self.resp.as_ref().is_some_and(|m| m.done))
    }
}

/// HTTP/2 state of one connection.
pub struct H2Conn {
    pub meta: ConnMeta,
    /// `http` for h2c, `https` under TLS: the URL's scheme when a request has no `:scheme`.
    scheme: &'static str,
    dirs: [Dir; 2],
    streams: BTreeMap<u32, Stream>,
    /// Exchanges handed out so far.
    exchanges: u32,
    /// The position the next stream opened gets.
    next_index: u32,
    /// GOAWAY's last stream id, per side that sent one.
    goaway: [Option<(u32, u32)>; 2],
    counted: bool,
    /// The client's first bytes were the preface.
    seen_preface: bool,
    /// A side was captured from the middle.
    midstream: bool,
}

impl H2Conn {
    /// A connection that starts with the client preface (prior knowledge), or whose start
    /// was not captured. `scheme`: `http` for cleartext, `https` under TLS.
    pub fn new(meta: ConnMeta, scheme: &'static str, limits: &H2Limits) -> H2Conn {
        let dir = |client: bool| Dir {
            st: if client { St::Preface(super::super::detect::H2_PREFACE.len()) } else { St::Frames },
            buf: Vec::new(),
            frame_first: None,
            hpack: Decoder::new(limits.max_table),
            block: None,
            fresh: true,
            clean_start: false,
        };
        H2Conn {
            meta,
            scheme,
            dirs: [dir(true), dir(false)],
            streams: BTreeMap::new(),
            exchanges: 0,
            next_index: 0,
            goaway: [None; 2],
            counted: false,
            seen_preface: false,
            midstream: false,
        }
    }

    /// After `Upgrade: h2c` answered 101: `request` (the HTTP/1 request, the exchange's
    /// position `index`) is stream 1's, `interim` the 101. Both sides are seen from the
    /// switch: the client's next bytes are the preface, the server's its SETTINGS.
    pub fn upgraded(meta: ConnMeta, limits: &H2Limits, request: Message, index: u32, interim: Vec<u16>, anomalies: Vec<Anomaly>) -> H2Conn {
        let mut c = H2Conn::new(meta, "http", limits);
        for d in &mut c.dirs {
            d.fresh = false;
            d.clean_start = true;
        }
        c.exchanges = index;
        c.next_index = index + 1;
        let at = |ts, frame, offset| Chunk { ts, frame, offset, ack: None };
        let first = at(request.first_ts, request.first_frame, request.stream_offset);
        let last = at(request.last_ts, request.last_frame, request.stream_offset);
        let mut s = Stream::new(request.first_ts);
        s.upgraded = true;
        s.index = index;
        s.interim = interim;
        s.anomalies = anomalies.into_iter().filter(|a| *a != Anomaly::Tunnel).collect();
        s.req = Some(Msg { done: true, given: Some(request), ..Msg::new(Vec::new(), Vec::new(), first, last) });
        c.streams.insert(1, s);
        c
    }

    pub fn clean_start(&mut self, side: Side) {
        self.dirs[side as usize].clean_start = true;
    }

    /// The start of the earliest exchange not yet handed out.
    pub fn pending_start(&self) -> Option<Ts> {
        let mut m = self.streams.values().map(|s| s.start).min();
        for d in &self.dirs {
            if let Some(b) = &d.block {
                m = Some(m.map_or(b.first.ts, |x: Ts| x.min(b.first.ts)));
            }
            if let Some(f) = d.frame_first {
                m = Some(m.map_or(f.ts, |x: Ts| x.min(f.ts)));
            }
        }
        if let (Some(x), Some(syn), 0) = (m, self.meta.syn_ts, self.exchanges) {
            m = Some(x.min(syn));
        }
        m
    }

    /// Bytes held: frames being collected, header blocks, bodies, HPACK tables.
    pub fn buffered_bytes(&self) -> usize {
        let mut n = 0;
        for d in &self.dirs {
            n += d.buf.capacity() + d.block.as_ref().map_or(0, |b| b.bytes.capacity()) + d.hpack.held_bytes();
        }
        for s in self.streams.values() {
            for m in s.req.iter().chain(s.resp.iter()) {
                n += m.dec.as_ref().map_or(0, |d| d.held_bytes());
            }
        }
        n
    }

    /// Bytes held by bodies in progress: (not cut yet, all).
    pub fn bodies_held(&self) -> (usize, usize) {
        let (mut uncut, mut all) = (0, 0);
        for s in self.streams.values() {
            for d in s.req.iter().chain(s.resp.iter()).filter_map(|m| m.dec.as_ref()) {
                all += d.held_bytes();
                if !d.was_cut() {
                    uncut += d.held_bytes();
                }
            }
        }
        (uncut, all)
    }

    /// Cuts the bodies in progress (`--max-bodies-total`).
    pub fn cut_bodies(&mut self) {
        for s in self.streams.values_mut() {
            for m in s.req.iter_mut().chain(s.resp.iter_mut()) {
                if let Some(d) = m.dec.as_mut() {
                    d.cut();
                }
            }
        }
    }

    fn count(&mut self, cx: &mut Ctx<'_>) {
        if !self.counted {
            self.counted = true;
            cx.stats.h2.connections += 1;
        }
    }

    /// Bytes of one side, in order.
    pub fn data(&mut self, side: Side, mut bytes: &[u8], mut chunk: Chunk, cx: &mut Ctx<'_>) {
        self.count(cx);
        let i = side as usize;
        let d = &mut self.dirs[i];
        if d.fresh {
            d.fresh = false;
            let preface = super::super::detect::H2_PREFACE;
            let at_preface = matches!(d.st, St::Preface(_));
            let preface_first = at_preface && (bytes.starts_with(preface) || preface.starts_with(bytes));
            if preface_first {
                self.seen_preface = true;
            }
            // A side is seen from its start when its SYN was, or when the connection's first
            // client bytes are the preface (the server's start is then after it).
            let d = &mut self.dirs[i];
            let from_start = d.clean_start || preface_first || (i == 1 && self.seen_preface);
            if !from_start {
                // Seen from the middle: frame boundaries and the table are unknown.
                cx.stats.h2.midstream_sides += 1;
                self.midstream = true;
                d.hpack.lose_state();
                d.st = St::Lost { scanned: 0 };
            } else if at_preface && !preface_first {
                // A client that starts without the preface: find frames if there are any.
                d.st = St::Lost { scanned: 0 };
            }
        }
        while !bytes.is_empty() {
            let used = self.step(i, bytes, chunk, cx);
            bytes = &bytes[used..];
            chunk.offset += used as u64;
        }
    }

    /// Handles the start of `b`; returns the bytes used (at least one).
    fn step(&mut self, i: usize, b: &[u8], chunk: Chunk, cx: &mut Ctx<'_>) -> usize {
        let d = &mut self.dirs[i];
        match &mut d.st {
            St::Off => {
                cx.stats.h2.bytes_not_parsed += b.len() as u64;
                b.len()
            }
            St::Preface(left) => {
                let n = (*left).min(b.len());
                *left -= n;
                if *left == 0 {
                    d.st = St::Frames;
                }
                n
            }
            St::Skip(left) => {
                let n = (*left as usize).min(b.len());
                *left -= n as u32;
                if *left == 0 {
                    d.st = St::Frames;
                }
                n
            }
            St::Data(run) => {
                let mut run = *run;
                let mut used = 0;
                if run.pad_byte {
                    let pad = b[0] as u32;
                    run.pad_byte = false;
                    run.left -= 1;
                    used = 1;
                    if pad > run.left {
                        cx.stats.h2.frame_errors += 1;
                        run.pad = run.left;
                    } else {
                        run.pad = pad;
                    }
                }
                let rest = &b[used..];
                let n = (run.left as usize).min(rest.len());
                let data_left = run.left - run.pad;
                let data_n = (data_left as usize).min(n);
                if data_n > 0 {
                    self.body(i, run.stream, &rest[..data_n], chunk, cx);
                }
                run.left -= n as u32;
                run.pad = run.pad.min(run.left);
                used += n;
                let d = &mut self.dirs[i];
                if run.left == 0 {
                    d.st = St::Frames;
                    d.frame_first = None;
                    if run.end_stream {
                        self.end_message(i, run.stream, chunk, cx);
                    }
                } else {
                    d.st = St::Data(run);
                }
                used
            }
            St::Lost { scanned } => {
                let scanned = *scanned;
                self.resync(i, b, chunk, scanned, cx)
            }
            St::Frames => self.frames(i, b, chunk, cx),
        }
    }

    /// Frame headers and whole frames; returns the bytes used.
    fn frames(&mut self, i: usize, b: &[u8], chunk: Chunk, cx: &mut Ctx<'_>) -> usize {
        let d = &mut self.dirs[i];
        if d.buf.is_empty() {
            d.frame_first = Some(chunk);
            if let Some(h) = Header::parse(b) {
                let total = frame::HEADER_LEN + h.len as usize;
                if h.kind != frame::DATA && b.len() >= total {
                    // The whole frame is here: no copy.
                    self.frame(i, &h, &b[frame::HEADER_LEN..total], chunk, chunk, cx);
                    self.dirs[i].frame_first = None;
                    return total;
                }
                return frame::HEADER_LEN + self.begin(i, h, chunk, cx);
            }
            d.buf.extend_from_slice(b);
            return b.len();
        }
        if d.buf.len() < frame::HEADER_LEN {
            let n = (frame::HEADER_LEN - d.buf.len()).min(b.len());
            d.buf.extend_from_slice(&b[..n]);
            if d.buf.len() < frame::HEADER_LEN {
                return n;
            }
            let h = Header::parse(&d.buf).expect("9 bytes");
            return n + self.begin(i, h, chunk, cx);
        }
        // Collecting a frame's payload.
        let h = Header::parse(&self.dirs[i].buf).expect("9 bytes");
        let d = &mut self.dirs[i];
        let want = frame::HEADER_LEN + h.len as usize - d.buf.len();
        let n = want.min(b.len());
        d.buf.extend_from_slice(&b[..n]);
        if n == want {
            let buf = std::mem::take(&mut self.dirs[i].buf);
            let first = self.dirs[i].frame_first.take().unwrap_or(chunk);
            self.frame(i, &h, &buf[frame::HEADER_LEN..], first, chunk, cx);
            let d = &mut self.dirs[i];
            if d.buf.is_empty() {
                d.buf = buf;
                d.buf.clear();
                if d.buf.capacity() > 64 << 10 {
                    d.buf = Vec::new();
                }
            }
        }
        n
    }

    /// A frame header was read (its 9 bytes are used): sets up for its payload. Returns the
    /// payload bytes used here (none: they come next).
    fn begin(&mut self, i: usize, h: Header, chunk: Chunk, cx: &mut Ctx<'_>) -> usize {
        let limits = cx.limits.h2;
        let d = &mut self.dirs[i];
        d.buf.clear();
        if h.kind == frame::DATA {
            if h.stream == 0 {
                cx.stats.h2.frame_errors += 1;
            }
            let run = DataRun {
                stream: h.stream,
                end_stream: h.flags & frame::END_STREAM != 0,
                left: h.len,
                pad_byte: h.flags & frame::PADDED != 0,
                pad: 0,
            };
            if h.len == 0 {
                d.frame_first = None;
                if run.end_stream {
                    self.end_message(i, h.stream, chunk, cx);
                }
            } else {
                d.st = St::Data(run);
            }
            return 0;
        }
        if h.len == 0 {
            d.frame_first = None;
            self.frame(i, &h, &[], chunk, chunk, cx);
            return 0;
        }
        if h.len as usize > limits.max_header_list.max(16 << 10) + 1024 {
            // Too large to hold: skipped, and if it carried a header block, the table of
            // this direction is lost with it.
            cx.stats.h2.frames_skipped += 1;
            if matches!(h.kind, frame::HEADERS | frame::CONTINUATION | frame::PUSH_PROMISE) {
                cx.stats.h2.header_lists_over_cap += 1;
                d.hpack.lose_state();
                let stream = d.block.take().map_or(h.stream, |b| b.stream);
                self.damage(i, stream, H2Anomaly::HeaderListCap, cx);
            }
            self.dirs[i].st = St::Skip(h.len);
            self.dirs[i].frame_first = None;
            return 0;
        }
        d.buf.reserve(frame::HEADER_LEN + h.len as usize);
        d.buf.extend_from_slice(&frame_header_bytes(&h));
        0
    }

    /// A whole non-DATA frame.
    fn frame(&mut self, i: usize, h: &Header, p: &[u8], first: Chunk, last: Chunk, cx: &mut Ctx<'_>) {
        let f = match Frame::parse(h, p) {
            Ok(f) => f,
            Err(_) => {
                cx.stats.h2.frame_errors += 1;
                if matches!(h.kind, frame::HEADERS | frame::CONTINUATION | frame::PUSH_PROMISE) {
                    self.dirs[i].hpack.lose_state();
                    self.damage(i, h.stream, H2Anomaly::HeadersUnknown, cx);
                }
                return;
            }
        };
        if let Some(b) = self.dirs[i].block.as_ref()
            && !(matches!(f, Frame::Continuation { .. }) && h.stream == b.stream)
        {
            // A header block interrupted: it cannot be decoded, nor the table after it.
            cx.stats.h2.frame_errors += 1;
            let stream = b.stream;
            self.dirs[i].block = None;
            self.dirs[i].hpack.lose_state();
            self.damage(i, stream, H2Anomaly::HeadersUnknown, cx);
        }
        let end_headers = h.flags & frame::END_HEADERS != 0;
        match f {
            Frame::Headers { fragment } => {
                let block = Block {
                    stream: h.stream,
                    promised: None,
                    end_stream: h.flags & frame::END_STREAM != 0,
                    bytes: Vec::new(),
                    first,
                    dropped: false,
                };
                self.block_part(i, block, fragment, end_headers, last, cx);
            }
            Frame::PushPromise { promised, fragment } => {
                let block =
                    Block { stream: h.stream, promised: Some(promised), end_stream: false, bytes: Vec::new(), first, dropped: false };
                self.block_part(i, block, fragment, end_headers, last, cx);
            }
            Frame::Continuation { fragment } => match self.dirs[i].block.take() {
                Some(block) => self.block_part(i, block, fragment, end_headers, last, cx),
                None => {
                    // A CONTINUATION without its start (lost in a gap, or a protocol error).
                    cx.stats.h2.frame_errors += 1;
                    self.dirs[i].hpack.lose_state();
                    self.damage(i, h.stream, H2Anomaly::HeadersUnknown, cx);
                }
            },
            Frame::RstStream { code } => {
                cx.stats.h2.resets += 1;
                if let Some(s) = self.streams.get_mut(&h.stream) {
                    s.anomalies.push(Anomaly::Http2(H2Anomaly::Reset { by_server: i == 1, code }));
                    s.reset = true;
                    self.try_emit(h.stream, cx);
                }
            }
            Frame::Settings { ack: false, params } => {
                for (id, v) in frame::settings(params) {
                    if id == frame::SETTINGS_HEADER_TABLE_SIZE {
                        // Bounds the table of the blocks the other side sends; the encoder
                        // says what it uses with a size update, which the decoder follows.
                        cx.stats.h2.settings_table_size = cx.stats.h2.settings_table_size.max(v as u64);
                    }
                }
            }
            Frame::GoAway { last_stream, code } => {
                cx.stats.h2.goaways += 1;
                self.goaway[i] = Some((last_stream, code));
                // Streams the sender will not process (those its peer opened, odd ids for the
                // client's, even for pushed ones, past the last one named), and with an
                // error, every open stream.
                let peer_opened = |id: u32| (id % 2 == 1) == (i == 1);
                let ids: Vec<u32> = self.streams.keys().copied().filter(|&id| (peer_opened(id) && id > last_stream) || code != 0).collect();
                for id in ids {
                    if let Some(s) = self.streams.get_mut(&id) {
                        s.anomalies.push(Anomaly::Http2(H2Anomaly::GoAway { by_server: i == 1, code, last_stream }));
                    }
                }
            }
            Frame::Settings { ack: true, .. }
            | Frame::Data { .. }
            | Frame::Priority
            | Frame::Ping
            | Frame::WindowUpdate
            | Frame::Unknown => {}
        }
    }

    /// Adds a fragment to a header block; decodes it when it is complete.
    fn block_part(&mut self, i: usize, mut block: Block, fragment: &[u8], end: bool, last: Chunk, cx: &mut Ctx<'_>) {
        let cap = cx.limits.h2.max_header_list;
        if !block.dropped {
            if block.bytes.len() + fragment.len() > cap {
                block.dropped = true;
                block.bytes = Vec::new();
            } else if !(end && block.bytes.is_empty()) {
                block.bytes.extend_from_slice(fragment);
            }
        }
        if !end {
            self.dirs[i].block = Some(block);
            return;
        }
        let bytes: &[u8] = if block.bytes.is_empty() && !block.dropped { fragment } else { &block.bytes };
        let mut fields = Vec::new();
        let result = if block.dropped {
            self.dirs[i].hpack.lose_state();
            Err(BlockError::TooLarge)
        } else {
            self.dirs[i].hpack.decode(bytes, cap, &mut fields)
        };
        cx.stats.h2.header_blocks += 1;
        let problem = match result {
            Ok(()) => None,
            Err(BlockError::Unknown) => {
                cx.stats.h2.header_blocks_unknown += 1;
                Some(H2Anomaly::HeadersUnknown)
            }
            Err(BlockError::Malformed(_)) => {
                cx.stats.h2.hpack_errors += 1;
                Some(H2Anomaly::HeadersUnknown)
            }
            Err(BlockError::TooLarge) => {
                cx.stats.h2.header_lists_over_cap += 1;
                Some(H2Anomaly::HeaderListCap)
            }
        };
        let (pseudo, regular): (Vec<Field>, Vec<Field>) = fields.into_iter().partition(|(n, _)| n.first() == Some(&b':'));
        let first = block.first;
        match block.promised {
            Some(promised) => self.promise(block.stream, promised, pseudo, regular, problem, first, last, cx),
            None => self.headers(i, block.stream, pseudo, regular, problem, block.end_stream, first, last, cx),
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn headers(
        &mut self,
        i: usize,
        id: u32,
        pseudo: Vec<Field>,
        fields: Vec<Field>,
        problem: Option<H2Anomaly>,
        end_stream: bool,
        first: Chunk,
        last: Chunk,
        cx: &mut Ctx<'_>,
    ) {
        let limits = cx.limits.http;
        if !self.streams.contains_key(&id) {
            if self.streams.len() >= cx.limits.h2.max_streams {
                // Past the cap on streams open at once: this one is written as far as it
                // got (its headers) and not followed.
                cx.stats.h2.streams_over_cap += 1;
                let mut s = self.open(first.ts);
                s.anomalies.push(Anomaly::Http2(H2Anomaly::StreamCap));
                let mut m = Msg::new(pseudo, fields, first, last);
                m.unknown = problem.is_some();
                if i == 0 {
                    s.req = Some(m);
                } else {
                    s.resp = Some(m);
                }
                self.emit(id, s, cx);
                return;
            }
            let mut s = self.open(first.ts);
            if self.midstream {
                // Any stream may have begun before the capture (its table entries too).
                s.anomalies.push(Anomaly::MidStream);
            }
            self.streams.insert(id, s);
            cx.stats.h2.streams += 1;
        }
        let s = self.streams.get_mut(&id).expect("inserted");
        if let Some(p) = problem
            && !s.anomalies.contains(&Anomaly::Http2(p))
        {
            s.anomalies.push(Anomaly::Http2(p));
        }
        let slot = if i == 0 { &mut s.req } else { &mut s.resp };
        match slot {
            Some(m) if !m.unknown || problem.is_some() => {
                // A second block on the same side: trailers.
                if problem.is_none() {
                    m.trailers.extend(pseudo.into_iter().chain(fields));
                }
                m.last = last;
                if end_stream {
                    self.end_message(i, id, last, cx);
                }
                return;
            }
            _ => {}
        }
        if i == 1 && problem.is_none() {
            let status = status_of(&pseudo);
            if (100..200).contains(&status) {
                cx.stats.http.interim_responses += 1;
                s.interim.push(status);
                return;
            }
        }
        let mut m = Msg::new(pseudo, fields, first, last);
        m.unknown = problem.is_some();
        if i == 0 {
            cx.stats.http.requests += 1;
        } else {
            cx.stats.http.responses += 1;
        }
        if !end_stream && !m.unknown {
            m.start_body(limits, i == 1, &mut s.anomalies, cx);
        }
        *slot = Some(m);
        if end_stream {
            self.end_message(i, id, last, cx);
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn promise(
        &mut self,
        parent: u32,
        id: u32,
        pseudo: Vec<Field>,
        fields: Vec<Field>,
        problem: Option<H2Anomaly>,
        first: Chunk,
        last: Chunk,
        cx: &mut Ctx<'_>,
    ) {
        cx.stats.h2.pushed += 1;
        if self.streams.len() >= cx.limits.h2.max_streams {
            cx.stats.h2.streams_over_cap += 1;
            return;
        }
        let mut s = self.open(first.ts);
        s.pushed_by = Some(parent);
        if let Some(p) = problem {
            s.anomalies.push(Anomaly::Http2(p));
        }
        let mut m = Msg::new(pseudo, fields, first, last);
        m.unknown = problem.is_some();
        m.done = true;
        s.req = Some(m);
        self.streams.insert(id, s);
        cx.stats.h2.streams += 1;
    }

    /// A stream opening now, numbered.
    fn open(&mut self, start: Ts) -> Stream {
        let mut s = Stream::new(start);
        s.index = self.next_index;
        self.next_index += 1;
        s
    }

    /// DATA bytes of stream `id`.
    fn body(&mut self, i: usize, id: u32, bytes: &[u8], chunk: Chunk, cx: &mut Ctx<'_>) {
        let Some(s) = self.streams.get_mut(&id) else {
            cx.stats.h2.orphan_data_bytes += bytes.len() as u64;
            return;
        };
        let slot = if i == 0 { &mut s.req } else { &mut s.resp };
        let Some(m) = slot.as_mut() else {
            cx.stats.h2.orphan_data_bytes += bytes.len() as u64;
            return;
        };
        m.body_wire_len += bytes.len() as u64;
        if chunk.frame >= m.last.frame {
            m.last = chunk;
        }
        if m.gap == 0
            && let Some(d) = m.dec.as_mut()
        {
            d.push(bytes);
        }
    }

    /// Side `i` of stream `id` ended (END_STREAM).
    fn end_message(&mut self, i: usize, id: u32, chunk: Chunk, cx: &mut Ctx<'_>) {
        let Some(s) = self.streams.get_mut(&id) else { return };
        let slot = if i == 0 { &mut s.req } else { &mut s.resp };
        match slot {
            Some(m) => {
                if chunk.frame >= m.last.frame {
                    m.last = chunk;
                }
                m.done = true;
            }
            None => {
                // END_STREAM without headers on this side (they were lost).
                let mut m = Msg::new(Vec::new(), Vec::new(), chunk, chunk);
                m.unknown = true;
                m.done = true;
                *slot = Some(m);
            }
        }
        self.try_emit(id, cx);
    }

    /// Marks stream `id` (if open) with `a`, for side `i`'s headers.
    fn damage(&mut self, _i: usize, id: u32, a: H2Anomaly, _cx: &mut Ctx<'_>) {
        if let Some(s) = self.streams.get_mut(&id)
            && !s.anomalies.contains(&Anomaly::Http2(a))
        {
            s.anomalies.push(Anomaly::Http2(a));
        }
    }

    fn try_emit(&mut self, id: u32, cx: &mut Ctx<'_>) {
        if self.streams.get(&id).is_some_and(Stream::over) {
            let s = self.streams.remove(&id).expect("present");
            self.emit(id, s, cx);
        }
    }

    /// Frame boundaries are lost on side `i`: looks for two plausible frame headers in a
    /// row. Bytes are held (at most [`RESYNC_MAX_LEN`] plus a header) while a candidate's
    /// frame is incomplete.
    fn resync(&mut self, i: usize, b: &[u8], chunk: Chunk, scanned: usize, cx: &mut Ctx<'_>) -> usize {
        let d = &mut self.dirs[i];
        d.buf.extend_from_slice(b);
        let buf = std::mem::take(&mut d.buf);
        let mut p = 0;
        let found = loop {
            if p + frame::HEADER_LEN > buf.len() {
                break None;
            }
            let h = Header::parse(&buf[p..]).expect("9 bytes");
            if h.plausible(RESYNC_MAX_LEN) && self.stream_plausible(i, &h) {
                let next = p + frame::HEADER_LEN + h.len as usize;
                match Header::parse(buf.get(next..).unwrap_or(&[])) {
                    Some(h2) if h2.plausible(RESYNC_MAX_LEN) && self.stream_plausible(i, &h2) => break Some(p),
                    Some(_) => {}
                    None if next + frame::HEADER_LEN > buf.len() && buf.len() - p < RESYNC_MAX_LEN as usize + 2 * frame::HEADER_LEN => {
                        // Not enough bytes to check the next header: wait for more.
                        break None;
                    }
                    None => {}
                }
            }
            p += 1;
        };
        match found {
            Some(p) => {
                cx.stats.h2.resyncs += 1;
                cx.stats.h2.bytes_not_parsed += p as u64;
                let d = &mut self.dirs[i];
                d.st = St::Frames;
                d.buf = Vec::new();
                // The bytes held, from the frame found on, are parsed as frames; the chunk
                // is the current one (the held bytes came with earlier ones).
                let held = &buf[p..];
                let start = chunk.offset.saturating_sub((buf.len() - b.len()) as u64) + p as u64;
                let mut at = Chunk { offset: start, ..chunk };
                let mut rest = held;
                while !rest.is_empty() {
                    let used = self.step(i, rest, at, cx);
                    rest = &rest[used..];
                    at.offset += used as u64;
                }
            }
            None => {
                let d = &mut self.dirs[i];
                // Keep what may still hold a frame header's start.
                let keep_from = p.min(buf.len());
                cx.stats.h2.bytes_not_parsed += keep_from as u64;
                let scanned = scanned + keep_from;
                d.buf = buf[keep_from..].to_vec();
                if scanned > RESYNC_SCAN {
                    cx.stats.h2.bytes_not_parsed += d.buf.len() as u64;
                    d.buf = Vec::new();
                    d.st = St::Off;
                } else {
                    d.st = St::Lost { scanned };
                }
            }
        }
        b.len()
    }

    /// Whether a frame header found while searching fits the streams known: DATA and
    /// CONTINUATION only on streams open on this side; a new stream from the client only
    /// with an odd id.
    fn stream_plausible(&self, i: usize, h: &Header) -> bool {
        match h.kind {
            frame::DATA | frame::CONTINUATION => {
                self.streams.is_empty() || self.streams.contains_key(&h.stream) || self.dirs[i].block.is_some()
            }
            frame::HEADERS if i == 0 => h.stream % 2 == 1,
            _ => true,
        }
    }

    /// `len` bytes of one side are missing.
    pub fn gap(&mut self, side: Side, len: u64, _ts: Ts, cap: Option<crate::proto::http1::Cap>, cx: &mut Ctx<'_>) {
        self.count(cx);
        let i = side as usize;
        let d = &mut self.dirs[i];
        d.fresh = false;
        if let St::Data(run) = &mut d.st
            && (len as u32 as u64 == len)
            && (len as u32) < run.left
        {
            // Inside a DATA frame: only that body loses bytes.
            let id = run.stream;
            run.left -= len as u32;
            if run.pad_byte {
                run.pad_byte = false;
                run.pad = 0;
            }
            run.pad = run.pad.min(run.left);
            if let Some(m) = self.streams.get_mut(&id).and_then(|s| if i == 0 { s.req.as_mut() } else { s.resp.as_mut() }) {
                m.gap += len;
                m.body_wire_len += len;
                if let Some(d) = m.dec.as_mut() {
                    d.finish();
                }
            }
            if let Some(s) = self.streams.get_mut(&id) {
                s.anomalies.push(Anomaly::Gap { response: i == 1, bytes: len, cap });
            }
            return;
        }
        if let St::Skip(left) = &mut d.st
            && len < *left as u64
        {
            *left -= len as u32;
            return;
        }
        if matches!(d.st, St::Off) {
            return;
        }
        // The frame boundaries are lost, and with them the header blocks in the gap.
        cx.stats.h2.sides_lost += 1;
        d.st = St::Lost { scanned: 0 };
        d.buf.clear();
        d.frame_first = None;
        d.hpack.lose_state();
        let block = d.block.take().map(|b| b.stream);
        if let Some(id) = block {
            self.damage(i, id, H2Anomaly::HeadersUnknown, cx);
        }
        // Every stream with a message in progress on this side may have lost bytes.
        for s in self.streams.values_mut() {
            let m = if i == 0 { s.req.as_mut() } else { s.resp.as_mut() };
            if let Some(m) = m.filter(|m| !m.done) {
                m.gap += len;
                if let Some(d) = m.dec.as_mut() {
                    d.finish();
                }
                s.anomalies.push(Anomaly::Gap { response: i == 1, bytes: len, cap });
            }
        }
    }

    /// The connection ended: every open stream is handed out as it is.
    pub fn end(&mut self, _clean: bool, _ts: Ts, cap: Option<crate::proto::http1::Cap>, cx: &mut Ctx<'_>) {
        self.count(cx);
        for d in &mut self.dirs {
            if let Some(b) = d.block.take() {
                let id = b.stream;
                if let Some(s) = self.streams.get_mut(&id) {
                    s.anomalies.push(Anomaly::Http2(H2Anomaly::HeadersUnknown));
                }
            }
        }
        let streams = std::mem::take(&mut self.streams);
        for (id, mut s) in streams {
            for (resp, m) in [(false, s.req.as_ref()), (true, s.resp.as_ref())] {
                match m {
                    Some(m) if !m.done => {
                        cx.stats.http.incomplete_messages += 1;
                        s.anomalies.push(Anomaly::Incomplete { response: resp });
                    }
                    None if resp && !s.reset => {
                        cx.stats.http.no_response += 1;
                        s.anomalies.push(Anomaly::NoResponse);
                    }
                    _ => {}
                }
            }
            if let Some(cap) = cap
                && !s.over()
            {
                s.anomalies.push(Anomaly::EndedByCap { cap });
            }
            self.emit(id, s, cx);
        }
    }

    fn emit(&mut self, id: u32, mut s: Stream, cx: &mut Ctx<'_>) {
        let request = s.req.take().and_then(|m| m.finish(false, true, &mut s.anomalies, cx));
        let response = s.resp.take().and_then(|m| m.finish(true, false, &mut s.anomalies, cx));
        if request.is_none() && response.is_none() && s.anomalies.is_empty() {
            return;
        }
        if request.is_none() {
            cx.stats.http.no_request += 1;
            s.anomalies.insert(0, Anomaly::NoRequest);
        }
        let (request, req_pseudo) = request.map_or((None, Vec::new()), |(m, p)| (Some(m), p));
        let (response, resp_pseudo) = response.map_or((None, Vec::new()), |(m, p)| (Some(m), p));
        let grpc = request.as_ref().and_then(|q| {
            let path = req_pseudo.iter().find(|(n, _)| n == b":path").map_or(&b""[..], |(_, v)| v.as_slice());
            super::grpc::Grpc::of(path, q, response.as_ref(), cx.limits.http.max_body)
        });
        if let Some(g) = grpc.as_ref() {
            cx.stats.h2.grpc_calls += 1;
            for (response, side) in [(false, &g.requests), (true, &g.responses)] {
                if side.trailing > 0 {
                    s.anomalies.push(Anomaly::Http2(H2Anomaly::GrpcIncomplete { response, bytes: side.trailing }));
                }
                for m in side.messages.iter().filter(|m| m.error.is_some()) {
                    cx.stats.http.decode_errors += 1;
                    s.anomalies
                        .push(Anomaly::DecodeError { response, error: format!("gRPC message: {}", m.error.as_deref().unwrap_or("")) });
                }
                let cut = side.messages.iter().filter(|m| m.truncated).count() as u64;
                if cut > 0 {
                    cx.stats.h2.grpc_messages_truncated += cut;
                    s.anomalies.push(Anomaly::Http2(H2Anomaly::GrpcTruncated { response, messages: cut }));
                }
            }
        }
        // After the gRPC messages: a cap that cut one of them damaged the exchange too.
        crate::proto::http1::count_exchange(&mut cx.stats.http, &s.anomalies);
        let facts = H2Facts {
            stream: id,
            scheme: self.scheme,
            request_pseudo: req_pseudo,
            response_pseudo: resp_pseudo,
            pushed_by: s.pushed_by,
            upgraded: s.upgraded,
            grpc: grpc.map(Box::new),
        };
        let ex = Exchange {
            conn: self.meta,
            index: s.index,
            request,
            response,
            interim: s.interim,
            anomalies: s.anomalies,
            tunnel: None,
            websocket: None,
            h2: Some(Box::new(facts)),
            tls: None,
        };
        self.exchanges += 1;
        cx.sink.exchange(ex);
    }
}

impl Msg {
    fn new(pseudo: Vec<Field>, fields: Vec<Field>, first: Chunk, last: Chunk) -> Msg {
        Msg {
            fields,
            pseudo,
            unknown: false,
            dec: None,
            codings: Vec::new(),
            body_wire_len: 0,
            gap: 0,
            first,
            last,
            trailers: Vec::new(),
            done: false,
            given: None,
        }
    }

    /// Sets up the body's decoder from `content-encoding`, as HTTP/1 does.
    fn start_body(&mut self, limits: HttpLimits, response: bool, anomalies: &mut Vec<Anomaly>, cx: &mut Ctx<'_>) {
        let mut codings = Vec::new();
        let mut unknown = None;
        for (n, v) in &self.fields {
            if n.eq_ignore_ascii_case(b"content-encoding")
                && let Some(u) = decode::parse_codings(v, &mut codings)
            {
                unknown.get_or_insert_with(|| String::from_utf8_lossy(u).into_owned());
            }
        }
        if let Some(coding) = unknown {
            cx.stats.http.unsupported_codings += 1;
            codings.clear();
            anomalies.push(Anomaly::UnsupportedCoding { response, coding });
        }
        let mut d = BodyDecoder::deferred(&codings, limits.max_body);
        if let Some(n) = self
            .fields
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(b"content-length"))
            .and_then(|(_, v)| std::str::from_utf8(v).ok()?.trim().parse::<u64>().ok())
        {
            d.expect(n);
        }
        self.codings = codings;
        self.dec = Some(d);
    }

    /// The finished message as HTTP/1's writers take it, with its pseudo-header fields;
    /// `None` when its fields are unknown.
    fn finish(mut self, response: bool, _request: bool, anomalies: &mut Vec<Anomaly>, cx: &mut Ctx<'_>) -> Option<(Message, Vec<Field>)> {
        if let Some(m) = self.given.take() {
            return Some((m, Vec::new()));
        }
        if self.gap > 0 {
            cx.stats.http.messages_with_gaps += 1;
        }
        if self.unknown {
            return None;
        }
        let head = synthetic_head(&self.pseudo, &self.fields, response);
        let mut msg = Message {
            head,
            body: Vec::new(),
            body_wire_len: self.body_wire_len,
            entity_len: self.body_wire_len,
            codings: std::mem::take(&mut self.codings),
            body_is_encoded: false,
            body_truncated: false,
            body_dropped: 0,
            body_not_decoded: 0,
            trailers: std::mem::take(&mut self.trailers),
            first_ts: self.first.ts,
            last_ts: self.last.ts,
            first_frame: self.first.frame,
            last_frame: self.last.frame,
            stream_offset: self.first.offset,
            body_times: Vec::new(),
            unredacted_len: None,
            max_events: cx.limits.http.max_messages,
        };
        if let Some(mut d) = self.dec.take() {
            d.finish();
            msg.entity_len = d.encoded_len;
            if d.truncated {
                msg.body_truncated = true;
                if d.was_cut() {
                    cx.stats.http.bodies_cut_by_total += 1;
                    anomalies.push(Anomaly::CutByTotal { response });
                } else {
                    cx.stats.http.truncated_bodies += 1;
                    anomalies.push(Anomaly::Truncated { response });
                }
                msg.body_dropped = d.dropped_len();
                msg.body_not_decoded = d.undecoded_len();
                cx.stats.http.body_bytes_dropped += msg.body_dropped;
                cx.stats.http.body_bytes_not_decoded += msg.body_not_decoded;
            }
            if let Some(e) = d.error.take()
                && self.gap == 0
            {
                cx.stats.http.decode_errors += 1;
                anomalies.push(Anomaly::DecodeError { response, error: e });
            }
            msg.body_is_encoded = d.fell_back_to_raw();
            if msg.body_is_encoded {
                msg.codings.clear();
            }
            msg.body = std::mem::take(&mut d.out);
        }
        Some((msg, self.pseudo))
    }
}

/// `:status` as a number (0 when absent or not a number).
fn status_of(pseudo: &[Field]) -> u16 {
    pseudo
        .iter()
        .find(|(n, _)| n == b":status")
        .and_then(|(_, v)| std::str::from_utf8(v).ok()?.parse().ok())
        .filter(|s| (100..1000).contains(s))
        .unwrap_or(0)
}

fn pseudo_value<'a>(pseudo: &'a [Field], name: &[u8]) -> &'a [u8] {
    pseudo.iter().find(|(n, _)| n == name).map_or(&[][..], |(_, v)| v.as_slice())
}

/// An HTTP/1-shaped head holding an HTTP/2 message's fields: the start line from the
/// pseudo-header fields (`:method` and `:path`, or `:authority` for CONNECT; `:status`),
/// version `HTTP/2.0`, the regular fields in wire order. The writers read it as any head;
/// `headersSize` is -1 for it (the HAR writer knows by [`Exchange::h2`]).
pub fn synthetic_head(pseudo: &[Field], fields: &[Field], response: bool) -> Head {
    let mut raw = Vec::with_capacity(64 + fields.iter().map(|(n, v)| n.len() + v.len() + 4).sum::<usize>());
    let span = |raw: &Vec<u8>, start: usize| Span { start: start as u32, end: raw.len() as u32 };
    let line = if response {
        let status = status_of(pseudo);
        let v0 = raw.len();
        raw.extend_from_slice(b"HTTP/2.0");
        let version = span(&raw, v0);
        raw.push(b' ');
        raw.extend_from_slice(pseudo_value(pseudo, b":status"));
        let reason = Span { start: raw.len() as u32, end: raw.len() as u32 };
        StartLine::Response { version, status, reason }
    } else {
        let method = pseudo_value(pseudo, b":method");
        raw.extend_from_slice(method);
        let method_span = span(&raw, 0);
        raw.push(b' ');
        let t0 = raw.len();
        let path = pseudo_value(pseudo, b":path");
        raw.extend_from_slice(if path.is_empty() && method == b"CONNECT" { pseudo_value(pseudo, b":authority") } else { path });
        let target = span(&raw, t0);
        raw.push(b' ');
        let v0 = raw.len();
        raw.extend_from_slice(b"HTTP/2.0");
        StartLine::Request { method: method_span, target, version: span(&raw, v0) }
    };
    raw.extend_from_slice(b"\r\n");
    let mut headers = Vec::with_capacity(fields.len());
    for (n, v) in fields {
        let n0 = raw.len();
        raw.extend_from_slice(n);
        let ns = span(&raw, n0);
        raw.extend_from_slice(b": ");
        let v0 = raw.len();
        raw.extend_from_slice(v);
        let vs = span(&raw, v0);
        raw.extend_from_slice(b"\r\n");
        headers.push((ns, vs));
    }
    raw.extend_from_slice(b"\r\n");
    Head { raw, line, headers, lenient: None, dropped_lines: 0 }
}

/// The 9 bytes of a frame header.
fn frame_header_bytes(h: &Header) -> [u8; 9] {
    let l = h.len.to_be_bytes();
    let s = h.stream.to_be_bytes();
    [l[1], l[2], l[3], h.kind, h.flags, s[0], s[1], s[2], s[3]]
}
