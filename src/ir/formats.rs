//! Scalars from text: categorising a string value (int64 → uint64 → double → bool → string →
//! bytes) and detecting the format of a string (uuid, date-time, URL, email, IP address, JWT,
//! base64, phone number).
//!
//! Detection is cheap first: each detector looks at the length and the first bytes before any
//! pattern runs; URLs and email addresses (frequent in API bodies) are checked by hand, and the
//! phone pattern is a regular expression compiled once ([`LazyLock`]).
//!
//! Format names and kinds follow what the reference tooling wrote in witnesses
//! (`formats {"rfc_3339": true} format_kind: "datetime"`, `"uuid"` → `"unique_id"`, `"url"` →
//! `"uri"`, `"rfc_2822"` → `"datetime"`); the others use the same shape.
//!
//! Categorising improves on the reference where it lost information: a number with leading
//! zeros (`"007"`, a postcode) or a run of digits too long for 64 bits stays a string, and a
//! double needs the syntax of one (`inf`, `nan` and `1_000` are strings).

use std::sync::LazyLock;

use regex::Regex;

use compact_str::CompactString;

use super::value::{Prim, Scalar};

/// A detected format: its name (the key in `Primitive.formats`) and kind (`format_kind`), with
/// the hashes of `formats {name: true}` and of the kind computed at compile time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Format {
    pub name: &'static str,
    pub kind: &'static str,
    /// ObjectHash of the map `{name: true}`.
    pub formats_hash: [u8; 8],
    /// ObjectHash of the string `kind`.
    pub kind_hash: [u8; 8],
}

const fn tagged(tag: u8, s: &[u8]) -> [u8; 8] {
    super::hash::const_tagged(tag, s).0
}

const fn format(name: &'static str, kind: &'static str) -> Format {
    let key = tagged(b'u', name.as_bytes());
    let t = tagged(b'b', b"1");
    let mut entry = [0u8; 17];
    entry[0] = b'd';
    let mut i = 0;
    while i < 8 {
        entry[1 + i] = key[i];
        entry[9 + i] = t[i];
        i += 1;
    }
    let formats_hash = xxhash_rust::const_xxh64::xxh64(&entry, 0).to_be_bytes();
    Format { name, kind, formats_hash, kind_hash: tagged(b'u', kind.as_bytes()) }
}

pub static UUID: Format = format("uuid", "unique_id");
pub static RFC3339: Format = format("rfc_3339", "datetime");
pub static DATE: Format = format("date", "datetime");
pub static RFC2822: Format = format("rfc_2822", "datetime");
pub static URL: Format = format("url", "uri");
pub static EMAIL: Format = format("email", "email");
pub static IPV4: Format = format("ipv4", "ip_address");
pub static IPV6: Format = format("ipv6", "ip_address");
pub static JWT: Format = format("jwt", "token");
pub static BASE64: Format = format("base64", "encoding");
pub static PHONE: Format = format("phone_number", "phone_number");

static PHONE_RE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"^(?:\+[1-9][0-9]{0,2}[ .\-]?)?(?:\([0-9]{1,4}\)[ .\-]?)?[0-9]{2,4}(?:[ .\-][0-9]{2,4}){1,4}$|^\+[1-9][0-9]{7,14}$")
        .expect("phone pattern")
});

