//! JSON bodies hashed and encoded in the same pass that parses them.
//!
//! A JSON body is most of a witness's work. Building it as a [`Val`] tree and then walking the
//! tree to hash it, to size it and to encode it costs an allocation per object, list and long
//! string, and four walks. Here each value is hashed and encoded as soon as it is read, into
//! one arena: a list gets its element headers when it closes (its elements are moved once, in
//! place), an object sorts its fields by name, keeps the last of a repeated name and is
//! rewritten in that order. The result is a [`Val::Encoded`]: the same hash and the same bytes
//! as the tree would give ([`super::json::parse_json_tree`], checked against each other in the
//! tests and by the `bodies` fuzz target).
//!
//! The language accepted is serde_json's (which the tree path uses), to the error: RFC 8259
//! JSON, at most 127 containers open at once among those parsed, numbers that overflow a
//! double rejected and lone UTF-16 surrogates in `\u` escapes rejected, except inside what is
//! skipped (list elements past the cap, values below the depth cap), which serde_json checks
//! only for syntax. Numbers with a fraction or an exponent are converted by serde_json itself,
//! so that the values are its values to the bit.

use std::borrow::Cow;

use compact_str::CompactString;

use super::Ctx;
use crate::ir::hash::{Digest, EMPTY_MESSAGE};
use crate::ir::value::{self, Encoded, Prim, Scalar, Val, ld, put_varint, varint_len};

/// serde_json's recursion limit: the number of containers it lets be open at once is one less.
const RECURSION_LIMIT: u32 = 128;

/// Nesting past which a body is built as a tree instead ([`Parsed::TooDeep`]): prost decodes
/// at most 100 nested messages, about 33 nested JSON objects, and [`Val::to_pb`] decodes an
/// encoded value.
const ENCODED_NESTING_MAX: u32 = 30;

/// What [`parse`] made of a body.
pub enum Parsed {
    Value(Val),
    NotJson,
    /// Nested deeper than [`ENCODED_NESTING_MAX`]: to be built as a tree.
    TooDeep,
}

/// Reusable buffers (kept by the witness builder from body to body).
#[derive(Default)]
pub struct JsonBufs {
    /// Encoded `Data` contents of the values read so far.
    out: Vec<u8>,
    /// An object rewritten in field order.
    tmp: Vec<u8>,
    /// Names of the fields of the open objects.
    names: Vec<u8>,
    fields: Vec<Field>,
    entries: Vec<[u8; 16]>,
    /// `Data` hashes and encoded lengths of the elements of the open lists.
    elems: Vec<[u8; 8]>,
    lens: Vec<usize>,
    /// Open containers while skipping.
    stack: Vec<u8>,
    /// A string with escapes, decoded (taken by [`Parser::string`], given back after use).
    esc: String,
}

struct Field {
    name: usize,
    name_len: usize,
    /// The first 8 bytes of the name, big-endian and zero-padded: orders most names without
    /// comparing them.
    prefix: u64,
    /// Position in the object, to keep the last of a repeated name.
    ord: u32,
    /// `H('u', name)`.
    name_hash: Digest,
    data_hash: Digest,
    start: usize,
    end: usize,
}

/// Syntax or range error; the caller falls back to a sample of the body.
struct Bad;

type R<T> = Result<T, Bad>;

/// Bytes that end the fast scan of a string: quote, backslash and control characters.
static STOP: [bool; 256] = {
    let mut t = [false; 256];
    let mut i = 0;
    while i < 0x20 {
        t[i] = true;
        i += 1;
    }
    t[b'"' as usize] = true;
    t[b'\\' as usize] = true;
    t
};

const ONES: u64 = u64::from_le_bytes([1; 8]);
const HIGHS: u64 = u64::from_le_bytes([0x80; 8]);

/// The high bit of each byte of `x` that is a quote, a backslash or a control character,
/// and possibly of bytes after (more significant than) one that is: the lowest bit set marks
/// the first such byte exactly, and none is set when there is none. (`v - 0x01..` borrows
/// into a byte's high bit only where `v`'s byte is zero, or below a byte that borrowed;
/// `x - 0x20..` likewise where `x`'s byte is below 0x20; `& !x` drops bytes of 0x80 and up.)
#[inline]
fn stops(x: u64) -> u64 {
    let quote = x ^ (ONES * u64::from(b'"'));
    let backslash = x ^ (ONES * u64::from(b'\\'));
    (quote.wrapping_sub(ONES) & !quote | backslash.wrapping_sub(ONES) & !backslash | x.wrapping_sub(ONES * 0x20) & !x) & HIGHS
}

/// Where the plain run of string bytes from `i` ends: the first quote, backslash or control
/// character, or the end of `b`. Eight bytes at a time, the last few one by one.
#[inline]
fn scan_plain(b: &[u8], mut i: usize) -> usize {
    while let Some(w) = b.get(i..i + 8) {
        let m = stops(u64::from_le_bytes(w.try_into().expect("8 bytes")));
        if m != 0 {
            return i + (m.trailing_zeros() / 8) as usize;
        }
        i += 8;
    }
    while i < b.len() && !STOP[usize::from(b[i])] {
        i += 1;
    }
    i
}

