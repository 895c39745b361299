//! HTTP/1.x over a reassembled TCP connection: message framing, pairing and decoding.
//!
//! Contract: an [`HttpConn`] receives the two byte streams of one connection as they are
//! reassembled ([`HttpConn::data`], [`HttpConn::gap`], [`HttpConn::end`]), in any piece sizes,
//! and hands complete [`Exchange`]s (owned) to a sink, in the order of their requests. It
//! never waits for more than the caps in [`HttpLimits`] allow, never panics on bad bytes, and
//! records everything it could not recover as [`Anomaly`]s on the exchange and counts in
//! [`HttpStats`].
//!
//! Framing follows RFC 9112: Content-Length, chunked (extensions, trailers), close-delimited
//! responses, HEAD responses and 1xx/204/304 without body, CONNECT and Upgrade (the exchange is
//! recorded, then the connection is a tunnel; a WebSocket's handshake is held for the
//! WebSocket handler instead, [`HttpConn::take_websocket`]), pipelining. After a gap or a malformed head the
//! stream resynchronises at the next line that starts a message. Responses are paired with
//! requests in order while nothing is lost. After lost bytes of the response stream (or a
//! response captured before its request) a response is placed by TCP evidence: it answers a
//! request the client sent before receiving it and the server had received when sending it,
//! after the request of the previous response; a request whose acknowledgment is exactly the
//! response's first byte is its own. Where that leaves more than one request, the response is
//! written without one (anomaly `UnknownRequest`) rather than on a request it may not answer.

pub mod decode;
pub mod head;
mod oneshot;
pub mod tunnel;

use std::collections::VecDeque;

use crate::capture::Ts;
pub use crate::proto::{Chunk, ConnMeta, Side};
use decode::{BodyDecoder, Coding};
use head::{Head, HeadError, Looks};

/// Caps of the HTTP layer.
#[derive(Clone, Copy, Debug)]
pub struct HttpLimits {
    /// Largest message head (start line and header fields), bytes.
    pub max_head: usize,
    /// Most header fields in one head.
    pub max_headers: usize,
    /// Largest decoded body kept per message, bytes; past it the body is truncated.
    pub max_body: usize,
    /// Bytes held by the bodies in progress of all connections (coded bodies count their
    /// encoded bytes: they are decoded when they end); past it the largest are cut where
    /// they are, truncated and flagged. Checked between windows of the capture.
    pub max_bodies_total: usize,
    /// Messages kept per entry: WebSocket messages of a connection, server-sent events of a
    /// response (`--max-messages`); the rest are counted.
    pub max_messages: usize,
}

/// Default of [`HttpLimits::max_messages`].
pub const MAX_MESSAGES: usize = 10_000;

impl Default for HttpLimits {
    fn default() -> Self {
        HttpLimits { max_head: 128 << 10, max_headers: 1024, max_body: 16 << 20, max_bodies_total: 64 << 20, max_messages: MAX_MESSAGES }
    }
}

/// Counters of the HTTP layer.
#[derive(Clone, Copy, Debug, Default, serde::Serialize)]
pub struct HttpStats {
    pub requests: u64,
    pub responses: u64,
    pub interim_responses: u64,
    pub exchanges: u64,
    pub no_response: u64,
    pub no_request: u64,
    pub lenient_heads: u64,
    pub malformed_heads: u64,
    pub oversized_heads: u64,
    pub messages_with_gaps: u64,
    pub incomplete_messages: u64,
    pub truncated_bodies: u64,
    /// Bodies cut by [`HttpLimits::max_bodies_total`].
    pub bodies_cut_by_total: u64,
    /// Bytes of truncated bodies that were not kept: for bodies without codings, all those
    /// past the cut; for coded ones, what decoded past it before decoding stopped.
    pub body_bytes_dropped: u64,
    /// Encoded bytes of truncated coded bodies never decoded (decoding stops at the cap).
    pub body_bytes_not_decoded: u64,
    pub decode_errors: u64,
    pub unsupported_codings: u64,
    pub bad_framing: u64,
    pub resyncs: u64,
    pub resync_skipped_bytes: u64,
    pub tunnels: u64,
    pub tunnel_bytes: u64,
    /// CONNECT tunnels and SOCKS connections whose cleartext HTTP was parsed.
    pub http_tunnels: u64,
    pub non_http_connections: u64,
    /// Responses after lost bytes whose request could not be told (written without one).
    pub unpaired_responses: u64,
    /// Responses after lost bytes placed on their request by TCP evidence (acknowledgments
    /// and the order of messages) rather than by position alone.
    pub paired_after_loss: u64,
    /// Exchanges damaged by each cap (an exchange hit by two caps counts for both).
    pub damaged_by_cap: CapDamage,
    /// WebSocket connections parsed after their `101`, their messages (data and control),
    /// those not kept past `--max-messages` (or the bytes cap), damaged, truncated at
    /// `--max-body`; times the framing was found again after a gap, and bytes passed over.
    pub ws_connections: u64,
    pub ws_messages: u64,
    pub ws_messages_dropped: u64,
    pub ws_messages_damaged: u64,
    pub ws_messages_truncated: u64,
    pub ws_resyncs: u64,
    pub ws_bytes_skipped: u64,
}

/// A cap that damaged an exchange, as opposed to bytes that were never captured.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Cap {
    /// `FlowLimits::max_ooo_per_conn`: a hole was skipped to make room.
    MaxOooPerConn,
    /// `FlowLimits::max_ooo_total`: a connection's buffers were flushed.
    MaxOooTotal,
    /// `FlowLimits::max_flows`: the connection was ended early.
    MaxFlows,
    /// `FlowLimits::idle_timeout_ns`: the connection was ended after a silence.
    IdleTimeout,
    /// [`HttpLimits::max_body`]: the decoded body was truncated.
    MaxBody,
    /// [`HttpLimits::max_bodies_total`]: a body in progress was cut.
    MaxBodiesTotal,
    /// [`HttpLimits::max_head`] or [`HttpLimits::max_headers`]: the message head was dropped.
    MaxHead,
}

impl Cap {
    pub const ALL: [Cap; 7] =
        [Cap::MaxOooPerConn, Cap::MaxOooTotal, Cap::MaxFlows, Cap::IdleTimeout, Cap::MaxBody, Cap::MaxBodiesTotal, Cap::MaxHead];

    /// The command-line flag that sets it.
    pub fn flag(self) -> &'static str {
        match self {
            Cap::MaxOooPerConn => "--max-ooo-per-conn",
            Cap::MaxOooTotal => "--max-ooo-total",
            Cap::MaxFlows => "--max-flows",
            Cap::IdleTimeout => "--idle-timeout",
            Cap::MaxBody => "--max-body",
            Cap::MaxBodiesTotal => "--max-bodies-total",
            Cap::MaxHead => "--max-head",
        }
    }

    /// What it is, in words, with its flag.
    pub fn describe(self) -> &'static str {
        match self {
            Cap::MaxOooPerConn => "the per-connection out-of-order cap (--max-ooo-per-conn)",
            Cap::MaxOooTotal => "the total out-of-order cap (--max-ooo-total)",
            Cap::MaxFlows => "the open-connection cap (--max-flows)",
            Cap::IdleTimeout => "the idle timeout (--idle-timeout)",
            Cap::MaxBody => "the decoded body cap (--max-body)",
            Cap::MaxBodiesTotal => "the cap on bodies in progress in all (--max-bodies-total)",
            Cap::MaxHead => "the head caps (--max-head, --max-headers)",
        }
    }
}

/// Exchanges damaged per cap. A message whose head is dropped by the head caps damages the
/// exchange that is left of it, if any (when both messages are dropped, nothing is left).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct CapDamage {
    /// Exchanges damaged by at least one cap.
    pub any: u64,
    pub max_ooo_per_conn: u64,
    pub max_ooo_total: u64,
    pub max_flows: u64,
    pub idle_timeout: u64,
    pub max_body: u64,
    pub max_bodies_total: u64,
    pub max_head: u64,
}

impl CapDamage {
    pub fn get(&self, cap: Cap) -> u64 {
        match cap {
            Cap::MaxOooPerConn => self.max_ooo_per_conn,
            Cap::MaxOooTotal => self.max_ooo_total,
            Cap::MaxFlows => self.max_flows,
            Cap::IdleTimeout => self.idle_timeout,
            Cap::MaxBody => self.max_body,
            Cap::MaxBodiesTotal => self.max_bodies_total,
            Cap::MaxHead => self.max_head,
        }
    }

    pub(crate) fn add(&mut self, cap: Cap) {
        match cap {
            Cap::MaxOooPerConn => self.max_ooo_per_conn += 1,
            Cap::MaxOooTotal => self.max_ooo_total += 1,
            Cap::MaxFlows => self.max_flows += 1,
            Cap::IdleTimeout => self.idle_timeout += 1,
            Cap::MaxBody => self.max_body += 1,
            Cap::MaxBodiesTotal => self.max_bodies_total += 1,
            Cap::MaxHead => self.max_head += 1,
        }
    }
}

impl std::ops::AddAssign for CapDamage {
    fn add_assign(&mut self, b: CapDamage) {
        self.any += b.any;
        self.max_ooo_per_conn += b.max_ooo_per_conn;
        self.max_ooo_total += b.max_ooo_total;
        self.max_flows += b.max_flows;
        self.idle_timeout += b.idle_timeout;
        self.max_body += b.max_body;
        self.max_bodies_total += b.max_bodies_total;
        self.max_head += b.max_head;
    }
}

/// Something that could not be recovered, or was unusual, about an exchange.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Anomaly {
    /// Bytes of the message are missing: never captured (`cap` is `None`), or skipped
    /// because a cap was hit.
    Gap {
        response: bool,
        bytes: u64,
        cap: Option<Cap>,
    },
    /// The message was cut short by the end of its connection (or of the capture).
    Incomplete {
        response: bool,
    },
    NoResponse,
    NoRequest,
    /// The decoded body passed the cap and was truncated.
    Truncated {
        response: bool,
    },
    /// The body was cut while it arrived: the bodies in progress of all connections held
    /// more than their cap in all, and this one was among the largest.
    CutByTotal {
        response: bool,
    },
    DecodeError {
        response: bool,
        error: String,
    },
    UnsupportedCoding {
        response: bool,
        coding: String,
    },
    /// httparse refused the head; the lenient parser read it.
    LenientHead {
        response: bool,
        why: &'static str,
    },
    DroppedHeaderLines {
        response: bool,
        lines: u32,
    },
    /// Several Content-Length values that disagree, or one that is not a number.
    BadContentLength {
        response: bool,
    },
    /// Transfer-Encoding and Content-Length together (request smuggling pattern).
    TransferEncodingWithContentLength {
        response: bool,
    },
    BadChunk {
        response: bool,
    },
    /// Transfer-Encoding whose last coding is not chunked: the body runs to the close.
    UnchunkedTransferEncoding {
        response: bool,
    },
    /// The connection became a tunnel (CONNECT or Upgrade) after this exchange.
    Tunnel,
    /// A response that came after lost bytes of the response stream, whose request could not
    /// be told: it is written without one rather than on a request it may not answer.
    UnknownRequest {
        candidates: u32,
    },
    /// The request or response stream started before the capture did.
    MidStream,
    /// A cap ended the connection while this exchange was unfinished.
    EndedByCap {
        cap: Cap,
    },
    /// Bytes of a WebSocket's frames are missing (the messages they fall in are marked).
    WebSocketGap {
        from_client: bool,
        bytes: u64,
        cap: Option<Cap>,
    },
    /// An HTTP/2 stream's trouble (headers lost, reset, GOAWAY, its caps).
    Http2(crate::proto::h2::H2Anomaly),
}

