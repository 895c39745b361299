//! A compact value tree for building witnesses fast, hashed and encoded without going through
//! the `prost` types.
//!
//! Bodies, headers and parameters are built as [`Val`]s: a struct is a vector of fields sorted
//! by name (no tree map), a primitive is its scalar plus an optional format and a sensitivity
//! mark. [`Val`] stands for the `api_spec.Data` it would convert to ([`Val::to_pb`]):
//! [`hash_data`] gives exactly the ObjectHash of that `Data` (same rules as [`super::hash`],
//! checked against it in the tests), and [`Sizes`] + [`encode_data`] write its protobuf
//! encoding in two linear passes (sizes first, bottom-up, then bytes), where `prost` would
//! recompute the length of every nested message at every level. The bytes decode to the same
//! message as `prost`'s own encoding (fields in number order; map entries in key order).

use std::sync::Arc;

use super::formats::Format;
use super::hash::{
    Digest, EMPTY_MESSAGE, FIELD_KEYS, h_bool, h_bytes, h_f64, h_i64, h_str, h_u64, word, xxh64_tag_bytes8, xxh64_tag_words,
};
use super::pb;
use compact_str::CompactString;
use rustc_hash::FxHashMap;

/// A scalar value.
#[derive(Clone, Debug, PartialEq)]
pub enum Scalar {
    /// Up to 24 bytes inline: most API values need no allocation.
    Str(CompactString),
    Bytes(Vec<u8>),
    I64(i64),
    U64(u64),
    F64(f64),
    Bool(bool),
}

/// A primitive: a scalar, its detected format, and whether it was redacted.
#[derive(Clone, Debug, PartialEq)]
pub struct Prim {
    pub val: Scalar,
    pub format: Option<&'static Format>,
    pub sensitive: bool,
}

impl Prim {
    pub fn new(val: Scalar) -> Prim {
        Prim { val, format: None, sensitive: false }
    }
}

/// A struct field name with its hash (`H('u', name)`), computed once; names seen often are
/// shared through an [`Interner`].
#[derive(Clone, Debug)]
pub struct Key {
    pub name: Arc<str>,
    hash: Digest,
}

impl Key {
    pub fn new(name: &str) -> Key {
        Key { name: Arc::from(name), hash: h_str(name) }
    }
}

impl PartialEq for Key {
    fn eq(&self, o: &Key) -> bool {
        self.name == o.name
    }
}

impl From<&str> for Key {
    fn from(s: &str) -> Key {
        Key::new(s)
    }
}

impl From<String> for Key {
    fn from(s: String) -> Key {
        Key::new(&s)
    }
}

/// Shares the names of struct fields, and their hashes, from body to body (API bodies use the
/// same few names over and over). Bounded: it starts over past [`Interner::CAP`] names.
#[derive(Default)]
pub struct Interner {
    names: FxHashMap<Arc<str>, Digest>,
}

impl Interner {
    pub const CAP: usize = 16_384;

    pub fn key(&mut self, name: &str) -> Key {
        if let Some((k, h)) = self.names.get_key_value(name) {
            return Key { name: k.clone(), hash: *h };
        }
        if self.names.len() >= Self::CAP {
            self.names.clear();
        }
        let k = Key::new(name);
        self.names.insert(k.name.clone(), k.hash);
        k
    }
}

/// A value: `Data` without meta.
#[derive(Clone, Debug, PartialEq)]
pub enum Val {
    Prim(Prim),
    List(Vec<Val>),
    /// Fields sorted by name, names unique.
    Struct(Vec<(Key, Val)>),
    /// `optional { none {} }` (JSON `null`).
    Null,
    /// A `Data` with no value (an `HTTPEmpty` response).
    Empty,
    /// A value already hashed and encoded (a JSON body, built in one pass by
    /// [`super::body::json`]): zeroing and redaction were applied as it was built.
    Encoded(Box<Encoded>),
}

