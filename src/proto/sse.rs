//! Server-sent events: a `text/event-stream` body split into events as the HTML standard's
//! "event stream interpretation" does, from the decoded body in any pieces.
//!
//! # Contract
//!
//! - Lines end at CRLF, LF or CR (a CR at the end of a piece waits for the next one); a BOM at
//!   the start is dropped; bytes that are not UTF-8 become U+FFFD, as a browser decodes them.
//! - `data` lines are joined with `\n`; `event` sets the type (`message` when absent); `id`
//!   sets the last event id, which carries over to later events (one with a NUL is ignored);
//!   `retry` with only ASCII digits is kept; comments (`:` first) and other fields are
//!   ignored. An empty line dispatches the event, unless no data came (then only the type is
//!   reset). An event not ended by an empty line when the stream ends is not dispatched
//!   (as in a browser), but counted.
//! - Each event carries the capture time of the piece that completed it.
//! - Bounded: a line past [`SseLimits::max_line`] is cut there (the event is marked
//!   `truncated`), and so is an event's data past [`SseLimits::max_data`].

use crate::capture::Ts;

/// Limits of one stream.
#[derive(Clone, Copy, Debug)]
pub struct SseLimits {
    /// Bytes of one line kept.
    pub max_line: usize,
    /// Bytes of one event's data kept.
    pub max_data: usize,
}

impl Default for SseLimits {
    fn default() -> Self {
        SseLimits { max_line: 1 << 20, max_data: 1 << 20 }
    }
}

/// One dispatched event.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SseEvent {
    /// When the empty line that dispatched it was captured.
    pub time: Ts,
    /// The event type (`message` unless an `event` field said otherwise).
    pub event: String,
    pub data: String,
    /// The last event id at its dispatch (carried over from earlier events).
    pub id: String,
    /// A `retry` field of this event, in milliseconds.
    pub retry: Option<u64>,
    /// A line or the data was cut at the limits.
    pub truncated: bool,
}

/// Counters of one stream.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SseStats {
    pub events: u64,
    pub comments: u64,
    /// An event left without its empty line at the end of the stream.
    pub unfinished: u64,
}

/// The parser of one event stream.
#[derive(Debug)]
pub struct SseParser {
    limits: SseLimits,
    line: Vec<u8>,
    line_cut: bool,
    /// The last piece ended with CR: an LF first in the next one belongs to it.
    after_cr: bool,
    /// Still at the very start (a BOM may come).
    at_start: bool,
    data: Vec<u8>,
    has_data: bool,
    event: Vec<u8>,
    id: Vec<u8>,
    retry: Option<u64>,
    cut: bool,
    stats: SseStats,
}

impl SseParser {
    pub fn new(limits: SseLimits) -> Self {
        SseParser {
            limits,
            line: Vec::new(),
            line_cut: false,
            after_cr: false,
            at_start: true,
            data: Vec::new(),
            has_data: false,
            event: Vec::new(),
            id: Vec::new(),
            retry: None,
            cut: false,
            stats: SseStats::default(),
        }
    }

    pub fn stats(&self) -> &SseStats {
        &self.stats
    }

    /// Decoded body bytes captured at `ts`; dispatched events go to `out`.
    pub fn push(&mut self, mut b: &[u8], ts: Ts, out: &mut impl FnMut(SseEvent)) {
        if self.at_start {
            // The BOM may itself be split across pieces.
            const BOM: &[u8] = b"\xef\xbb\xbf";
            let have = self.line.len();
            let n = (BOM.len() - have).min(b.len());
            if BOM[have..have + n] == b[..n] {
                if have + n == BOM.len() {
                    self.line.clear();
                    self.at_start = false;
                } else {
                    self.line.extend_from_slice(&b[..n]);
                }
                b = &b[n..];
                if self.at_start {
                    return;
                }
            } else {
                // Not a BOM: what was held is the line's start.
                self.at_start = false;
            }
        }
        if self.after_cr && !b.is_empty() {
            self.after_cr = false;
            if b[0] == b'\n' {
                b = &b[1..];
            }
        }
        while let Some(i) = b.iter().position(|&c| c == b'\n' || c == b'\r') {
            self.add_to_line(&b[..i]);
            let cr = b[i] == b'\r';
            b = &b[i + 1..];
            if cr {
                if b.is_empty() {
                    self.after_cr = true;
                } else if b[0] == b'\n' {
                    b = &b[1..];
                }
            }
            self.end_line(ts, out);
        }
        self.add_to_line(b);
    }

    /// The stream ended: an event without its empty line is dropped (and counted).
    pub fn end(&mut self) {
        if !self.line.is_empty() {
            // The last line is not ended either; as a browser does, it is not processed.
            self.line.clear();
        }
        if self.has_data {
            self.stats.unfinished += 1;
        }
        self.has_data = false;
        self.data.clear();
    }

    fn add_to_line(&mut self, b: &[u8]) {
        let room = self.limits.max_line.saturating_sub(self.line.len());
        if b.len() > room {
            self.line_cut = true;
        }
        self.line.extend_from_slice(&b[..b.len().min(room)]);
    }