impl Anomaly {
    /// The cap that caused it, if one did.
    pub fn cap(&self) -> Option<Cap> {
        match self {
            Anomaly::Gap { cap, .. } => *cap,
            Anomaly::EndedByCap { cap } => Some(*cap),
            Anomaly::WebSocketGap { cap, .. } => *cap,
            Anomaly::Truncated { .. } => Some(Cap::MaxBody),
            Anomaly::CutByTotal { .. } => Some(Cap::MaxBodiesTotal),
            Anomaly::Http2(a) => a.cap(),
            _ => None,
        }
    }
}

impl std::fmt::Display for Anomaly {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let side = |r: &bool| if *r { "response" } else { "request" };
        match self {
            Anomaly::Gap { response, bytes, cap: None } => write!(f, "{}: {bytes} bytes missing from the capture", side(response)),
            Anomaly::Gap { response, bytes, cap: Some(c) } => write!(f, "{}: {bytes} bytes skipped at {}", side(response), c.describe()),
            Anomaly::Incomplete { response } => write!(f, "{}: incomplete, the connection ended", side(response)),
            Anomaly::NoResponse => f.write_str("no response"),
            Anomaly::NoRequest => f.write_str("no request"),
            Anomaly::Truncated { response } => write!(f, "{}: body truncated at the decoded size cap", side(response)),
            Anomaly::CutByTotal { response } => {
                write!(f, "{}: body truncated at {}", side(response), Cap::MaxBodiesTotal.describe())
            }
            Anomaly::DecodeError { response, error } => write!(f, "{}: decode error: {error}", side(response)),
            Anomaly::UnsupportedCoding { response, coding } => write!(f, "{}: unsupported content coding {coding}", side(response)),
            Anomaly::LenientHead { response, why } => write!(f, "{}: malformed head ({why}), read leniently", side(response)),
            Anomaly::DroppedHeaderLines { response, lines } => write!(f, "{}: {lines} malformed header lines dropped", side(response)),
            Anomaly::BadContentLength { response } => write!(f, "{}: invalid or conflicting Content-Length", side(response)),
            Anomaly::TransferEncodingWithContentLength { response } => {
                write!(f, "{}: both Transfer-Encoding and Content-Length (Content-Length ignored)", side(response))
            }
            Anomaly::BadChunk { response } => write!(f, "{}: malformed chunked encoding", side(response)),
            Anomaly::UnchunkedTransferEncoding { response } => {
                write!(f, "{}: Transfer-Encoding not ending in chunked, body read to the close", side(response))
            }
            Anomaly::Tunnel => f.write_str("connection became a tunnel"),
            Anomaly::UnknownRequest { candidates } => {
                write!(f, "response after lost data: which of {candidates} requests it answers cannot be told")
            }
            Anomaly::MidStream => f.write_str("connection started before the capture"),
            Anomaly::EndedByCap { cap } => write!(f, "connection ended early by {}", cap.describe()),
            Anomaly::WebSocketGap { from_client, bytes, cap } => {
                let who = if *from_client { "client" } else { "server" };
                match cap {
                    None => write!(f, "websocket frames from the {who}: {bytes} bytes missing from the capture"),
                    Some(c) => write!(f, "websocket frames from the {who}: {bytes} bytes skipped at {}", c.describe()),
                }
            }
            Anomaly::Http2(a) => a.fmt(f),
        }
    }
}

/// One HTTP message, owned.
#[derive(Clone, Debug)]
pub struct Message {
    pub head: Head,
    /// The decoded body (at most the cap).
    pub body: Vec<u8>,
    /// Body bytes on the wire, chunk framing included.
    pub body_wire_len: u64,
    /// The entity as sent: after de-chunking, before content decoding.
    pub entity_len: u64,
    /// Content codings undone (in the order they were applied).
    pub codings: Vec<Coding>,
    /// The body kept is the still-encoded bytes (decoding failed from the start).
    pub body_is_encoded: bool,
    /// The body was cut at the decoded size cap (or by the cap on bodies in progress).
    pub body_truncated: bool,
    /// Of a truncated body, bytes not kept (see [`HttpStats::body_bytes_dropped`]).
    pub body_dropped: u64,
    /// Of a truncated coded body, encoded bytes never decoded.
    pub body_not_decoded: u64,
    pub trailers: Vec<(Vec<u8>, Vec<u8>)>,
    pub first_ts: Ts,
    pub last_ts: Ts,
    pub first_frame: u64,
    pub last_frame: u64,
    /// Offset of the message's first byte in its TCP stream (relative to the stream's start).
    pub stream_offset: u64,
    /// For a `text/event-stream` body: how much of the decoded body had arrived by when, one
    /// mark per piece that added to it (at most [`MAX_BODY_MARKS`]; the last one then moves
    /// on), so each event gets the time of the piece that completed it.
    pub body_times: Vec<(usize, Ts)>,
    /// The decoded body's size before `--redact` replaced values in it (the HAR's
    /// `content.size` stays the size of the body as it was); `None` when it was not changed.
    pub unredacted_len: Option<u64>,
    /// Server-sent events written at most for this body (`--max-messages`).
    pub max_events: usize,
}

/// Marks kept at most in [`Message::body_times`].
pub const MAX_BODY_MARKS: usize = 1 << 16;

impl Message {
    /// A complete message with `body` as it came (no codings), captured from frame 1 at
    /// `first` to frame 2 at `last`: for tests.
    #[cfg(test)]
    pub(crate) fn whole(head: Head, body: Vec<u8>, first: Ts, last: Ts) -> Message {
        let at = |ts, frame| Chunk { ts, frame, offset: 0, ack: None };
        let mut m = Message::new(head, at(first, 1), at(last, 2));
        m.body_wire_len = body.len() as u64;
        m.entity_len = body.len() as u64;
        m.body = body;
        m
    }

    /// A message whose head is parsed and whose body is still to come: it started with `first`
    /// and its last byte so far came with `last`.
    fn new(head: Head, first: Chunk, last: Chunk) -> Message {
        Message {
            head,
            body: Vec::new(),
            body_wire_len: 0,
            entity_len: 0,
            codings: Vec::new(),
            body_is_encoded: false,
            body_truncated: false,
            body_dropped: 0,
            body_not_decoded: 0,
            trailers: Vec::new(),
            first_ts: first.ts,
            last_ts: last.ts,
            first_frame: first.frame,
            last_frame: last.frame,
            stream_offset: first.offset,
            body_times: Vec::new(),
            unredacted_len: None,
            max_events: MAX_MESSAGES,
        }
    }
}

/// A request and its response.
#[derive(Clone, Debug)]
pub struct Exchange {
    pub conn: ConnMeta,
    /// Position of the exchange on its connection, from 0.
    pub index: u32,
    pub request: Option<Message>,
    pub response: Option<Message>,
    /// Status codes of interim (1xx) responses before the final one.
    pub interim: Vec<u16>,
    pub anomalies: Vec<Anomaly>,
    /// The cleartext proxy tunnel the exchange ran in (`"CONNECT host:443"`,
    /// `"socks5 host:80"`), when it did.
    pub tunnel: Option<Box<str>>,
    /// The messages of the WebSocket this exchange's `101` began.
    pub websocket: Option<Box<crate::proto::ws::session::WsLog>>,
    /// An HTTP/2 stream's facts (stream id, pseudo-header fields, push), when it is one.
    pub h2: Option<Box<crate::proto::h2::H2Facts>>,
    /// The TLS connection the exchange was decrypted from, when it was.
    pub tls: Option<std::sync::Arc<crate::proto::tls::TlsFacts>>,
}

impl Exchange {
    /// When the exchange started: its request's first byte, else its response's.
    pub fn start(&self) -> Ts {
        self.request.as_ref().or(self.response.as_ref()).map_or(Ts(0), |m| m.first_ts)
    }
}

/// Exchanges held on one connection while a request or response is awaited (pipelining, or
/// a server that never answers). Past it, or past twice `max_body + max_head` bytes of
/// messages held, the oldest one not being received is written as it is, without its
/// response (each one held is memory, and a longer queue to search for every message): an
/// exchange of a connection pipelined this deep can be written out of its place.
const MAX_PENDING: usize = 256;

/// Bytes searched for HTTP in a connection whose two streams start with something else
/// (a SOCKS or proxy preamble, say) before it is taken for another protocol.
const JUNK_SCAN: u64 = 64 << 10;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum St {
    /// Expecting a message start.
    Start,
    /// Looking for a message start after a gap or garbage.
    Sync,
    /// Collecting a head.
    Head,
    /// In a body.
    Body,
    /// After CONNECT or Upgrade: bytes are not HTTP.
    Tunnel,
    /// Not HTTP at all.
    Off,
}

