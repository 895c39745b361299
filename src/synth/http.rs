//! The HTTP side of the traffic model: a pool of pre-generated (and
//! pre-compressed) bodies, and the composition of one request/response
//! exchange into a connection's payload arena.
//!
//! Bodies come from a seeded pool built once per run: each JSON response
//! body is stored plain, gzip'd (level 1) and brotli'd (quality 1) with its
//! SHA-256, so the per-exchange cost is a copy and some header formatting,
//! never a compression or a digest.

use std::fmt::Write as _;
use std::io::Write;
use std::ops::Range;

use sha2::{Digest, Sha256};

use super::rng::Rng;

/// SHA-256 of `data`.
pub fn sha256(data: &[u8]) -> [u8; 32] {
    Sha256::digest(data).into()
}

/// A body and its digest.
#[derive(Clone, Debug)]
pub struct Body {
    pub data: Vec<u8>,
    pub sha256: [u8; 32],
}

impl Body {
    pub fn new(data: Vec<u8>) -> Body {
        let sha256 = sha256(&data);
        Body { data, sha256 }
    }
}

/// A response body with its encoded forms.
#[derive(Clone, Debug)]
pub struct EncodedBody {
    pub plain: Body,
    pub gzip: Vec<u8>,
    pub br: Vec<u8>,
    /// Strong validator derived from the digest.
    pub etag: String,
}

impl EncodedBody {
    pub fn new(data: Vec<u8>) -> EncodedBody {
        let gzip = gzip_fast(&data);
        let br = brotli_fast(&data);
        let plain = Body::new(data);
        let etag = hex(&plain.sha256[..8]);
        EncodedBody { plain, gzip, br, etag }
    }
}

/// gzip at level 1.
pub fn gzip_fast(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::with_capacity(data.len() / 3 + 64), flate2::Compression::fast());
    e.write_all(data).expect("writing to a Vec");
    e.finish().expect("writing to a Vec")
}

/// brotli at quality 1, 4 MiB window.
pub fn brotli_fast(data: &[u8]) -> Vec<u8> {
    let mut w = brotli::CompressorWriter::new(Vec::with_capacity(data.len() / 3 + 64), 4096, 1, 22);
    w.write_all(data).expect("writing to a Vec");
    w.into_inner()
}

/// Lowercase hex.
pub fn hex(b: &[u8]) -> String {
    let mut s = String::with_capacity(b.len() * 2);
    for x in b {
        let _ = write!(s, "{x:02x}");
    }
    s
}

const FIRST: &[&str] = &[
    "alice", "bob", "carol", "dave", "erin", "frank", "grace", "heidi", "ivan", "judy", "mallory", "niaj", "olivia", "peggy", "rupert",
    "sybil", "trent", "victor", "walter", "yuki", "zoé", "łukasz", "sérgio", "ana",
];
const LAST: &[&str] = &[
    "martin", "bernard", "dubois", "thomas", "robert", "richard", "petit", "durand", "leroy", "moreau", "simon", "laurent", "lefebvre",
    "michel", "garcia", "müller", "schmidt", "rossi", "tanaka", "nguyen", "kowalski", "o'brien",
];
const CITIES: &[&str] =
    &["Lyon", "Paris", "Berlin", "München", "Kraków", "Osaka", "São Paulo", "Toronto", "Nairobi", "Austin", "Zürich", "Dublin"];
const TAGS: &[&str] = &["admin", "editor", "viewer", "billing", "beta", "staff", "support", "api", "legacy", "trial"];
const WORDS: &[&str] = &[
    "lorem",
    "ipsum",
    "dolor",
    "sit",
    "amet",
    "consectetur",
    "adipiscing",
    "elit",
    "sed",
    "do",
    "eiusmod",
    "tempor",
    "incididunt",
    "ut",
    "labore",
    "et",
    "dolore",
    "magna",
    "aliqua",
    "quote\"d",
    "tab\there",
    "line\nbreak",
    "back\\slash",
    "emoji 🚀",
];

fn pick<'a>(rng: &mut Rng, xs: &[&'a str]) -> &'a str {
    xs[rng.below(xs.len() as u64) as usize]
}

