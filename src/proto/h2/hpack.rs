//! HPACK header block decoding (RFC 7541), one [`Decoder`] per direction of a connection.
//!
//! Contract: [`Decoder::decode`] takes one complete header block (HEADERS + CONTINUATION, or
//! PUSH_PROMISE + CONTINUATION, in the order the blocks were sent) and appends its fields to
//! a list, updating the dynamic table exactly as the peer's encoder did. It never panics and
//! never allocates past the caps: fields past the header-list cap are decoded (the table must
//! follow the encoder) but not kept, and the table never holds more than its cap.
//!
//! A passive decoder can lose the table: bytes missing from the capture (a header block lost
//! in a gap inserted entries we never saw), a capture that starts mid-connection, a table
//! size the encoder set past our cap. [`Decoder::lose_state`] marks that. What survives is
//! exact: HPACK indexes the dynamic table from the newest entry, and eviction removes the
//! oldest, so the entries inserted since the loss keep their indexes as long as they exist,
//! and a valid encoder only references entries that exist. A reference past them names an
//! entry we never saw: the block is [`BlockError::Unknown`] (its fields are not given, never
//! guessed), but its own insertions are still applied, those whose content is known as known
//! entries, the others as unknown ones, so that later blocks stay decodable where they can.

use std::collections::VecDeque;
use std::sync::OnceLock;

use super::huffman_table::CODES;

/// The static table (RFC 7541, Appendix A), indexes 1 to 61.
pub const STATIC: [(&str, &str); 61] = [
    (":authority", ""),
    (":method", "GET"),
    (":method", "POST"),
    (":path", "/"),
    (":path", "/index.html"),
    (":scheme", "http"),
    (":scheme", "https"),
    (":status", "200"),
    (":status", "204"),
    (":status", "206"),
    (":status", "304"),
    (":status", "400"),
    (":status", "404"),
    (":status", "500"),
    ("accept-charset", ""),
    ("accept-encoding", "gzip, deflate"),
    ("accept-language", ""),
    ("accept-ranges", ""),
    ("accept", ""),
    ("access-control-allow-origin", ""),
    ("age", ""),
    ("allow", ""),
    ("authorization", ""),
    ("cache-control", ""),
    ("content-disposition", ""),
    ("content-encoding", ""),
    ("content-language", ""),
    ("content-length", ""),
    ("content-location", ""),
    ("content-range", ""),
    ("content-type", ""),
    ("cookie", ""),
    ("date", ""),
    ("etag", ""),
    ("expect", ""),
    ("expires", ""),
    ("from", ""),
    ("host", ""),
    ("if-match", ""),
    ("if-modified-since", ""),
    ("if-none-match", ""),
    ("if-range", ""),
    ("if-unmodified-since", ""),
    ("last-modified", ""),
    ("link", ""),
    ("location", ""),
    ("max-forwards", ""),
    ("proxy-authenticate", ""),
    ("proxy-authorization", ""),
    ("range", ""),
    ("referer", ""),
    ("refresh", ""),
    ("retry-after", ""),
    ("server", ""),
    ("set-cookie", ""),
    ("strict-transport-security", ""),
    ("transfer-encoding", ""),
    ("user-agent", ""),
    ("vary", ""),
    ("via", ""),
    ("www-authenticate", ""),
];

/// The table size both sides start with (RFC 9113, SETTINGS_HEADER_TABLE_SIZE).
pub const DEFAULT_TABLE_SIZE: usize = 4096;

/// Why a header block gave no fields.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BlockError {
    /// It references dynamic-table entries whose content was lost (see the module docs).
    Unknown,
    /// It is not valid HPACK; the table's state is lost from here on.
    Malformed(&'static str),
    /// Its fields passed the header-list cap (the table was still updated).
    TooLarge,
}

/// A field as decoded: name and value.
pub type Field = (Vec<u8>, Vec<u8>);

/// A field in a table.
type FieldRef<'a> = (&'a [u8], &'a [u8]);

/// One direction's HPACK decoding state.
pub struct Decoder {
    /// Newest first, with the size counted for it; `None`: an entry inserted while its
    /// content could not be known (its size is then what is known of it, a lower bound).
    entries: VecDeque<(Option<Field>, usize)>,
    /// Size of `entries` as RFC 7541 counts it (unknown entries count 32 plus what is known).
    size: usize,
    /// The table's maximum size as the encoder last set it (or the default).
    max: usize,
    /// The largest table this decoder keeps (the cap; bounds memory whatever the peer says).
    cap: usize,
    /// Entries older than `entries` may exist whose content we never saw.
    uncertain: bool,
}

