//! The TLS record layer over one side's reassembled byte stream.
//!
//! Contract: [`Reader::push`] takes the side's bytes as they come (split anywhere: a record
//! across segments, several records in one) and [`Reader::next_record`] hands out whole records in
//! order, each with where its last byte came from. A record is a 5-byte header (content type,
//! version, length) and its payload; a header that cannot start a record (a content type
//! other than 20 to 24, a major version other than 3, a length of 0 or over
//! [`MAX_PAYLOAD`]) means the stream is not where a record starts: the reader says so
//! ([`Next::Lost`]) and holds nothing more until [`Reader::resync`]. The bytes held are
//! bounded: a partial record is at most one record, and records left unread (while their
//! keys are awaited) at most [`MAX_HELD`]; past it [`Reader::push`] refuses the bytes.

use std::collections::VecDeque;

use crate::capture::Ts;

/// The record header.
pub const HEADER: usize = 5;

/// The largest record payload: 2^14 bytes of plaintext and 2048 of expansion (RFC 5246,
/// section 6.2.3; TLS 1.3 allows less, 2^14 + 256).
pub const MAX_PAYLOAD: usize = (1 << 14) + 2048;

/// Bytes held per side: whole records waiting for their keys (a TLS 1.3 client's first
/// flight before the ServerHello is read, records of a connection whose key is not known yet)
/// and one partial record.
pub const MAX_HELD: usize = 4 * (HEADER + MAX_PAYLOAD);

pub const CHANGE_CIPHER_SPEC: u8 = 20;
pub const ALERT: u8 = 21;
pub const HANDSHAKE: u8 = 22;
pub const APPLICATION_DATA: u8 = 23;

/// A record's header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    pub ctype: u8,
    pub version: u16,
    pub len: usize,
}

/// Whether `b` (at least [`HEADER`] bytes) is a header a record can have.
pub fn header(b: &[u8]) -> Option<Header> {
    let ctype = b[0];
    let len = u16::from_be_bytes([b[3], b[4]]) as usize;
    ((20..=24).contains(&ctype) && b[1] == 3 && b[2] <= 4 && (1..=MAX_PAYLOAD).contains(&len)).then_some(Header {
        ctype,
        version: u16::from_be_bytes([b[1], b[2]]),
        len,
    })
}

/// What [`Reader::next_record`] found.
#[derive(Debug, PartialEq, Eq)]
pub enum Next {
    /// A whole record: its header, and the time and frame of its last byte. Its bytes are
    /// [`Reader::record`] until [`Reader::consume`].
    Record(Header, Ts, u64),
    /// No whole record yet.
    Empty,
    /// The bytes at the read position are not a record header.
    Lost,
}

/// One side's record layer.
#[derive(Default)]
pub struct Reader {
    buf: Vec<u8>,
    /// Read position in `buf`.
    at: usize,
    /// Stream offset of `buf[0]`.
    base: u64,
    /// Where the bytes came from: each piece's end offset in the stream, its time and frame.
    pieces: VecDeque<(u64, Ts, u64)>,
    lost: bool,
}

impl Reader {
    /// Appends the side's next bytes (at stream offset `offset`); false, keeping nothing, when
    /// holding them would pass [`MAX_HELD`].
    pub fn push(&mut self, bytes: &[u8], offset: u64, ts: Ts, frame: u64) -> bool {
        if self.buf.is_empty() {
            self.base = offset;
            self.at = 0;
        }
        if self.buf.len() - self.at + bytes.len() > MAX_HELD {
            return false;
        }
        if self.at > 0 && self.at == self.buf.len() {
            self.base += self.at as u64;
            self.buf.clear();
            self.at = 0;
        }
        self.buf.extend_from_slice(bytes);
        let end = self.base + self.buf.len() as u64;
        self.pieces.push_back((end, ts, frame));
        true
    }

    /// The next record, if a whole one is held.
    pub fn next_record(&mut self) -> Next {
        if self.lost {
            return Next::Lost;
        }
        let rest = &self.buf[self.at..];
        if rest.len() < HEADER {
            return Next::Empty;
        }
        let Some(h) = header(rest) else {
            self.lost = true;
            return Next::Lost;
        };
        if rest.len() < HEADER + h.len {
            return Next::Empty;
        }
        let end = self.base + (self.at + HEADER + h.len) as u64;
        let (ts, frame) = self.where_(end);
        Next::Record(h, ts, frame)
    }

    /// The time and frame of the byte before stream offset `end`.
    fn where_(&self, end: u64) -> (Ts, u64) {
        self.pieces.iter().find(|p| p.0 >= end).or(self.pieces.back()).map_or((Ts(0), 0), |p| (p.1, p.2))
    }

