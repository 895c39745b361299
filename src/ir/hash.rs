//! The witness hash: ObjectHash over XXH64, computed without reflection.
//!
//! `H(tag, bytes)` is XXH64 (seed 0) of the tag byte followed by the bytes, as 8 big-endian
//! bytes. A message hashes as `H('d', concat(k ‖ v))` over its *set* fields, where
//! `k = H('i', decimal(field number))`, in the order of the `k` bytes. Every message type
//! implements [`ObjectHash`] by hand: the key hashes of field numbers 0..=19 are computed at
//! compile time ([`FIELD_KEYS`]), and each impl visits its fields in an order that is also a
//! compile-time constant (see `key_order`), so nothing but map entries is sorted at run time.
//! Map entries are sorted in the [`ObjectHasher`]'s scratch buffer, one buffer shared by every
//! map of every nesting level, so hashing allocates nothing once that buffer has grown.
//!
//! Rules (from `shared/docs/ir.md`): unset proto3 fields (zero scalars, `-0.0`, empty
//! strings, bytes, lists and maps, absent messages) are left out; the chosen member of a oneof is
//! always hashed; inside lists and maps every value is hashed; map keys are hashed as `u` strings
//! exactly as stored (a key is never recomputed from its value); `HTTPMethodMeta.processing_latency`
//! and `Data.example_values` are excluded.
//!
//! Floats (tag `f`, float32 widened to float64) hash a text payload: `Infinity`, `-Infinity`,
//! `NaN`, `+0:` for zero, else the sign, the exponent `e` such that `0.5 < |x| / 2^e <= 1` in
//! decimal, `:`, and the bits of `|x| / 2^e` from the `2^0` place down to the last `1`
//! (so `1.0` is `+0:1`, `0.5` is `+-1:1`, `3.0` is `+2:011`).

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE;
use xxhash_rust::const_xxh64;
use xxhash_rust::xxh64::{Xxh64, xxh64};

use super::pb;

/// An 8-byte hash (the big-endian XXH64 digest).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Digest(pub [u8; 8]);

/// Length of [`Digest`]'s text form: base64url with padding.
pub const TEXT_LEN: usize = 12;

impl Digest {
    /// The 8 digest bytes.
    pub const fn bytes(self) -> [u8; 8] {
        self.0
    }

    /// The text form (base64url with `=` padding, 12 characters), as used for map keys.
    pub fn to_text(self) -> String {
        URL_SAFE.encode(self.0)
    }

    /// Writes the text form into `buf` without allocating and returns it.
    pub fn encode_text(self, buf: &mut [u8; TEXT_LEN]) -> &str {
        let n = URL_SAFE.encode_slice(self.0, buf).expect("8 bytes always encode to 12");
        debug_assert_eq!(n, TEXT_LEN);
        // base64 output is ASCII.
        std::str::from_utf8(&buf[..n]).expect("base64 is ASCII")
    }

    /// Parses the text form.
    pub fn from_text(s: &str) -> Option<Digest> {
        let mut out = [0u8; 9];
        match URL_SAFE.decode_slice(s, &mut out) {
            Ok(8) if s.len() == TEXT_LEN => {
                let mut d = [0u8; 8];
                d.copy_from_slice(&out[..8]);
                Some(Digest(d))
            }
            _ => None,
        }
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut buf = [0u8; TEXT_LEN];
        f.write_str(self.encode_text(&mut buf))
    }
}

impl fmt::Debug for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Digest({self})")
    }
}

/// Error of [`Digest::from_str`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not a 12-character base64url digest")]
pub struct BadDigest;

impl FromStr for Digest {
    type Err = BadDigest;
    fn from_str(s: &str) -> Result<Self, BadDigest> {
        Digest::from_text(s).ok_or(BadDigest)
    }
}

/// The hash of a message or value, computed by hand per type (no reflection).
pub trait ObjectHash {
    /// The hash of `self`; `h` lends its scratch buffer for sorting map entries.
    fn object_hash(&self, h: &mut ObjectHasher) -> Digest;
}

/// Reusable state for hashing: the scratch buffer in which map entries are sorted.
///
/// Keep one per thread (or per loop) to hash many witnesses without allocating.
#[derive(Debug, Default)]
pub struct ObjectHasher {
    /// `(key hash ‖ value hash)` of the entries of every map being hashed, innermost last.
    scratch: Vec<[u8; 16]>,
}

impl ObjectHasher {
    pub fn new() -> Self {
        Self::default()
    }

    /// The hash of `v`.
    pub fn digest<T: ObjectHash + ?Sized>(&mut self, v: &T) -> Digest {
        let d = v.object_hash(self);
        debug_assert!(self.scratch.is_empty());
        d
    }

