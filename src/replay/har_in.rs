//! Reading a recording: any HAR 1.2 document (ours, a browser's, a proxy's), or a pcap/pcapng
//! capture converted on the fly.
//!
//! Contract: [`open`] recognises the recording, [`Source::run`] reads it as a stream and gives
//! the entries one at a time, in document order (a capture is converted on its own thread into a
//! pipe read as it is written, so memory does not grow with the recording), each with what replay needs
//! (method, request-target, header fields, body) and what comparison needs (status, header
//! fields, decoded body). Only `log.entries[].request.method` and `.url` are required; every
//! other field may be missing. Bodies: `text`, base64 when `encoding` is `base64`; a request
//! body given only as `params` is encoded again (`application/x-www-form-urlencoded`). An
//! entry that cannot be replayed (no request recorded, a CONNECT tunnel) is kept with the
//! reason, so the report still accounts for it. Unreadable input is an error naming the
//! reason (and, for JSON, the line and column).

use std::io::Read;
use std::path::Path;

use base64::Engine;
use serde_json::Value;

use crate::capture::Input;
use crate::pipeline::{Config, Converter, sniff_format};

/// One recorded exchange.
#[derive(Clone, Debug)]
pub struct RecEntry {
    /// Position in `log.entries`, from 0.
    pub index: usize,
    /// The recorded connection (`_apitool.flow`, else `connection`); `None` when the HAR does
    /// not say.
    pub conn: Option<String>,
    pub method: String,
    /// The request's `httpVersion` as recorded (`HTTP/1.1`, `HTTP/2.0`), or empty.
    pub http_version: String,
    /// The URL as recorded.
    pub url: String,
    /// Path and query to send, in origin form (starts with `/`).
    pub target: String,
    /// The host the client addressed: its Host header, else the URL's authority.
    pub host: String,
    pub headers: Vec<(String, String)>,
    /// The request body, decoded; `None` when there was none.
    pub body: Option<Vec<u8>>,
    /// The body is kept as it was sent (its content coding could not be undone when it was
    /// recorded): send it as it is rather than encode it again.
    pub body_is_encoded: bool,
    pub response: Option<RecResponse>,
    /// Why this entry cannot be replayed.
    pub unreplayable: Option<String>,
    /// What the recording says about the request that replay should mention.
    pub notes: Vec<String>,
    /// The request object as found, for `--record` (null unless asked for).
    pub request_json: Value,
    /// `_apitool.flow` as found, carried over by `--record`.
    pub flow_json: Option<Value>,
}

/// The recorded response.
#[derive(Clone, Debug)]
pub struct RecResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    /// HTTP/2 trailer fields (`_apitool.trailers`).
    pub trailers: Vec<(String, String)>,
    /// The decoded body; `None` when the HAR did not keep it (`content.text` missing).
    pub body: Option<Vec<u8>>,
    /// Why the recorded body is not a reference to compare with (damaged in the capture).
    pub body_unreliable: Option<String>,
}

/// A recording opened and recognised, to be read entry by entry with [`Source::run`].
pub struct Source {
    /// `HAR`, or the capture format it is converted from.
    pub format: String,
    name: String,
    keep_requests: bool,
    kind: SourceKind,
}

enum SourceKind {
    /// A HAR document: the bytes already read to recognise it, then the rest.
    Har(Box<dyn Read + Send>),
    /// A capture, converted on the fly, with the key material to decrypt it.
    Capture(Input, crate::proto::tls::TlsLimits),
}

