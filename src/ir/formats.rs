//! Scalars from text: categorising a string value (int64 → uint64 → double → bool → string →
//! bytes) and detecting the format of a string (uuid, date-time, URL, email, IP address, JWT,
//! base64, phone number).
//!
//! Detection is cheap first: each detector looks at the length and the first bytes before any
//! pattern runs, and the few regular expressions are compiled once ([`LazyLock`]).
//!
//! Format names and kinds follow what the reference tooling wrote in witnesses
//! (`formats {"rfc_3339": true} format_kind: "datetime"`, `"uuid"` → `"unique_id"`, `"url"` →
//! `"uri"`, `"rfc_2822"` → `"datetime"`); the others use the same shape.
//!
//! Categorising improves on the reference where it lost information: a number with leading
//! zeros (`"007"`, a postcode) or a run of digits too long for 64 bits stays a string, and a
//! double needs the syntax of one (`inf`, `nan` and `1_000` are strings).

use std::collections::BTreeMap;
use std::sync::LazyLock;

use regex::Regex;

use super::pb::{self, primitive::Value as V};

/// A detected format: its name (the key in `Primitive.formats`) and kind (`format_kind`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Format {
    pub name: &'static str,
    pub kind: &'static str,
}

pub const UUID: Format = Format { name: "uuid", kind: "unique_id" };
pub const RFC3339: Format = Format { name: "rfc_3339", kind: "datetime" };
pub const DATE: Format = Format { name: "date", kind: "datetime" };
pub const RFC2822: Format = Format { name: "rfc_2822", kind: "datetime" };
pub const URL: Format = Format { name: "url", kind: "uri" };
pub const EMAIL: Format = Format { name: "email", kind: "email" };
pub const IPV4: Format = Format { name: "ipv4", kind: "ip_address" };
pub const IPV6: Format = Format { name: "ipv6", kind: "ip_address" };
pub const JWT: Format = Format { name: "jwt", kind: "token" };
pub const BASE64: Format = Format { name: "base64", kind: "encoding" };
pub const PHONE: Format = Format { name: "phone_number", kind: "phone_number" };

static EMAIL_RE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"^[A-Za-z0-9._%+\-]{1,64}@[A-Za-z0-9](?:[A-Za-z0-9\-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9\-]{0,61}[A-Za-z0-9])?)*\.[A-Za-z]{2,24}$").expect("email pattern")
});
static PHONE_RE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"^(?:\+[1-9][0-9]{0,2}[ .\-]?)?(?:\([0-9]{1,4}\)[ .\-]?)?[0-9]{2,4}(?:[ .\-][0-9]{2,4}){1,4}$|^\+[1-9][0-9]{7,14}$")
        .expect("phone pattern")
});
static URL_RE: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^(?i:https?|wss?|ftp)://[^\s/?#@]+(?:@[^\s/?#]+)?(?:[/?#]\S*)?$").expect("url pattern"));

/// The format of a string, if it has one of the known ones.
pub fn detect(s: &str) -> Option<Format> {
    let b = s.as_bytes();
    let n = b.len();
    if !(2..=4096).contains(&n) {
        return None;
    }
    let c = b[0];
    if n == 36 && is_uuid(b) {
        return Some(UUID);
    }
    if c.is_ascii_digit() {
        if n == 10 && is_date(b) {
            return Some(DATE);
        }
        if n >= 19 && is_rfc3339(b) {
            return Some(RFC3339);
        }
        if (7..=15).contains(&n) && s.parse::<std::net::Ipv4Addr>().is_ok() {
            return Some(IPV4);
        }
    }
    if c.is_ascii_alphabetic() {
        if n >= 8 && memchr::memmem::find(b, b"://").is_some() && URL_RE.is_match(s) {
            return Some(URL);
        }
        if n >= 26 && is_rfc2822(b) {
            return Some(RFC2822);
        }
        if n >= 20 && c == b'e' && b[1] == b'y' && is_jwt(b) {
            return Some(JWT);
        }
    }
    if b.contains(&b':') && n <= 45 && s.parse::<std::net::Ipv6Addr>().is_ok() {
        return Some(IPV6);
    }
    if b.contains(&b'@') && EMAIL_RE.is_match(s) {
        return Some(EMAIL);
    }
    if (c == b'+' || c == b'(' || c.is_ascii_digit())
        && (8..=24).contains(&n)
        && PHONE_RE.is_match(s)
        && digits(b) >= if c == b'+' { 8 } else { 10 }
    {
        return Some(PHONE);
    }
    if n >= 16 && is_base64(b) {
        return Some(BASE64);
    }
    None
}

