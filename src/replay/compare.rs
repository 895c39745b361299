//! Comparing a received response with the recorded one.
//!
//! Contract: [`compare`] takes the recorded and the received response (status, header fields,
//! decoded body) and returns every difference found, at most
//! [`CompareConfig::max_differences`] of them listed (the rest counted). Nothing here does I/O.
//!
//! - Status: the code alone (reason phrases are not compared).
//! - Header fields: by lowercase name; the values of a name in order, trimmed. Hop-by-hop
//!   fields (framing, connection management), HTTP/2 pseudo-headers and the ignored names
//!   (the volatile ones of [`DEFAULT_IGNORED_HEADERS`] plus `--ignore-header`) are left out.
//!   For Set-Cookie only the cookie names are compared, sorted, never their values.
//! - Body, decoded: JSON (by media type, or when both sides parse) structurally: object
//!   members by name whatever their order, arrays by position, numbers by value; subtrees
//!   matched by an `--ignore-json` pattern are skipped. Other UTF-8 text line by line. Anything
//!   else by length and SHA-256 digest.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

use serde::Serialize;
use serde_json::Value;
use sha2::{Digest, Sha256};

/// Response header fields ignored by default: they change from one response to the next
/// without the API changing. `content-length` is among them because bodies are compared
/// decoded (a change of length shows as a body difference).
pub const DEFAULT_IGNORED_HEADERS: &[&str] = &[
    "date",
    "server",
    "etag",
    "last-modified",
    "expires",
    "age",
    "content-length",
    "x-request-id",
    "request-id",
    "x-correlation-id",
    "correlation-id",
    "x-trace-id",
    "trace-id",
    "traceparent",
    "tracestate",
    "x-b3-traceid",
    "x-b3-spanid",
    "x-b3-parentspanid",
    "x-b3-sampled",
    "b3",
    "x-amzn-requestid",
    "x-amzn-trace-id",
    "x-amz-request-id",
    "x-amz-id-2",
    "x-cloud-trace-context",
    "cf-ray",
    "x-runtime",
    "x-response-time",
    "server-timing",
];

/// Hop-by-hop fields (RFC 9110 section 7.6.1 and the usual non-standard ones): they describe
/// one connection, not the message. Never forwarded by replay, never compared.
pub const HOP_BY_HOP: &[&str] = &[
    "connection",
    "keep-alive",
    "proxy-connection",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

/// What to compare and how much to list.
#[derive(Clone, Debug)]
pub struct CompareConfig {
    /// Lowercase header names left out of the comparison.
    pub ignore_headers: BTreeSet<String>,
    /// JSON subtrees left out of the comparison.
    pub ignore_json: Vec<JsonPattern>,
    /// Differences listed per exchange; more are only counted.
    pub max_differences: usize,
}

impl Default for CompareConfig {
    fn default() -> Self {
        CompareConfig {
            ignore_headers: DEFAULT_IGNORED_HEADERS.iter().map(|s| s.to_string()).collect(),
            ignore_json: Vec::new(),
            max_differences: 50,
        }
    }
}

/// Where a difference is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum DiffKind {
    Status,
    Header,
    /// The body changed kind (JSON to not JSON, or back).
    Body,
    Json,
    Text,
    Binary,
    /// An HTTP/2 trailer field.
    Trailer,
    /// A gRPC call's status, status message, or one of its response messages.
    Grpc,
}

/// One difference between the recorded and the received response. `None` on a side means
/// absent there. Each side is a JSON value as it is (the report writes it as plain JSON, never a
/// string holding JSON): a status as its number, a header value or a text line as a string, a
/// JSON body's value as that value. Strings are cut at 200 characters (ending in `…`), and a
/// JSON value whose compact form is longer than [`MAX_JSON_SHOWN`] is replaced by its first 200
/// characters as a string, with `cut` set (the text report shows at most 200 characters of
/// any side). A binary body, a change of body kind or of line
/// endings is described in words (a string, shown without quotes).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Difference {
    pub kind: DiffKind,
    /// The header name, the JSON path (`$.a.b[0]`), `line N`, or empty.
    pub path: String,
    pub recorded: Option<Value>,
    pub received: Option<Value>,
    /// A side too long to keep whole is its beginning, as a string.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub cut: bool,
    /// The sides are descriptions (`3 bytes sha256:...`, `CRLF`), shown as they are.
    #[serde(skip)]
    pub described: bool,
}

/// The longest compact JSON form of a value kept whole in a difference.
pub const MAX_JSON_SHOWN: usize = 4096;

/// Characters of a string or a cut value kept in a difference, and shown.
const MAX_SHOWN: usize = 200;

fn cut_chars(s: &str) -> String {
    let mut t: String = s.chars().take(MAX_SHOWN).collect();
    if t.len() < s.len() {
        t.push('…');
    }
    t
}

