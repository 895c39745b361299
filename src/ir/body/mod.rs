//! Bodies as IR: a body is parsed by its content type into `Struct`/`List`/`Primitive` values.
//!
//! | content type | parsed as | `HTTPBody.content_type` |
//! |---|---|---|
//! | `application/json`, `*+json` | JSON ([`json`]) | `JSON` |
//! | `application/x-www-form-urlencoded` | a struct of fields, repeated keys a list ([`form`]) | `FORM_URL_ENCODED` |
//! | `multipart/form-data`, `multipart/mixed` | a struct keyed by part name, each part by its own type ([`multipart`]) | `HTTPMultipart` location |
//! | `application/yaml`, `*+yaml`, `text/yaml`… | YAML ([`json`]'s builder over `serde_norway`) | `YAML` |
//! | `application/xml`, `text/xml`, `*+xml` | XML ([`xml`]) | `OTHER` + the media type |
//! | `text/plain`, `text/html`, other `text/*` | a string sample | `TEXT_PLAIN`, `TEXT_HTML`, `OTHER` |
//! | `application/octet-stream`, `application/pdf`, anything else | a bytes sample | `OCTET_STREAM`, `PDF`, `OTHER` |
//! | none | JSON when it parses as JSON, else a string or bytes sample | `JSON` or `UNKNOWN` |
//!
//! A body that does not parse as its type never fails anything: it becomes a string (UTF-8)
//! or bytes sample and the failure is counted per type in [`BodyStats`]. Nesting deeper than
//! [`Ctx::max_depth`] is cut (the subtree becomes an empty struct or list) and counted. A JSON
//! or YAML list keeps its first [`Ctx::max_list`] elements (the rest is still read, so a bad
//! body is still noticed, and counted): a witness describes the shape of a call, and the IR of a
//! 16 MiB array would otherwise cost many times its size in memory in every shard.

pub mod fastjson;
pub mod form;
pub mod json;
pub mod multipart;
pub mod xml;

use serde::Serialize;

use super::formats;
use super::pb::{self, http_body::ContentType};
use super::redact::Redactor;
use super::value::{Interner, Key, Prim, Scalar, Val};

/// Bodies that failed to parse as their declared type, by type.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct BodyStats {
    pub json: u64,
    pub yaml: u64,
    pub xml: u64,
    pub form: u64,
    pub multipart: u64,
}

impl BodyStats {
    pub fn total(&self) -> u64 {
        self.json + self.yaml + self.xml + self.form + self.multipart
    }

    pub fn add(&mut self, o: &BodyStats) {
        self.json += o.json;
        self.yaml += o.yaml;
        self.xml += o.xml;
        self.form += o.form;
        self.multipart += o.multipart;
    }
}

/// Counters of IR construction.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct IrStats {
    pub unparsed_bodies: BodyStats,
    /// Subtrees cut at the nesting cap.
    pub depth_capped: u64,
    /// List elements past the list cap (read, not kept).
    pub list_elements_dropped: u64,
    /// Bodies kept as a sample of their first bytes.
    pub bodies_sampled: u64,
    /// Values replaced by redaction.
    pub redactions: u64,
}

impl IrStats {
    pub fn add(&mut self, o: &IrStats) {
        self.unparsed_bodies.add(&o.unparsed_bodies);
        self.depth_capped += o.depth_capped;
        self.list_elements_dropped += o.list_elements_dropped;
        self.bodies_sampled += o.bodies_sampled;
        self.redactions += o.redactions;
    }
}

/// Default nesting cap of body values.
pub const MAX_DEPTH: usize = 64;
/// Default size of text and bytes samples.
pub const SAMPLE: usize = 4096;
/// Default number of elements kept of a list in a body.
pub const MAX_LIST: usize = 32;

/// What body parsing needs: the redaction rules, the caps and the counters.
pub struct Ctx<'r> {
    pub redact: Option<&'r Redactor>,
    pub max_depth: usize,
    /// Elements kept of a list (0: all).
    pub max_list: usize,
    pub sample: usize,
    pub stats: IrStats,
    /// Field names shared from body to body.
    pub names: Interner,
    /// Every primitive's value is replaced by the zero value of its type (done as JSON bodies
    /// are read; other values are zeroed by the witness builder afterwards).
    pub zero_values: bool,
    /// Buffers of the one-pass JSON parser, kept from body to body.
    pub json: fastjson::JsonBufs,
}

impl<'r> Ctx<'r> {
    pub fn new(redact: Option<&'r Redactor>) -> Self {
        Ctx {
            redact,
            max_depth: MAX_DEPTH,
            max_list: MAX_LIST,
            sample: SAMPLE,
            stats: IrStats::default(),
            names: Interner::default(),
            zero_values: false,
            json: Default::default(),
        }
    }

