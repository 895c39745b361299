//! Replay over HTTP/2 in cleartext with prior knowledge (h2c, RFC 9113 section 3.3): the
//! client side of one HTTP/2 connection, one request at a time, for `--http2-prior-knowledge`
//! and for gRPC calls (which need HTTP/2).
//!
//! Contract: [`H2Conn::exchange`] sends one prepared request on a new stream and reads its
//! response before the exchange's deadline: interim 1xx heads skipped, the final head, the
//! body (decoded as over HTTP/1.1, at most `max_body` bytes), the trailers. The connection
//! starts with the preface and our SETTINGS (no server push, a 16 MiB receive window per
//! stream and for the connection, refilled as the body is read); the target's SETTINGS are
//! acknowledged and applied (initial window, frame size), PINGs answered, flow control on
//! request bodies respected. Header blocks are encoded as literals that the target never
//! indexes (so no encoder state can go wrong; `authorization` and `cookie` as never-indexed)
//! and the target's are decoded with the HPACK decoder `convert` uses, every block in order,
//! so its table stays in step. A GOAWAY that leaves our stream out, or a REFUSED_STREAM
//! reset, means the request was not processed: the caller sends it again on a new
//! connection. Any other RST_STREAM fails the exchange (not the connection); a protocol
//! violation by the target fails it as a protocol error. Nothing here panics or waits past
//! the deadline.

use std::time::{Instant, SystemTime};

use super::client::{Conn, IoFail, Phase, Prepared, Received};
use crate::proto::h2::frame::{self, Frame, Header};
use crate::proto::h2::hpack;
use crate::proto::http1::decode::{BodyDecoder, parse_codings};

/// The client connection preface (RFC 9113 section 3.4).
const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
/// Our receive window, per stream and for the connection.
const WINDOW: u32 = 1 << 24;
/// The protocol's initial window (RFC 9113 section 6.9.2).
const DEFAULT_WINDOW: i64 = 65_535;
/// The largest frame we accept: the default SETTINGS_MAX_FRAME_SIZE, which we never raise.
const MAX_FRAME: u32 = 1 << 14;
/// Largest response header list (decoded, RFC 9113 counting) and header block (encoded).
const MAX_HEADER_LIST: usize = 256 << 10;
/// Largest HPACK table of the target's encoder we follow (the default; we never raise it).
const TABLE: usize = hpack::DEFAULT_TABLE_SIZE;

const SETTINGS_ENABLE_PUSH: u16 = 0x2;
const SETTINGS_INITIAL_WINDOW_SIZE: u16 = 0x4;
const SETTINGS_MAX_FRAME_SIZE: u16 = 0x5;
const SETTINGS_MAX_HEADER_LIST_SIZE: u16 = 0x6;
const REFUSED_STREAM: u32 = 0x7;
const CANCEL: u32 = 0x8;

/// Appends one frame.
fn put_frame(out: &mut Vec<u8>, kind: u8, flags: u8, stream: u32, payload: &[u8]) {
    let n = payload.len() as u32;
    out.extend_from_slice(&n.to_be_bytes()[1..]);
    out.push(kind);
    out.push(flags);
    out.extend_from_slice(&(stream & 0x7fff_ffff).to_be_bytes());
    out.extend_from_slice(payload);
}

/// An HPACK integer with an `n`-bit prefix, the first byte's high bits `first` (RFC 7541 5.1).
fn put_int(out: &mut Vec<u8>, first: u8, n: u32, mut v: usize) {
    let max = (1usize << n) - 1;
    if v < max {
        out.push(first | v as u8);
        return;
    }
    out.push(first | max as u8);
    v -= max;
    while v >= 128 {
        out.push((v % 128) as u8 | 0x80);
        v /= 128;
    }
    out.push(v as u8);
}

/// An HPACK string literal, not Huffman-coded.
fn put_str(out: &mut Vec<u8>, s: &[u8]) {
    put_int(out, 0, 7, s.len());
    out.extend_from_slice(s);
}

/// Encodes a header list as literals without indexing (never indexed for credentials), new
/// names each time: the block depends on nothing but itself.
pub(super) fn encode_block(fields: &[(&[u8], &[u8])]) -> Vec<u8> {
    let mut out = Vec::with_capacity(fields.iter().map(|(n, v)| n.len() + v.len() + 4).sum());
    for (n, v) in fields {
        let never =
            n.eq_ignore_ascii_case(b"authorization") || n.eq_ignore_ascii_case(b"cookie") || n.eq_ignore_ascii_case(b"proxy-authorization");
        out.push(if never { 0x10 } else { 0x00 });
        put_str(&mut out, n);
        put_str(&mut out, v);
    }
    out
}

