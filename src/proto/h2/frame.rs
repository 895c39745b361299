//! HTTP/2 frames (RFC 9113, section 4 and 6): the 9-byte header and the payload of each
//! frame type, as views into the bytes (nothing is copied).
//!
//! Contract: [`Header::parse`] reads a frame header; [`Frame::parse`] reads one complete
//! frame's payload by its type, removing padding, and refuses lengths that do not fit (a
//! padding length past the payload, a SETTINGS payload not a multiple of 6, a PING not of 8
//! bytes...) with a [`FrameError`]. Unknown frame types are [`Frame::Unknown`] (RFC 9113
//! says to ignore them). Nothing here panics or allocates.

/// Frame header length.
pub const HEADER_LEN: usize = 9;

pub const DATA: u8 = 0;
pub const HEADERS: u8 = 1;
pub const PRIORITY: u8 = 2;
pub const RST_STREAM: u8 = 3;
pub const SETTINGS: u8 = 4;
pub const PUSH_PROMISE: u8 = 5;
pub const PING: u8 = 6;
pub const GOAWAY: u8 = 7;
pub const WINDOW_UPDATE: u8 = 8;
pub const CONTINUATION: u8 = 9;

pub const END_STREAM: u8 = 0x1;
pub const ACK: u8 = 0x1;
pub const END_HEADERS: u8 = 0x4;
pub const PADDED: u8 = 0x8;
pub const PRIORITY_FLAG: u8 = 0x20;

/// SETTINGS identifiers used here.
pub const SETTINGS_HEADER_TABLE_SIZE: u16 = 1;
pub const SETTINGS_MAX_CONCURRENT_STREAMS: u16 = 3;

/// The largest frame payload the protocol allows (2^24 - 1).
pub const MAX_FRAME_LEN: u32 = (1 << 24) - 1;

/// A frame header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    pub len: u32,
    pub kind: u8,
    pub flags: u8,
    pub stream: u32,
}

impl Header {
    /// The header at the start of `b`, when 9 bytes are there.
    pub fn parse(b: &[u8]) -> Option<Header> {
        let h = b.get(..HEADER_LEN)?;
        Some(Header {
            len: u32::from_be_bytes([0, h[0], h[1], h[2]]),
            kind: h[3],
            flags: h[4],
            stream: u32::from_be_bytes([h[5], h[6], h[7], h[8]]) & 0x7fff_ffff,
        })
    }

    /// Whether a header is one a peer could plausibly send (a known type with a length and
    /// stream id that type allows, within `max_len`): used to find frames again after bytes
    /// were lost.
    pub fn plausible(&self, max_len: u32) -> bool {
        if self.len > max_len {
            return false;
        }
        match self.kind {
            DATA | HEADERS | CONTINUATION => self.stream != 0,
            PRIORITY => self.stream != 0 && self.len == 5,
            RST_STREAM => self.stream != 0 && self.len == 4,
            SETTINGS => self.stream == 0 && self.len.is_multiple_of(6) && (self.flags & ACK == 0 || self.len == 0),
            PUSH_PROMISE => self.stream != 0 && self.len >= 4,
            PING => self.stream == 0 && self.len == 8,
            GOAWAY => self.stream == 0 && self.len >= 8,
            WINDOW_UPDATE => self.len == 4,
            _ => false,
        }
    }
}

/// Why a frame's payload could not be read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FrameError {
    /// The padding length is past the payload.
    Padding,
    /// The payload's length is not one the frame type allows.
    Length,
    /// The frame type needs a stream id (or must not have one).
    Stream,
}

impl std::fmt::Display for FrameError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            FrameError::Padding => "padding longer than the frame",
            FrameError::Length => "frame length invalid for its type",
            FrameError::Stream => "frame on a stream its type does not allow",
        })
    }
}

/// A frame's payload, read by its type.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Frame<'a> {
    /// Data with padding removed; `pad` is the padding's length (plus its length byte).
    Data {
        data: &'a [u8],
        pad: u32,
    },
    /// A header block fragment with padding and priority fields removed.
    Headers {
        fragment: &'a [u8],
    },
    Priority,
    RstStream {
        code: u32,
    },
    /// SETTINGS: the raw (identifier, value) pairs are in `params`, 6 bytes each.
    Settings {
        ack: bool,
        params: &'a [u8],
    },
    PushPromise {
        promised: u32,
        fragment: &'a [u8],
    },
    Ping,
    GoAway {
        last_stream: u32,
        code: u32,
    },
    WindowUpdate,
    Continuation {
        fragment: &'a [u8],
    },
    Unknown,
}

fn be32(b: &[u8]) -> u32 {
    u32::from_be_bytes([b[0], b[1], b[2], b[3]])
}

