//! A WebSocket connection after its `101`: the handler that takes over from HTTP/1.
//!
//! Contract: [`WsConn`] is made from the handshake exchange (held, not handed out yet) and
//! the bytes that followed the `101` in the pieces that carried it. It reads both directions
//! with [`WsDirection`] (negotiation from the response's `Sec-WebSocket-Extensions`, the
//! subprotocol from `Sec-WebSocket-Protocol`) and keeps every message in capture order in the
//! handshake exchange's [`WsLog`], up to [`WsCaps::max_messages`] messages and
//! [`WsCaps::max_held`] bytes of message data per connection; past either cap messages are
//! counted (by opcode, damage, close) but not kept. The exchange is handed out when the
//! connection ends, so its counters and close are exact; meanwhile
//! [`WsConn::pending_start`] reports its start, so the output's order window writes later
//! entries after `--order-window` and this one, when it ends, late and marked.
//!
//! Gaps are the parser's business ([`WsDirection::gap`]): the message they fall in comes out
//! damaged, the framing is found again, and no bytes are taken for a message that were not
//! one. Each gap is also an anomaly of the entry.

use crate::capture::Ts;
use crate::proto::http1::{Anomaly, Cap, Exchange, ExchangeSink, HttpStats};
use crate::proto::ws::{Extensions, WsDirection, WsLimits, WsMessage};
use crate::proto::{Chunk, Side};

/// Caps of one WebSocket connection.
#[derive(Clone, Copy, Debug)]
pub struct WsCaps {
    /// Messages (data and control) kept per connection (`--max-messages`); the rest are
    /// counted.
    pub max_messages: usize,
    /// Bytes of message data kept per connection (`--max-bodies-total`); past it messages are
    /// counted, not kept.
    pub max_held: usize,
    /// Per message: decoded bytes kept (`--max-body`) and inflated at most.
    pub message: WsLimits,
}

/// One message kept, with the side that sent it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WsRecord {
    pub side: Side,
    pub msg: WsMessage,
}

impl WsRecord {
    /// The time browsers give a message: when a sent one left (its first byte), when a
    /// received one had arrived (its last byte).
    pub fn time(&self) -> Ts {
        message_time(self.side, &self.msg)
    }
}

fn message_time(side: Side, m: &WsMessage) -> Ts {
    match side {
        Side::Client => m.first_ts,
        Side::Server => m.last_ts,
    }
}

/// What a WebSocket connection carried, attached to its handshake exchange.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct WsLog {
    /// The subprotocol the server chose (`Sec-WebSocket-Protocol` of the `101`).
    pub protocol: Option<String>,
    /// The extensions the server accepted (`Sec-WebSocket-Extensions` of the `101`).
    pub extensions: Option<String>,
    /// Messages kept, in capture order.
    pub messages: Vec<WsRecord>,
    /// Messages seen, kept or not.
    pub seen: u64,
    /// Messages not kept (past a cap), and their decoded bytes.
    pub dropped: u64,
    pub dropped_bytes: u64,
    /// Which cap dropped the first message not kept.
    pub dropped_by: Option<&'static str>,
    /// Messages seen per opcode.
    pub by_opcode: [u64; 16],
    /// Messages damaged (gap, lost framing, inflate error, unfinished) and truncated at
    /// `--max-body`.
    pub damaged: u64,
    pub truncated: u64,
    /// The first close frame (in capture time): who sent it, its code and reason.
    pub close: Option<WsClose>,
    /// Bytes of message data held.
    pub held: usize,
}

/// A close frame.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WsClose {
    pub side: Side,
    pub code: Option<u16>,
    pub reason: Vec<u8>,
    pub time: Ts,
}

/// The handler of a connection that became a WebSocket.
pub struct WsConn {
    ex: Option<Exchange>,
    log: WsLog,
    dirs: [WsDirection; 2],
    caps: WsCaps,
    /// Where this connection's counters are added when it ends.
    done: bool,
}

/// What HTTP/1 hands over at a WebSocket `101`: bytes (or gaps) that came after it.
#[derive(Debug)]
pub enum Rest {
    Data(Side, Vec<u8>, Chunk),
    Gap(Side, u64, Ts, Option<Cap>),
}

/// Whether a response (and its request) settle a WebSocket: `101` with `Upgrade: websocket`.
pub fn is_websocket_upgrade(status: u16, upgrade: Option<&[u8]>) -> bool {
    status == 101
        && upgrade.is_some_and(|v| v.split(|&c| c == b',').any(|t| crate::proto::http1::decode::trim(t).eq_ignore_ascii_case(b"websocket")))
}

