//! The protocol layer: between TCP reassembly and the protocols, one stream handler per
//! connection, chosen by protocol detection.
//!
//! Contract: `flow` knows TCP only. For each connection it creates a [`Handler`] when the
//! first payload is seen and hands it the two reassembled byte streams as they come
//! ([`Handler::data`] with a [`Chunk`] saying where the bytes sit in their stream and which
//! frame carried them), the bytes known missing ([`Handler::gap`], with the cap that forced
//! the gap if one did), the end of each direction ([`Handler::side_closed`]) and of the
//! connection ([`Handler::end`]). Whatever the protocol, the handler turns them into
//! exchanges (the one model the HAR and witness writers consume) and hands them to the
//! shard's [`ExchangeSink`]. Dispatch is one `match` per call, never per byte.
//!
//! Detection, in the manner of Zeek's dynamic protocol detection and Suricata's probing
//! parsers: the first bytes a connection carries (either direction) choose the handler
//! ([`detect::probe`]): an HTTP/1.x request or status line, a TLS record header (or an SSLv2
//! ClientHello), the HTTP/2 client connection preface. Which side is the client comes from the
//! handshake when it was captured, else from the same first bytes, else from the ports
//! ([`detect::sender_role`], [`detect::first_port_is_server`]). Bytes that are none of these
//! go to the HTTP/1 handler, which searches them for HTTP for a while (a SOCKS or proxy
//! preamble may come first) and then gives the connection up as another protocol. When the
//! first bytes are too few to tell (a segment of one byte, say), they are held (at most the
//! 24 bytes of the preface) until the next bytes of that side; any other event first settles
//! the connection as HTTP/1, so that the HTTP/1 handler sees exactly the events it would
//! have seen without detection.
//!
//! Switches later in a connection stay inside the handler that sees them: CONNECT answered
//! 2xx and SOCKS preambles are followed by the HTTP/1 handler (`http1::tunnel`); `Upgrade:
//! h2c` answered 101 is the one switch of handler: the HTTP/1 handler reports it
//! ([`HttpConn::switch_pending`]) and hands over the exchange and where HTTP/2 starts in each
//! stream; this handler becomes [`Handler::Http2`] and feeds it the rest of the bytes. A side
//! captured from the middle whose first bytes are HTTP/2 frames ([`detect::h2_frames`]) goes
//! to the HTTP/2 handler too. `Upgrade: websocket` answered 101: the HTTP/1 handler holds the
//! handshake exchange and the bytes after the 101, and [`Handler::Ws`] (`ws::session`) takes
//! the connection over, checked once per call to the HTTP/1 handler (one branch, not per byte).
//!
//! [`sse`] parses server-sent events (used by the HAR writer for `text/event-stream` bodies).
//!
//! Handlers now: [`Handler::Http1`] (`http1::HttpConn`), [`Handler::Http2`] (`h2::H2Conn`),
//! [`Handler::Ws`], and for TLS connections a handler that recognizes them and counts them in
//! [`Detected`] without decoding: their bytes are not fed to the HTTP/1 parser, and
//! reassembly stops for them.

pub mod detect;
pub mod h2;
pub mod http1;
pub mod sse;
pub mod tls;
pub mod ws;

use crate::capture::Ts;
use crate::proto::h2::{H2Conn, H2Limits, H2Stats};
use crate::proto::http1::{HttpConn, HttpLimits, HttpStats};
use crate::proto::ws::session::{Rest, WsCaps, WsConn};
use crate::wire::Endpoint;

pub use crate::proto::http1::{Cap, Exchange, ExchangeSink};

/// Which side of the connection bytes come from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Side {
    Client = 0,
    Server = 1,
}

/// Where bytes handed to a handler come from.
#[derive(Clone, Copy, Debug)]
pub struct Chunk {
    pub ts: Ts,
    pub frame: u64,
    /// Offset of the first byte in its stream.
    pub offset: u64,
    /// The sender's acknowledgment of the other stream, as an offset in that stream.
    pub ack: Option<u64>,
}

/// The connection an exchange belongs to.
#[derive(Clone, Copy, Debug)]
pub struct ConnMeta {
    /// A stable id: the number of the connection's first frame.
    pub id: u64,
    pub client: Endpoint,
    pub server: Endpoint,
    /// When the client's SYN was seen.
    pub syn_ts: Option<Ts>,
    /// When the handshake completed (the client's ACK of the SYN-ACK).
    pub established_ts: Option<Ts>,
}

