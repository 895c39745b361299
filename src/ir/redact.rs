//! Redaction: sensitive values replaced in witnesses and HAR entries alike.
//!
//! A value is sensitive when
//! - its **name** is (a header, query parameter, cookie, form field, JSON/YAML/XML field, or any
//!   field above it): names are compared lowercased with `-`, `_`, `.` and spaces removed,
//!   containing one of `password`, `passwd`, `passphrase`, `secret`, `token`, `apikey`,
//!   `accesskey`, `privatekey`, `authorization`, `cookie`, `session`, `credential`,
//!   `signature`, `creditcard`, `cardnumber`, `ccnumber`, `cvv`, `cvc`, `ssn`, `jwt`, `csrf`,
//!   `xsrf`, or equal to `auth`, `pwd`, `pass`, `pin`, `otp`, `sid`, `key`; every cookie value
//!   is sensitive;
//! - or its **text** contains a JWT, a common API-key format (AWS access key ids, GitHub,
//!   GitLab, Slack, Stripe, Google, OpenAI-style `sk-` keys), a PEM private key, or a card
//!   number (13 to 19 digits, spaces or dashes between, passing the Luhn check), or the whole
//!   value is a credential with its scheme (`Bearer`, `Basic`, `Token`, `Digest` and a token
//!   that looks like one): not words inside free text, so prose about a token (a user called
//!   "Token Customer", a script's comment) is not a secret;
//! - or it matches a **user pattern** (`--redact-patterns FILE`: one regular expression per line
//!   matched against values, or `name:REGEX` matched against lowercased names; `#` comments and
//!   blank lines are ignored).
//!
//! In a witness a sensitive primitive keeps its type, its value becomes [`MASK`] (strings),
//! zero (numbers, booleans) or empty (bytes), its formats are dropped and
//! `akita_annotations.is_sensitive` is set. In a HAR entry a sensitive value becomes `REDACTED`
//! (JSON numbers `0`), credentials keep their scheme (`Bearer REDACTED`), cookies keep their
//! names, and long texts keep their shape with only the matches masked; the message keeps
//! the size its body had ([`Message::unredacted_len`]) for the HAR's `content.size`.

use std::sync::LazyLock;

use regex::bytes::Regex;

use super::value::{Prim, Scalar};
use crate::proto::http1::head::{Head, Span, StartLine};
use crate::proto::http1::{Exchange, Message};

/// What a redacted string becomes.
pub const MASK: &str = "REDACTED";

const NAME_PARTS: &[&str] = &[
    "password",
    "passwd",
    "passphrase",
    "secret",
    "token",
    "apikey",
    "accesskey",
    "privatekey",
    "authorization",
    "cookie",
    "session",
    "credential",
    "signature",
    "creditcard",
    "cardnumber",
    "ccnumber",
    "cvv",
    "cvc",
    "ssn",
    "jwt",
    "csrf",
    "xsrf",
];
const NAME_EXACT: &[&str] = &["auth", "pwd", "pass", "pin", "otp", "sid", "key"];

/// Token formats that are secrets wherever they appear, free text included.
static SECRETS: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(concat!(
        r"(?-u)",
        r"eyJ[A-Za-z0-9_\-]{4,}\.[A-Za-z0-9_\-]{4,}\.[A-Za-z0-9_\-]*",
        r"|\b(?:AKIA|ASIA|AGPA|AIDA|AROA)[0-9A-Z]{16}\b",
        r"|\bgh[pousr]_[A-Za-z0-9]{30,}",
        r"|\bgithub_pat_[A-Za-z0-9_]{22,}",
        r"|\bglpat-[A-Za-z0-9_\-]{20,}",
        r"|\bxox[abposr]-[A-Za-z0-9\-]{10,}",
        r"|\b[spr]k_(?:live|test)_[A-Za-z0-9]{16,}",
        r"|\bAIza[0-9A-Za-z_\-]{35}",
        r"|\bsk-[A-Za-z0-9_\-]{20,}",
        r"|-----BEGIN [A-Z ]*PRIVATE KEY-----[\s\S]*?-----END [A-Z ]*PRIVATE KEY-----",
    ))
    .expect("secret patterns")
});