    /// A field name, shared.
    pub fn key(&mut self, name: &str) -> Key {
        self.names.key(name)
    }

    /// Whether a field name marks its value (and everything below it) as sensitive.
    pub fn sensitive_name(&self, name: &str) -> bool {
        self.redact.is_some_and(|r| r.sensitive_name(name.as_bytes()))
    }

    /// A value from text that has no type of its own (query, header, form field, XML text):
    /// categorised, then redacted when its name or its value is sensitive.
    pub fn text(&mut self, b: &[u8], sensitive: bool) -> Prim {
        let mut p = formats::categorize(b);
        self.check(&mut p, sensitive);
        p
    }

    /// A string that is a string (JSON, YAML): its format, then redaction.
    pub fn string(&mut self, s: compact_str::CompactString, sensitive: bool) -> Prim {
        let mut p = formats::string_primitive(s);
        self.check(&mut p, sensitive);
        p
    }

    /// Redacts `p` when `sensitive`, or when it is a string or number matching a sensitive
    /// value pattern.
    pub fn check(&mut self, p: &mut Prim, sensitive: bool) {
        let Some(r) = self.redact else { return };
        let hit = sensitive
            || match &p.val {
                Scalar::Str(s) => r.sensitive_value(s.as_bytes()),
                Scalar::Bytes(b) => r.sensitive_value(b),
                Scalar::I64(i) => *i > 999_999_999_999 && r.sensitive_value(i.to_string().as_bytes()),
                Scalar::U64(u) => r.sensitive_value(u.to_string().as_bytes()),
                _ => false,
            };
        if hit {
            super::redact::redact_primitive(p);
            self.stats.redactions += 1;
        }
    }

    /// The first `sample` bytes of `b` as a string (cut at a character boundary) when UTF-8,
    /// else as bytes.
    pub fn sample(&mut self, b: &[u8], sensitive: bool) -> Prim {
        let cut = b.len().min(self.sample);
        if cut < b.len() {
            self.stats.bodies_sampled += 1;
        }
        let mut p = match std::str::from_utf8(&b[..cut]) {
            Ok(s) => formats::string_primitive(s.into()),
            Err(e) if e.error_len().is_none() && e.valid_up_to() + 4 > cut => {
                // A character cut by the sample's end.
                let s = std::str::from_utf8(&b[..e.valid_up_to()]).unwrap_or_default();
                formats::string_primitive(s.into())
            }
            Err(_) => Prim::new(Scalar::Bytes(b[..cut].to_vec())),
        };
        if let Some(r) = self.redact {
            if sensitive {
                super::redact::redact_primitive(&mut p);
                self.stats.redactions += 1;
            } else {
                let text: &[u8] = match &p.val {
                    Scalar::Str(s) => s.as_bytes(),
                    Scalar::Bytes(b) => b,
                    _ => &[],
                };
                if let Some((masked, n)) = r.mask(text) {
                    // A long sample keeps its shape: only the matches are masked.
                    self.stats.redactions += n;
                    p.val = match p.val {
                        Scalar::Str(_) => Scalar::Str(String::from_utf8_lossy(&masked).into()),
                        _ => Scalar::Bytes(masked),
                    };
                    p.format = None;
                    p.sensitive = true;
                }
            }
        }
        p
    }
}

/// What a media type is parsed as.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Json,
    Yaml,
    Xml,
    Form,
    /// `multipart/form-data` (true) or `multipart/mixed` and other multiparts (false).
    Multipart(bool),
    Text,
    Bytes,
    /// No content type: sniffed.
    Unknown,
}

/// The media type of a Content-Type value: before `;`, trimmed, lowercase.
pub fn media_type(ct: &[u8]) -> std::borrow::Cow<'_, str> {
    let end = ct.iter().position(|&c| c == b';').unwrap_or(ct.len());
    let t = crate::proto::http1::decode::trim(&ct[..end]);
    match std::str::from_utf8(t) {
        Ok(s) if !s.bytes().any(|c| c.is_ascii_uppercase()) => std::borrow::Cow::Borrowed(s),
        _ => std::borrow::Cow::Owned(String::from_utf8_lossy(t).to_ascii_lowercase()),
    }
}

