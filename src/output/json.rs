//! Minimal JSON string writing, for the hand-written HAR envelope and entries.
//!
//! Bodies are most of a HAR's bytes, so escaping is on the hot path. With AVX2 (detected at
//! run time) 32 bytes are tested at once for `"`, `\` and control bytes: a block without one
//! is copied whole; a block whose escapes all take two bytes (`\"`, `\\`, `\n`, ...: all but
//! `\u00XX`) is written 8 bytes at a time, each expanded by one shuffle that puts a `\` before
//! each byte that needs it (its escape letter, for a control byte); in any other block, each
//! run between escapes is copied with one unaligned 32-byte store (the next write covers what
//! it wrote past the run). Lengths are counted a block at a time, and a body is checked for
//! UTF-8 in the same pass while it is ASCII ([`utf8_escaped_len`]).
//! Without AVX2, and for the last bytes of a string, runs of bytes that need no escape are
//! found eight at a time (a word-at-a-time test) and copied whole; only the bytes that need
//! it are escaped one by one. The two give the same bytes (property-tested).

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
    let n = escaped_len(b);
    out.reserve(n + 2);
    if quotes {
        out.push(b'"');
    }
    push_escaped_exact(out, b, n);
    if quotes {
        out.push(b'"');
    }
}

/// Whether the AVX2 kernels can run here.
#[inline]
fn avx2() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::is_x86_feature_detected!("avx2")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// Length of `b` (UTF-8) escaped as the content of a JSON string, quotes not counted: what
/// [`push_escaped`] writes.
pub fn escaped_len(b: &[u8]) -> usize {
    #[cfg(target_arch = "x86_64")]
    if b.len() >= 32 && avx2() {
        // SAFETY: AVX2 is available.
        return unsafe { avx2::escaped_len(b) };
    }
    scalar_escaped_len(b)
}

/// [`escaped_len`] a word at a time.
fn scalar_escaped_len(b: &[u8]) -> usize {
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
    let start = out.len();
    // SAFETY: `out` has room for `escaped + 1` bytes past `start`; `escaped` is the exact
    // escaped length of `b`, so the writes (two bytes per one-byte pair, the second a filler
    // that the next write or the closing byte covers) stay below `start + escaped + 1`; and if
    // `escaped` were wrong, the bound checks (per word, per group where six bytes a byte fit,
    // else per byte) stop before a write past it. `set_len` covers the `escaped` bytes
    // written, all initialised.
    unsafe {
        let base = out.as_mut_ptr().add(start);
        let (mut i, mut o) = (0, 0);
        #[cfg(target_arch = "x86_64")]
        if b.len() >= 64 && avx2() {
            (i, o) = avx2::escape_blocks(b, base, escaped + 1);
        }
        scalar_escape(b, base, escaped, i, o);
        out.set_len(start + escaped);
    }
}

