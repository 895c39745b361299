//! One-shot gzip decoding with libdeflate, for a complete body kept encoded
//! ([`super::decode::BodyDecoder::deferred`]).
//!
//! A complete single-member gzip body states its decoded size (ISIZE, the last four bytes, the
//! size modulo 2^32). When that size is within the cap, the body is decoded in one call into
//! a buffer of exactly that size: no growth, no copies, no streaming state. libdeflate checks
//! the CRC-32 and ISIZE itself, and its decoder cannot write past the buffer, so a body whose
//! trailer lies fails here, and so does anything else unusual (several members, bytes after
//! the member, damage): the caller then decodes it in the streamed way, which keeps what
//! decodes, says why it stopped and keeps the cap exact. Success here gives the same bytes as
//! the streamed decoder; it is only faster.

use std::cell::RefCell;
use std::ptr::NonNull;

use libdeflate_sys as sys;

/// A libdeflate decompressor (about 10 KiB of tables), one per thread, made on first use.
struct Decompressor(NonNull<sys::libdeflate_decompressor>);

impl Drop for Decompressor {
    fn drop(&mut self) {
        // SAFETY: the pointer came from `libdeflate_alloc_decompressor` and is freed once.
        unsafe { sys::libdeflate_free_decompressor(self.0.as_ptr()) }
    }
}

thread_local! {
    static DECOMPRESSOR: RefCell<Option<Decompressor>> = const { RefCell::new(None) };
}

/// Bodies below this are left to the streamed decoder: the one-shot call saves nothing there.
const MIN_ENCODED: usize = 64;

/// Decodes `gz`, one complete gzip member and nothing after it, when it states a decoded size
/// of at most `cap`. `None` when it does not qualify or does not decode cleanly.
pub fn gunzip(gz: &[u8], cap: usize) -> Option<Vec<u8>> {
    if gz.len() < MIN_ENCODED || gz[0] != 0x1f || gz[1] != 0x8b {
        return None;
    }
    let isize = u32::from_le_bytes(gz[gz.len() - 4..].try_into().ok()?) as usize;
    if isize > cap {
        return None;
    }
    DECOMPRESSOR.with(|cell| {
        let mut slot = cell.borrow_mut();
        if slot.is_none() {
            // SAFETY: no preconditions; NULL (out of memory) is handled.
            let p = unsafe { sys::libdeflate_alloc_decompressor() };
            *slot = Some(Decompressor(NonNull::new(p)?));
        }
        let d = slot.as_ref()?.0.as_ptr();
        let mut out: Vec<u8> = Vec::with_capacity(isize);
        let (mut used, mut produced) = (0usize, 0usize);
        // SAFETY: the input is a valid slice; the output is the vector's spare capacity, of
        // which libdeflate writes at most `isize` bytes and reports how many it wrote; only
        // those are exposed by `set_len`.
        let r = unsafe {
            sys::libdeflate_gzip_decompress_ex(d, gz.as_ptr().cast(), gz.len(), out.as_mut_ptr().cast(), isize, &mut used, &mut produced)
        };
        if r != sys::libdeflate_result_LIBDEFLATE_SUCCESS || used != gz.len() || produced != isize {
            return None;
        }
        // SAFETY: see above: `produced` bytes were written.
        unsafe { out.set_len(produced) };
        Some(out)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn gzip(data: &[u8]) -> Vec<u8> {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        e.write_all(data).unwrap();
        e.finish().unwrap()
    }

    fn sample(n: usize) -> Vec<u8> {
        (0..n).map(|i| b"{\"id\": 12, \"name\": \"x\"}\n"[i % 24] ^ (i / 997) as u8).collect()
    }

    #[test]
    fn decodes_a_complete_member_into_an_exact_buffer() {
        let body = sample(300_000);
        let out = gunzip(&gzip(&body), 1 << 20).expect("decodes");
        assert_eq!(out, body);
        assert_eq!(out.capacity(), body.len());
    }

    #[test]
    fn leaves_everything_unusual_to_the_streamed_decoder() {
        let body = sample(10_000);
        let gz = gzip(&body);
        // Over the cap.
        assert!(gunzip(&gz, body.len() - 1).is_none());
        // Two members.
        let two = [gz.clone(), gz.clone()].concat();
        assert!(gunzip(&two, 1 << 20).is_none());
        // Padding after the member.
        assert!(gunzip(&[gz.clone(), vec![0; 8]].concat(), 1 << 20).is_none());
        // Cut short.
        assert!(gunzip(&gz[..gz.len() - 1], 1 << 20).is_none());
        // A trailer claiming less than the body decodes to: the buffer is too small.
        let mut lie = gz.clone();
        let n = lie.len();
        lie[n - 4..].copy_from_slice(&100u32.to_le_bytes());
        assert!(gunzip(&lie, 1 << 20).is_none());
        // A damaged CRC.
        let mut crc = gz.clone();
        crc[n - 8] ^= 1;
        assert!(gunzip(&crc, 1 << 20).is_none());
        // Too short to bother.
        assert!(gunzip(&gzip(b"x"), 1 << 20).is_none());
    }
}