impl WsConn {
    /// Takes over after the handshake `ex` (its response is the `101`).
    pub fn new(ex: Exchange, caps: WsCaps) -> WsConn {
        let head = ex.response.as_ref().map(|r| &r.head);
        let ext = Extensions::from_response(head.into_iter().flat_map(|h| h.field_all("sec-websocket-extensions")));
        let joined = |name: &str| -> Option<String> {
            let h = head?;
            let v: Vec<String> = h.field_all(name).map(|v| String::from_utf8_lossy(v).into_owned()).collect();
            (!v.is_empty()).then(|| v.join(", "))
        };
        let log = WsLog { protocol: joined("sec-websocket-protocol"), extensions: joined("sec-websocket-extensions"), ..WsLog::default() };
        let dirs = [WsDirection::new(true, &ext, caps.message), WsDirection::new(false, &ext, caps.message)];
        WsConn { ex: Some(ex), log, dirs, caps, done: false }
    }

    /// The start of the handshake exchange while it is held (at the SYN for a connection's
    /// first exchange whose handshake was seen, as its entry starts).
    pub fn pending_start(&self) -> Option<Ts> {
        let ex = self.ex.as_ref()?;
        let start = ex.start();
        match (ex.index, ex.conn.syn_ts, ex.request.is_some()) {
            (0, Some(syn), true) => Some(start.min(syn)),
            _ => Some(start),
        }
    }

    /// Bytes held: the messages kept so far.
    pub fn buffered_bytes(&self) -> usize {
        self.log.held + self.log.messages.capacity() * std::mem::size_of::<WsRecord>()
    }

    pub fn data(&mut self, side: Side, bytes: &[u8], chunk: Chunk) {
        let (dirs, log, caps) = (&mut self.dirs, &mut self.log, self.caps);
        dirs[side as usize].push(bytes, chunk.ts, &mut |m| record(log, caps, side, m));
    }

    pub fn gap(&mut self, side: Side, len: u64, ts: Ts, cap: Option<Cap>) {
        if len == 0 {
            return;
        }
        let (dirs, log, caps) = (&mut self.dirs, &mut self.log, self.caps);
        dirs[side as usize].gap(len, ts, &mut |m| record(log, caps, side, m));
        if let Some(ex) = self.ex.as_mut() {
            ex.anomalies.push(Anomaly::WebSocketGap { from_client: side == Side::Client, bytes: len, cap });
        }
    }

    /// One direction ended (its FIN): a message in progress there is unfinished.
    pub fn side_closed(&mut self, side: Side) {
        let (dirs, log, caps) = (&mut self.dirs, &mut self.log, self.caps);
        dirs[side as usize].end(&mut |m| record(log, caps, side, m));
    }

    /// The connection ended: the handshake exchange goes out with what the socket carried.
    pub fn end(&mut self, cap: Option<Cap>, stats: &mut HttpStats, sink: &mut dyn ExchangeSink) {
        if self.done {
            return;
        }
        self.done = true;
        for side in [Side::Client, Side::Server] {
            self.side_closed(side);
        }
        let Some(mut ex) = self.ex.take() else { return };
        if let Some(cap) = cap {
            ex.anomalies.push(Anomaly::EndedByCap { cap });
        }
        let mut log = std::mem::take(&mut self.log);
        // Capture order: each direction's messages are in stream order, but one direction may
        // have been delivered later than the other (held behind a hole until it was given up);
        // a stable sort on their times merges the two without reordering either.
        log.messages.sort_by_key(WsRecord::time);
        stats.ws_connections += 1;
        stats.ws_messages += log.seen;
        stats.ws_messages_dropped += log.dropped;
        stats.ws_messages_damaged += log.damaged;
        stats.ws_messages_truncated += log.truncated;
        for d in &self.dirs {
            let s = d.stats();
            stats.ws_resyncs += s.resyncs;
            stats.ws_bytes_skipped += s.bytes_skipped;
        }
        crate::proto::http1::count_exchange(stats, &ex.anomalies);
        ex.websocket = Some(Box::new(log));
        sink.exchange(ex);
    }
}

/// Notes one message of `side` in the log, kept if the caps allow.
fn record(log: &mut WsLog, caps: WsCaps, side: Side, m: WsMessage) {
    log.seen += 1;
    log.by_opcode[(m.opcode & 0x0f) as usize] += 1;
    log.damaged += m.damage.is_some() as u64;
    log.truncated += m.truncated as u64;
    if let Some((code, reason)) = m.close_code() {
        // One direction may be delivered later than the other (held behind a hole until it
        // is given up as a gap): the earlier close in capture time is the first.
        let time = message_time(side, &m);
        if log.close.as_ref().is_none_or(|c| time < c.time) {
            log.close = Some(WsClose { side, code, reason: reason.to_vec(), time });
        }
    }
    let over = if log.messages.len() >= caps.max_messages {
        Some("--max-messages")
    } else if log.held + m.data.len() > caps.max_held {
        Some("--max-bodies-total")
    } else {
        None
    };
    if let Some(why) = over {
        log.dropped += 1;
        log.dropped_bytes += m.size;
        log.dropped_by.get_or_insert(why);
        return;
    }
    log.held += m.data.len();
    log.messages.push(WsRecord { side, msg: m });
}
