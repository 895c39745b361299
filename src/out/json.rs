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

/// Writes `s` as a JSON string, quotes included.
pub fn write_str(out: &mut Vec<u8>, s: &str) {
    let b = s.as_bytes();
    let start = out.len();
    // Room for the worst case but control bytes (each input byte becomes at most two), written
    // in place; control bytes (six each) make room for themselves.
    out.resize(start + 2 * b.len() + 2, 0);
    let mut o = start;
    out[o] = b'"';
    o += 1;
    let mut i = 0;
    while i + 8 <= b.len() {
        let w: [u8; 8] = b[i..i + 8].try_into().expect("8 bytes");
        if !needs_escape(u64::from_le_bytes(w)) {
            out[o..o + 8].copy_from_slice(&w);
            o += 8;
        } else {
            for &c in &w {
                o = escape_byte(out, o, c, b.len() - i);
            }
        }
        i += 8;
    }
    for &c in &b[i..] {
        o = escape_byte(out, o, c, b.len() - i);
    }
    out[o] = b'"';
    out.truncate(o + 1);
}

/// Writes one byte at `o`, escaped as needed; returns the next position. `left` bounds the
/// bytes still to come, for making room after a control byte.
#[inline(always)]
fn escape_byte(out: &mut Vec<u8>, o: usize, c: u8, left: usize) -> usize {
    let e = ESCAPE[c as usize];
    if e == b'u' {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        let need = o + 6 + 2 * left + 1;
        if out.len() < need {
            out.resize(need, 0);
        }
        out[o..o + 6].copy_from_slice(&[b'\\', b'u', b'0', b'0', HEX[(c >> 4) as usize], HEX[(c & 15) as usize]]);
        return o + 6;
    }
    // Branch-free for the common cases: either `c`, or `\` then the escape letter.
    let esc = (e != 0) as usize;
    out[o] = if esc == 1 { b'\\' } else { c };
    out[o + 1] = e;
    o + 1 + esc
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
        #[test]
        fn same_as_serde_json(s in ".*", prefix in 0usize..20) {
            let s = format!("{}{s}", "x".repeat(prefix));
            let mut out = Vec::new();
            write_str(&mut out, &s);
            prop_assert_eq!(String::from_utf8(out).unwrap(), serde_json::to_string(&s).unwrap());
        }
    }
}