fn digits(b: &[u8]) -> usize {
    b.iter().filter(|c| c.is_ascii_digit()).count()
}

/// `8-4-4-4-12` hexadecimal digits.
pub fn is_uuid(b: &[u8]) -> bool {
    b.len() == 36 && b.iter().enumerate().all(|(i, &c)| if matches!(i, 8 | 13 | 18 | 23) { c == b'-' } else { c.is_ascii_hexdigit() })
}

fn num(b: &[u8]) -> Option<u32> {
    if b.is_empty() || !b.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(b.iter().fold(0u32, |a, &c| a * 10 + u32::from(c - b'0')))
}

/// `YYYY-MM-DD` with a plausible month and day.
pub fn is_date(b: &[u8]) -> bool {
    if b.len() < 10 || b[4] != b'-' || b[7] != b'-' {
        return false;
    }
    matches!((num(&b[0..4]), num(&b[5..7]), num(&b[8..10])), (Some(_), Some(m), Some(d)) if (1..=12).contains(&m) && (1..=31).contains(&d))
}

/// RFC 3339 date-time: `YYYY-MM-DDTHH:MM:SS[.frac](Z|±HH:MM)` (`t`, `z` and a space for `T`
/// accepted, as RFC 3339 allows).
pub fn is_rfc3339(b: &[u8]) -> bool {
    if b.len() < 20 || !is_date(b) || !matches!(b[10], b'T' | b't' | b' ') || b[13] != b':' || b[16] != b':' {
        return false;
    }
    match (num(&b[11..13]), num(&b[14..16]), num(&b[17..19])) {
        (Some(h), Some(m), Some(s)) if h < 24 && m < 60 && s <= 60 => {}
        _ => return false,
    }
    let mut rest = &b[19..];
    if let Some(r) = rest.strip_prefix(b".") {
        let k = r.iter().take_while(|c| c.is_ascii_digit()).count();
        if k == 0 {
            return false;
        }
        rest = &r[k..];
    }
    match rest {
        [b'Z' | b'z'] => true,
        [b'+' | b'-', h1, h2, b':', m1, m2] => [h1, h2, m1, m2].iter().all(|c| c.is_ascii_digit()),
        _ => false,
    }
}

/// RFC 2822 / HTTP date: `Tue, 24 Nov 2026 18:57:21 GMT` (also a numeric zone).
pub fn is_rfc2822(b: &[u8]) -> bool {
    const DAYS: [&[u8]; 7] = [b"Mon", b"Tue", b"Wed", b"Thu", b"Fri", b"Sat", b"Sun"];
    const MONTHS: [&[u8]; 12] = [b"Jan", b"Feb", b"Mar", b"Apr", b"May", b"Jun", b"Jul", b"Aug", b"Sep", b"Oct", b"Nov", b"Dec"];
    let Ok(s) = std::str::from_utf8(b) else { return false };
    let mut it = s.split(' ').filter(|p| !p.is_empty());
    let (Some(day), Some(d), Some(mon), Some(y), Some(t), Some(z), None) =
        (it.next(), it.next(), it.next(), it.next(), it.next(), it.next(), it.next())
    else {
        return false;
    };
    let day = day.strip_suffix(',').unwrap_or(day);
    DAYS.contains(&day.as_bytes())
        && num(d.as_bytes()).is_some_and(|d| (1..=31).contains(&d))
        && MONTHS.contains(&mon.as_bytes())
        && y.len() == 4
        && num(y.as_bytes()).is_some()
        && t.len() == 8
        && t.as_bytes()[2] == b':'
        && t.as_bytes()[5] == b':'
        && (matches!(z, "GMT" | "UT" | "UTC" | "Z")
            || (z.len() == 5 && matches!(z.as_bytes()[0], b'+' | b'-') && num(&z.as_bytes()[1..]).is_some()))
}

fn is_b64url_char(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'-' || c == b'_'
}

/// A JSON Web Token: three base64url parts, the first a JSON object (`eyJ` is `{"`).
pub fn is_jwt(b: &[u8]) -> bool {
    if !b.starts_with(b"eyJ") {
        return false;
    }
    let mut parts = 0;
    for p in b.split(|&c| c == b'.') {
        parts += 1;
        if parts > 3 || !p.iter().all(|&c| is_b64url_char(c)) || (parts < 3 && p.is_empty()) {
            return false;
        }
    }
    parts == 3
}

