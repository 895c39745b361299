//! Parsing the head of an HTTP/1.x message (start line and header fields).
//!
//! Contract: [`parse`] takes the complete head (through the blank line) and returns an owned
//! [`Head`] that keeps the raw bytes once and refers to its parts by offsets. Strict parsing is
//! httparse's; when httparse refuses a head that a real peer would still have acted on (spaces
//! in the target, HTTP/0.9, obs-fold, a stray byte in a header name, too many headers for the
//! stack buffer), a lenient parser keeps what it can and says why in [`Head::lenient`].
//! Helpers find the end of a head and recognise message starts for resynchronisation.

use std::mem::MaybeUninit;

use memchr::memmem;

/// A byte range inside [`Head::raw`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Span {
    pub start: u32,
    pub end: u32,
}

impl Span {
    fn of(base: &[u8], part: &[u8]) -> Span {
        let start = (part.as_ptr() as usize).saturating_sub(base.as_ptr() as usize) as u32;
        Span { start, end: start + part.len() as u32 }
    }
    pub fn is_empty(&self) -> bool {
        self.start == self.end
    }
}

/// The start line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StartLine {
    Request { method: Span, target: Span, version: Span },
    Response { version: Span, status: u16, reason: Span },
}

/// A parsed message head.
#[derive(Clone, Debug)]
pub struct Head {
    /// The head's bytes as on the wire, through the blank line.
    pub raw: Vec<u8>,
    pub line: StartLine,
    pub headers: Vec<(Span, Span)>,
    /// Why strict parsing failed, when the lenient parser was used.
    pub lenient: Option<&'static str>,
    /// Header lines that were dropped (no colon, empty name).
    pub dropped_lines: u32,
}

/// Why a head could not be parsed at all.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HeadError {
    /// The start line is not a request (or response) line.
    StartLine,
    /// More header fields than the limit.
    TooManyHeaders,
}

impl Head {
    pub fn get(&self, s: Span) -> &[u8] {
        &self.raw[s.start as usize..s.end as usize]
    }

    pub fn method(&self) -> &[u8] {
        match self.line {
            StartLine::Request { method, .. } => self.get(method),
            StartLine::Response { .. } => b"",
        }
    }

    pub fn target(&self) -> &[u8] {
        match self.line {
            StartLine::Request { target, .. } => self.get(target),
            StartLine::Response { .. } => b"",
        }
    }

    pub fn version(&self) -> &[u8] {
        match self.line {
            StartLine::Request { version, .. } | StartLine::Response { version, .. } => self.get(version),
        }
    }

    pub fn status(&self) -> u16 {
        match self.line {
            StartLine::Response { status, .. } => status,
            StartLine::Request { .. } => 0,
        }
    }

    pub fn reason(&self) -> &[u8] {
        match self.line {
            StartLine::Response { reason, .. } => self.get(reason),
            StartLine::Request { .. } => b"",
        }
    }

    /// HTTP/1.0 (or older).
    pub fn is_http10(&self) -> bool {
        let v = self.version();
        v.is_empty() || v.eq_ignore_ascii_case(b"HTTP/1.0") || v.eq_ignore_ascii_case(b"HTTP/0.9")
    }

    /// Header fields as (name, value) byte slices, in wire order.
    pub fn fields(&self) -> impl Iterator<Item = (&[u8], &[u8])> + '_ {
        self.headers.iter().map(move |&(n, v)| (self.get(n), self.get(v)))
    }

    /// The first value of a header field (name compared case-insensitively).
    pub fn field(&self, name: &str) -> Option<&[u8]> {
        self.fields().find(|(n, _)| n.eq_ignore_ascii_case(name.as_bytes())).map(|(_, v)| v)
    }

    /// Every value of a header field.
    pub fn field_all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a [u8]> + 'a {
        self.fields().filter(move |(n, _)| n.eq_ignore_ascii_case(name.as_bytes())).map(|(_, v)| v)
    }

    /// Whether a comma-separated header field holds `token`.
    pub fn field_has_token(&self, name: &str, token: &str) -> bool {
        self.field_all(name).any(|v| v.split(|&c| c == b',').any(|t| super::decode::trim(t).eq_ignore_ascii_case(token.as_bytes())))
    }
}