/// A JSON body (`text`, nested `depth` levels deep) as an encoded value. When it is not JSON
/// or too deep, the counters of `cx` are left as they were.
pub fn parse(cx: &mut Ctx<'_>, text: &str, depth: usize) -> Parsed {
    let saved = cx.stats;
    let mut bufs = std::mem::take(&mut cx.json);
    bufs.out.clear();
    let mut p = Parser { s: text, b: text.as_bytes(), i: 0, cx: &mut *cx, bufs: &mut bufs, open: 0, peak: 0 };
    let r = p.value(depth, false).and_then(|v| {
        p.ws();
        if p.i == p.b.len() { Ok(v) } else { Err(Bad) }
    });
    let peak = p.peak;
    let out = match r {
        Ok(_) if peak > ENCODED_NESTING_MAX => {
            cx.stats = saved;
            Parsed::TooDeep
        }
        Ok((member, member_hash)) => Parsed::Value(Val::Encoded(Box::new(Encoded { member, member_hash, bytes: bufs.out.clone() }))),
        Err(Bad) => {
            cx.stats = saved;
            Parsed::NotJson
        }
    };
    // A failed parse leaves its open containers behind.
    bufs.names.clear();
    bufs.fields.clear();
    bufs.entries.clear();
    bufs.elems.clear();
    bufs.lens.clear();
    bufs.stack.clear();
    cx.json = bufs;
    out
}

struct Parser<'a, 'c, 'r> {
    s: &'a str,
    b: &'a [u8],
    i: usize,
    cx: &'c mut Ctx<'r>,
    bufs: &'c mut JsonBufs,
    /// Containers open among those parsed (serde_json's recursion count).
    open: u32,
    /// The most open at once.
    peak: u32,
}

impl<'a> Parser<'a, '_, '_> {
    #[inline]
    fn ws(&mut self) {
        while let Some(b' ' | b'\n' | b'\t' | b'\r') = self.b.get(self.i) {
            self.i += 1;
        }
    }

    #[inline]
    fn peek(&self) -> R<u8> {
        self.b.get(self.i).copied().ok_or(Bad)
    }

    fn ident(&mut self, word: &[u8]) -> R<()> {
        if self.b[self.i..].starts_with(word) {
            self.i += word.len();
            Ok(())
        } else {
            Err(Bad)
        }
    }

    /// One value at `depth`: appends its `Data` content to the arena and returns the member
    /// of `Data.value` it sets and that member's hash.
    fn value(&mut self, depth: usize, sensitive: bool) -> R<(u8, Digest)> {
        self.ws();
        match self.peek()? {
            b'n' => {
                self.ident(b"null")?;
                self.bufs.out.extend_from_slice(&[0x22, 2, 0x12, 0]);
                Ok((4, value::one(2, EMPTY_MESSAGE)))
            }
            b't' => {
                self.ident(b"true")?;
                Ok(self.number(Scalar::Bool(true), sensitive))
            }
            b'f' => {
                self.ident(b"false")?;
                Ok(self.number(Scalar::Bool(false), sensitive))
            }
            b'-' | b'0'..=b'9' => {
                let v = self.parse_number()?;
                Ok(self.number(v, sensitive))
            }
            b'"' => {
                let s = self.string()?;
                if self.cx.redact.is_none() && !self.cx.zero_values {
                    // The common case, straight from the text.
                    let f = crate::ir::formats::detect(&s);
                    let out = &mut self.bufs.out;
                    out.push(0x0a);
                    put_varint(out, value::str_prim_size(s.len(), f) as u64);
                    value::encode_str_prim(&s, f, out);
                    let h = value::str_prim_hash(&s, f);
                    self.give_back(s);
                    return Ok((1, h));
                }
                let p = self.cx.string(CompactString::from(&*s), sensitive);
                self.give_back(s);
                Ok(self.leaf(p))
            }
            b'[' => self.list(depth, sensitive),
            b'{' => self.object(depth, sensitive),
            _ => Err(Bad),
        }
    }

    /// A non-string scalar, checked for redaction as the tree path does.
    fn number(&mut self, v: Scalar, sensitive: bool) -> (u8, Digest) {
        let mut p = Prim::new(v);
        self.cx.check(&mut p, sensitive);
        self.leaf(p)
    }

    fn leaf(&mut self, mut p: Prim) -> (u8, Digest) {
        if self.cx.zero_values {
            super::super::build::zero_prim(&mut p);
        }
        let out = &mut self.bufs.out;
        out.push(0x0a);
        put_varint(out, value::prim_size(&p) as u64);
        value::encode_prim(&p, out);
        (1, value::prim_hash(&p))
    }