/// A credential with its scheme (`Bearer abc123...`): only as a whole value (a header field's,
/// a JSON string's, a form field's), never inside free text, where "token returned" or a user
/// called "Token Customer" is prose. The credential must look like one: 20 characters or more,
/// or a digit or one of `-._~+/=` among them.
static SCHEME: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"(?-u)^\s*(?i:bearer|basic|token|digest)\s+([A-Za-z0-9\-._~+/]{8,}=*)\s*$").expect("scheme pattern"));

/// Whether `v` as a whole is a credential with its scheme; the span of the credential.
fn scheme_credential(v: &[u8]) -> Option<(usize, usize)> {
    let c = SCHEME.captures(v)?.get(1)?;
    let cred = c.as_bytes();
    (cred.len() >= 20 || cred.iter().any(|b| b.is_ascii_digit() || b"-._~+/=".contains(b))).then(|| (c.start(), c.end()))
}
static CARD: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"(?-u)\b(?:[0-9][ \-]?){12,18}[0-9]\b").expect("card pattern"));

/// The Luhn check of the digits of `b` (other bytes ignored); 13 to 19 digits.
pub fn luhn(b: &[u8]) -> bool {
    let digits: Vec<u32> = b.iter().filter(|c| c.is_ascii_digit()).map(|&c| u32::from(c - b'0')).collect();
    if !(13..=19).contains(&digits.len()) {
        return false;
    }
    let sum: u32 =
        digits.iter().rev().enumerate().map(|(i, &d)| if i % 2 == 1 { if d * 2 > 9 { d * 2 - 9 } else { d * 2 } } else { d }).sum();
    sum.is_multiple_of(10)
}

/// Redaction rules: the built-in ones and the user's.
#[derive(Clone, Debug, Default)]
pub struct Redactor {
    values: Option<Regex>,
    names: Option<Regex>,
}

impl Redactor {
    /// The built-in rules only.
    pub fn builtin() -> Redactor {
        Redactor::default()
    }

    /// The built-in rules and the patterns of a `--redact-patterns` file's text.
    pub fn with_patterns(text: &str) -> Result<Redactor, String> {
        let mut values = Vec::new();
        let mut names = Vec::new();
        for (i, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let (list, pat) = match line.strip_prefix("name:") {
                Some(p) => (&mut names, p.trim()),
                None => (&mut values, line),
            };
            Regex::new(pat).map_err(|e| format!("line {}: {e}", i + 1))?;
            list.push(format!("(?:{pat})"));
        }
        let join = |l: Vec<String>| -> Result<Option<Regex>, String> {
            if l.is_empty() { Ok(None) } else { Regex::new(&l.join("|")).map(Some).map_err(|e| e.to_string()) }
        };
        Ok(Redactor { values: join(values)?, names: join(names)? })
    }

    /// Whether a field name marks its value as sensitive.
    pub fn sensitive_name(&self, name: &[u8]) -> bool {
        let mut buf = [0u8; 64];
        let mut n = 0;
        for &c in name {
            if matches!(c, b'-' | b'_' | b'.' | b' ') {
                continue;
            }
            if n == buf.len() {
                break;
            }
            buf[n] = c.to_ascii_lowercase();
            n += 1;
        }
        let norm = &buf[..n];
        let builtin = NAME_EXACT.iter().any(|e| e.as_bytes() == norm)
            || NAME_PARTS.iter().any(|p| memchr::memmem::find(norm, p.as_bytes()).is_some());
        builtin || self.names.as_ref().is_some_and(|r| r.is_match(&name.to_ascii_lowercase()))
    }

    /// Whether a value contains anything sensitive.
    pub fn sensitive_value(&self, v: &[u8]) -> bool {
        if v.len() >= 13 && (SECRETS.is_match(v) || scheme_credential(v).is_some() || CARD.find_iter(v).any(|m| luhn(m.as_bytes()))) {
            return true;
        }
        self.values.as_ref().is_some_and(|r| r.is_match(v))
    }

