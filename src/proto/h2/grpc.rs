//! gRPC over HTTP/2: a stream whose request has `content-type: application/grpc*` carries
//! length-prefixed messages each way (a compressed flag byte, a 4-byte big-endian length,
//! the message), each compressed with the side's `grpc-encoding` when its flag says so, and
//! ends with `grpc-status` / `grpc-message` in the response trailers (or, for a
//! trailers-only response, in its headers).
//!
//! Contract: [`split`] cuts a decoded HTTP body into messages, decompressing each within a
//! budget shared by the side (`--max-body`), and says what it could not do: bytes at the end
//! that are not a whole message (a body cut short or truncated), a message that could not be
//! decompressed (its bytes are then kept as sent, flagged), messages past
//! [`MAX_MESSAGES`] (counted). [`Grpc::of`] reads the method and status. Nothing here panics.

use crate::proto::http1::Message;
use crate::proto::http1::decode::{BodyDecoder, Coding};

/// Messages kept at most per side; the rest are counted in [`Side::dropped`].
pub const MAX_MESSAGES: usize = 10_000;

/// One message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GrpcMessage {
    /// The length prefix (the message as sent, compressed or not).
    pub length: u32,
    /// The compressed flag.
    pub compressed: bool,
    /// The message, decompressed (as sent when it was not compressed, or could not be
    /// decompressed: then `error` says why).
    pub data: Vec<u8>,
    pub error: Option<String>,
    /// Cut at the budget of decoded bytes.
    pub truncated: bool,
}

/// One direction's messages.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Side {
    pub messages: Vec<GrpcMessage>,
    /// Messages past [`MAX_MESSAGES`].
    pub dropped: u64,
    /// Bytes at the end that are not a whole message.
    pub trailing: u64,
}

/// What a gRPC call was.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Grpc {
    /// From the path `/package.Service/Method`.
    pub service: String,
    pub method: String,
    pub requests: Side,
    pub responses: Side,
    /// `grpc-status`, when the response said.
    pub status: Option<u32>,
    /// `grpc-message`, percent-decoded.
    pub message: Option<String>,
}

/// Whether a request's `content-type` is gRPC's.
pub fn is_grpc(content_type: &[u8]) -> bool {
    let ct = content_type.to_ascii_lowercase();
    ct == b"application/grpc" || ct.starts_with(b"application/grpc+") || ct.starts_with(b"application/grpc;")
}

/// Splits `body` into messages; compressed ones are decompressed with `encoding` (the side's
/// `grpc-encoding`), all of them within `budget` decoded bytes.
pub fn split(mut body: &[u8], encoding: Option<&[u8]>, budget: usize) -> Side {
    let mut side = Side::default();
    let coding = encoding.map(|e| (e, Coding::from_name(e)));
    let mut left = budget;
    while !body.is_empty() {
        if body.len() < 5 {
            side.trailing = body.len() as u64;
            break;
        }
        let compressed = body[0] & 1 != 0;
        let length = u32::from_be_bytes([body[1], body[2], body[3], body[4]]);
        let Some(end) = 5usize.checked_add(length as usize).filter(|&e| e <= body.len()) else {
            side.trailing = body.len() as u64;
            break;
        };
        let raw = &body[5..end];
        body = &body[end..];
        if side.messages.len() >= MAX_MESSAGES {
            side.dropped += 1;
            continue;
        }
        let mut m = GrpcMessage { length, compressed, data: Vec::new(), error: None, truncated: false };
        if compressed {
            match coding {
                Some((_, Some(c))) => {
                    let mut d = BodyDecoder::new(&[c], left);
                    d.push(raw);
                    d.finish();
                    m.truncated = d.truncated;
                    if let Some(e) = d.error.take() {
                        m.error = Some(e);
                        m.data = raw[..raw.len().min(left)].to_vec();
                    } else {
                        m.data = std::mem::take(&mut d.out);
                    }
                }
                Some((name, None)) if name.eq_ignore_ascii_case(b"identity") => {
                    m.error = Some("compressed flag set with grpc-encoding identity".into());
                    m.data = raw[..raw.len().min(left)].to_vec();
                }
                Some((name, None)) => {
                    m.error = Some(format!("unsupported grpc-encoding {}", String::from_utf8_lossy(name)));
                    m.data = raw[..raw.len().min(left)].to_vec();
                }
                None => {
                    m.error = Some("compressed flag set without grpc-encoding".into());
                    m.data = raw[..raw.len().min(left)].to_vec();
                }
            }
        } else {
            m.truncated = raw.len() > left;
            m.data = raw[..raw.len().min(left)].to_vec();
        }
        left -= m.data.len().min(left);
        side.messages.push(m);
    }
    side
}