#[derive(Clone, Copy, Debug)]
enum Framing {
    None,
    Length(u64),
    Chunked(ChunkSt),
    Close,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum ChunkSt {
    Size,
    Data(u64),
    DataEnd,
    Trailer,
}

/// A message whose head is parsed and whose body is arriving.
struct InProgress {
    msg: Message,
    framing: Framing,
    dec: Option<BodyDecoder>,
    /// Id of the pending exchange it belongs to.
    target: u64,
    gap: u64,
    /// Of `gap`, the bytes skipped because of a cap, and the cap.
    cap_gap: u64,
    cap: Option<Cap>,
    /// A chunk-size or trailer line being collected.
    line: Vec<u8>,
    /// A server-sent event stream: the body's arrival times are marked.
    events: bool,
}

/// One direction's parser.
struct Half {
    response: bool,
    st: St,
    buf: Vec<u8>,
    /// How far `buf` was searched for the end of a head.
    searched: usize,
    /// Timing of the head being collected.
    head_first: Option<Chunk>,
    cur: Option<Box<InProgress>>,
    /// Nothing has been seen in this direction yet.
    fresh: bool,
    /// The stream started at its beginning (SYN seen) rather than mid-way.
    clean_start: bool,
    /// In Sync: whether the next byte starts a line.
    line_start: bool,
    /// The stream was seen from its start and did not start with HTTP.
    junk_start: bool,
    /// Bytes searched since such a start.
    junk_bytes: u64,
    last: Option<Chunk>,
}

impl Half {
    fn new(response: bool) -> Half {
        Half {
            response,
            st: St::Start,
            buf: Vec::new(),
            searched: 0,
            head_first: None,
            cur: None,
            fresh: true,
            clean_start: false,
            line_start: true,
            junk_start: false,
            junk_bytes: 0,
            last: None,
        }
    }
}

struct Pending {
    id: u64,
    /// The request's head is parsed (its body may still be arriving).
    has_request: bool,
    request: Option<Message>,
    /// The request's head was lost in a gap.
    req_lost: bool,
    req_head_method: ReqKind,
    /// Client's acknowledgment of the server stream when the request began.
    req_ack: Option<u64>,
    /// The request's number on the connection (requests only, from 0) and the offset of its
    /// first byte in the client stream.
    req_no: u64,
    req_start: u64,
    /// A response not yet placed on a request (it came after lost bytes, or before its
    /// request was seen): its link in [`HttpConn::chain`] has the same id.
    orphan: bool,
    /// A final response head was assigned to this exchange.
    has_response: bool,
    response: Option<Message>,
    /// The response's head was lost in a gap.
    resp_lost: bool,
    interim: Vec<u16>,
    anomalies: Vec<Anomaly>,
    start: Ts,
    /// `Upgrade: h2c` answered 101: the exchange goes to the HTTP/2 handler.
    h2c: bool,
}

impl Pending {
    /// An exchange with neither message yet, starting at `start`.
    fn new(id: u64, start: Ts) -> Pending {
        Pending {
            id,
            has_request: false,
            request: None,
            req_lost: false,
            req_head_method: ReqKind::Unknown,
            req_ack: None,
            req_no: u64::MAX,
            req_start: 0,
            orphan: false,
            has_response: false,
            response: None,
            resp_lost: false,
            interim: Vec::new(),
            anomalies: Vec::new(),
            start,
            h2c: false,
        }
    }
}

/// A response waiting to be placed on its request: where it starts in the server stream,
/// the server's acknowledgment of the client stream when it was sent, and how many responses
/// were lost just before it (see [`HttpConn::resp_loss`]).
#[derive(Clone, Copy, Debug)]
struct Link {
    id: u64,
    offset: u64,
    ack: Option<u64>,
    loss: Option<u32>,
    /// The request it answers, once known (kept while earlier links are not).
    assigned: Option<u64>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum ReqKind {
    Other,
    Head,
    Connect,
    /// No request (a response without one).
    Unknown,
}

/// HTTP state of one TCP connection.
pub struct HttpConn {
    pub meta: ConnMeta,
    halves: [Half; 2],
    pending: VecDeque<Pending>,
    next_id: u64,
    exchanges: u32,
    midstream: bool,
    /// Responses lost in the response stream since the last response head: `None` when none
    /// was, `Some(k)` when at least `k` were (bytes were lost where a response may have been).
    resp_loss: Option<u32>,
    /// Requests numbered so far.
    req_count: u64,
    /// The number of the request the last placed response answered.
    last_placed: Option<u64>,
    /// Responses not yet placed on a request, in stream order, with what is known of them.
    chain: VecDeque<Link>,
    /// Interim statuses waiting for the final response they precede (when that response's
    /// request is not known yet).
    interim_hold: Vec<u16>,
    /// End offset of the bytes handed in so far, per side.
    delivered: [u64; 2],
    /// After a CONNECT answered 2xx: the first tunnelled bytes decide whether HTTP goes on
    /// inside (then the tunnel is this description) or the bytes are another protocol.
    tunnel_sniff: Option<Box<str>>,
    /// The tunnel the exchanges now run in.
    inner: Option<Box<str>>,
    /// The first bytes of a client stream that did not start with HTTP (a proxy preamble).
    preamble: Vec<u8>,
    /// Per side: bytes skipped because of a cap between messages since the last head (a whole
    /// message may be in them), and the cap.
    cap_skipped: [Option<(Cap, u64)>; 2],
    /// After a `101` to `Upgrade: websocket`: the handshake exchange once it is finished, and
    /// what came after it, for the WebSocket handler that takes over (`proto::ws::session`).
    ws: Option<Box<WsUpgrade>>,
    /// After `Upgrade: h2c` answered 101: the exchange that asked for it and where HTTP/2
    /// starts in each stream (after the request, after the 101's head), for the handler
    /// to switch ([`HttpConn::take_switch`]).
    h2c_switch: Option<Box<(Exchange, [u64; 2])>>,
}

/// A WebSocket handshake being handed over.
struct WsUpgrade {
    id: u64,
    exchange: Option<Exchange>,
    rest: Vec<crate::proto::ws::session::Rest>,
    rest_bytes: usize,
}

/// Bytes after a WebSocket `101` held while its exchange is not finished (its request's body
/// still arriving); past it the connection is a tunnel after all.
const WS_REST_MAX: usize = 1 << 20;

/// Counts an exchange handed out (and the caps that damaged it).
pub(crate) fn count_exchange(stats: &mut HttpStats, anomalies: &[Anomaly]) {
    stats.exchanges += 1;
    let mut caps: Vec<Cap> = anomalies.iter().filter_map(Anomaly::cap).collect();
    caps.sort_unstable();
    caps.dedup();
    if !caps.is_empty() {
        stats.damaged_by_cap.any += 1;
    }
    for c in caps {
        stats.damaged_by_cap.add(c);
    }
}

/// Receives finished exchanges.
pub trait ExchangeSink {
    fn exchange(&mut self, ex: Exchange);
}

/// Collecting exchanges in a vector (for tools and tests; the pipeline serializes instead).
impl ExchangeSink for Vec<Exchange> {
    fn exchange(&mut self, ex: Exchange) {
        self.push(ex)
    }
}

impl<F: FnMut(Exchange)> ExchangeSink for F {
    fn exchange(&mut self, ex: Exchange) {
        self(ex)
    }
}

/// Everything a call needs besides the connection.
pub struct Ctx<'a> {
    pub limits: &'a HttpLimits,
    pub stats: &'a mut HttpStats,
    pub sink: &'a mut dyn ExchangeSink,
}

impl HttpConn {
    pub fn new(meta: ConnMeta) -> HttpConn {
        HttpConn {
            meta,
            halves: [Half::new(false), Half::new(true)],
            pending: VecDeque::new(),
            next_id: 0,
            exchanges: 0,
            midstream: false,
            resp_loss: None,
            req_count: 0,
            last_placed: None,
            chain: VecDeque::new(),
            interim_hold: Vec::new(),
            delivered: [0; 2],
            tunnel_sniff: None,
            inner: None,
            preamble: Vec::new(),
            cap_skipped: [None; 2],
            ws: None,
            h2c_switch: None,
        }
    }

    /// Whether a WebSocket handshake is finished and ready to be taken over
    /// ([`HttpConn::take_websocket`]).
    #[inline]
    pub fn websocket_ready(&self) -> bool {
        self.ws.as_ref().is_some_and(|u| u.exchange.is_some())
    }

    /// The finished WebSocket handshake and what came after it, in order.
    pub fn take_websocket(&mut self) -> Option<(Exchange, Vec<crate::proto::ws::session::Rest>)> {
        if !self.websocket_ready() {
            return None;
        }
        let u = self.ws.take()?;
        Some((u.exchange?, u.rest))
    }

    /// Holds what comes after a WebSocket `101` for the handler that takes over; false when
    /// there is no such handshake (or it held too much: a tunnel then).
    fn ws_rest(&mut self, r: crate::proto::ws::session::Rest, len: usize) -> bool {
        let Some(u) = self.ws.as_mut() else { return false };
        u.rest_bytes += len;
        if u.rest_bytes > WS_REST_MAX {
            // The handshake never finished: the bytes are tunnel bytes after all.
            let id = u.id;
            self.ws = None;
            if let Some(p) = self.pending.iter_mut().find(|p| p.id == id) {
                p.anomalies.push(Anomaly::Tunnel);
            }
            return false;
        }
        u.rest.push(r);
        true
    }

    /// Says the side's stream is seen from its start (its SYN was captured).
    pub fn clean_start(&mut self, side: Side) {
        self.halves[side as usize].clean_start = true;
    }

    /// Which sides are seen from their start.
    pub fn clean_sides(&self) -> [bool; 2] {
        [self.halves[0].clean_start, self.halves[1].clean_start]
    }

    /// Whether the connection switched to HTTP/2 (`Upgrade: h2c` answered 101) and the
    /// handler should take it over ([`HttpConn::take_switch`]).
    #[inline]
    pub fn switch_pending(&self) -> bool {
        self.h2c_switch.is_some()
    }

    /// The exchange that asked for `Upgrade: h2c` (not handed to the sink: it goes on as
    /// stream 1) and the offsets where HTTP/2 starts in the client and server streams.
    pub fn take_switch(&mut self) -> Option<(Exchange, [u64; 2])> {
        self.h2c_switch.take().map(|b| *b)
    }

    /// Whether the connection was found not to carry HTTP.
    pub fn is_off(&self) -> bool {
        self.halves.iter().any(|h| h.st == St::Off)
    }

    /// Whether both directions are tunnels or off: nothing more to parse.
    pub fn is_done(&self) -> bool {
        // A WebSocket handshake waiting to be taken over still needs the bytes after it.
        self.tunnel_sniff.is_none() && self.ws.is_none() && self.halves.iter().all(|h| matches!(h.st, St::Tunnel | St::Off))
    }

    /// The start of the earliest exchange not yet handed out.
    pub fn pending_start(&self) -> Option<Ts> {
        let mut m = self.pending.iter().map(|p| p.start).min();
        for h in &self.halves {
            if let Some(c) = h.head_first {
                m = Some(m.map_or(c.ts, |x: Ts| x.min(c.ts)));
            }
        }
        // The first exchange of a connection whose handshake was seen starts at the SYN.
        if let (Some(x), Some(syn), 0) = (m, self.meta.syn_ts, self.exchanges) {
            m = Some(x.min(syn));
        }
        m
    }

    /// Bytes buffered by the parser (heads being collected, bodies decoded so far).
    pub fn buffered_bytes(&self) -> usize {
        let mut n = 0;
        for h in &self.halves {
            n += h.buf.capacity();
            if let Some(c) = &h.cur {
                n += c.msg.body.capacity() + c.msg.head.raw.capacity() + c.dec.as_ref().map_or(0, |d| d.held_bytes());
            }
        }
        for p in &self.pending {
            for m in p.request.iter().chain(p.response.iter()) {
                n += m.body.capacity() + m.head.raw.capacity();
            }
        }
        n
    }