/// Opens `path` (`-` for standard input) and recognises it: a HAR document, or a pcap/pcapng
/// capture that is converted while it is read. `keep_requests` keeps each entry's request
/// object (for `--record`). Nothing is held but the first 64 KiB.
/// `tls` decrypts a capture's TLS connections (`--keylog`, and a pcapng's secrets blocks).
pub fn open(path: &Path, keep_requests: bool, tls: crate::proto::tls::TlsLimits) -> Result<Source, String> {
    let name = crate::cli::input_name(path);
    let stdin = path.as_os_str() == "-";
    // Enough of the start to recognise a capture by its header.
    let mut head = Vec::with_capacity(1 << 16);
    let mut rest: Box<dyn Read + Send> = if stdin {
        Box::new(std::io::stdin())
    } else {
        Box::new(std::fs::File::open(path).map_err(|e| format!("{name}: cannot open: {e}"))?)
    };
    (&mut rest).take(1 << 16).read_to_end(&mut head).map_err(|e| format!("{name}: cannot read: {e}"))?;
    let capture_magic = head.len() >= 4
        && matches!(
            u32::from_le_bytes([head[0], head[1], head[2], head[3]]),
            0xa1b2_c3d4 | 0xd4c3_b2a1 | 0xa1b2_3c4d | 0x4d3c_b2a1 | 0x0a0d_0d0a
        );
    match sniff_format(&head) {
        Ok(format) => {
            let input = if stdin {
                Input::Stream(Box::new(std::io::Cursor::new(head).chain(rest)))
            } else {
                drop(rest);
                Input::open(path).map_err(|e| format!("{name}: cannot open: {e}"))?
            };
            Ok(Source { format: format.to_string(), name, keep_requests, kind: SourceKind::Capture(input, tls) })
        }
        Err(e) if capture_magic => Err(format!("{name}: unreadable capture: {e}")),
        Err(_) => Ok(Source {
            format: "HAR".into(),
            name,
            keep_requests,
            kind: SourceKind::Har(Box::new(std::io::Cursor::new(head).chain(rest))),
        }),
    }
}

/// The error a stop requested by the caller ends the parse with.
const STOPPED: &str = "stopped by the caller";

impl Source {
    /// Reads the entries in document order and gives each to `f`, which returns false to stop
    /// reading (not an error). An error names the recording and the reason (for JSON, the line
    /// and column); the entries before it have been given.
    pub fn run(self, f: &mut dyn FnMut(RecEntry) -> bool) -> Result<(), String> {
        let Source { name, keep_requests, kind, .. } = self;
        match kind {
            SourceKind::Har(r) => match stream_har(std::io::BufReader::with_capacity(1 << 16, r), keep_requests, f) {
                Err(e) if e == STOPPED => Ok(()),
                Err(e) => Err(format!("{name}: {e}")),
                Ok(()) => Ok(()),
            },
            SourceKind::Capture(input, tls) => {
                // The converter writes the HAR into a pipe on its own thread; it is read here as
                // it comes, so neither side holds more than a few entries.
                let (rd, wr) = std::io::pipe().map_err(|e| format!("{name}: cannot convert: {e}"))?;
                let conv_name = name.clone();
                let conv = std::thread::Builder::new()
                    .name("replay-convert".into())
                    .spawn(move || {
                        let conv = Converter::new(Config { threads: 1, tls, ..Config::default() });
                        conv.convert(input, &conv_name, std::io::BufWriter::with_capacity(1 << 16, wr), &mut |_| {})
                            .map(|_| ())
                            .map_err(|e| e.to_string())
                    })
                    .map_err(|e| format!("{name}: cannot convert: {e}"))?;
                let read = stream_har(std::io::BufReader::with_capacity(1 << 16, rd), keep_requests, f);
                // Stopped early: the converter ends on the closed pipe.
                let stopped = read.as_ref().is_err_and(|e| e == STOPPED);
                let converted = conv.join().unwrap_or_else(|_| Err("the conversion failed".into()));
                match (stopped, converted, read) {
                    (true, _, _) => Ok(()),
                    (false, Err(e), _) => Err(format!("{name}: {e}")),
                    (false, Ok(()), Err(e)) => Err(format!("{name}: converted capture: {e}")),
                    (false, Ok(()), Ok(())) => Ok(()),
                }
            }
        }
    }
}

