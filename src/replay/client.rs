//! Sending one recorded request to the target and reading the response: a small HTTP/1.1
//! client over a TCP connection, so that what is sent is what was recorded (header names in
//! their recorded case) and what went wrong is known exactly (a reset is a reset, even in the
//! middle of a body).
//!
//! Contract: a [`Client`] is the client of one recorded connection: at most one TCP
//! connection, kept alive between requests while the target allows it, no proxy, no redirects
//! followed, no headers of its own. [`Client::send`] sends one request and reads the response
//! before the exchange's deadline (connecting, sending, waiting and the whole body included;
//! `--timeout`, and `--deadline` for the run), keeping at most `max_body` bytes of the body,
//! decoded. A request that finds its kept-alive connection closed by the target before any
//! byte of the response is sent once more on a new connection (the target closed an idle
//! connection); any other failure comes back as a [`Failure`] with a short message that says
//! whether the connection itself failed (refused, reset, or timed out with nothing received).
//! Nothing here panics or waits past the deadline.
//!
//! What is sent: the recorded method, path and query (after the target's base path; bytes a
//! request-target cannot hold are percent-encoded), header fields in recorded order and case
//! less the hop-by-hop ones (and those the Connection field names), Content-Length (recomputed
//! from the body), Expect (no waiting for 100 Continue) and Host (the target's, unless
//! `--keep-host`); the body, encoded again with the recorded Content-Encoding when the
//! recording holds it decoded.
//!
//! What is read: interim 1xx responses are skipped; the body is framed by chunked coding,
//! Content-Length, or the end of the connection (none for HEAD, 1xx, 204 and 304); header
//! names are kept as received.

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::time::{Duration, Instant, SystemTime};

use super::compare::HOP_BY_HOP;
use super::h2::H2Conn;
use super::har_in::RecEntry;
use crate::proto::http1::decode::{BodyDecoder, Coding, parse_codings};

/// Where requests go: `http://host:port` and an optional base path.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Target {
    /// `http://host:port` or `https://host:port`, no trailing slash.
    pub origin: String,
    /// Base path put before every recorded path (`/v2`), or empty.
    pub prefix: String,
    /// `https://`: requests go over TLS.
    pub tls: bool,
}

impl std::str::FromStr for Target {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let lower = s.to_ascii_lowercase();
        let tls = lower.starts_with("https://");
        let Some(rest) = (lower.starts_with("http://") || tls).then(|| &s[if tls { 8 } else { 7 }..]) else {
            return Err(format!("--target {s}: expected http[s]://HOST[:PORT][/BASE-PATH]"));
        };
        let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
        let authority = &rest[..end];
        if authority.is_empty() || authority.contains('@') {
            return Err(format!("--target {s}: expected http[s]://HOST[:PORT][/BASE-PATH]"));
        }
        let path = &rest[end..];
        if path.contains(['?', '#']) {
            return Err(format!("--target {s}: a query or fragment cannot be part of the target"));
        }
        let port_ok = |p: &str| p.parse::<u16>().is_ok();
        let valid = match authority.strip_prefix('[') {
            Some(v6) => v6.split_once(']').is_some_and(|(ip, rest)| {
                ip.parse::<std::net::Ipv6Addr>().is_ok() && (rest.is_empty() || rest.strip_prefix(':').is_some_and(port_ok))
            }),
            None => {
                let (host, port) = authority.rsplit_once(':').unwrap_or((authority, "80"));
                !host.is_empty() && host.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'.' || c == b'_') && port_ok(port)
            }
        };
        if !valid {
            return Err(format!("--target {s}: {authority:?} is not HOST[:PORT]"));
        }
        let origin = format!("{}://{authority}", if tls { "https" } else { "http" });
        Ok(Target { origin, prefix: path.trim_end_matches('/').to_string(), tls })
    }
}

impl Target {
    /// `host:port` as given.
    pub fn authority(&self) -> &str {
        &self.origin[if self.tls { "https://".len() } else { "http://".len() }..]
    }

    /// The host alone (the TLS server name): without the port, an IPv6 address without its
    /// brackets.
    pub fn host(&self) -> &str {
        let a = self.authority();
        match a.strip_prefix('[') {
            Some(v6) => v6.split(']').next().unwrap_or(v6),
            None => a.rsplit_once(':').map_or(a, |(h, _)| h),
        }
    }

    fn default_port(&self) -> u16 {
        if self.tls { 443 } else { 80 }
    }
}

impl std::fmt::Display for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}{}", self.origin, self.prefix)
    }
}

/// How requests are sent.
#[derive(Clone, Debug)]
pub struct ClientConfig {
    pub target: Target,
    /// Send the recorded Host field instead of the target's.
    pub keep_host: bool,
    /// For the whole exchange: connecting, sending, waiting, and the body.
    pub timeout: Duration,
    /// Largest response body kept (decoded, and on the wire); past it the body is truncated
    /// and the exchange flagged.
    pub max_body: usize,
    /// The end of the whole run (`--deadline`): no exchange goes on past it.
    pub deadline: Option<Instant>,
    /// Every request over HTTP/2 with prior knowledge (h2c, `--http2-prior-knowledge`);
    /// gRPC calls go over h2c in any case.
    pub http2: bool,
    /// For an `https://` target: trust anchors and ALPN offers.
    pub tls: Option<std::sync::Arc<super::tls::TlsSetup>>,
}

/// A response received.
#[derive(Clone, Debug)]
pub struct Received {
    pub status: u16,
    /// The reason phrase as received.
    pub reason: String,
    pub version: String,
    pub headers: Vec<(String, String)>,
    /// HTTP/2 trailers (names as received); empty over HTTP/1.1.
    pub trailers: Vec<(String, String)>,
    /// Decoded (at most `max_body` bytes).
    pub body: Vec<u8>,
    /// The body went past `max_body` and was cut there.
    pub truncated: bool,
    /// The body could not be decoded (the bytes kept are as far as decoding went).
    pub decode_error: Option<String>,
    /// Body bytes read from the connection (after de-chunking).
    pub wire_len: u64,
    /// From the start of the request to the response head.
    pub wait: Duration,
    /// From the start of the request to the end of the body.
    pub elapsed: Duration,
    pub started: SystemTime,
    /// The address the response came from.
    pub server_ip: String,
}