    /// Bytes held by this connection's bodies in progress that were not cut yet (what
    /// [`HttpLimits::max_bodies_total`] cuts), and by all of them.
    pub fn bodies_held(&self) -> (usize, usize) {
        let (mut uncut, mut all) = (0, 0);
        for h in &self.halves {
            if let Some(d) = h.cur.as_ref().and_then(|c| c.dec.as_ref()) {
                all += d.held_bytes();
                if !d.was_cut() {
                    uncut += d.held_bytes();
                }
            }
        }
        (uncut, all)
    }

    /// Cuts this connection's bodies in progress where they are
    /// ([`HttpLimits::max_bodies_total`]): they keep what they hold, and are truncated.
    pub fn cut_bodies(&mut self) {
        for h in &mut self.halves {
            if let Some(d) = h.cur.as_mut().and_then(|c| c.dec.as_mut()) {
                d.cut();
            }
        }
    }

    /// Bytes of one side, in order.
    pub fn data(&mut self, side: Side, bytes: &[u8], chunk: Chunk, cx: &mut Ctx<'_>) {
        if bytes.is_empty() {
            return;
        }
        let h = &mut self.halves[side as usize];
        if h.fresh {
            h.fresh = false;
            if !h.clean_start {
                // Seen from the middle: the first bytes may be anywhere in a message.
                self.midstream = true;
                if h.st == St::Start {
                    h.st = St::Sync;
                    h.line_start = true;
                }
            }
        }
        self.delivered[side as usize] = chunk.offset + bytes.len() as u64;
        self.feed(side as usize, bytes, chunk, cx);
        if side == Side::Client && !self.chain.is_empty() {
            // A response may be waiting for the request these bytes carry.
            self.resolve(false, cx);
            self.try_emit(cx);
        }
    }

    /// Notes that bytes of the response stream were lost where a response may have been
    /// (`definite`: where one certainly was).
    fn note_loss(&mut self, definite: bool) {
        let k = self.resp_loss.unwrap_or(0);
        self.resp_loss = Some(if definite { k + 1 } else { k });
    }

    /// `len` bytes of one side were never captured.
    pub fn gap(&mut self, side: Side, len: u64, ts: Ts, cx: &mut Ctx<'_>) {
        self.gap_by(side, len, ts, None, cx)
    }

    /// `len` bytes of one side are missing: never captured (`cap` is `None`) or skipped
    /// because of `cap`.
    pub fn gap_by(&mut self, side: Side, len: u64, ts: Ts, cap: Option<Cap>, cx: &mut Ctx<'_>) {
        let i = side as usize;
        let h = &mut self.halves[i];
        h.fresh = false;
        self.delivered[i] += len;
        match h.st {
            St::Tunnel if self.ws.is_some() => {
                let rest = crate::proto::ws::session::Rest::Gap(side, len, ts, cap);
                self.ws_rest(rest, 0);
            }
            St::Tunnel | St::Off => {}
            St::Start | St::Sync | St::Head => {
                if h.response && h.st != St::Head {
                    // Missing bytes where the next response starts: one was there (a few
                    // bytes could be blank lines between messages).
                    let definite = h.st == St::Start && len > 4;
                    self.note_loss(definite);
                }
                let h = &mut self.halves[i];
                if h.st != St::Head {
                    self.skipped_by(i, len, cap);
                }
                let h = &mut self.halves[i];
                if h.st == St::Head {
                    // The head being collected is cut, but a message was there: keep its
                    // place so that pairing stays right.
                    cx.stats.messages_with_gaps += 1;
                    let response = h.response;
                    let first = h.head_first.unwrap_or(Chunk { ts, frame: 0, offset: 0, ack: None });
                    let partial = std::mem::take(&mut h.buf);
                    self.lost_head(response, first, &partial, len, cap, cx);
                }
                let h = &mut self.halves[i];
                h.buf.clear();
                h.searched = 0;
                h.head_first = None;
                h.st = St::Sync;
                h.line_start = true;
            }
            St::Body => {
                let Some(cur) = h.cur.as_mut() else {
                    h.st = St::Sync;
                    return;
                };
                cur.gap += len;
                if cap.is_some() {
                    cur.cap_gap += len;
                    cur.cap = cur.cap.or(cap);
                }
                if let Some(d) = cur.dec.as_mut() {
                    // Decoding cannot go on across missing bytes; keep what was decoded.
                    d.finish();
                }
                match &mut cur.framing {
                    Framing::Length(rem) if len <= *rem => {
                        *rem -= len;
                        cur.msg.body_wire_len += len;
                        if *rem == 0 {
                            self.finish_message(i, ts, cx);
                        }
                    }
                    Framing::Chunked(ChunkSt::Data(rem)) if len <= *rem => {
                        *rem -= len;
                        cur.msg.body_wire_len += len;
                        if *rem == 0 {
                            cur.framing = Framing::Chunked(ChunkSt::DataEnd);
                        }
                    }
                    Framing::Close => {
                        cur.msg.body_wire_len += len;
                    }
                    _ => {
                        // The gap swallowed the end of the message: finish what we have and
                        // look for the next message.
                        if i == 1 {
                            // Past a known end, the next response's start is in the gap.
                            let definite = matches!(cur.framing, Framing::Length(rem) if len > rem + 4);
                            self.note_loss(definite);
                        }
                        self.skipped_by(i, len, cap);
                        self.finish_message(i, ts, cx);
                        let h = &mut self.halves[i];
                        if h.st != St::Tunnel {
                            h.st = St::Sync;
                            h.line_start = true;
                        }
                    }
                }
            }
        }
    }

    /// Notes bytes of side `i` skipped between messages because of `cap`.
    fn skipped_by(&mut self, i: usize, len: u64, cap: Option<Cap>) {
        if let Some(cap) = cap {
            let s = self.cap_skipped[i].get_or_insert((cap, 0));
            s.1 += len;
        }
    }

    /// The anomaly for a message of side `i` that is missing, when a cap skipped bytes where
    /// it would have been.
    fn skipped_gap(&self, i: usize) -> Option<Anomaly> {
        self.cap_skipped[i].map(|(cap, bytes)| Anomaly::Gap { response: i == 1, bytes, cap: Some(cap) })
    }

    /// A message whose head was cut by a gap. What arrived of the head is kept when its start
    /// line parses (the complete lines before the gap); either way the message keeps its place
    /// so that pairing stays right.
    fn lost_head(&mut self, response: bool, first: Chunk, partial: &[u8], len: u64, cap: Option<Cap>, cx: &mut Ctx<'_>) {
        let limits = *cx.limits;
        let last = self.halves[response as usize].last.unwrap_or(first);
        let msg = partial_head(partial, !response, limits.max_headers).map(|head| Message::new(head, first, last));
        let gap = Anomaly::Gap { response, bytes: len, cap };
        if response {
            if msg.is_some() {
                cx.stats.responses += 1;
            }
            // The message keeps its place among the responses, whatever is left of it.
            let k = self.place_response(first, ReqKind::Other, cx);
            let p = &mut self.pending[k];
            p.resp_lost = msg.is_none();
            p.response = msg;
            p.anomalies.push(gap);
            // The rest of it is lost, and what followed it in the gap.
            self.note_loss(false);
            self.resolve(false, cx);
            self.try_emit(cx);
        } else {
            if msg.is_some() {
                cx.stats.requests += 1;
            }
            let id = self.next_id;
            self.next_id += 1;
            let kind = match msg.as_ref().map(|m| m.head.method()) {
                Some(m) if m.eq_ignore_ascii_case(b"HEAD") => ReqKind::Head,
                Some(m) if m.eq_ignore_ascii_case(b"CONNECT") => ReqKind::Connect,
                Some(_) => ReqKind::Other,
                None => ReqKind::Unknown,
            };
            self.make_room(cx);
            let req_no = self.req_count;
            self.req_count += 1;
            self.pending.push_back(Pending {
                has_request: true,
                req_lost: msg.is_none(),
                request: msg,
                req_head_method: kind,
                req_ack: first.ack,
                req_no,
                req_start: first.offset,
                anomalies: vec![gap],
                ..Pending::new(id, first.ts)
            });
            if !self.chain.is_empty() {
                self.resolve(false, cx);
                self.try_emit(cx);
            }
        }
    }

    /// One side's stream ended with its FIN (every byte before it delivered): a body that runs
    /// to the close is complete now, whether or not the other side has closed yet.
    pub fn side_closed(&mut self, side: Side, cx: &mut Ctx<'_>) {
        let i = side as usize;
        if let Some(cur) = self.halves[i].cur.as_ref()
            && matches!(cur.framing, Framing::Close)
        {
            let ts = cur.msg.last_ts;
            self.finish_message(i, ts, cx);
        }
    }

    /// The connection ended (`clean`: by FIN or RST rather than a timeout or the end of the
    /// capture).
    pub fn end(&mut self, clean: bool, ts: Ts, cx: &mut Ctx<'_>) {
        self.end_by(clean, ts, None, cx)
    }

    /// The connection ended, by `cap` when one ended it early; the exchanges it leaves
    /// unfinished say so.
    pub fn end_by(&mut self, clean: bool, ts: Ts, cap: Option<Cap>, cx: &mut Ctx<'_>) {
        self.end_keeping_websocket(clean, ts, cap, cx);
        // A WebSocket handshake nobody took over is handed out as it is.
        if let Some(u) = self.ws.take()
            && let Some(ex) = u.exchange
        {
            count_exchange(cx.stats, &ex.anomalies);
            cx.sink.exchange(ex);
        }
    }

    /// [`HttpConn::end_by`], except that a WebSocket handshake stays for
    /// [`HttpConn::take_websocket`].
    pub fn end_keeping_websocket(&mut self, clean: bool, ts: Ts, cap: Option<Cap>, cx: &mut Ctx<'_>) {
        let by_cap = |anomalies: &mut Vec<Anomaly>| {
            if let Some(cap) = cap
                && !anomalies.contains(&Anomaly::EndedByCap { cap })
            {
                anomalies.push(Anomaly::EndedByCap { cap });
            }
        };
        // A close-delimited body ends here; other unfinished messages are incomplete.
        for i in [1, 0] {
            let h = &mut self.halves[i];
            if let Some(cur) = h.cur.as_ref() {
                let complete_by_close = matches!(cur.framing, Framing::Close) && clean;
                if !complete_by_close {
                    let (resp, target) = (h.response, cur.target);
                    if let Some(p) = self.pending.iter_mut().find(|p| p.id == target) {
                        p.anomalies.push(Anomaly::Incomplete { response: resp });
                        by_cap(&mut p.anomalies);
                    }
                    cx.stats.incomplete_messages += 1;
                }
                self.finish_message(i, ts, cx);
            }
            let h = &mut self.halves[i];
            if h.head_first.is_some() && !h.buf.is_empty() {
                cx.stats.incomplete_messages += 1;
            }
            h.buf = Vec::new();
            h.head_first = None;
        }
        // Waiting responses are placed where the evidence now allows, or given up.
        self.resolve(true, cx);
        // Everything left is handed out as it is.
        while let Some(mut p) = self.pending.pop_front() {
            if p.has_request && !p.has_response {
                p.anomalies.push(Anomaly::NoResponse);
                p.anomalies.extend(self.skipped_gap(1));
                by_cap(&mut p.anomalies);
                cx.stats.no_response += 1;
            }
            self.emit(p, cx);
        }
    }