/// Caps of the protocol handlers, one struct per protocol.
#[derive(Clone, Debug, Default)]
pub struct Limits {
    pub http: HttpLimits,
    pub h2: H2Limits,
    /// TLS decryption: the key log (shared by every shard).
    pub tls: tls::TlsLimits,
}

impl From<HttpLimits> for Limits {
    fn from(http: HttpLimits) -> Limits {
        Limits { http, ..Limits::default() }
    }
}

/// Connections recognized as a protocol that is not decoded yet (their bytes are skipped).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct Detected {
    /// TLS connections (a TLS record header or an SSLv2 ClientHello first) seen without a key
    /// log: not decrypted (with one, they are counted in [`tls::TlsStats`]).
    pub tls_connections: u64,
}

impl std::ops::AddAssign for Detected {
    fn add_assign(&mut self, b: Detected) {
        self.tls_connections += b.tls_connections;
    }
}

/// Counters of the protocol handlers.
#[derive(Clone, Debug, Default)]
pub struct Stats {
    pub http: HttpStats,
    pub detected: Detected,
    pub h2: H2Stats,
    pub tls: tls::TlsStats,
    /// TLS connections not decrypted (the first [`tls::MAX_UNDECRYPTED_LISTED`]).
    pub tls_undecrypted: Vec<tls::Undecrypted>,
}

/// Everything a handler call needs besides the connection.
pub struct Ctx<'a> {
    pub limits: &'a Limits,
    pub stats: &'a mut Stats,
    pub sink: &'a mut dyn ExchangeSink,
}

impl Ctx<'_> {
    fn http(&mut self) -> crate::proto::http1::Ctx<'_> {
        crate::proto::http1::Ctx { limits: &self.limits.http, stats: &mut self.stats.http, sink: &mut *self.sink }
    }
}

/// A protocol that is recognized but not decoded yet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Opaque {
    Tls,
}

/// The stream handler of one connection.
pub enum Handler {
    /// No bytes seen yet (at most gaps): the HTTP/1 handler is the default, and has been told
    /// only of the gaps, the sides seen from their start, and closes.
    Detect(Box<HttpConn>),
    /// The first bytes of one side are too few to tell the protocol: they are held.
    Held(Box<Held>),
    Http1(Box<HttpConn>),
    /// A WebSocket after its `101` (`ws::session`).
    Ws(Box<WsConn>),
    /// TLS: decrypted with the key log, the plaintext handed to an inner handler.
    Tls(Box<tls::conn::TlsConn>),
    /// Recognized, not decoded: its bytes are skipped.
    Opaque(Opaque),
    /// HTTP/2: prior knowledge (the preface), or after `Upgrade: h2c` answered 101.
    Http2(Box<H2Conn>),
}

/// The first pieces of one side, held until the protocol can be told (at most
/// [`detect::PROBE_LEN`] bytes).
pub struct Held {
    http: Box<HttpConn>,
    side: Side,
    bytes: Vec<u8>,
    /// Each piece's length and where it came from, to hand them on as they came.
    pieces: Vec<(usize, Chunk)>,
}

impl Handler {
    /// A handler for a connection whose first payload was just seen.
    pub fn new(meta: ConnMeta) -> Handler {
        Handler::Detect(Box::new(HttpConn::new(meta)))
    }