/// Standard or URL-safe base64 of at least 16 characters, padded to a multiple of 4 when it
/// uses padding, mixing cases and digits (plain words are not taken for base64).
pub fn is_base64(b: &[u8]) -> bool {
    let body = b.strip_suffix(b"==").or_else(|| b.strip_suffix(b"=")).unwrap_or(b);
    let padded = body.len() != b.len();
    if padded && b.len() % 4 != 0 {
        return false;
    }
    let (mut upper, mut lower, mut digit) = (false, false, false);
    let mut std = false;
    let mut url = false;
    for &c in body {
        match c {
            b'A'..=b'Z' => upper = true,
            b'a'..=b'z' => lower = true,
            b'0'..=b'9' => digit = true,
            b'+' | b'/' => std = true,
            b'-' | b'_' => url = true,
            _ => return false,
        }
    }
    !(std && url) && upper && lower && digit && (padded || std || body.len() % 4 == 0)
}

/// A decimal integer without a superfluous leading zero or sign.
fn plain_integer(s: &[u8]) -> bool {
    let d = s.strip_prefix(b"-").unwrap_or(s);
    !d.is_empty() && d.iter().all(u8::is_ascii_digit) && !(d.len() > 1 && d[0] == b'0') && !(s[0] == b'-' && d == b"0")
}

/// A decimal number with a fraction or an exponent (`1.5`, `-2e10`, `.5` is not one).
fn plain_double(s: &[u8]) -> bool {
    let d = s.strip_prefix(b"-").unwrap_or(s);
    let int = d.iter().take_while(|c| c.is_ascii_digit()).count();
    if int == 0 || (int > 1 && d[0] == b'0') {
        return false;
    }
    let mut r = &d[int..];
    let mut decorated = false;
    if let Some(f) = r.strip_prefix(b".") {
        let k = f.iter().take_while(|c| c.is_ascii_digit()).count();
        if k == 0 {
            return false;
        }
        r = &f[k..];
        decorated = true;
    }
    if let Some(e) = r.strip_prefix(b"e").or_else(|| r.strip_prefix(b"E")) {
        let e = e.strip_prefix(b"+").or_else(|| e.strip_prefix(b"-")).unwrap_or(e);
        if e.is_empty() || !e.iter().all(u8::is_ascii_digit) {
            return false;
        }
        r = &[];
        decorated = true;
    }
    decorated && r.is_empty()
}