    /// Hashes a map as `H('d', concat over entries sorted by key hash of (key hash ‖ value
    /// hash))`, keys as `u` strings. The caller leaves an empty map out (it is unset).
    fn map<'m, V: 'm>(
        &mut self,
        entries: impl Iterator<Item = (&'m String, &'m V)>,
        mut value: impl FnMut(&mut Self, &'m V) -> Digest,
    ) -> Digest {
        let base = self.scratch.len();
        for (k, v) in entries {
            // Nested maps push above `base + i` and truncate back before returning.
            let vh = value(self, v);
            let kh = h_str(k);
            let mut e = [0u8; 16];
            e[..8].copy_from_slice(&kh.0);
            e[8..].copy_from_slice(&vh.0);
            self.scratch.push(e);
        }
        let entries = &mut self.scratch[base..];
        super::value::sort_pairs(entries);
        let mut st = Xxh64::new(0);
        st.update(b"d");
        st.update(entries.as_flattened());
        self.scratch.truncate(base);
        Digest(st.digest().to_be_bytes())
    }
}

thread_local! {
    static HASHER: RefCell<ObjectHasher> = RefCell::new(ObjectHasher::new());
}

/// The hash of `v`, using a per-thread [`ObjectHasher`].
pub fn digest<T: ObjectHash + ?Sized>(v: &T) -> Digest {
    HASHER.with(|h| match h.try_borrow_mut() {
        Ok(mut h) => h.digest(v),
        Err(_) => ObjectHasher::new().digest(v),
    })
}

/// The 8 bytes of the hash of `v`.
pub fn digest_bytes<T: ObjectHash + ?Sized>(v: &T) -> [u8; 8] {
    digest(v).0
}

/// The text form of the hash of `v` (base64url with padding, 12 characters).
pub fn digest_text<T: ObjectHash + ?Sized>(v: &T) -> String {
    digest(v).to_text()
}

// ---------------------------------------------------------------------------------------------
// Primitive hashes.

// XXH64 (seed 0) over inputs read in place: a tag byte followed by a slice, or by 8-byte
// words. One algorithm, [`xxh64_virtual`], given how to read the input at a byte offset.

const P1: u64 = 0x9E37_79B1_85EB_CA87;
const P2: u64 = 0xC2B2_AE3D_27D4_EB4F;
const P3: u64 = 0x1656_67B1_9E37_79F9;
const P4: u64 = 0x85EB_CA77_C2B2_AE63;
const P5: u64 = 0x27D4_EB2F_1656_67C5;

#[inline(always)]
fn round(acc: u64, x: u64) -> u64 {
    acc.wrapping_add(x.wrapping_mul(P2)).rotate_left(31).wrapping_mul(P1)
}

/// XXH64 (seed 0) of `total` bytes that are not laid out in memory: `r64(o)`, `r32(o)` and
/// `r8(o)` read 8, 4 and 1 bytes at offset `o` (little-endian). The readers are inlined, so
/// each input shape gets its own straight-line code.
#[inline(always)]
fn xxh64_virtual(total: usize, r64: impl Fn(usize) -> u64, r32: impl Fn(usize) -> u32, r8: impl Fn(usize) -> u8) -> u64 {
    let mut o = 0;
    let mut h = if total >= 32 {
        let mut v = [P1.wrapping_add(P2), P2, 0, 0u64.wrapping_sub(P1)];
        while o + 32 <= total {
            for (k, v) in v.iter_mut().enumerate() {
                *v = round(*v, r64(o + 8 * k));
            }
            o += 32;
        }
        let mut h =
            v[0].rotate_left(1).wrapping_add(v[1].rotate_left(7)).wrapping_add(v[2].rotate_left(12)).wrapping_add(v[3].rotate_left(18));
        for v in v {
            h ^= round(0, v);
            h = h.wrapping_mul(P1).wrapping_add(P4);
        }
        h
    } else {
        P5
    };
    h = h.wrapping_add(total as u64);
    while o + 8 <= total {
        h ^= round(0, r64(o));
        h = h.rotate_left(27).wrapping_mul(P1).wrapping_add(P4);
        o += 8;
    }
    if o + 4 <= total {
        h ^= u64::from(r32(o)).wrapping_mul(P1);
        h = h.rotate_left(23).wrapping_mul(P2).wrapping_add(P3);
        o += 4;
    }
    while o < total {
        h ^= u64::from(r8(o)).wrapping_mul(P5);
        h = h.rotate_left(11).wrapping_mul(P1);
        o += 1;
    }
    h ^= h >> 33;
    h = h.wrapping_mul(P2);
    h ^= h >> 29;
    h = h.wrapping_mul(P3);
    h ^ (h >> 32)
}

/// XXH64 (seed 0) of `tag` followed by the 8-byte words `xs` (each the little-endian reading
/// of its 8 bytes), computed in registers: the same value as `xxh64` over those `1 + 8m` bytes.
/// Message hashes are of a tag and 16-byte entries; laying them out in a byte buffer and
/// reading the words back, one byte off, stalls the CPU on every word (a load that spans two
/// recent stores cannot be forwarded from them).
#[inline(always)]
pub fn xxh64_tag_words(tag: u8, xs: &[u64]) -> u64 {
    xxh64_tag_with(tag, xs.len(), |j| xs[j])
}

/// [`xxh64_tag_words`] over the words of `bytes` (a multiple of 8 long).
#[inline]
pub fn xxh64_tag_bytes8(tag: u8, bytes: &[u8]) -> u64 {
    debug_assert!(bytes.len().is_multiple_of(8));
    xxh64_tag_with(tag, bytes.len() / 8, |j| u64::from_le_bytes(bytes[8 * j..8 * j + 8].try_into().expect("8 bytes")))
}

#[inline(always)]
fn xxh64_tag_with(tag: u8, m: usize, x: impl Fn(usize) -> u64) -> u64 {
    // Byte o > 0 of the input is byte (o - 1) % 8 of word (o - 1) / 8; the input is 1 + 8m
    // bytes, so 8-byte reads are at multiples of 8 and the last byte is read alone.
    let r8 = |o: usize| if o == 0 { tag } else { (x((o - 1) / 8) >> (8 * ((o - 1) % 8))) as u8 };
    let r64 = |o: usize| {
        let j = o / 8;
        (if j == 0 { u64::from(tag) } else { x(j - 1) >> 56 }) | x(j) << 8
    };
    let r32 = |o: usize| u32::from_le_bytes([r8(o), r8(o + 1), r8(o + 2), r8(o + 3)]);
    xxh64_virtual(1 + 8 * m, r64, r32, r8)
}

/// A digest as the word [`xxh64_tag_words`] reads it.
#[inline(always)]
pub fn word(d: Digest) -> u64 {
    u64::from_le_bytes(d.0)
}

/// `H(tag, bytes)`.
#[inline]
pub fn tagged(tag: u8, bytes: &[u8]) -> Digest {
    Digest(xxh64_prefixed(tag, bytes).to_be_bytes())
}

/// XXH64 (seed 0) of `tag` followed by `data`, read in place: the same value as `xxh64` of the
/// concatenation, without copying `data` behind its tag. Every string and bytes value is
/// hashed this way.
#[inline]
pub fn xxh64_prefixed(tag: u8, data: &[u8]) -> u64 {
    // Input byte `o` is `tag` at 0, else `data[o - 1]`. The reads at 0 are built in registers
    // (bytes stored to a buffer and read back as a word stall the load).
    let r64 = |o: usize| -> u64 {
        if o == 0 {
            let low7 = match data.first_chunk::<8>() {
                Some(c) => u64::from_le_bytes(*c),
                None => data[..7].iter().rev().fold(0, |v, &c| v << 8 | u64::from(c)),
            };
            u64::from(tag) | low7 << 8
        } else {
            u64::from_le_bytes(data[o - 1..o + 7].try_into().expect("8 bytes"))
        }
    };
    let r32 = |o: usize| -> u32 {
        if o == 0 {
            u32::from(tag) | u32::from(data[0]) << 8 | u32::from(data[1]) << 16 | u32::from(data[2]) << 24
        } else {
            u32::from_le_bytes(data[o - 1..o + 3].try_into().expect("4 bytes"))
        }
    };
    let r8 = |o: usize| if o == 0 { tag } else { data[o - 1] };
    xxh64_virtual(data.len() + 1, r64, r32, r8)
}

/// `H(tag, s)` at compile time, for `s` of at most 31 bytes.
pub(crate) const fn const_tagged(tag: u8, s: &[u8]) -> Digest {
    let mut buf = [0u8; 32];
    buf[0] = tag;
    let mut i = 0;
    while i < s.len() {
        buf[i + 1] = s[i];
        i += 1;
    }
    Digest(const_xxh64::xxh64(buf.split_at(s.len() + 1).0, 0).to_be_bytes())
}

/// `H('d', "")`: the hash of an empty message (and of an empty map or `Witness{}`).
pub const EMPTY_MESSAGE: Digest = const_tagged(b'd', b"");
const TRUE: Digest = const_tagged(b'b', b"1");
const FALSE: Digest = const_tagged(b'b', b"0");

/// `H('i', decimal(n))` for field numbers `n` in `0..=19`, computed at compile time.
pub const FIELD_KEYS: [Digest; 20] = {
    let mut keys = [Digest([0; 8]); 20];
    let mut n = 0;
    while n < 20 {
        let digits: [u8; 2] = [b'0' + (n / 10) as u8, b'0' + (n % 10) as u8];
        keys[n] = if n < 10 { const_tagged(b'i', digits.split_at(1).1) } else { const_tagged(b'i', &digits) };
        n += 1;
    }
    keys
};

/// Sorts field numbers by their key hash; evaluated at compile time by each impl.
const fn key_order<const N: usize>(mut fields: [u32; N]) -> [u32; N] {
    let mut i = 1;
    while i < N {
        let mut j = i;
        while j > 0 && u64::from_be_bytes(FIELD_KEYS[fields[j - 1] as usize].0) > u64::from_be_bytes(FIELD_KEYS[fields[j] as usize].0) {
            let t = fields[j];
            fields[j] = fields[j - 1];
            fields[j - 1] = t;
            j -= 1;
        }
        i += 1;
    }
    fields
}

/// `H('b', "1" | "0")`.
pub fn h_bool(b: bool) -> Digest {
    if b { TRUE } else { FALSE }
}

/// `H('u', s)`.
pub fn h_str(s: &str) -> Digest {
    tagged(b'u', s.as_bytes())
}

/// `H('r', bytes)`.
pub fn h_bytes(b: &[u8]) -> Digest {
    tagged(b'r', b)
}

fn h_int(negative: bool, mut magnitude: u64) -> Digest {
    // 'i', '-', 20 digits.
    let mut buf = [0u8; 22];
    let mut at = buf.len();
    loop {
        at -= 1;
        buf[at] = b'0' + (magnitude % 10) as u8;
        magnitude /= 10;
        if magnitude == 0 {
            break;
        }
    }
    if negative {
        at -= 1;
        buf[at] = b'-';
    }
    at -= 1;
    buf[at] = b'i';
    Digest(xxh64(&buf[at..], 0).to_be_bytes())
}

/// `H('i', decimal(v))`, also used for enum values.
pub fn h_i64(v: i64) -> Digest {
    h_int(v < 0, v.unsigned_abs())
}

/// `H('i', decimal(v))`.
pub fn h_u64(v: u64) -> Digest {
    h_int(false, v)
}

/// Longest float payload: sign, "-1074", ':', and at most 53 mantissa bits.
const FLOAT_BUF: usize = 1 + 1 + 5 + 1 + 64;

/// Writes the ObjectHash payload of a finite `x` into `buf` and returns its length.
///
/// ```text
/// if x == 0: "+0:"
/// sign, then the exponent e with 0.5 < |x| / 2^e <= 1, ':', then the bits of the mantissa
/// ```
fn float_payload(x: f64, buf: &mut [u8; FLOAT_BUF]) -> usize {
    debug_assert!(x.is_finite());
    if x == 0.0 {
        buf[..3].copy_from_slice(b"+0:");
        return 3;
    }
    // |x| = sig * 2^q exactly; with k the bit length of sig, |x| / 2^(k + q) is in [0.5, 1):
    // its binary digits are those of sig. A power of two is 1 * 2^(k - 1 + q) instead.
    let bits = x.to_bits();
    let field = ((bits >> 52) & 0x7ff) as i32;
    let mantissa = bits & ((1 << 52) - 1);
    let (sig, q) = if field == 0 { (mantissa, -1074) } else { (mantissa | (1 << 52), field - 1075) };
    let k = 64 - sig.leading_zeros() as i32;
    let one = sig.is_power_of_two();
    let e = if one { k - 1 + q } else { k + q };
    let mut n = 0;
    buf[n] = if x < 0.0 { b'-' } else { b'+' };
    n += 1;
    n = put_exponent(buf, n, e);
    if one {
        buf[n] = b'1';
        return n + 1;
    }
    // "0", then sig's bits from the highest down to its lowest set bit.
    buf[n] = b'0';
    n += 1;
    let low = sig.trailing_zeros() as i32;
    for i in (low..k).rev() {
        buf[n] = b'0' + ((sig >> i) & 1) as u8;
        n += 1;
    }
    n
}

/// Writes `e` in decimal and a `:` at `buf[n..]`; returns the new length.
fn put_exponent(buf: &mut [u8; FLOAT_BUF], mut n: usize, e: i32) -> usize {
    if e < 0 {
        buf[n] = b'-';
        n += 1;
    }
    let mut digits = [0u8; 5];
    let mut d = 0;
    let mut m = e.unsigned_abs();
    loop {
        digits[d] = b'0' + (m % 10) as u8;
        d += 1;
        m /= 10;
        if m == 0 {
            break;
        }
    }
    while d > 0 {
        d -= 1;
        buf[n] = digits[d];
        n += 1;
    }
    buf[n] = b':';
    n + 1
}

/// The payload as halving and doubling computes it: the definition [`float_payload`] is
/// checked against.
#[cfg(test)]
fn float_payload_by_halving(x: f64, buf: &mut [u8; FLOAT_BUF]) -> usize {
    debug_assert!(x.is_finite());
    if x == 0.0 {
        buf[..3].copy_from_slice(b"+0:");
        return 3;
    }
    let mut n = 0;
    buf[n] = if x < 0.0 { b'-' } else { b'+' };
    n += 1;
    let mut f = x.abs();
    let mut e: i32 = 0;
    // Halving and doubling a binary float is exact (subnormals only ever get doubled here).
    while f > 1.0 {
        f /= 2.0;
        e += 1;
    }
    while f <= 0.5 {
        f *= 2.0;
        e -= 1;
    }
    n = put_exponent(buf, n, e);
    while f != 0.0 {
        if f >= 1.0 {
            buf[n] = b'1';
            f -= 1.0;
        } else {
            buf[n] = b'0';
        }
        n += 1;
        f *= 2.0;
    }
    n
}

/// The payload hashed for a float (exposed for tests and tools): `Infinity`, `-Infinity`,
/// `NaN`, or `sign exponent ":" bits` as the module docs describe.
pub fn float_text(x: f64) -> String {
    if x.is_nan() {
        "NaN".into()
    } else if x.is_infinite() {
        if x > 0.0 { "Infinity" } else { "-Infinity" }.into()
    } else {
        let mut buf = [0u8; FLOAT_BUF];
        let n = float_payload(x, &mut buf);
        String::from_utf8_lossy(&buf[..n]).into_owned()
    }
}

/// `H('f', payload(x))`; float32 values are widened first.
pub fn h_f64(x: f64) -> Digest {
    if x.is_nan() {
        tagged(b'f', b"NaN")
    } else if x.is_infinite() {
        tagged(b'f', if x > 0.0 { b"Infinity" } else { b"-Infinity" })
    } else {
        let mut buf = [0u8; FLOAT_BUF + 1];
        buf[0] = b'f';
        let payload: &mut [u8; FLOAT_BUF] = (&mut buf[1..]).try_into().expect("sized");
        let n = float_payload(x, payload);
        Digest(xxh64(&buf[..=n], 0).to_be_bytes())
    }
}

/// `H('l', concat(element hashes))`.
fn h_list<T>(items: &[T], mut f: impl FnMut(&T) -> Digest) -> Digest {
    let mut st = Xxh64::new(0);
    st.update(b"l");
    for it in items {
        st.update(&f(it).0);
    }
    Digest(st.digest().to_be_bytes())
}

// ---------------------------------------------------------------------------------------------
// Message assembly.

/// At most this many fields of one message can be set (`Primitive` has 6).
const MAX_SET_FIELDS: usize = 8;

/// Collects `k ‖ v` of one message's set fields, which the caller adds in key-hash order.
struct Msg {
    buf: [u8; 1 + 16 * MAX_SET_FIELDS],
    len: usize,
}

impl Msg {
    #[inline]
    fn new() -> Self {
        let mut buf = [0u8; 1 + 16 * MAX_SET_FIELDS];
        buf[0] = b'd';
        Msg { buf, len: 1 }
    }