    fn feed(&mut self, i: usize, mut data: &[u8], mut chunk: Chunk, cx: &mut Ctx<'_>) {
        while !data.is_empty() {
            let h = &mut self.halves[i];
            h.last = Some(chunk);
            let used = match h.st {
                St::Tunnel if self.tunnel_sniff.is_some() => {
                    // The first bytes through a CONNECT tunnel: HTTP from the client goes on
                    // being parsed; anything else (TLS, say) is tunnel traffic.
                    if i == 1 && data.iter().all(|&c| c == b'\r' || c == b'\n') {
                        // Line ends after the server's head: not the tunnel's first bytes.
                        cx.stats.tunnel_bytes += data.len() as u64;
                        data.len()
                    } else {
                        let desc = self.tunnel_sniff.take();
                        if i == 0 && matches!(head::sniff(data), Looks::Request | Looks::Unsure) {
                            cx.stats.http_tunnels += 1;
                            self.inner = desc;
                            for h in &mut self.halves {
                                h.st = St::Start;
                                h.buf.clear();
                                h.fresh = false;
                                h.line_start = true;
                            }
                        }
                        0
                    }
                }
                St::Tunnel => {
                    let side = if i == 0 { Side::Client } else { Side::Server };
                    let rest = crate::proto::ws::session::Rest::Data(side, data.to_vec(), chunk);
                    if self.ws.is_none() || !self.ws_rest(rest, data.len()) {
                        cx.stats.tunnel_bytes += data.len() as u64;
                    }
                    data.len()
                }
                St::Off => data.len(),
                St::Start => {
                    // Blank lines between messages are tolerated.
                    let skip = data.iter().position(|&c| c != b'\r' && c != b'\n').unwrap_or(data.len());
                    if skip == data.len() {
                        data.len()
                    } else {
                        match head::sniff(&data[skip..]) {
                            Looks::Neither | Looks::Response if !h.response => self.not_a_start(i, cx, skip),
                            Looks::Neither | Looks::Request if h.response => self.not_a_start(i, cx, skip),
                            _ => {
                                let h = &mut self.halves[i];
                                h.st = St::Head;
                                h.head_first = Some(Chunk { offset: chunk.offset + skip as u64, ..chunk });
                                skip
                            }
                        }
                    }
                }
                St::Sync => self.sync(i, data, chunk, cx),
                St::Head => self.head_bytes(i, data, chunk, cx),
                St::Body => self.body_bytes(i, data, chunk, cx),
            };
            data = &data[used..];
            chunk.offset += used as u64;
        }
    }

    /// The bytes at a message start are not a message: the connection is not HTTP (when seen
    /// from its start) or we resynchronise.
    fn not_a_start(&mut self, i: usize, cx: &mut Ctx<'_>, _skip: usize) -> usize {
        let h = &mut self.halves[i];
        let first_message = h.clean_start && self.exchanges == 0 && self.pending.is_empty();
        if first_message {
            // A stream that does not start with HTTP. The connection is not HTTP when neither
            // side starts with it; a garbled request still gets its response recorded.
            // (HTTP may still follow a preamble such as a SOCKS handshake: the streams are
            // searched for a while before giving up, see `sync`.)
            h.junk_start = true;
            h.st = St::Sync;
            h.line_start = true;
        } else {
            h.st = St::Sync;
            h.line_start = true;
            cx.stats.resyncs += 1;
        }
        0
    }

    fn sync(&mut self, i: usize, data: &[u8], chunk: Chunk, cx: &mut Ctx<'_>) -> usize {
        if self.halves[i].junk_start && self.exchanges == 0 && self.pending.is_empty() {
            self.halves[i].junk_bytes += data.len() as u64;
            if i == 0 && self.preamble.len() < 512 {
                let n = data.len().min(512 - self.preamble.len());
                self.preamble.extend_from_slice(&data[..n]);
            }
            let (a, b) = (&self.halves[0], &self.halves[1]);
            if a.junk_start && b.junk_start && a.junk_bytes + b.junk_bytes > JUNK_SCAN {
                // Neither side has shown HTTP: the connection is something else.
                cx.stats.non_http_connections += 1;
                for h in &mut self.halves {
                    h.st = St::Off;
                    h.buf = Vec::new();
                }
                return data.len();
            }
        }
        let h = &mut self.halves[i];
        let request = !h.response;
        // Segment boundaries often fall on message boundaries: a message may start right here.
        if head::find_message_start(data, 0, request, true) == Some(0) {
            cx.stats.resync_skipped_bytes += h.buf.len() as u64;
            cx.stats.resyncs += 1;
            h.buf.clear();
            h.st = St::Head;
            h.searched = 0;
            h.head_first = Some(chunk);
            return 0;
        }
        // A line begun in an earlier piece: complete it with this piece's first line.
        if !h.buf.is_empty() {
            let nl = memchr::memchr(b'\n', data);
            let take = nl.map_or(data.len(), |p| p + 1);
            h.buf.extend_from_slice(&data[..take]);
            if nl.is_none() {
                if h.buf.len() > 8 << 10 {
                    cx.stats.resync_skipped_bytes += h.buf.len() as u64;
                    h.buf.clear();
                    h.line_start = false;
                }
                return take;
            }
            let line = std::mem::take(&mut h.buf);
            if head::find_message_start(&line, 0, request, true) == Some(0) {
                let start_offset = chunk.offset + take as u64 - line.len() as u64;
                h.st = St::Head;
                h.head_first = Some(Chunk { offset: start_offset, ..chunk });
                h.searched = 0;
                h.buf = line;
                cx.stats.resyncs += 1;
                // Re-check the collected bytes as a head.
                self.head_check(i, chunk, cx);
                return take;
            }
            cx.stats.resync_skipped_bytes += line.len() as u64;
            h.line_start = true;
            return take;
        }
        match head::find_message_start(data, 0, request, h.line_start) {
            Some(p) => {
                cx.stats.resync_skipped_bytes += p as u64;
                cx.stats.resyncs += 1;
                h.st = St::Head;
                h.searched = 0;
                h.head_first = Some(Chunk { offset: chunk.offset + p as u64, ..chunk });
                p
            }
            None => {
                // Keep the last partial line: a message may start there.
                let tail = memchr::memrchr(b'\n', data).map_or(0, |p| p + 1);
                let keep = data.len() - tail;
                if keep <= 8 << 10 && (tail > 0 || h.line_start) {
                    h.buf.extend_from_slice(&data[tail..]);
                    cx.stats.resync_skipped_bytes += tail as u64;
                } else {
                    cx.stats.resync_skipped_bytes += data.len() as u64;
                }
                h.line_start = false;
                data.len()
            }
        }
    }

    /// Bytes of a head being collected. Returns how many were used.
    fn head_bytes(&mut self, i: usize, data: &[u8], chunk: Chunk, cx: &mut Ctx<'_>) -> usize {
        let limits = *cx.limits;
        let h = &mut self.halves[i];
        if h.buf.is_empty() {
            // Fast path: the whole head is in this piece.
            if let Some(end) = head::find_end(data, 0) {
                if end > limits.max_head {
                    return self.head_too_large(i, cx, end);
                }
                let raw = data[..end].to_vec();
                self.head_done(i, raw, chunk, cx);
                return end;
            }
            if data.len() > limits.max_head {
                return self.head_too_large(i, cx, data.len());
            }
            h.buf.extend_from_slice(data);
            h.searched = data.len();
            return self.head_sanity(i, cx, data.len());
        }
        let before = h.buf.len();
        let room = limits.max_head + 4 - before.min(limits.max_head);
        let take = data.len().min(room);
        h.buf.extend_from_slice(&data[..take]);
        match head::find_end(&h.buf, h.searched) {
            Some(end) if end > limits.max_head => {
                h.buf.truncate(end);
                self.head_too_large(i, cx, end - before)
            }
            Some(end) => {
                let used = end - before;
                h.buf.truncate(end);
                let raw = std::mem::take(&mut h.buf);
                h.searched = 0;
                self.head_done(i, raw, chunk, cx);
                used
            }
            None => {
                h.searched = h.buf.len();
                if h.buf.len() > limits.max_head {
                    return self.head_too_large(i, cx, take);
                }
                self.head_sanity(i, cx, take)
            }
        }
    }

    /// After a resync into `buf`: see whether the head is already complete there.
    fn head_check(&mut self, i: usize, chunk: Chunk, cx: &mut Ctx<'_>) {
        let h = &mut self.halves[i];
        if let Some(end) = head::find_end(&h.buf, 0) {
            let rest = h.buf.split_off(end);
            let raw = std::mem::take(&mut h.buf);
            self.head_done(i, raw, chunk, cx);
            if !rest.is_empty() {
                self.feed(i, &rest, chunk, cx);
            }
        } else {
            h.searched = h.buf.len();
        }
    }

    /// A partial head that is plainly not a head sends the stream to resync.
    fn head_sanity(&mut self, i: usize, cx: &mut Ctx<'_>, used: usize) -> usize {
        let h = &mut self.halves[i];
        let look = head::sniff(&h.buf);
        let bad = matches!((look, h.response), (Looks::Neither, _) | (Looks::Request, true) | (Looks::Response, false));
        if bad {
            cx.stats.malformed_heads += 1;
            cx.stats.resync_skipped_bytes += h.buf.len() as u64;
            h.buf.clear();
            h.head_first = None;
            h.st = St::Sync;
            h.line_start = false;
        }
        used
    }

    fn head_too_large(&mut self, i: usize, cx: &mut Ctx<'_>, used: usize) -> usize {
        let skipped = self.halves[i].buf.len() as u64;
        self.skipped_by(i, skipped, Some(Cap::MaxHead));
        let h = &mut self.halves[i];
        cx.stats.oversized_heads += 1;
        cx.stats.resync_skipped_bytes += h.buf.len() as u64;
        h.buf = Vec::new();
        h.head_first = None;
        h.st = St::Sync;
        h.line_start = false;
        used
    }

