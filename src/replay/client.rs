//! Sending one recorded request to the target and reading the response, with ureq.
//!
//! Contract: [`agent`] makes the client of one recorded connection: at most one connection,
//! kept alive between requests, no proxy, no redirects followed, no headers of its own, every
//! status returned as a response. [`send`] sends one request and reads the response within
//! the per-request timeout (connecting, sending, waiting and the whole body included), keeping
//! at most `max_body` bytes of the body, decoded. Failures come back as a [`Failure`] with a
//! short message; nothing here panics or waits past the timeout.
//!
//! What is sent: the recorded method, path and query (after the target's base path), header
//! fields in recorded order less the hop-by-hop ones (and those the Connection field names),
//! Content-Length (recomputed from the body), Expect (no waiting for 100 Continue) and Host
//! (the target's, unless `--keep-host`); the body, encoded again with the recorded
//! Content-Encoding when the recording holds it decoded. Header names go out in lowercase
//! (the `http` crate's form).

use std::io::Read;
use std::time::{Duration, Instant, SystemTime};

use ureq::http;

use super::compare::HOP_BY_HOP;
use super::har_in::RecEntry;
use crate::http::decode::{BodyDecoder, Coding, parse_codings};

/// Where requests go: `http://host:port` and an optional base path.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Target {
    /// `http://host:port`, no trailing slash.
    pub origin: String,
    /// Base path put before every recorded path (`/v2`), or empty.
    pub prefix: String,
}

impl std::str::FromStr for Target {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let lower = s.to_ascii_lowercase();
        if lower.starts_with("https://") {
            return Err(format!("--target {s}: https targets are not supported (this build has no TLS); use http://"));
        }
        let Some(rest) = lower.starts_with("http://").then(|| &s[7..]) else {
            return Err(format!("--target {s}: expected http://HOST[:PORT][/BASE-PATH]"));
        };
        let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
        let authority = &rest[..end];
        if authority.is_empty() || authority.contains('@') {
            return Err(format!("--target {s}: expected http://HOST[:PORT][/BASE-PATH]"));
        }
        let path = &rest[end..];
        if path.contains(['?', '#']) {
            return Err(format!("--target {s}: a query or fragment cannot be part of the target"));
        }
        let origin = format!("http://{authority}");
        origin.parse::<http::Uri>().map_err(|e| format!("--target {s}: {e}"))?;
        Ok(Target { origin, prefix: path.trim_end_matches('/').to_string() })
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
}

/// The client of one recorded connection.
pub fn agent(cfg: &ClientConfig) -> ureq::Agent {
    use ureq::config::AutoHeaderValue;
    let config = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .proxy(None)
        .max_redirects(0)
        .user_agent(AutoHeaderValue::None)
        .accept(AutoHeaderValue::None)
        .accept_encoding(AutoHeaderValue::None)
        .allow_non_standard_methods(true)
        .timeout_global(Some(cfg.timeout))
        .max_idle_connections(1)
        .max_idle_connections_per_host(1)
        .max_idle_age(Duration::from_secs(3600))
        .build();
    ureq::Agent::new_with_config(config)
}

/// A response received.
#[derive(Clone, Debug)]
pub struct Received {
    pub status: u16,
    pub version: String,
    pub headers: Vec<(String, String)>,
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
}

/// Why an exchange has no response.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Failure {
    /// `refused`, `reset`, `closed`, `timeout`, `protocol`, `request` or `io`.
    pub kind: &'static str,
    pub message: String,
}

/// A request ready to go.
pub struct Prepared {
    request: http::request::Builder,
    body: Option<Vec<u8>>,
    /// What was left out or changed, to tell the user.
    pub notes: Vec<String>,
}