impl Difference {
    fn described(kind: DiffKind, path: String, recorded: String, received: String) -> Difference {
        Difference {
            kind,
            path,
            recorded: Some(Value::String(recorded)),
            received: Some(Value::String(received)),
            cut: false,
            described: true,
        }
    }

    /// What changed, as shown: `status`, `header x-a`, `body $.name`, `body line 3`.
    pub fn what(&self) -> String {
        match self.kind {
            DiffKind::Status => "status".to_string(),
            DiffKind::Header => format!("header {}", self.path),
            DiffKind::Body => "body".to_string(),
            DiffKind::Json | DiffKind::Text => format!("body {}", self.path),
            DiffKind::Binary => "body (binary)".to_string(),
            DiffKind::Trailer => format!("trailer {}", self.path),
            DiffKind::Grpc => format!("grpc {}", self.path),
        }
    }

    /// A side as shown: the value as compact JSON (a string with its quotes) cut at 200
    /// characters, a description as it is, or `(absent)`.
    pub fn show_side(&self, side: &Option<Value>) -> String {
        match side {
            None => "(absent)".into(),
            Some(Value::String(s)) if self.described || self.cut => s.clone(),
            Some(Value::String(s)) => Value::String(cut_chars(s)).to_string(),
            Some(v) => {
                let s = v.to_string();
                if s.chars().count() > MAX_SHOWN { cut_chars(&s) } else { s }
            }
        }
    }

    /// One line: `status: 200 -> 404`, `header x-a: "1" -> "2"`, `body $.name: "a" -> "b"`.
    pub fn describe(&self) -> String {
        format!("{}: {} -> {}", self.what(), self.show_side(&self.recorded), self.show_side(&self.received))
    }
}

/// One side of the comparison.
#[derive(Clone, Copy, Debug)]
pub struct Side<'a> {
    pub status: u16,
    pub headers: &'a [(String, String)],
    /// HTTP/2 trailer fields (compared for gRPC calls).
    pub trailers: &'a [(String, String)],
    /// The decoded body; `None` when it is not known (the recording did not keep it).
    pub body: Option<&'a [u8]>,
}

/// The differences of one exchange.
#[derive(Clone, Debug, Default)]
pub struct Comparison {
    pub differences: Vec<Difference>,
    /// Differences found past the listing cap.
    pub more: usize,
}

impl Comparison {
    pub fn is_empty(&self) -> bool {
        self.differences.is_empty() && self.more == 0
    }

    fn push(&mut self, cap: usize, d: Difference) {
        if self.differences.len() < cap {
            self.differences.push(d);
        } else {
            self.more += 1;
        }
    }
}

/// Compares a received response with the recorded one.
pub fn compare(cfg: &CompareConfig, recorded: Side<'_>, received: Side<'_>) -> Comparison {
    let mut out = Comparison::default();
    let cap = cfg.max_differences.max(1);
    if recorded.status != received.status {
        out.push(
            cap,
            Difference {
                kind: DiffKind::Status,
                path: String::new(),
                recorded: Some(Value::from(recorded.status)),
                received: Some(Value::from(received.status)),
                cut: false,
                described: false,
            },
        );
    }
    let grpc = [recorded.headers, received.headers]
        .iter()
        .any(|h| header(h, "content-type").is_some_and(|c| crate::proto::h2::grpc::is_grpc(c.trim().as_bytes())));
    if grpc {
        compare_grpc(cfg, recorded, received, &mut out, cap);
        return out;
    }
    compare_headers(cfg, recorded.headers, received.headers, &mut out, cap);
    if let (Some(a), Some(b)) = (recorded.body, received.body) {
        let mime_a = header(recorded.headers, "content-type").unwrap_or("");
        let mime_b = header(received.headers, "content-type").unwrap_or("");
        compare_body(cfg, mime_a, a, mime_b, b, &mut out, cap);
    }
    out
}

/// The first value of a header field (name in lowercase).
pub fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
}

fn header_map(cfg: &CompareConfig, headers: &[(String, String)]) -> BTreeMap<String, Vec<String>> {
    let mut map: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (n, v) in headers {
        let n = n.trim().to_ascii_lowercase();
        if n.is_empty() || n.starts_with(':') || HOP_BY_HOP.contains(&n.as_str()) || cfg.ignore_headers.contains(&n) {
            continue;
        }
        let v = if n == "set-cookie" {
            // The cookie's name only: values (session ids, expiry) change on every response.
            let first = v.split(';').next().unwrap_or("");
            first.split('=').next().unwrap_or("").trim().to_string()
        } else {
            v.trim().to_string()
        };
        map.entry(n).or_default().push(v);
    }
    if let Some(c) = map.get_mut("set-cookie") {
        c.sort();
    }
    map
}

/// gRPC's status fields: compared as the call's status, wherever they came (trailers, or the
/// head of a trailers-only response).
const GRPC_STATUS_FIELDS: &[&str] = &["grpc-status", "grpc-message", "grpc-status-details-bin"];