/// Appends `s` as a JSON string literal.
fn json_str(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// Formats a Unix time as RFC 3339 (UTC).
fn rfc3339(out: &mut String, secs: u64) {
    let (y, m, d, hh, mm, ss, _) = civil(secs);
    let _ = write!(out, "{y:04}-{m:02}-{d:02}T{hh:02}:{mm:02}:{ss:02}Z");
}

/// (year, month, day, hour, minute, second, weekday 0=Sunday) of a Unix time.
fn civil(secs: u64) -> (u64, u64, u64, u64, u64, u64, u64) {
    let days = secs / 86_400;
    let rem = secs % 86_400;
    let wd = (days + 4) % 7;
    // Howard Hinnant's civil_from_days, for days >= 0.
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = if m <= 2 { y + 1 } else { y };
    (y, m, d, rem / 3600, rem % 3600 / 60, rem % 60, wd)
}

/// Appends an IMF-fixdate (HTTP `Date`).
pub fn http_date(out: &mut Vec<u8>, secs: u64) {
    const WD: [&str; 7] = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"];
    const MO: [&str; 12] = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
    let (y, m, d, hh, mm, ss, wd) = civil(secs);
    let _ = write!(out, "{}, {d:02} {} {y} {hh:02}:{mm:02}:{ss:02} GMT", WD[wd as usize], MO[(m - 1) as usize]);
}

fn json_user(out: &mut String, rng: &mut Rng, id: u64) {
    let first = pick(rng, FIRST);
    let last = pick(rng, LAST);
    let _ = write!(out, "{{\"id\":{id},\"name\":");
    json_str(out, &format!("{first} {last}"));
    out.push_str(",\"email\":");
    json_str(out, &format!("{first}.{last}{}@example.com", rng.below(100)));
    out.push_str(",\"created_at\":\"");
    rfc3339(out, 1_500_000_000 + rng.below(200_000_000));
    let _ = write!(out, "\",\"active\":{},\"roles\":[", if rng.below(4) == 0 { "false" } else { "true" });
    for i in 0..rng.range(1, 3) {
        if i > 0 {
            out.push(',');
        }
        json_str(out, pick(rng, TAGS));
    }
    out.push_str("],\"address\":{\"city\":");
    json_str(out, pick(rng, CITIES));
    let _ = write!(
        out,
        ",\"zip\":\"{:05}\"}},\"score\":{}.{:02},\"avatar\":\"https://cdn.example.com/a/{:016x}.png\",\"bio\":",
        rng.below(100_000),
        rng.below(1000),
        rng.below(100),
        rng.next_u64()
    );
    let mut bio = String::new();
    for i in 0..rng.range(3, 14) {
        if i > 0 {
            bio.push(' ');
        }
        bio.push_str(pick(rng, WORDS));
    }
    json_str(out, &bio);
    out.push('}');
}

/// A JSON document of about `target` bytes: one user object when small, a
/// paginated list otherwise.
pub fn json_response(rng: &mut Rng, target: usize) -> Vec<u8> {
    let mut s = String::with_capacity(target + 512);
    if target < 600 {
        let uid = rng.range(1, 9_999_999);
        json_user(&mut s, rng, uid);
        return s.into_bytes();
    }
    s.push_str("{\"data\":[");
    let mut first = true;
    while s.len() + 80 < target {
        if !first {
            s.push(',');
        }
        first = false;
        let uid = rng.range(1, 9_999_999);
        json_user(&mut s, rng, uid);
    }
    let _ = write!(s, "],\"page\":{},\"per_page\":50,\"total\":{},\"next\":null}}", rng.range(1, 40), rng.range(50, 100_000));
    s.into_bytes()
}

/// A small JSON request body (create/update payloads).
pub fn json_request(rng: &mut Rng, target: usize) -> Vec<u8> {
    let mut s = String::with_capacity(target + 256);
    s.push_str("{\"name\":");
    json_str(&mut s, &format!("{} {}", pick(rng, FIRST), pick(rng, LAST)));
    s.push_str(",\"items\":[");
    let mut first = true;
    while s.len() + 60 < target {
        if !first {
            s.push(',');
        }
        first = false;
        let _ = write!(s, "{{\"sku\":\"SKU-{:06}\",\"qty\":{},\"note\":", rng.below(1_000_000), rng.range(1, 9));
        json_str(&mut s, pick(rng, WORDS));
        s.push('}');
    }
    let _ = write!(s, "],\"dry_run\":{}}}", rng.below(2) == 0);
    s.into_bytes()
}

fn url_encode(out: &mut String, s: &str) {
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => out.push(b as char),
            b' ' => out.push('+'),
            _ => {
                let _ = write!(out, "%{b:02X}");
            }
        }
    }
}

/// An `application/x-www-form-urlencoded` login form.
pub fn form_body(rng: &mut Rng) -> Vec<u8> {
    let mut s = String::from("username=");
    url_encode(&mut s, &format!("{}.{}", pick(rng, FIRST), pick(rng, LAST)));
    s.push_str("&password=");
    url_encode(&mut s, &format!("p@ss w0rd&{}", rng.below(1 << 20)));
    let _ = write!(s, "&remember=1&csrf_token={:016x}{:016x}&next=", rng.next_u64(), rng.next_u64());
    url_encode(&mut s, "/dashboard?tab=home&lang=fr");
    s.into_bytes()
}