/// A value hashed and encoded as it was parsed.
#[derive(Clone, Debug, PartialEq)]
pub struct Encoded {
    /// The `Data.value` member it sets (1 primitive, 2 struct, 3 list, 4 optional).
    pub member: u8,
    /// The hash of that member's message.
    pub member_hash: Digest,
    /// The content of its `Data` message: the member's tag, length and message.
    pub bytes: Vec<u8>,
}

impl Val {
    /// A struct from fields in any order; a repeated name keeps its last value.
    pub fn struct_last_wins(mut fields: Vec<(Key, Val)>) -> Val {
        fields.reverse();
        fields.sort_by(|a, b| a.0.name.cmp(&b.0.name));
        fields.dedup_by(|later, earlier| later.0 == earlier.0);
        Val::Struct(fields)
    }

    /// A struct from fields in any order; a repeated name maps to a list of its values in
    /// order.
    pub fn struct_grouped(mut fields: Vec<(Key, Val)>) -> Val {
        fields.sort_by(|a, b| a.0.name.cmp(&b.0.name));
        let mut out: Vec<(Key, Val)> = Vec::with_capacity(fields.len());
        let mut run: Vec<Val> = Vec::new();
        let mut it = fields.into_iter().peekable();
        while let Some((k, v)) = it.next() {
            run.push(v);
            if it.peek().is_none_or(|(n, _)| *n != k) {
                let v = if run.len() == 1 { run.pop().expect("one") } else { Val::List(std::mem::take(&mut run)) };
                out.push((k, v));
            }
        }
        Val::Struct(out)
    }

    /// The `prost` message this value stands for (for tests, tools and checks).
    pub fn to_pb(&self) -> pb::Data {
        use pb::data::Value as D;
        let value = match self {
            Val::Prim(p) => Some(D::Primitive(p.to_pb())),
            Val::List(l) => Some(D::List(pb::List { elems: l.iter().map(Val::to_pb).collect() })),
            Val::Struct(f) => {
                Some(D::Struct(pb::Struct { fields: f.iter().map(|(k, v)| (k.name.to_string(), v.to_pb())).collect(), map_type: None }))
            }
            Val::Null => Some(D::Optional(pb::Optional { value: Some(pb::optional::Value::None(pb::NoneValue {})) })),
            Val::Empty => None,
            Val::Encoded(e) => {
                use prost::Message;
                return pb::Data::decode(&e.bytes[..]).expect("an encoded value decodes");
            }
        };
        pb::Data { value, ..Default::default() }
    }

    /// Calls `f` on every primitive below (and at) `self`, except inside an
    /// [`Val::Encoded`] value (which has none left to change).
    pub fn for_each_prim_mut(&mut self, f: &mut impl FnMut(&mut Prim)) {
        match self {
            Val::Prim(p) => f(p),
            Val::List(l) => l.iter_mut().for_each(|v| v.for_each_prim_mut(f)),
            Val::Struct(s) => s.iter_mut().for_each(|(_, v)| v.for_each_prim_mut(f)),
            Val::Null | Val::Empty | Val::Encoded(_) => {}
        }
    }
}