/// A gRPC call: header fields, trailer fields, then the status (`grpc-status` and the
/// percent-decoded `grpc-message`, from the trailers or, in a trailers-only response, the
/// head), then the response messages one by one, each decompressed with its side's
/// `grpc-encoding` (so a change of compression alone is not a difference). Messages are
/// compared as bytes and shown as text when they are UTF-8, else by length and SHA-256.
fn compare_grpc(cfg: &CompareConfig, a: Side<'_>, b: Side<'_>, out: &mut Comparison, cap: usize) {
    use crate::proto::h2::grpc;
    let not_status = |h: &[(String, String)]| -> Vec<(String, String)> {
        h.iter().filter(|(n, _)| !GRPC_STATUS_FIELDS.iter().any(|g| n.trim().eq_ignore_ascii_case(g))).cloned().collect()
    };
    compare_headers(cfg, &not_status(a.headers), &not_status(b.headers), out, cap);
    let before = out.differences.len();
    compare_headers(cfg, &not_status(a.trailers), &not_status(b.trailers), out, cap);
    for d in &mut out.differences[before..] {
        d.kind = DiffKind::Trailer;
    }
    let field = |s: &Side<'_>, name: &str| header(s.trailers, name).or_else(|| header(s.headers, name)).map(|v| v.trim().to_string());
    let status = |s: &Side<'_>| field(s, "grpc-status");
    let (sa, sb) = (status(&a), status(&b));
    if sa != sb {
        let v = |s: Option<String>| s.map(|s| s.parse::<u64>().map_or(Value::String(s), Value::from));
        out.push(
            cap,
            Difference { kind: DiffKind::Grpc, path: "status".into(), recorded: v(sa), received: v(sb), cut: false, described: false },
        );
    }
    let message = |s: &Side<'_>| field(s, "grpc-message").map(|m| grpc::percent_decode(m.as_bytes()));
    let (ma, mb) = (message(&a), message(&b));
    if ma != mb {
        out.push(
            cap,
            Difference {
                kind: DiffKind::Grpc,
                path: "message".into(),
                recorded: ma.map(|m| quote(&m)),
                received: mb.map(|m| quote(&m)),
                cut: false,
                described: false,
            },
        );
    }
    let (Some(ba), Some(bb)) = (a.body, b.body) else { return };
    let split = |s: &Side<'_>, body: &[u8]| grpc::split(body, header(s.headers, "grpc-encoding").map(|e| e.trim().as_bytes()), usize::MAX);
    let (xa, xb) = (split(&a, ba), split(&b, bb));
    let show = |m: Option<&grpc::GrpcMessage>| -> Option<Value> {
        let m = m?;
        Some(match std::str::from_utf8(&m.data) {
            Ok(t) => quote(t),
            Err(_) => Value::String(digest(&m.data)),
        })
    };
    let n = xa.messages.len().max(xb.messages.len());
    if xa.messages.len() != xb.messages.len() {
        out.push(
            cap,
            Difference::described(
                DiffKind::Grpc,
                "responses".into(),
                format!("{} messages", xa.messages.len()),
                format!("{} messages", xb.messages.len()),
            ),
        );
    }
    for i in 0..n {
        let (ma, mb) = (xa.messages.get(i), xb.messages.get(i));
        if ma.map(|m| (&m.data, &m.error)) == mb.map(|m| (&m.data, &m.error)) {
            continue;
        }
        let text = |m: Option<&grpc::GrpcMessage>| m.is_none_or(|m| std::str::from_utf8(&m.data).is_ok());
        let described = !(text(ma) && text(mb));
        let (mut ra, mut rb) = (show(ma), show(mb));
        for (side, m) in [(&mut ra, ma), (&mut rb, mb)] {
            if let (Some(Value::String(s)), Some(e)) = (side.as_mut(), m.and_then(|m| m.error.as_ref())) {
                s.push_str(&format!(" ({e})"));
            }
        }
        out.push(
            cap,
            Difference { kind: DiffKind::Grpc, path: format!("responses[{i}]"), recorded: ra, received: rb, cut: false, described },
        );
    }
    if xa.trailing != xb.trailing {
        out.push(
            cap,
            Difference::described(
                DiffKind::Grpc,
                "responses".into(),
                format!("{} bytes after the last whole message", xa.trailing),
                format!("{} bytes after the last whole message", xb.trailing),
            ),
        );
    }
}

/// `N bytes sha256:...`.
fn digest(d: &[u8]) -> String {
    let h = Sha256::digest(d);
    let mut s = format!("{} bytes sha256:", d.len());
    for byte in h.iter() {
        let _ = write!(s, "{byte:02x}");
    }
    s
}