/// The response of the stream in flight, as it comes.
struct Stream {
    id: u32,
    /// What we may still send on it.
    send_window: i64,
    /// Received and not yet given back with WINDOW_UPDATE.
    unacked: u32,
    /// Some frame of the response came.
    any: bool,
    head: Option<(u16, Vec<(String, String)>)>,
    trailers: Vec<(String, String)>,
    ended: bool,
    dec: Option<BodyDecoder>,
    unknown_coding: Option<String>,
    wire: u64,
    truncated: bool,
    wait: Option<std::time::Duration>,
    max_body: usize,
}

impl Stream {
    fn phase(&self) -> Phase {
        if self.head.is_some() { Phase::Body(self.wire) } else { Phase::Waiting { any: self.any } }
    }
}

/// One HTTP/2 connection to the target.
pub(super) struct H2Conn {
    pub(super) conn: Conn,
    /// `:scheme`: `https` over TLS.
    scheme: &'static [u8],
    started: bool,
    dec: hpack::Decoder,
    next_stream: u32,
    /// The target's SETTINGS_INITIAL_WINDOW_SIZE and SETTINGS_MAX_FRAME_SIZE.
    peer_initial_window: i64,
    peer_max_frame: usize,
    /// What we may still send on the connection.
    send_window: i64,
    /// Received on the connection and not yet given back.
    unacked: u32,
    /// The last stream a GOAWAY said the target will process.
    goaway: Option<u32>,
    /// A header block being completed by CONTINUATION frames: stream, fragments, END_STREAM.
    block: Option<(u32, Vec<u8>, bool)>,
    /// Frames to send (acknowledgements, window updates), written before the next read.
    out: Vec<u8>,
}

impl H2Conn {
    pub(super) fn new(conn: Conn, tls: bool) -> H2Conn {
        H2Conn {
            conn,
            scheme: if tls { b"https" } else { b"http" },
            started: false,
            dec: hpack::Decoder::new(TABLE),
            next_stream: 1,
            peer_initial_window: DEFAULT_WINDOW,
            peer_max_frame: MAX_FRAME as usize,
            send_window: DEFAULT_WINDOW,
            unacked: 0,
            goaway: None,
            block: None,
            out: Vec::new(),
        }
    }

    /// Whether another request may go on this connection.
    pub(super) fn reusable(&self) -> bool {
        self.goaway.is_none() && self.next_stream < (1 << 31) - 2 && self.block.is_none() && self.dec.is_certain()
    }

    fn flush(&mut self, end: Instant) -> Result<(), IoFail> {
        if self.out.is_empty() {
            return Ok(());
        }
        let out = std::mem::take(&mut self.out);
        let r = self.conn.write_all(&out, end);
        self.out = out;
        self.out.clear();
        r
    }