    /// A number, as serde_json reads it: an integer that fits is an int64 (or a uint64), the
    /// rest doubles (converted by serde_json; out of range is an error).
    fn parse_number(&mut self) -> R<Scalar> {
        let start = self.i;
        let negative = self.b[self.i] == b'-';
        let (digits, int_end, integer) = self.skip_number()?;
        if integer {
            let mut m: u64 = 0;
            let mut fits = true;
            for &c in &self.b[digits..int_end] {
                match m.checked_mul(10).and_then(|m| m.checked_add(u64::from(c - b'0'))) {
                    Some(v) => m = v,
                    None => {
                        fits = false;
                        break;
                    }
                }
            }
            if fits {
                return Ok(if !negative {
                    match i64::try_from(m) {
                        Ok(i) => Scalar::I64(i),
                        Err(_) => Scalar::U64(m),
                    }
                } else {
                    let neg = (m as i64).wrapping_neg();
                    // `-0` and magnitudes past i64 are doubles in serde_json.
                    if neg >= 0 { Scalar::F64(-(m as f64)) } else { Scalar::I64(neg) }
                });
            }
        }
        serde_json::from_str::<f64>(&self.s[start..self.i]).map(Scalar::F64).map_err(|_| Bad)
    }

    /// At least one digit.
    fn digits(&mut self) -> R<()> {
        let at = self.i;
        while let Some(b'0'..=b'9') = self.b.get(self.i) {
            self.i += 1;
        }
        if self.i == at { Err(Bad) } else { Ok(()) }
    }

