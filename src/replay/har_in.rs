//! Reading a recording: any HAR 1.2 document (ours, a browser's, a proxy's), or a pcap/pcapng
//! capture converted on the fly.
//!
//! Contract: [`load`] returns the entries in document order, each with what replay needs
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
    /// The decoded body; `None` when the HAR did not keep it (`content.text` missing).
    pub body: Option<Vec<u8>>,
    /// Why the recorded body is not a reference to compare with (damaged in the capture).
    pub body_unreliable: Option<String>,
}

/// A recording, read.
#[derive(Debug)]
pub struct Recording {
    pub entries: Vec<RecEntry>,
    /// `HAR`, or the capture format it was converted from.
    pub format: String,
}

/// Reads `path` (`-` for standard input): a HAR document, or a pcap/pcapng capture that is
/// converted first. `keep_requests` keeps each entry's request object (for `--record`).
pub fn load(path: &Path, keep_requests: bool) -> Result<Recording, String> {
    let name = path.display().to_string();
    let stdin = path.as_os_str() == "-";
    // Enough of the start to recognise a capture by its header.
    let mut head = Vec::with_capacity(1 << 16);
    let mut rest: Option<Box<dyn Read>> = None;
    if stdin {
        let mut all = Vec::new();
        std::io::stdin().lock().read_to_end(&mut all).map_err(|e| format!("{name}: cannot read: {e}"))?;
        head = all;
    } else {
        let mut f = std::fs::File::open(path).map_err(|e| format!("{name}: cannot open: {e}"))?;
        (&mut f).take(1 << 16).read_to_end(&mut head).map_err(|e| format!("{name}: cannot read: {e}"))?;
        rest = Some(Box::new(f));
    }
    let capture_magic = head.len() >= 4
        && matches!(
            u32::from_le_bytes([head[0], head[1], head[2], head[3]]),
            0xa1b2_c3d4 | 0xd4c3_b2a1 | 0xa1b2_3c4d | 0x4d3c_b2a1 | 0x0a0d_0d0a
        );
    match sniff_format(&head) {
        Ok(format) => {
            let input = if stdin {
                Input::Stream(Box::new(std::io::Cursor::new(head)))
            } else {
                drop(rest);
                Input::open(path).map_err(|e| format!("{name}: cannot open: {e}"))?
            };
            let conv = Converter::new(Config { threads: 1, ..Config::default() });
            let (_, har) = conv.convert(input, &name, Vec::new(), &mut |_| {}).map_err(|e| format!("{name}: {e}"))?;
            let entries = parse_har(&har, keep_requests).map_err(|e| format!("{name}: converted capture: {e}"))?;
            Ok(Recording { entries, format: format.to_string() })
        }
        Err(e) if capture_magic => Err(format!("{name}: unreadable capture: {e}")),
        Err(_) => {
            let mut all = head;
            if let Some(mut r) = rest {
                r.read_to_end(&mut all).map_err(|e| format!("{name}: cannot read: {e}"))?;
            }
            let entries = parse_har(&all, keep_requests).map_err(|e| format!("{name}: {e}"))?;
            Ok(Recording { entries, format: "HAR".into() })
        }
    }
}

/// Parses a HAR document.
pub fn parse_har(bytes: &[u8], keep_requests: bool) -> Result<Vec<RecEntry>, String> {
    let mut doc: Value = serde_json::from_slice(bytes).map_err(|e| format!("not a HAR file nor a pcap/pcapng capture: {e}"))?;
    let entries = match doc.get_mut("log").and_then(|l| l.get_mut("entries")) {
        Some(Value::Array(a)) => std::mem::take(a),
        _ => return Err("not a HAR file: no log.entries list".into()),
    };
    Ok(entries.into_iter().enumerate().map(|(i, e)| entry(i, e, keep_requests)).collect())
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
            body,
            body_unreliable: body_damage(&anomalies, "response"),
        })
    });
    RecEntry {
        index,
        conn,
        method,
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