/// Stack room for httparse; heads with more fields go to the lenient parser.
const STRICT_HEADERS: usize = 96;

/// Parses a complete head. `max_headers` bounds the number of fields.
pub fn parse(raw: Vec<u8>, request: bool, max_headers: usize) -> Result<Head, HeadError> {
    match parse_strict(&raw, request) {
        Ok((line, headers)) => {
            if headers.len() > max_headers {
                return Err(HeadError::TooManyHeaders);
            }
            Ok(Head { raw, line, headers, lenient: None, dropped_lines: 0 })
        }
        Err(why) => {
            let ((line, headers), dropped) = parse_lenient(&raw, request, max_headers)?;
            Ok(Head { raw, line, headers, lenient: Some(why), dropped_lines: dropped })
        }
    }
}

type Parsed = (StartLine, Vec<(Span, Span)>);

fn parse_strict(raw: &[u8], request: bool) -> Result<Parsed, &'static str> {
    let mut storage: [MaybeUninit<httparse::Header<'_>>; STRICT_HEADERS] = [const { MaybeUninit::uninit() }; STRICT_HEADERS];
    let mut config = httparse::ParserConfig::default();
    config
        .allow_spaces_after_header_name_in_responses(true)
        .allow_multiple_spaces_in_request_line_delimiters(true)
        .allow_multiple_spaces_in_response_status_delimiters(true);
    let describe = |e: httparse::Error| match e {
        httparse::Error::HeaderName => "invalid header name",
        httparse::Error::HeaderValue => "invalid header value",
        httparse::Error::NewLine => "invalid line ending",
        httparse::Error::Status => "invalid status",
        httparse::Error::Token => "invalid token",
        httparse::Error::TooManyHeaders => "many header fields",
        httparse::Error::Version => "unusual version",
    };
    if request {
        let mut req = httparse::Request::new(&mut []);
        match config.parse_request_with_uninit_headers(&mut req, raw, &mut storage) {
            Ok(httparse::Status::Complete(_)) => {}
            Ok(httparse::Status::Partial) => return Err("incomplete head"),
            Err(e) => return Err(describe(e)),
        }
        let method = req.method.unwrap_or("");
        let target = req.path.unwrap_or("");
        // httparse returns the version as a number; find its text after the target.
        let after = Span::of(raw, target.as_bytes()).end as usize;
        let version = find_version(raw, after);
        let headers = req.headers.iter().map(|h| (Span::of(raw, h.name.as_bytes()), Span::of(raw, h.value))).collect();
        Ok((StartLine::Request { method: Span::of(raw, method.as_bytes()), target: Span::of(raw, target.as_bytes()), version }, headers))
    } else {
        let mut resp = httparse::Response::new(&mut []);
        match config.parse_response_with_uninit_headers(&mut resp, raw, &mut storage) {
            Ok(httparse::Status::Complete(_)) => {}
            Ok(httparse::Status::Partial) => return Err("incomplete head"),
            Err(e) => return Err(describe(e)),
        }
        let reason = resp.reason.unwrap_or("");
        let start = raw.iter().position(|&c| c != b'\r' && c != b'\n').unwrap_or(0);
        let version = Span { start: start as u32, end: start as u32 + 8 };
        let reason_span = if reason.is_empty() { Span { start: version.end, end: version.end } } else { Span::of(raw, reason.as_bytes()) };
        let headers = resp.headers.iter().map(|h| (Span::of(raw, h.name.as_bytes()), Span::of(raw, h.value))).collect();
        Ok((StartLine::Response { version, status: resp.code.unwrap_or(0), reason: reason_span }, headers))
    }
}

fn find_version(raw: &[u8], from: usize) -> Span {
    let line_end = raw[from..].iter().position(|&c| c == b'\r' || c == b'\n').map_or(raw.len(), |p| from + p);
    let s = raw[from..line_end].iter().position(|&c| c != b' ' && c != b'\t').map_or(line_end, |p| from + p);
    Span { start: s as u32, end: line_end as u32 }
}