/// The format of a string, if it has one of the known ones.
pub fn detect(s: &str) -> Option<&'static Format> {
    let b = s.as_bytes();
    let n = b.len();
    if !(2..=4096).contains(&n) {
        return None;
    }
    let c = b[0];
    if n == 36 && is_uuid(b) {
        return Some(&UUID);
    }
    if c.is_ascii_digit() {
        if n == 10 && is_date(b) {
            return Some(&DATE);
        }
        if n >= 19 && is_rfc3339(b) {
            return Some(&RFC3339);
        }
        if (7..=15).contains(&n) && s.parse::<std::net::Ipv4Addr>().is_ok() {
            return Some(&IPV4);
        }
    }
    if c.is_ascii_alphabetic() {
        if n >= 8 && is_url(b) {
            return Some(&URL);
        }
        if (26..=40).contains(&n) && b[3] == b',' && is_rfc2822(b) {
            return Some(&RFC2822);
        }
        if n >= 20 && c == b'e' && b[1] == b'y' && is_jwt(b) {
            return Some(&JWT);
        }
    }
    if n <= 45 && b.contains(&b':') && s.parse::<std::net::Ipv6Addr>().is_ok() {
        return Some(&IPV6);
    }
    if is_email(b) {
        return Some(&EMAIL);
    }
    if (c == b'+' || c == b'(' || c.is_ascii_digit())
        && (8..=24).contains(&n)
        && PHONE_RE.is_match(s)
        && digits(b) >= if c == b'+' { 8 } else { 10 }
    {
        return Some(&PHONE);
    }
    if n >= 16 && is_base64(b) {
        return Some(&BASE64);
    }
    None
}

/// Byte classes for the hand-written checks: one table lookup per byte instead of a chain of
/// comparisons.
const LOCAL: u8 = 1; // allowed in an email's local part: A-Za-z0-9._%+-
const LABEL: u8 = 2; // allowed in a domain label: A-Za-z0-9-
const ALPHA: u8 = 4; // A-Za-z
static CLASS: [u8; 256] = {
    let mut t = [0u8; 256];
    let mut c = 0;
    while c < 256 {
        let b = c as u8;
        if b.is_ascii_alphabetic() {
            t[c] = LOCAL | LABEL | ALPHA;
        } else if b.is_ascii_digit() || b == b'-' {
            t[c] = LOCAL | LABEL;
        } else if matches!(b, b'.' | b'_' | b'%' | b'+') {
            t[c] = LOCAL;
        }
        c += 1;
    }
    t
};

fn is_class(b: &[u8], class: u8) -> bool {
    b.iter().all(|&c| CLASS[usize::from(c)] & class != 0)
}

/// `scheme://authority[/path...]` for http, https, ws, wss and ftp, without whitespace or
/// control characters, the authority non-empty with at most one `@`, not at its end.
pub fn is_url(b: &[u8]) -> bool {
    // The scheme is at most 5 letters: look for its colon there only.
    let Some(p) = b.iter().take(6).position(|&c| c == b':') else { return false };
    if !b[p..].starts_with(b"://") {
        return false;
    }
    let scheme = &b[..p];
    let known = match p {
        2 => scheme.eq_ignore_ascii_case(b"ws"),
        3 => scheme.eq_ignore_ascii_case(b"wss") || scheme.eq_ignore_ascii_case(b"ftp"),
        4 => scheme.eq_ignore_ascii_case(b"http"),
        5 => scheme.eq_ignore_ascii_case(b"https"),
        _ => false,
    };
    if !known {
        return false;
    }
    let rest = &b[p + 3..];
    let printable = |c: u8| c > b' ' && c != 0x7f;
    // The authority, up to the first `/`, `?` or `#`, then the rest: one pass.
    let mut ats = 0;
    let mut i = 0;
    while i < rest.len() {
        match rest[i] {
            b'/' | b'?' | b'#' => break,
            b'@' => ats += 1,
            c if !printable(c) => return false,
            _ => {}
        }
        i += 1;
    }
    i > 0 && ats <= 1 && rest[i - 1] != b'@' && rest[i..].iter().all(|&c| printable(c))
}