    /// A string at its opening quote, decoded (escapes as serde_json decodes them: a lone
    /// surrogate is an error).
    fn string(&mut self) -> R<Cow<'a, str>> {
        self.i += 1;
        let start = self.i;
        self.i = scan_plain(self.b, self.i);
        match *self.b.get(self.i).ok_or(Bad)? {
            b'"' => {
                self.i += 1;
                return Ok(Cow::Borrowed(&self.s[start..self.i - 1]));
            }
            b'\\' => {}
            _ => return Err(Bad),
        }
        // Escapes, decoded as serde_json decodes them: a lone surrogate is an error.
        let mut out = std::mem::take(&mut self.bufs.esc);
        out.clear();
        let mut run = start;
        loop {
            out.push_str(&self.s[run..self.i]);
            match *self.b.get(self.i).ok_or(Bad)? {
                b'"' => {
                    self.i += 1;
                    return Ok(Cow::Owned(out));
                }
                b'\\' => {
                    let c = *self.b.get(self.i + 1).ok_or(Bad)?;
                    self.i += 2;
                    match c {
                        b'"' => out.push('"'),
                        b'\\' => out.push('\\'),
                        b'/' => out.push('/'),
                        b'b' => out.push('\u{8}'),
                        b'f' => out.push('\u{c}'),
                        b'n' => out.push('\n'),
                        b'r' => out.push('\r'),
                        b't' => out.push('\t'),
                        b'u' => {
                            let n = self.hex4()?;
                            let c = match n {
                                0xDC00..=0xDFFF => return Err(Bad),
                                0xD800..=0xDBFF => {
                                    if self.b.get(self.i..self.i + 2) != Some(b"\\u") {
                                        return Err(Bad);
                                    }
                                    self.i += 2;
                                    let low = self.hex4()?;
                                    if !(0xDC00..=0xDFFF).contains(&low) {
                                        return Err(Bad);
                                    }
                                    0x1_0000 + ((n - 0xD800) << 10 | (low - 0xDC00))
                                }
                                n => n,
                            };
                            out.push(char::from_u32(c).ok_or(Bad)?);
                        }
                        _ => return Err(Bad),
                    }
                }
                _ => return Err(Bad),
            }
            run = self.i;
            self.i = scan_plain(self.b, self.i);
        }
    }

    /// Keeps a decoded string's buffer for the next string with escapes.
    fn give_back(&mut self, s: Cow<'a, str>) {
        if let Cow::Owned(s) = s
            && s.capacity() > self.bufs.esc.capacity()
        {
            self.bufs.esc = s;
        }
    }

    /// Four hexadecimal digits of a `\\u` escape.
    fn hex4(&mut self) -> R<u32> {
        let h = self.b.get(self.i..self.i + 4).ok_or(Bad)?;
        let mut n = 0u32;
        for &c in h {
            n = n << 4 | char::from(c).to_digit(16).ok_or(Bad)?;
        }
        self.i += 4;
        Ok(n)
    }

    /// Moves past a string's closing quote, from a position inside it; escapes are checked for
    /// syntax only (serde_json's `ignore_str`).
    fn skip_string_from(&mut self, mut i: usize) -> R<()> {
        loop {
            i = scan_plain(self.b, i);
            match *self.b.get(i).ok_or(Bad)? {
                b'"' => {
                    self.i = i + 1;
                    return Ok(());
                }
                b'\\' => match self.b.get(i + 1).ok_or(Bad)? {
                    b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't' => i += 2,
                    b'u' => {
                        let hex = self.b.get(i + 2..i + 6).ok_or(Bad)?;
                        if !hex.iter().all(u8::is_ascii_hexdigit) {
                            return Err(Bad);
                        }
                        i += 6;
                    }
                    _ => return Err(Bad),
                },
                _ => return Err(Bad),
            }
        }
    }

    fn enter(&mut self) -> R<()> {
        if self.open + 1 >= RECURSION_LIMIT {
            return Err(Bad);
        }
        self.open += 1;
        self.peak = self.peak.max(self.open);
        self.i += 1;
        Ok(())
    }

    fn list(&mut self, depth: usize, sensitive: bool) -> R<(u8, Digest)> {
        self.enter()?;
        if depth >= self.cx.max_depth {
            self.skip_elements(b']')?;
            self.cx.stats.depth_capped += 1;
            self.bufs.out.extend_from_slice(&[0x1a, 0]);
            self.open -= 1;
            return Ok((3, EMPTY_MESSAGE));
        }
        let cap = if self.cx.max_list == 0 { usize::MAX } else { self.cx.max_list };
        let base = self.bufs.elems.len();
        let start = self.bufs.out.len();
        let mut kept = 0usize;
        let mut dropped = 0u64;
        self.ws();
        if self.peek()? == b']' {
            self.i += 1;
        } else {
            loop {
                if kept < cap {
                    let at = self.bufs.out.len();
                    let (m, h) = self.value(depth + 1, sensitive)?;
                    let d = value::one(usize::from(m), h);
                    self.bufs.elems.push(d.0);
                    self.bufs.lens.push(self.bufs.out.len() - at);
                    kept += 1;
                } else {
                    self.skip_value()?;
                    dropped += 1;
                }
                self.ws();
                match self.peek()? {
                    b',' => self.i += 1,
                    b']' => {
                        self.i += 1;
                        break;
                    }
                    _ => return Err(Bad),
                }
            }
        }
        self.cx.stats.list_elements_dropped += dropped;
        let hash = value::list_member_hash(&self.bufs.elems[base..]);
        // List { elems [1]: Data ... } behind `Data.list` [3]: each element gets its header, the
        // elements move right into place, last first.
        let lens = &self.bufs.lens[base..];
        let inner: usize = lens.iter().map(|&n| ld(n)).sum();
        let head = 1 + varint_len(inner as u64);
        let out = &mut self.bufs.out;
        let old_end = out.len();
        out.resize(start + head + inner, 0);
        let mut src_end = old_end;
        let mut dst_end = start + head + inner;
        for &n in lens.iter().rev() {
            let src = src_end - n;
            let dst = dst_end - n;
            out.copy_within(src..src_end, dst);
            let h = 1 + varint_len(n as u64);
            let mut at = dst - h;
            out[at] = 0x0a;
            at += 1;
            write_varint_at(out, at, n as u64);
            src_end = src;
            dst_end = dst - h;
        }
        debug_assert_eq!(dst_end, start + head);
        out[start] = 0x1a;
        write_varint_at(out, start + 1, inner as u64);
        self.bufs.elems.truncate(base);
        self.bufs.lens.truncate(base);
        self.open -= 1;
        Ok((3, hash))
    }

    fn object(&mut self, depth: usize, sensitive: bool) -> R<(u8, Digest)> {
        self.enter()?;
        if depth >= self.cx.max_depth {
            // serde_json reads the keys of this object (a lone surrogate fails) and skips the
            // values.
            self.ws();
            if self.peek()? == b'}' {
                self.i += 1;
            } else {
                loop {
                    self.ws();
                    if self.peek()? != b'"' {
                        return Err(Bad);
                    }
                    let name = self.string()?;
                    self.give_back(name);
                    self.colon()?;
                    self.skip_value()?;
                    if self.comma_or_end(b'}')? {
                        break;
                    }
                }
            }
            self.cx.stats.depth_capped += 1;
            self.bufs.out.extend_from_slice(&[0x12, 0]);
            self.open -= 1;
            return Ok((2, EMPTY_MESSAGE));
        }
        let base = self.bufs.fields.len();
        let names_base = self.bufs.names.len();
        let start = self.bufs.out.len();
        self.ws();
        if self.peek()? == b'}' {
            self.i += 1;
        } else {
            let mut ord = 0u32;
            loop {
                self.ws();
                if self.peek()? != b'"' {
                    return Err(Bad);
                }
                let name = self.string()?;
                self.colon()?;
                let sensitive = sensitive || self.cx.sensitive_name(&name);
                let at = self.bufs.names.len();
                self.bufs.names.extend_from_slice(name.as_bytes());
                let v = self.bufs.out.len();
                let (m, h) = self.value(depth + 1, sensitive)?;
                self.bufs.fields.push(Field {
                    name: at,
                    name_len: name.len(),
                    prefix: name_prefix(name.as_bytes()),
                    // Hashed from the body's text (a copy just made would be read back slower).
                    name_hash: crate::ir::hash::h_str(&name),
                    ord,
                    data_hash: value::one(usize::from(m), h),
                    start: v,
                    end: self.bufs.out.len(),
                });
                self.give_back(name);
                ord += 1;
                if self.comma_or_end(b'}')? {
                    break;
                }
            }
        }
        let bufs = &mut *self.bufs;
        let names = &bufs.names;
        let name = |f: &Field| &names[f.name..f.name + f.name_len];
        // By name, the last of a repeated name first; then the others of its run dropped.
        let fields = &mut bufs.fields[base..];
        fields.sort_unstable_by(|a, b| a.prefix.cmp(&b.prefix).then_with(|| name(a).cmp(name(b))).then(b.ord.cmp(&a.ord)));
        let mut n = 0;
        for i in 0..fields.len() {
            if n == 0 || fields[i].prefix != fields[n - 1].prefix || name(&fields[i]) != name(&fields[n - 1]) {
                fields.swap(n, i);
                n += 1;
            }
        }
        let count = fields.len();
        bufs.fields.truncate(base + n);
        let fields = &bufs.fields[base..];
        let eb = bufs.entries.len();
        for f in fields {
            let mut e = [0u8; 16];
            e[..8].copy_from_slice(&f.name_hash.0);
            e[8..].copy_from_slice(&f.data_hash.0);
            bufs.entries.push(e);
        }
        let hash = value::struct_member_hash(&mut bufs.entries[eb..]);
        bufs.entries.truncate(eb);
        // Struct { fields [1]: map<string, Data> } behind `Data.struct` [2], in name order.
        let entry = |f: &Field| {
            let key = if f.name_len == 0 { 0 } else { ld(f.name_len) };
            key + ld(f.end - f.start)
        };
        let inner: usize = fields.iter().map(|f| ld(entry(f))).sum();
        let head = 1 + varint_len(inner as u64);
        if fields.len() == count && fields.windows(2).all(|w| w[0].ord < w[1].ord) {
            // Already in name order, no name repeated: the values are in `out` in that order,
            // back to back. Each gets its headers and moves right into place, last first.
            let out = &mut bufs.out;
            out.resize(start + head + inner, 0);
            let mut dst_end = start + head + inner;
            for f in fields.iter().rev() {
                let (e, n) = (entry(f), f.end - f.start);
                out.copy_within(f.start..f.end, dst_end - n);
                let at = write_field_head(out, dst_end - ld(e), e, name(f), n);
                debug_assert_eq!(at, dst_end - n);
                dst_end -= ld(e);
            }
            debug_assert_eq!(dst_end, start + head);
            out[start] = 0x12;
            write_varint_at(out, start + 1, inner as u64);
        } else {
            let tmp = &mut bufs.tmp;
            tmp.clear();
            tmp.resize(head + inner, 0);
            tmp[0] = 0x12;
            write_varint_at(tmp, 1, inner as u64);
            let mut at = head;
            for f in fields {
                let n = f.end - f.start;
                at = write_field_head(tmp, at, entry(f), name(f), n);
                tmp[at..at + n].copy_from_slice(&bufs.out[f.start..f.end]);
                at += n;
            }
            if start == 0 {
                // The object is all there is (a body's top level): the rewritten copy becomes
                // the output, without copying it back.
                std::mem::swap(&mut bufs.out, &mut bufs.tmp);
            } else {
                bufs.out.truncate(start);
                bufs.out.extend_from_slice(&bufs.tmp);
            }
        }
        bufs.fields.truncate(base);
        bufs.names.truncate(names_base);
        self.open -= 1;
        Ok((2, hash))
    }

    fn colon(&mut self) -> R<()> {
        self.ws();
        if self.peek()? != b':' {
            return Err(Bad);
        }
        self.i += 1;
        Ok(())
    }

    /// After a list element or an object member: `,` (false) or the closing `end` (true).
    fn comma_or_end(&mut self, end: u8) -> R<bool> {
        self.ws();
        let c = self.peek()?;
        self.i += 1;
        if c == b',' {
            Ok(false)
        } else if c == end {
            Ok(true)
        } else {
            Err(Bad)
        }
    }

    /// The rest of a list whose `[` was read, every element skipped.
    fn skip_elements(&mut self, end: u8) -> R<()> {
        self.ws();
        if self.peek()? == end {
            self.i += 1;
            return Ok(());
        }
        loop {
            self.skip_value()?;
            if self.comma_or_end(end)? {
                return Ok(());
            }
        }
    }

    /// One value read for its syntax only, as serde_json ignores a value: containers on an
    /// explicit stack (no depth limit), numbers of any magnitude, escapes not decoded.
    fn skip_value(&mut self) -> R<()> {
        let stack_base = self.bufs.stack.len();
        loop {
            // A value.
            self.ws();
            let mut opened = false;
            match self.peek()? {
                b'n' => self.ident(b"null")?,
                b't' => self.ident(b"true")?,
                b'f' => self.ident(b"false")?,
                b'-' | b'0'..=b'9' => {
                    self.skip_number()?;
                }
                b'"' => self.skip_string_from(self.i + 1)?,
                c @ (b'[' | b'{') => {
                    self.i += 1;
                    self.bufs.stack.push(c);
                    opened = true;
                }
                _ => return Err(Bad),
            }
            // Then close what ends here, until a container wants another value.
            let mut first = opened;
            loop {
                let Some(&frame) = self.bufs.stack.get(stack_base..).and_then(<[u8]>::last) else {
                    return Ok(());
                };
                let end = if frame == b'[' { b']' } else { b'}' };
                self.ws();
                let c = self.peek()?;
                if c == end {
                    self.i += 1;
                    self.bufs.stack.pop();
                    first = false;
                    continue;
                }
                if first {
                    // A container's first value follows.
                } else if c == b',' {
                    self.i += 1;
                } else {
                    return Err(Bad);
                }
                if frame == b'{' {
                    self.ws();
                    if self.peek()? != b'"' {
                        return Err(Bad);
                    }
                    self.skip_string_from(self.i + 1)?;
                    self.colon()?;
                }
                break;
            }
        }
    }

    /// Moves past a number, checked for syntax; returns where its integer digits start and
    /// end, and whether that is all of it (no fraction, no exponent).
    fn skip_number(&mut self) -> R<(usize, usize, bool)> {
        if self.b[self.i] == b'-' {
            self.i += 1;
        }
        let digits = self.i;
        match self.b.get(self.i) {
            Some(b'0') => {
                self.i += 1;
                if let Some(b'0'..=b'9') = self.b.get(self.i) {
                    return Err(Bad);
                }
            }
            Some(b'1'..=b'9') => {
                while let Some(b'0'..=b'9') = self.b.get(self.i) {
                    self.i += 1;
                }
            }
            _ => return Err(Bad),
        }
        let int_end = self.i;
        let mut integer = true;
        if let Some(b'.') = self.b.get(self.i) {
            self.i += 1;
            self.digits()?;
            integer = false;
        }
        if let Some(b'e' | b'E') = self.b.get(self.i) {
            self.i += 1;
            if let Some(b'+' | b'-') = self.b.get(self.i) {
                self.i += 1;
            }
            self.digits()?;
            integer = false;
        }
        Ok((digits, int_end, integer))
    }
}