    /// `v` with every sensitive match replaced by [`MASK`], and the number of matches; `None`
    /// when nothing matched. A credential with its scheme counts only when it is the whole
    /// value, and keeps its scheme (`Bearer REDACTED`).
    pub fn mask(&self, v: &[u8]) -> Option<(Vec<u8>, u64)> {
        let mut spans: Vec<(usize, usize)> = Vec::new();
        if v.len() >= 13 {
            spans.extend(scheme_credential(v));
            spans.extend(SECRETS.find_iter(v).map(|m| (m.start(), m.end())));
            spans.extend(CARD.find_iter(v).filter(|m| luhn(m.as_bytes())).map(|m| (m.start(), m.end())));
        }
        if let Some(r) = &self.values {
            spans.extend(r.find_iter(v).filter(|m| !m.is_empty()).map(|m| (m.start(), m.end())));
        }
        if spans.is_empty() {
            return None;
        }
        spans.sort_unstable();
        let mut out = Vec::with_capacity(v.len());
        let mut at = 0;
        let mut n = 0;
        for (s, e) in spans {
            if e <= at {
                continue;
            }
            out.extend_from_slice(&v[at..s.max(at)]);
            if s >= at {
                out.extend_from_slice(MASK.as_bytes());
                n += 1;
            }
            at = e;
        }
        out.extend_from_slice(&v[at..]);
        Some((out, n))
    }
}

/// Replaces a primitive's value by its redacted form and marks it sensitive.
pub fn redact_primitive(p: &mut Prim) {
    p.val = match p.val {
        Scalar::Str(_) => Scalar::Str(MASK.into()),
        Scalar::Bytes(_) => Scalar::Bytes(Vec::new()),
        Scalar::Bool(_) => Scalar::Bool(false),
        Scalar::I64(_) => Scalar::I64(0),
        Scalar::U64(_) => Scalar::U64(0),
        Scalar::F64(_) => Scalar::F64(0.0),
    };
    p.format = None;
    p.sensitive = true;
}

// ---------------------------------------------------------------------------------------------
// HAR side: a redacted copy of an exchange.

impl Redactor {
    /// Redacts an exchange in place before it is written as a HAR entry; returns the number of
    /// values replaced.
    pub fn redact_exchange(&self, ex: &mut Exchange) -> u64 {
        let mut n = 0;
        if let Some(m) = ex.request.as_mut() {
            n += self.redact_message(m, true);
        }
        if let Some(m) = ex.response.as_mut() {
            n += self.redact_message(m, false);
        }
        // WebSocket messages: JSON ones by name and value, any other by value patterns.
        if let Some(ws) = ex.websocket.as_mut() {
            for r in &mut ws.messages {
                let d = &r.msg.data;
                if let Some((b, k)) = self.mask_json(d).or_else(|| self.mask(d)) {
                    r.msg.data = b;
                    n += k;
                }
            }
        }
        n
    }

    fn redact_message(&self, m: &mut Message, request: bool) -> u64 {
        let mut n = 0;
        let (head, k) = self.redact_head(&m.head, request);
        n += k;
        if let Some(h) = head {
            m.head = h;
        }
        for (name, value) in &mut m.trailers {
            if let Some(v) = self.header_value(name, value, &mut n) {
                *value = v;
            }
        }
        if !m.body.is_empty() {
            let ct = m.head.field("content-type").map(super::body::media_type).unwrap_or_default();
            let (kind, _) = super::body::classify(&ct);
            let redacted = match kind {
                super::body::Kind::Json => self.mask_json(&m.body),
                super::body::Kind::Form => self.mask_form(&m.body, b'&'),
                super::body::Kind::Multipart(_) => {
                    let ct_raw = m.head.field("content-type").unwrap_or(b"").to_vec();
                    self.mask_multipart(&ct_raw, &m.body)
                }
                _ => None,
            }
            .or_else(|| self.mask(&m.body));
            if let Some((b, k)) = redacted {
                m.unredacted_len.get_or_insert(m.body.len() as u64);
                m.body = b;
                n += k;
            }
        }
        n
    }