/// Parses a HAR document from `r`, giving each of `log.entries` to `f` as soon as it is read
/// (serde's streaming deserialization: one entry in memory at a time). `Err(STOPPED)` when `f`
/// asked to stop.
fn stream_har(r: impl Read, keep_requests: bool, f: &mut dyn FnMut(RecEntry) -> bool) -> Result<(), String> {
    use serde::de::{DeserializeSeed, Error as _, IgnoredAny, MapAccess, SeqAccess, Visitor};
    use std::fmt;

    struct Entries<'a> {
        f: &'a mut dyn FnMut(RecEntry) -> bool,
        keep: bool,
    }
    impl<'de> Visitor<'de> for Entries<'_> {
        type Value = bool;
        fn expecting(&self, fm: &mut fmt::Formatter) -> fmt::Result {
            fm.write_str("a list of entries")
        }
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<bool, A::Error> {
            let mut i = 0;
            while let Some(v) = seq.next_element::<Value>()? {
                if !(self.f)(entry(i, v, self.keep)) {
                    return Err(A::Error::custom(STOPPED));
                }
                i += 1;
            }
            Ok(true)
        }
    }
    impl<'de> DeserializeSeed<'de> for Entries<'_> {
        type Value = bool;
        fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<bool, D::Error> {
            d.deserialize_seq(self)
        }
    }
    /// An object in which `key` leads to `inner`; whether `inner` found what it looks for.
    struct Member<S> {
        key: &'static str,
        inner: Option<S>,
    }
    impl<'de, S: DeserializeSeed<'de, Value = bool>> Visitor<'de> for Member<S> {
        type Value = bool;
        fn expecting(&self, fm: &mut fmt::Formatter) -> fmt::Result {
            write!(fm, "an object with {}", self.key)
        }
        fn visit_map<A: MapAccess<'de>>(mut self, mut map: A) -> Result<bool, A::Error> {
            let mut found = false;
            while let Some(k) = map.next_key::<std::borrow::Cow<'de, str>>()? {
                if k == self.key
                    && let Some(seed) = self.inner.take()
                {
                    found = map.next_value_seed(seed)?;
                } else {
                    map.next_value::<IgnoredAny>()?;
                }
            }
            Ok(found)
        }
    }
    impl<'de, S: DeserializeSeed<'de, Value = bool>> DeserializeSeed<'de> for Member<S> {
        type Value = bool;
        fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<bool, D::Error> {
            d.deserialize_map(self)
        }
    }

    let mut de = serde_json::Deserializer::from_reader(r);
    let log = Member { key: "entries", inner: Some(Entries { f, keep: keep_requests }) };
    let doc = Member { key: "log", inner: Some(log) };
    let found = doc.deserialize(&mut de).map_err(|e| {
        if e.to_string().starts_with(STOPPED) {
            STOPPED.to_string()
        } else if e.is_syntax() || e.is_eof() || e.is_io() {
            format!("not a HAR file nor a pcap/pcapng capture: {e}")
        } else {
            format!("not a HAR file: {e}")
        }
    })?;
    if !found {
        return Err("not a HAR file: no log.entries list".into());
    }
    de.end().map_err(|e| format!("not a HAR file nor a pcap/pcapng capture: {e}"))
}

/// Parses a HAR document held in memory (all its entries).
pub fn parse_har(bytes: &[u8], keep_requests: bool) -> Result<Vec<RecEntry>, String> {
    let mut out = Vec::new();
    stream_har(bytes, keep_requests, &mut |e| {
        out.push(e);
        true
    })?;
    Ok(out)
}

impl RecEntry {
    /// About how many bytes the entry holds (bodies, header fields, URL), for the queue budget.
    pub fn approx_bytes(&self) -> usize {
        let fields = |h: &[(String, String)]| h.iter().map(|(n, v)| n.len() + v.len() + 48).sum::<usize>();
        let body = self.body.as_ref().map_or(0, Vec::len);
        let resp = self.response.as_ref().map_or(0, |r| fields(&r.headers) + r.body.as_ref().map_or(0, Vec::len));
        // The request object kept for --record holds the body and fields once more.
        let kept = if self.request_json.is_null() { 0 } else { body + fields(&self.headers) };
        512 + self.url.len() * 2 + self.host.len() + fields(&self.headers) + body + resp + kept
    }
}

fn str_of(v: &Value) -> Option<&str> {
    v.as_str()
}

/// name/value pairs of a HAR `headers` list.
fn pairs(v: Option<&Value>) -> Vec<(String, String)> {
    let Some(Value::Array(a)) = v else { return Vec::new() };
    a.iter()
        .filter_map(|h| {
            let n = h.get("name").and_then(str_of)?;
            let v = match h.get("value") {
                Some(Value::String(s)) => s.clone(),
                Some(Value::Number(n)) => n.to_string(),
                _ => String::new(),
            };
            Some((n.to_string(), v))
        })
        .collect()
}

/// A body from `text` and `encoding`.
fn body_text(obj: &Value) -> Option<Vec<u8>> {
    let text = obj.get("text").and_then(str_of)?;
    let enc = obj.get("encoding").or_else(|| obj.get("_encoding")).and_then(str_of);
    if enc.is_some_and(|e| e.eq_ignore_ascii_case("base64")) {
        let clean: String = text.chars().filter(|c| !c.is_ascii_whitespace()).collect();
        if let Ok(b) = base64::engine::general_purpose::STANDARD.decode(clean.as_bytes()) {
            return Some(b);
        }
    }
    Some(text.as_bytes().to_vec())
}