/// Removes padding from a PADDED frame's payload: (content, bytes of padding framing).
fn unpad<'a>(h: &Header, p: &'a [u8]) -> Result<(&'a [u8], u32), FrameError> {
    if h.flags & PADDED == 0 {
        return Ok((p, 0));
    }
    let Some((&n, rest)) = p.split_first() else { return Err(FrameError::Padding) };
    if n as usize > rest.len() {
        return Err(FrameError::Padding);
    }
    Ok((&rest[..rest.len() - n as usize], n as u32 + 1))
}

impl<'a> Frame<'a> {
    /// Reads the payload `p` of the frame whose header is `h` (`p.len() == h.len`).
    pub fn parse(h: &Header, p: &'a [u8]) -> Result<Frame<'a>, FrameError> {
        if p.len() != h.len as usize {
            return Err(FrameError::Length);
        }
        let on_stream = |ok: bool| if ok { Ok(()) } else { Err(FrameError::Stream) };
        let exact = |n: usize| if p.len() == n { Ok(()) } else { Err(FrameError::Length) };
        Ok(match h.kind {
            DATA => {
                on_stream(h.stream != 0)?;
                let (data, pad) = unpad(h, p)?;
                Frame::Data { data, pad }
            }
            HEADERS => {
                on_stream(h.stream != 0)?;
                let (mut b, _) = unpad(h, p)?;
                if h.flags & PRIORITY_FLAG != 0 {
                    b = b.get(5..).ok_or(FrameError::Length)?;
                }
                Frame::Headers { fragment: b }
            }
            PRIORITY => {
                on_stream(h.stream != 0)?;
                exact(5)?;
                Frame::Priority
            }
            RST_STREAM => {
                on_stream(h.stream != 0)?;
                exact(4)?;
                Frame::RstStream { code: be32(p) }
            }
            SETTINGS => {
                on_stream(h.stream == 0)?;
                let ack = h.flags & ACK != 0;
                if !p.len().is_multiple_of(6) || (ack && !p.is_empty()) {
                    return Err(FrameError::Length);
                }
                Frame::Settings { ack, params: p }
            }
            PUSH_PROMISE => {
                on_stream(h.stream != 0)?;
                let (b, _) = unpad(h, p)?;
                if b.len() < 4 {
                    return Err(FrameError::Length);
                }
                Frame::PushPromise { promised: be32(b) & 0x7fff_ffff, fragment: &b[4..] }
            }
            PING => {
                on_stream(h.stream == 0)?;
                exact(8)?;
                Frame::Ping
            }
            GOAWAY => {
                on_stream(h.stream == 0)?;
                if p.len() < 8 {
                    return Err(FrameError::Length);
                }
                Frame::GoAway { last_stream: be32(p) & 0x7fff_ffff, code: be32(&p[4..]) }
            }
            WINDOW_UPDATE => {
                exact(4)?;
                Frame::WindowUpdate
            }
            CONTINUATION => {
                on_stream(h.stream != 0)?;
                Frame::Continuation { fragment: p }
            }
            _ => Frame::Unknown,
        })
    }
}

/// The (identifier, value) pairs of a SETTINGS payload.
pub fn settings(params: &[u8]) -> impl Iterator<Item = (u16, u32)> + '_ {
    params.chunks_exact(6).map(|c| (u16::from_be_bytes([c[0], c[1]]), be32(&c[2..])))
}