    /// Sends `p` on a new stream and reads the response; also whether the connection may be
    /// used again.
    pub(super) fn exchange(
        &mut self,
        p: &Prepared,
        max_body: usize,
        end: Instant,
        t0: Instant,
        started: SystemTime,
    ) -> Result<(Received, bool), (IoFail, Phase)> {
        let sending = |f| (f, Phase::Sending);
        if !self.started {
            self.started = true;
            self.out.extend_from_slice(PREFACE);
            let mut s = Vec::with_capacity(24);
            for (id, v) in
                [(SETTINGS_ENABLE_PUSH, 0), (SETTINGS_INITIAL_WINDOW_SIZE, WINDOW), (SETTINGS_MAX_HEADER_LIST_SIZE, MAX_HEADER_LIST as u32)]
            {
                s.extend_from_slice(&id.to_be_bytes());
                s.extend_from_slice(&v.to_be_bytes());
            }
            put_frame(&mut self.out, frame::SETTINGS, 0, 0, &s);
            put_frame(&mut self.out, frame::WINDOW_UPDATE, 0, 0, &(WINDOW - DEFAULT_WINDOW as u32).to_be_bytes());
        }
        let id = self.next_stream;
        self.next_stream += 2;
        let mut st = Stream {
            id,
            send_window: self.peer_initial_window,
            unacked: 0,
            any: false,
            head: None,
            trailers: Vec::new(),
            ended: false,
            dec: None,
            unknown_coding: None,
            wire: 0,
            truncated: false,
            wait: None,
            max_body,
        };

        // The header block: pseudo-header fields first, then the fields as prepared, names in
        // lowercase, Host as :authority.
        let lower: Vec<(String, &str)> = p
            .headers
            .iter()
            .filter(|(n, _)| !n.eq_ignore_ascii_case("host") && (p.had_length || !n.eq_ignore_ascii_case("content-length")))
            .map(|(n, v)| (n.to_ascii_lowercase(), v.as_str()))
            .collect();
        let mut fields: Vec<(&[u8], &[u8])> = vec![
            (b":method", p.method.as_bytes()),
            (b":scheme", self.scheme),
            (b":authority", p.host.as_bytes()),
            (b":path", p.target.as_bytes()),
        ];
        fields.extend(lower.iter().map(|(n, v)| (n.as_bytes(), v.as_bytes())));
        if p.te_trailers {
            fields.push((b"te", b"trailers"));
        }
        let block = encode_block(&fields);
        let body = p.body.as_deref().filter(|b| !b.is_empty() || p.had_length);
        let no_body = body.is_none_or(<[u8]>::is_empty);
        let mut chunks = block.chunks(self.peer_max_frame).peekable();
        let mut kind = frame::HEADERS;
        if block.is_empty() {
            put_frame(&mut self.out, kind, frame::END_HEADERS | if no_body { frame::END_STREAM } else { 0 }, id, &[]);
        }
        while let Some(c) = chunks.next() {
            let last = chunks.peek().is_none();
            let mut flags = if last { frame::END_HEADERS } else { 0 };
            if kind == frame::HEADERS && no_body {
                flags |= frame::END_STREAM;
            }
            put_frame(&mut self.out, kind, flags, id, c);
            kind = frame::CONTINUATION;
        }
        self.flush(end).map_err(sending)?;

        // The body, as the target's windows allow.
        if let Some(body) = body.filter(|b| !b.is_empty()) {
            let mut off = 0;
            while off < body.len() {
                if st.ended {
                    // Answered before the whole body went: the rest is not needed.
                    break;
                }
                let room = self.send_window.min(st.send_window).min(self.peer_max_frame as i64);
                if room <= 0 {
                    self.read_frame(&mut st, end, t0)?;
                    self.flush(end).map_err(sending)?;
                    continue;
                }
                let n = (room as usize).min(body.len() - off);
                let last = off + n == body.len();
                put_frame(&mut self.out, frame::DATA, if last { frame::END_STREAM } else { 0 }, id, &body[off..off + n]);
                self.send_window -= n as i64;
                st.send_window -= n as i64;
                off += n;
                self.flush(end).map_err(sending)?;
            }
        }

        while !st.ended && !st.truncated {
            self.read_frame(&mut st, end, t0)?;
            self.flush(end).map_err(|f| (f, st.phase()))?;
        }
        let mut keep = true;
        if st.truncated && !st.ended {
            // Past --max-body: the stream is cancelled and the connection not used again (its
            // flow-control accounting would need the frames still on their way).
            put_frame(&mut self.out, frame::RST_STREAM, 0, id, &CANCEL.to_be_bytes());
            let _ = self.flush(end);
            keep = false;
        }
        let (status, headers) = st.head.take().unwrap_or_default();
        let mut dec = st.dec.take().unwrap_or_else(|| BodyDecoder::new(&[], max_body));
        dec.finish();
        let decode_error = match (st.unknown_coding.take(), dec.error.take()) {
            (Some(u), _) => Some(format!("unsupported content coding {u}; compared as received")),
            (None, Some(e)) => Some(e),
            _ => None,
        };
        let truncated = st.truncated || dec.truncated;
        if self.conn.avail().is_empty() {
            self.conn.buf = Vec::new();
            self.conn.pos = 0;
        }
        let received = Received {
            status,
            reason: String::new(),
            version: "HTTP/2.0".into(),
            headers,
            trailers: std::mem::take(&mut st.trailers),
            truncated,
            body: std::mem::take(&mut dec.out),
            decode_error,
            wire_len: st.wire,
            wait: st.wait.unwrap_or_else(|| t0.elapsed()),
            elapsed: t0.elapsed(),
            started,
            server_ip: self.conn.peer.ip().to_string(),
        };
        Ok((received, keep && !truncated && self.reusable()))
    }