fn compare_headers(cfg: &CompareConfig, a: &[(String, String)], b: &[(String, String)], out: &mut Comparison, cap: usize) {
    let ma = header_map(cfg, a);
    let mb = header_map(cfg, b);
    let names: BTreeSet<&String> = ma.keys().chain(mb.keys()).collect();
    for name in names {
        let va = ma.get(name);
        let vb = mb.get(name);
        if va != vb {
            let show = |v: Option<&Vec<String>>| v.map(|v| quote(&v.join(", ")));
            out.push(
                cap,
                Difference {
                    kind: DiffKind::Header,
                    path: name.clone(),
                    recorded: show(va),
                    received: show(vb),
                    cut: false,
                    described: false,
                },
            );
        }
    }
}

/// A string kept in a difference: cut at 200 characters.
fn quote(s: &str) -> Value {
    Value::String(cut_chars(s))
}

/// A JSON value kept in a difference: itself, or when long its beginning (and `cut`).
fn keep_json(v: &Value) -> (Value, bool) {
    let s = v.to_string();
    if s.len() > MAX_JSON_SHOWN { (Value::String(cut_chars(&s)), true) } else { (v.clone(), false) }
}

fn is_json_mime(m: &str) -> bool {
    let m = m.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
    m == "application/json" || m == "text/json" || m.ends_with("+json")
}

fn looks_json(b: &[u8]) -> bool {
    matches!(b.iter().find(|c| !c.is_ascii_whitespace()), Some(b'{' | b'['))
}

fn compare_body(cfg: &CompareConfig, mime_a: &str, a: &[u8], mime_b: &str, b: &[u8], out: &mut Comparison, cap: usize) {
    let want_json = is_json_mime(mime_a) || is_json_mime(mime_b) || (looks_json(a) && looks_json(b));
    if want_json {
        match (serde_json::from_slice::<Value>(a), serde_json::from_slice::<Value>(b)) {
            (Ok(x), Ok(y)) => {
                let mut path = Vec::new();
                walk(cfg, &x, &y, &mut path, out, cap);
                return;
            }
            (Ok(_), Err(e)) if !b.is_empty() => {
                out.push(cap, Difference::described(DiffKind::Body, String::new(), "JSON".into(), format!("not JSON ({e})")))
            }
            (Err(e), Ok(_)) if !a.is_empty() => {
                out.push(cap, Difference::described(DiffKind::Body, String::new(), format!("not JSON ({e})"), "JSON".into()))
            }
            _ => {}
        }
    }
    if a == b {
        return;
    }
    match (std::str::from_utf8(a), std::str::from_utf8(b)) {
        (Ok(x), Ok(y)) => line_diff(x, y, out, cap),
        _ => {
            out.push(cap, Difference::described(DiffKind::Binary, String::new(), digest(a), digest(b)));
        }
    }
}

// ---------------------------------------------------------------------------------------------
// JSON

/// A step in a concrete JSON path.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Seg {
    Key(String),
    Index(usize),
}

/// Writes a path as `$.a.b[0]["odd key"]`.
pub fn path_string(path: &[Seg]) -> String {
    let mut s = String::from("$");
    for seg in path {
        match seg {
            Seg::Index(i) => {
                let _ = write!(s, "[{i}]");
            }
            Seg::Key(k) => {
                let plain = k.chars().next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
                    && k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
                if plain {
                    s.push('.');
                    s.push_str(k);
                } else {
                    let _ = write!(s, "[{}]", serde_json::to_string(k).unwrap_or_default());
                }
            }
        }
    }
    s
}

/// A step of an ignore pattern.
#[derive(Clone, Debug, PartialEq, Eq)]
enum PatSeg {
    /// A member name (JSONPath `.a`, `['a']`).
    Key(String),
    /// An array position (JSONPath `[0]`).
    Index(usize),
    /// A JSON Pointer reference token: a member name, or an array position when it is one.
    Token(String),
    /// Any member or position (`*`, `[*]`).
    Any,
}

/// An `--ignore-json` pattern: a JSON Pointer (`/a/b/0/c`, with `*` for any member or
/// position) or a JSONPath subset (`$.a.b[*].c`, `$['odd key']`, `$.a[0]`). It ignores the
/// subtree it names.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JsonPattern {
    pub source: String,
    segs: Vec<PatSeg>,
}

impl std::str::FromStr for JsonPattern {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let segs = if s.is_empty() || s.starts_with('/') {
            parse_pointer(s)
        } else if s.starts_with('$') {
            parse_jsonpath(s)?
        } else {
            return Err(format!("'{s}': a JSON path starts with / (JSON Pointer) or $ (like $.a.b[*].c)"));
        };
        Ok(JsonPattern { source: s.to_string(), segs })
    }
}

