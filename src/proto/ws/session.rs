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
        // have been delivered later than the other (held behind a hole until it was given up):
        // the two are merged again by time, each keeping its own order.
        log.messages = merge_by_time(std::mem::take(&mut log.messages));
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

/// The messages of the two directions merged by time, each direction in its order.
fn merge_by_time(all: Vec<WsRecord>) -> Vec<WsRecord> {
    let (client, server): (Vec<WsRecord>, Vec<WsRecord>) = all.into_iter().partition(|r| r.side == Side::Client);
    let mut out = Vec::with_capacity(client.len() + server.len());
    let (mut c, mut s) = (client.into_iter().peekable(), server.into_iter().peekable());
    loop {
        let take_client = match (c.peek(), s.peek()) {
            (Some(a), Some(b)) => a.time() <= b.time(),
            (Some(_), None) => true,
            (None, Some(_)) => false,
            (None, None) => return out,
        };
        out.extend(if take_client { c.next() } else { s.next() });
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::ws::encode::{Deflater, frame};
    use crate::proto::ws::{OP_BINARY, OP_CLOSE, OP_CONTINUATION, OP_PING, OP_PONG, OP_TEXT};
    use crate::proto::{ConnMeta, Ctx, Handler, Limits, Stats};
    use crate::wire::Endpoint;

    const MASK: Option<[u8; 4]> = Some([0x11, 0x22, 0x33, 0x44]);

    fn meta() -> ConnMeta {
        let ep = |port| Endpoint { ip: [0; 16], port, v6: false };
        ConnMeta { id: 7, client: ep(40000), server: ep(80), syn_ts: Some(Ts(0)), established_ts: None }
    }

    /// The two streams of a compressed WebSocket session, and the messages they carry as
    /// (side, opcode, payload).
    /// Messages as (side, opcode, payload).
    type Messages = Vec<(Side, u8, Vec<u8>)>;

    fn session() -> (Vec<u8>, Vec<u8>, Messages) {
        let mut client =
            b"GET /chat HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n\r\n".to_vec();
        let mut server = b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Protocol: chat\r\nSec-WebSocket-Extensions: permessage-deflate; client_no_context_takeover\r\n\r\n".to_vec();
        let (mut cz, mut sz) = (Deflater::new(15, true), Deflater::new(15, false));
        let mut want = Vec::new();
        // The server speaks first, in the segment of its 101.
        let hello = b"hello hello hello from the server".to_vec();
        server.extend(frame(true, true, OP_TEXT, None, &sz.message(&hello)));
        want.push((Side::Server, OP_TEXT, hello));
        let text = b"a text message, compressed".to_vec();
        client.extend(frame(true, true, OP_TEXT, MASK, &cz.message(&text)));
        want.push((Side::Client, OP_TEXT, text));
        // Fragmented binary with a ping between its fragments (the ping comes out first).
        let bin: Vec<u8> = (0..=255u8).cycle().take(3000).collect();
        let z = cz.message(&bin);
        client.extend(frame(false, true, OP_BINARY, MASK, &z[..z.len() / 2]));
        client.extend(frame(true, false, OP_PING, MASK, b"p"));
        client.extend(frame(true, false, OP_CONTINUATION, MASK, &z[z.len() / 2..]));
        want.push((Side::Client, OP_PING, b"p".to_vec()));
        want.push((Side::Client, OP_BINARY, bin));
        server.extend(frame(true, false, OP_PONG, None, b"p"));
        want.push((Side::Server, OP_PONG, b"p".to_vec()));
        // The same text again: with context takeover it refers back to the first.
        let again = b"hello hello hello from the server".to_vec();
        server.extend(frame(true, true, OP_TEXT, None, &sz.message(&again)));
        want.push((Side::Server, OP_TEXT, again));
        let close = [&1000u16.to_be_bytes()[..], b"bye"].concat();
        client.extend(frame(true, false, OP_CLOSE, MASK, &close));
        want.push((Side::Client, OP_CLOSE, close.clone()));
        server.extend(frame(true, false, OP_CLOSE, None, &close));
        want.push((Side::Server, OP_CLOSE, close));
        (client, server, want)
    }

    /// Plays the request, then the server stream in pieces of `step` bytes, then the client's
    /// frames in pieces of `step` bytes, each piece at the next time.
    fn play(step: usize, max_messages: usize) -> (Vec<Exchange>, Stats, Option<Ts>, bool) {
        let (client, server, _) = session();
        let head = client.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
        let limits = Limits { http: crate::proto::http1::HttpLimits { max_messages, ..Default::default() }, ..Limits::default() };
        let mut stats = Stats::default();
        let mut out: Vec<Exchange> = Vec::new();
        let mut h = Handler::new(meta());
        h.clean_start(Side::Client);
        h.clean_start(Side::Server);
        let mut t = 10;
        let mut offsets = [0u64; 2];
        let mut cx = Ctx { limits: &limits, stats: &mut stats, sink: &mut out };
        let mut feed = |h: &mut Handler, side: Side, b: &[u8], cx: &mut Ctx<'_>| {
            for piece in b.chunks(step) {
                t += 1;
                let chunk = Chunk { ts: Ts(t), frame: t as u64, offset: offsets[side as usize], ack: None };
                offsets[side as usize] += piece.len() as u64;
                h.data(side, piece, chunk, cx);
            }
        };
        feed(&mut h, Side::Client, &client[..head], &mut cx);
        feed(&mut h, Side::Server, &server, &mut cx);
        feed(&mut h, Side::Client, &client[head..], &mut cx);
        let (pending, done) = (h.pending_start(), h.is_done());
        assert_eq!(h.protocol(), Some("WebSocket"));
        h.end(true, Ts(1_000_000), None, &mut cx);
        (out, stats, pending, done)
    }

    #[test]
    fn the_handler_takes_over_at_the_101_at_every_split() {
        let (_, _, want) = session();
        for step in [1, 2, 3, 7, 64, 100_000] {
            let (out, stats, pending, done) = play(step, 10_000);
            // Held while the connection is open, reported as in progress from the SYN.
            assert_eq!((pending, done), (Some(Ts(0)), false), "step {step}");
            assert_eq!(out.len(), 1, "step {step}");
            let ex = &out[0];
            assert_eq!(ex.response.as_ref().unwrap().head.status(), 101);
            assert!(ex.anomalies.is_empty(), "{:?}", ex.anomalies);
            let log = ex.websocket.as_deref().expect("the log");
            let got: Vec<(Side, u8, Vec<u8>)> = log.messages.iter().map(|r| (r.side, r.msg.opcode, r.msg.data.clone())).collect();
            // Capture order: by time, each direction in its own order.
            for side in [Side::Client, Side::Server] {
                let g: Vec<_> = got.iter().filter(|m| m.0 == side).collect();
                let w: Vec<_> = want.iter().filter(|m| m.0 == side).collect();
                assert_eq!(g, w, "step {step}, {side:?}");
            }
            assert!(log.messages.iter().all(|r| r.msg.damage.is_none()));
            assert_eq!((log.seen, log.dropped, log.damaged), (8, 0, 0));
            assert_eq!(log.protocol.as_deref(), Some("chat"));
            let close = log.close.as_ref().unwrap();
            // The server's stream is played first: its close is the earlier.
            assert_eq!((close.side, close.code, &close.reason[..]), (Side::Server, Some(1000), &b"bye"[..]));
            assert_eq!(log.by_opcode[OP_CLOSE as usize], 2);
            assert_eq!(stats.http.ws_connections, 1);
            assert_eq!(stats.http.exchanges, 1);
            assert_eq!(stats.http.tunnels, 0);
            assert_eq!(stats.http.tunnel_bytes, 0);
        }
    }

    #[test]
    fn redaction_reaches_the_messages() {
        let limits = Limits::default();
        let mut stats = Stats::default();
        let mut out: Vec<Exchange> = Vec::new();
        let mut h = Handler::new(meta());
        h.clean_start(Side::Client);
        h.clean_start(Side::Server);
        let mut cx = Ctx { limits: &limits, stats: &mut stats, sink: &mut out };
        let at = |ts, offset| Chunk { ts: Ts(ts), frame: ts as u64, offset, ack: None };
        let req = b"GET /ws HTTP/1.1\r\nUpgrade: websocket\r\n\r\n";
        h.data(Side::Client, req, at(1, 0), &mut cx);
        let mut server = b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n".to_vec();
        server.extend(frame(true, false, OP_TEXT, None, br#"{"user":"ann","password":"hunter2"}"#));
        server.extend(frame(true, false, OP_TEXT, None, b"nothing to hide"));
        h.data(Side::Server, &server, at(2, 0), &mut cx);
        h.end(true, Ts(3), None, &mut cx);
        let mut ex = out.pop().unwrap();
        let n = crate::ir::redact::Redactor::builtin().redact_exchange(&mut ex);
        let msgs: Vec<String> = ex.websocket.unwrap().messages.iter().map(|r| String::from_utf8_lossy(&r.msg.data).into_owned()).collect();
        assert!(n >= 1 && !msgs[0].contains("hunter2") && msgs[0].contains("\"user\":\"ann\""), "{msgs:?}");
        assert_eq!(msgs[1], "nothing to hide");
    }

    #[test]
    fn past_the_cap_messages_are_counted_not_kept() {
        let (out, stats, _, _) = play(5, 3);
        let log = out[0].websocket.as_deref().unwrap();
        assert_eq!((log.messages.len(), log.seen, log.dropped), (3, 8, 5));
        assert_eq!(log.dropped_by, Some("--max-messages"));
        // The close past the cap is still known.
        assert_eq!(log.close.as_ref().unwrap().code, Some(1000));
        assert_eq!(stats.http.ws_messages_dropped, 5);
    }

    #[test]
    fn a_gap_after_the_101_is_the_websocket_s() {
        let (client, server, _) = session();
        let head = client.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
        let limits = Limits::default();
        let mut stats = Stats::default();
        let mut out: Vec<Exchange> = Vec::new();
        let mut h = Handler::new(meta());
        h.clean_start(Side::Client);
        h.clean_start(Side::Server);
        let mut cx = Ctx { limits: &limits, stats: &mut stats, sink: &mut out };
        let at = |ts, offset| Chunk { ts: Ts(ts), frame: ts as u64, offset, ack: None };
        h.data(Side::Client, &client[..head], at(1, 0), &mut cx);
        h.data(Side::Server, &server, at(2, 0), &mut cx);
        // The client's first frame header is lost with 3 bytes of it.
        h.gap(Side::Client, 3, Ts(3), None, &mut cx);
        h.data(Side::Client, &client[head + 3..], at(4, head as u64 + 3), &mut cx);
        h.end(true, Ts(5), None, &mut cx);
        let ex = &out[0];
        assert_eq!(ex.anomalies, vec![Anomaly::WebSocketGap { from_client: true, bytes: 3, cap: None }]);
        let log = ex.websocket.as_deref().unwrap();
        // Nothing of the client's is invented: what is written of it is exact or marked.
        let (_, _, want) = session();
        for r in log.messages.iter().filter(|r| r.side == Side::Client && r.msg.damage.is_none()) {
            assert!(want.iter().any(|w| w.0 == Side::Client && w.1 == r.msg.opcode && w.2 == r.msg.data), "{r:?}");
        }
        assert_eq!(log.messages.iter().filter(|r| r.side == Side::Server).count(), 4);
    }
}