    #[inline]
    fn put(&mut self, n: u32, v: Digest) {
        let at = self.len;
        self.buf[at..at + 8].copy_from_slice(&FIELD_KEYS[n as usize].0);
        self.buf[at + 8..at + 16].copy_from_slice(&v.0);
        self.len = at + 16;
    }

    fn string(&mut self, n: u32, s: &str) {
        if !s.is_empty() {
            self.put(n, h_str(s));
        }
    }

    fn bytes(&mut self, n: u32, b: &[u8]) {
        if !b.is_empty() {
            self.put(n, h_bytes(b));
        }
    }

    fn bool(&mut self, n: u32, b: bool) {
        if b {
            self.put(n, TRUE);
        }
    }

    fn int(&mut self, n: u32, v: i64) {
        if v != 0 {
            self.put(n, h_i64(v));
        }
    }

    fn uint(&mut self, n: u32, v: u64) {
        if v != 0 {
            self.put(n, h_u64(v));
        }
    }

    /// Unset when `0.0` or `-0.0` (NaN is set).
    fn float(&mut self, n: u32, v: f64) {
        if v != 0.0 {
            self.put(n, h_f64(v));
        }
    }

    fn message<T: ObjectHash>(&mut self, n: u32, m: Option<&T>, h: &mut ObjectHasher) {
        if let Some(m) = m {
            self.put(n, m.object_hash(h));
        }
    }