/// Why an exchange has no response.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Failure {
    /// `refused`, `reset`, `closed`, `timeout`, `protocol`, `request` or `io`.
    pub kind: &'static str,
    pub message: String,
    /// The connection itself failed (refused, reset, or timed out with nothing received):
    /// the rest of the recorded connection is not sent.
    pub connection_level: bool,
}

/// A request ready to go.
pub struct Prepared {
    pub(super) method: String,
    /// The request-target sent (base path and recorded target).
    pub(super) target: String,
    /// Name and value in the order they go, Host among them.
    pub(super) headers: Vec<(String, String)>,
    pub(super) body: Option<Vec<u8>>,
    /// The Host sent (over HTTP/2, as `:authority`).
    pub(super) host: String,
    /// The recording had a Content-Length (over HTTP/2 one is sent only then).
    pub(super) had_length: bool,
    /// The recorded request said `TE: trailers` (kept over HTTP/2, where gRPC needs it).
    pub(super) te_trailers: bool,
    /// Needs HTTP/2 (`--http2-prior-knowledge`, or a gRPC call): over h2c with prior
    /// knowledge, or over TLS when the target agrees to `h2`.
    pub http2: bool,
    /// Recorded over HTTP/2: over TLS, `h2` is offered (the target's choice decides).
    pub recorded_h2: bool,
    /// What was left out or changed, to tell the user.
    pub notes: Vec<String>,
}

fn is_token(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|c| c.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&c))
}

/// A request-target as sent: bytes it cannot hold (controls, space, DEL, non-ASCII) percent-encoded.
fn encode_target(t: &str) -> String {
    let mut out = String::with_capacity(t.len());
    for &c in t.as_bytes() {
        if c <= b' ' || c >= 0x7f {
            out.push_str(&format!("%{c:02X}"));
        } else {
            out.push(c as char);
        }
    }
    out
}

/// Builds the request of a recorded entry.
pub fn prepare(cfg: &ClientConfig, e: &RecEntry) -> Result<Prepared, Failure> {
    let bad = |m: String| Failure { kind: "request", message: m, connection_level: false };
    if !is_token(&e.method) {
        return Err(bad(format!("invalid method {:?}", e.method)));
    }
    let target = encode_target(&format!("{}{}", cfg.target.prefix, e.target));
    let mut notes = Vec::new();
    // Fields the Connection field names are hop-by-hop too.
    let named: Vec<String> = e
        .headers
        .iter()
        .filter(|(n, _)| n.eq_ignore_ascii_case("connection"))
        .flat_map(|(_, v)| v.split(',').map(|t| t.trim().to_ascii_lowercase()))
        .collect();
    let host = if cfg.keep_host && !e.host.is_empty() {
        if e.host.bytes().all(|c| c.is_ascii_graphic()) {
            e.host.clone()
        } else {
            notes.push(format!("recorded Host {:?} is not valid; the target's was sent", e.host));
            cfg.target.authority().to_string()
        }
    } else {
        cfg.target.authority().to_string()
    };
    let mut headers = Vec::with_capacity(e.headers.len() + 2);
    let mut codings = Vec::new();
    let mut had_length = false;
    let mut host_placed = false;
    let mut te_trailers = false;
    let mut grpc = false;
    for (name, value) in &e.headers {
        let name = name.trim();
        let lower = name.to_ascii_lowercase();
        if lower == "te" {
            te_trailers |= value.split(',').any(|t| t.trim().eq_ignore_ascii_case("trailers"));
        }
        if lower == "content-type" {
            grpc |= crate::proto::h2::grpc::is_grpc(value.trim().as_bytes());
        }
        if lower.starts_with(':') || HOP_BY_HOP.contains(&lower.as_str()) || named.contains(&lower) || lower == "expect" {
            continue;
        }
        if lower == "content-length" {
            had_length = true;
            continue;
        }
        if lower == "host" {
            // The target's (or the recorded one), where the recording had it.
            if !host_placed {
                headers.push((name.to_string(), host.clone()));
                host_placed = true;
            }
            continue;
        }
        if lower == "content-encoding" && !e.body_is_encoded && parse_codings(value.as_bytes(), &mut codings).is_some() {
            // A coding we cannot apply: the body goes decoded, without the field.
            notes.push(format!("request Content-Encoding {value:?} cannot be applied again; the body was sent decoded without it"));
            codings.clear();
            continue;
        }
        if !is_token(name) || value.bytes().any(|c| c == b'\r' || c == b'\n' || c == 0) {
            notes.push(format!("header field {name:?} is not valid HTTP and was not sent"));
            continue;
        }
        headers.push((name.to_string(), value.trim().to_string()));
    }
    if !host_placed {
        headers.insert(0, ("Host".to_string(), host.clone()));
    }
    let mut body = e.body.clone();
    if let Some(data) = body.as_mut()
        && !codings.is_empty()
        && !data.is_empty()
        && !e.body_is_encoded
    {
        match encode(&codings, data) {
            Ok(enc) => *data = enc,
            Err(err) => return Err(bad(format!("cannot encode the request body again: {err}"))),
        }
    }
    // A body (even empty) goes with its length when the recording had one, or the method
    // usually carries one.
    let with_body = body.as_ref().is_some_and(|b| !b.is_empty())
        || had_length
        || matches!(e.method.to_ascii_uppercase().as_str(), "POST" | "PUT" | "PATCH");
    let body = if with_body { Some(body.unwrap_or_default()) } else { None };
    if let Some(b) = &body {
        headers.push(("Content-Length".to_string(), b.len().to_string()));
    }
    let http2 = cfg.http2 || grpc;
    let recorded_h2 = e.http_version.eq_ignore_ascii_case("HTTP/2.0")
        || e.http_version.eq_ignore_ascii_case("HTTP/2")
        || e.http_version.eq_ignore_ascii_case("h2");
    Ok(Prepared { method: e.method.clone(), target, headers, body, host, had_length, te_trailers, http2, recorded_h2, notes })
}