impl Prim {
    pub fn to_pb(&self) -> pb::Primitive {
        use pb::primitive::Value as V;
        let value = match &self.val {
            Scalar::Str(s) => V::StringValue(pb::Str { r#type: None, value: s.to_string() }),
            Scalar::Bytes(b) => V::BytesValue(pb::Bytes { r#type: None, value: b.clone() }),
            Scalar::I64(x) => V::Int64Value(pb::Int64 { r#type: None, value: *x }),
            Scalar::U64(x) => V::Uint64Value(pb::Uint64 { r#type: None, value: *x }),
            Scalar::F64(x) => V::DoubleValue(pb::Double { r#type: None, value: *x }),
            Scalar::Bool(x) => V::BoolValue(pb::Bool { r#type: None, value: *x }),
        };
        let mut p = pb::Primitive { value: Some(value), ..Default::default() };
        if let Some(f) = self.format {
            p.formats.insert(f.name.to_string(), true);
            p.format_kind = f.kind.to_string();
        }
        if self.sensitive {
            p.akita_annotations = Some(pb::AkitaAnnotations { is_sensitive: true, ..Default::default() });
        }
        p
    }
}

// ---------------------------------------------------------------------------------------------
// Hash: the ObjectHash of the `Data` each value stands for.

/// `H('d', sorted(k ‖ v))` over at most 4 fields, kept sorted (by key bytes) as they are added.
pub(crate) struct Msg {
    /// Key and value of each entry, as words ([`word`]).
    words: [u64; 8],
    n: usize,
}

impl Msg {
    #[inline]
    pub(crate) fn new() -> Msg {
        Msg { words: [0; 8], n: 0 }
    }
    #[inline]
    pub(crate) fn put(&mut self, field: usize, v: Digest) {
        let k = FIELD_KEYS[field];
        // Insertion into the sorted entries (at most 4); keys compare as their bytes do.
        let key_order = u64::from_be_bytes(k.0);
        let mut i = self.n;
        while i > 0 && self.words[2 * (i - 1)].swap_bytes() > key_order {
            self.words[2 * i] = self.words[2 * (i - 1)];
            self.words[2 * i + 1] = self.words[2 * (i - 1) + 1];
            i -= 1;
        }
        self.words[2 * i] = word(k);
        self.words[2 * i + 1] = word(v);
        self.n += 1;
    }
    #[inline]
    pub(crate) fn finish(self) -> Digest {
        Digest(xxh64_tag_words(b'd', &self.words[..2 * self.n]).to_be_bytes())
    }
}

/// A message whose only set field is `field` = `v`.
#[inline(always)]
pub(crate) fn one(field: usize, v: Digest) -> Digest {
    Digest(xxh64_tag_words(b'd', &[word(FIELD_KEYS[field]), word(v)]).to_be_bytes())
}

/// The hash of a primitive's `Primitive` message.
pub(crate) fn prim_hash(p: &Prim) -> Digest {
    // X { type [1]; value [2] }: the value field when not zero.
    let (member, inner) = match &p.val {
        Scalar::Str(s) => (4, if s.is_empty() { EMPTY_MESSAGE } else { one(2, h_str(s)) }),
        Scalar::Bytes(b) => (3, if b.is_empty() { EMPTY_MESSAGE } else { one(2, h_bytes(b)) }),
        Scalar::I64(x) => (6, if *x == 0 { EMPTY_MESSAGE } else { one(2, h_i64(*x)) }),
        Scalar::U64(x) => (8, if *x == 0 { EMPTY_MESSAGE } else { one(2, h_u64(*x)) }),
        Scalar::F64(x) => (9, if *x == 0.0 { EMPTY_MESSAGE } else { one(2, h_f64(*x)) }),
        Scalar::Bool(x) => (2, if *x { one(2, h_bool(true)) } else { EMPTY_MESSAGE }),
    };
    prim_msg_hash(member, inner, p.sensitive, p.format)
}

/// [`prim_hash`] of a string primitive, neither redacted nor zeroed, from a borrowed string.
#[inline]
pub(crate) fn str_prim_hash(s: &str, format: Option<&'static Format>) -> Digest {
    prim_msg_hash(4, if s.is_empty() { EMPTY_MESSAGE } else { one(2, h_str(s)) }, false, format)
}

/// The hash of `Primitive { <member>: inner, akita_annotations, formats, format_kind }`.
#[inline]
fn prim_msg_hash(member: usize, inner: Digest, sensitive: bool, format: Option<&'static Format>) -> Digest {
    if !sensitive && format.is_none() {
        return one(member, inner);
    }
    let mut m = Msg::new();
    m.put(member, inner);
    if sensitive {
        m.put(11, one(2, h_bool(true)));
    }
    if let Some(f) = format {
        m.put(13, Digest(f.formats_hash));
        m.put(14, Digest(f.kind_hash));
    }
    m.finish()
}

/// Reusable buffers for hashing value trees: sorted map entries, list element hashes.
#[derive(Default)]
pub struct Scratch {
    entries: Vec<[u8; 16]>,
    elems: Vec<[u8; 8]>,
}

/// `H('d', entries)` over sorted `(key hash, value hash)` entries: the hash of a `Struct`'s
/// fields map, as its one-field message (`Struct.fields` [1]).
#[inline]
pub(crate) fn struct_member_hash(entries: &mut [[u8; 16]]) -> Digest {
    if entries.is_empty() {
        return EMPTY_MESSAGE;
    }
    one(1, map_hash(entries))
}

/// `H('d', sorted entries)`: the hash of a map from its `(key hash, value hash)` entries.
#[inline]
pub(crate) fn map_hash(entries: &mut [[u8; 16]]) -> Digest {
    sort_pairs(entries);
    Digest(xxh64_tag_bytes8(b'd', entries.as_flattened()).to_be_bytes())
}

/// Sorts `(key hash, value hash)` pairs in byte order, comparing them as two big-endian words
/// (each read where one store wrote it) rather than byte by byte.
pub(crate) fn sort_pairs(entries: &mut [[u8; 16]]) {
    let key = |e: &[u8; 16]| {
        let (a, b) = e.split_at(8);
        (u64::from_be_bytes(a.try_into().expect("8 bytes")), u64::from_be_bytes(b.try_into().expect("8 bytes")))
    };
    entries.sort_unstable_by_key(key);
}

/// `H('l', element hashes)` as the one-field message `List { elems [1] }`.
#[inline]
pub(crate) fn list_member_hash(elems: &[[u8; 8]]) -> Digest {
    if elems.is_empty() {
        return EMPTY_MESSAGE;
    }
    one(1, Digest(xxh64_tag_bytes8(b'l', elems.as_flattened()).to_be_bytes()))
}

/// The hash of the value alone (the `value` member of its `Data`), `None` for [`Val::Empty`].
fn value_hash(v: &Val, scratch: &mut Scratch) -> Option<(usize, Digest)> {
    Some(match v {
        Val::Prim(p) => (1, prim_hash(p)),
        Val::Struct(fields) => {
            let base = scratch.entries.len();
            for (k, d) in fields {
                let vh = hash_data(d, None, scratch);
                let mut e = [0u8; 16];
                e[..8].copy_from_slice(&k.hash.0);
                e[8..].copy_from_slice(&vh.0);
                scratch.entries.push(e);
            }
            let inner = struct_member_hash(&mut scratch.entries[base..]);
            scratch.entries.truncate(base);
            (2, inner)
        }
        Val::List(elems) => {
            let base = scratch.elems.len();
            for e in elems {
                let h = hash_data(e, None, scratch);
                scratch.elems.push(h.0);
            }
            let inner = list_member_hash(&scratch.elems[base..]);
            scratch.elems.truncate(base);
            (3, inner)
        }
        Val::Null => (4, one(2, EMPTY_MESSAGE)),
        Val::Empty => return None,
        Val::Encoded(e) => (usize::from(e.member), e.member_hash),
    })
}

/// The ObjectHash of `Data { value: v, meta }`; `scratch` is reused for sorting map entries.
pub fn hash_data(v: &Val, meta: Option<Digest>, scratch: &mut Scratch) -> Digest {
    if meta.is_none() {
        return match value_hash(v, scratch) {
            Some((field, h)) => one(field, h),
            None => EMPTY_MESSAGE,
        };
    }
    let mut m = Msg::new();
    if let Some((field, h)) = value_hash(v, scratch) {
        m.put(field, h);
    }
    if let Some(meta) = meta {
        m.put(5, meta);
    }
    m.finish()
}

// ---------------------------------------------------------------------------------------------
// Encoding.

pub(crate) fn varint_len(v: u64) -> usize {
    (64 - (v | 1).leading_zeros() as usize).div_ceil(7)
}

pub(crate) fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// Length-delimited field with a one-byte tag: its whole size given the content's.
pub(crate) fn ld(content: usize) -> usize {
    1 + varint_len(content as u64) + content
}

fn scalar_inner(s: &Scalar) -> usize {
    match s {
        Scalar::Str(x) if !x.is_empty() => ld(x.len()),
        Scalar::Bytes(x) if !x.is_empty() => ld(x.len()),
        Scalar::I64(x) if *x != 0 => 1 + varint_len(*x as u64),
        Scalar::U64(x) if *x != 0 => 1 + varint_len(*x),
        Scalar::F64(x) if *x != 0.0 => 1 + 8,
        Scalar::Bool(true) => 2,
        _ => 0,
    }
}

pub(crate) fn prim_size(p: &Prim) -> usize {
    prim_size_of(scalar_inner(&p.val), p.sensitive, p.format)
}

/// [`prim_size`] of a string primitive, neither redacted nor zeroed, of `len` bytes.
#[inline]
pub(crate) fn str_prim_size(len: usize, format: Option<&'static Format>) -> usize {
    prim_size_of(if len == 0 { 0 } else { ld(len) }, false, format)
}

#[inline]
fn prim_size_of(inner: usize, sensitive: bool, format: Option<&'static Format>) -> usize {
    let mut n = ld(inner);
    if sensitive {
        n += ld(2);
    }
    if let Some(f) = format {
        n += ld(ld(f.name.len()) + 2);
        n += ld(f.kind.len());
    }
    n
}

/// Encoded sizes of the `Data` messages of a tree, in pre-order, computed once.
#[derive(Default)]
pub struct Sizes {
    v: Vec<u32>,
    at: usize,
}

impl Sizes {
    /// Clears and computes the sizes for `v`; returns the size of its `Data` (without meta).
    pub fn compute(&mut self, v: &Val) -> usize {
        self.v.clear();
        self.at = 0;
        self.data(v)
    }

    /// Appends the sizes for another tree (several trees encoded in order).
    pub fn add(&mut self, v: &Val) -> usize {
        self.data(v)
    }

    pub fn clear(&mut self) {
        self.v.clear();
        self.at = 0;
    }

    /// Records the size of `v`'s value message (pre-order) and returns the size of its `Data`.
    fn data(&mut self, v: &Val) -> usize {
        let slot = self.v.len();
        self.v.push(0);
        let inner = match v {
            Val::Prim(p) => prim_size(p),
            Val::Struct(fields) => {
                let mut inner = 0;
                for (k, d) in fields {
                    let dn = self.data(d);
                    let key = if k.name.is_empty() { 0 } else { ld(k.name.len()) };
                    inner += ld(key + ld(dn));
                }
                inner
            }
            Val::List(elems) => elems.iter().map(|d| ld(self.data(d))).sum(),
            Val::Null => 2,
            Val::Empty => 0,
            // Its size is the whole `Data` content's.
            Val::Encoded(e) => e.bytes.len(),
        };
        self.v[slot] = inner as u32;
        data_size(v, inner)
    }

    fn next(&mut self) -> usize {
        let n = self.v[self.at];
        self.at += 1;
        n as usize
    }

    /// The `Data` size of the next node, without moving on.
    fn peek_data(&self, v: &Val) -> usize {
        data_size(v, self.v[self.at] as usize)
    }
}

fn data_size(v: &Val, inner: usize) -> usize {
    match v {
        Val::Empty => 0,
        Val::Encoded(_) => inner,
        _ => ld(inner),
    }
}

pub(crate) fn put_ld_head(out: &mut Vec<u8>, tag: u8, len: usize) {
    out.push(tag);
    put_varint(out, len as u64);
}

fn put_str_field(out: &mut Vec<u8>, tag: u8, s: &[u8]) {
    put_ld_head(out, tag, s.len());
    out.extend_from_slice(s);
}

pub(crate) fn encode_prim(p: &Prim, out: &mut Vec<u8>) {
    // Primitive.value member: a message holding `value` [2].
    let member: u8 = match &p.val {
        Scalar::Str(_) => 4,
        Scalar::Bytes(_) => 3,
        Scalar::I64(_) => 6,
        Scalar::U64(_) => 8,
        Scalar::F64(_) => 9,
        Scalar::Bool(_) => 2,
    };
    let inner = scalar_inner(&p.val);
    put_ld_head(out, (member << 3) | 2, inner);
    if inner > 0 {
        match &p.val {
            Scalar::Str(s) => put_str_field(out, 0x12, s.as_bytes()),
            Scalar::Bytes(b) => put_str_field(out, 0x12, b),
            Scalar::I64(x) => {
                out.push(0x10);
                put_varint(out, *x as u64);
            }
            Scalar::U64(x) => {
                out.push(0x10);
                put_varint(out, *x);
            }
            Scalar::F64(x) => {
                out.push(0x11);
                out.extend_from_slice(&x.to_le_bytes());
            }
            Scalar::Bool(_) => out.extend_from_slice(&[0x10, 1]),
        }
    }
    encode_prim_meta(p.sensitive, p.format, out);
}

/// [`encode_prim`] of a string primitive, neither redacted nor zeroed, from a borrowed string.
#[inline]
pub(crate) fn encode_str_prim(s: &str, format: Option<&'static Format>, out: &mut Vec<u8>) {
    if s.is_empty() {
        out.extend_from_slice(&[(4 << 3) | 2, 0]);
    } else {
        put_ld_head(out, (4 << 3) | 2, ld(s.len()));
        put_str_field(out, 0x12, s.as_bytes());
    }
    encode_prim_meta(false, format, out);
}

/// A primitive's sensitivity mark and format.
#[inline]
fn encode_prim_meta(sensitive: bool, format: Option<&'static Format>, out: &mut Vec<u8>) {
    if sensitive {
        // akita_annotations [11] { is_sensitive [2]: true }
        out.extend_from_slice(&[(11 << 3) | 2, 2, 0x10, 1]);
    }
    if let Some(f) = format {
        // formats [13] { key [1]: name, value [2]: true }, format_kind [14]
        put_ld_head(out, (13 << 3) | 2, ld(f.name.len()) + 2);
        put_str_field(out, 0x0a, f.name.as_bytes());
        out.extend_from_slice(&[0x10, 1]);
        put_str_field(out, (14 << 3) | 2, f.kind.as_bytes());
    }
}

/// Writes the content of the `Data` message of `v` (its value member; the caller adds meta),
/// using sizes from `sizes` in the order they were computed.
pub fn encode_data(v: &Val, sizes: &mut Sizes, out: &mut Vec<u8>) {
    let inner = sizes.next();
    match v {
        Val::Prim(p) => {
            put_ld_head(out, 0x0a, inner);
            encode_prim(p, out);
        }
        Val::Struct(fields) => {
            put_ld_head(out, 0x12, inner);
            for (k, d) in fields {
                let dn = sizes.peek_data(d);
                let key = if k.name.is_empty() { 0 } else { ld(k.name.len()) };
                put_ld_head(out, 0x0a, key + ld(dn));
                if !k.name.is_empty() {
                    put_str_field(out, 0x0a, k.name.as_bytes());
                }
                put_ld_head(out, 0x12, dn);
                encode_data(d, sizes, out);
            }
        }
        Val::List(elems) => {
            put_ld_head(out, 0x1a, inner);
            for d in elems {
                put_ld_head(out, 0x0a, sizes.peek_data(d));
                encode_data(d, sizes, out);
            }
        }
        Val::Null => out.extend_from_slice(&[0x22, 2, 0x12, 0]),
        Val::Empty => {}
        Val::Encoded(e) => out.extend_from_slice(&e.bytes),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ir::formats;

    fn s(x: &str) -> Val {
        Val::Prim(Prim::new(Scalar::Str(x.into())))
    }

    fn sample() -> Vec<Val> {
        let uuid = Prim { val: Scalar::Str("123e4567-e89b-12d3-a456-426614174000".into()), format: Some(&formats::UUID), sensitive: false };
        let red = Prim { val: Scalar::Str(CompactString::default()), format: None, sensitive: true };
        let long = "x".repeat(300);
        vec![
            s(""),
            s("abc"),
            Val::Prim(uuid),
            Val::Prim(red),
            Val::Prim(Prim::new(Scalar::I64(0))),
            Val::Prim(Prim::new(Scalar::I64(-5))),
            Val::Prim(Prim::new(Scalar::U64(u64::MAX))),
            Val::Prim(Prim::new(Scalar::F64(1.5))),
            Val::Prim(Prim::new(Scalar::F64(0.0))),
            Val::Prim(Prim::new(Scalar::Bool(true))),
            Val::Prim(Prim::new(Scalar::Bool(false))),
            Val::Prim(Prim::new(Scalar::Bytes(vec![0, 255]))),
            Val::Prim(Prim::new(Scalar::Bytes(vec![]))),
            Val::Null,
            Val::Empty,
            Val::List(vec![]),
            Val::Struct(vec![]),
            Val::List(vec![s("a"), Val::Null, Val::List(vec![s(&long)])]),
            Val::struct_last_wins(vec![
                ("b".into(), s("1")),
                ("a".into(), Val::Struct(vec![("".into(), s("empty key")), ("z".into(), Val::List(vec![s("q"); 200]))])),
                ("b".into(), s("2")),
            ]),
        ]
    }

    #[test]
    fn hashes_equal_the_prost_messages() {
        let mut scratch = Scratch::default();
        let mut h = crate::ir::ObjectHasher::new();
        for v in sample() {
            assert_eq!(hash_data(&v, None, &mut scratch), h.digest(&v.to_pb()), "{v:?}");
            let meta = pb::DataMeta {
                meta: Some(pb::data_meta::Meta::Http(pb::HttpMeta {
                    location: Some(pb::http_meta::Location::Header(pb::HttpHeader { key: "K".into() })),
                    response_code: 200,
                })),
            };
            let mut d = v.to_pb();
            d.meta = Some(meta.clone());
            assert_eq!(hash_data(&v, Some(h.digest(&meta)), &mut scratch), h.digest(&d));
        }
    }

    #[test]
    fn encodings_decode_to_the_prost_messages() {
        use prost::Message;
        let mut sizes = Sizes::default();
        for v in sample() {
            let n = sizes.compute(&v);
            let mut out = Vec::new();
            encode_data(&v, &mut sizes, &mut out);
            assert_eq!(out.len(), n, "{v:?}");
            let back = pb::Data::decode(&out[..]).unwrap();
            assert_eq!(back, v.to_pb());
            assert_eq!(n, v.to_pb().encoded_len(), "same size as prost's");
        }
    }

    #[test]
    fn grouping() {
        let g = Val::struct_grouped(vec![("a".into(), s("1")), ("b".into(), s("x")), ("a".into(), s("2"))]);
        assert_eq!(g, Val::Struct(vec![("a".into(), Val::List(vec![s("1"), s("2")])), ("b".into(), s("x"))]));
        let l = Val::struct_last_wins(vec![("a".into(), s("1")), ("a".into(), s("2"))]);
        assert_eq!(l, Val::Struct(vec![("a".into(), s("2"))]));
    }
}