impl JsonPattern {
    /// Whether the pattern names `path` or one of its ancestors.
    pub fn covers(&self, path: &[Seg]) -> bool {
        self.segs.len() <= path.len()
            && self.segs.iter().zip(path).all(|(p, s)| match (p, s) {
                (PatSeg::Any, _) => true,
                (PatSeg::Key(k), Seg::Key(x)) => k == x,
                (PatSeg::Index(i), Seg::Index(x)) => i == x,
                (PatSeg::Token(t), Seg::Key(x)) => t == x,
                (PatSeg::Token(t), Seg::Index(x)) => t.parse::<usize>().is_ok_and(|i| i == *x) && (t == "0" || !t.starts_with('0')),
                _ => false,
            })
    }
}

fn parse_pointer(s: &str) -> Vec<PatSeg> {
    if s.is_empty() {
        return Vec::new();
    }
    s[1..].split('/').map(|t| if t == "*" { PatSeg::Any } else { PatSeg::Token(t.replace("~1", "/").replace("~0", "~")) }).collect()
}

fn parse_jsonpath(s: &str) -> Result<Vec<PatSeg>, String> {
    let bad = |why: &str| format!("'{s}': {why} (supported: $, .name, .*, [N], [*], ['name'])");
    let b = s.as_bytes();
    let mut i = 1;
    let mut segs = Vec::new();
    while i < b.len() {
        match b[i] {
            b'.' => {
                i += 1;
                if b.get(i) == Some(&b'.') {
                    return Err(bad("recursive descent (..) is not supported"));
                }
                let start = i;
                while i < b.len() && b[i] != b'.' && b[i] != b'[' {
                    i += 1;
                }
                let name = &s[start..i];
                if name.is_empty() {
                    return Err(bad("empty member name"));
                }
                segs.push(if name == "*" { PatSeg::Any } else { PatSeg::Key(name.to_string()) });
            }
            b'[' => {
                let close = s[i..].find(']').map(|p| i + p).ok_or_else(|| bad("unclosed ["))?;
                let inner = s[i + 1..close].trim();
                if inner == "*" {
                    segs.push(PatSeg::Any);
                } else if let Ok(n) = inner.parse::<usize>() {
                    segs.push(PatSeg::Index(n));
                } else if inner.len() >= 2
                    && ((inner.starts_with('\'') && inner.ends_with('\'')) || (inner.starts_with('"') && inner.ends_with('"')))
                {
                    // A quoted name; a ] inside it is not supported.
                    segs.push(PatSeg::Key(inner[1..inner.len() - 1].to_string()));
                } else {
                    return Err(bad(&format!("unsupported selector [{inner}]")));
                }
                i = close + 1;
            }
            _ => return Err(bad("expected . or [")),
        }
    }
    Ok(segs)
}

fn num_eq(a: &serde_json::Number, b: &serde_json::Number) -> bool {
    if a == b {
        return true;
    }
    match (a.as_i64(), b.as_i64(), a.as_u64(), b.as_u64()) {
        (Some(x), Some(y), _, _) => x == y,
        (_, _, Some(x), Some(y)) => x == y,
        _ => match (a.as_f64(), b.as_f64()) {
            (Some(x), Some(y)) => x == y,
            _ => false,
        },
    }
}