impl Prepared {
    /// The request as it goes on the wire.
    fn bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(256 + self.body.as_ref().map_or(0, Vec::len));
        out.extend_from_slice(format!("{} {} HTTP/1.1\r\n", self.method, self.target).as_bytes());
        for (n, v) in &self.headers {
            out.extend_from_slice(n.as_bytes());
            out.extend_from_slice(b": ");
            out.extend_from_slice(v.as_bytes());
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(b"\r\n");
        if let Some(b) = &self.body {
            out.extend_from_slice(b);
        }
        out
    }
}

/// Applies content codings in the order listed.
fn encode(codings: &[Coding], data: &[u8]) -> std::io::Result<Vec<u8>> {
    let mut cur = data.to_vec();
    for c in codings {
        cur = match c {
            Coding::Gzip => {
                let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
                e.write_all(&cur)?;
                e.finish()?
            }
            Coding::Deflate => {
                let mut e = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
                e.write_all(&cur)?;
                e.finish()?
            }
            Coding::Brotli => {
                let mut out = Vec::new();
                {
                    let mut e = brotli::CompressorWriter::new(&mut out, 4096, 5, 22);
                    e.write_all(&cur)?;
                }
                out
            }
            Coding::Zstd => zstd::encode_all(&cur[..], 3)?,
        };
    }
    Ok(cur)
}

fn secs(d: Duration) -> String {
    let s = d.as_secs_f64();
    if s >= 10.0 { format!("{s:.0}s") } else { format!("{s:.1}s").replace(".0s", "s") }
}

/// Largest response head read (status line and header fields).
const MAX_HEAD: usize = 256 << 10;
/// Largest chunk-size line (with its extensions) and trailer section.
const MAX_CHUNK_LINE: usize = 4096;
const MAX_TRAILERS: usize = 64 << 10;

/// What the exchange was doing when it failed.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Phase {
    Connecting,
    Sending,
    /// Waiting for the response head; whether any byte of it came.
    Waiting {
        any: bool,
    },
    /// Reading the body, bytes received so far.
    Body(u64),
}

impl Phase {
    fn during(self) -> String {
        match self {
            Phase::Connecting => "connecting".into(),
            Phase::Sending => "sending the request".into(),
            Phase::Waiting { .. } => "waiting for the response".into(),
            Phase::Body(n) => format!("receiving the body ({n} bytes received)"),
        }
    }

    fn nothing_received(self) -> bool {
        matches!(self, Phase::Connecting | Phase::Sending | Phase::Waiting { any: false })
    }
}

/// A connection's byte stream: TCP, or TLS over TCP.
enum Stream {
    Plain(TcpStream),
    Tls(Box<rustls::StreamOwned<rustls::ClientConnection, TcpStream>>),
}

impl Stream {
    fn tcp(&self) -> &TcpStream {
        match self {
            Stream::Plain(s) => s,
            Stream::Tls(t) => &t.sock,
        }
    }
}

impl Read for Stream {
    fn read(&mut self, b: &mut [u8]) -> std::io::Result<usize> {
        match self {
            Stream::Plain(s) => s.read(b),
            Stream::Tls(t) => t.read(b),
        }
    }
}

impl Write for Stream {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        match self {
            Stream::Plain(s) => s.write(b),
            Stream::Tls(t) => t.write(b),
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        match self {
            Stream::Plain(s) => s.flush(),
            Stream::Tls(t) => t.flush(),
        }
    }
}

/// One connection to the target, with the bytes read and not yet used.
pub(super) struct Conn {
    stream: Stream,
    pub(super) buf: Vec<u8>,
    /// Start of the unused bytes in `buf`.
    pub(super) pos: usize,
    pub(super) peer: SocketAddr,
}

/// Why a read or write failed.
pub(super) enum IoFail {
    /// The exchange's deadline passed.
    Deadline,
    /// The target closed the connection (end of file).
    Closed,
    /// The target reset the HTTP/2 stream (RST_STREAM, with its error code); the connection
    /// itself is fine.
    StreamReset(u32),
    Io(std::io::Error),
}

impl IoFail {
    /// A protocol violation by the target.
    pub(super) fn protocol(m: String) -> IoFail {
        IoFail::Io(std::io::Error::new(ErrorKind::InvalidData, m))
    }
}

impl Conn {
    pub(super) fn avail(&self) -> &[u8] {
        &self.buf[self.pos..]
    }

    pub(super) fn consume(&mut self, n: usize) {
        self.pos += n;
        if self.pos == self.buf.len() {
            self.buf.clear();
            self.pos = 0;
        }
    }

    /// Reads more bytes (at most 64 KiB) before `end`.
    /// Hands the next `left` bytes to `feed` (which counts them into `wire`), reading as
    /// needed; false when `feed` asked to stop (the body cap).
    fn feed_exactly(
        &mut self,
        mut left: u64,
        end: Instant,
        wire: &mut u64,
        feed: &mut impl FnMut(&[u8], &mut u64) -> bool,
    ) -> Result<bool, (IoFail, Phase)> {
        while left > 0 {
            if self.avail().is_empty() {
                self.fill(end).map_err(|f| (f, Phase::Body(*wire)))?;
            }
            let n = (self.avail().len() as u64).min(left) as usize;
            let go_on = feed(&self.avail()[..n], wire);
            self.consume(n);
            left -= n as u64;
            if !go_on {
                return Ok(false);
            }
        }
        Ok(true)
    }