    /// A header's redacted value, if it changes.
    fn header_value(&self, name: &[u8], value: &[u8], n: &mut u64) -> Option<Vec<u8>> {
        let lname = name.to_ascii_lowercase();
        if lname == b"cookie" {
            *n += 1;
            return Some(mask_cookie_pairs(value, b';'));
        }
        if lname == b"set-cookie" {
            *n += 1;
            let end = value.iter().position(|&c| c == b';').unwrap_or(value.len());
            let mut v = mask_cookie_pairs(&value[..end], b';');
            v.extend_from_slice(&value[end..]);
            return Some(v);
        }
        if lname == b"authorization" || lname == b"proxy-authorization" {
            *n += 1;
            let t = crate::proto::http1::decode::trim(value);
            let mut v = match t.iter().position(|&c| c == b' ') {
                Some(p) => t[..p + 1].to_vec(),
                None => Vec::new(),
            };
            v.extend_from_slice(MASK.as_bytes());
            return Some(v);
        }
        if self.sensitive_name(name) {
            *n += 1;
            return Some(MASK.as_bytes().to_vec());
        }
        self.mask(value).map(|(v, k)| {
            *n += k;
            v
        })
    }

    /// The head with sensitive header values, query values and matches in the target replaced;
    /// `None` when nothing changed.
    fn redact_head(&self, h: &Head, request: bool) -> (Option<Head>, u64) {
        let mut n = 0;
        let mut changed = false;
        let mut raw = Vec::with_capacity(h.raw.len());
        let line = match h.line {
            StartLine::Request { method, target, version } => {
                let m = push(&mut raw, h.get(method));
                raw.push(b' ');
                let t = h.get(target);
                let new_target = self.redact_target(t, &mut n);
                changed |= new_target.is_some();
                let t = push(&mut raw, new_target.as_deref().unwrap_or(t));
                raw.push(b' ');
                let v = push(&mut raw, h.get(version));
                StartLine::Request { method: m, target: t, version: v }
            }
            StartLine::Response { version, status, reason } => {
                let v = push(&mut raw, h.get(version));
                raw.extend_from_slice(format!(" {status:03} ").as_bytes());
                let r = push(&mut raw, h.get(reason));
                StartLine::Response { version: v, status, reason: r }
            }
        };
        raw.extend_from_slice(b"\r\n");
        let _ = request;
        let mut headers = Vec::with_capacity(h.headers.len());
        for &(ns, vs) in &h.headers {
            let (name, value) = (h.get(ns), h.get(vs));
            let new = self.header_value(name, value, &mut n);
            changed |= new.is_some();
            let ns = push(&mut raw, name);
            raw.extend_from_slice(b": ");
            let vs = push(&mut raw, new.as_deref().unwrap_or(value));
            raw.extend_from_slice(b"\r\n");
            headers.push((ns, vs));
        }
        raw.extend_from_slice(b"\r\n");
        if !changed {
            return (None, 0);
        }
        (Some(Head { raw, line, headers, lenient: h.lenient, dropped_lines: h.dropped_lines }), n)
    }

    /// A request-target with sensitive query values and matches replaced.
    fn redact_target(&self, t: &[u8], n: &mut u64) -> Option<Vec<u8>> {
        let q = t.iter().position(|&c| c == b'?');
        let (path, query) = match q {
            Some(p) => (&t[..p], Some(&t[p + 1..])),
            None => (t, None),
        };
        let path_new = self.mask(path);
        let query_new = query.and_then(|q| self.mask_form(q, b'&'));
        if path_new.is_none() && query_new.is_none() {
            return None;
        }
        let mut out = Vec::with_capacity(t.len());
        match path_new {
            Some((p, k)) => {
                *n += k;
                out.extend_from_slice(&p);
            }
            None => out.extend_from_slice(path),
        }
        if let Some(q) = query {
            out.push(b'?');
            match query_new {
                Some((q, k)) => {
                    *n += k;
                    out.extend_from_slice(&q);
                }
                None => out.extend_from_slice(q),
            }
        }
        Some(out)
    }