/// Builds the request of a recorded entry.
pub fn prepare(cfg: &ClientConfig, e: &RecEntry) -> Result<Prepared, Failure> {
    let bad = |m: String| Failure { kind: "request", message: m };
    let method = http::Method::from_bytes(e.method.as_bytes()).map_err(|_| bad(format!("invalid method {:?}", e.method)))?;
    let uri = format!("{}{}{}", cfg.target.origin, cfg.target.prefix, e.target);
    let uri: http::Uri = uri.parse().map_err(|err| bad(format!("invalid request target {:?}: {err}", e.target)))?;
    let mut notes = Vec::new();
    // Fields the Connection field names are hop-by-hop too.
    let named: Vec<String> = e
        .headers
        .iter()
        .filter(|(n, _)| n.eq_ignore_ascii_case("connection"))
        .flat_map(|(_, v)| v.split(',').map(|t| t.trim().to_ascii_lowercase()))
        .collect();
    let mut b = http::Request::builder().method(method).uri(uri);
    let mut codings = Vec::new();
    let mut had_length = false;
    for (name, value) in &e.headers {
        let lower = name.trim().to_ascii_lowercase();
        if lower.starts_with(':') || HOP_BY_HOP.contains(&lower.as_str()) || named.contains(&lower) || lower == "expect" {
            continue;
        }
        if lower == "content-length" {
            had_length = true;
            continue;
        }
        if lower == "host" {
            continue;
        }
        if lower == "content-encoding" && !e.body_is_encoded && parse_codings(value.as_bytes(), &mut codings).is_some() {
            // A coding we cannot apply: the body goes decoded, without the field.
            notes.push(format!("request Content-Encoding {value:?} cannot be applied again; the body was sent decoded without it"));
            codings.clear();
            continue;
        }
        match (http::HeaderName::from_bytes(lower.as_bytes()), http::HeaderValue::from_bytes(value.as_bytes())) {
            (Ok(n), Ok(v)) => b = b.header(n, v),
            _ => notes.push(format!("header field {name:?} is not valid HTTP and was not sent")),
        }
    }
    if cfg.keep_host && !e.host.is_empty() {
        match http::HeaderValue::from_str(&e.host) {
            Ok(v) => b = b.header(http::header::HOST, v),
            Err(_) => notes.push(format!("recorded Host {:?} is not valid; the target's was sent", e.host)),
        }
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
    Ok(Prepared { request: b, body: if with_body { Some(body.unwrap_or_default()) } else { None }, notes })
}

/// Applies content codings in the order listed.
fn encode(codings: &[Coding], data: &[u8]) -> std::io::Result<Vec<u8>> {
    use std::io::Write;
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

/// A short description of a client error.
fn failure(err: ureq::Error, cfg: &ClientConfig, body_bytes: Option<u64>) -> Failure {
    use std::io::ErrorKind as K;
    let during = match body_bytes {
        None => "waiting for the response".to_string(),
        Some(n) => format!("receiving the body ({n} bytes received)"),
    };
    let (kind, message) = match err {
        ureq::Error::Timeout(_) => ("timeout", format!("timed out after {} {during}", secs(cfg.timeout))),
        ureq::Error::Io(e) => match e.kind() {
            K::ConnectionRefused => ("refused", "connection refused".to_string()),
            K::ConnectionReset => ("reset", format!("connection reset by the target while {during}")),
            K::ConnectionAborted | K::BrokenPipe => ("closed", format!("connection closed by the target while sending ({e})")),
            K::UnexpectedEof => ("closed", format!("connection closed by the target while {during}")),
            K::TimedOut | K::WouldBlock => ("timeout", format!("timed out after {} {during}", secs(cfg.timeout))),
            _ => ("io", format!("{e} while {during}")),
        },
        ureq::Error::Protocol(p) => {
            let mut m = format!("invalid HTTP from the target: {p}");
            if m.contains("chunk expected crlf") {
                // ureq-proto refuses chunk-size lines over 20 bytes (long chunk extensions).
                m.push_str(" (or a chunk-size line with extensions longer than the client accepts)");
            }
            ("protocol", m)
        }
        ureq::Error::HostNotFound => ("refused", "target host not found".to_string()),
        ureq::Error::ConnectionFailed => ("refused", "connection failed".to_string()),
        ureq::Error::LargeResponseHeader(n, max) => ("protocol", format!("response head too large ({n} bytes, at most {max})")),
        other => ("io", other.to_string()),
    };
    Failure { kind, message }
}

/// Sends a prepared request on `agent` and reads the response.
pub fn send(agent: &ureq::Agent, cfg: &ClientConfig, p: Prepared) -> Result<Received, Failure> {
    let started = SystemTime::now();
    let t0 = Instant::now();
    let res = match p.body {
        Some(body) => p.request.body(body).map_err(|e| Failure { kind: "request", message: e.to_string() }).map(|r| agent.run(r)),
        None => p.request.body(()).map_err(|e| Failure { kind: "request", message: e.to_string() }).map(|r| agent.run(r)),
    }?;
    let mut resp = res.map_err(|e| failure(e, cfg, None))?;
    let wait = t0.elapsed();
    let status = resp.status().as_u16();
    let version = format!("{:?}", resp.version());
    let headers: Vec<(String, String)> =
        resp.headers().iter().map(|(n, v)| (n.as_str().to_string(), String::from_utf8_lossy(v.as_bytes()).into_owned())).collect();
    let mut codings = Vec::new();
    let mut unknown = None;
    for (n, v) in &headers {
        if n == "content-encoding"
            && let Some(u) = parse_codings(v.as_bytes(), &mut codings)
        {
            unknown.get_or_insert_with(|| String::from_utf8_lossy(u).into_owned());
        }
    }
    if unknown.is_some() {
        codings.clear();
    }
    let mut dec = BodyDecoder::new(&codings, cfg.max_body);
    let mut reader = resp.body_mut().with_config().limit(u64::MAX).reader();
    let mut buf = vec![0u8; 64 << 10];
    let mut wire = 0u64;
    let mut truncated = false;
    loop {
        match reader.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                wire += n as u64;
                dec.push(&buf[..n]);
                if dec.truncated || wire > cfg.max_body as u64 {
                    // Stop reading: the connection is dropped, not reused.
                    truncated = true;
                    break;
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(failure(ureq::Error::from(e), cfg, Some(wire))),
        }
    }
    dec.finish();
    let decode_error = match (unknown, dec.error.take()) {
        (Some(u), _) => Some(format!("unsupported content coding {u}; compared as received")),
        (None, Some(e)) => Some(e),
        _ => None,
    };
    Ok(Received {
        status,
        version,
        headers,
        truncated: truncated || dec.truncated,
        body: std::mem::take(&mut dec.out),
        decode_error,
        wire_len: wire,
        wait,
        elapsed: t0.elapsed(),
        started,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets() {
        let t: Target = "http://127.0.0.1:8080".parse().unwrap();
        assert_eq!(t, Target { origin: "http://127.0.0.1:8080".into(), prefix: String::new() });
        let t: Target = "HTTP://h/base/".parse().unwrap();
        assert_eq!((t.origin.as_str(), t.prefix.as_str()), ("http://h", "/base"));
        assert_eq!(t.to_string(), "http://h/base");
        for bad in ["127.0.0.1:8080", "https://h", "http://", "http://h/?q", "http://u@h"] {
            assert!(bad.parse::<Target>().is_err(), "{bad}");
        }
    }

    #[test]
    fn prepared_requests() {
        let har = br#"{"log":{"entries":[{"request":{"method":"POST","url":"https://www.test/api/x?y=1","headers":[
            {"name":":authority","value":"www.test"},{"name":":method","value":"POST"},
            {"name":"Connection","value":"keep-alive, X-Hop"},{"name":"X-Hop","value":"1"},
            {"name":"Content-Length","value":"3"},{"name":"Expect","value":"100-continue"},
            {"name":"Content-Encoding","value":"gzip"},{"name":"X-Keep","value":"a"},{"name":"X-Keep","value":"b"},
            {"name":"Bad Name","value":"v"}],
            "postData":{"mimeType":"text/plain","text":"hello"}}}]}}"#;
        let e = super::super::har_in::parse_har(har, false).unwrap().remove(0);
        let mut cfg = ClientConfig {
            target: "http://127.0.0.1:9/base".parse().unwrap(),
            keep_host: false,
            timeout: Duration::from_secs(1),
            max_body: 1 << 20,
        };
        let p = prepare(&cfg, &e).unwrap();
        assert_eq!(p.request.uri_ref().unwrap().to_string(), "http://127.0.0.1:9/base/api/x?y=1");
        let h = p.request.headers_ref().unwrap();
        let names: Vec<&str> = h.keys().map(|k| k.as_str()).collect();
        assert_eq!(names, ["content-encoding", "x-keep"]);
        assert_eq!(h.get_all("x-keep").iter().collect::<Vec<_>>(), ["a", "b"]);
        assert_eq!(p.notes.len(), 1, "{:?}", p.notes);
        let body = p.body.unwrap();
        let mut d = BodyDecoder::new(&[Coding::Gzip], 100);
        d.push(&body);
        d.finish();
        assert_eq!(d.out, b"hello", "sent gzip-encoded again");
        cfg.keep_host = true;
        let p = prepare(&cfg, &e).unwrap();
        assert_eq!(p.request.headers_ref().unwrap().get("host").unwrap(), "www.test");
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