/// Splits `raw` into lines (without their CRLF or LF), with each line's offset.
fn lines(raw: &[u8]) -> impl Iterator<Item = (usize, &[u8])> {
    let mut pos = 0;
    std::iter::from_fn(move || {
        if pos >= raw.len() {
            return None;
        }
        let start = pos;
        let end = memchr::memchr(b'\n', &raw[pos..]).map_or(raw.len(), |p| pos + p);
        pos = end + 1;
        let mut line = &raw[start..end];
        if line.last() == Some(&b'\r') {
            line = &line[..line.len() - 1];
        }
        Some((start, line))
    })
}

pub(crate) fn is_tchar(c: u8) -> bool {
    c.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&c)
}

fn is_ws(c: u8) -> bool {
    c == b' ' || c == b'\t'
}

fn parse_lenient(raw: &[u8], request: bool, max_headers: usize) -> Result<(Parsed, u32), HeadError> {
    let mut it = lines(raw).skip_while(|(_, l)| l.is_empty());
    let (off, first) = it.next().ok_or(HeadError::StartLine)?;
    let line = if request { request_line(first, off)? } else { status_line(first, off)? };
    let mut headers: Vec<(Span, Span)> = Vec::new();
    let mut dropped = 0;
    for (off, l) in it {
        if l.is_empty() {
            break;
        }
        if is_ws(l[0]) {
            // obs-fold: the line continues the previous field's value.
            if let Some(last) = headers.last_mut() {
                let end = off + l.len();
                if last.1.is_empty() {
                    let s = l.iter().position(|&c| !is_ws(c)).unwrap_or(l.len());
                    last.1 = Span { start: (off + s) as u32, end: end as u32 };
                } else {
                    last.1.end = end as u32;
                }
            } else {
                dropped += 1;
            }
            continue;
        }
        let Some(colon) = l.iter().position(|&c| c == b':') else {
            dropped += 1;
            continue;
        };
        let name_end = l[..colon].iter().rposition(|&c| !is_ws(c)).map_or(0, |p| p + 1);
        if name_end == 0 {
            dropped += 1;
            continue;
        }
        let vs = l[colon + 1..].iter().position(|&c| !is_ws(c)).map_or(l.len(), |p| colon + 1 + p);
        let ve = l.iter().rposition(|&c| !is_ws(c)).map_or(vs, |p| (p + 1).max(vs));
        if headers.len() >= max_headers {
            return Err(HeadError::TooManyHeaders);
        }
        headers.push((Span { start: off as u32, end: (off + name_end) as u32 }, Span { start: (off + vs) as u32, end: (off + ve) as u32 }));
    }
    Ok(((line, headers), dropped))
}

fn request_line(l: &[u8], off: usize) -> Result<StartLine, HeadError> {
    let Some(m_end) = l.iter().position(|&c| is_ws(c)) else {
        // A bare method (no target, no version), as some broken clients send: keep it when it
        // is an upper-case token.
        if !l.is_empty() && l.len() <= 20 && l.iter().all(|c| c.is_ascii_uppercase()) {
            let end = Span { start: (off + l.len()) as u32, end: (off + l.len()) as u32 };
            return Ok(StartLine::Request { method: Span { start: off as u32, end: end.start }, target: end, version: end });
        }
        return Err(HeadError::StartLine);
    };
    if m_end == 0 || !l[..m_end].iter().all(|&c| is_tchar(c)) {
        return Err(HeadError::StartLine);
    }
    let rest_start = l[m_end..].iter().position(|&c| !is_ws(c)).map_or(l.len(), |p| m_end + p);
    let rest_end = l.iter().rposition(|&c| !is_ws(c)).map_or(rest_start, |p| p + 1).max(rest_start);
    let rest = &l[rest_start..rest_end];
    if rest.is_empty() {
        return Err(HeadError::StartLine);
    }
    // The version is the last word when it looks like one. The target is the first word (as
    // tshark and most servers read it); words between it and the version are dropped.
    let t_end = rest.iter().position(|&c| is_ws(c)).unwrap_or(rest.len());
    let (target, version) = match rest.iter().rposition(|&c| is_ws(c)) {
        Some(sp) if rest[sp + 1..].starts_with(b"HTTP/") => ((rest_start, rest_start + t_end), (rest_start + sp + 1, rest_end)),
        _ => ((rest_start, rest_start + t_end), (rest_end, rest_end)),
    };
    let sp = |(s, e): (usize, usize)| Span { start: (off + s) as u32, end: (off + e) as u32 };
    Ok(StartLine::Request { method: sp((0, m_end)), target: sp(target), version: sp(version) })
}