/// The first 8 bytes of `name`, big-endian, zero-padded (built in a register: a short copy
/// into a stack buffer read back whole stalls on store forwarding).
#[inline]
fn name_prefix(name: &[u8]) -> u64 {
    match name.first_chunk::<8>() {
        Some(c) => u64::from_be_bytes(*c),
        None => name.iter().enumerate().fold(0, |v, (i, &c)| v | u64::from(c) << (56 - 8 * i)),
    }
}

/// Writes a struct field's headers at `at`: the map entry's tag and length (`entry`), its key
/// (left out when empty) and the `Data` value's tag and length. Returns where the value goes.
fn write_field_head(out: &mut [u8], mut at: usize, entry: usize, name: &[u8], value_len: usize) -> usize {
    out[at] = 0x0a;
    write_varint_at(out, at + 1, entry as u64);
    at += 1 + varint_len(entry as u64);
    if !name.is_empty() {
        out[at] = 0x0a;
        write_varint_at(out, at + 1, name.len() as u64);
        at += 1 + varint_len(name.len() as u64);
        out[at..at + name.len()].copy_from_slice(name);
        at += name.len();
    }
    out[at] = 0x12;
    write_varint_at(out, at + 1, value_len as u64);
    at + 1 + varint_len(value_len as u64)
}