/// The word-at-a-time escaper, from input byte `i` and output byte `o` on: writes the escaped
/// form of `b[i..]` at `base + o`, asserting that it ends exactly at `escaped`.
///
/// # Safety
/// `base` has room for `escaped + 1` bytes.
unsafe fn scalar_escape(b: &[u8], base: *mut u8, escaped: usize, mut i: usize, mut o: usize) {
    let (pairs, lens) = &PAIRS;
    // SAFETY: as for `push_escaped_exact`: every write is checked against `escaped` first.
    unsafe {
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

/// Shuffle controls and backslashes that expand 8 bytes into `8 + popcount(m)`, where bit `k`
/// of `m` says byte `k` needs a two-byte escape: a `\` is put before each such byte (the byte
/// itself is replaced by its escape letter before the shuffle). Index `m`; 0x80 in a control
/// gives a zero byte, where the backslash goes or past the end (the next store covers it).
#[cfg(target_arch = "x86_64")]
const fn expand_tables() -> ([[u8; 16]; 256], [[u8; 16]; 256]) {
    let mut shuf = [[0x80u8; 16]; 256];
    let mut bs = [[0u8; 16]; 256];
    let mut m = 0;
    while m < 256 {
        let (mut j, mut k) = (0, 0);
        while k < 8 {
            if m & (1 << k) != 0 {
                bs[m][j] = b'\\';
                j += 1;
            }
            shuf[m][j] = k as u8;
            j += 1;
            k += 1;
        }
        m += 1;
    }
    (shuf, bs)
}

#[cfg(target_arch = "x86_64")]
static EXPAND: ([[u8; 16]; 256], [[u8; 16]; 256]) = expand_tables();

/// [`escaped_len`] of `b` if it is UTF-8, in one pass over it when it is ASCII: the escapes are
/// counted and the bytes checked for ASCII together, and only from the first block with a byte
/// outside ASCII is the rest checked for UTF-8 as well (by `simdutf8`, 16 or 32 bytes at a time).
pub fn utf8_escaped_len(b: &[u8]) -> Option<usize> {
    #[cfg(target_arch = "x86_64")]
    if b.len() >= 32 && avx2() {
        // SAFETY: AVX2 is available.
        let (n, first) = unsafe { avx2::ascii_escaped_len(b) };
        // Every byte before `first` is ASCII, so `first` starts a character.
        if first < b.len() {
            simdutf8::basic::from_utf8(&b[first..]).ok()?;
        }
        return Some(n);
    }
    std::str::from_utf8(b).ok()?;
    Some(scalar_escaped_len(b))
}

/// The AVX2 kernels.
#[cfg(target_arch = "x86_64")]
mod avx2 {
    use std::arch::x86_64::*;

    /// Bytes that need an escape: `"`, `\`, below 0x20.
    #[inline]
    #[target_feature(enable = "avx2")]
    fn special(v: __m256i) -> __m256i {
        let quote = _mm256_cmpeq_epi8(v, _mm256_set1_epi8(b'"' as i8));
        let backslash = _mm256_cmpeq_epi8(v, _mm256_set1_epi8(b'\\' as i8));
        _mm256_or_si256(_mm256_or_si256(quote, backslash), control(v))
    }

    /// Bytes below 0x20.
    #[inline]
    #[target_feature(enable = "avx2")]
    fn control(v: __m256i) -> __m256i {
        _mm256_cmpeq_epi8(_mm256_min_epu8(v, _mm256_set1_epi8(0x1f)), v)
    }

    /// Control bytes without a one-letter escape (written `\u00XX`).
    #[inline]
    #[target_feature(enable = "avx2")]
    fn long_control(v: __m256i) -> __m256i {
        let mut short = _mm256_setzero_si256();
        for c in [0x08, 0x09, 0x0a, 0x0c, 0x0d] {
            short = _mm256_or_si256(short, _mm256_cmpeq_epi8(v, _mm256_set1_epi8(c)));
        }
        _mm256_andnot_si256(short, control(v))
    }

    /// [`super::escaped_len`], 32 bytes at a time: one more byte for each escape, five more
    /// for each `\u00XX`.
    #[target_feature(enable = "avx2")]
    pub fn escaped_len(b: &[u8]) -> usize {
        let mut extra = 0usize;
        let mut i = 0;
        while i + 32 <= b.len() {
            // SAFETY: 32 bytes from `i` are in `b`.
            let v = unsafe { _mm256_loadu_si256(b.as_ptr().add(i).cast()) };
            let m = _mm256_movemask_epi8(special(v)) as u32;
            if m != 0 {
                let u = _mm256_movemask_epi8(long_control(v)) as u32;
                extra += m.count_ones() as usize + 4 * u.count_ones() as usize;
            }
            i += 32;
        }
        i + extra + super::scalar_escaped_len(&b[i..])
    }

    /// [`escaped_len`], and where the first block with a byte outside ASCII starts (`b.len()`
    /// if there is none): from there on, `b` is still to be checked for UTF-8.
    #[target_feature(enable = "avx2")]
    pub fn ascii_escaped_len(b: &[u8]) -> (usize, usize) {
        let mut extra = 0usize;
        let mut i = 0;
        let mut first = b.len();
        while i + 32 <= b.len() {
            // SAFETY: 32 bytes from `i` are in `b`.
            let v = unsafe { _mm256_loadu_si256(b.as_ptr().add(i).cast()) };
            let m = _mm256_movemask_epi8(special(v)) as u32;
            if m != 0 {
                let u = _mm256_movemask_epi8(long_control(v)) as u32;
                extra += m.count_ones() as usize + 4 * u.count_ones() as usize;
            }
            if first == b.len() && _mm256_movemask_epi8(v) != 0 {
                first = i;
            }
            i += 32;
        }
        let tail = &b[i..];
        if first == b.len() && !tail.is_ascii() {
            first = i;
        }
        (i + extra + super::scalar_escaped_len(tail), first)
    }

    /// Escapes whole 32-byte blocks of `b` into `dst` while at least 64 input bytes and 256
    /// bytes of room (of `room`) are left; returns the input and output bytes done.
    ///
    /// # Safety
    /// `dst` has room for `room` bytes.
    #[target_feature(enable = "avx2")]
    pub unsafe fn escape_blocks(b: &[u8], dst: *mut u8, room: usize) -> (usize, usize) {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        let (pairs, lens) = &super::PAIRS;
        let (shuf, bs) = &super::EXPAND;
        let (mut i, mut o) = (0usize, 0usize);
        // SAFETY: reads stay within `b`: a block's runs are read 32 bytes from within the
        // block, so at most 64 bytes from `i`. Writes stay within `room`: a block writes at
        // most 6 bytes per input byte (192) and a store may reach 32 bytes past the last byte
        // counted, within the 256 checked; an expanded block writes at most 64 bytes, each of
        // its four 16-byte stores starting at most 48 bytes after the block's first.
        unsafe {
            // The escape letter of each control byte that has one, by its low four bits.
            #[rustfmt::skip]
            let letters = _mm256_setr_epi8(
                0, 0, 0, 0, 0, 0, 0, 0, b'b' as i8, b't' as i8, b'n' as i8, 0, b'f' as i8, b'r' as i8, 0, 0,
                0, 0, 0, 0, 0, 0, 0, 0, b'b' as i8, b't' as i8, b'n' as i8, 0, b'f' as i8, b'r' as i8, 0, 0,
            );
            while i + 64 <= b.len() && o + 256 <= room {
                let src = b.as_ptr().add(i);
                let v = _mm256_loadu_si256(src.cast());
                let mut m = _mm256_movemask_epi8(special(v)) as u32;
                if m == 0 {
                    _mm256_storeu_si256(dst.add(o).cast(), v);
                    o += 32;
                    i += 32;
                    continue;
                }
                if _mm256_movemask_epi8(long_control(v)) == 0 {
                    // Only two-byte escapes: each control byte becomes its letter, then each
                    // 8 bytes are expanded by a shuffle with a `\` before each escaped byte.
                    let x = _mm256_blendv_epi8(v, _mm256_shuffle_epi8(letters, v), control(v));
                    for h in [_mm256_castsi256_si128(x), _mm256_extracti128_si256::<1>(x)] {
                        for shift in [0i8, 8] {
                            let g = (m & 0xff) as usize;
                            let ctrl = _mm_add_epi8(_mm_loadu_si128(shuf[g].as_ptr().cast()), _mm_set1_epi8(shift));
                            let r = _mm_or_si128(_mm_shuffle_epi8(h, ctrl), _mm_loadu_si128(bs[g].as_ptr().cast()));
                            _mm_storeu_si128(dst.add(o).cast(), r);
                            o += 8 + g.count_ones() as usize;
                            m >>= 8;
                        }
                    }
                    i += 32;
                    continue;
                }
                let mut p = 0usize;
                while m != 0 {
                    let k = m.trailing_zeros() as usize;
                    _mm256_storeu_si256(dst.add(o).cast(), _mm256_loadu_si256(src.add(p).cast()));
                    o += k - p;
                    let c = *src.add(k) as usize;
                    if lens[c] == 6 {
                        let seq = [b'\\', b'u', b'0', b'0', HEX[c >> 4], HEX[c & 15]];
                        std::ptr::copy_nonoverlapping(seq.as_ptr(), dst.add(o), 6);
                        o += 6;
                    } else {
                        std::ptr::write_unaligned(dst.add(o) as *mut [u8; 2], pairs[c].to_le_bytes());
                        o += 2;
                    }
                    p = k + 1;
                    m &= m - 1;
                }
                _mm256_storeu_si256(dst.add(o).cast(), _mm256_loadu_si256(src.add(p).cast()));
                o += 32 - p;
                i += 32;
            }
        }
        (i, o)
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

    /// Long strings of bytes from a small alphabet heavy in escapes, so that blocks of every
    /// mix occur: none, some, all, and `\u00XX` ones.
    fn escapy() -> impl Strategy<Value = Vec<u8>> {
        let alphabet = prop::sample::select(vec![b'a', b'Z', b' ', b'"', b'\\', b'\n', b'\t', 0u8, 0x1f, 0x7f, 0xc3, 0xa9, b'/']);
        (prop::collection::vec(alphabet, 0..40), 0usize..700, 0usize..50).prop_map(|(mix, clean, at)| {
            let mut v = vec![b'x'; clean];
            let at = at.min(v.len());
            v.splice(at..at, mix.iter().cycle().take(mix.len() * 7).copied());
            v
        })
    }

    /// Like [`escapy`], but with only two-byte escapes (no `\u00XX`), so that blocks take the
    /// expanding path.
    fn short_escapes() -> impl Strategy<Value = Vec<u8>> {
        let alphabet = prop::sample::select(vec![b'a', b' ', b'"', b'\\', b'\n', b'\t', b'\r', 0x08, 0x0c, 0x7f, 0xc3, 0xa9, b'/']);
        (prop::collection::vec(alphabet, 0..40), 0usize..300, 0usize..50).prop_map(|(mix, clean, at)| {
            let mut v = vec![b'x'; clean];
            let at = at.min(v.len());
            v.splice(at..at, mix.iter().cycle().take(mix.len() * 9).copied());
            v
        })
    }

    /// The word-at-a-time escaper alone.
    fn scalar(b: &[u8]) -> Vec<u8> {
        let n = scalar_escaped_len(b);
        let mut out = Vec::with_capacity(n + 1);
        // SAFETY: room for `n + 1` bytes; `n` is the exact escaped length.
        unsafe {
            scalar_escape(b, out.as_mut_ptr(), n, 0, 0);
            out.set_len(n);
        }
        out
    }

    proptest! {
        /// The block kernels (when this machine has them) give the bytes and the lengths of the
        /// word-at-a-time ones.
        #[test]
        fn kernels_agree(b in escapy()) {
            let want = scalar(&b);
            prop_assert_eq!(escaped_len(&b), want.len());
            let mut out = b"prefix".to_vec();
            push_escaped(&mut out, &b);
            prop_assert_eq!(&out[6..], &want[..]);
            let mut quoted = Vec::new();
            write_escaped(&mut quoted, &b, true);
            prop_assert_eq!(&quoted[1..quoted.len() - 1], &want[..]);
        }

        /// The same on blocks whose escapes all take two bytes.
        #[test]
        fn expanding_kernel_agrees(b in short_escapes()) {
            let want = scalar(&b);
            let mut out = b"prefix".to_vec();
            push_escaped(&mut out, &b);
            prop_assert_eq!(&out[6..], &want[..]);
        }

        /// The one-pass UTF-8 check and length say what `from_utf8` and the length do, wherever
        /// the first byte outside ASCII is (or an invalid one).
        #[test]
        fn utf8_and_length_in_one_pass(b in prop_oneof![escapy(), short_escapes()], tail in prop::collection::vec(any::<u8>(), 0..4)) {
            for b in [b.clone(), [&b[..], &tail[..]].concat()] {
                let want = std::str::from_utf8(&b).ok().map(|_| scalar(&b).len());
                prop_assert_eq!(utf8_escaped_len(&b), want);
            }
        }

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