/// The scalar a piece of text stands for: int64, uint64, double, bool, else a string (with
/// its format) when UTF-8, else bytes.
pub fn categorize(b: &[u8]) -> pb::Primitive {
    if let Some(v) = scalar_of(b) {
        return prim(v);
    }
    match std::str::from_utf8(b) {
        Ok(s) => string_primitive(s.to_owned()),
        Err(_) => prim(V::BytesValue(pb::Bytes { r#type: None, value: b.to_vec() })),
    }
}

/// Like [`categorize`] for an owned string (no copy when it stays a string).
pub fn categorize_string(s: String) -> pb::Primitive {
    match scalar_of(s.as_bytes()) {
        Some(v) => prim(v),
        None => string_primitive(s),
    }
}

/// The non-string scalar `b` spells, if any.
fn scalar_of(b: &[u8]) -> Option<V> {
    let first = *b.first()?;
    if first.is_ascii_digit() || first == b'-' {
        if plain_integer(b) {
            // ASCII digits: the parse cannot see anything but digits and a sign.
            let s = std::str::from_utf8(b).ok()?;
            if let Ok(v) = s.parse::<i64>() {
                return Some(V::Int64Value(pb::Int64 { r#type: None, value: v }));
            }
            if let Ok(v) = s.parse::<u64>() {
                return Some(V::Uint64Value(pb::Uint64 { r#type: None, value: v }));
            }
            return None;
        }
        if plain_double(b) {
            let v: f64 = std::str::from_utf8(b).ok()?.parse().ok()?;
            if v.is_finite() {
                return Some(V::DoubleValue(pb::Double { r#type: None, value: v }));
            }
        }
        return None;
    }
    if b.len() == 4 && b.eq_ignore_ascii_case(b"true") {
        return Some(V::BoolValue(pb::Bool { r#type: None, value: true }));
    }
    if b.len() == 5 && b.eq_ignore_ascii_case(b"false") {
        return Some(V::BoolValue(pb::Bool { r#type: None, value: false }));
    }
    None
}

fn prim(v: V) -> pb::Primitive {
    pb::Primitive { value: Some(v), ..Default::default() }
}

/// A string primitive with its format, if detected.
pub fn string_primitive(s: String) -> pb::Primitive {
    let f = detect(&s);
    let mut p = prim(V::StringValue(pb::Str { r#type: None, value: s }));
    if let Some(f) = f {
        p.formats = BTreeMap::from([(f.name.to_string(), true)]);
        p.format_kind = f.kind.to_string();
    }
    p
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kind(s: &str) -> &'static str {
        match categorize(s.as_bytes()).value {
            Some(V::Int64Value(_)) => "int64",
            Some(V::Uint64Value(_)) => "uint64",
            Some(V::DoubleValue(_)) => "double",
            Some(V::BoolValue(_)) => "bool",
            Some(V::StringValue(_)) => "string",
            Some(V::BytesValue(_)) => "bytes",
            _ => "?",
        }
    }

    #[test]
    fn categories_in_order() {
        for (s, k) in [
            ("0", "int64"),
            ("42", "int64"),
            ("-42", "int64"),
            ("9223372036854775807", "int64"),
            ("9223372036854775808", "uint64"),
            ("18446744073709551615", "uint64"),
            ("18446744073709551616", "string"),
            ("007", "string"),
            ("-0", "string"),
            ("+5", "string"),
            ("1.5", "double"),
            ("-2.5e10", "double"),
            ("1e3", "double"),
            ("1.", "string"),
            (".5", "string"),
            ("1e999", "string"),
            ("inf", "string"),
            ("NaN", "string"),
            ("true", "bool"),
            ("FALSE", "bool"),
            ("yes", "string"),
            ("", "string"),
            ("héllo", "string"),
        ] {
            assert_eq!(kind(s), k, "{s:?}");
        }
        assert_eq!(categorize(b"\xff\x00").value, Some(V::BytesValue(pb::Bytes { r#type: None, value: vec![0xff, 0] })));
        match categorize(b"9223372036854775808").value {
            Some(V::Uint64Value(u)) => assert_eq!(u.value, 9_223_372_036_854_775_808),
            v => panic!("{v:?}"),
        }
    }

    #[test]
    fn formats() {
        for (s, f) in [
            ("123e4567-e89b-12d3-a456-426614174000", Some(UUID)),
            ("123e4567-e89b-12d3-a456-42661417400g", None),
            ("2024-02-29", Some(DATE)),
            ("2024-13-01", None),
            ("2024-02-29T10:33:00Z", Some(RFC3339)),
            ("1996-12-19T16:39:57.1234-08:00", Some(RFC3339)),
            ("1996-12-19T16:39:57", None),
            ("2024-02-29T25:00:00Z", None),
            ("Tue, 24 Nov 2026 18:57:21 GMT", Some(RFC2822)),
            ("Tue, 24 Nov 2026 18:57:21 +0100", Some(RFC2822)),
            ("https://example.com/a?b=c", Some(URL)),
            ("HTTP://x.io", Some(URL)),
            ("https:// nope", None),
            ("jo.doe+tag@mail.example.org", Some(EMAIL)),
            ("not@an-email", None),
            ("192.168.0.1", Some(IPV4)),
            ("256.1.1.1", None),
            ("2001:db8::1", Some(IPV6)),
            ("::1", Some(IPV6)),
            ("eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U", Some(JWT)),
            ("eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0", None),
            ("+14155552671", Some(PHONE)),
            ("+1 415-555-2671", Some(PHONE)),
            ("(415) 555-2671", Some(PHONE)),
            ("1.5.3", None),
            ("SGVsbG8sIFdvcmxkITEyMw==", Some(BASE64)),
            ("rmtCUmzwX_QjNPI1oBp9JfEfQ5S8YUh8KsoRymVq8Lk=", Some(BASE64)),
            ("abcdefghijklmnopqrst", None),
            ("hello world", None),
            ("x", None),
        ] {
            assert_eq!(detect(s), f, "{s:?}");
        }
    }

    #[test]
    fn string_primitives_carry_their_format() {
        let p = categorize(b"2024-02-29T10:33:00Z");
        assert_eq!(p.format_kind, "datetime");
        assert_eq!(p.formats.get("rfc_3339"), Some(&true));
        let p = categorize(b"plain");
        assert!(p.formats.is_empty() && p.format_kind.is_empty());
    }
}