/// A `multipart/form-data` body with a text field and a file part; returns
/// the boundary and the body.
pub fn multipart_body(rng: &mut Rng, file_len: usize) -> (String, Vec<u8>) {
    let boundary = format!("----apitoolBoundary{:016x}", rng.next_u64());
    let mut b = Vec::with_capacity(file_len + 512);
    let _ = write!(
        b,
        "--{boundary}\r\nContent-Disposition: form-data; name=\"description\"\r\n\r\n{} {}\r\n",
        pick(rng, WORDS),
        pick(rng, WORDS)
    );
    let _ = write!(
        b,
        "--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"upload-{}.bin\"\r\nContent-Type: application/octet-stream\r\n\r\n",
        rng.below(100_000)
    );
    let s = b.len();
    b.resize(s + file_len, 0);
    rng.fill(&mut b[s..]);
    let _ = write!(b, "\r\n--{boundary}--\r\n");
    (boundary, b)
}

/// Random bytes.
pub fn binary_body(rng: &mut Rng, len: usize) -> Vec<u8> {
    let mut b = vec![0u8; len];
    rng.fill(&mut b);
    b
}

/// The pool of pre-generated bodies a run draws from.
#[derive(Debug)]
pub struct BodyPool {
    /// Entity-sized JSON (a user, an error): 200 B - 2 KB.
    pub json_small: Vec<EncodedBody>,
    /// List-sized JSON: log-distributed from 200 B to `max_body`.
    pub json_any: Vec<EncodedBody>,
    pub req_json: Vec<Body>,
    pub forms: Vec<Body>,
    pub multipart: Vec<(String, Body)>,
    pub binary: Vec<Body>,
}

impl BodyPool {
    /// Builds a pool of about `n` JSON bodies (and proportionally fewer of
    /// the other kinds) from `seed`. Body sizes are capped at `max_body`.
    pub fn new(seed: u64, n: usize, max_body: usize) -> BodyPool {
        let n = n.max(4);
        let max_body = max_body.max(1024);
        let mut rng = Rng::new(seed);
        let json_small = (0..n / 2)
            .map(|_| {
                let t = rng.log_size(200, 500, 2048) as usize;
                EncodedBody::new(json_response(&mut rng, t))
            })
            .collect();
        let json_any = (0..n)
            .map(|_| {
                let t = rng.log_size(200, 3000, max_body as u64) as usize;
                EncodedBody::new(json_response(&mut rng, t))
            })
            .collect();
        let req_json = (0..n / 2)
            .map(|_| {
                let t = rng.log_size(60, 300, 4096) as usize;
                Body::new(json_request(&mut rng, t))
            })
            .collect();
        let forms = (0..(n / 8).max(2)).map(|_| Body::new(form_body(&mut rng))).collect();
        let multipart = (0..(n / 8).max(2))
            .map(|_| {
                let l = rng.log_size(512, 8192, (max_body / 2).max(1024) as u64) as usize;
                let (bd, b) = multipart_body(&mut rng, l);
                (bd, Body::new(b))
            })
            .collect();
        let binary = (0..(n / 4).max(2))
            .map(|_| {
                let l = rng.log_size(256, 8192, max_body as u64) as usize;
                Body::new(binary_body(&mut rng, l))
            })
            .collect();
        BodyPool { json_small, json_any, req_json, forms, multipart, binary }
    }
}

