//! Minimal JSON string writing, for the hand-written HAR envelope and entries.
//!
//! Bodies are most of a HAR's bytes, so escaping is on the hot path: runs of bytes that need no
//! escape are found eight at a time (a word-at-a-time test for `"`, `\` and control bytes) and
//! copied whole; only the bytes that need it are escaped one by one.

/// The escape for each byte: 0 for none, `u` for `\u00XX`, else the letter after `\`.
const fn escape_table() -> [u8; 256] {
    let mut t = [0u8; 256];
    let mut i = 0;
    while i < 0x20 {
        t[i] = b'u';
        i += 1;
    }
    t[b'\n' as usize] = b'n';
    t[b'\r' as usize] = b'r';
    t[b'\t' as usize] = b't';
    t[0x08] = b'b';
    t[0x0c] = b'f';
    t[b'"' as usize] = b'"';
    t[b'\\' as usize] = b'\\';
    t
}

#[cfg(test)]
static ESCAPE: [u8; 256] = escape_table();

const LO: u64 = 0x0101_0101_0101_0101;
const HI: u64 = 0x8080_8080_8080_8080;

/// Whether any byte of `w` is below 0x20, or equal to `"` or `\`.
#[inline(always)]
fn needs_escape(w: u64) -> bool {
    let has_zero = |x: u64| x.wrapping_sub(LO) & !x & HI;
    // Bytes below 0x20: subtracting 0x20 borrows into the high bit (for bytes below 0x80).
    let ctl = w.wrapping_sub(LO * 0x20) & !w & HI;
    let quote = has_zero(w ^ (LO * b'"' as u64));
    let backslash = has_zero(w ^ (LO * b'\\' as u64));
    (ctl | quote | backslash) != 0
}

/// For each byte, the two bytes it is written as (the byte and a filler, or `\` and the escape
/// letter), little-endian in a `u16`, and how many of them count: 1, 2, or 6 for control bytes
/// (written as `\u00XX` on a slower path).
const fn pair_table() -> ([u16; 256], [u8; 256]) {
    let e = escape_table();
    let mut pair = [0u16; 256];
    let mut len = [0u8; 256];
    let mut c = 0;
    while c < 256 {
        if e[c] == 0 {
            pair[c] = c as u16;
            len[c] = 1;
        } else if e[c] == b'u' {
            len[c] = 6;
        } else {
            pair[c] = (b'\\' as u16) | ((e[c] as u16) << 8);
            len[c] = 2;
        }
        c += 1;
    }
    (pair, len)
}

static PAIRS: ([u16; 256], [u8; 256]) = pair_table();

/// Writes `s` as a JSON string, quotes included.
pub fn write_str(out: &mut Vec<u8>, s: &str) {
    write_escaped(out, s.as_bytes(), true);
}

/// `b` (UTF-8) escaped, between quotes if `quotes`.
fn write_escaped(out: &mut Vec<u8>, b: &[u8], quotes: bool) {
    let (pairs, lens) = &PAIRS;
    // Room for two bytes per input byte (every escape but `\u00XX`, which makes its own room)
    // and one spare for the filler byte the pair writes leave behind.
    out.reserve(2 * b.len() + 3);
    let mut o = out.len();
    let mut cap = out.capacity();
    let mut base = out.as_mut_ptr();
    // SAFETY: writes stay below `cap`: before each step the room left covers two bytes per
    // remaining input byte plus three (checked where a control byte needs six, which reserves
    // more and takes the new pointer); `set_len` covers exactly the bytes written, all
    // initialised.
    unsafe {
        if quotes {
            *base.add(o) = b'"';
            o += 1;
        }
        let mut i = 0;
        while i < b.len() {
            if i + 8 <= b.len() {
                let w = u64::from_le_bytes(b[i..i + 8].try_into().expect("8 bytes"));
                if !needs_escape(w) {
                    std::ptr::copy_nonoverlapping(b.as_ptr().add(i), base.add(o), 8);
                    o += 8;
                    i += 8;
                    continue;
                }
            }
            let end = (i + 8).min(b.len());
            while i < end {
                let c = *b.get_unchecked(i) as usize;
                let n = *lens.get_unchecked(c) as usize;
                if n == 6 {
                    const HEX: &[u8; 16] = b"0123456789abcdef";
                    let need = o + 6 + 2 * (b.len() - i) + 3;
                    if need > cap {
                        out.set_len(o);
                        out.reserve(need - o);
                        cap = out.capacity();
                        base = out.as_mut_ptr();
                    }
                    let seq = [b'\\', b'u', b'0', b'0', HEX[c >> 4], HEX[c & 15]];
                    std::ptr::copy_nonoverlapping(seq.as_ptr(), base.add(o), 6);
                    o += 6;
                } else {
                    std::ptr::write_unaligned(base.add(o) as *mut [u8; 2], pairs.get_unchecked(c).to_le_bytes());
                    o += n;
                }
                i += 1;
            }
        }
        if quotes {
            *base.add(o) = b'"';
            o += 1;
        }
        debug_assert!(o <= cap);
        out.set_len(o);
    }
}

/// Length of `b` (UTF-8) escaped as the content of a JSON string, quotes not counted: what
/// [`push_escaped`] writes.
pub fn escaped_len(b: &[u8]) -> usize {
    let lens = &PAIRS.1;
    let mut n = b.len();
    let mut i = 0;
    while i < b.len() {
        if i + 8 <= b.len() && !needs_escape(u64::from_le_bytes(b[i..i + 8].try_into().expect("8 bytes"))) {
            i += 8;
            continue;
        }
        let end = (i + 8).min(b.len());
        for &c in &b[i..end] {
            n += lens[c as usize] as usize - 1;
        }
        i = end;
    }
    n
}

