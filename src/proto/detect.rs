//! Protocol detection: what a connection carries, and which side is the client, from its first
//! bytes and its ports.
//!
//! Contract: [`probe`] looks at the first bytes of one direction (as many as are there, up to
//! [`PROBE_LEN`]) and says which handler takes the connection, or that it needs more bytes to
//! tell ([`Verdict::NeedMore`] only when fewer than [`PROBE_LEN`] bytes are given, all
//! consistent with a protocol whose signature is longer). Anything it does not recognize is
//! HTTP/1's, whose handler searches it for messages. [`sender_role`] and
//! [`first_port_is_server`] tell the client from the server when the TCP handshake was not
//! captured. Nothing here allocates or fails.

use crate::proto::http1::head::{Looks, first_line_kind};

use super::Side;

/// The HTTP/2 client connection preface (RFC 9113, section 3.4).
pub const H2_PREFACE: &[u8; 24] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// The most bytes [`probe`] needs to decide.
pub const PROBE_LEN: usize = H2_PREFACE.len();

/// The largest TLS record payload: 2^14 bytes of plaintext plus what compression or
/// encryption adds (RFC 5246, section 6.2.3).
const TLS_MAX_RECORD: u16 = (1 << 14) + 2048;

/// Which handler takes a connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// HTTP/1.x, or something the HTTP/1 handler will search and then give up.
    Http1,
    Tls,
    /// HTTP/2 with prior knowledge (the client preface).
    Http2,
    /// Too few bytes to tell.
    NeedMore,
}

/// What the first bytes of a direction say the connection carries.
pub fn probe(b: &[u8]) -> Verdict {
    if b.is_empty() {
        return Verdict::NeedMore;
    }
    let n = b.len().min(PROBE_LEN);
    if b[..n] == H2_PREFACE[..n] {
        return if n == PROBE_LEN { Verdict::Http2 } else { Verdict::NeedMore };
    }
    match tls_start(b) {
        Some(true) => Verdict::Tls,
        None => Verdict::NeedMore,
        Some(false) => Verdict::Http1,
    }
}

/// Whether `b` starts with a TLS record header (content type 20 to 24, version 3.0 to 3.4, a
/// length a record can have) or an SSLv2-format ClientHello (still sent by some old clients
/// to offer TLS). `None`: the bytes there agree with one but are too few (under 5).
fn tls_start(b: &[u8]) -> Option<bool> {
    if b[0] & 0x80 != 0 {
        return sslv2_hello(b);
    }
    let ok = (20..=24).contains(&b[0])
        && b.get(1).is_none_or(|&major| major == 3)
        && b.get(2).is_none_or(|&minor| minor <= 4)
        && (b.len() < 5 || (1..=TLS_MAX_RECORD).contains(&u16::from_be_bytes([b[3], b[4]])));
    match (ok, b.len() >= 5) {
        (false, _) => Some(false),
        (true, false) => None,
        (true, true) => Some(true),
    }
}

/// An SSLv2 record header with the high bit set (two-byte length), message type 1
/// (CLIENT-HELLO) and version 2.0 or 3.x.
fn sslv2_hello(b: &[u8]) -> Option<bool> {
    let at = |i: usize| b.get(i).copied();
    let len = match (at(0), at(1)) {
        (Some(h), Some(l)) => u16::from_be_bytes([h & 0x7f, l]),
        _ => return None,
    };
    // Type, version, and three lengths of two bytes: at least 9 bytes after the header.
    if len < 9 {
        return Some(false);
    }
    match at(2) {
        None => return None,
        Some(1) => {}
        Some(_) => return Some(false),
    }
    match (at(3), at(4)) {
        (None, _) => None,
        (Some(0), None) | (Some(3), None) => None,
        (Some(0), Some(2)) => Some(true),
        (Some(3), Some(minor)) => Some(minor <= 4),
        _ => Some(false),
    }
}

/// Whether `b`, the first bytes seen of a side whose start was not captured, are HTTP/2
/// frames: two frame headers in a row that a peer could send (a known type, a length within
/// the default maximum frame size of 16384 and what the type allows, a stream id where the
/// type needs one), the first frame whole in `b`. HTTP/1 cannot look like this (the fourth
/// byte, the frame type, would be a control character in a start line); a segment that
/// starts inside a body passes by chance about once in a billion.
pub fn h2_frames(b: &[u8]) -> bool {
    use crate::proto::h2::frame::{HEADER_LEN, Header};
    let Some(h) = Header::parse(b) else { return false };
    if !h.plausible(1 << 14) {
        return false;
    }
    let next = HEADER_LEN + h.len as usize;
    Header::parse(b.get(next..).unwrap_or(&[])).is_some_and(|h2| h2.plausible(1 << 14))
}

/// Which side sent `first`, the first payload seen on a connection whose handshake was not
/// captured, when the bytes say: a request line, the HTTP/2 preface or a TLS ClientHello come
/// from the client; a status line or a TLS ServerHello from the server.
pub fn sender_role(first: &[u8]) -> Option<Side> {
    match first_line_kind(first) {
        Looks::Request => return Some(Side::Client),
        Looks::Response => return Some(Side::Server),
        _ => {}
    }
    if first.starts_with(H2_PREFACE) {
        return Some(Side::Client);
    }
    if first.len() > 5 && tls_start(first) == Some(true) {
        if first[0] & 0x80 != 0 {
            return Some(Side::Client);
        }
        // A handshake record: its first message's type.
        return match (first[0], first[5]) {
            (22, 1) => Some(Side::Client),
            (22, 2) => Some(Side::Server),
            _ => None,
        };
    }
    None
}

/// Port hints: of two ports, whether the first is the server's. A well-known web port (or
/// any port under 1024) against another is the server's; else the lower one is.
pub fn first_port_is_server(a: u16, b: u16) -> bool {
    match (is_server_port(a), is_server_port(b)) {
        (true, false) => true,
        (false, true) => false,
        _ => a < b,
    }
}

fn is_server_port(p: u16) -> bool {
    matches!(p, 80 | 8080 | 8000 | 8008 | 8888 | 3128 | 3000 | 5000 | 8081 | 443 | 8443) || p < 1024
}