/// Big static files, as a web server holds them next to its API (only built when
/// `SynthConfig::big_share` is set): text (JSON documents and JavaScript bundles, stored plain,
/// gzip'd at level 6 and brotli'd at quality 5, as servers send them) and binaries that do not
/// compress (media, archives).
#[derive(Debug)]
pub struct BigPool {
    pub text: Vec<(&'static str, EncodedBody)>,
    pub binary: Vec<Body>,
}

impl BigPool {
    /// `n` bodies of each kind, log-distributed from 64 KiB up to the maxima; the first of each
    /// kind is the largest.
    pub fn new(seed: u64, n: usize, text_max: usize, binary_max: usize) -> BigPool {
        let mut rng = Rng::new(seed);
        let n = n.max(2);
        let text_max = text_max.max(65_536);
        let binary_max = binary_max.max(65_536);
        let text = (0..n)
            .map(|i| {
                let t = if i == 0 { text_max } else { rng.log_size(65_536, 200_000, text_max as u64) as usize };
                let (ctype, data) = if i.is_multiple_of(2) {
                    ("application/json", json_response(&mut rng, t))
                } else {
                    ("application/javascript", script_body(&mut rng, t))
                };
                let gzip = {
                    let mut e = flate2::write::GzEncoder::new(Vec::with_capacity(data.len() / 4 + 64), flate2::Compression::new(6));
                    e.write_all(&data).expect("writing to a Vec");
                    e.finish().expect("writing to a Vec")
                };
                let br = {
                    let mut w = brotli::CompressorWriter::new(Vec::with_capacity(data.len() / 4 + 64), 4096, 5, 22);
                    w.write_all(&data).expect("writing to a Vec");
                    w.into_inner()
                };
                let plain = Body::new(data);
                let etag = hex(&plain.sha256[..8]);
                (ctype, EncodedBody { plain, gzip, br, etag })
            })
            .collect();
        let binary = (0..n)
            .map(|i| {
                let l = if i == 0 { binary_max } else { rng.log_size(65_536, 400_000, binary_max as u64) as usize };
                Body::new(binary_body(&mut rng, l))
            })
            .collect();
        BigPool { text, binary }
    }
}

/// A JavaScript bundle of about `target` bytes: functions whose string literals are full of
/// escapes (quotes, backslashes, newlines, tabs), as minified bundles are.
pub fn script_body(rng: &mut Rng, target: usize) -> Vec<u8> {
    let mut s = String::with_capacity(target + 512);
    let mut i = 0u64;
    while s.len() < target {
        let name = format!("{}{}{}", pick(rng, WORDS).replace(|c: char| !c.is_ascii_alphanumeric(), ""), pick(rng, TAGS), i);
        let _ = write!(s, "function {name}(e,t){{var n=");
        json_str(&mut s, &format!("{} {} {}", pick(rng, WORDS), pick(rng, CITIES), pick(rng, WORDS)));
        let _ = write!(
            s,
            ";if(!e||typeof e!==\"object\")throw new TypeError(\"Expected \\\"{}\\\" but got \"+typeof e);\
             return t.map(function(o){{return o.{}+\"\\t\"+JSON.stringify({{k:n,v:o}})}}).join(\"\\r\\n\")}}",
            pick(rng, TAGS),
            pick(rng, TAGS)
        );
        s.push(if rng.below(2) == 0 { '\n' } else { ';' });
        i += 1;
    }
    s.into_bytes()
}

/// Composes a GET of a big static file into `arena`: one in 40 a binary, the others text,
/// always compressed (gzip, one in four br); `mix` decides chunked framing.
pub fn compose_big(rng: &mut Rng, big: &BigPool, ctx: &ConnCtx, mix: Mix, now_s: u64, close: bool, arena: &mut Vec<u8>) -> Composed {
    // One fetch in 40 is a binary: a binary is about 15 times the wire size of a compressed
    // text, so binaries make about a fifth of these bytes and compressed text the rest, as in
    // the recorded corpus.
    let binary = rng.below(40) == 0;
    let idx = rng.below(big.text.len() as u64) as usize;
    let target = if binary {
        format!("/media/{:08x}.bin", rng.next_u32())
    } else {
        format!("/static/{}-{idx}.{}", pick(rng, TAGS), if idx.is_multiple_of(2) { "json" } else { "js" })
    };
    let rs = arena.len();
    let _ = write!(
        arena,
        "GET {target} HTTP/1.1\r\nHost: {}\r\nUser-Agent: {}\r\nAccept: */*\r\nAccept-Encoding: gzip, deflate, br\r\n",
        ctx.authority(),
        ctx.user_agent
    );
    if close {
        arena.extend_from_slice(b"Connection: close\r\n");
    }
    arena.extend_from_slice(b"\r\n");
    let request = rs..arena.len();
    let ps = arena.len();
    arena.extend_from_slice(b"HTTP/1.1 200 OK\r\nServer: nginx/1.25.3\r\nDate: ");
    http_date(arena, now_s);
    arena.extend_from_slice(b"\r\nLast-Modified: Tue, 14 Nov 2023 22:13:20 GMT\r\nAccept-Ranges: bytes\r\n");
    if close {
        arena.extend_from_slice(b"Connection: close\r\n");
    }
    let chunked = rng.chance_ppm(mix.chunked_ppm);
    let mut coding = Coding::Identity;
    let (len, sha) = if binary {
        let b = &big.binary[rng.below(big.binary.len() as u64) as usize];
        arena.extend_from_slice(b"Content-Type: application/octet-stream\r\n");
        write_body_framed(arena, rng, &b.data, chunked);
        (b.data.len() as u64, b.sha256)
    } else {
        // Static servers compress text for every client that accepts it (all of them here):
        // gzip, one in four br.
        let (ctype, b) = &big.text[idx];
        let enc: &[u8] = if rng.below(4) == 0 {
            coding = Coding::Br;
            &b.br
        } else {
            coding = Coding::Gzip;
            &b.gzip
        };
        let _ = write!(arena, "Content-Type: {ctype}\r\nETag: \"{}\"\r\n", b.etag);
        if coding != Coding::Identity {
            let _ = write!(arena, "Content-Encoding: {}\r\nVary: Accept-Encoding\r\n", coding.name());
        }
        write_body_framed(arena, rng, enc, chunked);
        (b.plain.data.len() as u64, b.plain.sha256)
    };
    let response = ps..arena.len();
    Composed {
        request,
        body_split: None,
        interim: None,
        response,
        method: "GET",
        target,
        status: 200,
        req_body_len: 0,
        req_body_sha256: empty_sha256(),
        resp_body_len: len,
        resp_body_sha256: sha,
        coding,
        chunked,
        close,
    }
}

/// Writes the request and response head of a server-sent event stream into `arena`; returns
/// (request range, response head range, target).
pub fn compose_stream_head(rng: &mut Rng, ctx: &ConnCtx, now_s: u64, arena: &mut Vec<u8>) -> (Range<usize>, Range<usize>, String) {
    let target = format!("/api/v1/events/stream?topic={}&since={}", pick(rng, TAGS), rng.below(1_000_000));
    let rs = arena.len();
    let _ = write!(
        arena,
        "GET {target} HTTP/1.1\r\nHost: {}\r\nUser-Agent: {}\r\nAccept: text/event-stream\r\nCache-Control: no-cache\r\nAuthorization: Bearer {}\r\n\r\n",
        ctx.authority(),
        ctx.user_agent,
        ctx.token
    );
    let request = rs..arena.len();
    let ps = arena.len();
    arena.extend_from_slice(b"HTTP/1.1 200 OK\r\nServer: nginx/1.25.3\r\nDate: ");
    http_date(arena, now_s);
    arena.extend_from_slice(
        b"\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\nX-Accel-Buffering: no\r\nTransfer-Encoding: chunked\r\n\r\n",
    );
    (request, ps..arena.len(), target)
}

/// Writes one event of a stream as one chunk into `arena`; returns the event's bytes range
/// (inside the chunk: what the decoded body gains) and the chunk's range.
pub fn write_event(rng: &mut Rng, id: u64, arena: &mut Vec<u8>) -> (Range<usize>, Range<usize>) {
    let mut ev = String::with_capacity(400);
    let _ = write!(ev, "id: {id}\nevent: {}\ndata: ", pick(rng, TAGS));
    json_user(&mut ev, rng, id);
    ev.push_str("\n\n");
    let cs = arena.len();
    let _ = write!(arena, "{:x}\r\n", ev.len());
    let es = arena.len();
    arena.extend_from_slice(ev.as_bytes());
    let ee = arena.len();
    arena.extend_from_slice(b"\r\n");
    (es..ee, cs..arena.len())
}

/// Per-connection request decorations.
#[derive(Clone, Debug)]
pub struct ConnCtx {
    pub host: &'static str,
    pub port: u16,
    pub user_agent: &'static str,
    pub token: String,
    pub session: String,
}

impl ConnCtx {
    /// `host` or `host:port` as the Host header and URL authority show it.
    pub fn authority(&self) -> String {
        if self.port == 80 { self.host.to_string() } else { format!("{}:{}", self.host, self.port) }
    }
}

pub const USER_AGENTS: &[&str] = &[
    "okhttp/4.12.0",
    "python-requests/2.31.0",
    "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0",
    "curl/8.5.0",
    "Go-http-client/1.1",
    "axios/1.6.7",
];

/// Shares that shape responses, in parts per million.
#[derive(Clone, Copy, Debug)]
pub struct Mix {
    pub gzip_ppm: u32,
    pub br_ppm: u32,
    pub chunked_ppm: u32,
}

/// Content coding of a response.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Coding {
    Identity,
    Gzip,
    Br,
    Zstd,
}

