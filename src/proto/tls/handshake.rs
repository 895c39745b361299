//! TLS handshake messages: the few apitool reads, and their reassembly across records.
//!
//! Contract: [`Assembler`] joins the handshake records of one side (in the clear or decrypted)
//! into messages (a message may span records, a record hold several), at most
//! [`MAX_MESSAGE`] bytes held; a longer message (a large certificate chain) is skipped without
//! being held. [`client_hello`], [`server_hello`] and [`encrypted_extensions`] read what
//! decryption and the HAR need from a message body: randoms, the session id, the suite, the
//! negotiated version (`supported_versions`), encrypt-then-MAC, SNI and ALPN. They return
//! `None` for a body that does not parse, and never panic.

pub const CLIENT_HELLO: u8 = 1;
pub const SERVER_HELLO: u8 = 2;
pub const NEW_SESSION_TICKET: u8 = 4;
pub const ENCRYPTED_EXTENSIONS: u8 = 8;
pub const FINISHED: u8 = 20;
pub const KEY_UPDATE: u8 = 24;

/// The largest handshake message held whole; the messages apitool reads are far smaller.
pub const MAX_MESSAGE: usize = 1 << 16;

/// The ServerHello random that makes it a HelloRetryRequest (RFC 8446, section 4.1.3):
/// SHA-256 of "HelloRetryRequest".
pub const HRR_RANDOM: [u8; 32] = [
    0xCF, 0x21, 0xAD, 0x74, 0xE5, 0x9A, 0x61, 0x11, 0xBE, 0x1D, 0x8C, 0x02, 0x1E, 0x65, 0xB8, 0x91, 0xC2, 0xA2, 0x11, 0x16, 0x7A, 0xBB,
    0x8C, 0x5E, 0x07, 0x9E, 0x09, 0xE2, 0xC8, 0xA8, 0x33, 0x9C,
];

/// Joins one side's handshake bytes into messages.
#[derive(Default)]
pub struct Assembler {
    buf: Vec<u8>,
    /// Bytes of an oversized message still to skip.
    skip: usize,
}

impl Assembler {
    /// Adds a handshake record's (plaintext) payload and calls `f` with each whole message
    /// (type, body) it completes; messages skipped for their size are not handed out.
    pub fn push(&mut self, mut data: &[u8], mut f: impl FnMut(u8, &[u8])) {
        if self.skip > 0 {
            let n = self.skip.min(data.len());
            self.skip -= n;
            data = &data[n..];
        }
        // Whole messages straight from the record when nothing is held.
        if self.buf.is_empty() {
            while data.len() >= 4 {
                let len = u32::from_be_bytes([0, data[1], data[2], data[3]]) as usize;
                if data.len() < 4 + len {
                    break;
                }
                // Too big to be held: skipped here too, whole or not.
                if len <= MAX_MESSAGE {
                    f(data[0], &data[4..4 + len]);
                }
                data = &data[4 + len..];
            }
            if data.is_empty() {
                return;
            }
        }
        self.buf.extend_from_slice(data);
        let mut at = 0;
        while self.buf.len() - at >= 4 {
            let b = &self.buf[at..];
            let len = u32::from_be_bytes([0, b[1], b[2], b[3]]) as usize;
            if len > MAX_MESSAGE {
                // Skip it: what is held of it, then the rest as it comes.
                let held = b.len() - 4;
                if held >= len {
                    at += 4 + len;
                    continue;
                }
                self.skip = len - held;
                at = self.buf.len();
                break;
            }
            if b.len() < 4 + len {
                break;
            }
            f(b[0], &b[4..4 + len]);
            at += 4 + len;
        }
        self.buf.drain(..at);
    }

    /// Whether part of a message is held (a record boundary inside a message).
    pub fn partial(&self) -> bool {
        !self.buf.is_empty() || self.skip > 0
    }

    pub fn capacity(&self) -> usize {
        self.buf.capacity()
    }
}

/// A reader of the length-prefixed vectors of the TLS presentation language.
struct Cur<'a>(&'a [u8]);

impl<'a> Cur<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.0.len() < n {
            return None;
        }
        let (a, b) = self.0.split_at(n);
        self.0 = b;
        Some(a)
    }
    fn u8(&mut self) -> Option<u8> {
        self.take(1).map(|b| b[0])
    }
    fn u16(&mut self) -> Option<u16> {
        self.take(2).map(|b| u16::from_be_bytes([b[0], b[1]]))
    }
    fn vec8(&mut self) -> Option<&'a [u8]> {
        let n = self.u8()? as usize;
        self.take(n)
    }
    fn vec16(&mut self) -> Option<&'a [u8]> {
        let n = self.u16()? as usize;
        self.take(n)
    }
}