/// Writes `v` as a varint at `at` (the room was reserved).
fn write_varint_at(out: &mut [u8], mut at: usize, mut v: u64) {
    while v >= 0x80 {
        out[at] = (v as u8) | 0x80;
        v >>= 7;
        at += 1;
    }
    out[at] = v as u8;
}

/// Checks the one-pass parse of `body` against serde_json's tree under one of 64 settings
/// (redaction, depth and list caps, zeroing): accepted or not, hash, bytes and counters.
/// For tests and fuzzing.
#[doc(hidden)]
pub fn check_against_tree(body: &[u8], settings: u8) -> Result<(), String> {
    use crate::ir::value::{Scratch, Sizes, encode_data, hash_data};
    let r = crate::ir::redact::Redactor::builtin();
    let redact = settings & 1 != 0;
    let zero = settings & 2 != 0;
    let max_depth = [64, 0, 1, 2, 3, 200][usize::from(settings >> 2) % 6];
    let max_list = [32, 0, 1, 2, 3][usize::from(settings >> 5) % 5];
    let setup = || {
        let mut cx = Ctx::new(redact.then_some(&r));
        cx.max_depth = max_depth;
        cx.max_list = max_list;
        cx
    };
    let outcome = |v: Option<Val>, cx: &Ctx<'_>| {
        v.map(|v| {
            let mut sizes = Sizes::default();
            let n = sizes.compute(&v);
            let mut bytes = Vec::with_capacity(n);
            encode_data(&v, &mut sizes, &mut bytes);
            (hash_data(&v, None, &mut Scratch::default()), bytes, format!("{:?}", cx.stats))
        })
    };
    let mut a = setup();
    a.zero_values = zero;
    let fast = super::json::parse_json_at(&mut a, body, 0);
    let mut b = setup();
    let mut tree = super::json::parse_json_tree(&mut b, body, 0);
    if zero && let Some(t) = tree.as_mut() {
        crate::ir::build::zero_val(t);
    }
    let (fast, tree) = (outcome(fast, &a), outcome(tree, &b));
    if fast == tree {
        Ok(())
    } else {
        Err(format!(
            "one-pass {fast:?} and tree {tree:?} differ on {:?} (redact {redact}, depth {max_depth}, list {max_list}, zero {zero})",
            String::from_utf8_lossy(body)
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ir::body::json::parse_json_tree;

    /// The one-pass parse and serde_json's tree agree on `body` under every setting, and
    /// decode to the same message.
    fn same(body: &[u8]) {
        for settings in 0..=u8::MAX {
            if let Err(e) = check_against_tree(body, settings) {
                panic!("{e}");
            }
        }
        // prost decodes at most 100 nested messages.
        if body.len() < 100
            && let (Some(f), Some(t)) =
                (super::super::json::parse_json_at(&mut Ctx::new(None), body, 0), parse_json_tree(&mut Ctx::new(None), body, 0))
        {
            assert_eq!(f.to_pb(), t.to_pb());
        }
    }

    #[test]
    fn deep_bodies_decode_back() {
        // Past the nesting prost decodes, the body is a tree: `to_pb` works at any depth.
        for n in [1, 29, 30, 31, 33, 40, 62] {
            for (open, close) in [("{\"a\":", "}"), ("[", "]")] {
                let body = format!("{}1{}", open.repeat(n), close.repeat(n));
                let mut cx = Ctx::new(None);
                let v = super::super::json::parse_json_at(&mut cx, body.as_bytes(), 0).unwrap();
                assert_eq!(matches!(v, Val::Encoded(_)), n <= ENCODED_NESTING_MAX as usize, "{n}");
                let tree = parse_json_tree(&mut Ctx::new(None), body.as_bytes(), 0).unwrap();
                assert_eq!(v.to_pb(), tree.to_pb(), "{n}");
            }
        }
    }

    #[test]
    fn agrees_with_serde_json_on_edge_cases() {
        for body in [
            "",
            " ",
            "null",
            "true",
            "false",
            "0",
            "-0",
            "-0.0",
            "1",
            "-1",
            "01",
            "-01",
            "1.",
            "1.e3",
            ".5",
            "1e",
            "1e+",
            "1E-2",
            "+1",
            "9223372036854775807",
            "9223372036854775808",
            "18446744073709551615",
            "18446744073709551616",
            "-9223372036854775808",
            "-9223372036854775809",
            "123456789012345678901234567890",
            "1e308",
            "1e309",
            "-1e309",
            "1e-400",
            "0.1",
            "2.5e-3",
            "3.141592653589793238462643383279",
            "\"\"",
            "\"abc\"",
            "\"a\\\"b\"",
            "\"\\u00e9\"",
            "\"\\ud83d\\ude00\"",
            "\"\\ud83d\"",
            "\"\\ude00\"",
            "\"\\ud83dx\"",
            "\"\\x\"",
            "\"\\u12\"",
            "\"a\tb\"",
            "\"a\u{1}b\"",
            "\"unterminated",
            "[]",
            "[ ]",
            "[1,]",
            "[,1]",
            "[1 2]",
            "[1,2",
            "{}",
            "{ }",
            "{\"a\":1}",
            "{\"a\":1,}",
            "{,}",
            "{\"a\" 1}",
            "{\"a\":}",
            "{a:1}",
            "{\"a\":1 \"b\":2}",
            "{\"b\":1,\"a\":2,\"b\":3}",
            "{\"\":1,\"\":[]}",
            "{\"a\\u0000b\":1}",
            "{\"a\\u0000\":1,\"a\":2,\"a\\u0000\":3,\"abcdefgh\":4,\"abcdefghi\":5,\"abcdefgh\\u0000\":6}",
            "[1,2,3,4,5]",
            "[[1,2,3],[4,5,6,7],{\"x\":[8,9,10]}]",
            "[1,2,3,{\"a\":\"\\ud800\"}]",
            "[1,2,3,1e999]",
            "[1,2,3,[[[[]]]]]",
            "[1,2,3,{\"a\":1,}]",
            "[1,2,3,{]",
            "{\"a\":{\"b\":{\"c\":{\"d\":1e999}}}}",
            "{\"a\":{\"b\":{\"\\ud800\":1}}}",
            "{\"a\":{\"b\":{\"c\":\"\\ud800\"}}}",
            "{\"a\":[[[\"\\ud800\"]]]}",
            "nul",
            "nulll",
            "truex",
            "[true,false,null]",
            "{\"password\":\"hunter2\",\"user\":{\"token\":\"t\",\"n\":[1,2]},\"card\":\"4111 1111 1111 1111\",\"id\":\"123e4567-e89b-12d3-a456-426614174000\"}",
            "{\"when\":\"2024-02-29T10:33:00Z\",\"mail\":\"a@b.example\",\"url\":\"https://x.example/a\",\"big\":1234567890123456}",
            "\"\\u0041\\u00e9\\u20AC\\ud83d\\ude00x\\/\\b\\f\\r\\t\"",
            "\"\\ud83d\\u0041\"",
            "\"\\ud83d\\\\\"",
            "\"\\uDC00\"",
            "\"\\uD800\"",
            "\"\\u00G0\"",
            "\"\\u00e\"",
            "\"ab\\",
            "\"ab\\u",
            "\"\\ud83d\\ude0\"",
            "\"\\ud83d\\",
            "{\"k\\u00e9y\":1,\"k\u{e9}y\":2}",
            "\"\\u0000 nul and \\u001f\"",
            "\"a \\\" quote, then more than sixteen bytes \\\\ and \\u00e9\"",
            "\"a long string of more than sixteen bytes\"",
            "\"a long string of more than sixteen bytes\\n and an escape\"",
            "\"a long string of more than sixteen bytes\u{1} and a control\"",
            "\"a long string of more than sixteen bytes, unterminated",
            "[1,2,3,\"a long string of more than sixteen bytes\u{1f}\"]",
            "[1,2,3,\"a long string of more than sixteen \\u00e9 \\q\"]",
            "{\"a key of more than sixteen bytes\\t\":\"v\"}",
            "  {\"a\" : [ 1 , 2 ] }  ",
            "{\"a\":1}x",
            "[1] [2]",
            "\"\u{e9}\u{1f600}\"",
        ] {
            same(body.as_bytes());
        }
        // Nesting: serde_json's limit among the containers parsed, none among those skipped.
        for n in [1, 2, 3, 62, 63, 64, 65, 126, 127, 128, 129, 300] {
            same(format!("{}{}", "[".repeat(n), "]".repeat(n)).as_bytes());
            same(format!("{}1{}", "{\"a\":".repeat(n), "}".repeat(n)).as_bytes());
            same(format!("[1,2,3,{}{}]", "[".repeat(n), "]".repeat(n)).as_bytes());
        }
        let mut cx = Ctx::new(None);
        cx.max_depth = 200;
        for n in [126, 127, 128] {
            let deep = format!("{}{}", "[".repeat(n), "]".repeat(n));
            let fast = super::super::json::parse_json_at(&mut cx, deep.as_bytes(), 0).is_some();
            let tree = parse_json_tree(&mut Ctx { max_depth: 200, ..Ctx::new(None) }, deep.as_bytes(), 0).is_some();
            assert_eq!(fast, tree, "{n}");
            assert_eq!(fast, n < 128, "{n}");
        }
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(300))]
        #[test]
        fn agrees_with_serde_json_on_json_like_text(
            parts in proptest::collection::vec(proptest::sample::select(vec![
                "{", "}", "[", "]", ",", ":", " ", "\"a\"", "\"b\"", "\"password\"", "\"\"", "1", "-0", "2.5", "1e999", "0.1e-2",
                "null", "true", "false", "\"x\\u00e9\"", "\"\\ud800\"", "\"\\n\"", "\"2024-02-29\"", "18446744073709551616", "0",
            ]), 0..40)
        ) {
            same(parts.concat().as_bytes());
        }

        #[test]
        fn scan_plain_stops_where_a_byte_loop_stops(
            b in proptest::collection::vec(proptest::sample::select(vec![
                b'a', b'~', b' ', b'!', b'#', b'"', b'\\', 0x00, 0x1f, 0x20, 0x21, 0x5b, 0x5d, 0x7f, 0x80, 0xa2, 0xdc, 0xff,
            ]), 0..40),
            from in 0usize..40,
        ) {
            let from = from.min(b.len());
            let want = (from..b.len()).find(|&i| b[i] == b'"' || b[i] == b'\\' || b[i] < 0x20).unwrap_or(b.len());
            proptest::prop_assert_eq!(scan_plain(&b, from), want);
        }

        #[test]
        fn agrees_with_serde_json_on_generated_json(v in json_value()) {
            same(v.to_string().as_bytes());
            same(serde_json::to_string_pretty(&v).unwrap().as_bytes());
        }
    }

    fn json_value() -> impl proptest::strategy::Strategy<Value = serde_json::Value> {
        use proptest::prelude::*;
        let leaf = prop_oneof![
            Just(serde_json::Value::Null),
            any::<bool>().prop_map(serde_json::Value::from),
            any::<i64>().prop_map(serde_json::Value::from),
            any::<u64>().prop_map(serde_json::Value::from),
            any::<f64>().prop_filter("finite", |f| f.is_finite()).prop_map(serde_json::Value::from),
            "[a-z\u{e9}\"\\\\/\n\u{1}\u{1f600}]{0,12}".prop_map(serde_json::Value::from),
        ];
        leaf.prop_recursive(5, 64, 6, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..6).prop_map(serde_json::Value::Array),
                proptest::collection::vec(("[a-c]{0,2}|password|token", inner), 0..6)
                    .prop_map(|kv| serde_json::Value::Object(kv.into_iter().collect())),
            ]
        })
    }
}