impl Coding {
    pub fn name(self) -> &'static str {
        match self {
            Coding::Identity => "identity",
            Coding::Gzip => "gzip",
            Coding::Br => "br",
            Coding::Zstd => "zstd",
        }
    }
}

/// One composed exchange: byte ranges in the arena and what the ground
/// truth says about it.
#[derive(Clone, Debug)]
pub struct Composed {
    /// The request as sent (head and body).
    pub request: Range<usize>,
    /// With `Expect: 100-continue`: where the body starts inside
    /// `request` (the client waits for the interim response before it).
    pub body_split: Option<usize>,
    /// `HTTP/1.1 100 Continue` when the client asked for it.
    pub interim: Option<Range<usize>>,
    pub response: Range<usize>,
    pub method: &'static str,
    /// Path and query.
    pub target: String,
    pub status: u16,
    pub req_body_len: u64,
    pub req_body_sha256: [u8; 32],
    pub resp_body_len: u64,
    pub resp_body_sha256: [u8; 32],
    pub coding: Coding,
    pub chunked: bool,
    /// The request carried `Connection: close`.
    pub close: bool,
}

/// The digest of the empty body.
pub fn empty_sha256() -> [u8; 32] {
    sha256(b"")
}

#[derive(Clone, Copy)]
enum Kind {
    GetUser,
    List,
    NotModified,
    Create,
    Put,
    Patch,
    Delete,
    Head,
    Login,
    Upload,
    PutBlob,
    PostBinary,
    Download,
    NotFound,
}

const KINDS: &[(u32, Kind)] = &[
    (24, Kind::GetUser),
    (20, Kind::List),
    (5, Kind::NotModified),
    (9, Kind::Create),
    (5, Kind::Put),
    (5, Kind::Patch),
    (5, Kind::Delete),
    (3, Kind::Head),
    (5, Kind::Login),
    (4, Kind::Upload),
    (3, Kind::PutBlob),
    (3, Kind::PostBinary),
    (5, Kind::Download),
    (2, Kind::NotFound),
];

struct ReqBody<'p> {
    ctype: String,
    body: &'p Body,
    chunked: bool,
    expect: bool,
}