fn form_encode(s: &str, out: &mut String) {
    for &c in s.as_bytes() {
        match c {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'*' => out.push(c as char),
            b' ' => out.push('+'),
            _ => out.push_str(&format!("%{c:02X}")),
        }
    }
}

/// Splits an absolute URL into its authority and its origin-form target.
fn split_url(url: &str) -> (String, String) {
    let rest = match url.find("://") {
        Some(p) if url[..p].chars().all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c)) => &url[p + 3..],
        _ => {
            let t = url.split('#').next().unwrap_or("");
            return (String::new(), if t.starts_with('/') { t.to_string() } else { format!("/{t}") });
        }
    };
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let authority = rest[..end].rsplit('@').next().unwrap_or("").to_string();
    let mut target = rest[end..].split('#').next().unwrap_or("").to_string();
    if !target.starts_with('/') {
        target.insert(0, '/');
    }
    (authority, target)
}

fn anomalies(e: &Value) -> Vec<String> {
    match e.get("_apitool").and_then(|a| a.get("anomalies")) {
        Some(Value::Array(a)) => a.iter().filter_map(|s| s.as_str().map(str::to_string)).collect(),
        _ => Vec::new(),
    }
}

/// Whether one of our anomalies says a message body is not what was sent.
fn body_damage(anomalies: &[String], side: &str) -> Option<String> {
    anomalies
        .iter()
        .find(|a| {
            a.strip_prefix(side).and_then(|a| a.strip_prefix(": ")).is_some_and(|a| {
                ["bytes missing", "incomplete", "truncated", "decode error", "unsupported content coding", "malformed chunked"]
                    .iter()
                    .any(|k| a.contains(k))
            })
        })
        .cloned()
}