impl Decoder {
    /// A decoder for a connection seen from its start, keeping at most `cap` bytes of table.
    pub fn new(cap: usize) -> Decoder {
        Decoder { entries: VecDeque::new(), size: 0, max: DEFAULT_TABLE_SIZE.min(cap), cap, uncertain: cap < DEFAULT_TABLE_SIZE }
    }

    /// The table's content is no longer known (bytes missing, a mid-stream start).
    pub fn lose_state(&mut self) {
        self.entries.clear();
        self.size = 0;
        self.uncertain = true;
        self.max = self.cap;
    }

    /// Whether the table's content is fully known.
    pub fn is_certain(&self) -> bool {
        !self.uncertain
    }

    /// Bytes the table holds.
    pub fn held_bytes(&self) -> usize {
        self.size
    }

    /// Decodes one complete header block, appending its fields to `out` unless the block
    /// fails. `max_list`: the header-list cap (RFC 9113 counting: name + value + 32 each).
    pub fn decode(&mut self, b: &[u8], max_list: usize, out: &mut Vec<Field>) -> Result<(), BlockError> {
        let start = out.len();
        let r = self.decode_fields(b, max_list, out);
        if r.is_err() {
            // A malformed block too: none of its fields, not those before the fault.
            out.truncate(start);
        }
        r
    }

    fn decode_fields(&mut self, mut b: &[u8], max_list: usize, out: &mut Vec<Field>) -> Result<(), BlockError> {
        let start = out.len();
        let mut list = 0usize;
        let mut unknown = false;
        let mut too_large = false;
        let mut first = true;
        while !b.is_empty() {
            let c = b[0];
            let r = if c & 0x80 != 0 {
                // Indexed field.
                let idx = int(&mut b, 7)?;
                match self.get(idx)? {
                    Some((n, v)) => Some((n.to_vec(), v.to_vec())),
                    None => {
                        unknown = true;
                        None
                    }
                }
            } else if c & 0xe0 == 0x20 {
                // Dynamic table size update: only at the start of a block.
                if !first {
                    return Err(self.malformed("table size update after a field"));
                }
                let n = int(&mut b, 5)?;
                self.resize(n);
                continue;
            } else {
                let (prefix, index) = match c {
                    _ if c & 0xc0 == 0x40 => (6, true),
                    _ => (4, false),
                };
                let idx = int(&mut b, prefix)?;
                let name = if idx == 0 { Some(self.string(&mut b)?) } else { self.get(idx)?.map(|(n, _)| n.to_vec()) };
                let value = self.string(&mut b)?;
                match name {
                    Some(n) => {
                        if index {
                            self.insert(Some((n.clone(), value.clone())), n.len() + value.len());
                        }
                        Some((n, value))
                    }
                    None => {
                        unknown = true;
                        if index {
                            self.insert(None, value.len());
                        }
                        None
                    }
                }
            };
            first = false;
            if let Some((n, v)) = r {
                list = list.saturating_add(n.len() + v.len() + 32);
                if list > max_list {
                    too_large = true;
                }
                if !unknown && !too_large {
                    out.push((n, v));
                }
            }
        }
        if unknown || too_large {
            out.truncate(start);
            return Err(if unknown { BlockError::Unknown } else { BlockError::TooLarge });
        }
        Ok(())
    }

    fn malformed(&mut self, why: &'static str) -> BlockError {
        self.lose_state();
        BlockError::Malformed(why)
    }