    /// Reads one frame and acts on it.
    fn read_frame(&mut self, st: &mut Stream, end: Instant, t0: Instant) -> Result<(), (IoFail, Phase)> {
        let protocol = |st: &Stream, m: String| (IoFail::protocol(format!("HTTP/2 from the target: {m}")), st.phase());
        let h = loop {
            if let Some(h) = Header::parse(self.conn.avail()) {
                if h.len > MAX_FRAME {
                    return Err(protocol(st, format!("a frame of {} bytes, past SETTINGS_MAX_FRAME_SIZE ({MAX_FRAME})", h.len)));
                }
                if self.conn.avail().len() >= frame::HEADER_LEN + h.len as usize {
                    break h;
                }
            }
            let phase = st.phase();
            self.conn.fill(end).map_err(|f| (f, phase))?;
        };
        let total = frame::HEADER_LEN + h.len as usize;
        // The frame is copied out so that the connection's buffer can be refilled meanwhile.
        let payload = self.conn.avail()[frame::HEADER_LEN..total].to_vec();
        self.conn.consume(total);
        if self.block.is_some() && h.kind != frame::CONTINUATION {
            return Err(protocol(st, "a header block interrupted by another frame".into()));
        }
        let f = Frame::parse(&h, &payload).map_err(|e| protocol(st, e.to_string()))?;
        if h.stream == st.id {
            st.any = true;
        }
        match f {
            Frame::Settings { ack: false, params } => {
                for (id, v) in frame::settings(params) {
                    match id {
                        SETTINGS_INITIAL_WINDOW_SIZE => {
                            if v > 0x7fff_ffff {
                                return Err(protocol(st, "SETTINGS_INITIAL_WINDOW_SIZE past 2^31-1".into()));
                            }
                            st.send_window += v as i64 - self.peer_initial_window;
                            self.peer_initial_window = v as i64;
                        }
                        SETTINGS_MAX_FRAME_SIZE => {
                            if !(1 << 14..=frame::MAX_FRAME_LEN).contains(&v) {
                                return Err(protocol(st, format!("SETTINGS_MAX_FRAME_SIZE {v}")));
                            }
                            self.peer_max_frame = v as usize;
                        }
                        _ => {}
                    }
                }
                put_frame(&mut self.out, frame::SETTINGS, frame::ACK, 0, &[]);
            }
            Frame::Settings { ack: true, .. } => {}
            Frame::Ping => {
                if h.flags & frame::ACK == 0 {
                    put_frame(&mut self.out, frame::PING, frame::ACK, 0, &payload);
                }
            }
            Frame::WindowUpdate => {
                let inc = u32::from_be_bytes([payload[0], payload[1], payload[2], payload[3]]) & 0x7fff_ffff;
                if h.stream == 0 {
                    self.send_window += inc as i64;
                } else if h.stream == st.id {
                    st.send_window += inc as i64;
                }
            }
            Frame::GoAway { last_stream, code } => {
                self.goaway = Some(last_stream);
                if last_stream < st.id && st.head.is_none() {
                    // Our stream will not be processed: the request may go again elsewhere.
                    return Err((IoFail::Closed, Phase::Waiting { any: false }));
                }
                if code != 0 && st.head.is_none() {
                    return Err(protocol(st, format!("GOAWAY {}", frame::error_name(code))));
                }
            }
            Frame::RstStream { code } if h.stream == st.id => {
                if code == REFUSED_STREAM && st.head.is_none() {
                    return Err((IoFail::StreamReset(code), Phase::Waiting { any: false }));
                }
                return Err((IoFail::StreamReset(code), st.phase()));
            }
            Frame::PushPromise { .. } => return Err(protocol(st, "PUSH_PROMISE, though push was disabled".into())),
            Frame::Headers { fragment } => {
                let end_stream = h.flags & frame::END_STREAM != 0;
                if h.flags & frame::END_HEADERS == 0 {
                    self.block = Some((h.stream, fragment.to_vec(), end_stream));
                } else {
                    self.on_block(st, h.stream, fragment, end_stream, t0)?;
                }
            }
            Frame::Continuation { fragment } => {
                let Some((sid, mut buf, end_stream)) = self.block.take() else {
                    return Err(protocol(st, "CONTINUATION without a header block".into()));
                };
                if sid != h.stream {
                    return Err(protocol(st, "CONTINUATION on another stream".into()));
                }
                buf.extend_from_slice(fragment);
                if buf.len() > MAX_HEADER_LIST {
                    return Err(protocol(st, format!("a header block past {MAX_HEADER_LIST} bytes")));
                }
                if h.flags & frame::END_HEADERS == 0 {
                    self.block = Some((sid, buf, end_stream));
                } else {
                    self.on_block(st, sid, &buf, end_stream, t0)?;
                }
            }
            Frame::Data { data, .. } => {
                // Padding counts against the windows too.
                self.unacked += h.len;
                if self.unacked >= WINDOW / 2 {
                    put_frame(&mut self.out, frame::WINDOW_UPDATE, 0, 0, &self.unacked.to_be_bytes());
                    self.unacked = 0;
                }
                if h.stream == st.id {
                    if st.head.is_none() {
                        return Err(protocol(st, "DATA before the response head".into()));
                    }
                    st.unacked += h.len;
                    if st.unacked >= WINDOW / 2 && h.flags & frame::END_STREAM == 0 {
                        put_frame(&mut self.out, frame::WINDOW_UPDATE, 0, st.id, &st.unacked.to_be_bytes());
                        st.unacked = 0;
                    }
                    st.wire += data.len() as u64;
                    if let Some(d) = st.dec.as_mut() {
                        d.push(data);
                        if d.truncated || st.wire > st.max_body as u64 {
                            st.truncated = true;
                        }
                    }
                    if h.flags & frame::END_STREAM != 0 {
                        st.ended = true;
                    }
                }
            }
            Frame::Priority | Frame::Unknown | Frame::RstStream { .. } => {}
        }
        Ok(())
    }

