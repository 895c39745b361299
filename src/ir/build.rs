//! From an HTTP exchange to a witness.
//!
//! Request side (`response_code` 0): each header one `Data` with `HTTPHeader` (value
//! categorised), except `Cookie` (one `Data` per cookie with `HTTPCookie`), `Authorization`
//! (`HTTPAuth{BASIC|BEARER|UNKNOWN}`, its value never kept: an empty string) and
//! `Content-Type` (it describes the body); each query key one `Data` with `HTTPQuery` (a
//! repeated key a list of its values); with templates, each identifier segment of the path one
//! `Data` with `HTTPPath`; the body by its content type ([`super::body`]). Response side
//! (`response_code` = status): headers except `Set-Cookie` (one `HTTPCookie` per cookie, the
//! attributes left out) and `Content-Type`, then the body; a response with neither is one
//! `HTTPEmpty`. `Method.args` and `Method.responses` are keyed by the hash of the `Data` they
//! hold (so identical values collapse into one entry).
//!
//! `HTTPMethodMeta` holds the method, the path (without query; the template with
//! `--template-paths`), the host (the Host header, else the server address) and the processing
//! latency (response first byte − request last byte, in ms). `MethodId.api_type` is
//! `HTTP_REST`; its name is left empty, as the reference did.
//!
//! The whole-witness hash reuses the hashes of the values computed for the map keys: each value
//! is hashed once.

use std::sync::Arc;

use super::body::{self, Ctx, IrStats, form::pairs};
use super::hash::{self, Digest, ObjectHasher, TEXT_LEN};
use super::pb::{self, http_meta::Location};
use super::redact::Redactor;
use super::template;
use super::value::{self, Prim, Scalar, Sizes, Val};
use crate::proto::http1::decode::trim;
use crate::proto::http1::{Exchange, Message};

/// How witnesses are built.
#[derive(Clone, Debug, Default)]
pub struct WitnessOptions {
    /// Identifier segments of paths become `{id}` (and `HTTPPath` arguments).
    pub template_paths: bool,
    /// Every primitive's value is replaced by the zero value of its type.
    pub zero_values: bool,
    /// Sensitive values are replaced.
    pub redact: Option<Arc<Redactor>>,
    /// Nesting cap of body values (0: [`body::MAX_DEPTH`]).
    pub max_depth: usize,
    /// Bytes kept of text and binary bodies (0: [`body::SAMPLE`]).
    pub sample: usize,
    /// Elements kept of each list in a body: `None` for [`body::MAX_LIST`], `Some(0)` for all.
    pub max_list: Option<usize>,
}

/// Builds witnesses, reusing its buffers; counts what it did in `stats`.
#[derive(Default)]
pub struct WitnessBuilder {
    pub opts: WitnessOptions,
    hasher: ObjectHasher,
    scratch: value::Scratch,
    sizes: Sizes,
    /// Field names shared from witness to witness.
    names: value::Interner,
    /// Buffers of the one-pass JSON parser.
    json: body::fastjson::JsonBufs,
    /// Hashes of the `DataMeta`s seen (headers repeat from call to call), bounded.
    meta_hashes: rustc_hash::FxHashMap<pb::DataMeta, Digest>,
    /// Header entries already built, by status code, name and value: most headers repeat from
    /// call to call (Accept, User-Agent, Server, Cache-Control...), and one of them is then
    /// neither categorised, nor hashed, nor encoded again. Bounded.
    headers: rustc_hash::FxHashMap<Box<[u8]>, Arc<Cached>>,
    /// Hashes of the headers seen once: a header is cached the second time it is seen, so that
    /// the ones that never repeat (dates, request ids) cost nothing to keep. Bounded.
    seen_headers: rustc_hash::FxHashSet<u64>,
    header_key: Vec<u8>,
    /// Vectors and strings of witnesses already written, reused ([`WitnessBuilder::recycle`]).
    spare: Spare,
    pub stats: IrStats,
}

/// Buffers kept from witness to witness, empty.
#[derive(Default)]
struct Spare {
    args: Vec<Pending>,
    responses: Vec<Pending>,
    arg_keys: Vec<[u8; 16]>,
    resp_keys: Vec<[u8; 16]>,
    entries: Vec<Vec<Entry>>,
    strings: Vec<String>,
}