/// Extensions as (type, data); stops at the first that does not parse.
fn extensions(b: &[u8]) -> impl Iterator<Item = (u16, &[u8])> {
    let mut c = Cur(b);
    std::iter::from_fn(move || {
        let t = c.u16()?;
        let d = c.vec16()?;
        Some((t, d))
    })
}

const EXT_SNI: u16 = 0;
const EXT_ALPN: u16 = 16;
const EXT_ETM: u16 = 22;
const EXT_EARLY_DATA: u16 = 42;
const EXT_SUPPORTED_VERSIONS: u16 = 43;

/// Most ALPN protocols kept from a ClientHello.
const MAX_ALPN: usize = 8;

/// What a ClientHello says.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ClientHello {
    pub random: [u8; 32],
    pub session_id: Vec<u8>,
    /// The server name (SNI host_name), when sent and UTF-8.
    pub sni: Option<Box<str>>,
    /// ALPN protocols offered (the first [`MAX_ALPN`]).
    pub alpn: Vec<Box<str>>,
    /// TLS 1.3 early data offered.
    pub early_data: bool,
}

fn alpn_list(d: &[u8], max: usize) -> Vec<Box<str>> {
    let mut out = Vec::new();
    let mut c = Cur(d);
    let Some(list) = c.vec16() else { return out };
    let mut c = Cur(list);
    while let Some(p) = c.vec8() {
        if out.len() >= max {
            break;
        }
        if let Ok(s) = std::str::from_utf8(p) {
            out.push(s.into());
        }
    }
    out
}

/// Reads a ClientHello body.
pub fn client_hello(body: &[u8]) -> Option<ClientHello> {
    let mut c = Cur(body);
    c.u16()?;
    let mut hello = ClientHello { random: c.take(32)?.try_into().ok()?, ..ClientHello::default() };
    hello.session_id = c.vec8()?.to_vec();
    c.vec16()?;
    c.vec8()?;
    // No extensions at all is valid (an old client).
    let exts = c.vec16().unwrap_or_default();
    for (t, d) in extensions(exts) {
        match t {
            EXT_SNI => {
                let mut c = Cur(d);
                let Some(list) = c.vec16() else { continue };
                let mut c = Cur(list);
                while let (Some(kind), Some(name)) = (c.u8(), c.vec16()) {
                    if kind == 0 {
                        hello.sni = std::str::from_utf8(name).ok().map(Into::into);
                        break;
                    }
                }
            }
            EXT_ALPN => hello.alpn = alpn_list(d, MAX_ALPN),
            EXT_EARLY_DATA => hello.early_data = true,
            _ => {}
        }
    }
    Some(hello)
}

/// What a ServerHello (or HelloRetryRequest) says.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ServerHello {
    pub random: [u8; 32],
    pub session_id: Vec<u8>,
    pub suite: u16,
    /// The negotiated version: `supported_versions` when present, else the legacy field.
    pub version: u16,
    /// Encrypt-then-MAC agreed (RFC 7366).
    pub etm: bool,
    /// The protocol chosen by ALPN (TLS 1.2; TLS 1.3 says it in EncryptedExtensions).
    pub alpn: Option<Box<str>>,
}

impl ServerHello {
    pub fn is_retry_request(&self) -> bool {
        self.random == HRR_RANDOM
    }
}

/// Reads a ServerHello body.
pub fn server_hello(body: &[u8]) -> Option<ServerHello> {
    let mut c = Cur(body);
    let legacy = c.u16()?;
    let mut hello = ServerHello { random: c.take(32)?.try_into().ok()?, version: legacy, ..ServerHello::default() };
    hello.session_id = c.vec8()?.to_vec();
    hello.suite = c.u16()?;
    c.u8()?;
    let exts = c.vec16().unwrap_or_default();
    for (t, d) in extensions(exts) {
        match t {
            EXT_SUPPORTED_VERSIONS if d.len() == 2 => hello.version = u16::from_be_bytes([d[0], d[1]]),
            EXT_ETM => hello.etm = true,
            EXT_ALPN => hello.alpn = alpn_list(d, 1).pop(),
            _ => {}
        }
    }
    Some(hello)
}