    /// A complete header block on `sid`: decoded (whatever its stream, to keep the table in
    /// step), and on our stream the head or the trailers.
    fn on_block(&mut self, st: &mut Stream, sid: u32, block: &[u8], end_stream: bool, t0: Instant) -> Result<(), (IoFail, Phase)> {
        let protocol = |st: &Stream, m: String| (IoFail::protocol(format!("HTTP/2 from the target: {m}")), st.phase());
        let mut fields = Vec::new();
        if let Err(e) = self.dec.decode(block, MAX_HEADER_LIST, &mut fields) {
            let why = match e {
                hpack::BlockError::Unknown => "a header block refers to table entries never sent".to_string(),
                hpack::BlockError::Malformed(m) => format!("invalid HPACK: {m}"),
                hpack::BlockError::TooLarge => format!("a header list past {MAX_HEADER_LIST} bytes"),
            };
            // The table may be out of step: this connection is not used again.
            self.dec.lose_state();
            return Err(protocol(st, why));
        }
        if sid != st.id {
            return Ok(());
        }
        let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
        if st.head.is_none() {
            let status = fields.iter().find(|(n, _)| n == b":status").and_then(|(_, v)| std::str::from_utf8(v).ok()?.parse::<u16>().ok());
            let Some(status) = status.filter(|s| (100..1000).contains(s)) else {
                return Err(protocol(st, "a response without a valid :status".into()));
            };
            if (100..200).contains(&status) {
                if end_stream {
                    return Err(protocol(st, "an interim response ending the stream".into()));
                }
                return Ok(());
            }
            st.wait = Some(t0.elapsed());
            let headers: Vec<(String, String)> =
                fields.iter().filter(|(n, _)| !n.starts_with(b":")).map(|(n, v)| (text(n), text(v))).collect();
            let mut codings = Vec::new();
            for (n, v) in &headers {
                if n.eq_ignore_ascii_case("content-encoding")
                    && let Some(u) = parse_codings(v.as_bytes(), &mut codings)
                {
                    st.unknown_coding.get_or_insert_with(|| String::from_utf8_lossy(u).into_owned());
                }
            }
            if st.unknown_coding.is_some() {
                codings.clear();
            }
            st.dec = Some(BodyDecoder::new(&codings, st.max_body));
            st.head = Some((status, headers));
        } else {
            if !end_stream {
                return Err(protocol(st, "trailers that do not end the stream".into()));
            }
            st.trailers.extend(fields.iter().filter(|(n, _)| !n.starts_with(b":")).map(|(n, v)| (text(n), text(v))));
        }
        if end_stream {
            st.ended = true;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::replay::client::{Client, ClientConfig, Failure, prepare};
    use std::io::{Read, Write};
    use std::time::Duration;

    fn config(addr: std::net::SocketAddr) -> ClientConfig {
        ClientConfig {
            target: format!("http://{addr}").parse().unwrap(),
            keep_host: false,
            timeout: Duration::from_secs(3),
            max_body: 1 << 20,
            deadline: None,
            http2: true,
            tls: None,
        }
    }

    fn get(path: &str) -> crate::replay::har_in::RecEntry {
        let har = format!(
            r#"{{"log":{{"entries":[{{"request":{{"method":"GET","url":"http://x{path}","headers":[{{"name":"X-Case","value":"1"}}]}}}}]}}}}"#
        );
        crate::replay::har_in::parse_har(har.as_bytes(), false).unwrap().remove(0)
    }

    fn frame_bytes(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
        let mut v = Vec::new();
        put_frame(&mut v, kind, flags, stream, payload);
        v
    }

    fn headers(flags: u8, stream: u32, fields: &[(&str, &str)]) -> Vec<u8> {
        let f: Vec<(&[u8], &[u8])> = fields.iter().map(|(n, v)| (n.as_bytes(), v.as_bytes())).collect();
        frame_bytes(frame::HEADERS, flags, stream, &encode_block(&f))
    }

    /// What a scripted server saw of one request: its stream and the frames types received.
    #[derive(Debug, Default)]
    struct Seen {
        kinds: Vec<(u8, u8, u32)>,
        fields: Vec<(Vec<u8>, Vec<u8>)>,
    }

    /// A server that, on each of its connections in turn, answers the i-th request (a stream
    /// ended by the client) with `script[conn][i]` (a `{}` in it is the request's stream id as
    /// frames are built per stream: the script is a function of the stream id), then closes the
    /// connection once its script is done.
    #[allow(clippy::type_complexity)]
    fn serve(script: Vec<Vec<Box<dyn Fn(u32) -> Vec<u8> + Send>>>) -> (std::net::SocketAddr, std::thread::JoinHandle<Vec<Seen>>) {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        let t = std::thread::spawn(move || {
            let mut seen = Vec::new();
            for answers in script {
                let (mut s, _) = l.accept().unwrap();
                s.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
                let mut buf = Vec::new();
                let mut b = [0u8; 65536];
                let mut pos = 0usize;
                let mut preface = false;
                let mut dec = hpack::Decoder::new(4096);
                let _ = s.write_all(&frame_bytes(frame::SETTINGS, 0, 0, &[]));
                let mut cur = Seen::default();
                let mut answers = answers.into_iter();
                let mut next = answers.next();
                'conn: while next.is_some() {
                    // Frames until a request stream ends.
                    loop {
                        if !preface && buf.len() - pos >= PREFACE.len() {
                            assert_eq!(&buf[pos..pos + PREFACE.len()], PREFACE);
                            pos += PREFACE.len();
                            preface = true;
                        }
                        if preface
                            && let Some(h) = Header::parse(&buf[pos..])
                            && buf.len() - pos >= 9 + h.len as usize
                        {
                            let p = &buf[pos + 9..pos + 9 + h.len as usize];
                            cur.kinds.push((h.kind, h.flags, h.stream));
                            if h.kind == frame::HEADERS {
                                dec.decode(p, 1 << 20, &mut cur.fields).unwrap();
                            }
                            pos += 9 + h.len as usize;
                            if h.stream % 2 == 1 && matches!(h.kind, frame::HEADERS | frame::DATA) && h.flags & frame::END_STREAM != 0 {
                                let answer = next.take().unwrap();
                                if s.write_all(&answer(h.stream)).is_err() {
                                    break 'conn;
                                }
                                seen.push(std::mem::take(&mut cur));
                                next = answers.next();
                                continue 'conn;
                            }
                            continue;
                        }
                        match s.read(&mut b) {
                            Ok(0) | Err(_) => break 'conn,
                            Ok(n) => buf.extend_from_slice(&b[..n]),
                        }
                    }
                }
                // What came after the last answer (acknowledgements).
                std::thread::sleep(Duration::from_millis(50));
                let _ = s.set_nonblocking(true);
                while let Ok(n) = s.read(&mut b) {
                    if n == 0 {
                        break;
                    }
                    buf.extend_from_slice(&b[..n]);
                }
                while let Some(h) = Header::parse(&buf[pos..]) {
                    if buf.len() - pos < 9 + h.len as usize {
                        break;
                    }
                    cur.kinds.push((h.kind, h.flags, h.stream));
                    pos += 9 + h.len as usize;
                }
                seen.push(cur);
            }
            seen
        });
        (addr, t)
    }

    fn send(c: &mut Client, cfg: &ClientConfig, path: &str) -> Result<Received, Failure> {
        let p = prepare(cfg, &get(path)).unwrap();
        assert!(p.http2);
        c.send(&p)
    }

    #[test]
    fn interim_continuation_padding_trailers_and_ping() {
        let body = b"hello, HTTP/2 ".repeat(100);
        let gz = {
            let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
            e.write_all(&body).unwrap();
            e.finish().unwrap()
        };
        let (addr, t) = serve(vec![vec![Box::new(move |id| {
            let mut out = frame_bytes(frame::PING, 0, 0, b"12345678");
            out.extend(headers(frame::END_HEADERS, id, &[(":status", "103"), ("link", "</a>")]));
            // The head in a HEADERS and a CONTINUATION.
            let block = encode_block(&[(b":status", b"200"), (b"content-encoding", b"gzip"), (b"x-a", b"1")]);
            out.extend(frame_bytes(frame::HEADERS, 0, id, &block[..5]));
            out.extend(frame_bytes(frame::CONTINUATION, frame::END_HEADERS, id, &block[5..]));
            // The body in two DATA frames, the first padded.
            let (a, b) = gz.split_at(gz.len() / 2);
            let mut padded = vec![7u8];
            padded.extend_from_slice(a);
            padded.extend_from_slice(&[0; 7]);
            out.extend(frame_bytes(frame::DATA, frame::PADDED, id, &padded));
            out.extend(frame_bytes(frame::DATA, 0, id, b));
            out.extend(headers(frame::END_HEADERS | frame::END_STREAM, id, &[("grpc-status", "0"), ("x-t", "2")]));
            out
        })]]);
        let cfg = config(addr);
        let mut c = Client::new(&cfg);
        let r = send(&mut c, &cfg, "/a?b").unwrap();
        drop(c);
        assert_eq!((r.status, r.version.as_str()), (200, "HTTP/2.0"));
        assert_eq!(r.body, body);
        assert_eq!(r.headers, [("content-encoding".to_string(), "gzip".to_string()), ("x-a".into(), "1".into())]);
        assert_eq!(r.trailers, [("grpc-status".to_string(), "0".to_string()), ("x-t".into(), "2".into())]);
        let seen = t.join().unwrap();
        // The request: pseudo-header fields first, the target's authority, names in lowercase.
        let f: Vec<(String, String)> =
            seen[0].fields.iter().map(|(n, v)| (String::from_utf8_lossy(n).into(), String::from_utf8_lossy(v).into())).collect();
        assert_eq!(
            f[..4],
            [
                (":method".into(), "GET".into()),
                (":scheme".into(), "http".into()),
                (":authority".into(), addr.to_string()),
                (":path".into(), "/a?b".into())
            ]
        );
        assert_eq!(f[4..], [("x-case".to_string(), "1".to_string())]);
        // Our SETTINGS and connection window first; then the server's SETTINGS and PING were
        // acknowledged.
        let kinds = seen.iter().flat_map(|s| s.kinds.iter().copied()).collect::<Vec<_>>();
        assert_eq!(kinds[..2], [(frame::SETTINGS, 0, 0), (frame::WINDOW_UPDATE, 0, 0)]);
        assert!(kinds.contains(&(frame::SETTINGS, frame::ACK, 0)), "{kinds:?}");
        assert!(kinds.contains(&(frame::PING, frame::ACK, 0)), "{kinds:?}");
    }

    fn ok(id: u32) -> Vec<u8> {
        let mut out = headers(frame::END_HEADERS, id, &[(":status", "200")]);
        out.extend(frame_bytes(frame::DATA, frame::END_STREAM, id, format!("stream {id}").as_bytes()));
        out
    }

    #[test]
    fn goaway_and_refused_streams_are_sent_again_once() {
        // Connection 1: answers stream 1; then GOAWAY leaving stream 3 out. Connection 2: its
        // stream 1 refused. Connection 3: answered.
        let (addr, t) = serve(vec![
            vec![Box::new(ok), Box::new(|_| frame_bytes(frame::GOAWAY, 0, 0, &[0, 0, 0, 1, 0, 0, 0, 0]))],
            vec![Box::new(|id| frame_bytes(frame::RST_STREAM, 0, id, &REFUSED_STREAM.to_be_bytes()))],
            vec![Box::new(ok), Box::new(|id| frame_bytes(frame::RST_STREAM, 0, id, &2u32.to_be_bytes()))],
        ]);
        let cfg = config(addr);
        let mut c = Client::new(&cfg);
        assert_eq!(send(&mut c, &cfg, "/1").unwrap().body, b"stream 1");
        // Left out by GOAWAY: again on a new connection, which refuses it: not a third time.
        let f = send(&mut c, &cfg, "/2").unwrap_err();
        assert_eq!(f.kind, "reset");
        assert!(f.message.contains("REFUSED_STREAM"), "{f:?}");
        assert!(!f.connection_level);
        assert_eq!(send(&mut c, &cfg, "/3").unwrap().body, b"stream 1");
        // A reset with INTERNAL_ERROR fails the exchange, not the connection.
        let f = send(&mut c, &cfg, "/4").unwrap_err();
        assert_eq!((f.kind, f.connection_level), ("reset", false));
        assert!(f.message.contains("INTERNAL_ERROR"), "{f:?}");
        drop(c);
        t.join().unwrap();
    }

    #[test]
    fn protocol_violations_fail_the_exchange() {
        let data_first: Box<dyn Fn(u32) -> Vec<u8> + Send> = Box::new(|id| frame_bytes(frame::DATA, frame::END_STREAM, id, b"x"));
        let huge: Box<dyn Fn(u32) -> Vec<u8> + Send> = Box::new(|id| frame_bytes(frame::DATA, 0, id, &vec![0; 20_000]));
        let no_status: Box<dyn Fn(u32) -> Vec<u8> + Send> =
            Box::new(|id| headers(frame::END_HEADERS | frame::END_STREAM, id, &[("x", "1")]));
        let push: Box<dyn Fn(u32) -> Vec<u8> + Send> =
            Box::new(|id| frame_bytes(frame::PUSH_PROMISE, frame::END_HEADERS, id, &[0, 0, 0, 2]));
        let bad_hpack: Box<dyn Fn(u32) -> Vec<u8> + Send> =
            Box::new(|id| frame_bytes(frame::HEADERS, frame::END_HEADERS, id, &[0xff, 0xff, 0xff]));
        let cases = [
            ("DATA before", data_first),
            ("SETTINGS_MAX_FRAME_SIZE", huge),
            (":status", no_status),
            ("PUSH_PROMISE", push),
            ("HPACK", bad_hpack),
        ];
        for (want, answer) in cases {
            let (addr, t) = serve(vec![vec![answer]]);
            let cfg = config(addr);
            let mut c = Client::new(&cfg);
            let f = send(&mut c, &cfg, "/").unwrap_err();
            assert_eq!(f.kind, "protocol", "{want}: {f:?}");
            assert!(f.message.contains(want), "{want}: {f:?}");
            drop(c);
            t.join().unwrap();
        }
    }

    #[test]
    fn blocks_decode_with_our_decoder() {
        let long = vec![b'x'; 300];
        let fields: Vec<(&[u8], &[u8])> =
            vec![(b":method", b"POST"), (b":path", b"/a?b=c"), (b"authorization", b"Bearer t"), (b"x-long", &long[..])];
        let block = encode_block(&fields);
        let mut d = hpack::Decoder::new(TABLE);
        let mut out = Vec::new();
        d.decode(&block, MAX_HEADER_LIST, &mut out).unwrap();
        let got: Vec<(&[u8], &[u8])> = out.iter().map(|(n, v)| (&n[..], &v[..])).collect();
        assert_eq!(got, fields);
        // Nothing was indexed: the table is still empty.
        assert_eq!(d.held_bytes(), 0);
        // 300 does not fit the 7-bit prefix: 127, then 173 = 0xad -> 0x2d|0x80, 0x01.
        let mut i = Vec::new();
        put_int(&mut i, 0, 7, 300);
        assert_eq!(i, [0x7f, 0xad, 0x01]);
    }
}