/// `%XX` in `grpc-message` (RFC 3986 percent-encoding of the UTF-8 text), decoded.
pub fn percent_decode(v: &[u8]) -> String {
    let mut out = Vec::with_capacity(v.len());
    let mut i = 0;
    while i < v.len() {
        let hex = |c: u8| (c as char).to_digit(16);
        if v[i] == b'%'
            && let (Some(a), Some(b)) = (v.get(i + 1).and_then(|&c| hex(c)), v.get(i + 2).and_then(|&c| hex(c)))
        {
            out.push((a * 16 + b) as u8);
            i += 3;
        } else {
            out.push(v[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

impl Grpc {
    /// The call on a stream, when its request is gRPC's: `path` is `:path`, `budget` the
    /// decoded bytes kept per side.
    pub fn of(path: &[u8], request: &Message, response: Option<&Message>, budget: usize) -> Option<Grpc> {
        if !request.head.field("content-type").is_some_and(is_grpc) {
            return None;
        }
        let p = String::from_utf8_lossy(path);
        let (service, method) =
            p.trim_start_matches('/').split_once('/').map_or((p.to_string(), String::new()), |(s, m)| (s.to_string(), m.to_string()));
        let mut g = Grpc { service, method, ..Grpc::default() };
        g.requests = split(&request.body, request.head.field("grpc-encoding"), budget);
        if let Some(r) = response {
            g.responses = split(&r.body, r.head.field("grpc-encoding"), budget);
            let field = |name: &str| {
                r.trailers
                    .iter()
                    .find(|(n, _)| n.eq_ignore_ascii_case(name.as_bytes()))
                    .map(|(_, v)| v.as_slice())
                    .or_else(|| r.head.field(name))
            };
            g.status = field("grpc-status").and_then(|v| std::str::from_utf8(v).ok()?.trim().parse().ok());
            g.message = field("grpc-message").map(percent_decode);
        }
        Some(g)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(compressed: bool, data: &[u8]) -> Vec<u8> {
        let mut b = vec![compressed as u8];
        b.extend((data.len() as u32).to_be_bytes());
        b.extend_from_slice(data);
        b
    }

    fn gzip(data: &[u8]) -> Vec<u8> {
        use std::io::Write;
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        e.write_all(data).unwrap();
        e.finish().unwrap()
    }

    #[test]
    fn messages_split_and_decompress() {
        let mut body = frame(false, b"\x0a\x03abc");
        body.extend(frame(true, &gzip(&b"z".repeat(500))));
        body.extend(frame(false, b""));
        let s = split(&body, Some(b"gzip"), 1 << 20);
        assert_eq!(s.messages.len(), 3);
        assert_eq!(
            s.messages[0],
            GrpcMessage { length: 5, compressed: false, data: b"\x0a\x03abc".to_vec(), error: None, truncated: false }
        );
        assert_eq!(s.messages[1].data, b"z".repeat(500));
        assert!(s.messages[1].compressed && s.messages[1].error.is_none());
        assert_eq!(s.messages[2].data, b"");
        assert_eq!((s.trailing, s.dropped), (0, 0));
    }

    #[test]
    fn cut_bodies_bad_codings_and_budgets_are_said() {
        let mut body = frame(false, b"whole");
        body.extend_from_slice(&frame(false, b"cut short")[..7]);
        let s = split(&body, None, 100);
        assert_eq!((s.messages.len(), s.trailing), (1, 7));
        // A length past the body (and past usize on 32 bits) is trailing bytes.
        assert_eq!(split(b"\x00\xff\xff\xff\xffab", None, 100).trailing, 7);
        let s = split(&frame(true, b"not gzip"), Some(b"gzip"), 100);
        assert!(s.messages[0].error.is_some());
        assert_eq!(s.messages[0].data, b"not gzip");
        assert!(split(&frame(true, b"x"), Some(b"snappy"), 100).messages[0].error.as_deref().unwrap().contains("snappy"));
        assert!(split(&frame(true, b"x"), None, 100).messages[0].error.is_some());
        // The budget is shared by the side's messages.
        let mut two = frame(false, &[1; 60]);
        two.extend(frame(true, &gzip(&[2; 60])));
        let s = split(&two, Some(b"gzip"), 100);
        assert_eq!(s.messages[0].data.len(), 60);
        assert_eq!(s.messages[1].data.len(), 40);
        assert!(s.messages[1].truncated);
    }

    #[test]
    fn status_message_is_percent_decoded() {
        assert_eq!(percent_decode(b"not%20found%3A%20%E2%9C%93"), "not found: \u{2713}");
        assert_eq!(percent_decode(b"100%"), "100%");
        assert_eq!(percent_decode(b"%zz%4"), "%zz%4");
        assert!(is_grpc(b"application/grpc") && is_grpc(b"application/grpc+proto") && !is_grpc(b"application/grpc-web"));
    }
}