/// `local@domain.tld`: a local part of at most 64 of `A-Za-z0-9._%+-`, dot-separated domain
/// labels of letters, digits and inner hyphens, a top-level domain of 2 to 24 letters.
pub fn is_email(b: &[u8]) -> bool {
    let Some(at) = memchr::memchr(b'@', b) else { return false };
    let (local, domain) = (&b[..at], &b[at + 1..]);
    if local.is_empty() || local.len() > 64 || !is_class(local, LOCAL) {
        return false;
    }
    // Labels in one pass: each ends at a dot or at the end.
    let mut start = 0;
    let mut labels = 0;
    for i in 0..=domain.len() {
        match domain.get(i) {
            Some(b'.') | None => {
                let l = &domain[start..i];
                if l.is_empty() || l.len() > 63 || l[0] == b'-' || l[l.len() - 1] == b'-' {
                    return false;
                }
                labels += 1;
                if i < domain.len() {
                    start = i + 1;
                }
            }
            Some(&c) if CLASS[usize::from(c)] & LABEL == 0 => return false,
            Some(_) => {}
        }
    }
    let last = &domain[start..];
    labels >= 2 && (2..=24).contains(&last.len()) && is_class(last, ALPHA)
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
    if padded && !b.len().is_multiple_of(4) {
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
    !(std && url) && upper && lower && digit && (padded || std || body.len().is_multiple_of(4))
}

/// A decimal integer without a superfluous leading zero or sign.
fn plain_integer(s: &[u8]) -> bool {
    let d = s.strip_prefix(b"-").unwrap_or(s);
    let leading_zero = d.len() > 1 && d[0] == b'0';
    let minus_zero = s[0] == b'-' && d == b"0";
    !d.is_empty() && d.iter().all(u8::is_ascii_digit) && !leading_zero && !minus_zero
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
pub fn categorize(b: &[u8]) -> Prim {
    if let Some(v) = scalar_of(b) {
        return Prim::new(v);
    }
    match std::str::from_utf8(b) {
        Ok(s) => string_primitive(CompactString::from(s)),
        Err(_) => Prim::new(Scalar::Bytes(b.to_vec())),
    }
}

/// The non-string scalar `b` spells, if any.
fn scalar_of(b: &[u8]) -> Option<Scalar> {
    let first = *b.first()?;
    if first.is_ascii_digit() || first == b'-' {
        if plain_integer(b) {
            // ASCII digits: the parse cannot see anything but digits and a sign.
            let s = std::str::from_utf8(b).ok()?;
            if let Ok(v) = s.parse::<i64>() {
                return Some(Scalar::I64(v));
            }
            if let Ok(v) = s.parse::<u64>() {
                return Some(Scalar::U64(v));
            }
            return None;
        }
        if plain_double(b) {
            let v: f64 = std::str::from_utf8(b).ok()?.parse().ok()?;
            if v.is_finite() {
                return Some(Scalar::F64(v));
            }
        }
        return None;
    }
    if b.len() == 4 && b.eq_ignore_ascii_case(b"true") {
        return Some(Scalar::Bool(true));
    }
    if b.len() == 5 && b.eq_ignore_ascii_case(b"false") {
        return Some(Scalar::Bool(false));
    }
    None
}

/// A string primitive with its format, if detected.
pub fn string_primitive(s: CompactString) -> Prim {
    let format = detect(&s);
    Prim { val: Scalar::Str(s), format, sensitive: false }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kind(s: &str) -> &'static str {
        match categorize(s.as_bytes()).val {
            Scalar::I64(_) => "int64",
            Scalar::U64(_) => "uint64",
            Scalar::F64(_) => "double",
            Scalar::Bool(_) => "bool",
            Scalar::Str(_) => "string",
            Scalar::Bytes(_) => "bytes",
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
        assert_eq!(categorize(b"\xff\x00").val, Scalar::Bytes(vec![0xff, 0]));
        assert_eq!(categorize(b"9223372036854775808").val, Scalar::U64(9_223_372_036_854_775_808));
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
            ("a@b.c", None),
            ("a b@x.org", None),
            ("x@-a.org", None),
            ("x@a.abcdefghijklmnopqrstuvwx", Some(EMAIL)),
            ("x@a.abcdefghijklmnopqrstuvwxy", None),
            ("x@a-.org", None),
            ("x@a..org", None),
            ("ftp://files.example.org", Some(URL)),
            ("mailto://", None),
            ("https://user@host/x y", None),
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
            assert_eq!(detect(s), f.as_ref(), "{s:?}");
        }
    }

    /// The checks as first written, one pass per condition: the oracle for the one-pass ones.
    fn is_url_reference(b: &[u8]) -> bool {
        let Some(p) = b.iter().take(6).position(|&c| c == b':') else { return false };
        if !b[p..].starts_with(b"://") {
            return false;
        }
        let scheme = &b[..p];
        let known = [&b"http"[..], b"https", b"ws", b"wss", b"ftp"].iter().any(|k| scheme.eq_ignore_ascii_case(k));
        let rest = &b[p + 3..];
        let auth_end = rest.iter().position(|&c| matches!(c, b'/' | b'?' | b'#')).unwrap_or(rest.len());
        let authority = &rest[..auth_end];
        known
            && !authority.is_empty()
            && authority.iter().all(|&c| c > b' ' && c != 0x7f)
            && authority.iter().filter(|&&c| c == b'@').count() <= 1
            && !authority.ends_with(b"@")
            && rest.iter().all(|&c| c > b' ' && c != 0x7f)
    }

    fn is_email_reference(b: &[u8]) -> bool {
        let Some(at) = b.iter().position(|&c| c == b'@') else { return false };
        let (local, domain) = (&b[..at], &b[at + 1..]);
        if local.is_empty() || local.len() > 64 || !local.iter().all(|&c| c.is_ascii_alphanumeric() || b"._%+-".contains(&c)) {
            return false;
        }
        let mut labels = 0;
        let mut last: &[u8] = &[];
        for l in domain.split(|&c| c == b'.') {
            let ok = !l.is_empty()
                && l.len() <= 63
                && l.iter().all(|&c| c.is_ascii_alphanumeric() || c == b'-')
                && l[0] != b'-'
                && l[l.len() - 1] != b'-';
            if !ok {
                return false;
            }
            labels += 1;
            last = l;
        }
        labels >= 2 && (2..=24).contains(&last.len()) && last.iter().all(u8::is_ascii_alphabetic)
    }

    fn pieces(alphabet: &'static [&'static str], n: usize) -> impl proptest::strategy::Strategy<Value = String> {
        use proptest::prelude::*;
        proptest::collection::vec(proptest::sample::select(alphabet), 0..n).prop_map(|v| v.concat())
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(3000))]
        #[test]
        fn one_pass_url_check_agrees_with_the_reference(
            scheme in proptest::sample::select(vec!["http", "HTTPS", "ws", "Wss", "ftp", "mailto", "htp", ""]),
            sep in proptest::sample::select(vec!["://", ":/", ":"]),
            rest in pieces(&["a", "9", "@", ".", "/", "?", "#", ":", " ", "\u{7f}", "\u{1}", "é", "-"], 8),
        ) {
            let s = format!("{scheme}{sep}{rest}");
            proptest::prop_assert_eq!(is_url(s.as_bytes()), is_url_reference(s.as_bytes()), "{:?}", s);
        }

        #[test]
        fn one_pass_email_check_agrees_with_the_reference(
            local in pieces(&["a", "Z", "9", ".", "_", "%", "+", "-", " ", "é", "@"], 6),
            domain in pieces(&["a", "com", "9", "-", ".", ".", "_", "@", "é"], 8),
        ) {
            let s = format!("{local}@{domain}");
            proptest::prop_assert_eq!(is_email(s.as_bytes()), is_email_reference(s.as_bytes()), "{:?}", s);
        }
    }

    #[test]
    fn string_primitives_carry_their_format() {
        let p = categorize(b"2024-02-29T10:33:00Z").to_pb();
        assert_eq!(p.format_kind, "datetime");
        assert_eq!(p.formats.get("rfc_3339"), Some(&true));
        let p = categorize(b"plain").to_pb();
        assert!(p.formats.is_empty() && p.format_kind.is_empty());
    }
}