fn status_line(l: &[u8], off: usize) -> Result<StartLine, HeadError> {
    if !l.starts_with(b"HTTP/") {
        return Err(HeadError::StartLine);
    }
    let v_end = l.iter().position(|&c| is_ws(c)).unwrap_or(l.len());
    let s_start = l[v_end..].iter().position(|&c| !is_ws(c)).map_or(l.len(), |p| v_end + p);
    let digits = &l[s_start..];
    if digits.len() < 3 || !digits[..3].iter().all(u8::is_ascii_digit) || digits.get(3).is_some_and(|c| c.is_ascii_digit()) {
        return Err(HeadError::StartLine);
    }
    let status = (digits[0] - b'0') as u16 * 100 + (digits[1] - b'0') as u16 * 10 + (digits[2] - b'0') as u16;
    let r_start = l[s_start + 3..].iter().position(|&c| !is_ws(c)).map_or(l.len(), |p| s_start + 3 + p);
    let sp = |s: usize, e: usize| Span { start: (off + s) as u32, end: (off + e) as u32 };
    Ok(StartLine::Response { version: sp(0, v_end), status, reason: sp(r_start, l.len().max(r_start)) })
}

/// Where the head that starts at `buf[0]` ends (just past its blank line), searching from
/// `from` (bytes before it were searched already).
pub fn find_end(buf: &[u8], from: usize) -> Option<usize> {
    let from = from.saturating_sub(3);
    let mut pos = from;
    while let Some(p) = memchr::memchr(b'\n', &buf[pos..]) {
        let nl = pos + p;
        // The first line can't end the head: a head's blank line comes after the start line.
        match buf.get(nl + 1) {
            Some(b'\n') if nl > 0 => return Some(nl + 2),
            Some(b'\r') if buf.get(nl + 2) == Some(&b'\n') => return Some(nl + 3),
            None => return None,
            _ => pos = nl + 1,
        }
    }
    None
}

/// What the start of a stream suggests.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Looks {
    Request,
    Response,
    /// Too few bytes to tell.
    Unsure,
    Neither,
}

/// Whether `b` starts like an HTTP/1.x request or response.
pub fn sniff(b: &[u8]) -> Looks {
    let b = &b[b.iter().position(|&c| c != b'\r' && c != b'\n').unwrap_or(b.len())..];
    if b.is_empty() {
        return Looks::Unsure;
    }
    let n = b.len().min(5);
    if b[..n] == b"HTTP/"[..n] {
        return if n == 5 { Looks::Response } else { Looks::Unsure };
    }
    // A method token, then a space.
    for (i, &c) in b.iter().enumerate().take(24) {
        if c == b' ' {
            return if i > 0 { Looks::Request } else { Looks::Neither };
        }
        if !is_tchar(c) {
            return Looks::Neither;
        }
    }
    if b.len() < 24 { Looks::Unsure } else { Looks::Neither }
}

/// Whether `b` starts with a complete request line (`METHOD target HTTP/x.y`) or status line:
/// stricter than [`sniff`], for deciding which side of a connection is the client.
pub fn first_line_kind(b: &[u8]) -> Looks {
    let b = &b[b.iter().position(|&c| c != b'\r' && c != b'\n').unwrap_or(b.len())..];
    let Some(nl) = memchr::memchr(b'\n', &b[..b.len().min(16 << 10)]) else {
        return Looks::Unsure;
    };
    let line = trim_cr(&b[..nl]);
    if status_line(line, 0).is_ok() {
        return Looks::Response;
    }
    match request_line(line, 0) {
        Ok(StartLine::Request { version, .. }) if !version.is_empty() => Looks::Request,
        _ => Looks::Neither,
    }
}