enum RespBody<'p> {
    None,
    /// A body whose length is announced but not sent (HEAD).
    HeadOf(&'p EncodedBody),
    Json(&'p EncodedBody),
    Binary(&'p Body),
}

/// Composes one exchange into `arena` and returns its description.
/// `now_s` feeds the `Date` header; `close` asks for `Connection: close`.
pub fn compose(rng: &mut Rng, pool: &BodyPool, ctx: &ConnCtx, mix: Mix, now_s: u64, close: bool, arena: &mut Vec<u8>) -> Composed {
    let weights: Vec<u32> = KINDS.iter().map(|k| k.0).collect();
    let kind = KINDS[rng.weighted(&weights)].1;
    let id = rng.range(1, 99_999);
    let small = |rng: &mut Rng| &pool.json_small[rng.below(pool.json_small.len() as u64) as usize];
    let any = |rng: &mut Rng| &pool.json_any[rng.below(pool.json_any.len() as u64) as usize];
    let reqj = |rng: &mut Rng| &pool.req_json[rng.below(pool.req_json.len() as u64) as usize];
    let bin = |rng: &mut Rng| &pool.binary[rng.below(pool.binary.len() as u64) as usize];
    let mut extra_req: Vec<(&str, String)> = Vec::new();
    let mut extra_resp: Vec<(&str, String)> = Vec::new();
    let (method, target, status, reqb, respb): (&str, String, u16, Option<ReqBody>, RespBody) = match kind {
        Kind::GetUser => ("GET", format!("/api/v1/users/{id}"), 200, None, RespBody::Json(small(rng))),
        Kind::List => {
            let res = ["orders", "users", "invoices", "events", "products"][rng.below(5) as usize];
            let mut t =
                format!("/api/v1/{res}?page={}&limit={}&sort=created_at", rng.range(1, 40), [10, 25, 50, 100][rng.below(4) as usize]);
            if rng.below(3) == 0 {
                t.push_str("&q=");
                let mut q = String::new();
                url_encode(&mut q, &format!("{} {}", pick(rng, CITIES), pick(rng, TAGS)));
                t.push_str(&q);
            }
            if rng.below(4) == 0 {
                t.push_str("&fields=id%2Cname%2Cemail&filter%5Bactive%5D=true");
            }
            ("GET", t, 200, None, RespBody::Json(any(rng)))
        }
        Kind::NotModified => {
            let b = small(rng);
            extra_req.push(("If-None-Match", format!("\"{}\"", b.etag)));
            extra_resp.push(("ETag", format!("\"{}\"", b.etag)));
            ("GET", format!("/api/v1/users/{id}/profile"), 304, None, RespBody::None)
        }
        Kind::Create => (
            "POST",
            "/api/v1/orders".to_string(),
            201,
            Some(ReqBody { ctype: "application/json".into(), body: reqj(rng), chunked: false, expect: false }),
            RespBody::Json(small(rng)),
        ),
        Kind::Put => (
            "PUT",
            format!("/api/v1/users/{id}"),
            200,
            Some(ReqBody { ctype: "application/json; charset=utf-8".into(), body: reqj(rng), chunked: false, expect: false }),
            RespBody::Json(small(rng)),
        ),
        Kind::Patch => (
            "PATCH",
            format!("/api/v1/orders/{id}"),
            200,
            Some(ReqBody { ctype: "application/merge-patch+json".into(), body: reqj(rng), chunked: false, expect: false }),
            RespBody::Json(small(rng)),
        ),
        Kind::Delete => ("DELETE", format!("/api/v1/sessions/{id}"), 204, None, RespBody::None),
        Kind::Head => ("HEAD", format!("/api/v1/reports/{id}"), 200, None, RespBody::HeadOf(any(rng))),
        Kind::Login => {
            let f = &pool.forms[rng.below(pool.forms.len() as u64) as usize];
            extra_resp.push(("Set-Cookie", format!("session={:016x}; Path=/; HttpOnly; SameSite=Lax", rng.next_u64())));
            (
                "POST",
                "/auth/login".to_string(),
                200,
                Some(ReqBody { ctype: "application/x-www-form-urlencoded".into(), body: f, chunked: false, expect: false }),
                RespBody::Json(small(rng)),
            )
        }
        Kind::Upload => {
            let (bd, b) = &pool.multipart[rng.below(pool.multipart.len() as u64) as usize];
            (
                "POST",
                "/api/v1/uploads".to_string(),
                201,
                Some(ReqBody { ctype: format!("multipart/form-data; boundary={bd}"), body: b, chunked: false, expect: rng.below(3) == 0 }),
                RespBody::Json(small(rng)),
            )
        }
        Kind::PutBlob => (
            "PUT",
            format!("/api/v1/blobs/{id:08x}"),
            201,
            Some(ReqBody { ctype: "application/octet-stream".into(), body: bin(rng), chunked: rng.below(4) == 0, expect: true }),
            RespBody::Json(small(rng)),
        ),
        Kind::PostBinary => (
            "POST",
            format!("/api/v1/devices/{id}/telemetry"),
            200,
            Some(ReqBody { ctype: "application/octet-stream".into(), body: bin(rng), chunked: rng.below(4) == 0, expect: false }),
            RespBody::Json(small(rng)),
        ),
        Kind::Download => ("GET", format!("/api/v1/blobs/{id:08x}"), 200, None, RespBody::Binary(bin(rng))),
        Kind::NotFound => ("GET", format!("/api/v1/users/{}", id + 1_000_000), 404, None, RespBody::Json(small(rng))),
    };

    // ---- request
    let rs = arena.len();
    let _ = write!(arena, "{method} {target} HTTP/1.1\r\nHost: {}\r\n", ctx.authority());
    let _ = write!(arena, "User-Agent: {}\r\nAccept: application/json\r\nAccept-Encoding: gzip, deflate, br\r\n", ctx.user_agent);
    if rng.below(8) != 0 {
        let _ = write!(arena, "Authorization: Bearer {}\r\n", ctx.token);
    }
    let _ = write!(
        arena,
        "Cookie: session={}; theme=dark; _ga=GA1.2.{}.{}\r\n",
        ctx.session,
        rng.below(1_000_000_000),
        1_700_000_000 + rng.below(10_000_000)
    );
    let _ = write!(arena, "X-Request-Id: {:016x}\r\n", rng.next_u64());
    for (k, v) in &extra_req {
        let _ = write!(arena, "{k}: {v}\r\n");
    }
    if close {
        arena.extend_from_slice(b"Connection: close\r\n");
    }
    let mut body_split = None;
    let (req_len, req_sha) = match &reqb {
        Some(rb) => {
            let _ = write!(arena, "Content-Type: {}\r\n", rb.ctype);
            if rb.chunked {
                arena.extend_from_slice(b"Transfer-Encoding: chunked\r\n");
            } else {
                let _ = write!(arena, "Content-Length: {}\r\n", rb.body.data.len());
            }
            if rb.expect {
                arena.extend_from_slice(b"Expect: 100-continue\r\n");
            }
            arena.extend_from_slice(b"\r\n");
            if rb.expect {
                body_split = Some(arena.len());
            }
            if rb.chunked {
                write_chunked(arena, rng, &rb.body.data, false, false);
            } else {
                arena.extend_from_slice(&rb.body.data);
            }
            (rb.body.data.len() as u64, rb.body.sha256)
        }
        None => {
            arena.extend_from_slice(b"\r\n");
            (0, empty_sha256())
        }
    };
    let request = rs..arena.len();
    let interim = if body_split.is_some() {
        let s = arena.len();
        arena.extend_from_slice(b"HTTP/1.1 100 Continue\r\n\r\n");
        Some(s..arena.len())
    } else {
        None
    };

    // ---- response
    let ps = arena.len();
    let reason = match status {
        200 => "OK",
        201 => "Created",
        204 => "No Content",
        304 => "Not Modified",
        404 => "Not Found",
        _ => "Unknown",
    };
    let _ = write!(arena, "HTTP/1.1 {status} {reason}\r\nDate: ");
    http_date(arena, now_s);
    arena.extend_from_slice(b"\r\nServer: nginx/1.25.3\r\n");
    let _ = write!(arena, "X-Request-Id: {:016x}\r\n", rng.next_u64());
    for (k, v) in &extra_resp {
        let _ = write!(arena, "{k}: {v}\r\n");
    }
    if close {
        arena.extend_from_slice(b"Connection: close\r\n");
    } else if rng.below(4) == 0 {
        arena.extend_from_slice(b"Connection: keep-alive\r\nKeep-Alive: timeout=60, max=100\r\n");
    }
    let mut coding = Coding::Identity;
    let mut chunked = false;
    let (resp_len, resp_sha) = match respb {
        RespBody::None => {
            arena.extend_from_slice(b"\r\n");
            (0, empty_sha256())
        }
        RespBody::HeadOf(b) => {
            let _ =
                write!(arena, "Content-Type: application/json\r\nContent-Length: {}\r\nETag: \"{}\"\r\n\r\n", b.plain.data.len(), b.etag);
            (0, empty_sha256())
        }
        RespBody::Json(b) => {
            let x = rng.below(1_000_000) as u32;
            let enc: &[u8] = if x < mix.gzip_ppm {
                coding = Coding::Gzip;
                &b.gzip
            } else if x < mix.gzip_ppm.saturating_add(mix.br_ppm) {
                coding = Coding::Br;
                &b.br
            } else {
                &b.plain.data
            };
            chunked = rng.chance_ppm(mix.chunked_ppm);
            arena.extend_from_slice(b"Content-Type: application/json; charset=utf-8\r\n");
            if coding != Coding::Identity {
                let _ = write!(arena, "Content-Encoding: {}\r\nVary: Accept-Encoding\r\n", coding.name());
            }
            let _ = write!(arena, "ETag: \"{}\"\r\nCache-Control: private, max-age=0\r\n", b.etag);
            write_body_framed(arena, rng, enc, chunked);
            (b.plain.data.len() as u64, b.plain.sha256)
        }
        RespBody::Binary(b) => {
            chunked = rng.chance_ppm(mix.chunked_ppm);
            arena.extend_from_slice(b"Content-Type: application/octet-stream\r\nContent-Disposition: attachment\r\n");
            write_body_framed(arena, rng, &b.data, chunked);
            (b.data.len() as u64, b.sha256)
        }
    };
    let response = ps..arena.len();
    Composed {
        request,
        body_split,
        interim,
        response,
        method,
        target,
        status,
        req_body_len: req_len,
        req_body_sha256: req_sha,
        resp_body_len: resp_len,
        resp_body_sha256: resp_sha,
        coding,
        chunked,
        close,
    }
}

/// Ends the head and writes `body` with Content-Length or chunked framing.
fn write_body_framed(arena: &mut Vec<u8>, rng: &mut Rng, body: &[u8], chunked: bool) {
    if chunked {
        let trailers = rng.below(8) == 0;
        if trailers {
            arena.extend_from_slice(b"Trailer: X-Body-Checksum\r\n");
        }
        arena.extend_from_slice(b"Transfer-Encoding: chunked\r\n\r\n");
        let ext = rng.below(8) == 0;
        write_chunked(arena, rng, body, ext, trailers);
    } else {
        let _ = write!(arena, "Content-Length: {}\r\n\r\n", body.len());
        arena.extend_from_slice(body);
    }
}

/// Writes `body` in chunks of 1-16 KiB, optionally with chunk extensions
/// and a trailer section.
pub fn write_chunked(arena: &mut Vec<u8>, rng: &mut Rng, body: &[u8], ext: bool, trailers: bool) {
    let mut off = 0;
    while off < body.len() {
        let n = (rng.range(1024, 16_384) as usize).min(body.len() - off);
        let _ = write!(arena, "{n:x}");
        if ext && rng.below(2) == 0 {
            let _ = write!(arena, ";chunk-sig={:08x}", rng.next_u32());
        }
        arena.extend_from_slice(b"\r\n");
        arena.extend_from_slice(&body[off..off + n]);
        arena.extend_from_slice(b"\r\n");
        off += n;
    }
    arena.extend_from_slice(b"0\r\n");
    if trailers {
        let _ = write!(arena, "X-Body-Checksum: {:016x}\r\n", rng.next_u64());
    }
    arena.extend_from_slice(b"\r\n");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates() {
        let mut v = Vec::new();
        http_date(&mut v, 784_111_777);
        assert_eq!(v, b"Sun, 06 Nov 1994 08:49:37 GMT");
        let mut s = String::new();
        rfc3339(&mut s, 1_700_000_000);
        assert_eq!(s, "2023-11-14T22:13:20Z");
    }

    #[test]
    fn pool_bodies_decode_back() {
        let pool = BodyPool::new(1, 16, 50_000);
        for b in &pool.json_any {
            let mut d = flate2::read::GzDecoder::new(&b.gzip[..]);
            let mut out = Vec::new();
            std::io::Read::read_to_end(&mut d, &mut out).unwrap();
            assert_eq!(out, b.plain.data);
            let mut out = Vec::new();
            brotli::BrotliDecompress(&mut &b.br[..], &mut out).unwrap();
            assert_eq!(out, b.plain.data);
            assert!(serde_json::from_slice::<serde_json::Value>(&b.plain.data).is_ok());
            assert!(b.plain.data.len() <= 50_000 + 1024);
        }
        for b in &pool.req_json {
            assert!(serde_json::from_slice::<serde_json::Value>(&b.data).is_ok());
        }
    }

    #[test]
    fn compose_is_parseable() {
        let pool = BodyPool::new(2, 16, 20_000);
        let ctx = ConnCtx { host: "api.example.com", port: 8080, user_agent: USER_AGENTS[0], token: "t0k".into(), session: "s".into() };
        let mix = Mix { gzip_ppm: 300_000, br_ppm: 200_000, chunked_ppm: 300_000 };
        let mut rng = Rng::new(9);
        for _ in 0..300 {
            let mut arena = Vec::new();
            let c = compose(&mut rng, &pool, &ctx, mix, 1_700_000_000, false, &mut arena);
            let mut h = [httparse::EMPTY_HEADER; 32];
            let mut req = httparse::Request::new(&mut h);
            let st = req.parse(&arena[c.request.clone()]).unwrap();
            assert!(st.is_complete());
            assert_eq!(req.method, Some(c.method));
            let mut h = [httparse::EMPTY_HEADER; 32];
            let mut resp = httparse::Response::new(&mut h);
            let st = resp.parse(&arena[c.response.clone()]).unwrap();
            assert!(st.is_complete());
            assert_eq!(resp.code, Some(c.status));
        }
    }
}