    /// The protocol it was found to carry, once it was.
    pub fn protocol(&self) -> Option<&'static str> {
        match self {
            Handler::Detect(_) | Handler::Held(_) => None,
            Handler::Http1(_) => Some("HTTP/1.x"),
            Handler::Ws(_) => Some("WebSocket"),
            Handler::Tls(_) => Some("TLS"),
            Handler::Opaque(Opaque::Tls) => Some("TLS"),
            Handler::Http2(_) => Some("HTTP/2"),
        }
    }

    /// Says the side's stream is seen from its start (its SYN was captured).
    pub fn clean_start(&mut self, side: Side) {
        match self {
            Handler::Detect(h) | Handler::Http1(h) => h.clean_start(side),
            Handler::Held(held) => held.http.clean_start(side),
            Handler::Http2(h) => h.clean_start(side),
            // The plaintext starts clean when the hellos are seen.
            Handler::Ws(_) | Handler::Tls(_) | Handler::Opaque(_) => {}
        }
    }

    /// Whether nothing more is to be parsed (the connection is another protocol, a tunnel,
    /// or a protocol not decoded): reassembly may stop.
    pub fn is_done(&self) -> bool {
        match self {
            Handler::Http1(h) => h.is_done(),
            Handler::Tls(t) => t.is_done(),
            Handler::Detect(_) | Handler::Held(_) | Handler::Ws(_) | Handler::Http2(_) => false,
            Handler::Opaque(_) => true,
        }
    }

    /// The start of the earliest exchange not yet handed out.
    pub fn pending_start(&self) -> Option<Ts> {
        match self {
            Handler::Detect(h) | Handler::Http1(h) => h.pending_start(),
            Handler::Held(held) => {
                let first = held.pieces.first().map(|p| p.1.ts);
                match (first, held.http.meta.syn_ts) {
                    (Some(t), Some(syn)) => Some(t.min(syn)),
                    (t, syn) => t.or(syn),
                }
            }
            Handler::Ws(w) => w.pending_start(),
            Handler::Http2(h) => h.pending_start(),
            Handler::Tls(t) => t.pending_start(),
            Handler::Opaque(_) => None,
        }
    }

    /// Bytes the handler holds (heads being collected, bodies decoded so far, bytes held for
    /// detection).
    pub fn buffered_bytes(&self) -> usize {
        match self {
            Handler::Detect(h) | Handler::Http1(h) => h.buffered_bytes(),
            Handler::Held(held) => held.http.buffered_bytes() + held.bytes.capacity(),
            Handler::Ws(w) => w.buffered_bytes(),
            Handler::Http2(h) => h.buffered_bytes(),
            Handler::Tls(t) => t.buffered_bytes(),
            Handler::Opaque(_) => 0,
        }
    }

    /// Bytes held by the bodies in progress: (of bodies not cut yet, of all).
    pub fn bodies_held(&self) -> (usize, usize) {
        match self {
            Handler::Detect(h) | Handler::Http1(h) => h.bodies_held(),
            Handler::Held(held) => held.http.bodies_held(),
            Handler::Http2(h) => h.bodies_held(),
            Handler::Tls(t) => t.bodies_held(),
            Handler::Ws(_) | Handler::Opaque(_) => (0, 0),
        }
    }

    /// Cuts the bodies in progress (the total cap on bodies was hit).
    pub fn cut_bodies(&mut self) {
        match self {
            Handler::Detect(h) | Handler::Http1(h) => h.cut_bodies(),
            Handler::Held(held) => held.http.cut_bodies(),
            Handler::Http2(h) => h.cut_bodies(),
            Handler::Tls(t) => t.cut_bodies(),
            Handler::Ws(_) | Handler::Opaque(_) => {}
        }
    }

    /// Bytes of one side, in order.
    #[inline]
    pub fn data(&mut self, side: Side, bytes: &[u8], chunk: Chunk, cx: &mut Ctx<'_>) {
        match self {
            Handler::Http1(h) => {
                h.data(side, bytes, chunk, &mut cx.http());
                if h.websocket_ready() {
                    self.become_websocket(cx);
                } else if h.switch_pending() {
                    self.switch_to_h2c(side, bytes, chunk, cx);
                }
            }
            Handler::Ws(w) => w.data(side, bytes, chunk),
            Handler::Http2(h) => h.data(side, bytes, chunk, cx),
            Handler::Tls(t) => t.data(side, bytes, chunk, cx),
            Handler::Opaque(_) => {}
            _ if bytes.is_empty() => {}
            _ => self.detect(side, bytes, chunk, cx),
        }
    }

    /// The HTTP/1 handler saw `Upgrade: h2c` answered 101: the connection is HTTP/2 from the
    /// end of the 101's head (server) and of the request (client), the request being stream
    /// 1's. The bytes of this piece past the switch go to the new handler.
    #[cold]
    fn switch_to_h2c(&mut self, side: Side, bytes: &[u8], chunk: Chunk, cx: &mut Ctx<'_>) {
        let Handler::Http1(h) = self else { return };
        let Some((ex, at)) = h.take_switch() else { return };
        let Exchange { conn, index, request, response, interim, anomalies, .. } = ex;
        let mut interim = interim;
        interim.extend(response.as_ref().map(|r| r.head.status()));
        let Some(request) = request else { return };
        let h2 = H2Conn::upgraded(conn, &cx.limits.h2, request, index, interim, anomalies);
        cx.stats.http.tunnels = cx.stats.http.tunnels.saturating_sub(1);
        *self = Handler::Http2(Box::new(h2));
        let from = at[side as usize];
        let end = chunk.offset + bytes.len() as u64;
        if from >= chunk.offset && from < end {
            let k = (from - chunk.offset) as usize;
            self.data(side, &bytes[k..], Chunk { offset: from, ..chunk }, cx);
        }
    }

    /// The first bytes: chooses the handler.
    #[cold]
    fn detect(&mut self, side: Side, bytes: &[u8], chunk: Chunk, cx: &mut Ctx<'_>) {
        if let Handler::Held(held) = self
            && held.side != side
        {
            // The other side speaks before the held bytes could be told: HTTP/1, as without
            // detection.
            self.settle(cx);
            self.data(side, bytes, chunk, cx);
            return;
        }
        let verdict = match self {
            Handler::Held(held) => {
                let mut probe = [0u8; detect::PROBE_LEN];
                let n = held.bytes.len();
                let m = bytes.len().min(detect::PROBE_LEN - n);
                probe[..n].copy_from_slice(&held.bytes);
                probe[n..n + m].copy_from_slice(&bytes[..m]);
                detect::probe(&probe[..n + m])
            }
            _ => detect::probe(bytes),
        };
        match verdict {
            detect::Verdict::NeedMore => {
                let replaced = std::mem::replace(self, Handler::Opaque(Opaque::Tls));
                let mut held = match replaced {
                    Handler::Detect(http) => Box::new(Held { http, side, bytes: Vec::new(), pieces: Vec::new() }),
                    Handler::Held(held) => held,
                    other => {
                        *self = other;
                        return;
                    }
                };
                held.bytes.extend_from_slice(bytes);
                held.pieces.push((bytes.len(), chunk));
                *self = Handler::Held(held);
            }
            detect::Verdict::Http1 if !self.clean_sides()[side as usize] && detect::h2_frames(bytes) => {
                // HTTP/2 frames on a connection captured from the middle.
                self.become_h2(side, bytes, chunk, cx);
            }
            detect::Verdict::Http1 => {
                self.settle(cx);
                self.data(side, bytes, chunk, cx);
            }
            detect::Verdict::Tls if cx.limits.tls.keylog.is_none() => {
                // No key log: counted and listed (from the ClientHello when the first bytes
                // hold it whole), not reassembled further.
                cx.stats.detected.tls_connections += 1;
                let meta = match self {
                    Handler::Detect(http) => http.meta,
                    Handler::Held(held) => held.http.meta,
                    _ => return,
                };
                let first = match self {
                    Handler::Held(held) if held.side == side => [&held.bytes[..], bytes].concat(),
                    _ => bytes.to_vec(),
                };
                tls::conn::list_without_keys(meta, side, &first, cx.stats);
                *self = Handler::Opaque(Opaque::Tls);
            }
            detect::Verdict::Tls => {
                cx.stats.tls.connections += 1;
                let replaced = std::mem::replace(self, Handler::Opaque(Opaque::Tls));
                let (meta, held) = match replaced {
                    Handler::Detect(http) => (http.meta, None),
                    Handler::Held(held) => (held.http.meta, Some(held)),
                    other => {
                        *self = other;
                        return;
                    }
                };
                let mut t = Box::new(tls::conn::TlsConn::new(meta));
                if let Some(held) = held {
                    let mut at = 0;
                    for (len, c) in &held.pieces {
                        t.data(held.side, &held.bytes[at..at + len], *c, cx);
                        at += len;
                    }
                }
                t.data(side, bytes, chunk, cx);
                *self = Handler::Tls(t);
            }
            detect::Verdict::Http2 => self.become_h2(side, bytes, chunk, cx),
        }
    }

    /// The connection is HTTP/2 (the preface, or frames mid-stream): the HTTP/2 handler takes
    /// it, with the bytes held for detection first.
    fn become_h2(&mut self, side: Side, bytes: &[u8], chunk: Chunk, cx: &mut Ctx<'_>) {
        let meta = match self {
            Handler::Detect(h) => h.meta,
            Handler::Held(held) => held.http.meta,
            _ => return,
        };
        let clean = self.clean_sides();
        let mut h2 = H2Conn::new(meta, "http", &cx.limits.h2);
        for (k, c) in clean.into_iter().enumerate() {
            if c {
                h2.clean_start(if k == 0 { Side::Client } else { Side::Server });
            }
        }
        let held = std::mem::replace(self, Handler::Http2(Box::new(h2)));
        if let Handler::Held(held) = held {
            let Held { side, bytes: hb, pieces, .. } = *held;
            let mut at = 0;
            for (len, c) in pieces {
                self.data(side, &hb[at..at + len], c, cx);
                at += len;
            }
        }
        self.data(side, bytes, chunk, cx);
    }

    /// Which sides were said to be seen from their start (while detecting).
    fn clean_sides(&self) -> [bool; 2] {
        match self {
            Handler::Detect(h) => h.clean_sides(),
            Handler::Held(held) => held.http.clean_sides(),
            _ => [false; 2],
        }
    }

    /// Settles a connection still being detected as HTTP/1, handing on the bytes held.
    fn settle(&mut self, cx: &mut Ctx<'_>) {
        let replaced = std::mem::replace(self, Handler::Opaque(Opaque::Tls));
        *self = match replaced {
            Handler::Detect(http) => Handler::Http1(http),
            Handler::Held(held) => {
                let Held { mut http, side, bytes, pieces } = *held;
                let mut at = 0;
                for (len, chunk) in pieces {
                    http.data(side, &bytes[at..at + len], chunk, &mut cx.http());
                    at += len;
                }
                Handler::Http1(http)
            }
            other => other,
        };
    }

    /// `len` bytes of one side are missing: never captured (`cap` is `None`) or skipped
    /// because of `cap`.
    pub fn gap(&mut self, side: Side, len: u64, ts: Ts, cap: Option<Cap>, cx: &mut Ctx<'_>) {
        if let Handler::Held(_) = self {
            self.settle(cx);
        }
        match self {
            Handler::Detect(h) | Handler::Http1(h) => h.gap_by(side, len, ts, cap, &mut cx.http()),
            Handler::Ws(w) => w.gap(side, len, ts, cap),
            Handler::Http2(h) => h.gap(side, len, ts, cap, cx),
            Handler::Tls(t) => t.gap(side, len, ts, cap, cx),
            Handler::Held(_) | Handler::Opaque(_) => {}
        }
        self.become_websocket(cx);
    }

    /// One side's stream ended with its FIN (every byte before it delivered).
    pub fn side_closed(&mut self, side: Side, cx: &mut Ctx<'_>) {
        if let Handler::Held(_) = self {
            self.settle(cx);
        }
        match self {
            Handler::Detect(h) | Handler::Http1(h) => h.side_closed(side, &mut cx.http()),
            Handler::Ws(w) => w.side_closed(side),
            Handler::Tls(t) => t.side_closed(side, cx),
            Handler::Held(_) | Handler::Opaque(_) | Handler::Http2(_) => {}
        }
        self.become_websocket(cx);
    }

    /// The connection ended (`clean`: by FIN or RST rather than a timeout or the end of the
    /// capture), by `cap` when one ended it early.
    pub fn end(&mut self, clean: bool, ts: Ts, cap: Option<Cap>, cx: &mut Ctx<'_>) {
        if let Handler::Held(_) = self {
            self.settle(cx);
        }
        match self {
            Handler::Detect(h) | Handler::Http1(h) => h.end_keeping_websocket(clean, ts, cap, &mut cx.http()),
            Handler::Http2(h) => h.end(clean, ts, cap, cx),
            Handler::Tls(t) => t.end(clean, ts, cap, cx),
            Handler::Held(_) | Handler::Opaque(_) | Handler::Ws(_) => {}
        }
        self.become_websocket(cx);
        match self {
            Handler::Ws(w) => w.end(cap, &mut cx.stats.http, &mut *cx.sink),
            Handler::Detect(_) | Handler::Http1(_) | Handler::Held(_) | Handler::Opaque(_) | Handler::Http2(_) | Handler::Tls(_) => {}
        }
    }

    /// After a `101` to `Upgrade: websocket` whose exchange is finished: the WebSocket handler
    /// takes the connection over, with the bytes that followed the `101`.
    #[cold]
    fn become_websocket(&mut self, cx: &mut Ctx<'_>) {
        let Handler::Http1(h) = self else { return };
        let Some((ex, rest)) = h.take_websocket() else { return };
        let l = cx.limits.http;
        let message = ws::WsLimits { max_message: l.max_body, ..ws::WsLimits::default() };
        let caps = WsCaps { max_messages: l.max_messages, max_held: l.max_bodies_total, message };
        let mut w = Box::new(WsConn::new(ex, caps));
        for r in rest {
            match r {
                Rest::Data(side, bytes, chunk) => w.data(side, &bytes, chunk),
                Rest::Gap(side, len, ts, cap) => w.gap(side, len, ts, cap),
            }
        }
        *self = Handler::Ws(w);
    }
}

#[cfg(test)]
mod tests;
