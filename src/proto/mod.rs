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
//! h2c` and `Upgrade: websocket` answered 101 are recorded as the exchange that asked for
//! them, and the connection becomes a tunnel.
//!
//! Parsers waiting for their handlers: [`ws`] (WebSocket frames, permessage-deflate) and [`sse`]
//! (server-sent events, used by the HAR writer for `text/event-stream` bodies).
//!
//! Handlers now: [`Handler::Http1`] (`http1::HttpConn`), and for TLS and HTTP/2 connections a
//! handler that recognizes them and counts them in [`Detected`] without decoding: their
//! bytes are not fed to the HTTP/1 parser, and reassembly stops for them.

pub mod detect;
pub mod http1;
pub mod sse;
pub mod tls;
pub mod ws;

use crate::capture::Ts;
use crate::proto::http1::{HttpConn, HttpLimits, HttpStats};
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
    /// Cleartext HTTP/2 connections with prior knowledge (the client connection preface
    /// first): not parsed.
    pub http2_connections: u64,
}

impl std::ops::AddAssign for Detected {
    fn add_assign(&mut self, b: Detected) {
        self.tls_connections += b.tls_connections;
        self.http2_connections += b.http2_connections;
    }
}

/// Counters of the protocol handlers.
#[derive(Clone, Debug, Default)]
pub struct Stats {
    pub http: HttpStats,
    pub detected: Detected,
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
    Http2,
}

/// The stream handler of one connection.
pub enum Handler {
    /// No bytes seen yet (at most gaps): the HTTP/1 handler is the default, and has been told
    /// only of the gaps, the sides seen from their start, and closes.
    Detect(Box<HttpConn>),
    /// The first bytes of one side are too few to tell the protocol: they are held.
    Held(Box<Held>),
    Http1(Box<HttpConn>),
    /// TLS: decrypted with the key log, the plaintext handed to an inner handler.
    Tls(Box<tls::conn::TlsConn>),
    /// Recognized, not decoded: its bytes are skipped.
    Opaque(Opaque),
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
            Handler::Tls(_) => Some("TLS"),
            Handler::Opaque(Opaque::Tls) => Some("TLS"),
            Handler::Opaque(Opaque::Http2) => Some("HTTP/2"),
        }
    }

    /// Says the side's stream is seen from its start (its SYN was captured).
    pub fn clean_start(&mut self, side: Side) {
        match self {
            Handler::Detect(h) | Handler::Http1(h) => h.clean_start(side),
            Handler::Held(held) => held.http.clean_start(side),
            // The plaintext starts clean when the hellos are seen.
            Handler::Tls(_) | Handler::Opaque(_) => {}
        }
    }

    /// Whether nothing more is to be parsed (the connection is another protocol, a tunnel,
    /// or a protocol not decoded): reassembly may stop.
    pub fn is_done(&self) -> bool {
        match self {
            Handler::Http1(h) => h.is_done(),
            Handler::Tls(t) => t.is_done(),
            Handler::Detect(_) | Handler::Held(_) => false,
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
            Handler::Tls(t) => t.buffered_bytes(),
            Handler::Opaque(_) => 0,
        }
    }

    /// Bytes held by the bodies in progress: (of bodies not cut yet, of all).
    pub fn bodies_held(&self) -> (usize, usize) {
        match self {
            Handler::Detect(h) | Handler::Http1(h) => h.bodies_held(),
            Handler::Held(held) => held.http.bodies_held(),
            Handler::Tls(t) => t.bodies_held(),
            Handler::Opaque(_) => (0, 0),
        }
    }

    /// Cuts the bodies in progress (the total cap on bodies was hit).
    pub fn cut_bodies(&mut self) {
        match self {
            Handler::Detect(h) | Handler::Http1(h) => h.cut_bodies(),
            Handler::Held(held) => held.http.cut_bodies(),
            Handler::Tls(t) => t.cut_bodies(),
            Handler::Opaque(_) => {}
        }
    }

    /// Bytes of one side, in order.
    #[inline]
    pub fn data(&mut self, side: Side, bytes: &[u8], chunk: Chunk, cx: &mut Ctx<'_>) {
        match self {
            Handler::Http1(h) => h.data(side, bytes, chunk, &mut cx.http()),
            Handler::Tls(t) => t.data(side, bytes, chunk, cx),
            Handler::Opaque(_) => {}
            _ if bytes.is_empty() => {}
            _ => self.detect(side, bytes, chunk, cx),
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
            detect::Verdict::Http2 => {
                cx.stats.detected.http2_connections += 1;
                *self = Handler::Opaque(Opaque::Http2);
            }
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
            Handler::Tls(t) => t.gap(side, len, ts, cap, cx),
            Handler::Held(_) | Handler::Opaque(_) => {}
        }
    }

    /// One side's stream ended with its FIN (every byte before it delivered).
    pub fn side_closed(&mut self, side: Side, cx: &mut Ctx<'_>) {
        if let Handler::Held(_) = self {
            self.settle(cx);
        }
        match self {
            Handler::Detect(h) | Handler::Http1(h) => h.side_closed(side, &mut cx.http()),
            Handler::Tls(t) => t.side_closed(side, cx),
            Handler::Held(_) | Handler::Opaque(_) => {}
        }
    }

    /// The connection ended (`clean`: by FIN or RST rather than a timeout or the end of the
    /// capture), by `cap` when one ended it early.
    pub fn end(&mut self, clean: bool, ts: Ts, cap: Option<Cap>, cx: &mut Ctx<'_>) {
        if let Handler::Held(_) = self {
            self.settle(cx);
        }
        match self {
            Handler::Detect(h) | Handler::Http1(h) => h.end_by(clean, ts, cap, &mut cx.http()),
            Handler::Tls(t) => t.end(clean, ts, cap, cx),
            Handler::Held(_) | Handler::Opaque(_) => {}
        }
    }
}

#[cfg(test)]
mod tests;