    /// A complete head arrived.
    fn head_done(&mut self, i: usize, raw: Vec<u8>, chunk: Chunk, cx: &mut Ctx<'_>) {
        let limits = *cx.limits;
        let response = self.halves[i].response;
        let first = self.halves[i].head_first.take().unwrap_or(chunk);
        let raw_len = raw.len() as u64;
        let head = match head::parse(raw, !response, limits.max_headers) {
            Ok(h) => h,
            Err(e) => {
                match e {
                    HeadError::TooManyHeaders => {
                        cx.stats.oversized_heads += 1;
                        self.skipped_by(i, raw_len, Some(Cap::MaxHead));
                    }
                    HeadError::StartLine => cx.stats.malformed_heads += 1,
                }
                let h = &mut self.halves[i];
                h.st = St::Sync;
                h.line_start = true;
                return;
            }
        };
        let mut anomalies = Vec::new();
        if let Some(why) = head.lenient {
            cx.stats.lenient_heads += 1;
            anomalies.push(Anomaly::LenientHead { response, why });
        }
        if head.dropped_lines > 0 {
            anomalies.push(Anomaly::DroppedHeaderLines { response, lines: head.dropped_lines });
        }
        let msg = Message::new(head, first, chunk);
        if response {
            self.response_head(msg, first, anomalies, cx);
        } else {
            self.request_head(msg, first, anomalies, cx);
        }
    }

    fn request_head(&mut self, msg: Message, first: Chunk, mut anomalies: Vec<Anomaly>, cx: &mut Ctx<'_>) {
        cx.stats.requests += 1;
        if !self.preamble.is_empty() {
            // HTTP after a preamble: a SOCKS handshake names the tunnel.
            let preamble = std::mem::take(&mut self.preamble);
            if self.inner.is_none() {
                self.inner = tunnel::socks_target(&preamble).map(Into::into);
                cx.stats.http_tunnels += self.inner.is_some() as u64;
            }
        }
        self.cap_skipped[0] = None;
        let method = msg.head.method();
        let kind = if method.eq_ignore_ascii_case(b"HEAD") {
            ReqKind::Head
        } else if method.eq_ignore_ascii_case(b"CONNECT") {
            ReqKind::Connect
        } else {
            ReqKind::Other
        };
        let framing = body_framing(&msg.head, false, ReqKind::Other, &mut anomalies);
        let id = self.next_id;
        self.next_id += 1;
        if self.midstream && self.exchanges == 0 && self.pending.is_empty() {
            anomalies.push(Anomaly::MidStream);
        }
        self.make_room(cx);
        let req_no = self.req_count;
        self.req_count += 1;
        self.pending.push_back(Pending {
            has_request: true,
            req_head_method: kind,
            req_ack: first.ack,
            req_no,
            req_start: first.offset,
            anomalies,
            ..Pending::new(id, msg.first_ts)
        });
        self.start_body(0, msg, framing, id, cx);
        if !self.chain.is_empty() {
            self.resolve(false, cx);
            self.try_emit(cx);
        }
    }

    fn response_head(&mut self, msg: Message, first: Chunk, anomalies: Vec<Anomaly>, cx: &mut Ctx<'_>) {
        let status = msg.head.status();
        if (100..200).contains(&status) && status != 101 {
            cx.stats.interim_responses += 1;
            // An interim response precedes the final one of the same request.
            match self.fast_target(first.offset) {
                Some(k) => {
                    self.pending[k].interim.push(status);
                    self.pending[k].anomalies.extend(anomalies);
                }
                None => self.interim_hold.push(status),
            }
            self.halves[1].st = St::Start;
            self.try_emit(cx);
            return;
        }
        let idx = self.place_response(first, ReqKind::Other, cx);
        let interim = std::mem::take(&mut self.interim_hold);
        self.pending[idx].interim.extend(interim);
        self.cap_skipped[1] = None;
        let p = &mut self.pending[idx];
        cx.stats.responses += 1;
        p.anomalies.extend(anomalies);
        let kind = p.req_head_method;
        let id = p.id;
        let tunnel = status == 101 || (kind == ReqKind::Connect && (200..300).contains(&status));
        // A WebSocket: the handler in `proto::ws::session` takes the connection over once this
        // exchange is finished; it is no tunnel.
        let websocket = crate::proto::ws::session::is_websocket_upgrade(status, msg.head.field("upgrade"));
        if websocket {
            self.ws = Some(Box::new(WsUpgrade { id, exchange: None, rest: Vec::new(), rest_bytes: 0 }));
        }
        let mut an = Vec::new();
        let framing = if tunnel { Framing::None } else { body_framing(&msg.head, true, kind, &mut an) };
        if tunnel && !websocket {
            an.push(Anomaly::Tunnel);
        }
        self.pending[idx].anomalies.extend(an);
        if status == 101
            && msg.head.field_has_token("upgrade", "h2c")
            && self.pending[idx].request.as_ref().is_some_and(|q| q.head.field_has_token("upgrade", "h2c"))
        {
            self.pending[idx].h2c = true;
        }
        if tunnel && status != 101 {
            let target = self.pending[idx].request.as_ref().map(|q| String::from_utf8_lossy(q.head.target()).into_owned());
            self.tunnel_sniff = Some(format!("CONNECT {}", target.unwrap_or_default()).into());
        }
        self.start_body(1, msg, framing, id, cx);
        if tunnel {
            cx.stats.tunnels += !websocket as u64;
            // The request side may still be finishing its body; whatever comes after is
            // tunnel traffic.
            for h in &mut self.halves {
                if h.st != St::Body {
                    h.st = St::Tunnel;
                    h.buf = Vec::new();
                    h.head_first = None;
                }
            }
        }
        if !self.chain.is_empty() {
            self.resolve(false, cx);
            self.try_emit(cx);
        }
    }

    /// The request a response starting at `offset` answers when nothing was lost since the
    /// last response: the first request without one, unless the client sent it after seeing
    /// these bytes (then its own request was lost).
    fn fast_target(&self, offset: u64) -> Option<usize> {
        if !self.chain.is_empty() || self.resp_loss.is_some() {
            return None;
        }
        let k = self.pending.iter().position(|p| p.has_request && !p.has_response)?;
        self.pending[k].req_ack.is_none_or(|a| a <= offset).then_some(k)
    }

    /// Finds the exchange a final response starting with `first` belongs to and marks it as
    /// having one: the request it answers when that is known, else a new entry (a response
    /// without a request, or one waiting in [`HttpConn::chain`] for evidence). Returns its
    /// index in `pending`; the caller fills it, then calls [`HttpConn::resolve`].
    fn place_response(&mut self, first: Chunk, kind: ReqKind, cx: &mut Ctx<'_>) -> usize {
        if let Some(k) = self.fast_target(first.offset) {
            self.last_placed = Some(self.pending[k].req_no);
            self.pending[k].has_response = true;
            return k;
        }
        let loss = self.resp_loss.take();
        // Nothing lost, no response waiting, and no request to answer: the request was lost,
        // unless the server had received client bytes not parsed yet (a reordered capture).
        let waiting_for_request = first.ack.is_some_and(|a| a > self.delivered[0]) || self.halves[0].st == St::Head;
        let id = self.next_id;
        self.next_id += 1;
        self.make_room(cx);
        if loss.is_none() && self.chain.is_empty() && !waiting_for_request {
            cx.stats.no_request += 1;
            let mut an = vec![Anomaly::NoRequest];
            an.extend(self.skipped_gap(0));
            if self.midstream && self.exchanges == 0 && self.pending.is_empty() {
                an.push(Anomaly::MidStream);
            }
            self.pending.push_back(Pending { has_response: true, anomalies: an, ..Pending::new(id, first.ts) });
            return self.pending.len() - 1;
        }
        self.chain.push_back(Link { id, offset: first.offset, ack: first.ack, loss, assigned: None });
        // Frame the body as the likeliest request would have it.
        let guess = self.pending.iter().find(|p| p.has_request && !p.has_response).map_or(kind, |p| p.req_head_method);
        self.pending.push_back(Pending { has_response: true, orphan: true, req_head_method: guess, ..Pending::new(id, first.ts) });
        self.pending.len() - 1
    }

    /// Places waiting responses on their requests where the evidence allows. Each response
    /// answers a request after the one the previous response answered (plus the responses
    /// known lost between them); it answers a request the client sent before receiving it
    /// (request's acknowledgment <= response's offset) and that the server had received
    /// (request's first byte < the response's acknowledgment); after a loss, a request whose
    /// acknowledgment is exactly the response's first byte is the one it answers (the client
    /// waited for it). A response whose range narrows to one request is placed there.
    /// `last`: the connection is over, no request will come.
    fn resolve(&mut self, last: bool, cx: &mut Ctx<'_>) {
        loop {
            if self.chain.is_empty() {
                return;
            }
            // Requests that may still get a response, in order: (number, ack, first byte).
            let reqs: Vec<(u64, Option<u64>, u64)> = self
                .pending
                .iter()
                .filter(|p| p.has_request && !p.has_response && self.last_placed.is_none_or(|l| p.req_no > l))
                .map(|p| (p.req_no, p.req_ack, p.req_start))
                .collect();
            let first_no = reqs.first().map_or(self.req_count, |r| r.0) as i128;
            let n = self.chain.len();
            // The range of request numbers each waiting response may answer; empty when hi < lo.
            let mut lo = vec![0i128; n];
            let mut hi: Vec<Option<i128>> = vec![None; n];
            let mut prev: Option<i128> = self.last_placed.map(|l| l as i128);
            for i in 0..n {
                let l = self.chain[i];
                if let Some(j) = l.assigned {
                    (lo[i], hi[i]) = (j as i128, Some(j as i128));
                    prev = Some(j as i128);
                    continue;
                }
                let low = prev.map_or(first_no, |p| p + 1) + l.loss.unwrap_or(0) as i128;
                let fits =
                    |r: &(u64, Option<u64>, u64)| r.1.is_none_or(|a| a <= l.offset) && l.ack.is_none_or(|a| r.2 < a) && r.0 as i128 >= low;
                let open = !last && (l.ack.is_some_and(|a| a > self.delivered[0]) || self.halves[0].st == St::Head);
                let top = reqs.iter().filter(|r| fits(r)).map(|r| r.0 as i128).max();
                let (mut a, mut b) = (low, if open { None } else { Some(top.unwrap_or(low - 1)) });
                // After a loss, the request sent right when this response began is its own.
                if l.loss.is_some()
                    && let Some(r) = reqs.iter().find(|r| fits(r) && r.1 == Some(l.offset))
                {
                    (a, b) = (r.0 as i128, Some(r.0 as i128));
                }
                (lo[i], hi[i]) = (a, b);
                prev = Some(a);
            }
            // Later responses bound earlier ones from above.
            for i in (0..n.saturating_sub(1)).rev() {
                if let Some(h1) = hi[i + 1] {
                    let bound = h1 - 1 - self.chain[i + 1].loss.unwrap_or(0) as i128;
                    hi[i] = Some(hi[i].map_or(bound, |h| h.min(bound)));
                }
            }
            let mut changed = false;
            for i in 0..n {
                if self.chain[i].assigned.is_some() {
                    continue;
                }
                if hi[i] == Some(lo[i]) && reqs.iter().any(|r| r.0 as i128 == lo[i]) {
                    self.assign(i, lo[i] as u64, cx);
                    changed = true;
                    break;
                }
                if i == 0 && hi[i].is_some_and(|h| h < lo[i]) {
                    // Nothing it can answer: a response without a request.
                    self.unlink(0, false, cx);
                    changed = true;
                    break;
                }
            }
            // Placed responses at the front are settled: the requests they passed over got
            // none.
            while let Some(l) = self.chain.front().copied()
                && let Some(j) = l.assigned
            {
                self.chain.pop_front();
                self.settle_until(j, cx);
                self.last_placed = Some(j);
                changed = true;
            }
            if !changed {
                if last {
                    // Over: what is still waiting cannot be placed.
                    while !self.chain.is_empty() {
                        self.unlink(0, true, cx);
                    }
                }
                return;
            }
        }
    }