    pub(super) fn fill(&mut self, end: Instant) -> Result<(), IoFail> {
        if self.pos > 0 && self.pos * 2 > self.buf.len() {
            self.buf.drain(..self.pos);
            self.pos = 0;
        }
        let len = self.buf.len();
        self.buf.resize(len + (64 << 10), 0);
        let r = loop {
            let left = end.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break Err(IoFail::Deadline);
            }
            if let Err(e) = self.stream.tcp().set_read_timeout(Some(left)) {
                break Err(IoFail::Io(e));
            }
            match self.stream.read(&mut self.buf[len..]) {
                Ok(0) => break Err(IoFail::Closed),
                Ok(n) => break Ok(n),
                // TLS: the TCP connection ended without close_notify.
                Err(e) if e.kind() == ErrorKind::UnexpectedEof => break Err(IoFail::Closed),
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
                Err(e) => break Err(IoFail::Io(e)),
            }
        };
        self.buf.truncate(len + *r.as_ref().unwrap_or(&0));
        r.map(|_| ())
    }

    pub(super) fn write_all(&mut self, mut data: &[u8], end: Instant) -> Result<(), IoFail> {
        while !data.is_empty() {
            let left = end.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(IoFail::Deadline);
            }
            self.stream.tcp().set_write_timeout(Some(left)).map_err(IoFail::Io)?;
            match self.stream.write(data) {
                Ok(0) => return Err(IoFail::Closed),
                Ok(n) => data = &data[n..],
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
                Err(e) => return Err(IoFail::Io(e)),
            }
        }
        // TLS records still buffered go out now.
        loop {
            let left = end.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(IoFail::Deadline);
            }
            self.stream.tcp().set_write_timeout(Some(left)).map_err(IoFail::Io)?;
            match self.stream.flush() {
                Ok(()) => return Ok(()),
                Err(e) if matches!(e.kind(), ErrorKind::Interrupted | ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
                Err(e) => return Err(IoFail::Io(e)),
            }
        }
    }
}

/// The client of one recorded connection.
pub struct Client {
    cfg: ClientConfig,
    conn: Option<Link>,
}

/// The connection a client keeps open: HTTP/1.1, or HTTP/2 in cleartext.
enum Link {
    H1(Conn),
    H2(Box<H2Conn>),
}

/// A response head, parsed.
struct Head {
    status: u16,
    reason: String,
    version: String,
    headers: Vec<(String, String)>,
    /// HTTP/1.1 (keep-alive unless `Connection: close`).
    minor: u8,
}

/// How the body of a response is delimited.
enum Framing {
    None,
    Length(u64),
    Chunked,
    Close,
}

impl Client {
    pub fn new(cfg: &ClientConfig) -> Client {
        Client { cfg: cfg.clone(), conn: None }
    }