    fn end_line(&mut self, ts: Ts, out: &mut impl FnMut(SseEvent)) {
        let line = std::mem::take(&mut self.line);
        let line_cut = std::mem::replace(&mut self.line_cut, false);
        if line.is_empty() {
            self.dispatch(ts, out);
        } else if line[0] == b':' {
            self.stats.comments += 1;
        } else {
            let (field, value) = match line.iter().position(|&c| c == b':') {
                Some(i) => {
                    let v = &line[i + 1..];
                    (&line[..i], v.strip_prefix(b" ").unwrap_or(v))
                }
                None => (&line[..], &b""[..]),
            };
            match field {
                b"event" => {
                    self.event.clear();
                    self.event.extend_from_slice(value);
                }
                b"data" => {
                    self.cut |= line_cut;
                    if self.has_data {
                        self.push_data(b"\n");
                    }
                    self.push_data(value);
                    self.has_data = true;
                }
                b"id" if !value.contains(&0) => {
                    self.id.clear();
                    self.id.extend_from_slice(value);
                }
                b"retry" if !value.is_empty() && value.iter().all(u8::is_ascii_digit) => {
                    self.retry = std::str::from_utf8(value).ok().and_then(|v| v.parse().ok());
                }
                _ => {}
            }
        }
        // The line's buffer is reused.
        self.line = line;
        self.line.clear();
    }

    fn push_data(&mut self, b: &[u8]) {
        let room = self.limits.max_data.saturating_sub(self.data.len());
        if b.len() > room {
            self.cut = true;
        }
        self.data.extend_from_slice(&b[..b.len().min(room)]);
    }

    fn dispatch(&mut self, ts: Ts, out: &mut impl FnMut(SseEvent)) {
        let retry = self.retry.take();
        if !self.has_data {
            self.event.clear();
            self.cut = false;
            return;
        }
        let event = if self.event.is_empty() { "message".into() } else { String::from_utf8_lossy(&self.event).into_owned() };
        let e = SseEvent {
            time: ts,
            event,
            data: String::from_utf8_lossy(&self.data).into_owned(),
            id: String::from_utf8_lossy(&self.id).into_owned(),
            retry,
            truncated: std::mem::replace(&mut self.cut, false),
        };
        self.data.clear();
        self.event.clear();
        self.has_data = false;
        self.stats.events += 1;
        out(e);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn events(body: &[u8], step: usize) -> (Vec<SseEvent>, SseStats) {
        let mut p = SseParser::new(SseLimits::default());
        let mut out = Vec::new();
        for (i, piece) in body.chunks(step.max(1)).enumerate() {
            p.push(piece, Ts(i as i64), &mut |e| out.push(e));
        }
        p.end();
        (out, *p.stats())
    }

    fn brief(es: &[SseEvent]) -> Vec<(&str, &str, &str)> {
        es.iter().map(|e| (e.event.as_str(), e.data.as_str(), e.id.as_str())).collect()
    }

    #[test]
    fn the_standards_examples() {
        // From the shape of the HTML standard's examples: multi-line data, ids that carry
        // over, a comment, a field without a colon, an event type.
        let body = b"\xef\xbb\xbf: a comment\n\ndata: first\ndata:second\n\nid: 7\ndata\n\nevent: add\ndata: 73857293\n\ndata: after\n\n";
        let want = vec![("message", "first\nsecond", ""), ("message", "", "7"), ("add", "73857293", "7"), ("message", "after", "7")];
        for step in 1..body.len() {
            let (es, st) = events(body, step);
            assert_eq!(brief(&es), want, "step {step}");
            assert_eq!((st.events, st.comments, st.unfinished), (4, 1, 0));
        }
    }

    #[test]
    fn line_endings_crlf_cr_and_lf_in_any_pieces() {
        let body = b"data: a\r\n\r\ndata: b\r\rdata: c\n\ndata: d\r\n\n";
        for step in 1..=body.len() {
            let (es, _) = events(body, step);
            assert_eq!(es.iter().map(|e| e.data.as_str()).collect::<Vec<_>>(), ["a", "b", "c", "d"], "step {step}");
        }
    }

    #[test]
    fn retry_ids_with_nul_and_unfinished_events() {
        let body = b"retry: 3000\ndata: x\n\nretry: 3s\nid: a\0b\ndata: y\n\nevent: lost\ndata: never dispatched\n";
        let (es, st) = events(body, 5);
        assert_eq!(es.len(), 2);
        assert_eq!((es[0].retry, es[1].retry), (Some(3000), None));
        assert_eq!(es[1].id, "");
        assert_eq!(st.unfinished, 1);
        // An event type with no data is dropped, and does not stick to the next event.
        let (es, _) = events(b"event: ping\n\ndata: z\n\n", 3);
        assert_eq!(brief(&es), [("message", "z", "")]);
    }

    #[test]
    fn each_event_has_the_time_of_the_piece_that_ended_it() {
        let mut p = SseParser::new(SseLimits::default());
        let mut out = Vec::new();
        p.push(b"data: one\n", Ts(10), &mut |e| out.push(e));
        p.push(b"\ndata: tw", Ts(20), &mut |e| out.push(e));
        p.push(b"o\n\n", Ts(30), &mut |e| out.push(e));
        assert_eq!(out.iter().map(|e| e.time).collect::<Vec<_>>(), [Ts(20), Ts(30)]);
    }

    #[test]
    fn limits_cut_lines_and_data_and_say_so() {
        let mut p = SseParser::new(SseLimits { max_line: 16, max_data: 20 });
        let mut out = Vec::new();
        p.push(b"data: 0123456789abcdefghij\ndata: 0123456789\ndata: more\n\ndata: ok\n\n", Ts(1), &mut |e| out.push(e));
        assert_eq!(out.len(), 2);
        assert!(out[0].truncated);
        assert!(out[0].data.len() <= 20, "{}", out[0].data);
        assert!(out[0].data.starts_with("0123456789"));
        assert_eq!((out[1].data.as_str(), out[1].truncated), ("ok", false));
    }

    #[test]
    fn not_utf8_becomes_replacement_characters() {
        let (es, _) = events(b"data: caf\xe9\n\n", 2);
        assert_eq!(es[0].data, "caf\u{fffd}");
        // A BOM cut short is not a BOM.
        let (es, _) = events(b"\xef\xbbdata: x\n\n", 1);
        assert_eq!(es.len(), 0);
    }
}