impl Spare {
    fn string(&mut self, s: &str) -> String {
        let mut out = self.strings.pop().unwrap_or_default();
        out.push_str(s);
        out
    }
}

/// One argument or response: its key (the text of its hash), value and location.
#[derive(Clone, Debug)]
pub struct Entry {
    pub key: compact_str::CompactString,
    pub body: EntryBody,
}

/// What an [`Entry`] holds.
#[derive(Clone, Debug)]
pub enum EntryBody {
    /// A value and its location.
    Tree(Val, pb::DataMeta),
    /// A header entry built before, shared.
    Encoded(Arc<Cached>),
}

/// A header entry built once: its key, its `(key hash, value hash)` for the method's hash and
/// its `Data` message, location included, encoded.
#[derive(Debug)]
pub struct Cached {
    key: compact_str::CompactString,
    hashes: [u8; 16],
    data: Box<[u8]>,
    /// Whether its value was redacted (counted again each time it is used).
    redacted: bool,
}

/// Values longer than this are not kept in the header cache.
const CACHED_VALUE_MAX: usize = 256;
/// Header entries kept at most; the cache starts over past it.
const CACHED_ENTRIES_MAX: usize = 512;

/// An entry before its key is known.
enum Pending {
    Tree(Val, pb::DataMeta),
    Cached(Arc<Cached>),
}

/// A built witness: its entries sorted by key, its metadata and its hash.
#[derive(Clone, Debug)]
pub struct Built {
    pub args: Vec<Entry>,
    pub responses: Vec<Entry>,
    pub meta: pb::HttpMethodMeta,
    pub digest: Digest,
}

fn meta(loc: Location, code: i32) -> pb::DataMeta {
    pb::DataMeta { meta: Some(pb::data_meta::Meta::Http(pb::HttpMeta { location: Some(loc), response_code: code })) }
}

fn method_id() -> pb::MethodId {
    pb::MethodId { name: String::new(), api_type: pb::ApiType::HttpRest as i32 }
}

impl Built {
    /// The witness as `prost` messages.
    pub fn to_pb(&self) -> pb::Witness {
        let map = |es: &[Entry]| {
            es.iter()
                .map(|e| {
                    let d = match &e.body {
                        EntryBody::Tree(v, m) => {
                            let mut d = v.to_pb();
                            d.meta = Some(m.clone());
                            d
                        }
                        EntryBody::Encoded(c) => {
                            use prost::Message;
                            pb::Data::decode(&c.data[..]).expect("a cached entry decodes")
                        }
                    };
                    (e.key.to_string(), d)
                })
                .collect()
        };
        pb::Witness {
            method: Some(pb::Method {
                id: Some(method_id()),
                args: map(&self.args),
                responses: map(&self.responses),
                meta: Some(pb::MethodMeta { meta: Some(pb::method_meta::Meta::Http(self.meta.clone())) }),
            }),
        }
    }

    /// Appends the witness with its varint length prefix; decodes to [`Built::to_pb`].
    pub fn encode_delimited(&self, sizes: &mut Sizes, out: &mut Vec<u8>) {
        use prost::Message;
        let varint_len = |v: usize| prost::encoding::encoded_len_varint(v as u64);
        let ld = |n: usize| 1 + varint_len(n) + n;
        sizes.clear();
        let mut lens: Vec<(usize, usize)> = Vec::with_capacity(self.args.len() + self.responses.len());
        let mut method = ld(2);
        for e in self.args.iter().chain(&self.responses) {
            let data = match &e.body {
                EntryBody::Tree(v, m) => sizes.add(v) + ld(m.encoded_len()),
                EntryBody::Encoded(c) => c.data.len(),
            };
            let entry = ld(e.key.len()) + ld(data);
            method += ld(entry);
            lens.push((entry, data));
        }
        // MethodMeta { http [2]: HttpMethodMeta }, written without building it.
        let hmm = self.meta.encoded_len();
        let mm = ld(hmm);
        method += ld(mm);
        let witness = ld(method);
        out.reserve(witness + 10);
        prost::encoding::encode_varint(witness as u64, out);
        out.push(0x0a);
        prost::encoding::encode_varint(method as u64, out);
        out.extend_from_slice(&[0x0a, 2, 0x10, 1]);
        let n_args = self.args.len();
        for (i, (e, (entry, data))) in self.args.iter().chain(&self.responses).zip(lens).enumerate() {
            out.push(if i < n_args { 0x12 } else { 0x1a });
            prost::encoding::encode_varint(entry as u64, out);
            out.push(0x0a);
            prost::encoding::encode_varint(e.key.len() as u64, out);
            out.extend_from_slice(e.key.as_bytes());
            out.push(0x12);
            prost::encoding::encode_varint(data as u64, out);
            match &e.body {
                EntryBody::Tree(v, m) => encode_data_with_meta(v, m, sizes, out),
                EntryBody::Encoded(c) => out.extend_from_slice(&c.data),
            }
        }
        out.push(0x22);
        prost::encoding::encode_varint(mm as u64, out);
        out.push(0x12);
        prost::encoding::encode_varint(hmm as u64, out);
        self.meta.encode_raw(out);
    }
}