/// The name of an error code (RFC 9113, section 7).
pub fn error_name(code: u32) -> &'static str {
    match code {
        0x0 => "NO_ERROR",
        0x1 => "PROTOCOL_ERROR",
        0x2 => "INTERNAL_ERROR",
        0x3 => "FLOW_CONTROL_ERROR",
        0x4 => "SETTINGS_TIMEOUT",
        0x5 => "STREAM_CLOSED",
        0x6 => "FRAME_SIZE_ERROR",
        0x7 => "REFUSED_STREAM",
        0x8 => "CANCEL",
        0x9 => "COMPRESSION_ERROR",
        0xa => "CONNECT_ERROR",
        0xb => "ENHANCE_YOUR_CALM",
        0xc => "INADEQUATE_SECURITY",
        0xd => "HTTP_1_1_REQUIRED",
        _ => "unknown error code",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
        let mut b = (payload.len() as u32).to_be_bytes()[1..].to_vec();
        b.extend([kind, flags]);
        b.extend(stream.to_be_bytes());
        b.extend_from_slice(payload);
        b
    }

    fn parse(b: &[u8]) -> Result<Frame<'_>, FrameError> {
        let h = Header::parse(b).unwrap();
        Frame::parse(&h, &b[HEADER_LEN..])
    }

    #[test]
    fn header_fields_and_reserved_bit() {
        let b = frame(HEADERS, END_HEADERS | END_STREAM, 0x8000_0003, b"abc");
        let h = Header::parse(&b).unwrap();
        assert_eq!(h, Header { len: 3, kind: HEADERS, flags: 5, stream: 3 });
        assert_eq!(Header::parse(&b[..8]), None);
    }

    #[test]
    fn padding_is_removed_and_checked() {
        let b = frame(DATA, PADDED | END_STREAM, 1, b"\x03helloxyz");
        assert_eq!(parse(&b), Ok(Frame::Data { data: b"hello", pad: 4 }));
        // Padding as long as the rest of the payload: an empty body.
        assert_eq!(parse(&frame(DATA, PADDED, 1, b"\x02ab")), Ok(Frame::Data { data: b"", pad: 3 }));
        assert_eq!(parse(&frame(DATA, PADDED, 1, b"\x05ab")), Err(FrameError::Padding));
        assert_eq!(parse(&frame(DATA, PADDED, 1, b"")), Err(FrameError::Padding));
        // HEADERS with padding and priority fields.
        let b = frame(HEADERS, PADDED | PRIORITY_FLAG | END_HEADERS, 5, b"\x02\x00\x00\x00\x01\x10\x82\x84pp");
        assert_eq!(parse(&b), Ok(Frame::Headers { fragment: b"\x82\x84" }));
        assert_eq!(parse(&frame(HEADERS, PRIORITY_FLAG, 5, b"\x00\x00")), Err(FrameError::Length));
        let b = frame(PUSH_PROMISE, PADDED | END_HEADERS, 1, b"\x01\x00\x00\x00\x02\x82z");
        assert_eq!(parse(&b), Ok(Frame::PushPromise { promised: 2, fragment: b"\x82" }));
    }

    #[test]
    fn bad_lengths_and_streams_are_refused() {
        assert_eq!(parse(&frame(PING, 0, 0, b"1234567")), Err(FrameError::Length));
        assert_eq!(parse(&frame(PING, 0, 1, b"12345678")), Err(FrameError::Stream));
        assert_eq!(parse(&frame(SETTINGS, 0, 0, b"\x00\x01\x00\x00\x10")), Err(FrameError::Length));
        assert_eq!(parse(&frame(SETTINGS, ACK, 0, b"\x00\x01\x00\x00\x10\x00")), Err(FrameError::Length));
        assert_eq!(parse(&frame(RST_STREAM, 0, 1, b"\x00\x00\x08")), Err(FrameError::Length));
        assert_eq!(parse(&frame(PRIORITY, 0, 1, b"\x00\x00\x00\x00")), Err(FrameError::Length));
        assert_eq!(parse(&frame(GOAWAY, 0, 0, b"\x00\x00\x00\x01")), Err(FrameError::Length));
        assert_eq!(parse(&frame(DATA, 0, 0, b"x")), Err(FrameError::Stream));
        assert_eq!(parse(&frame(CONTINUATION, 0, 0, b"x")), Err(FrameError::Stream));
        assert_eq!(parse(&frame(0x42, 0, 7, b"whatever")), Ok(Frame::Unknown));
        // A payload shorter than the header says.
        let b = frame(DATA, 0, 1, b"abc");
        let h = Header::parse(&b).unwrap();
        assert_eq!(Frame::parse(&h, &b[HEADER_LEN..HEADER_LEN + 2]), Err(FrameError::Length));
    }

    #[test]
    fn settings_goaway_rst() {
        let b = frame(SETTINGS, 0, 0, b"\x00\x01\x00\x00\x10\x00\x00\x03\x00\x00\x00\x64");
        let Ok(Frame::Settings { ack: false, params }) = parse(&b) else { panic!() };
        assert_eq!(settings(params).collect::<Vec<_>>(), [(SETTINGS_HEADER_TABLE_SIZE, 4096), (SETTINGS_MAX_CONCURRENT_STREAMS, 100)]);
        let b = frame(GOAWAY, 0, 0, b"\x80\x00\x00\x07\x00\x00\x00\x02debug");
        assert_eq!(parse(&b), Ok(Frame::GoAway { last_stream: 7, code: 2 }));
        assert_eq!(parse(&frame(RST_STREAM, 0, 3, b"\x00\x00\x00\x08")), Ok(Frame::RstStream { code: 8 }));
        assert_eq!(error_name(8), "CANCEL");
    }

    #[test]
    fn plausible_headers() {
        let ok = |b: &[u8]| Header::parse(b).unwrap().plausible(16384);
        assert!(ok(&frame(HEADERS, 4, 1, b"")));
        assert!(!ok(&frame(HEADERS, 4, 0, b"")));
        assert!(!ok(b"GET / HTTP/1.1\r\n"));
        assert!(!ok(&frame(PING, 0, 0, b"1234")));
    }
}