/// Finds the next plausible message start in `buf` at or after `from`, for resynchronising
/// after a gap: a line that starts with `HTTP/1.x DDD` (responses), or `TOKEN SP ... HTTP/1.x`
/// (requests). Returns its offset. `at_line_start` says whether `buf[0]` begins a line.
pub fn find_message_start(buf: &[u8], from: usize, request: bool, at_line_start: bool) -> Option<usize> {
    let finder = memmem::Finder::new(b"HTTP/1.");
    let mut pos = from;
    while pos < buf.len() {
        let hit = pos + finder.find(&buf[pos..])?;
        if request {
            // The version ends a request line: walk back to the line start.
            let ls = buf[..hit].iter().rposition(|&c| c == b'\n').map(|p| p + 1);
            let ls = match ls {
                Some(p) => Some(p),
                None if at_line_start => Some(0),
                None => None,
            };
            let le = line_end(buf, hit);
            if let Some(ls) = ls
                && ls >= from.min(ls)
                && hit > ls
                && request_line(trim_cr(&buf[ls..le]), 0).is_ok()
                && is_method_like(&buf[ls..hit])
            {
                return Some(ls);
            }
            // The answer is the same for every later hit on this line (its method token is
            // what precedes the first space, which must come before a hit): go on at the next
            // line. Looking at each hit would walk back over the line once per hit, quadratic
            // in a line full of "HTTP/1.".
            pos = le + 1;
            continue;
        } else {
            let line_start = hit == 0 && at_line_start || hit > 0 && buf[hit - 1] == b'\n';
            if line_start {
                let rest = &buf[hit..];
                if rest.len() < 12 {
                    return None; // maybe; wait for more bytes
                }
                if rest[8] == b' ' && rest[9..12].iter().all(u8::is_ascii_digit) {
                    return Some(hit);
                }
            }
        }
        pos = hit + 1;
    }
    None
}

fn line_end(buf: &[u8], from: usize) -> usize {
    memchr::memchr(b'\n', &buf[from..]).map_or(buf.len(), |p| from + p)
}

fn trim_cr(l: &[u8]) -> &[u8] {
    l.strip_suffix(b"\r").unwrap_or(l)
}