    /// A new connection for `p`: TCP, then over TLS the handshake, whose ALPN outcome decides
    /// between HTTP/2 and HTTP/1.1; in cleartext `p.http2` does.
    fn open(&self, p: &Prepared, end: Instant) -> Result<Link, Failure> {
        let conn = self.connect(end)?;
        let Some(setup) = self.cfg.tls.as_deref().filter(|_| self.cfg.target.tls) else {
            return Ok(if p.http2 { Link::H2(Box::new(H2Conn::new(conn, false))) } else { Link::H1(conn) });
        };
        let Stream::Plain(mut tcp) = conn.stream else { unreachable!("connect gives TCP") };
        let tls_fail = |m: String| Failure { kind: "tls", message: m, connection_level: true };
        let mut tls = setup.connection(self.cfg.target.host(), p.http2 || p.recorded_h2).map_err(tls_fail)?;
        while tls.is_handshaking() {
            let left = end.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(self.io_failure(IoFail::Deadline, Phase::Connecting, end));
            }
            let _ = tcp.set_read_timeout(Some(left));
            let _ = tcp.set_write_timeout(Some(left));
            match tls.complete_io(&mut tcp) {
                Ok(_) => {}
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
                Err(e) if e.kind() == ErrorKind::InvalidData => {
                    let hint = if e.to_string().contains("certificate") {
                        " (trust its issuer with --cacert FILE, or skip the check with --insecure)"
                    } else {
                        ""
                    };
                    return Err(tls_fail(format!("TLS handshake with the target failed: {e}{hint}")));
                }
                Err(e) if e.kind() == ErrorKind::UnexpectedEof => {
                    return Err(tls_fail("TLS handshake with the target failed: the connection was closed".into()));
                }
                Err(e) => return Err(self.io_failure(IoFail::Io(e), Phase::Connecting, end)),
            }
        }
        let h2 = tls.alpn_protocol() == Some(b"h2");
        let conn = Conn { stream: Stream::Tls(Box::new(rustls::StreamOwned::new(tls, tcp))), buf: Vec::new(), pos: 0, peer: conn.peer };
        Ok(if h2 { Link::H2(Box::new(H2Conn::new(conn, true))) } else { Link::H1(conn) })
    }

    fn connect(&self, end: Instant) -> Result<Conn, Failure> {
        let authority = self.cfg.target.authority();
        let port = self.cfg.target.default_port();
        let with_port = if authority.starts_with('[') {
            if authority.contains("]:") { authority.to_string() } else { format!("{authority}:{port}") }
        } else if authority.contains(':') {
            authority.to_string()
        } else {
            format!("{authority}:{port}")
        };
        let addrs: Vec<SocketAddr> = with_port
            .to_socket_addrs()
            .map_err(|e| Failure { kind: "refused", message: format!("target host not found: {e}"), connection_level: true })?
            .collect();
        let mut last: Option<Failure> = None;
        for addr in &addrs {
            let left = end.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            match TcpStream::connect_timeout(addr, left) {
                Ok(stream) => {
                    let _ = stream.set_nodelay(true);
                    return Ok(Conn { stream: Stream::Plain(stream), buf: Vec::new(), pos: 0, peer: *addr });
                }
                Err(e) => last = Some(self.io_failure(IoFail::Io(e), Phase::Connecting, end)),
            }
        }
        Err(last.unwrap_or_else(|| self.io_failure(IoFail::Deadline, Phase::Connecting, end)))
    }

    fn io_failure(&self, f: IoFail, phase: Phase, end: Instant) -> Failure {
        let during = phase.during();
        let timed_out = |_| {
            let message = if self.cfg.deadline.is_some_and(|d| d <= end) {
                format!("the --deadline passed while {during}")
            } else {
                format!("timed out after {} {during}", secs(self.cfg.timeout))
            };
            Failure { kind: "timeout", message, connection_level: phase.nothing_received() }
        };
        match f {
            IoFail::Deadline => timed_out(()),
            IoFail::Closed => {
                Failure { kind: "closed", message: format!("connection closed by the target while {during}"), connection_level: false }
            }
            IoFail::StreamReset(code) => Failure {
                kind: "reset",
                message: format!("HTTP/2 stream reset by the target ({}) while {during}", crate::proto::h2::frame::error_name(code)),
                connection_level: false,
            },
            IoFail::Io(e) => match e.kind() {
                ErrorKind::ConnectionRefused => Failure { kind: "refused", message: "connection refused".into(), connection_level: true },
                ErrorKind::ConnectionReset | ErrorKind::ConnectionAborted => {
                    Failure { kind: "reset", message: format!("connection reset by the target while {during}"), connection_level: true }
                }
                ErrorKind::BrokenPipe => {
                    Failure { kind: "closed", message: format!("connection closed by the target while {during}"), connection_level: false }
                }
                ErrorKind::TimedOut | ErrorKind::WouldBlock => timed_out(()),
                ErrorKind::InvalidData => Failure { kind: "protocol", message: e.to_string(), connection_level: false },
                _ => Failure {
                    kind: if phase == Phase::Connecting { "refused" } else { "io" },
                    message: format!("{e} while {during}"),
                    connection_level: phase == Phase::Connecting,
                },
            },
        }
    }

    /// Sends a prepared request and reads the response, before `Instant::now() + timeout`
    /// (and the overall deadline).
    pub fn send(&mut self, p: &Prepared) -> Result<Received, Failure> {
        let started = SystemTime::now();
        let t0 = Instant::now();
        let mut end = t0 + self.cfg.timeout;
        if let Some(d) = self.cfg.deadline {
            end = end.min(d);
        }
        // A kept connection of the wrong protocol is not used for this request: over TLS an
        // HTTP/1.1 one when HTTP/2 is needed (a new one may get h2), in cleartext any other.
        let mismatch = match &self.conn {
            Some(Link::H1(c)) => p.http2 || !c.avail().is_empty(),
            Some(Link::H2(_)) => !p.http2 && !self.cfg.target.tls,
            None => false,
        };
        if mismatch {
            self.conn = None;
        }
        for attempt in 0..2 {
            let (link, reused) = match self.conn.take() {
                Some(l) => (l, true),
                None => (self.open(p, end)?, false),
            };
            let retry = match link {
                Link::H1(_) if p.http2 => {
                    return Err(Failure {
                        kind: "protocol",
                        message: "the target did not agree to HTTP/2 (ALPN), which this request needs".into(),
                        connection_level: true,
                    });
                }
                Link::H1(conn) => self.send_h1(conn, reused, p, end, t0, started),
                Link::H2(h) => self.send_h2(h, reused, p, end, t0, started),
            };
            match retry {
                Ok(r) => return Ok(r),
                Err((f, phase, again)) => {
                    if !(again && attempt == 0) {
                        return Err(self.io_failure(f, phase, end));
                    }
                }
            }
        }
        unreachable!("the second attempt returns")
    }

    /// One attempt over HTTP/1.1; on failure also whether it may be made again on a new
    /// connection (a kept-alive connection the target had closed before any byte of the
    /// response).
    fn send_h1(
        &mut self,
        mut conn: Conn,
        reused: bool,
        p: &Prepared,
        end: Instant,
        t0: Instant,
        started: SystemTime,
    ) -> Result<Received, (IoFail, Phase, bool)> {
        let head_method = p.method.eq_ignore_ascii_case("HEAD");
        if let Err(f) = conn.write_all(&p.bytes(), end) {
            let again = reused && !matches!(f, IoFail::Deadline);
            return Err((f, Phase::Sending, again));
        }
        match self.read_response(&mut conn, head_method, end, t0, started) {
            Ok((r, keep)) => {
                if keep {
                    // An idle connection holds no read buffer (many may wait between their
                    // recorded exchanges).
                    if conn.avail().is_empty() {
                        conn.buf = Vec::new();
                        conn.pos = 0;
                    }
                    self.conn = Some(Link::H1(conn));
                }
                Ok(r)
            }
            Err((f, phase)) => {
                let again = reused && phase == (Phase::Waiting { any: false }) && !matches!(f, IoFail::Deadline);
                Err((f, phase, again))
            }
        }
    }

    /// One attempt over HTTP/2. A request the target did not process (a kept-alive connection
    /// it had closed or was closing with GOAWAY, or a REFUSED_STREAM reset) may be made again.
    #[allow(clippy::too_many_arguments)]
    fn send_h2(
        &mut self,
        mut h: Box<H2Conn>,
        reused: bool,
        p: &Prepared,
        end: Instant,
        t0: Instant,
        started: SystemTime,
    ) -> Result<Received, (IoFail, Phase, bool)> {
        match h.exchange(p, self.cfg.max_body, end, t0, started) {
            Ok((r, keep)) => {
                if keep {
                    self.conn = Some(Link::H2(h));
                }
                Ok(r)
            }
            Err((f, phase)) => {
                let again = matches!(phase, Phase::Sending | Phase::Waiting { any: false })
                    && match f {
                        IoFail::StreamReset(code) => code == 0x7,
                        IoFail::Deadline => false,
                        IoFail::Closed => reused,
                        IoFail::Io(_) => reused && phase == Phase::Sending,
                    };
                Err((f, phase, again))
            }
        }
    }

    /// Reads a response head (skipping interim 1xx ones).
    fn read_head(&self, conn: &mut Conn, end: Instant) -> Result<Head, (IoFail, Phase)> {
        loop {
            let parsed = {
                let mut fields = vec![httparse::EMPTY_HEADER; 1024];
                let mut resp = httparse::Response::new(&mut fields);
                match resp.parse(conn.avail()) {
                    Ok(httparse::Status::Complete(n)) => {
                        let headers =
                            resp.headers.iter().map(|h| (h.name.to_string(), String::from_utf8_lossy(h.value).into_owned())).collect();
                        let minor = resp.version.unwrap_or(1);
                        Some(Ok((
                            n,
                            Head {
                                status: resp.code.unwrap_or(0),
                                reason: resp.reason.unwrap_or("").to_string(),
                                version: format!("HTTP/1.{minor}"),
                                headers,
                                minor,
                            },
                        )))
                    }
                    Ok(httparse::Status::Partial) => None,
                    Err(e) => Some(Err(e)),
                }
            };
            match parsed {
                Some(Ok((n, head))) => {
                    conn.consume(n);
                    if (100..200).contains(&head.status) && head.status != 101 {
                        continue;
                    }
                    return Ok(head);
                }
                Some(Err(e)) => {
                    let m = format!("invalid HTTP from the target: {e}");
                    return Err((IoFail::Io(std::io::Error::new(ErrorKind::InvalidData, m)), Phase::Waiting { any: true }));
                }
                None if conn.avail().len() > MAX_HEAD => {
                    let m = format!("response head larger than {} bytes", MAX_HEAD);
                    return Err((IoFail::Io(std::io::Error::new(ErrorKind::InvalidData, m)), Phase::Waiting { any: true }));
                }
                None => {
                    let any = !conn.avail().is_empty();
                    conn.fill(end).map_err(|f| (f, Phase::Waiting { any }))?;
                }
            }
        }
    }

    fn read_response(
        &self,
        conn: &mut Conn,
        head_method: bool,
        end: Instant,
        t0: Instant,
        started: SystemTime,
    ) -> Result<(Received, bool), (IoFail, Phase)> {
        let head = self.read_head(conn, end)?;
        let wait = t0.elapsed();
        let field = |name: &'static str| head.headers.iter().filter(move |(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str());
        let protocol = |m: String| (IoFail::Io(std::io::Error::new(ErrorKind::InvalidData, m)), Phase::Body(0));
        let framing = if head_method || head.status == 101 || head.status == 204 || head.status == 304 {
            Framing::None
        } else if let Some(te) = field("transfer-encoding").next_back() {
            if te.rsplit(',').next().is_some_and(|c| c.trim().eq_ignore_ascii_case("chunked")) { Framing::Chunked } else { Framing::Close }
        } else {
            let mut lens = field("content-length").flat_map(|v| v.split(',')).map(|v| v.trim().parse::<u64>());
            match lens.next() {
                None => Framing::Close,
                Some(Ok(n)) if lens.all(|m| m.as_ref().is_ok_and(|m| *m == n)) => Framing::Length(n),
                _ => return Err(protocol("invalid or conflicting Content-Length".into())),
            }
        };
        let close = field("connection").any(|v| v.split(',').any(|t| t.trim().eq_ignore_ascii_case("close")));
        let keep_alive = field("connection").any(|v| v.split(',').any(|t| t.trim().eq_ignore_ascii_case("keep-alive")));
        let mut keep = !close && (head.minor >= 1 || keep_alive) && head.status != 101;
        let mut codings = Vec::new();
        let mut unknown = None;
        for v in field("content-encoding") {
            if let Some(u) = parse_codings(v.as_bytes(), &mut codings) {
                unknown.get_or_insert_with(|| String::from_utf8_lossy(u).into_owned());
            }
        }
        if unknown.is_some() {
            codings.clear();
        }
        let mut dec = BodyDecoder::new(&codings, self.cfg.max_body);
        let mut wire = 0u64;
        let max = self.cfg.max_body as u64;
        let mut truncated = false;
        // Feeds body bytes; false when the cap is reached (stop reading).
        let mut feed = |data: &[u8], wire: &mut u64| -> bool {
            *wire += data.len() as u64;
            dec.push(data);
            !(dec.truncated || *wire > max)
        };
        match framing {
            Framing::None => {}
            Framing::Length(left) => {
                if !conn.feed_exactly(left, end, &mut wire, &mut feed)? {
                    truncated = true;
                }
            }
            Framing::Close => {
                keep = false;
                loop {
                    if !conn.avail().is_empty() {
                        let n = conn.avail().len();
                        let go_on = feed(&conn.avail()[..n], &mut wire);
                        conn.consume(n);
                        if !go_on {
                            truncated = true;
                            break;
                        }
                    }
                    match conn.fill(end) {
                        Ok(()) => {}
                        Err(IoFail::Closed) => break,
                        Err(f) => return Err((f, Phase::Body(wire))),
                    }
                }
            }
            Framing::Chunked => {
                // size line, data, CRLF ..., then trailers up to an empty line.
                let mut trailers = 0usize;
                'chunks: loop {
                    let line_end = loop {
                        if let Some(p) = memchr::memchr(b'\n', conn.avail()) {
                            break p;
                        }
                        if conn.avail().len() > MAX_CHUNK_LINE {
                            return Err(protocol("chunk-size line too long".into()));
                        }
                        conn.fill(end).map_err(|f| (f, Phase::Body(wire)))?;
                    };
                    let line = String::from_utf8_lossy(&conn.avail()[..line_end]).trim().to_string();
                    conn.consume(line_end + 1);
                    let hex = line.split(';').next().unwrap_or("").trim();
                    let size = match u64::from_str_radix(hex, 16) {
                        Ok(n) if !hex.is_empty() && hex.len() <= 16 => n,
                        _ => return Err(protocol(format!("invalid chunk size {hex:?}"))),
                    };
                    if size == 0 {
                        loop {
                            let p = loop {
                                if let Some(p) = memchr::memchr(b'\n', conn.avail()) {
                                    break p;
                                }
                                if conn.avail().len() > MAX_TRAILERS {
                                    return Err(protocol("trailer section too long".into()));
                                }
                                conn.fill(end).map_err(|f| (f, Phase::Body(wire)))?;
                            };
                            let empty = conn.avail()[..p].iter().all(|&c| c == b'\r');
                            trailers += p + 1;
                            conn.consume(p + 1);
                            if empty {
                                break 'chunks;
                            }
                            if trailers > MAX_TRAILERS {
                                return Err(protocol("trailer section too long".into()));
                            }
                        }
                    }
                    if !conn.feed_exactly(size, end, &mut wire, &mut feed)? {
                        truncated = true;
                        keep = false;
                        break 'chunks;
                    }
                    while conn.avail().len() < 2 {
                        if conn.avail().first() == Some(&b'\n') {
                            break;
                        }
                        conn.fill(end).map_err(|f| (f, Phase::Body(wire)))?;
                    }
                    match conn.avail() {
                        [b'\r', b'\n', ..] => conn.consume(2),
                        [b'\n', ..] => conn.consume(1),
                        _ => return Err(protocol("chunk data not followed by CRLF".into())),
                    }
                }
            }
        }
        dec.finish();
        let decode_error = match (unknown, dec.error.take()) {
            (Some(u), _) => Some(format!("unsupported content coding {u}; compared as received")),
            (None, Some(e)) => Some(e),
            _ => None,
        };
        let truncated = truncated || dec.truncated;
        let received = Received {
            status: head.status,
            reason: head.reason,
            version: head.version,
            headers: head.headers,
            trailers: Vec::new(),
            truncated,
            body: std::mem::take(&mut dec.out),
            decode_error,
            wire_len: wire,
            wait,
            elapsed: t0.elapsed(),
            started,
            server_ip: conn.peer.ip().to_string(),
        };
        Ok((received, keep && !truncated))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets() {
        let t: Target = "http://127.0.0.1:8080".parse().unwrap();
        assert_eq!(t, Target { origin: "http://127.0.0.1:8080".into(), prefix: String::new(), tls: false });
        let t: Target = "HTTPS://example.com/v2".parse().unwrap();
        assert_eq!((t.origin.as_str(), t.prefix.as_str(), t.tls), ("https://example.com", "/v2", true));
        assert_eq!((t.host(), t.default_port()), ("example.com", 443));
        let t: Target = "https://[::1]:8443".parse().unwrap();
        assert_eq!((t.host(), t.authority(), t.tls), ("::1", "[::1]:8443", true));
        let t: Target = "HTTP://h/base/".parse().unwrap();
        assert_eq!((t.origin.as_str(), t.prefix.as_str()), ("http://h", "/base"));
        assert_eq!(t.to_string(), "http://h/base");
        let t: Target = "http://[::1]:8080/".parse().unwrap();
        assert_eq!(t.authority(), "[::1]:8080");
        for bad in
            ["127.0.0.1:8080", "ftp://h", "https://", "http://", "http://h/?q", "http://u@h", "http://h:99999", "http://[::1", "http://h h"]
        {
            assert!(bad.parse::<Target>().is_err(), "{bad}");
        }
    }

    fn config(target: &str) -> ClientConfig {
        ClientConfig {
            target: target.parse().unwrap(),
            keep_host: false,
            timeout: Duration::from_secs(2),
            max_body: 1 << 20,
            deadline: None,
            http2: false,
            tls: None,
        }
    }

    #[test]
    fn prepared_requests() {
        let har = br#"{"log":{"entries":[{"request":{"method":"POST","url":"https://www.test/api/x?y=1","headers":[
            {"name":":authority","value":"www.test"},{"name":":method","value":"POST"},
            {"name":"Connection","value":"keep-alive, X-Hop"},{"name":"X-Hop","value":"1"},
            {"name":"Content-Length","value":"3"},{"name":"Expect","value":"100-continue"},
            {"name":"Content-Encoding","value":"gzip"},{"name":"X-Keep","value":"a"},{"name":"x-KEEP","value":"b"},
            {"name":"Bad Name","value":"v"}],
            "postData":{"mimeType":"text/plain","text":"hello"}}}]}}"#;
        let e = super::super::har_in::parse_har(har, false).unwrap().remove(0);
        let mut cfg = config("http://127.0.0.1:9/base");
        let p = prepare(&cfg, &e).unwrap();
        assert_eq!(p.target, "/base/api/x?y=1");
        let names: Vec<&str> = p.headers.iter().map(|(n, _)| n.as_str()).collect();
        // Recorded case and order; Host first (the recording had none), Content-Length last.
        assert_eq!(names, ["Host", "Content-Encoding", "X-Keep", "x-KEEP", "Content-Length"]);
        assert_eq!(p.headers[0].1, "127.0.0.1:9");
        assert_eq!(p.notes.len(), 1, "{:?}", p.notes);
        let body = p.body.clone().unwrap();
        assert_eq!(p.headers[4].1, body.len().to_string());
        let mut d = BodyDecoder::new(&[Coding::Gzip], 100);
        d.push(&body);
        d.finish();
        assert_eq!(d.out, b"hello", "sent gzip-encoded again");
        let wire = p.bytes();
        assert!(wire.starts_with(b"POST /base/api/x?y=1 HTTP/1.1\r\nHost: 127.0.0.1:9\r\nContent-Encoding: gzip\r\n"));
        assert!(wire.ends_with(&body));
        cfg.keep_host = true;
        let p = prepare(&cfg, &e).unwrap();
        assert_eq!(p.headers[0], ("Host".to_string(), "www.test".to_string()));
        assert_eq!(encode_target("/a b/\u{e9}?q=\"x\""), "/a%20b/%C3%A9?q=\"x\"");
    }

    /// A server on loopback that answers each connection with `script` (written in pieces), then
    /// resets it (`reset`) or closes it; returns its address. It serves `conns` connections.
    fn serve(pieces: Vec<Vec<u8>>, reset: bool, conns: usize) -> (SocketAddr, std::thread::JoinHandle<Vec<Vec<u8>>>) {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        let t = std::thread::spawn(move || {
            let mut got = Vec::new();
            for _ in 0..conns {
                let (mut s, _) = l.accept().unwrap();
                s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
                let mut req = Vec::new();
                let mut b = [0u8; 4096];
                while !req.windows(4).any(|w| w == b"\r\n\r\n") {
                    match s.read(&mut b) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => req.extend_from_slice(&b[..n]),
                    }
                }
                got.push(req);
                for p in &pieces {
                    if s.write_all(p).is_err() {
                        break;
                    }
                    std::thread::sleep(Duration::from_millis(20));
                }
                if reset {
                    let linger = libc::linger { l_onoff: 1, l_linger: 0 };
                    use std::os::fd::AsRawFd;
                    // SAFETY: a valid socket and a correctly sized linger struct.
                    unsafe {
                        libc::setsockopt(
                            s.as_raw_fd(),
                            libc::SOL_SOCKET,
                            libc::SO_LINGER,
                            &linger as *const libc::linger as *const libc::c_void,
                            std::mem::size_of::<libc::linger>() as libc::socklen_t,
                        );
                    }
                }
            }
            got
        });
        (addr, t)
    }

    fn get(path: &str) -> RecEntry {
        let har = format!(
            r#"{{"log":{{"entries":[{{"request":{{"method":"GET","url":"http://x{path}","headers":[{{"name":"X-Case","value":"1"}}]}}}}]}}}}"#
        );
        super::super::har_in::parse_har(har.as_bytes(), false).unwrap().remove(0)
    }

    #[test]
    fn chunked_interim_and_header_case() {
        let (addr, t) = serve(
            vec![
                b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 Fine\r\nX-Mixed-Case: v\r\nTransfer-Encoding: chunked\r\n\r\n5;ext=1\r\nhel"
                    .to_vec(),
                b"lo\r\n6\r\n world\r\n0\r\nX-Trailer: t\r\n\r\n".to_vec(),
            ],
            false,
            1,
        );
        let cfg = config(&format!("http://{addr}"));
        let mut c = Client::new(&cfg);
        let r = c.send(&prepare(&cfg, &get("/c")).unwrap()).unwrap();
        assert_eq!((r.status, r.reason.as_str(), r.body.as_slice()), (200, "Fine", &b"hello world"[..]));
        assert_eq!(r.headers[0], ("X-Mixed-Case".to_string(), "v".to_string()));
        assert_eq!(r.server_ip, "127.0.0.1");
        let req = t.join().unwrap().remove(0);
        assert!(req.windows(10).any(|w| w == b"X-Case: 1\r"), "{}", String::from_utf8_lossy(&req));
    }

    #[test]
    fn reset_in_the_middle_of_a_body_is_a_reset() {
        let (addr, t) = serve(vec![b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n0123456789".to_vec()], true, 1);
        let cfg = config(&format!("http://{addr}"));
        let f = Client::new(&cfg).send(&prepare(&cfg, &get("/r")).unwrap()).unwrap_err();
        assert_eq!(f.kind, "reset", "{f:?}");
        assert_eq!(f.message, "connection reset by the target while receiving the body (10 bytes received)");
        assert!(f.connection_level);
        t.join().unwrap();
        // A close there instead is "closed", and not a failure of the connection.
        let (addr, t) = serve(vec![b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n0123456789".to_vec()], false, 1);
        let cfg = config(&format!("http://{addr}"));
        let f = Client::new(&cfg).send(&prepare(&cfg, &get("/r")).unwrap()).unwrap_err();
        assert_eq!((f.kind, f.connection_level), ("closed", false), "{f:?}");
        t.join().unwrap();
    }

    /// A target that sends a body after the head of a HEAD response: the bytes are not taken
    /// for the next response, which comes on a new connection.
    #[test]
    fn excess_bytes_after_a_response_are_not_the_next_one() {
        let (addr, t) = serve(vec![b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nok\n".to_vec()], false, 2);
        let cfg = config(&format!("http://{addr}"));
        let mut c = Client::new(&cfg);
        let mut head = get("/h");
        head.method = "HEAD".into();
        let r = c.send(&prepare(&cfg, &head).unwrap()).unwrap();
        assert_eq!((r.status, r.body.len()), (200, 0));
        let r = c.send(&prepare(&cfg, &get("/g")).unwrap()).unwrap();
        assert_eq!((r.status, r.body.as_slice()), (200, &b"ok\n"[..]));
        assert_eq!(t.join().unwrap().len(), 2, "two connections");
    }

    #[test]
    fn close_delimited_bodies_and_refusals() {
        let (addr, t) = serve(vec![b"HTTP/1.0 200 OK\r\n\r\nuntil".to_vec(), b" the end".to_vec()], false, 1);
        let cfg = config(&format!("http://{addr}"));
        let r = Client::new(&cfg).send(&prepare(&cfg, &get("/e")).unwrap()).unwrap();
        assert_eq!(r.body, b"until the end");
        t.join().unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let cfg = config(&format!("http://127.0.0.1:{port}"));
        let f = Client::new(&cfg).send(&prepare(&cfg, &get("/e")).unwrap()).unwrap_err();
        assert_eq!((f.kind, f.connection_level), ("refused", true), "{f:?}");
    }

    #[test]
    fn encode_round_trip() {
        let data = b"hello hello hello hello".repeat(20);
        let codings = [Coding::Gzip, Coding::Brotli, Coding::Zstd, Coding::Deflate];
        let enc = encode(&codings, &data).unwrap();
        let mut d = BodyDecoder::new(&codings, 1 << 20);
        d.push(&enc);
        d.finish();
        assert_eq!(d.out, data);
        assert!(d.error.is_none());
    }
}