    /// Link `i` of the chain answers request `req_no`: the response moves onto it.
    fn assign(&mut self, i: usize, req_no: u64, cx: &mut Ctx<'_>) {
        let id = self.chain[i].id;
        self.chain[i].assigned = Some(req_no);
        cx.stats.paired_after_loss += 1;
        let Some(a) = self.pending.iter().position(|p| p.id == id) else { return };
        let Some(r) = self.pending.iter().position(|p| p.has_request && p.req_no == req_no) else { return };
        let o = self.pending.remove(a).expect("present");
        let r = if a < r { r - 1 } else { r };
        let p = &mut self.pending[r];
        p.has_response = true;
        p.response = o.response;
        p.resp_lost = o.resp_lost;
        p.interim.extend(o.interim);
        p.anomalies.extend(o.anomalies);
        let rid = p.id;
        if let Some(cur) = self.halves[1].cur.as_mut()
            && cur.target == id
        {
            cur.target = rid;
        }
    }

    /// Requests before `req_no` still without a response got none: it was lost.
    fn settle_until(&mut self, req_no: u64, cx: &mut Ctx<'_>) {
        let skipped = self.skipped_gap(1);
        for p in self.pending.iter_mut() {
            if p.has_request && !p.has_response && p.req_no < req_no && self.last_placed.is_none_or(|l| p.req_no > l) {
                p.has_response = true;
                p.anomalies.push(Anomaly::NoResponse);
                p.anomalies.extend(skipped.clone());
                cx.stats.no_response += 1;
            }
        }
    }

    /// Link `i` is given up: its response is written without a request. `consumed`: it
    /// answered some request that cannot be told (so later responses answer later ones);
    /// else it answered none.
    fn unlink(&mut self, i: usize, consumed: bool, cx: &mut Ctx<'_>) {
        let Some(l) = self.chain.remove(i) else { return };
        let carried = match (l.loss, consumed) {
            (loss, true) => Some(loss.unwrap_or(0) + 1),
            (loss, false) => loss,
        };
        let merge = |a: Option<u32>, b: Option<u32>| match (a, b) {
            (None, None) => None,
            (a, b) => Some(a.unwrap_or(0) + b.unwrap_or(0)),
        };
        match self.chain.get_mut(i) {
            Some(next) => next.loss = merge(carried, next.loss),
            None => self.resp_loss = merge(carried, self.resp_loss),
        }
        let candidates = self.pending.iter().filter(|p| p.has_request && !p.has_response).count() as u32;
        if let Some(p) = self.pending.iter_mut().find(|p| p.id == l.id) {
            p.orphan = false;
            if p.response.is_some() || !p.resp_lost {
                cx.stats.no_request += 1;
                p.anomalies.insert(0, Anomaly::NoRequest);
                if consumed && candidates > 0 {
                    cx.stats.unpaired_responses += 1;
                    p.anomalies.push(Anomaly::UnknownRequest { candidates });
                }
            }
        }
    }

    /// Begins the body of a message whose head was just parsed.
    fn start_body(&mut self, i: usize, mut msg: Message, framing: Framing, target: u64, cx: &mut Ctx<'_>) {
        let limits = *cx.limits;
        let response = i == 1;
        let mut codings = Vec::new();
        let mut unknown = None;
        let has_body = !matches!(framing, Framing::None | Framing::Length(0));
        if has_body {
            for v in msg.head.field_all("content-encoding") {
                if let Some(u) = decode::parse_codings(v, &mut codings) {
                    unknown.get_or_insert_with(|| String::from_utf8_lossy(u).into_owned());
                }
            }
            // Transfer codings other than chunked were applied after the content codings.
            for v in msg.head.field_all("transfer-encoding") {
                if let Some(u) = decode::parse_codings(v, &mut codings) {
                    unknown.get_or_insert_with(|| String::from_utf8_lossy(u).into_owned());
                }
            }
        }
        if let Some(coding) = unknown {
            cx.stats.unsupported_codings += 1;
            // Keep the bytes as they are rather than decode part of a chain.
            codings.clear();
            if let Some(p) = self.pending.iter_mut().find(|p| p.id == target) {
                p.anomalies.push(Anomaly::UnsupportedCoding { response, coding });
            }
        }
        let events = response && msg.head.field("content-type").is_some_and(is_event_stream);
        let dec = has_body.then(|| {
            // Coded bodies stay encoded until they end: one in progress costs the bytes that came,
            // not what they may decode to (a few kilobytes of a bomb would be the cap). An event
            // stream is decoded as it comes, for the time of each event (within the same cap).
            let mut d = if events { BodyDecoder::new(&codings, limits.max_body) } else { BodyDecoder::deferred(&codings, limits.max_body) };
            if let Framing::Length(n) = framing {
                d.expect(n);
            }
            d
        });
        msg.codings = codings;
        msg.max_events = limits.max_messages;
        let cur = Box::new(InProgress { msg, framing, dec, target, gap: 0, cap_gap: 0, cap: None, line: Vec::new(), events });
        let h = &mut self.halves[i];
        h.cur = Some(cur);
        h.st = St::Body;
        if !has_body {
            let ts = h.cur.as_ref().map_or(Ts(0), |c| c.msg.last_ts);
            self.finish_message(i, ts, cx);
        }
    }

    /// Body bytes. Returns how many were used.
    fn body_bytes(&mut self, i: usize, data: &[u8], chunk: Chunk, cx: &mut Ctx<'_>) -> usize {
        let h = &mut self.halves[i];
        let Some(cur) = h.cur.as_mut() else {
            h.st = St::Start;
            return 0;
        };
        // Out-of-order pieces are handed on when the hole before them fills: the message
        // ended with the latest frame that carried it, not with the piece handed on last.
        if chunk.frame >= cur.msg.last_frame {
            cur.msg.last_ts = chunk.ts;
            cur.msg.last_frame = chunk.frame;
        }
        let response = h.response;
        let mut used = 0;
        let mut done = false;
        let mut bad_chunk = false;
        while used < data.len() && !done && !bad_chunk {
            let rest = &data[used..];
            match &mut cur.framing {
                Framing::None => {
                    done = true;
                }
                Framing::Length(rem) => {
                    let n = (*rem).min(rest.len() as u64) as usize;
                    body_piece(cur, &rest[..n]);
                    used += n;
                    if let Framing::Length(rem) = &mut cur.framing {
                        *rem -= n as u64;
                        done = *rem == 0;
                    }
                }
                Framing::Close => {
                    body_piece(cur, rest);
                    used += rest.len();
                }
                Framing::Chunked(st) => match *st {
                    ChunkSt::Size | ChunkSt::Trailer => {
                        let nl = memchr::memchr(b'\n', rest);
                        let take = nl.map_or(rest.len(), |p| p + 1);
                        if cur.line.len() + take > 16 << 10 {
                            bad_chunk = true;
                            continue;
                        }
                        cur.line.extend_from_slice(&rest[..take]);
                        cur.msg.body_wire_len += take as u64;
                        used += take;
                        if nl.is_none() {
                            continue;
                        }
                        let line = std::mem::take(&mut cur.line);
                        let trimmed = decode::trim(&line);
                        if *st == ChunkSt::Size {
                            if trimmed.is_empty() {
                                // A stray blank line before the size: tolerate it.
                                continue;
                            }
                            match chunk_size(trimmed) {
                                Some(0) => *st = ChunkSt::Trailer,
                                Some(n) => *st = ChunkSt::Data(n),
                                None => bad_chunk = true,
                            }
                        } else if trimmed.is_empty() {
                            done = true;
                        } else if cur.msg.trailers.len() >= cx.limits.max_headers {
                            // More trailer fields than a head may have: malformed, like an
                            // over-long line (else they would pile up without end).
                            bad_chunk = true;
                        } else if let Some(colon) = trimmed.iter().position(|&c| c == b':') {
                            let name = decode::trim(&trimmed[..colon]).to_vec();
                            let value = decode::trim(&trimmed[colon + 1..]).to_vec();
                            cur.msg.trailers.push((name, value));
                        }
                    }
                    ChunkSt::Data(rem) => {
                        let n = rem.min(rest.len() as u64) as usize;
                        body_piece(cur, &rest[..n]);
                        used += n;
                        let left = rem - n as u64;
                        if let Framing::Chunked(st) = &mut cur.framing {
                            *st = if left == 0 { ChunkSt::DataEnd } else { ChunkSt::Data(left) };
                        }
                    }
                    ChunkSt::DataEnd => {
                        // CRLF (or a bare LF) after the chunk data.
                        match rest[0] {
                            b'\r' => {
                                used += 1;
                                cur.msg.body_wire_len += 1;
                            }
                            b'\n' => {
                                used += 1;
                                cur.msg.body_wire_len += 1;
                                *st = ChunkSt::Size;
                            }
                            _ => {
                                // Missing line end: read on as the next size line.
                                *st = ChunkSt::Size;
                            }
                        }
                    }
                },
            }
        }
        if cur.events
            && let Some(d) = cur.dec.as_ref()
        {
            mark_body_time(&mut cur.msg.body_times, d.out.len(), chunk.ts);
        }
        if bad_chunk {
            cx.stats.bad_framing += 1;
            let target = cur.target;
            if let Some(p) = self.pending.iter_mut().find(|p| p.id == target) {
                p.anomalies.push(Anomaly::BadChunk { response });
            }
            self.finish_message(i, chunk.ts, cx);
            let h = &mut self.halves[i];
            if h.st != St::Tunnel {
                h.st = St::Sync;
                h.line_start = false;
            }
            return used;
        }
        if done {
            self.finish_message(i, chunk.ts, cx);
        }
        used
    }