fn header(name: &[u8]) -> Location {
    Location::Header(pb::HttpHeader { key: String::from_utf8_lossy(name).into_owned() })
}

/// The path and query of a request-target (an absolute-form target loses its scheme and
/// authority, returned as the third item).
pub fn split_target(t: &[u8]) -> (&[u8], Option<&[u8]>, Option<&[u8]>) {
    let mut t = t;
    let mut authority = None;
    for scheme in [&b"http://"[..], b"https://"] {
        if t.len() >= scheme.len() && t[..scheme.len()].eq_ignore_ascii_case(scheme) {
            let rest = &t[scheme.len()..];
            let end = rest.iter().position(|&c| matches!(c, b'/' | b'?' | b'#')).unwrap_or(rest.len());
            authority = Some(&rest[..end]);
            t = &rest[end..];
        }
    }
    let t = &t[..t.iter().position(|&c| c == b'#').unwrap_or(t.len())];
    match t.iter().position(|&c| c == b'?') {
        Some(p) => (&t[..p], Some(&t[p + 1..]), authority),
        None => (t, None, authority),
    }
}

impl WitnessBuilder {
    pub fn new(opts: WitnessOptions) -> Self {
        WitnessBuilder { opts, ..Default::default() }
    }

    fn ctx<'r>(&mut self, redact: Option<&'r Redactor>) -> Ctx<'r> {
        let mut cx = Ctx::new(redact);
        cx.names = std::mem::take(&mut self.names);
        if self.opts.max_depth > 0 {
            cx.max_depth = self.opts.max_depth;
        }
        if self.opts.sample > 0 {
            cx.sample = self.opts.sample;
        }
        if let Some(n) = self.opts.max_list {
            cx.max_list = n;
        }
        cx.zero_values = self.opts.zero_values;
        cx.json = std::mem::take(&mut self.json);
        cx
    }

    /// The witness of an exchange and its hash; `None` for a response without its request.
    pub fn build(&mut self, ex: &Exchange) -> Option<Built> {
        let req = ex.request.as_ref()?;
        let redact = self.opts.redact.clone();
        let mut cx = self.ctx(redact.as_deref());
        let mut args = std::mem::take(&mut self.spare.args);
        let mut responses = std::mem::take(&mut self.spare.responses);

        // Path and query.
        let (path, query, authority) = split_target(req.head.target());
        let path = String::from_utf8_lossy(path);
        let path_template = if self.opts.template_paths {
            let (t, ids) = template::template(&path);
            for (i, id) in ids.into_iter().enumerate() {
                let v = body::form::percent_decode(id.as_bytes(), false);
                let p = cx.text(&v, false);
                args.push(Pending::Tree(Val::Prim(p), meta(Location::Path(pb::HttpPath { key: template::param_name(i) }), 0)));
            }
            t
        } else {
            self.spare.string(&path)
        };
        if let Some(q) = query {
            let mut keys: Vec<(value::Key, Val)> = Vec::new();
            for (k, v) in pairs(q) {
                let sensitive = cx.sensitive_name(&k);
                let p = cx.text(&v, sensitive);
                keys.push((value::Key::from(k), Val::Prim(p)));
            }
            // Sorted by key, a repeated key a list of its values.
            if let Val::Struct(fields) = Val::struct_grouped(keys) {
                for (k, v) in fields {
                    args.push(Pending::Tree(v, meta(Location::Query(pb::HttpQuery { key: k.name.to_string() }), 0)));
                }
            }
        }
        self.message(&mut cx, req, 0, &mut args);

        let mut latency = 0.0f32;
        if let Some(resp) = ex.response.as_ref() {
            let code = i32::from(resp.head.status());
            self.message(&mut cx, resp, code, &mut responses);
            if responses.is_empty() {
                responses.push(Pending::Tree(Val::Empty, meta(Location::Empty(pb::HttpEmpty {}), code)));
            }
            latency = ((resp.first_ts.0 - req.last_ts.0).max(0) as f64 / 1e6) as f32;
        }

        // HTTP/2: `:authority` stands for Host.
        let h2_authority = ex.h2.as_deref().and_then(|h| h.request(":authority")).filter(|h| !h.is_empty());
        let host = match h2_authority.or(req.head.field("host").map(trim).filter(|h| !h.is_empty())).or(authority) {
            Some(h) => self.spare.string(&String::from_utf8_lossy(h)),
            None => ex.conn.server.to_string(),
        };
        let method_name = self.spare.string(&String::from_utf8_lossy(req.head.method()));
        self.stats.add(&cx.stats);
        self.names = std::mem::take(&mut cx.names);
        self.json = std::mem::take(&mut cx.json);

        if self.opts.zero_values {
            for p in args.iter_mut().chain(responses.iter_mut()) {
                if let Pending::Tree(v, _) = p {
                    zero_val(v);
                }
            }
        }
        let mut arg_keys = std::mem::take(&mut self.spare.arg_keys);
        let mut resp_keys = std::mem::take(&mut self.spare.resp_keys);
        let arg_entries = self.keyed(&mut args, &mut arg_keys);
        let resp_entries = self.keyed(&mut responses, &mut resp_keys);
        let meta = pb::HttpMethodMeta { method: method_name, path_template, host, processing_latency: latency };
        let digest = self.method_digest(&meta, &mut arg_keys, &mut resp_keys);
        arg_keys.clear();
        resp_keys.clear();
        self.spare.args = args;
        self.spare.responses = responses;
        self.spare.arg_keys = arg_keys;
        self.spare.resp_keys = resp_keys;
        Some(Built { args: arg_entries, responses: resp_entries, meta, digest })
    }

    /// Takes back a witness's vectors and strings once it is written, for the next ones.
    pub fn recycle(&mut self, b: Built) {
        let Built { args, responses, meta, .. } = b;
        let sp = &mut self.spare;
        for mut v in [args, responses] {
            if sp.entries.len() < 4 && v.capacity() > 0 {
                v.clear();
                sp.entries.push(v);
            }
        }
        for mut s in [meta.method, meta.path_template, meta.host] {
            if sp.strings.len() < 4 && (1..=4096).contains(&s.capacity()) {
                s.clear();
                sp.strings.push(s);
            }
        }
    }

    /// Encodes a built witness with its length prefix, reusing the builder's buffers.
    pub fn encode(&mut self, b: &Built, out: &mut Vec<u8>) {
        b.encode_delimited(&mut self.sizes, out);
    }

    /// Headers, cookies, authorization and body of one message.
    fn message(&mut self, cx: &mut Ctx<'_>, m: &Message, code: i32, out: &mut Vec<Pending>) {
        let request = code == 0;
        for (name, value) in m.head.fields() {
            let value = trim(value);
            if name.eq_ignore_ascii_case(b"content-type") {
                continue;
            }
            if request && name.eq_ignore_ascii_case(b"cookie") {
                for c in value.split(|&c| c == b';') {
                    let c = trim(c);
                    if c.is_empty() {
                        continue;
                    }
                    let (n, v) = match c.iter().position(|&x| x == b'=') {
                        Some(p) => (trim(&c[..p]), trim(&c[p + 1..])),
                        None => (c, &b""[..]),
                    };
                    out.push(self.cookie(cx, n, v, code));
                }
                continue;
            }
            if !request && name.eq_ignore_ascii_case(b"set-cookie") {
                let first = &value[..value.iter().position(|&c| c == b';').unwrap_or(value.len())];
                let (n, v) = match first.iter().position(|&x| x == b'=') {
                    Some(p) => (trim(&first[..p]), trim(&first[p + 1..])),
                    None => (trim(first), &b""[..]),
                };
                out.push(self.cookie(cx, n, v, code));
                continue;
            }
            if request && name.eq_ignore_ascii_case(b"authorization") {
                let scheme = value.split(|&c| c == b' ').next().unwrap_or(b"");
                let ty = if scheme.eq_ignore_ascii_case(b"basic") {
                    pb::http_auth::HttpAuthType::Basic
                } else if scheme.eq_ignore_ascii_case(b"bearer") {
                    pb::http_auth::HttpAuthType::Bearer
                } else {
                    pb::http_auth::HttpAuthType::Unknown
                };
                out.push(Pending::Tree(
                    Val::Prim(Prim::new(Scalar::Str(Default::default()))),
                    meta(Location::Auth(pb::HttpAuth { r#type: ty as i32 }), code),
                ));
                continue;
            }
            if name.eq_ignore_ascii_case(b"proxy-authorization") {
                // A credential too: its value is never kept.
                out.push(Pending::Tree(Val::Prim(Prim::new(Scalar::Str(Default::default()))), meta(header(name), code)));
                continue;
            }
            out.push(self.header(cx, name, value, code));
        }
        if !m.body.is_empty() {
            let (v, loc) = body::parse(cx, m.head.field("content-type"), &m.body);
            out.push(Pending::Tree(v, meta(loc, code)));
        }
    }

    /// A header's entry: from the cache when the same header was seen with the same status
    /// code, else built (value categorised, redacted and zeroed as asked), hashed and encoded,
    /// and kept.
    fn header(&mut self, cx: &mut Ctx<'_>, name: &[u8], value: &[u8], code: i32) -> Pending {
        let k = &mut self.header_key;
        k.clear();
        k.extend_from_slice(&code.to_le_bytes());
        k.extend_from_slice(&(name.len() as u32).to_le_bytes());
        k.extend_from_slice(name);
        k.extend_from_slice(value);
        if let Some(c) = self.headers.get(&k[..]) {
            cx.stats.redactions += u64::from(c.redacted);
            return Pending::Cached(c.clone());
        }
        let redactions = cx.stats.redactions;
        let sensitive = cx.redact.is_some_and(|r| r.sensitive_name(name));
        let mut p = cx.text(value, sensitive);
        if self.opts.zero_values {
            zero_prim(&mut p);
        }
        let v = Val::Prim(p);
        let m = meta(header(name), code);
        if value.len() > CACHED_VALUE_MAX {
            return Pending::Tree(v, m);
        }
        let seen = {
            use std::hash::BuildHasher;
            rustc_hash::FxBuildHasher.hash_one(&self.header_key[..])
        };
        if self.seen_headers.insert(seen) {
            if self.seen_headers.len() >= 4 * CACHED_ENTRIES_MAX {
                self.seen_headers.clear();
            }
            return Pending::Tree(v, m);
        }
        let (key, hashes) = self.key_of(&v, &m);
        let mut data = Vec::new();
        self.sizes.compute(&v);
        encode_data_with_meta(&v, &m, &mut self.sizes, &mut data);
        let c = Arc::new(Cached { key, hashes, data: data.into_boxed_slice(), redacted: cx.stats.redactions > redactions });
        if self.headers.len() >= CACHED_ENTRIES_MAX {
            self.headers.clear();
        }
        self.headers.insert(self.header_key.as_slice().into(), c.clone());
        Pending::Cached(c)
    }

    /// An entry's key (the text of the hash of its `Data`) and its `(key hash, value hash)`
    /// for the method's hash.
    fn key_of(&mut self, v: &Val, m: &pb::DataMeta) -> (compact_str::CompactString, [u8; 16]) {
        let h = value::hash_data(v, Some(self.meta_hash(m)), &mut self.scratch);
        let key = compact_str::CompactString::from(h.encode_text(&mut [0u8; TEXT_LEN]));
        let mut hashes = [0u8; 16];
        hashes[..8].copy_from_slice(&hash::h_str(&key).0);
        hashes[8..].copy_from_slice(&h.0);
        (key, hashes)
    }

    /// The hash of a `DataMeta`, remembered (locations repeat from call to call).
    fn meta_hash(&mut self, m: &pb::DataMeta) -> Digest {
        if let Some(h) = self.meta_hashes.get(m) {
            return *h;
        }
        let h = self.hasher.digest(m);
        if self.meta_hashes.len() >= 4096 {
            self.meta_hashes.clear();
        }
        self.meta_hashes.insert(m.clone(), h);
        h
    }

    fn cookie(&self, cx: &mut Ctx<'_>, name: &[u8], value: &[u8], code: i32) -> Pending {
        // Every cookie value is sensitive when redacting.
        let p = cx.text(value, cx.redact.is_some());
        Pending::Tree(Val::Prim(p), meta(Location::Cookie(pb::HttpCookie { key: String::from_utf8_lossy(name).into_owned() }), code))
    }

    /// Keys each value by the text of its hash, sorted by key, identical values once; `keys`
    /// receives `(key hash, value hash)`.
    fn keyed(&mut self, values: &mut Vec<Pending>, keys: &mut Vec<[u8; 16]>) -> Vec<Entry> {
        let mut out: Vec<Entry> = self.spare.entries.pop().unwrap_or_default();
        out.reserve(values.len());
        for p in values.drain(..) {
            let (v, m) = match p {
                Pending::Cached(c) => {
                    keys.push(c.hashes);
                    out.push(Entry { key: c.key.clone(), body: EntryBody::Encoded(c) });
                    continue;
                }
                Pending::Tree(v, m) => (v, m),
            };
            let (key, hashes) = self.key_of(&v, &m);
            out.push(Entry { key, body: EntryBody::Tree(v, m) });
            keys.push(hashes);
        }
        // Keys are 12 ASCII characters: compared as two big-endian integers, without memcmp.
        let order = |k: &str| {
            k.as_bytes().first_chunk::<TEXT_LEN>().map(|c| {
                let (hi, lo) = c.split_at(8);
                (u64::from_be_bytes(hi.try_into().expect("8 bytes")), u32::from_be_bytes(lo.try_into().expect("4 bytes")))
            })
        };
        out.sort_by(|a, b| match (order(&a.key), order(&b.key)) {
            (Some(x), Some(y)) => x.cmp(&y),
            _ => a.key.cmp(&b.key),
        });
        out.dedup_by(|a, b| a.key == b.key);
        value::sort_pairs(keys);
        keys.dedup();
        out
    }

    /// The hash of `Witness { method }` from the hashes of its values computed for the keys.
    fn method_digest(&mut self, meta: &pb::HttpMethodMeta, args: &mut [[u8; 16]], responses: &mut [[u8; 16]]) -> Digest {
        let mut method = value::Msg::new();
        method.put(1, self.hasher.digest(&method_id()));
        if !args.is_empty() {
            method.put(2, value::map_hash(args));
        }
        if !responses.is_empty() {
            method.put(3, value::map_hash(responses));
        }
        // MethodMeta { http [2] }
        method.put(4, value::one(2, self.hasher.digest(meta)));
        // Witness { method [1] }
        value::one(1, method.finish())
    }
}

/// The content of `Data { value: v, meta: m }`, with `v`'s sizes next in `sizes`.
fn encode_data_with_meta(v: &Val, m: &pb::DataMeta, sizes: &mut Sizes, out: &mut Vec<u8>) {
    use prost::Message;
    value::encode_data(v, sizes, out);
    out.push(0x2a);
    prost::encoding::encode_varint(m.encoded_len() as u64, out);
    m.encode_raw(out);
}

/// Replaces every primitive's value below `v` by the zero value of its type (types, formats
/// and annotations kept), as the reference's obfuscation did.
pub fn zero_val(v: &mut Val) {
    v.for_each_prim_mut(&mut zero_prim);
}

/// Replaces a primitive's value by the zero value of its type.
pub fn zero_prim(p: &mut Prim) {
    p.val = match &p.val {
        Scalar::Str(_) => Scalar::Str(Default::default()),
        Scalar::Bytes(_) => Scalar::Bytes(Vec::new()),
        Scalar::Bool(_) => Scalar::Bool(false),
        Scalar::I64(_) => Scalar::I64(0),
        Scalar::U64(_) => Scalar::U64(0),
        Scalar::F64(_) => Scalar::F64(0.0),
    }
}

/// A witness encoded with its varint length prefix (protobuf's `writeDelimitedTo` framing),
/// appended to `out`.
pub fn encode_delimited(w: &pb::Witness, out: &mut Vec<u8>) {
    use prost::Message;
    let len = w.encoded_len();
    out.reserve(len + 10);
    prost::encoding::encode_varint(len as u64, out);
    w.encode_raw(out);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::capture::Ts;
    use crate::proto::http1::{ConnMeta, head};

    fn msg(raw: &str, request: bool, body: &[u8], first: i64, last: i64) -> Message {
        Message::whole(head::parse(raw.as_bytes().to_vec(), request, 100).unwrap(), body.to_vec(), Ts(first), Ts(last))
    }

    pub(crate) fn exchange(req: &str, req_body: &[u8], resp: Option<(&str, &[u8])>) -> Exchange {
        let ep = |a: [u8; 4], port| crate::wire::Endpoint::from_addr(std::net::IpAddr::from(a), port);
        Exchange {
            conn: ConnMeta { id: 1, client: ep([10, 0, 0, 1], 5000), server: ep([10, 0, 0, 2], 8080), syn_ts: None, established_ts: None },
            index: 0,
            request: Some(msg(req, true, req_body, 1_000_000, 2_000_000)),
            response: resp.map(|(r, b)| msg(r, false, b, 14_500_000, 15_000_000)),
            interim: vec![],
            anomalies: vec![],
            tunnel: None,
            websocket: None,
            h2: None,
            tls: None,
        }
    }

    const REQ: &str = "POST /users/1234/orders/af3c09e1?b=2&a=x&a=y HTTP/1.1\r\nHost: api.example.com\r\nUser-Agent: curl/8\r\nAuthorization: Bearer sekrit\r\nCookie: session=abc; theme=dark\r\nContent-Type: application/json\r\nContent-Length: 13\r\n\r\n";
    const RESP: &str = "HTTP/1.1 201 Created\r\nContent-Type: application/json\r\nSet-Cookie: sid=xyz; Path=/; HttpOnly\r\nX-Request-Id: 123e4567-e89b-12d3-a456-426614174000\r\n\r\n";

    #[test]
    fn a_whole_exchange() {
        let ex = exchange(REQ, br#"{"name":"x"}"#, Some((RESP, br#"{"id":7}"#)));
        let mut b = WitnessBuilder::new(WitnessOptions { template_paths: true, ..Default::default() });
        let built = b.build(&ex).unwrap();
        let (w, digest) = (built.to_pb(), built.digest);
        assert_eq!(digest, crate::ir::digest(&w), "the combined hash equals the hash of the message");
        let m = w.method.as_ref().unwrap();
        for (k, d) in m.args.iter().chain(&m.responses) {
            assert_eq!(k, &crate::ir::digest_text(d), "map keys are the hashes of their values");
        }
        let t = crate::ir::body::flat_text(&w);
        for want in [
            r#"path_template: "/users/{id}/orders/{id}""#,
            r#"host: "api.example.com""#,
            r#"method: "POST""#,
            "path { key: \"id\" }",
            "path { key: \"id_2\" }",
            "query { key: \"a\" }",
            "query { key: \"b\" }",
            "header { key: \"User-Agent\" }",
            "auth { type: BEARER }",
            "cookie { key: \"session\" }",
            "cookie { key: \"sid\" }",
            "content_type: JSON",
            "response_code: 201",
            "unique_id",
            "processing_latency: 12.5",
            "api_type: HTTP_REST",
        ] {
            assert!(t.contains(want), "{want} in\n{t}");
        }
        assert!(!t.contains("sekrit"), "the credential is never kept");
        assert!(!t.contains("Content-Type"), "content type lives in the body meta");
        assert_eq!(m.args.len(), 2 + 2 + 2 + 1 + 2 + 1 + 1, "path, query, headers (Host, User-Agent, Content-Length), auth, cookies, body");
        // The wire form decodes back, and is what prost writes.
        let mut buf = Vec::new();
        b.encode(&built, &mut buf);
        let back = <pb::Witness as prost::Message>::decode_length_delimited(&buf[..]).unwrap();
        assert_eq!(back, w);
        let mut theirs = Vec::new();
        encode_delimited(&w, &mut theirs);
        assert_eq!(buf, theirs);
    }

    #[test]
    fn no_template_keeps_the_path_and_same_input_same_hash() {
        let ex = exchange(REQ, br#"{"name":"x"}"#, None);
        let mut b = WitnessBuilder::default();
        let built = b.build(&ex).unwrap();
        let (w, d1) = (built.to_pb(), built.digest);
        let t = crate::ir::body::flat_text(&w);
        assert!(t.contains(r#"path_template: "/users/1234/orders/af3c09e1""#), "{t}");
        assert!(!t.contains("path {"));
        assert!(!t.contains("responses"));
        let d2 = b.build(&ex).unwrap().digest;
        assert_eq!(d1, d2);
        assert_eq!(d1, crate::ir::digest(&w));
    }

    #[test]
    fn empty_response_and_absolute_targets() {
        let ex = exchange("GET http://h.example:81/p?q HTTP/1.1\r\n\r\n", b"", Some(("HTTP/1.1 204 No Content\r\n\r\n", b"")));
        let built = WitnessBuilder::default().build(&ex).unwrap();
        let (w, d) = (built.to_pb(), built.digest);
        let t = crate::ir::body::flat_text(&w);
        assert!(t.contains("empty {") && t.contains("response_code: 204"), "{t}");
        assert!(t.contains(r#"host: "h.example:81""#) && t.contains(r#"path_template: "/p""#), "{t}");
        assert_eq!(d, crate::ir::digest(&w));
        let ex = exchange("GET / HTTP/1.1\r\n\r\n", b"", None);
        let w = WitnessBuilder::default().build(&ex).unwrap().to_pb();
        assert!(crate::ir::body::flat_text(&w).contains(r#"host: "10.0.0.2:8080""#));
    }

    #[test]
    fn zero_values_and_redaction() {
        let ex = exchange(REQ, br#"{"name":"x","password":"hunter2"}"#, Some((RESP, br#"{"id":7}"#)));
        let mut b = WitnessBuilder::new(WitnessOptions { zero_values: true, ..Default::default() });
        let built = b.build(&ex).unwrap();
        let (w, d) = (built.to_pb(), built.digest);
        let t = crate::ir::body::flat_text(&w);
        assert!(!t.contains("hunter2") && !t.contains("curl") && !t.contains("value: 7"), "{t}");
        assert!(t.contains("int64_value { }"), "{t}");
        assert_eq!(d, crate::ir::digest(&w));

        let r = Arc::new(Redactor::builtin());
        let mut b = WitnessBuilder::new(WitnessOptions { redact: Some(r), ..Default::default() });
        let built = b.build(&ex).unwrap();
        let (w, d) = (built.to_pb(), built.digest);
        let t = crate::ir::body::flat_text(&w);
        for secret in ["hunter2", "abc", "dark", "xyz"] {
            assert!(!t.contains(&format!("\"{secret}\"")), "{secret} in {t}");
        }
        assert!(t.contains("is_sensitive: true") && t.contains("\"curl/8\""), "{t}");
        assert_eq!(b.stats.redactions, 4);
        assert_eq!(d, crate::ir::digest(&w));
    }

    #[test]
    fn targets() {
        assert_eq!(split_target(b"/a?b=1#f"), (&b"/a"[..], Some(&b"b=1"[..]), None));
        assert_eq!(split_target(b"HTTPS://x:1/y"), (&b"/y"[..], None, Some(&b"x:1"[..])));
        assert_eq!(split_target(b"http://x"), (&b""[..], None, Some(&b"x"[..])));
    }
}