    fn list<T>(&mut self, n: u32, items: &[T], f: impl FnMut(&T) -> Digest) {
        if !items.is_empty() {
            self.put(n, h_list(items, f));
        }
    }

    /// A map field, unless empty; `value` hashes each value.
    fn map<'m, V: 'm>(
        &mut self,
        n: u32,
        h: &mut ObjectHasher,
        m: &'m BTreeMap<String, V>,
        value: impl FnMut(&mut ObjectHasher, &'m V) -> Digest,
    ) {
        if !m.is_empty() {
            self.put(n, h.map(m.iter(), value));
        }
    }

    /// A `map<string, Data>` field, unless empty.
    fn data_map(&mut self, n: u32, h: &mut ObjectHasher, m: &BTreeMap<String, pb::Data>) {
        self.map(n, h, m, |h, d| d.object_hash(h));
    }

    fn wrapper<W: Wrapper>(&mut self, n: u32, w: Option<W>) {
        if let Some(w) = w {
            self.put(n, w.wrapper_hash());
        }
    }

    #[inline]
    fn finish(self) -> Digest {
        Digest(xxh64(&self.buf[..self.len], 0).to_be_bytes())
    }
}

/// Visits `$n` over the listed field numbers in key-hash order (a constant) and runs the
/// matching arm. Oneof members are listed with an `if` guard on the chosen member.
macro_rules! in_key_order {
    ([$($num:literal),+ $(,)?], |$n:ident| $body:expr) => {{
        const ORDER: [u32; [$($num),+].len()] = key_order([$($num),+]);
        for $n in ORDER {
            $body
        }
    }};
}

/// `google.protobuf.*Value`: a message whose field 1 holds the value.
trait Wrapper: Copy {
    fn wrapper_hash(self) -> Digest;
}

macro_rules! int_wrapper {
    ($($t:ty),*) => {$(
        impl Wrapper for $t {
            fn wrapper_hash(self) -> Digest {
                let mut m = Msg::new();
                m.int(1, i64::from(self));
                m.finish()
            }
        }
    )*};
}
int_wrapper!(i32, i64, u32);

impl Wrapper for u64 {
    fn wrapper_hash(self) -> Digest {
        let mut m = Msg::new();
        m.uint(1, self);
        m.finish()
    }
}

impl Wrapper for f32 {
    fn wrapper_hash(self) -> Digest {
        f64::from(self).wrapper_hash()
    }
}

impl Wrapper for f64 {
    fn wrapper_hash(self) -> Digest {
        let mut m = Msg::new();
        m.float(1, self);
        m.finish()
    }
}

impl<T: ObjectHash + ?Sized> ObjectHash for Box<T> {
    fn object_hash(&self, h: &mut ObjectHasher) -> Digest {
        (**self).object_hash(h)
    }
}

// ---------------------------------------------------------------------------------------------
// Per-message impls. Each lists the field numbers that take part in the hash.

impl ObjectHash for pb::Witness {
    fn object_hash(&self, h: &mut ObjectHasher) -> Digest {
        let mut m = Msg::new();
        m.message(1, self.method.as_ref(), h);
        m.finish()
    }
}

impl ObjectHash for pb::ApiSpec {
    fn object_hash(&self, h: &mut ObjectHasher) -> Digest {
        let mut m = Msg::new();
        in_key_order!([1, 2], |n| match n {
            1 => m.list(1, &self.methods, |x| x.object_hash(h)),
            _ => m.map(2, h, &self.tags, |_, v| h_str(v)),
        });
        m.finish()
    }
}

impl ObjectHash for pb::Method {
    fn object_hash(&self, h: &mut ObjectHasher) -> Digest {
        let mut m = Msg::new();
        in_key_order!([1, 2, 3, 4], |n| match n {
            1 => m.message(1, self.id.as_ref(), h),
            2 => m.data_map(2, h, &self.args),
            3 => m.data_map(3, h, &self.responses),
            _ => m.message(4, self.meta.as_ref(), h),
        });
        m.finish()
    }
}

impl ObjectHash for pb::MethodId {
    fn object_hash(&self, _: &mut ObjectHasher) -> Digest {
        let mut m = Msg::new();
        in_key_order!([1, 2], |n| match n {
            1 => m.string(1, &self.name),
            _ => m.int(2, self.api_type.into()),
        });
        m.finish()
    }
}

impl ObjectHash for pb::MethodMeta {
    fn object_hash(&self, h: &mut ObjectHasher) -> Digest {
        use pb::method_meta::Meta;
        let mut m = Msg::new();
        match &self.meta {
            Some(Meta::Grpc(x)) => m.put(1, x.object_hash(h)),
            Some(Meta::Http(x)) => m.put(2, x.object_hash(h)),
            None => {}
        }
        m.finish()
    }
}

macro_rules! empty_message {
    ($($t:ty),*) => {$(
        impl ObjectHash for $t {
            fn object_hash(&self, _: &mut ObjectHasher) -> Digest {
                EMPTY_MESSAGE
            }
        }
    )*};
}
empty_message!(pb::GrpcMethodMeta, pb::GrpcMeta, pb::HttpEmpty, pb::NoneValue, pb::ExampleValue);

impl ObjectHash for pb::HttpMethodMeta {
    fn object_hash(&self, _: &mut ObjectHasher) -> Digest {
        let mut m = Msg::new();
        // processing_latency [4] is excluded.
        in_key_order!([1, 2, 3], |n| match n {
            1 => m.string(1, &self.method),
            2 => m.string(2, &self.path_template),
            _ => m.string(3, &self.host),
        });
        m.finish()
    }
}

impl ObjectHash for pb::Data {
    fn object_hash(&self, h: &mut ObjectHasher) -> Digest {
        use pb::data::Value;
        let mut m = Msg::new();
        // example_values [8] is excluded.
        in_key_order!([1, 2, 3, 4, 5, 6, 7], |n| match (n, &self.value) {
            (5, _) => m.message(5, self.meta.as_ref(), h),
            (7, _) => m.bool(7, self.nullable),
            (1, Some(Value::Primitive(x))) => m.put(1, x.object_hash(h)),
            (2, Some(Value::Struct(x))) => m.put(2, x.object_hash(h)),
            (3, Some(Value::List(x))) => m.put(3, x.object_hash(h)),
            (4, Some(Value::Optional(x))) => m.put(4, x.object_hash(h)),
            (6, Some(Value::Oneof(x))) => m.put(6, x.object_hash(h)),
            _ => {}
        });
        m.finish()
    }
}

impl ObjectHash for pb::DataMeta {
    fn object_hash(&self, h: &mut ObjectHasher) -> Digest {
        use pb::data_meta::Meta;
        let mut m = Msg::new();
        match &self.meta {
            Some(Meta::Grpc(x)) => m.put(1, x.object_hash(h)),
            Some(Meta::Http(x)) => m.put(2, x.object_hash(h)),
            None => {}
        }
        m.finish()
    }
}

impl ObjectHash for pb::HttpMeta {
    fn object_hash(&self, h: &mut ObjectHasher) -> Digest {
        use pb::http_meta::Location as L;
        let mut m = Msg::new();
        in_key_order!([1, 2, 3, 4, 5, 6, 7, 8, 9], |n| match (n, &self.location) {
            (7, _) => m.int(7, self.response_code.into()),
            (1, Some(L::Path(x))) => m.put(1, x.object_hash(h)),
            (2, Some(L::Query(x))) => m.put(2, x.object_hash(h)),
            (3, Some(L::Header(x))) => m.put(3, x.object_hash(h)),
            (4, Some(L::Cookie(x))) => m.put(4, x.object_hash(h)),
            (5, Some(L::Body(x))) => m.put(5, x.object_hash(h)),
            (6, Some(L::Empty(x))) => m.put(6, x.object_hash(h)),
            (8, Some(L::Auth(x))) => m.put(8, x.object_hash(h)),
            (9, Some(L::Multipart(x))) => m.put(9, x.object_hash(h)),
            _ => {}
        });
        m.finish()
    }
}

macro_rules! single_string {
    ($($t:ty => $f:ident),*) => {$(
        impl ObjectHash for $t {
            fn object_hash(&self, _: &mut ObjectHasher) -> Digest {
                let mut m = Msg::new();
                m.string(1, &self.$f);
                m.finish()
            }
        }
    )*};
}
single_string!(
    pb::HttpPath => key,
    pb::HttpQuery => key,
    pb::HttpHeader => key,
    pb::HttpCookie => key,
    pb::HttpMultipart => r#type
);

impl ObjectHash for pb::HttpAuth {
    fn object_hash(&self, _: &mut ObjectHasher) -> Digest {
        let mut m = Msg::new();
        m.int(1, self.r#type.into());
        m.finish()
    }
}

impl ObjectHash for pb::HttpBody {
    fn object_hash(&self, _: &mut ObjectHasher) -> Digest {
        let mut m = Msg::new();
        in_key_order!([1, 2], |n| match n {
            1 => m.int(1, self.content_type.into()),
            _ => m.string(2, &self.other_type),
        });
        m.finish()
    }
}

impl ObjectHash for pb::Primitive {
    fn object_hash(&self, h: &mut ObjectHasher) -> Digest {
        use pb::primitive::Value as V;
        let mut m = Msg::new();
        in_key_order!([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14], |n| match (n, &self.value) {
            (1, _) => m.string(1, &self.type_hint),
            (11, _) => m.message(11, self.akita_annotations.as_ref(), h),
            (12, _) => m.bool(12, self.contains_random_value),
            (13, _) => m.map(13, h, &self.formats, |_, b| h_bool(*b)),
            (14, _) => m.string(14, &self.format_kind),
            (2, Some(V::BoolValue(x))) => m.put(2, x.object_hash(h)),
            (3, Some(V::BytesValue(x))) => m.put(3, x.object_hash(h)),
            (4, Some(V::StringValue(x))) => m.put(4, x.object_hash(h)),
            (5, Some(V::Int32Value(x))) => m.put(5, x.object_hash(h)),
            (6, Some(V::Int64Value(x))) => m.put(6, x.object_hash(h)),
            (7, Some(V::Uint32Value(x))) => m.put(7, x.object_hash(h)),
            (8, Some(V::Uint64Value(x))) => m.put(8, x.object_hash(h)),
            (9, Some(V::DoubleValue(x))) => m.put(9, x.object_hash(h)),
            (10, Some(V::FloatValue(x))) => m.put(10, x.object_hash(h)),
            _ => {}
        });
        m.finish()
    }
}

/// `X { XType type [1]; x value [2] }`: `$set` adds the value field when it is not zero.
macro_rules! typed_value {
    (@set $m:ident, bool, $v:expr) => { $m.bool(2, $v) };
    (@set $m:ident, bytes, $v:expr) => { $m.bytes(2, &$v) };
    (@set $m:ident, string, $v:expr) => { $m.string(2, &$v) };
    (@set $m:ident, int, $v:expr) => { $m.int(2, $v.into()) };
    (@set $m:ident, uint, $v:expr) => { $m.uint(2, $v) };
    (@set $m:ident, float, $v:expr) => { $m.float(2, $v.into()) };
    ($($t:ty => $set:ident),*) => {$(
        impl ObjectHash for $t {
            fn object_hash(&self, h: &mut ObjectHasher) -> Digest {
                let mut m = Msg::new();
                in_key_order!([1, 2], |n| match n {
                    1 => m.message(1, self.r#type.as_ref(), h),
                    _ => typed_value!(@set m, $set, self.value),
                });
                m.finish()
            }
        }
    )*};
}
typed_value!(
    pb::Bool => bool,
    pb::Bytes => bytes,
    pb::Str => string,
    pb::Int32 => int,
    pb::Int64 => int,
    pb::Uint32 => int,
    pb::Uint64 => uint,
    pb::Double => float,
    pb::Float => float
);

impl ObjectHash for pb::BoolType {
    fn object_hash(&self, _: &mut ObjectHasher) -> Digest {
        let mut m = Msg::new();
        m.list(1, &self.fixed_values, |b| h_bool(*b));
        m.finish()
    }
}

impl ObjectHash for pb::BytesType {
    fn object_hash(&self, _: &mut ObjectHasher) -> Digest {
        let mut m = Msg::new();
        m.list(1, &self.fixed_values, |b| h_bytes(b));
        m.finish()
    }
}

impl ObjectHash for pb::StringType {
    fn object_hash(&self, _: &mut ObjectHasher) -> Digest {
        let mut m = Msg::new();
        in_key_order!([1, 2], |n| match n {
            1 => m.list(1, &self.fixed_values, |s| h_str(s)),
            _ => m.string(2, &self.regex),
        });
        m.finish()
    }
}

/// `XType { repeated x fixed_values [1]; google.protobuf.XValue min [2], max [3] }`.
macro_rules! numeric_type {
    ($($t:ty => $elem:expr),*) => {$(
        impl ObjectHash for $t {
            fn object_hash(&self, _: &mut ObjectHasher) -> Digest {
                let mut m = Msg::new();
                in_key_order!([1, 2, 3], |n| match n {
                    1 => m.list(1, &self.fixed_values, $elem),
                    2 => m.wrapper(2, self.min),
                    _ => m.wrapper(3, self.max),
                });
                m.finish()
            }
        }
    )*};
}
numeric_type!(
    pb::Int32Type => |v: &i32| h_i64((*v).into()),
    pb::Int64Type => |v: &i64| h_i64(*v),
    pb::Uint32Type => |v: &u32| h_u64((*v).into()),
    pb::Uint64Type => |v: &u64| h_u64(*v),
    pb::DoubleType => |v: &f64| h_f64(*v),
    pb::FloatType => |v: &f32| h_f64((*v).into())
);

impl ObjectHash for pb::AkitaAnnotations {
    fn object_hash(&self, h: &mut ObjectHasher) -> Digest {
        let mut m = Msg::new();
        in_key_order!([1, 2, 3], |n| match n {
            1 => m.bool(1, self.is_free),
            2 => m.bool(2, self.is_sensitive),
            _ => m.message(3, self.format_option.as_ref(), h),
        });
        m.finish()
    }
}

impl ObjectHash for pb::FormatOption {
    fn object_hash(&self, _: &mut ObjectHasher) -> Digest {
        use pb::format_option::Format;
        let mut m = Msg::new();
        match &self.format {
            // A oneof member is hashed even when it is "".
            Some(Format::StringFormat(s)) => m.put(1, h_str(s)),
            None => {}
        }
        m.finish()
    }
}

impl ObjectHash for pb::Struct {
    fn object_hash(&self, h: &mut ObjectHasher) -> Digest {
        let mut m = Msg::new();
        in_key_order!([1, 2], |n| match n {
            1 => m.data_map(1, h, &self.fields),
            _ => m.message(2, self.map_type.as_ref(), h),
        });
        m.finish()
    }
}

impl ObjectHash for pb::MapData {
    fn object_hash(&self, h: &mut ObjectHasher) -> Digest {
        let mut m = Msg::new();
        in_key_order!([1, 2], |n| match n {
            1 => m.message(1, self.key.as_ref(), h),
            _ => m.message(2, self.value.as_ref(), h),
        });
        m.finish()
    }
}

impl ObjectHash for pb::List {
    fn object_hash(&self, h: &mut ObjectHasher) -> Digest {
        let mut m = Msg::new();
        m.list(1, &self.elems, |d| d.object_hash(h));
        m.finish()
    }
}

impl ObjectHash for pb::Optional {
    fn object_hash(&self, h: &mut ObjectHasher) -> Digest {
        use pb::optional::Value;
        let mut m = Msg::new();
        match &self.value {
            Some(Value::Data(x)) => m.put(1, x.object_hash(h)),
            Some(Value::None(x)) => m.put(2, x.object_hash(h)),
            None => {}
        }
        m.finish()
    }
}

impl ObjectHash for pb::OneOf {
    fn object_hash(&self, h: &mut ObjectHasher) -> Digest {
        let mut m = Msg::new();
        in_key_order!([1, 2], |n| match n {
            1 => m.data_map(1, h, &self.options),
            _ => m.bool(2, self.potential_conflict),
        });
        m.finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(d: Digest) -> String {
        d.0.iter().map(|b| format!("{b:02x}")).collect()
    }

    #[test]
    fn in_place_xxh64_is_xxh64_at_every_stripe_boundary() {
        fn check<const N: usize>(seed: u8) {
            let mut b = [0u8; N];
            let mut x = 0x9e37_79b9_7f4a_7c15u64 ^ u64::from(seed);
            for v in b.iter_mut() {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                *v = x as u8;
            }
            // A tag and the rest (an empty input has no tag to split off).
            if let Some((&tag, rest)) = b.split_first() {
                assert_eq!(xxh64_prefixed(tag, rest), xxh64(&b, 0), "length {N}");
            }
        }
        for seed in 0..8 {
            check::<0>(seed);
            check::<1>(seed);
            check::<3>(seed);
            check::<4>(seed);
            check::<7>(seed);
            check::<8>(seed);
            check::<12>(seed);
            check::<17>(seed);
            check::<31>(seed);
            check::<32>(seed);
            check::<33>(seed);
            check::<49>(seed);
            check::<64>(seed);
            check::<65>(seed);
            check::<100>(seed);
            check::<129>(seed);
        }
        let mut buf = [7u8; 65];
        buf[0] = b'd';
        for n in 0..=4 {
            assert_eq!(xxh64_tag_bytes8(buf[0], &buf[1..1 + 16 * n]), xxh64(&buf[..1 + 16 * n], 0), "{n} fields");
        }
    }

    #[test]
    fn keys_match_runtime_xxh64() {
        for (n, k) in FIELD_KEYS.iter().enumerate() {
            assert_eq!(*k, tagged(b'i', n.to_string().as_bytes()), "field {n}");
        }
        assert_eq!(hex(EMPTY_MESSAGE), "5000d8f2907d14e4");
        assert_eq!(EMPTY_MESSAGE.to_text(), "UADY8pB9FOQ=");
        assert_eq!(TRUE, tagged(b'b', b"1"));
        assert_eq!(FALSE, tagged(b'b', b"0"));
    }

    #[test]
    fn key_order_sorts_by_key_bytes() {
        const ALL: [u32; 20] = {
            let mut a = [0u32; 20];
            let mut i = 0;
            while i < 20 {
                a[i] = i as u32;
                i += 1;
            }
            key_order(a)
        };
        let mut expect: Vec<u32> = (0..20).collect();
        expect.sort_by_key(|n| FIELD_KEYS[*n as usize]);
        assert_eq!(ALL.to_vec(), expect);
    }

    #[test]
    fn integers_are_decimal() {
        assert_eq!(h_i64(-3), tagged(b'i', b"-3"));
        assert_eq!(h_i64(i64::MIN), tagged(b'i', b"-9223372036854775808"));
        assert_eq!(h_u64(u64::MAX), tagged(b'i', b"18446744073709551615"));
        assert_eq!(h_u64(0), tagged(b'i', b"0"));
    }

    #[test]
    fn long_strings_stream() {
        let s = "x".repeat(1000);
        let mut v = vec![b'u'];
        v.extend_from_slice(s.as_bytes());
        assert_eq!(h_str(&s).0, xxh64(&v, 0).to_be_bytes());
        let s = "y".repeat(127);
        let mut v = vec![b'u'];
        v.extend_from_slice(s.as_bytes());
        assert_eq!(h_str(&s).0, xxh64(&v, 0).to_be_bytes());
    }

    #[test]
    fn word_xxh64_equals_xxh64_of_the_bytes() {
        let words: Vec<u64> = (0..40u64).map(|i| i.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ (i << 7)).collect();
        for m in 0..words.len() {
            for tag in [b'd', b'l', 0, 255] {
                let mut cat = vec![tag];
                for w in &words[..m] {
                    cat.extend_from_slice(&w.to_le_bytes());
                }
                assert_eq!(xxh64_tag_words(tag, &words[..m]), xxh64(&cat, 0), "{m}");
                assert_eq!(xxh64_tag_bytes8(tag, &cat[1..]), xxh64(&cat, 0), "{m}");
            }
        }
    }

    #[test]
    fn prefixed_xxh64_equals_xxh64_of_the_concatenation() {
        let data: Vec<u8> = (0..300u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect();
        for n in 0..data.len() {
            for tag in [b'u', 0, 255] {
                let mut cat = vec![tag];
                cat.extend_from_slice(&data[..n]);
                assert_eq!(xxh64_prefixed(tag, &data[..n]), xxh64(&cat, 0), "{n}");
            }
        }
    }

    #[test]
    fn float_payloads() {
        assert_eq!(float_text(0.0), "+0:");
        assert_eq!(float_text(-0.0), "+0:");
        assert_eq!(float_text(1.0), "+0:1");
        assert_eq!(float_text(0.5), "+-1:1");
        assert_eq!(float_text(-0.5), "--1:1");
        assert_eq!(float_text(2.0), "+1:1");
        assert_eq!(float_text(3.0), "+2:011");
        assert_eq!(float_text(0.75), "+0:011");
        assert_eq!(float_text(-3.5), "-2:0111");
        assert_eq!(float_text(f64::INFINITY), "Infinity");
        assert_eq!(float_text(f64::NEG_INFINITY), "-Infinity");
        assert_eq!(float_text(f64::NAN), "NaN");
        // The mantissa is in (0.5, 1]: it starts with "0" unless it is exactly 1.
        assert_eq!(float_text(0.1), "+-3:01100110011001100110011001100110011001100110011001101");
        // Smallest subnormal 2^-1074: doubled up to exactly 1.
        assert_eq!(float_text(f64::from_bits(1)), "+-1074:1");
        // Largest subnormal and smallest normal.
        assert_eq!(float_text(f64::MIN_POSITIVE), "+-1022:1");
        assert_eq!(float_text(f64::from_bits(0x000f_ffff_ffff_ffff)), format!("+-1022:0{}", "1".repeat(52)));
        // Largest finite: "0" then 53 ones, exponent 1024.
        assert_eq!(float_text(f64::MAX), format!("+1024:0{}", "1".repeat(53)));
        assert_eq!(float_text(-1e300), "-997:0101111110010000111100100010000000000001110101100111");
        // float32 widens exactly.
        assert_eq!(float_text(f64::from(0.1f32)), float_text(0.1f32 as f64));
    }

    #[test]
    fn float_payload_fits_buffer_for_all_exponents() {
        for bits in
            [1u64, 0x000f_ffff_ffff_ffff, 0x0010_0000_0000_0001, 0x7fef_ffff_ffff_ffff, 2, 3, 0x0008_0000_0000_0000, 0x0000_0000_0010_1000]
        {
            let x = f64::from_bits(bits);
            let (mut a, mut b) = ([0u8; FLOAT_BUF], [0u8; FLOAT_BUF]);
            let (na, nb) = (float_payload(x, &mut a), float_payload_by_halving(x, &mut b));
            assert_eq!(&a[..na], &b[..nb], "{bits:#x}");
            let t = float_text(x);
            assert!(t.len() <= FLOAT_BUF, "{t}");
            assert_eq!(h_f64(x), tagged(b'f', t.as_bytes()));
            assert_eq!(h_f64(-x), tagged(b'f', float_text(-x).as_bytes()));
        }
    }

    /// `2^k` for every `k` a finite double can need, built from bits (no rounding).
    fn pow2(k: i32) -> f64 {
        if k >= -1022 { f64::from_bits(((k + 1023) as u64) << 52) } else { f64::from_bits(1u64 << (k + 1074)) }
    }

    /// Reads a payload back: `sign exponent ':' bits` means `sum(bit_i * 2^(e - i))`.
    fn decode_payload(t: &str) -> f64 {
        let (sign, rest) = t.split_at(1);
        let (e, bits) = rest.split_once(':').expect("colon");
        let e: i32 = e.parse().expect("exponent");
        let mut x = 0.0;
        for (i, b) in bits.bytes().enumerate() {
            if b == b'1' {
                x += pow2(e - i as i32);
            }
        }
        if sign == "-" { -x } else { x }
    }

    proptest::proptest! {
        #[test]
        fn float_payload_decodes_to_the_value(bits in proptest::prelude::any::<u64>()) {
            let x = f64::from_bits(bits);
            proptest::prop_assume!(x.is_finite());
            let (mut a, mut b) = ([0u8; FLOAT_BUF], [0u8; FLOAT_BUF]);
            let (na, nb) = (float_payload(x, &mut a), float_payload_by_halving(x, &mut b));
            proptest::prop_assert_eq!(&a[..na], &b[..nb]);
            let t = float_text(x);
            proptest::prop_assert!(t.len() <= FLOAT_BUF);
            let back = decode_payload(&t);
            if x == 0.0 {
                proptest::prop_assert_eq!(t.as_str(), "+0:");
            } else {
                proptest::prop_assert_eq!(back.to_bits(), x.to_bits(), "{}", t);
                // The mantissa is in (0.5, 1]: no trailing zeros, leading "1" only for 1.0.
                let m = t.split_once(':').unwrap().1;
                proptest::prop_assert!(m.ends_with('1'));
                proptest::prop_assert!(m.starts_with('0') || m == "1");
            }
            proptest::prop_assert_eq!(h_f64(x), tagged(b'f', t.as_bytes()));
        }

        #[test]
        fn float32_widens(bits in proptest::prelude::any::<u32>()) {
            let x = f32::from_bits(bits);
            proptest::prop_assume!(x.is_finite() && x != 0.0);
            let w = pb::Float { r#type: None, value: x };
            let mut m = Msg::new();
            m.put(2, h_f64(f64::from(x)));
            proptest::prop_assert_eq!(digest(&w), m.finish());
        }
    }

    #[test]
    fn zero_and_negative_zero_floats_are_unset() {
        let d = pb::Double { r#type: None, value: -0.0 };
        assert_eq!(digest(&d), EMPTY_MESSAGE);
        let d = pb::Double { r#type: None, value: 0.0 };
        assert_eq!(digest(&d), EMPTY_MESSAGE);
        let d = pb::Float { r#type: None, value: f32::NAN };
        assert_ne!(digest(&d), EMPTY_MESSAGE);
    }

    #[test]
    fn wrappers() {
        let mut t = pb::Int64Type::default();
        assert_eq!(digest(&t), EMPTY_MESSAGE);
        t.min = Some(0);
        let mut m = Msg::new();
        m.put(2, EMPTY_MESSAGE);
        assert_eq!(digest(&t), m.finish());
        t.min = Some(7);
        let mut inner = Msg::new();
        inner.put(1, h_i64(7));
        let mut m = Msg::new();
        m.put(2, inner.finish());
        assert_eq!(digest(&t), m.finish());
    }

    #[test]
    fn zero_values_inside_lists_and_maps_are_hashed() {
        let mut p = pb::Primitive::default();
        p.formats.insert("x".into(), false);
        let mut entry = [0u8; 17];
        entry[0] = b'd';
        entry[1..9].copy_from_slice(&h_str("x").0);
        entry[9..].copy_from_slice(&h_bool(false).0);
        let map = Digest(xxh64(&entry, 0).to_be_bytes());
        let mut m = Msg::new();
        m.put(13, map);
        assert_eq!(digest(&p), m.finish());

        let t = pb::Int32Type { fixed_values: vec![0, 1], ..Default::default() };
        let mut l = vec![b'l'];
        l.extend_from_slice(&h_i64(0).0);
        l.extend_from_slice(&h_i64(1).0);
        let mut m = Msg::new();
        m.put(1, Digest(xxh64(&l, 0).to_be_bytes()));
        assert_eq!(digest(&t), m.finish());
    }

    #[test]
    fn oneof_member_is_hashed_even_when_empty() {
        let f = pb::FormatOption { format: Some(pb::format_option::Format::StringFormat(String::new())) };
        let mut m = Msg::new();
        m.put(1, h_str(""));
        assert_eq!(digest(&f), m.finish());
        assert_ne!(digest(&f), EMPTY_MESSAGE);
    }

    #[test]
    fn digest_text_round_trip() {
        let d = Digest([0xff, 0xfe, 0, 1, 2, 3, 4, 5]);
        let t = d.to_text();
        assert_eq!(t.len(), TEXT_LEN);
        assert_eq!(t, d.to_string());
        assert_eq!(t.parse::<Digest>(), Ok(d));
        assert!("abc".parse::<Digest>().is_err());
        assert!("UADY8pB9FOQ".parse::<Digest>().is_err());
    }

    #[test]
    fn nested_maps_share_scratch() {
        // A struct inside a struct: the inner map's entries must not disturb the outer's.
        let leaf = |s: &str| pb::Data {
            value: Some(pb::data::Value::Primitive(pb::Primitive {
                value: Some(pb::primitive::Value::StringValue(pb::Str { r#type: None, value: s.into() })),
                ..Default::default()
            })),
            ..Default::default()
        };
        let mut inner = pb::Struct::default();
        inner.fields.insert("a".into(), leaf("1"));
        inner.fields.insert("b".into(), leaf("2"));
        let mut outer = pb::Struct::default();
        outer.fields.insert("x".into(), leaf("3"));
        outer.fields.insert("y".into(), pb::Data { value: Some(pb::data::Value::Struct(inner.clone())), ..Default::default() });
        outer.fields.insert("z".into(), leaf("4"));

        // Reference: hash each map with a fresh hasher, bottom up.
        let map_ref = |entries: Vec<(&str, Digest)>| {
            let mut e: Vec<[u8; 16]> = entries
                .into_iter()
                .map(|(k, v)| {
                    let mut a = [0u8; 16];
                    a[..8].copy_from_slice(&h_str(k).0);
                    a[8..].copy_from_slice(&v.0);
                    a
                })
                .collect();
            e.sort();
            let mut b = vec![b'd'];
            for x in e {
                b.extend_from_slice(&x);
            }
            Digest(xxh64(&b, 0).to_be_bytes())
        };
        let inner_map = map_ref(vec![("a", digest(&leaf("1"))), ("b", digest(&leaf("2")))]);
        let mut im = Msg::new();
        im.put(1, inner_map);
        let inner_struct = im.finish();
        assert_eq!(digest(&inner), inner_struct);
        let mut yd = Msg::new();
        yd.put(2, inner_struct);
        let outer_map = map_ref(vec![("x", digest(&leaf("3"))), ("y", yd.finish()), ("z", digest(&leaf("4")))]);
        let mut om = Msg::new();
        om.put(1, outer_map);
        let mut h = ObjectHasher::new();
        assert_eq!(h.digest(&outer), om.finish());
        assert!(h.scratch.is_empty());
    }
}