    /// `a=1&b=2` with the values of sensitive names, and sensitive values, replaced.
    pub fn mask_form(&self, q: &[u8], sep: u8) -> Option<(Vec<u8>, u64)> {
        let mut out = Vec::with_capacity(q.len());
        let mut n = 0;
        for (i, part) in q.split(|&c| c == sep).enumerate() {
            if i > 0 {
                out.push(sep);
            }
            let (k, v) = match part.iter().position(|&c| c == b'=') {
                Some(p) => (&part[..p], Some(&part[p + 1..])),
                None => (part, None),
            };
            out.extend_from_slice(k);
            let Some(v) = v else { continue };
            out.push(b'=');
            let dk = super::body::form::percent_decode(k, true);
            let dv = super::body::form::percent_decode(v, true);
            if !v.is_empty() && (self.sensitive_name(&dk) || self.sensitive_value(&dv) || self.sensitive_value(v)) {
                out.extend_from_slice(MASK.as_bytes());
                n += 1;
            } else {
                out.extend_from_slice(v);
            }
        }
        (n > 0).then_some((out, n))
    }

    /// A multipart body with the content of sensitive parts and sensitive matches replaced.
    fn mask_multipart(&self, ct: &[u8], body: &[u8]) -> Option<(Vec<u8>, u64)> {
        let parts = super::body::multipart::parts(ct, body)?;
        let mut out = Vec::with_capacity(body.len());
        let mut at = 0;
        let mut n = 0;
        for p in &parts {
            let start = p.content.as_ptr() as usize - body.as_ptr() as usize;
            let end = start + p.content.len();
            out.extend_from_slice(&body[at..start]);
            let sensitive = p.name.is_some_and(|name| self.sensitive_name(name));
            if sensitive && !p.content.is_empty() {
                out.extend_from_slice(MASK.as_bytes());
                n += 1;
            } else {
                let sub = match p.content_type.map(super::body::media_type) {
                    Some(m) if super::body::classify(&m).0 == super::body::Kind::Json => self.mask_json(p.content),
                    _ => None,
                }
                .or_else(|| self.mask(p.content));
                match sub {
                    Some((b, k)) => {
                        out.extend_from_slice(&b);
                        n += k;
                    }
                    None => out.extend_from_slice(p.content),
                }
            }
            at = end;
        }
        out.extend_from_slice(&body[at..]);
        // The part headers may hold secrets too.
        match self.mask(&out) {
            Some((b, k)) => Some((b, n + k)),
            None => (n > 0).then_some((out, n)),
        }
    }

    /// A JSON text with the values of sensitive names and sensitive string or number values
    /// replaced, formatting kept; `None` when it is not JSON or nothing changed.
    pub fn mask_json(&self, b: &[u8]) -> Option<(Vec<u8>, u64)> {
        serde_json::from_slice::<serde::de::IgnoredAny>(b).ok()?;
        // (container is object, its values are sensitive); for objects also the pending key's.
        struct Level {
            object: bool,
            sensitive: bool,
            expect_key: bool,
            value_sensitive: bool,
        }
        let mut stack: Vec<Level> = Vec::new();
        let mut out = Vec::with_capacity(b.len());
        let mut n = 0;
        let mut i = 0;
        let value_sensitive = |stack: &Vec<Level>| stack.last().is_some_and(|l| if l.object { l.value_sensitive } else { l.sensitive });
        while i < b.len() {
            let c = b[i];
            match c {
                b'{' | b'[' => {
                    let s = value_sensitive(&stack);
                    stack.push(Level { object: c == b'{', sensitive: s, expect_key: true, value_sensitive: s });
                    out.push(c);
                    i += 1;
                }
                b'}' | b']' => {
                    stack.pop();
                    out.push(c);
                    i += 1;
                }
                b',' => {
                    if let Some(l) = stack.last_mut()
                        && l.object
                    {
                        l.expect_key = true;
                    }
                    out.push(c);
                    i += 1;
                }
                b':' => {
                    out.push(c);
                    i += 1;
                }
                b'"' => {
                    let mut j = i + 1;
                    while j < b.len() && b[j] != b'"' {
                        j += if b[j] == b'\\' { 2 } else { 1 };
                    }
                    let end = (j + 1).min(b.len());
                    let inner = &b[i + 1..end.saturating_sub(1).max(i + 1)];
                    let is_key = stack.last().is_some_and(|l| l.object && l.expect_key);
                    if is_key {
                        let l = stack.last_mut().expect("checked");
                        l.expect_key = false;
                        l.value_sensitive = l.sensitive || self.sensitive_name(inner);
                        out.extend_from_slice(&b[i..end]);
                    } else if value_sensitive(&stack) || self.sensitive_value(inner) {
                        out.push(b'"');
                        out.extend_from_slice(MASK.as_bytes());
                        out.push(b'"');
                        n += 1;
                    } else {
                        out.extend_from_slice(&b[i..end]);
                    }
                    i = end;
                }
                b'-' | b'0'..=b'9' => {
                    let mut j = i;
                    while j < b.len() && matches!(b[j], b'-' | b'+' | b'.' | b'e' | b'E' | b'0'..=b'9') {
                        j += 1;
                    }
                    let tok = &b[i..j];
                    if value_sensitive(&stack) || (tok.len() >= 13 && luhn(tok) && tok.iter().all(u8::is_ascii_digit)) {
                        out.push(b'0');
                        n += 1;
                    } else {
                        out.extend_from_slice(tok);
                    }
                    i = j;
                }
                _ => {
                    out.push(c);
                    i += 1;
                }
            }
        }
        (n > 0).then_some((out, n))
    }
}