/// How a media type is parsed, and the `HTTPBody` that describes it.
pub fn classify(media: &str) -> (Kind, ContentType) {
    let (ty, sub) = media.split_once('/').unwrap_or((media, ""));
    let suffix = sub.rsplit_once('+').map(|(_, s)| s);
    match (ty, sub, suffix) {
        ("", _, _) => (Kind::Unknown, ContentType::Unknown),
        ("application", "json", _) | (_, _, Some("json")) | ("text", "json", _) => (Kind::Json, ContentType::Json),
        ("application", "x-www-form-urlencoded", _) => (Kind::Form, ContentType::FormUrlEncoded),
        ("multipart", "form-data", _) => (Kind::Multipart(true), ContentType::Other),
        ("multipart", _, _) => (Kind::Multipart(false), ContentType::Other),
        ("application" | "text", "yaml" | "x-yaml" | "vnd.yaml", _) | (_, _, Some("yaml")) => (Kind::Yaml, ContentType::Yaml),
        ("application" | "text", "xml", _) | (_, _, Some("xml")) => (Kind::Xml, ContentType::Other),
        ("text", "plain", _) => (Kind::Text, ContentType::TextPlain),
        ("text", "html", _) => (Kind::Text, ContentType::TextHtml),
        ("text", _, _) => (Kind::Text, ContentType::Other),
        ("application", "octet-stream", _) => (Kind::Bytes, ContentType::OctetStream),
        ("application", "pdf", _) => (Kind::Bytes, ContentType::Pdf),
        _ => (Kind::Bytes, ContentType::Other),
    }
}

fn body_meta(ct: ContentType, media: &str) -> pb::http_meta::Location {
    let other_type = if ct == ContentType::Other { media.to_string() } else { String::new() };
    pb::http_meta::Location::Body(pb::HttpBody { content_type: ct as i32, other_type })
}

/// A body as a value and the HTTP location that describes it.
pub fn parse(cx: &mut Ctx<'_>, content_type: Option<&[u8]>, body: &[u8]) -> (Val, pb::http_meta::Location) {
    let ct_raw = content_type.unwrap_or(b"");
    let media = media_type(ct_raw);
    let (kind, ct) = classify(&media);
    match kind {
        Kind::Json => match json::parse_json(cx, body) {
            Some(d) => (d, body_meta(ct, &media)),
            None => {
                cx.stats.unparsed_bodies.json += 1;
                (Val::Prim(cx.sample(body, false)), body_meta(ct, &media))
            }
        },
        Kind::Yaml => match json::parse_yaml(cx, body) {
            Some(d) => (d, body_meta(ct, &media)),
            None => {
                cx.stats.unparsed_bodies.yaml += 1;
                (Val::Prim(cx.sample(body, false)), body_meta(ct, &media))
            }
        },
        Kind::Xml => match xml::parse(cx, body) {
            Some(d) => (d, body_meta(ct, &media)),
            None => {
                cx.stats.unparsed_bodies.xml += 1;
                (Val::Prim(cx.sample(body, false)), body_meta(ct, &media))
            }
        },
        Kind::Form => (form::parse(cx, body), body_meta(ct, &media)),
        Kind::Multipart(form_data) => {
            let loc = pb::http_meta::Location::Multipart(pb::HttpMultipart {
                r#type: if form_data { "form-data".into() } else { media.strip_prefix("multipart/").unwrap_or(&media).to_string() },
            });
            match multipart::parse(cx, ct_raw, body, 0) {
                Some(d) => (d, loc),
                None => {
                    cx.stats.unparsed_bodies.multipart += 1;
                    (Val::Prim(cx.sample(body, false)), loc)
                }
            }
        }
        Kind::Text | Kind::Bytes => (Val::Prim(cx.sample(body, false)), body_meta(ct, &media)),
        Kind::Unknown => {
            let first = body.iter().find(|c| !c.is_ascii_whitespace());
            if matches!(first, Some(b'{' | b'[')) {
                // Sniffing is a guess: a failure is not the body's fault, so it is not counted.
                if let Some(d) = json::parse_json(cx, body) {
                    return (d, body_meta(ContentType::Json, ""));
                }
            }
            (Val::Prim(cx.sample(body, false)), body_meta(ContentType::Unknown, ""))
        }
    }
}