    /// The record [`Reader::next_record`] returned: header and payload.
    pub fn record(&self) -> &[u8] {
        let rest = &self.buf[self.at..];
        let len = header(rest).map_or(0, |h| h.len);
        &rest[..(HEADER + len).min(rest.len())]
    }

    /// Done with the record [`Reader::next_record`] returned.
    pub fn consume(&mut self) {
        let n = self.record().len();
        self.at += n;
        let pos = self.base + self.at as u64;
        while self.pieces.front().is_some_and(|p| p.0 <= pos) && self.pieces.len() > 1 {
            self.pieces.pop_front();
        }
        if self.at == self.buf.len() {
            self.base += self.at as u64;
            self.buf.clear();
            self.at = 0;
            self.pieces.clear();
        } else if self.at > MAX_PAYLOAD {
            self.buf.drain(..self.at);
            self.base += self.at as u64;
            self.at = 0;
        }
    }

    /// Bytes after the read position (for a search after the stream lost its place).
    pub fn rest(&self) -> &[u8] {
        &self.buf[self.at..]
    }

    /// Skips `n` bytes and reads records from there.
    pub fn resync(&mut self, n: usize) {
        self.at = (self.at + n).min(self.buf.len());
        self.lost = false;
        self.consume_nothing();
    }

    fn consume_nothing(&mut self) {
        if self.at == self.buf.len() {
            self.base += self.at as u64;
            self.buf.clear();
            self.at = 0;
            self.pieces.clear();
        }
    }

    /// Drops everything held (after a gap in the stream); the next bytes are searched for a
    /// record start.
    pub fn clear(&mut self) {
        self.buf.clear();
        self.at = 0;
        self.pieces.clear();
        self.lost = false;
    }

    /// Marks the stream out of place (after a gap): records are searched for.
    pub fn set_lost(&mut self) {
        self.lost = true;
    }

    pub fn is_lost(&self) -> bool {
        self.lost
    }

    /// Bytes held.
    pub fn held(&self) -> usize {
        self.buf.len() - self.at
    }

    pub fn capacity(&self) -> usize {
        self.buf.capacity()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(t: u8, payload: &[u8]) -> Vec<u8> {
        let mut v = vec![t, 3, 3, (payload.len() >> 8) as u8, payload.len() as u8];
        v.extend_from_slice(payload);
        v
    }

    fn drain(r: &mut Reader) -> Vec<(u8, Vec<u8>, u64)> {
        let mut out = Vec::new();
        while let Next::Record(h, _, frame) = r.next_record() {
            out.push((h.ctype, r.record()[HEADER..].to_vec(), frame));
            r.consume();
        }
        out
    }

    #[test]
    fn split_and_joined_records() {
        let mut stream = rec(22, b"hello");
        stream.extend(rec(23, &[7u8; 3000]));
        stream.extend(rec(21, &[1, 0]));
        // Every split point of the stream in two, and one byte at a time.
        for cut in 0..stream.len() {
            let mut r = Reader::default();
            assert!(r.push(&stream[..cut], 0, Ts(1), 1));
            let mut got = drain(&mut r);
            assert!(r.push(&stream[cut..], cut as u64, Ts(2), 2));
            got.extend(drain(&mut r));
            assert_eq!(got.len(), 3, "cut {cut}");
            assert_eq!(got[1].1, vec![7u8; 3000]);
            // The frame of each record's last byte.
            assert_eq!(got[0].2, if cut >= 10 { 1 } else { 2 });
            assert_eq!(r.held(), 0);
        }
        let mut r = Reader::default();
        let mut got = Vec::new();
        for (i, b) in stream.iter().enumerate() {
            assert!(r.push(&[*b], i as u64, Ts(i as i64), i as u64));
            got.extend(drain(&mut r));
        }
        assert_eq!(got.iter().map(|g| g.2).collect::<Vec<_>>(), vec![9, 9 + 3005, stream.len() as u64 - 1]);
    }

    #[test]
    fn not_a_record_and_caps() {
        let mut r = Reader::default();
        assert!(r.push(b"GET / HTTP/1.1\r\n", 0, Ts(0), 0));
        assert_eq!(r.next_record(), Next::Lost);
        // An oversized length is not a record either.
        let mut r = Reader::default();
        assert!(r.push(&[23, 3, 3, 0xff, 0xff, 0], 0, Ts(0), 0));
        assert_eq!(r.next_record(), Next::Lost);
        // Held bytes are capped.
        let mut r = Reader::default();
        let big = rec(23, &vec![0u8; MAX_PAYLOAD]);
        for i in 0..4 {
            assert!(r.push(&big, (i * big.len()) as u64, Ts(0), 0));
        }
        assert!(!r.push(&[23], 0, Ts(0), 0));
        assert_eq!(drain(&mut r).len(), 4);
    }
}