/// The ALPN protocol an EncryptedExtensions message chose, if any.
pub fn encrypted_extensions(body: &[u8]) -> Option<Option<Box<str>>> {
    let mut c = Cur(body);
    let exts = c.vec16()?;
    Some(extensions(exts).find(|e| e.0 == EXT_ALPN).and_then(|(_, d)| alpn_list(d, 1).pop()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ext(t: u16, d: &[u8]) -> Vec<u8> {
        let mut v = t.to_be_bytes().to_vec();
        v.extend_from_slice(&(d.len() as u16).to_be_bytes());
        v.extend_from_slice(d);
        v
    }

    fn v16(d: &[u8]) -> Vec<u8> {
        let mut v = (d.len() as u16).to_be_bytes().to_vec();
        v.extend_from_slice(d);
        v
    }

    fn sample_client_hello() -> Vec<u8> {
        let mut b = vec![3, 3];
        b.extend_from_slice(&[0xAB; 32]);
        b.push(32);
        b.extend_from_slice(&[0x5E; 32]);
        b.extend(v16(&[0x13, 0x01, 0x13, 0x02]));
        b.extend_from_slice(&[1, 0]);
        let mut sni = vec![0];
        sni.extend(v16(b"api.example"));
        let mut exts = ext(EXT_SNI, &v16(&sni));
        exts.extend(ext(EXT_ALPN, &v16(b"\x02h2\x08http/1.1")));
        exts.extend(ext(EXT_SUPPORTED_VERSIONS, &[4, 3, 4, 3, 3]));
        b.extend(v16(&exts));
        b
    }

    #[test]
    fn reads_client_hello() {
        let b = sample_client_hello();
        let h = client_hello(&b).unwrap();
        assert_eq!(h.random, [0xAB; 32]);
        assert_eq!(h.session_id, vec![0x5E; 32]);
        assert_eq!(h.sni.as_deref(), Some("api.example"));
        assert_eq!(h.alpn, vec![Box::from("h2"), Box::from("http/1.1")]);
        assert!(!h.early_data);
        // Every truncation parses or fails, never panics.
        for n in 0..b.len() {
            let _ = client_hello(&b[..n]);
        }
        assert!(client_hello(&b[..20]).is_none());
    }

    #[test]
    fn reads_server_hello() {
        let mut b = vec![3, 3];
        b.extend_from_slice(&HRR_RANDOM);
        b.push(0);
        b.extend_from_slice(&[0x13, 0x02, 0]);
        let mut exts = ext(EXT_SUPPORTED_VERSIONS, &[3, 4]);
        exts.extend(ext(EXT_ETM, &[]));
        b.extend(v16(&exts));
        let h = server_hello(&b).unwrap();
        assert!(h.is_retry_request());
        assert_eq!((h.suite, h.version, h.etm), (0x1302, 0x0304, true));
        for n in 0..b.len() {
            let _ = server_hello(&b[..n]);
        }
    }

    #[test]
    fn assembles_messages_across_records() {
        let mut stream = vec![CLIENT_HELLO, 0, 0, 3, 1, 2, 3];
        stream.extend_from_slice(&[FINISHED, 0, 0, 2, 9, 9]);
        // A message too big to hold, skipped.
        let big = MAX_MESSAGE + 10;
        stream.extend_from_slice(&[11, (big >> 16) as u8, (big >> 8) as u8, big as u8]);
        stream.extend(std::iter::repeat_n(0u8, big));
        stream.extend_from_slice(&[KEY_UPDATE, 0, 0, 1, 0]);
        for size in [1, 2, 3, 5, 7, 1000, stream.len()] {
            let mut a = Assembler::default();
            let mut got = Vec::new();
            for part in stream.chunks(size) {
                a.push(part, |t, b| got.push((t, b.to_vec())));
            }
            let types: Vec<(u8, usize)> = got.iter().map(|(t, b)| (*t, b.len())).collect();
            assert_eq!(types, vec![(CLIENT_HELLO, 3), (FINISHED, 2), (KEY_UPDATE, 1)], "size {size}");
            assert_eq!((&got[0].1[..], &got[1].1[..]), (&[1u8, 2, 3][..], &[9u8, 9][..]));
            assert!(!a.partial());
            assert!(a.capacity() <= 2 * MAX_MESSAGE + 2000);
        }
    }
}