/// A part or nested value by its content type (multipart parts).
pub(crate) fn value_of(cx: &mut Ctx<'_>, content_type: Option<&[u8]>, body: &[u8], depth: usize, sensitive: bool) -> Val {
    if sensitive {
        return Val::Prim(cx.sample(body, true));
    }
    let ct_raw = content_type.unwrap_or(b"");
    let media = media_type(ct_raw);
    let (kind, _) = classify(&media);
    let parsed = match kind {
        Kind::Json => json::parse_json_at(cx, body, depth),
        Kind::Yaml => json::parse_yaml_at(cx, body, depth),
        Kind::Xml => xml::parse_at(cx, body, depth),
        Kind::Form => Some(form::parse(cx, body)),
        Kind::Multipart(_) if depth < cx.max_depth => multipart::parse(cx, ct_raw, body, depth + 1),
        Kind::Multipart(_) => {
            cx.stats.depth_capped += 1;
            Some(Val::Struct(Vec::new()))
        }
        Kind::Unknown => return Val::Prim(if body.len() <= 256 { cx.text(body, false) } else { cx.sample(body, false) }),
        Kind::Text | Kind::Bytes => return Val::Prim(cx.sample(body, false)),
    };
    match parsed {
        Some(d) => d,
        None => {
            let s = &mut cx.stats.unparsed_bodies;
            match kind {
                Kind::Json => s.json += 1,
                Kind::Yaml => s.yaml += 1,
                Kind::Xml => s.xml += 1,
                _ => s.multipart += 1,
            }
            Val::Prim(cx.sample(body, false))
        }
    }
}

#[cfg(test)]
pub(crate) fn flat_text<T: crate::ir::text::TextFormat>(m: &T) -> String {
    crate::ir::text::to_text(m).split_whitespace().collect::<Vec<_>>().join(" ")
}

/// The text format of a value's `Data` on one line, for tests.
#[cfg(test)]
pub(crate) fn flat_val(v: &Val) -> String {
    flat_text(&v.to_pb())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classification() {
        for (m, k, c) in [
            ("application/json", Kind::Json, ContentType::Json),
            ("application/merge-patch+json", Kind::Json, ContentType::Json),
            ("application/x-www-form-urlencoded", Kind::Form, ContentType::FormUrlEncoded),
            ("multipart/form-data", Kind::Multipart(true), ContentType::Other),
            ("multipart/mixed", Kind::Multipart(false), ContentType::Other),
            ("application/x-yaml", Kind::Yaml, ContentType::Yaml),
            ("application/problem+xml", Kind::Xml, ContentType::Other),
            ("text/xml", Kind::Xml, ContentType::Other),
            ("text/plain", Kind::Text, ContentType::TextPlain),
            ("text/html", Kind::Text, ContentType::TextHtml),
            ("text/css", Kind::Text, ContentType::Other),
            ("application/octet-stream", Kind::Bytes, ContentType::OctetStream),
            ("application/pdf", Kind::Bytes, ContentType::Pdf),
            ("image/png", Kind::Bytes, ContentType::Other),
            ("", Kind::Unknown, ContentType::Unknown),
        ] {
            assert_eq!(classify(m), (k, c), "{m}");
        }
        assert_eq!(media_type(b" Application/JSON ; charset=utf-8"), "application/json");
    }

    fn prim_of(d: &Val) -> &Scalar {
        match d {
            Val::Prim(p) => &p.val,
            v => panic!("not a primitive: {v:?}"),
        }
    }

    #[test]
    fn bad_bodies_become_samples_and_are_counted() {
        let mut cx = Ctx::new(None);
        let (d, loc) = parse(&mut cx, Some(b"application/json"), b"{not json");
        assert!(matches!(prim_of(&d), Scalar::Str(s) if s == "{not json"));
        assert!(matches!(loc, pb::http_meta::Location::Body(b) if b.content_type == ContentType::Json as i32));
        let (d, _) = parse(&mut cx, Some(b"application/json"), b"\xff\xfe");
        assert!(matches!(prim_of(&d), Scalar::Bytes(_)));
        let (_, _) = parse(&mut cx, Some(b"application/xml"), b"<a><b></a>");
        let (_, _) = parse(&mut cx, Some(b"application/yaml"), b"a: [1, 2");
        let (_, _) = parse(&mut cx, Some(b"multipart/form-data"), b"no boundary");
        assert_eq!(cx.stats.unparsed_bodies, BodyStats { json: 2, yaml: 1, xml: 1, form: 0, multipart: 1 });
    }

    #[test]
    fn samples_are_cut_at_a_character() {
        let mut cx = Ctx::new(None);
        cx.sample = 4;
        let p = cx.sample("aéé".as_bytes(), false);
        assert!(matches!(p.val, Scalar::Str(s) if s == "aé"));
        assert_eq!(cx.stats.bodies_sampled, 1);
        let (d, loc) = parse(&mut cx, None, b"[1]");
        assert!(matches!(d.to_pb().value, Some(pb::data::Value::List(_))));
        assert!(matches!(loc, pb::http_meta::Location::Body(b) if b.content_type == ContentType::Json as i32));
    }
}