    /// The message in progress on half `i` is over (complete or not).
    fn finish_message(&mut self, i: usize, ts: Ts, cx: &mut Ctx<'_>) {
        let h = &mut self.halves[i];
        let response = h.response;
        let Some(cur) = h.cur.take() else { return };
        if h.st == St::Body {
            h.st = St::Start;
        }
        // `last_ts` stays the time of the message's last byte, whenever it is declared over.
        let _ = ts;
        let InProgress { mut msg, dec, target, gap, cap_gap, cap, .. } = *cur;
        let mut anomalies = Vec::new();
        if gap > 0 {
            cx.stats.messages_with_gaps += 1;
            if gap > cap_gap {
                anomalies.push(Anomaly::Gap { response, bytes: gap - cap_gap, cap: None });
            }
            if cap_gap > 0 {
                anomalies.push(Anomaly::Gap { response, bytes: cap_gap, cap });
            }
        }
        if let Some(mut d) = dec {
            d.finish();
            msg.entity_len = d.encoded_len;
            if d.truncated {
                msg.body_truncated = true;
                if d.was_cut() {
                    cx.stats.bodies_cut_by_total += 1;
                    anomalies.push(Anomaly::CutByTotal { response });
                } else {
                    cx.stats.truncated_bodies += 1;
                    anomalies.push(Anomaly::Truncated { response });
                }
                msg.body_dropped = d.dropped_len();
                msg.body_not_decoded = d.undecoded_len();
                cx.stats.body_bytes_dropped += msg.body_dropped;
                cx.stats.body_bytes_not_decoded += msg.body_not_decoded;
            }
            if let Some(e) = d.error.take()
                && gap == 0
            {
                cx.stats.decode_errors += 1;
                anomalies.push(Anomaly::DecodeError { response, error: e });
            }
            msg.body_is_encoded = d.fell_back_to_raw();
            if msg.body_is_encoded {
                msg.codings.clear();
            }
            msg.body = std::mem::take(&mut d.out);
        }
        // A close-delimited or tunnel-bound message: the other half may be waiting on it.
        if let Some(p) = self.pending.iter_mut().find(|p| p.id == target) {
            p.anomalies.extend(anomalies);
            if response {
                p.response = Some(msg);
            } else {
                p.request = Some(msg);
            }
        }
        // After a tunnel-making response, this half carries tunnel bytes.
        if response {
            let tunnel = self.pending.iter().any(|p| p.id == target && p.anomalies.contains(&Anomaly::Tunnel));
            if tunnel {
                for h in &mut self.halves {
                    if h.cur.is_none() {
                        h.st = St::Tunnel;
                    }
                }
            }
        } else if self.halves[1].st == St::Tunnel {
            self.halves[0].st = St::Tunnel;
        }
        self.try_emit(cx);
    }

    /// Before another exchange is queued: past [`MAX_PENDING`] exchanges or their byte budget,
    /// writes out the oldest ones whose request and response are not being received right now.
    fn make_room(&mut self, cx: &mut Ctx<'_>) {
        let budget = 2 * (cx.limits.max_body + cx.limits.max_head);
        let held =
            |p: &Pending| p.request.iter().chain(p.response.iter()).map(|m| m.body.capacity() + m.head.raw.capacity()).sum::<usize>();
        let mut bytes: usize = self.pending.iter().map(held).sum();
        while self.pending.len() >= MAX_PENDING || bytes > budget {
            let busy = [self.halves[0].cur.as_ref().map(|c| c.target), self.halves[1].cur.as_ref().map(|c| c.target)];
            let Some(k) = self.pending.iter().position(|p| !busy.contains(&Some(p.id))) else { return };
            if self.pending[k].orphan {
                // A response still waiting for its request is given up first.
                let id = self.pending[k].id;
                if let Some(i) = self.chain.iter().position(|l| l.id == id) {
                    self.unlink(i, true, cx);
                }
            }
            let Some(mut p) = self.pending.remove(k) else { return };
            bytes -= held(&p);
            if !p.has_response {
                p.anomalies.push(Anomaly::NoResponse);
                cx.stats.no_response += 1;
            }
            self.emit(p, cx);
        }
    }

    /// Hands out finished exchanges from the front of the queue.
    fn try_emit(&mut self, cx: &mut Ctx<'_>) {
        while let Some(p) = self.pending.front() {
            let req_done = !p.has_request || p.request.is_some() || p.req_lost;
            let resp_done =
                !p.orphan && p.has_response && (p.response.is_some() || p.resp_lost || p.anomalies.contains(&Anomaly::NoResponse));
            if !(req_done && resp_done) {
                break;
            }
            let p = self.pending.pop_front().expect("front exists");
            self.emit(p, cx);
        }
    }

    fn emit(&mut self, mut p: Pending, cx: &mut Ctx<'_>) {
        if p.request.is_none() && p.response.is_none() {
            return;
        }
        if p.req_lost && !p.anomalies.contains(&Anomaly::NoRequest) {
            p.anomalies.push(Anomaly::NoRequest);
        }
        // HTTP/2 from here (`Upgrade: h2c` answered): the exchange goes on as stream 1 of the
        // HTTP/2 handler, from these offsets of the two directions.
        let h2c_at = match (p.h2c, p.request.as_ref(), p.response.as_ref()) {
            (true, Some(q), Some(r)) => {
                Some([q.stream_offset + q.head.raw.len() as u64 + q.body_wire_len, r.stream_offset + r.head.raw.len() as u64])
            }
            _ => None,
        };
        let ws = h2c_at.is_none() && self.ws.as_ref().is_some_and(|u| u.id == p.id);
        if h2c_at.is_none() && !ws {
            count_exchange(cx.stats, &p.anomalies);
        }
        let ex = Exchange {
            conn: self.meta,
            index: self.exchanges,
            request: p.request,
            response: p.response,
            interim: p.interim,
            anomalies: p.anomalies,
            tunnel: self.inner.clone(),
            websocket: None,
            h2: None,
            tls: None,
        };
        self.exchanges += 1;
        if let Some(at) = h2c_at {
            self.h2c_switch = Some(Box::new((ex, at)));
            return;
        }
        if ws && let Some(u) = self.ws.as_mut() {
            // Handed out by the WebSocket handler when the connection ends (it counts it).
            u.exchange = Some(ex);
            return;
        }
        cx.sink.exchange(ex);
    }
}

/// Parses the complete lines of a head cut short, when its start line is there.
fn partial_head(partial: &[u8], request: bool, max_headers: usize) -> Option<Head> {
    let skip = partial.iter().position(|&c| c != b'\r' && c != b'\n')?;
    // Complete lines only; when not even the start line is complete, what there is of it.
    let mut raw = match memchr::memrchr(b'\n', partial).filter(|&p| p > skip) {
        Some(p) => partial[..p + 1].to_vec(),
        None => [partial, b"\r\n"].concat(),
    };
    raw.extend_from_slice(b"\r\n");
    head::parse(raw, request, max_headers).ok()
}

fn body_piece(cur: &mut InProgress, bytes: &[u8]) {
    cur.msg.body_wire_len += bytes.len() as u64;
    if cur.gap > 0 {
        // After missing bytes the body cannot be decoded further; count it only.
        return;
    }
    if let Some(d) = cur.dec.as_mut() {
        d.push(bytes);
    }
}

/// Whether a `Content-Type` is `text/event-stream` (server-sent events).
fn is_event_stream(v: &[u8]) -> bool {
    let mime = v.split(|&c| c == b';').next().unwrap_or(v);
    decode::trim(mime).eq_ignore_ascii_case(b"text/event-stream")
}

/// Notes that the decoded body had reached `len` bytes by `ts`.
fn mark_body_time(marks: &mut Vec<(usize, Ts)>, len: usize, ts: Ts) {
    let full = marks.len() >= MAX_BODY_MARKS;
    match marks.last_mut() {
        Some(last) if last.0 >= len => {}
        // At the limit, the last mark moves on: its bytes get a later time, never an earlier one.
        Some(last) if full => *last = (len, ts),
        _ => marks.push((len, ts)),
    }
}

/// Parses a chunk-size line (hex digits, then optional extensions).
fn chunk_size(line: &[u8]) -> Option<u64> {
    let digits = line.iter().take_while(|c| c.is_ascii_hexdigit()).count();
    if digits == 0 || digits > 16 {
        return None;
    }
    let rest = decode::trim(&line[digits..]);
    if !(rest.is_empty() || rest[0] == b';') {
        return None;
    }
    let mut n: u64 = 0;
    for &c in &line[..digits] {
        let d = (c as char).to_digit(16)? as u64;
        n = n.checked_mul(16)?.checked_add(d)?;
    }
    // A chunk over 2^62 bytes cannot be real; treat it as malformed rather than wait forever.
    (n < 1 << 62).then_some(n)
}

/// How a message's body is delimited (RFC 9112 section 6.3).
fn body_framing(head: &Head, response: bool, req: ReqKind, anomalies: &mut Vec<Anomaly>) -> Framing {
    if response {
        let status = head.status();
        if req == ReqKind::Head || (100..200).contains(&status) || status == 204 || status == 304 {
            return Framing::None;
        }
    }
    let te: Vec<&[u8]> = head.field_all("transfer-encoding").collect();
    let has_cl = head.field("content-length").is_some();
    if !te.is_empty() {
        if has_cl {
            anomalies.push(Anomaly::TransferEncodingWithContentLength { response });
        }
        let last = te.iter().flat_map(|v| v.split(|&c| c == b',')).map(decode::trim).rfind(|t| !t.is_empty());
        if last.is_some_and(|t| t.eq_ignore_ascii_case(b"chunked")) {
            return Framing::Chunked(ChunkSt::Size);
        }
        anomalies.push(Anomaly::UnchunkedTransferEncoding { response });
        return if response { Framing::Close } else { Framing::None };
    }
    if has_cl {
        let mut value: Option<u64> = None;
        let mut bad = false;
        for v in head.field_all("content-length") {
            for part in v.split(|&c| c == b',') {
                let t = decode::trim(part);
                let n = if !t.is_empty() && t.len() <= 19 && t.iter().all(u8::is_ascii_digit) {
                    std::str::from_utf8(t).ok().and_then(|s| s.parse::<u64>().ok())
                } else {
                    None
                };
                match (n, value) {
                    (None, _) => bad = true,
                    (Some(n), None) => value = Some(n),
                    (Some(n), Some(v)) if n != v => bad = true,
                    _ => {}
                }
            }
        }
        if bad {
            anomalies.push(Anomaly::BadContentLength { response });
        }
        return match value {
            Some(n) => Framing::Length(n),
            None if response => Framing::Close,
            None => Framing::None,
        };
    }
    if response { Framing::Close } else { Framing::None }
}

#[cfg(test)]
mod tests;