fn push(raw: &mut Vec<u8>, part: &[u8]) -> Span {
    let start = raw.len() as u32;
    raw.extend_from_slice(part);
    Span { start, end: raw.len() as u32 }
}

/// `a=1; b=2` with every value replaced (names kept).
fn mask_cookie_pairs(v: &[u8], sep: u8) -> Vec<u8> {
    let mut out = Vec::with_capacity(v.len());
    for (i, c) in v.split(|&c| c == sep).enumerate() {
        if i > 0 {
            out.push(sep);
        }
        match c.iter().position(|&x| x == b'=') {
            Some(p) => {
                out.extend_from_slice(&c[..=p]);
                out.extend_from_slice(MASK.as_bytes());
            }
            None => out.extend_from_slice(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        let r = Redactor::builtin();
        for n in [
            "Password",
            "X-API-Key",
            "api_key",
            "csrf_token",
            "Authorization",
            "client_secret",
            "auth",
            "session_id",
            "Set-Cookie",
            "card-number",
        ] {
            assert!(r.sensitive_name(n.as_bytes()), "{n}");
        }
        for n in ["author", "user", "name", "Content-Type", "shipping", "keyboard", "id"] {
            assert!(!r.sensitive_name(n.as_bytes()), "{n}");
        }
    }

    #[test]
    fn values() {
        let r = Redactor::builtin();
        for v in [
            "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U",
            "Bearer abcdefgh12345678",
            "AKIAIOSFODNN7EXAMPLE",
            "ghp_abcdefghijklmnopqrstuvwxyz0123456789",
            "sk_live_abcdefghijklmnop1234",
            "xoxb-1234567890-abcdefghij",
            "4111 1111 1111 1111",
            "card 4111-1111-1111-1111 here",
            "5500005555555559",
        ] {
            assert!(r.sensitive_value(v.as_bytes()), "{v}");
        }
        for v in ["4111 1111 1111 1112", "hello world", "1234567890123", "2024-02-29T10:33:00Z", "short"] {
            assert!(!r.sensitive_value(v.as_bytes()), "{v}");
        }
        assert!(!luhn(b"79927398713"), "11 digits are too few");
        // A credential with its scheme is one as a whole value (keeping the scheme), not inside
        // free text; token formats and card numbers are found anywhere.
        let (m, n) = r.mask(b"pay 4111 1111 1111 1111 with Bearer abcdefghijkl").unwrap();
        assert_eq!(String::from_utf8(m).unwrap(), "pay REDACTED with Bearer abcdefghijkl");
        assert_eq!(n, 1);
        let (m, n) = r.mask(b"Bearer abcdefgh12345678").unwrap();
        assert_eq!((String::from_utf8(m).unwrap().as_str(), n), ("Bearer REDACTED", 1));
        assert!(r.mask(b"nothing to see").is_none());
        // Prose that mentions a token: a user's name, a script's comment.
        for v in ["Token Customer", "token  Customers", "Basic Information", "// the token returned by login is cached\nvar t = 1;"] {
            assert!(!r.sensitive_value(v.as_bytes()), "{v}");
            assert!(r.mask(v.as_bytes()).is_none(), "{v}");
        }
    }

    /// Values are redacted by the name that holds them and by value patterns, not by free text
    /// inside JSON strings or scripts; the count says how many were replaced.
    #[test]
    fn prose_is_not_a_secret() {
        let r = Redactor::builtin();
        let doc = br#"{"name":"Token Customer","note":"the token expires in an hour","token":"abc","auth":{"kind":"Bearer x1y2z3w4v5"}}"#;
        let (out, n) = r.mask_json(doc).unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            r#"{"name":"Token Customer","note":"the token expires in an hour","token":"REDACTED","auth":{"kind":"REDACTED"}}"#
        );
        assert_eq!(n, 2);
        let script = b"function f() {\n  // refresh the token before it expires\n  return fetch('/t', {credentials: 'same-origin'});\n}\n";
        assert!(r.mask(script).is_none());
        assert!(r.mask_json(br#"{"user":"Token Customer"}"#).is_none());
    }

    #[test]
    fn user_patterns() {
        let r = Redactor::with_patterns("# comment\n\nACME-[0-9]{6}\nname:^x-tenant$\n").unwrap();
        assert!(r.sensitive_value(b"id ACME-123456"));
        assert!(r.sensitive_name(b"X-Tenant"));
        assert!(!r.sensitive_name(b"X-Tenants"));
        assert!(Redactor::with_patterns("(unclosed").unwrap_err().starts_with("line 1:"));
    }

    #[test]
    fn json_keeps_its_shape() {
        let r = Redactor::builtin();
        let body = br#"{"user": "jo", "password": "hunter2", "nested": {"token": {"a": [1, "x"]}}, "n": 4111111111111111, "s": "a\"b", "pin": 1234}"#;
        let (out, n) = r.mask_json(body).unwrap();
        let out = String::from_utf8(out).unwrap();
        assert_eq!(
            out,
            r#"{"user": "jo", "password": "REDACTED", "nested": {"token": {"a": [0, "REDACTED"]}}, "n": 0, "s": "a\"b", "pin": 0}"#
        );
        assert_eq!(n, 5);
        serde_json::from_str::<serde_json::Value>(&out).unwrap();
        assert!(r.mask_json(b"{bad").is_none());
        assert!(r.mask_json(br#"{"a": 1}"#).is_none());
    }

    #[test]
    fn forms_and_cookies() {
        let r = Redactor::builtin();
        let (f, n) = r.mask_form(b"username=jo&password=p%40ss&next=%2F", b'&').unwrap();
        assert_eq!(f, b"username=jo&password=REDACTED&next=%2F");
        assert_eq!(n, 1);
        assert_eq!(mask_cookie_pairs(b"session=abc; theme=dark", b';'), b"session=REDACTED; theme=REDACTED");
    }

    #[test]
    fn exchanges() {
        let raw = b"POST /login?api_key=k123&q=ok HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer sekrit-token-123\r\nCookie: session=abc; theme=dark\r\nX-Note: call 4111 1111 1111 1111\r\nContent-Type: application/json\r\n\r\n".to_vec();
        let head = crate::proto::http1::head::parse(raw, true, 100).unwrap();
        let body = br#"{"password":"hunter2"}"#.to_vec();
        let mut m = Message::whole(head, body, crate::capture::Ts(0), crate::capture::Ts(0));
        let r = Redactor::builtin();
        let n = r.redact_message(&mut m, true);
        let all = [m.head.raw.clone(), m.body.clone()].concat();
        let all = String::from_utf8(all).unwrap();
        for secret in ["k123", "sekrit", "abc", "dark", "4111", "hunter2"] {
            assert!(!all.contains(secret), "{secret} in {all}");
        }
        assert_eq!(m.head.target(), b"/login?api_key=REDACTED&q=ok");
        assert_eq!(m.head.field("authorization"), Some(&b"Bearer REDACTED"[..]));
        assert_eq!(m.head.field("host"), Some(&b"x"[..]));
        assert_eq!(n, 5);
    }
}