/// Appends `b` (UTF-8) escaped as the content of a JSON string, without quotes (grows `out`
/// as needed, as [`write_str`] does).
pub fn push_escaped(out: &mut Vec<u8>, b: &[u8]) {
    write_escaped(out, b, false);
}

/// Appends `b` (UTF-8) escaped as the content of a JSON string, without quotes: exactly
/// `escaped` bytes ([`escaped_len`] of it), into room `out` has for them and one byte more
/// (the closing quote's): nothing is reallocated then.
pub fn push_escaped_exact(out: &mut Vec<u8>, b: &[u8], escaped: usize) {
    out.reserve(escaped + 1);
    let (pairs, lens) = &PAIRS;
    let start = out.len();
    // SAFETY: `out` has room for `escaped + 1` bytes past `start`; `escaped` is the exact
    // escaped length of `b`, so the writes (two bytes per one-byte pair, the second a filler
    // that the next write or the closing byte covers) stay below `start + escaped + 1`; and if
    // `escaped` were wrong, the bound checks (per word, per group where six bytes a byte fit,
    // else per byte) stop before a write past it. `set_len` covers the `escaped` bytes
    // written, all initialised.
    unsafe {
        let base = out.as_mut_ptr().add(start);
        let mut o = 0;
        let mut i = 0;
        while i < b.len() {
            if i + 8 <= b.len() {
                let w = u64::from_le_bytes(b[i..i + 8].try_into().expect("8 bytes"));
                if !needs_escape(w) {
                    assert!(o + 8 <= escaped, "escaped length");
                    std::ptr::copy_nonoverlapping(b.as_ptr().add(i), base.add(o), 8);
                    o += 8;
                    i += 8;
                    continue;
                }
            }
            let end = (i + 8).min(b.len());
            // The bound is checked once for the group when even six bytes for each of its
            // bytes fit, else for each byte (near the end).
            let group_fits = o + 6 * (end - i) <= escaped;
            while i < end {
                let c = *b.get_unchecked(i) as usize;
                let n = *lens.get_unchecked(c) as usize;
                assert!(group_fits || o + n <= escaped, "escaped length");
                if n == 6 {
                    const HEX: &[u8; 16] = b"0123456789abcdef";
                    let seq = [b'\\', b'u', b'0', b'0', HEX[c >> 4], HEX[c & 15]];
                    std::ptr::copy_nonoverlapping(seq.as_ptr(), base.add(o), 6);
                } else {
                    std::ptr::write_unaligned(base.add(o) as *mut [u8; 2], pairs.get_unchecked(c).to_le_bytes());
                }
                o += n;
                i += 1;
            }
        }
        assert_eq!(o, escaped, "escaped length");
        out.set_len(start + o);
    }
}

/// Writes protocol bytes as a JSON string: UTF-8 as it is, anything else read as ISO-8859-1
/// (what HTTP header bytes outside ASCII meant historically).
pub fn write_bytes_str(out: &mut Vec<u8>, b: &[u8]) {
    match std::str::from_utf8(b) {
        Ok(s) => write_str(out, s),
        Err(_) => {
            let s: String = b.iter().map(|&c| c as char).collect();
            write_str(out, &s);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn escapes_round_trip_through_serde_json() {
        let samples = [
            "plain",
            "quote \" back \\ slash",
            "ctl \u{0}\u{1f}\n\r\t\u{8}\u{c}",
            "ünïcødé ✓ \u{7f}",
            "",
            "0123456789abcdef\"0123456789\u{1}",
        ];
        for s in samples {
            let mut out = Vec::new();
            write_str(&mut out, s);
            let back: String = serde_json::from_slice(&out).unwrap();
            assert_eq!(back, s);
        }
        let mut out = Vec::new();
        write_bytes_str(&mut out, b"caf\xe9");
        assert_eq!(serde_json::from_slice::<String>(&out).unwrap(), "café");
    }

    #[test]
    fn word_test_matches_the_table() {
        for c in 0..=255u8 {
            for pos in 0..8 {
                let mut w = [b'a'; 8];
                w[pos] = c;
                assert_eq!(needs_escape(u64::from_le_bytes(w)), ESCAPE[c as usize] != 0, "byte {c:#x} at {pos}");
            }
        }
    }

    proptest! {
        /// The exact writer and its length agree with serde_json, piece by piece too.
        #[test]
        fn escaped_exactly(s in ".*", prefix in 0usize..20, zeros in 0usize..40) {
            let s = format!("{}{s}{}", "x".repeat(prefix), "\u{0}".repeat(zeros));
            let want = serde_json::to_string(&s).unwrap();
            let mut out = Vec::new();
            push_escaped(&mut out, s.as_bytes());
            let n = escaped_len(s.as_bytes());
            prop_assert_eq!(out.len(), n);
            prop_assert_eq!(&out[..], &want.as_bytes()[1..want.len() - 1]);
            let mut exact = Vec::with_capacity(n + 1);
            push_escaped_exact(&mut exact, s.as_bytes(), n);
            prop_assert_eq!((&exact[..], exact.capacity()), (&out[..], n + 1));
        }

        #[test]
        fn same_as_serde_json(s in ".*", prefix in 0usize..20) {
            let s = format!("{}{s}", "x".repeat(prefix));
            let mut out = Vec::new();
            write_str(&mut out, &s);
            prop_assert_eq!(String::from_utf8(out).unwrap(), serde_json::to_string(&s).unwrap());
        }
    }
}
