//! TLS secrets carried in a pcapng file: Decryption Secrets Blocks.
//!
//! Contract: [`pcapng_tls_key_logs`] walks the blocks of a whole pcapng file (every section,
//! either byte order) by their lengths alone and returns the data of each Decryption Secrets
//! Block (block type `0x0000000A`) whose secrets type is `TLSK` (an NSS key log), cut to its
//! stated length. It reads nothing else, stops at the first block whose length does not fit,
//! and never panics.

/// The pcapng Decryption Secrets Block type.
const DSB: u32 = 0x0000_000A;
/// The Section Header Block type (the same in either byte order).
const SHB: u32 = 0x0A0D_0D0A;
/// Secrets type: TLS key log.
const TLSK: u32 = 0x544C_534B;

/// The TLS key logs the file's Decryption Secrets Blocks carry, in file order.
pub fn pcapng_tls_key_logs(data: &[u8]) -> Vec<&[u8]> {
    let mut out = Vec::new();
    let mut at = 0usize;
    let mut big = false;
    let rd = |b: &[u8], big: bool| -> u32 {
        let a = [b[0], b[1], b[2], b[3]];
        if big { u32::from_be_bytes(a) } else { u32::from_le_bytes(a) }
    };
    while data.len() - at >= 12 {
        let b = &data[at..];
        let ty = u32::from_le_bytes([b[0], b[1], b[2], b[3]]);
        if ty == SHB {
            // The byte-order magic decides how this section's numbers read.
            match u32::from_le_bytes([b[8], b[9], b[10], b[11]]) {
                0x1A2B_3C4D => big = false,
                0x4D3C_2B1A => big = true,
                _ => break,
            }
        }
        let ty = rd(b, big);
        let len = rd(&b[4..], big) as usize;
        if len < 12 || !len.is_multiple_of(4) || len > b.len() {
            break;
        }
        if ty == DSB && len >= 20 {
            let body = &b[8..len - 4];
            let kind = rd(body, big);
            let n = rd(&body[4..], big) as usize;
            if kind == TLSK && n <= body.len() - 8 {
                out.push(&body[8..8 + n]);
            }
        }
        at += len;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn block(ty: u32, body: &[u8], big: bool) -> Vec<u8> {
        let w = |x: u32| if big { x.to_be_bytes() } else { x.to_le_bytes() };
        let mut body = body.to_vec();
        while !body.len().is_multiple_of(4) {
            body.push(0);
        }
        let len = (body.len() + 12) as u32;
        let mut v = w(ty).to_vec();
        v.extend_from_slice(&w(len));
        v.extend_from_slice(&body);
        v.extend_from_slice(&w(len));
        v
    }

    #[test]
    fn finds_tls_key_logs_in_both_byte_orders() {
        for big in [false, true] {
            let w = |x: u32| if big { x.to_be_bytes() } else { x.to_le_bytes() };
            let mut shb = w(0x1A2B_3C4D).to_vec();
            shb.extend_from_slice(&[0, 1, 0, 0]);
            shb.extend_from_slice(&[0xff; 8]);
            let mut file = block(SHB, &shb, big);
            file.extend(block(1, &[0; 8], big));
            let log = b"CLIENT_RANDOM aa bb\n";
            let mut dsb = w(TLSK).to_vec();
            dsb.extend_from_slice(&w(log.len() as u32));
            dsb.extend_from_slice(log);
            file.extend(block(DSB, &dsb, big));
            // Another secrets type is not a TLS key log.
            let mut other = w(0x5353_484B).to_vec();
            other.extend_from_slice(&w(3));
            other.extend_from_slice(b"abc");
            file.extend(block(DSB, &other, big));
            assert_eq!(pcapng_tls_key_logs(&file), vec![&log[..]], "big endian {big}");
            for n in 0..file.len() {
                let _ = pcapng_tls_key_logs(&file[..n]);
            }
        }
        assert!(pcapng_tls_key_logs(b"\xd4\xc3\xb2\xa1 a pcap file, not pcapng").is_empty());
    }
}