fn entry(index: usize, mut e: Value, keep_requests: bool) -> RecEntry {
    let anomalies = anomalies(&e);
    let flow_json = e.get("_apitool").and_then(|a| a.get("flow")).cloned();
    let conn = flow_json.as_ref().map(|f| f.to_string().trim_matches('"').to_string()).or_else(|| match e.get("connection") {
        Some(Value::String(s)) if !s.is_empty() => Some(s.clone()),
        Some(Value::Number(n)) => Some(n.to_string()),
        _ => None,
    });
    let raw_target = e.get("_apitool").and_then(|a| a.get("target")).and_then(str_of).map(str::to_string);
    let req = e.get_mut("request").map(Value::take).unwrap_or(Value::Null);
    // apitool writes a placeholder method (GET) for a response seen without its request and
    // says so in `_apitool.noRequest`: such an entry has no request to replay.
    let no_request = e.get("_apitool").and_then(|a| a.get("noRequest")).and_then(Value::as_bool).unwrap_or(false);
    let method = if no_request { String::new() } else { req.get("method").and_then(str_of).unwrap_or("").trim().to_string() };
    let url = req.get("url").and_then(str_of).unwrap_or("").to_string();
    let http_version = req.get("httpVersion").and_then(str_of).unwrap_or("").trim().to_string();
    let headers = pairs(req.get("headers"));
    let (authority, target) = split_url(&url);
    let host = headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case("host") || n == ":authority")
        .map(|(_, v)| v.trim().to_string())
        .unwrap_or(authority);
    let mut notes = Vec::new();
    let unreplayable = if method.is_empty() || url.is_empty() {
        Some("no request recorded (a response seen without its request)".to_string())
    } else if method.eq_ignore_ascii_case("CONNECT") {
        Some("CONNECT tunnels are not replayed".to_string())
    } else if raw_target.as_deref() == Some("*") {
        Some("requests for * (server-wide OPTIONS) are not replayed".to_string())
    } else {
        None
    };
    let body = req.get("postData").map(|pd| {
        body_text(pd).unwrap_or_else(|| {
            // Only params: a form, encoded again.
            let mut s = String::new();
            if let Some(Value::Array(ps)) = pd.get("params") {
                for (i, p) in ps.iter().enumerate() {
                    if i > 0 {
                        s.push('&');
                    }
                    form_encode(p.get("name").and_then(str_of).unwrap_or(""), &mut s);
                    if let Some(v) = p.get("value").and_then(str_of) {
                        s.push('=');
                        form_encode(v, &mut s);
                    }
                }
            }
            s.into_bytes()
        })
    });
    let body_is_encoded =
        anomalies.iter().any(|a| a.starts_with("request: decode error") || a.starts_with("request: unsupported content coding"));
    if let Some(d) = body_damage(&anomalies, "request") {
        notes.push(format!("the recorded request is damaged ({d}); sent as recorded"));
    }
    let response = e.get("response").and_then(|r| {
        let status = match r.get("status") {
            Some(Value::Number(n)) => n.as_u64().unwrap_or(0),
            Some(Value::String(s)) => s.trim().parse().unwrap_or(0),
            _ => 0,
        };
        if status == 0 || status > 999 {
            return None;
        }
        let content = r.get("content").unwrap_or(&Value::Null);
        let body = body_text(content).or_else(|| {
            // No text: an empty body when the size says so, else the body was not kept.
            let size = content.get("size").and_then(Value::as_i64).unwrap_or(0);
            (size <= 0).then(Vec::new)
        });
        Some(RecResponse {
            status: status as u16,
            headers: pairs(r.get("headers")),
            trailers: pairs(e.get("_apitool").and_then(|a| a.get("trailers"))),
            body,
            body_unreliable: body_damage(&anomalies, "response"),
        })
    });
    RecEntry {
        index,
        conn,
        method,
        http_version,
        url,
        target,
        host,
        headers,
        body,
        body_is_encoded,
        response,
        unreplayable,
        notes,
        request_json: if keep_requests { req } else { Value::Null },
        flow_json,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        assert_eq!(split_url("http://h:8080/a/b?c=d#frag"), ("h:8080".into(), "/a/b?c=d".into()));
        assert_eq!(split_url("https://u:p@h?x=1"), ("h".into(), "/?x=1".into()));
        assert_eq!(split_url("http://h"), ("h".into(), "/".into()));
        assert_eq!(split_url("/rel?x"), ("".into(), "/rel?x".into()));
    }

    #[test]
    fn tolerant_har() {
        let har = br#"{"log":{"version":"1.2","entries":[
          {"request":{"method":"POST","url":"http://api.test/form","headers":[{"name":"Content-Type","value":"application/x-www-form-urlencoded"}],
             "postData":{"mimeType":"application/x-www-form-urlencoded","params":[{"name":"a b","value":"1&2"},{"name":"c"}]}},
           "response":{"status":201,"content":{"mimeType":"application/octet-stream","text":"AAEC","encoding":"base64"}},
           "connection":"7"},
          {"request":{"method":"GET","url":"http://api.test/x"},"response":{"status":200,"content":{"size":10}}},
          {"request":{"method":"GET","url":"http://10.0.0.1/"},"response":{"status":200},"_apitool":{"flow":3,"noRequest":true,"anomalies":["no request"]}},
          {"request":{"method":"GET","url":"http://h/big","headers":[{"name":"Host","value":"front.test"}]},
           "response":{"status":200,"headers":[],"content":{"size":5,"text":"abc"}},
           "_apitool":{"flow":4,"anomalies":["response: body truncated at the decoded size cap"]}}
        ]}}"#;
        let e = parse_har(har, true).unwrap();
        assert_eq!(e.len(), 4);
        assert_eq!(e[0].body.as_deref(), Some(&b"a+b=1%262&c"[..]));
        assert_eq!(e[0].conn.as_deref(), Some("7"));
        assert_eq!(e[0].response.as_ref().unwrap().body.as_deref(), Some(&[0u8, 1, 2][..]));
        assert_eq!(e[0].request_json["method"], "POST");
        assert!(e[1].response.as_ref().unwrap().body.is_none(), "size without text: not kept");
        assert!(e[1].body.is_none() && e[1].conn.is_none());
        assert!(e[2].unreplayable.is_some());
        assert_eq!(e[2].conn.as_deref(), Some("3"));
        assert_eq!(e[3].host, "front.test");
        assert!(e[3].response.as_ref().unwrap().body_unreliable.is_some());
        assert!(parse_har(b"{\"log\":{}}", false).is_err());
        let err = parse_har(b"nope", false).unwrap_err();
        assert!(err.contains("line 1 column"), "{err}");
    }
}