    /// Entry `idx` (1-based over the static then the dynamic table): `Some(None)` when it is
    /// an entry whose content is unknown.
    fn get(&mut self, idx: usize) -> Result<Option<FieldRef<'_>>, BlockError> {
        match idx {
            0 => Err(self.malformed("index 0")),
            1..=61 => {
                let (n, v) = STATIC[idx - 1];
                Ok(Some((n.as_bytes(), v.as_bytes())))
            }
            _ => {
                let k = idx - 62;
                if k < self.entries.len() {
                    return Ok(self.entries[k].0.as_ref().map(|(n, v)| (n.as_slice(), v.as_slice())));
                }
                if self.uncertain { Ok(None) } else { Err(self.malformed("index past the dynamic table")) }
            }
        }
    }

    fn resize(&mut self, n: usize) {
        if n > self.cap {
            // Larger than we keep: entries past the cap may exist that we do not hold.
            self.max = self.cap;
            self.uncertain = true;
        } else {
            self.max = n;
            if n == 0 {
                // An empty table is known, whatever came before.
                self.uncertain = false;
            }
        }
        self.evict(0);
    }

    fn evict(&mut self, room: usize) {
        while self.size + room > self.max {
            match self.entries.pop_back() {
                Some((_, n)) => self.size -= n,
                None => break,
            }
        }
    }

    /// Inserts an entry of `len` bytes of name and value (for an unknown entry, what is known
    /// of them).
    fn insert(&mut self, e: Option<Field>, len: usize) {
        let s = len.saturating_add(32);
        if s > self.max {
            // Larger than the table: it empties it (RFC 7541, section 4.4).
            self.entries.clear();
            self.size = 0;
            return;
        }
        self.evict(s);
        self.size += s;
        self.entries.push_front((e, s));
    }

    /// A string literal (Huffman-coded or not), bounded by the block's bytes.
    fn string(&mut self, b: &mut &[u8]) -> Result<Vec<u8>, BlockError> {
        let Some(&c) = b.first() else { return Err(self.malformed("string past the block")) };
        let huff = c & 0x80 != 0;
        let len = int(b, 7)?;
        if len > b.len() {
            return Err(self.malformed("string past the block"));
        }
        let (s, rest) = b.split_at(len);
        *b = rest;
        if huff {
            let mut out = Vec::with_capacity(len + len / 2);
            match huffman_decode(s, &mut out) {
                Ok(()) => Ok(out),
                Err(why) => Err(self.malformed(why)),
            }
        } else {
            Ok(s.to_vec())
        }
    }
}

/// An HPACK integer with an `n`-bit prefix (RFC 7541, section 5.1), at most 2^28.
fn int(b: &mut &[u8], n: u8) -> Result<usize, BlockError> {
    let Some((&first, mut rest)) = b.split_first() else { return Err(BlockError::Malformed("integer past the block")) };
    let mask = ((1u16 << n) - 1) as u8;
    let mut v = (first & mask) as usize;
    if v == mask as usize {
        let mut shift = 0;
        loop {
            let Some((&c, r)) = rest.split_first() else { return Err(BlockError::Malformed("integer past the block")) };
            rest = r;
            if shift > 21 {
                return Err(BlockError::Malformed("integer too large"));
            }
            v += ((c & 0x7f) as usize) << shift;
            shift += 7;
            if c & 0x80 == 0 {
                break;
            }
        }
    }
    *b = rest;
    Ok(v)
}

/// The Huffman decoding tree: node `i` has children `tree[i][bit]`; a child with the high bit
/// set is a leaf holding a symbol (256 is EOS).
fn tree() -> &'static Vec<[u16; 2]> {
    static TREE: OnceLock<Vec<[u16; 2]>> = OnceLock::new();
    TREE.get_or_init(|| {
        let mut t: Vec<[u16; 2]> = vec![[0, 0]];
        for (sym, &(code, len)) in CODES.iter().enumerate() {
            let mut node = 0usize;
            for i in (0..len).rev() {
                let bit = ((code >> i) & 1) as usize;
                if i == 0 {
                    t[node][bit] = 0x8000 | sym as u16;
                } else {
                    if t[node][bit] == 0 {
                        t.push([0, 0]);
                        t[node][bit] = (t.len() - 1) as u16;
                    }
                    node = t[node][bit] as usize;
                }
            }
        }
        t
    })
}

/// Decodes a Huffman-coded string (RFC 7541, section 5.2): padding must be the high bits of
/// EOS and shorter than a byte, and EOS itself must not appear.
pub fn huffman_decode(s: &[u8], out: &mut Vec<u8>) -> Result<(), &'static str> {
    let t = tree();
    let mut node = 0usize;
    // Bits read since the last symbol, and whether they were all ones.
    let mut depth = 0u32;
    let mut ones = true;
    for &byte in s {
        for i in (0..8).rev() {
            let bit = ((byte >> i) & 1) as usize;
            let next = t[node][bit];
            depth += 1;
            ones &= bit == 1;
            if next & 0x8000 != 0 {
                let sym = next & 0x7fff;
                if sym == 256 {
                    return Err("EOS in a Huffman string");
                }
                out.push(sym as u8);
                node = 0;
                depth = 0;
                ones = true;
            } else if next == 0 {
                return Err("invalid Huffman code");
            } else {
                node = next as usize;
            }
        }
    }
    if depth > 7 || !ones {
        return Err("invalid Huffman padding");
    }
    Ok(())
}

#[cfg(test)]
mod tests;