/// A request line worth resynchronising on: an upper-case method of letters.
fn is_method_like(line: &[u8]) -> bool {
    let m = line.iter().position(|&c| c == b' ').unwrap_or(0);
    m > 0 && m <= 20 && line[..m].iter().all(|c| c.is_ascii_uppercase() || *c == b'-' || *c == b'_')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(s: &str) -> Head {
        parse(s.as_bytes().to_vec(), true, 100).unwrap()
    }

    #[test]
    fn strict_request_and_response() {
        let h = req("GET /a?b=c HTTP/1.1\r\nHost: x\r\nAccept:  */* \r\n\r\n");
        assert_eq!(h.method(), b"GET");
        assert_eq!(h.target(), b"/a?b=c");
        assert_eq!(h.version(), b"HTTP/1.1");
        assert_eq!(h.field("host"), Some(&b"x"[..]));
        assert_eq!(h.field("ACCEPT"), Some(&b"*/*"[..]));
        assert!(h.lenient.is_none());
        let r = parse(b"HTTP/1.0 404 Not Found\r\nA: b\r\n\r\n".to_vec(), false, 100).unwrap();
        assert_eq!((r.status(), r.reason(), r.version()), (404, &b"Not Found"[..], &b"HTTP/1.0"[..]));
        assert!(r.is_http10());
        let r = parse(b"HTTP/1.1 204\r\n\r\n".to_vec(), false, 100).unwrap();
        assert_eq!((r.status(), r.reason()), (204, &b""[..]));
    }

    #[test]
    fn lenient_cases() {
        let h = req("GET /a b HTTP/1.1\r\nHost: x\r\n\r\n");
        assert_eq!(h.target(), b"/a");
        assert_eq!(h.version(), b"HTTP/1.1");
        assert!(h.lenient.is_some());
        let h = req("GET /old\r\n\r\n");
        assert_eq!((h.target(), h.version()), (&b"/old"[..], &b""[..]));
        let h = req("POST / HTTP/1.1\r\nX-Long: a\r\n  b\r\nBad Line\r\nHost: y\r\n\r\n");
        assert_eq!(h.field("x-long"), Some(&b"a\r\n  b"[..]));
        assert_eq!(h.field("host"), Some(&b"y"[..]));
        assert_eq!(h.dropped_lines, 1);
        let h = req("GET / HTTP/1.1\nHost: lf-only\n\n");
        assert_eq!(h.field("host"), Some(&b"lf-only"[..]));
        let many: String = (0..200).map(|i| format!("H{i}: v\r\n")).collect();
        let h = parse(format!("GET / HTTP/1.1\r\n{many}\r\n").into_bytes(), true, 1000).unwrap();
        assert_eq!(h.headers.len(), 200);
        assert_eq!(parse(format!("GET / HTTP/1.1\r\n{many}\r\n").into_bytes(), true, 50).unwrap_err(), HeadError::TooManyHeaders);
        assert_eq!(parse(b"\x16\x03\x01 junk\r\n\r\n".to_vec(), true, 10).unwrap_err(), HeadError::StartLine);
        assert_eq!(parse(b"HTTP/1.1 2000 OK\r\n\r\n".to_vec(), false, 10).unwrap_err(), HeadError::StartLine);
    }

    #[test]
    fn head_end_at_every_split() {
        for msg in [&b"GET / HTTP/1.1\r\nA: b\r\n\r\nBODY"[..], b"GET / HTTP/1.1\nA: b\n\nBODY"] {
            let end = msg.len() - 4;
            for cut in 0..msg.len() {
                let got = find_end(&msg[..cut], 0);
                if cut < end {
                    assert_eq!(got, None, "cut {cut}");
                }
                // Searching incrementally from any earlier point finds the same end.
                for from in 0..=cut {
                    let g = find_end(&msg[..cut], from);
                    assert!(g.is_none() || g == Some(end), "cut {cut} from {from}");
                }
            }
            assert_eq!(find_end(msg, 0), Some(end));
        }
    }

    #[test]
    fn sniffing_and_resync() {
        assert_eq!(sniff(b"GET / HTTP/1.1"), Looks::Request);
        assert_eq!(sniff(b"\r\nM-SEARCH * HTTP/1.1"), Looks::Request);
        assert_eq!(sniff(b"HTTP/1.1 200"), Looks::Response);
        assert_eq!(sniff(b"HTT"), Looks::Unsure);
        assert_eq!(sniff(b"\x16\x03\x01\x02"), Looks::Neither);
        let junk = b"xx\r\nmore junk HTTP/1.1 nope\r\nGET /next HTTP/1.1\r\nHost: a\r\n\r\n";
        let p = find_message_start(junk, 0, true, false).unwrap();
        assert!(junk[p..].starts_with(b"GET /next"));
        let junk = b"body bytes HTTP/1.1 200 in text\r\nHTTP/1.1 304 Not Modified\r\n\r\n";
        let p = find_message_start(junk, 0, false, false).unwrap();
        assert!(junk[p..].starts_with(b"HTTP/1.1 304"));
        assert_eq!(find_message_start(b"HTTP/1.1 200 OK\r\n", 0, false, true), Some(0));
        assert_eq!(find_message_start(b"HTTP/1.1 200 OK\r\n", 0, false, false), None);
    }

    #[test]
    fn resync_search_is_linear_in_a_line_full_of_versions() {
        // 64 KiB with a version every 7 bytes and no line end: each candidate line is looked at
        // once, not once per version in it (that took seconds per segment).
        let mut buf = b"x\n".to_vec();
        buf.extend(b"HTTP/1.".repeat(9_400));
        let t = std::time::Instant::now();
        assert_eq!(find_message_start(&buf, 0, true, false), None);
        assert_eq!(find_message_start(&buf, 0, true, true), None);
        let mut line = buf.clone();
        line.extend(b"\nGET / HTTP/1.1\r\n");
        assert_eq!(find_message_start(&line, 0, true, false), Some(buf.len() + 1));
        assert!(t.elapsed() < std::time::Duration::from_secs(2), "{:?}", t.elapsed());
    }
}