fn walk(cfg: &CompareConfig, a: &Value, b: &Value, path: &mut Vec<Seg>, out: &mut Comparison, cap: usize) {
    if cfg.ignore_json.iter().any(|p| p.covers(path)) {
        return;
    }
    let diff = |path: &[Seg], a: Option<&Value>, b: Option<&Value>| {
        let (a, b) = (a.map(keep_json), b.map(keep_json));
        let cut = a.as_ref().is_some_and(|v| v.1) || b.as_ref().is_some_and(|v| v.1);
        // Both sides the same way: a value cut on one side is a string, so the other is too.
        let side = |v: Option<(Value, bool)>| v.map(|(v, c)| if cut && !c { Value::String(cut_chars(&v.to_string())) } else { v });
        Difference { kind: DiffKind::Json, path: path_string(path), recorded: side(a), received: side(b), cut, described: false }
    };
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            let keys: BTreeSet<&String> = x.keys().chain(y.keys()).collect();
            for k in keys {
                path.push(Seg::Key(k.clone()));
                match (x.get(k), y.get(k)) {
                    (Some(va), Some(vb)) => walk(cfg, va, vb, path, out, cap),
                    (va, vb) => {
                        if !cfg.ignore_json.iter().any(|p| p.covers(path)) {
                            out.push(cap, diff(path, va, vb));
                        }
                    }
                }
                path.pop();
            }
        }
        (Value::Array(x), Value::Array(y)) => {
            for i in 0..x.len().max(y.len()) {
                path.push(Seg::Index(i));
                match (x.get(i), y.get(i)) {
                    (Some(va), Some(vb)) => walk(cfg, va, vb, path, out, cap),
                    (va, vb) => {
                        if !cfg.ignore_json.iter().any(|p| p.covers(path)) {
                            out.push(cap, diff(path, va, vb));
                        }
                    }
                }
                path.pop();
            }
        }
        (Value::Number(x), Value::Number(y)) => {
            if !num_eq(x, y) {
                out.push(cap, diff(path, Some(a), Some(b)));
            }
        }
        _ => {
            if a != b {
                out.push(cap, diff(path, Some(a), Some(b)));
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Text

/// Lines compared with a longest-common-subsequence table up to this many cells; a larger
/// changed region is reported as one block.
const LCS_MAX_CELLS: usize = 4_000_000;

fn line_diff(a: &str, b: &str, out: &mut Comparison, cap: usize) {
    let la: Vec<&str> = a.split('\n').map(|l| l.strip_suffix('\r').unwrap_or(l)).collect();
    let lb: Vec<&str> = b.split('\n').map(|l| l.strip_suffix('\r').unwrap_or(l)).collect();
    if la == lb {
        let ending = |s: &str| if s.contains("\r\n") { "CRLF".to_string() } else { "LF".to_string() };
        out.push(cap, Difference::described(DiffKind::Text, "line endings".into(), ending(a), ending(b)));
        return;
    }
    let pre = la.iter().zip(&lb).take_while(|(x, y)| x == y).count();
    let suf = la[pre..].iter().rev().zip(lb[pre..].iter().rev()).take_while(|(x, y)| x == y).count();
    let ma = &la[pre..la.len() - suf];
    let mb = &lb[pre..lb.len() - suf];
    let line = |n: usize| format!("line {}", n + 1);
    if ma.len().saturating_mul(mb.len()) > LCS_MAX_CELLS {
        out.push(
            cap,
            Difference::described(
                DiffKind::Text,
                format!("lines {}-{}", pre + 1, pre + ma.len()),
                format!("{} lines", ma.len()),
                format!("{} lines", mb.len()),
            ),
        );
        return;
    }
    // LCS lengths of the suffixes: t[i][j] for ma[i..], mb[j..].
    let w = mb.len() + 1;
    let mut t = vec![0u32; (ma.len() + 1) * w];
    for i in (0..ma.len()).rev() {
        for j in (0..mb.len()).rev() {
            t[i * w + j] = if ma[i] == mb[j] { t[(i + 1) * w + j + 1] + 1 } else { t[(i + 1) * w + j].max(t[i * w + j + 1]) };
        }
    }
    // Walk the script; a run of removed lines followed by added ones pairs up as changes.
    let (mut i, mut j) = (0, 0);
    let mut removed: Vec<usize> = Vec::new();
    let mut added: Vec<usize> = Vec::new();
    let flush = |removed: &mut Vec<usize>, added: &mut Vec<usize>, out: &mut Comparison| {
        let n = removed.len().max(added.len());
        for k in 0..n {
            let (r, s) = (removed.get(k), added.get(k));
            let path = match (r, s) {
                (Some(&r), _) => line(pre + r),
                (None, Some(&s)) => line(pre + s),
                (None, None) => unreachable!("k < max of the lengths"),
            };
            out.push(
                cap,
                Difference {
                    kind: DiffKind::Text,
                    path,
                    recorded: r.map(|&r| quote(ma[r])),
                    received: s.map(|&s| quote(mb[s])),
                    cut: false,
                    described: false,
                },
            );
        }
        removed.clear();
        added.clear();
    };
    while i < ma.len() || j < mb.len() {
        if i < ma.len() && j < mb.len() && ma[i] == mb[j] {
            flush(&mut removed, &mut added, out);
            i += 1;
            j += 1;
        } else if j < mb.len() && (i == ma.len() || t[i * w + j + 1] >= t[(i + 1) * w + j]) {
            added.push(j);
            j += 1;
        } else {
            removed.push(i);
            i += 1;
        }
    }
    flush(&mut removed, &mut added, out);
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn h(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs.iter().map(|(a, b)| (a.to_string(), b.to_string())).collect()
    }

    fn cmp(cfg: &CompareConfig, ha: &[(&str, &str)], a: &str, hb: &[(&str, &str)], b: &str) -> Comparison {
        let (ha, hb) = (h(ha), h(hb));
        compare(
            cfg,
            Side { status: 200, headers: &ha, trailers: &[], body: Some(a.as_bytes()) },
            Side { status: 200, headers: &hb, trailers: &[], body: Some(b.as_bytes()) },
        )
    }

    fn paths(c: &Comparison) -> Vec<String> {
        c.differences.iter().map(|d| d.path.clone()).collect()
    }

    const JSON: &[(&str, &str)] = &[("Content-Type", "application/json")];

    #[test]
    fn json_is_structural() {
        let cfg = CompareConfig::default();
        let c = cmp(&cfg, JSON, r#"{"a":1,"b":[1,2],"c":{"d":"x"}}"#, JSON, r#"{ "c":{"d":"x"}, "b":[1, 2.0], "a":1.0 }"#);
        assert!(c.is_empty(), "{c:?}");
        let c = cmp(&cfg, JSON, r#"{"a":1,"b":[1,2],"c":{"d":"x"},"gone":true}"#, JSON, r#"{"a":2,"b":[1],"c":{"d":"y"},"new":null}"#);
        assert_eq!(paths(&c), ["$.a", "$.b[1]", "$.c.d", "$.gone", "$.new"]);
        assert_eq!(c.differences[0].describe(), "body $.a: 1 -> 2");
        assert_eq!(c.differences[1].describe(), "body $.b[1]: 2 -> (absent)");
        assert_eq!(c.differences[4].describe(), "body $.new: (absent) -> null");
    }

    /// In the JSON report each side is the value itself: a number, a string, an object; never
    /// a string holding JSON text.
    #[test]
    fn sides_are_plain_json() {
        let cfg = CompareConfig::default();
        let (ha, hb) =
            (h(&[("Content-Type", "application/json"), ("Content-Encoding", "gzip")]), h(&[("Content-Type", "application/json")]));
        let c = compare(
            &cfg,
            Side { status: 200, headers: &ha, trailers: &[], body: Some(br#"{"s":"a","n":1,"o":{"k":[1,true]}}"#) },
            Side { status: 404, headers: &hb, trailers: &[], body: Some(br#"{"s":"b","n":2.5,"o":"flat"}"#) },
        );
        let v = serde_json::to_value(&c.differences).unwrap();
        let sides: Vec<(Value, Value)> = v.as_array().unwrap().iter().map(|d| (d["recorded"].clone(), d["received"].clone())).collect();
        assert_eq!(
            sides,
            [
                (json!(200), json!(404)),
                (json!("gzip"), Value::Null),
                (json!(1), json!(2.5)),
                (json!({"k": [1, true]}), json!("flat")),
                (json!("a"), json!("b")),
            ]
        );
        assert!(v.as_array().unwrap().iter().all(|d| d.get("cut").is_none()));
        assert_eq!(c.differences[1].describe(), r#"header content-encoding: "gzip" -> (absent)"#);
        assert_eq!(c.differences[3].describe(), r#"body $.o: {"k":[1,true]} -> "flat""#);
        // A long value: its beginning as a string on both sides, flagged.
        let long: Vec<u32> = (0..2000).collect();
        let a = serde_json::to_vec(&json!({"l": long})).unwrap();
        let c = compare(
            &cfg,
            Side { status: 200, headers: &hb, trailers: &[], body: Some(&a) },
            Side { status: 200, headers: &hb, trailers: &[], body: Some(br#"{"l":null}"#) },
        );
        let d = serde_json::to_value(&c.differences[0]).unwrap();
        assert_eq!(d["cut"], true);
        let rec = d["recorded"].as_str().unwrap();
        assert!(rec.starts_with("[0,1,2,3") && rec.ends_with('…') && rec.chars().count() == 201, "{rec}");
        assert_eq!(d["received"], "null", "the other side as a string too");
        // A long string is cut at 200 characters, and shown with its quotes.
        let c = cmp(&cfg, JSON, &format!(r#"{{"t":"{}"}}"#, "x".repeat(300)), JSON, r#"{"t":"y"}"#);
        let shown = c.differences[0].describe();
        assert!(shown.starts_with(&format!("body $.t: \"{}…\" -> \"y\"", "x".repeat(200))), "{shown}");
    }

    #[test]
    fn json_ignore_patterns() {
        let a = r#"{"meta":{"at":1,"id":"x"},"items":[{"id":1,"ts":5},{"id":2,"ts":6}],"odd key":{"v":1}}"#;
        let b = r#"{"meta":{"at":2,"id":"x"},"items":[{"id":1,"ts":7},{"id":2,"ts":8}],"odd key":{"v":2}}"#;
        let mut cfg = CompareConfig::default();
        assert_eq!(paths(&cmp(&cfg, JSON, a, JSON, b)), ["$.items[0].ts", "$.items[1].ts", "$.meta.at", r#"$["odd key"].v"#]);
        for pats in [
            &["$.meta.at", "$.items[*].ts", "$['odd key']"][..],
            &["/meta/at", "/items/*/ts", "/odd key/v"][..],
            &["$.meta.at", "/items/0/ts", "$.items[1]", "$[\"odd key\"].v"][..],
        ] {
            cfg.ignore_json = pats.iter().map(|p| p.parse().unwrap()).collect();
            assert!(cmp(&cfg, JSON, a, JSON, b).is_empty(), "{pats:?}");
        }
        cfg.ignore_json = vec!["$.meta.at".parse().unwrap()];
        assert_eq!(paths(&cmp(&cfg, JSON, a, JSON, b)), ["$.items[0].ts", "$.items[1].ts", r#"$["odd key"].v"#]);
        // The whole document.
        cfg.ignore_json = vec!["$".parse().unwrap()];
        assert!(cmp(&cfg, JSON, a, JSON, b).is_empty());
        for bad in ["meta.at", "$..at", "$.items[?(@.id)]", "$.a[", "$.a..b"] {
            assert!(bad.parse::<JsonPattern>().is_err(), "{bad}");
        }
        let p: JsonPattern = "/a~1b/~0c".parse().unwrap();
        assert!(p.covers(&[Seg::Key("a/b".into()), Seg::Key("~c".into()), Seg::Index(3)]));
    }

    #[test]
    fn headers_volatile_and_cookies() {
        let mut cfg = CompareConfig::default();
        let a = [
            ("Date", "Mon"),
            ("Server", "a/1"),
            ("X-Request-Id", "1"),
            ("Content-Length", "10"),
            ("Set-Cookie", "sid=1; Path=/"),
            ("Set-Cookie", "lang=en"),
            ("Connection", "keep-alive"),
            ("X-Version", "1"),
            ("Cache-Control", "no-store"),
        ];
        let b = [
            ("date", "Tue"),
            ("server", "a/2"),
            ("x-request-id", "2"),
            ("transfer-encoding", "chunked"),
            ("set-cookie", "lang=fr"),
            ("set-cookie", "sid=2; Path=/; HttpOnly"),
            ("x-version", "2"),
            ("cache-control", " no-store "),
            ("x-new", "n"),
        ];
        let c = cmp(&cfg, &a, "", &b, "");
        assert_eq!(paths(&c), ["x-new", "x-version"]);
        assert_eq!(c.differences[1].describe(), r#"header x-version: "1" -> "2""#);
        assert_eq!(c.differences[0].describe(), r#"header x-new: (absent) -> "n""#);
        cfg.ignore_headers.insert("x-version".into());
        cfg.ignore_headers.insert("x-new".into());
        assert!(cmp(&cfg, &a, "", &b, "").is_empty());
        let c = cmp(&cfg, &[("Set-Cookie", "a=1")], "", &[("Set-Cookie", "b=1")], "");
        assert_eq!(c.differences[0].describe(), r#"header set-cookie: "a" -> "b""#);
    }

    #[test]
    fn text_line_wise() {
        let cfg = CompareConfig::default();
        let c = cmp(&cfg, &[], "a\nb\nc\nd\n", &[], "a\nB\nc\nd\ne\n");
        assert_eq!(
            c.differences.iter().map(|d| d.describe()).collect::<Vec<_>>(),
            [r#"body line 2: "b" -> "B""#, r#"body line 5: (absent) -> "e""#]
        );
        let c = cmp(&cfg, &[], "a\nb\nc", &[], "a\nc");
        assert_eq!(c.differences[0].describe(), r#"body line 2: "b" -> (absent)"#);
        let c = cmp(&cfg, &[], "a\r\nb", &[], "a\nb");
        assert_eq!(c.differences[0].describe(), "body line endings: CRLF -> LF");
        assert!(cmp(&cfg, &[], "same", &[], "same").is_empty());
    }

    #[test]
    fn binary_by_digest_and_kind_changes() {
        let cfg = CompareConfig::default();
        let (ha, hb) = (h(&[]), h(&[]));
        let c = compare(
            &cfg,
            Side { status: 200, headers: &ha, trailers: &[], body: Some(&[0xff, 0, 1]) },
            Side { status: 201, headers: &hb, trailers: &[], body: Some(&[0xff, 0, 2]) },
        );
        assert_eq!(c.differences[0].describe(), "status: 200 -> 201");
        assert_eq!(c.differences[1].kind, DiffKind::Binary);
        assert!(c.differences[1].recorded.as_ref().and_then(Value::as_str).unwrap().starts_with("3 bytes sha256:"));
        let c = cmp(&cfg, JSON, r#"{"a":1}"#, JSON, "<html>oops</html>");
        assert_eq!(c.differences[0].kind, DiffKind::Body);
        assert_eq!(c.differences[1].kind, DiffKind::Text);
    }

    #[test]
    fn listing_is_capped() {
        let cfg = CompareConfig { max_differences: 3, ..CompareConfig::default() };
        let a: String = (0..10).map(|i| format!("{i}\n")).collect();
        let b: String = (0..10).map(|i| format!("x{i}\n")).collect();
        let c = cmp(&cfg, &[], &a, &[], &b);
        assert_eq!((c.differences.len(), c.more), (3, 7));
    }

    #[test]
    fn big_text_regions_are_one_block() {
        let cfg = CompareConfig::default();
        let a: String = (0..3000).map(|i| format!("{i}\n")).collect();
        let b: String = (0..3000).map(|i| format!("y{i}\n")).collect();
        let c = cmp(&cfg, &[], &a, &[], &b);
        assert_eq!(c.differences.len(), 1);
        assert_eq!(c.differences[0].path, "lines 1-3000");
    }
}
