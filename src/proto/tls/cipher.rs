//! Cipher suites, key derivation and record decryption.
//!
//! Contract: [`suite`] names the suites apitool decrypts (TLS 1.3's three, TLS 1.2's AES-GCM,
//! ChaCha20-Poly1305 and AES-CBC with HMAC SHA-1/SHA-256/SHA-384, whatever the key exchange,
//! which a key log makes irrelevant). [`tls12_keys`] expands a TLS 1.2 master secret into the
//! two directions' keys (RFC 5246, section 6.3, with the PRF of section 5);
//! [`tls13_keys`] derives a TLS 1.3 direction's key and IV from its traffic secret and
//! [`tls13_next_secret`] the next one after a KeyUpdate (RFC 8446, section 7). [`Keys::open`]
//! decrypts one record in place and verifies it (tag, or MAC and padding): a record that does
//! not verify is an error, never plaintext. Nothing here panics on any input, and no key
//! material is ever formatted (`Keys` has no `Debug` form showing bytes).

use aes_gcm::aead::{AeadInOut, KeyInit};
use aes_gcm::{Aes128Gcm, Aes256Gcm};
use cbc::cipher::{self, BlockModeDecrypt, KeyIvInit};
use chacha20poly1305::ChaCha20Poly1305;
use hmac::{Hmac, Mac};
use sha1::Sha1;
use sha2::{Sha256, Sha384};

/// The hash of a suite (the PRF's or HKDF's, and the CBC suites' MAC).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Hash {
    Sha1,
    Sha256,
    Sha384,
}

impl Hash {
    #[allow(clippy::len_without_is_empty)]
    pub fn len(self) -> usize {
        match self {
            Hash::Sha1 => 20,
            Hash::Sha256 => 32,
            Hash::Sha384 => 48,
        }
    }
}

/// The record protection of a suite.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Bulk {
    Aes128Gcm,
    Aes256Gcm,
    ChaCha20Poly1305,
    /// AES-CBC with an HMAC of this hash (TLS 1.2 only).
    Aes128Cbc(Hash),
    Aes256Cbc(Hash),
}

impl Bulk {
    fn key_len(self) -> usize {
        match self {
            Bulk::Aes128Gcm | Bulk::Aes128Cbc(_) => 16,
            Bulk::Aes256Gcm | Bulk::ChaCha20Poly1305 | Bulk::Aes256Cbc(_) => 32,
        }
    }
}

/// A cipher suite apitool can decrypt.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Suite {
    pub id: u16,
    /// The IANA name.
    pub name: &'static str,
    /// A TLS 1.3 suite (else a TLS 1.2 one).
    pub tls13: bool,
    pub bulk: Bulk,
    /// The PRF's hash (TLS 1.2) or HKDF's (TLS 1.3).
    pub hash: Hash,
}

const fn s(id: u16, name: &'static str, tls13: bool, bulk: Bulk, hash: Hash) -> Suite {
    Suite { id, name, tls13, bulk, hash }
}

use Bulk::*;
use Hash::*;

/// The suites decrypted, by IANA number (RFC 8446, RFC 5288, RFC 5289, RFC 7905, RFC 5246).
pub const SUITES: &[Suite] = &[
    s(0x1301, "TLS_AES_128_GCM_SHA256", true, Aes128Gcm, Sha256),
    s(0x1302, "TLS_AES_256_GCM_SHA384", true, Aes256Gcm, Sha384),
    s(0x1303, "TLS_CHACHA20_POLY1305_SHA256", true, ChaCha20Poly1305, Sha256),
    s(0xC02B, "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256", false, Aes128Gcm, Sha256),
    s(0xC02C, "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384", false, Aes256Gcm, Sha384),
    s(0xC02F, "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256", false, Aes128Gcm, Sha256),
    s(0xC030, "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384", false, Aes256Gcm, Sha384),
    s(0x009C, "TLS_RSA_WITH_AES_128_GCM_SHA256", false, Aes128Gcm, Sha256),
    s(0x009D, "TLS_RSA_WITH_AES_256_GCM_SHA384", false, Aes256Gcm, Sha384),
    s(0x009E, "TLS_DHE_RSA_WITH_AES_128_GCM_SHA256", false, Aes128Gcm, Sha256),
    s(0x009F, "TLS_DHE_RSA_WITH_AES_256_GCM_SHA384", false, Aes256Gcm, Sha384),
    s(0xCCA8, "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256", false, ChaCha20Poly1305, Sha256),
    s(0xCCA9, "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256", false, ChaCha20Poly1305, Sha256),
    s(0xCCAA, "TLS_DHE_RSA_WITH_CHACHA20_POLY1305_SHA256", false, ChaCha20Poly1305, Sha256),
    s(0xC009, "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA", false, Aes128Cbc(Sha1), Sha256),
    s(0xC00A, "TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA", false, Aes256Cbc(Sha1), Sha256),
    s(0xC013, "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA", false, Aes128Cbc(Sha1), Sha256),
    s(0xC014, "TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA", false, Aes256Cbc(Sha1), Sha256),
    s(0xC023, "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA256", false, Aes128Cbc(Sha256), Sha256),
    s(0xC024, "TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA384", false, Aes256Cbc(Sha384), Sha384),
    s(0xC027, "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA256", false, Aes128Cbc(Sha256), Sha256),
    s(0xC028, "TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA384", false, Aes256Cbc(Sha384), Sha384),
    s(0x002F, "TLS_RSA_WITH_AES_128_CBC_SHA", false, Aes128Cbc(Sha1), Sha256),
    s(0x0035, "TLS_RSA_WITH_AES_256_CBC_SHA", false, Aes256Cbc(Sha1), Sha256),
    s(0x003C, "TLS_RSA_WITH_AES_128_CBC_SHA256", false, Aes128Cbc(Sha256), Sha256),
    s(0x003D, "TLS_RSA_WITH_AES_256_CBC_SHA256", false, Aes256Cbc(Sha256), Sha256),
    s(0x0033, "TLS_DHE_RSA_WITH_AES_128_CBC_SHA", false, Aes128Cbc(Sha1), Sha256),
    s(0x0039, "TLS_DHE_RSA_WITH_AES_256_CBC_SHA", false, Aes256Cbc(Sha1), Sha256),
    s(0x0067, "TLS_DHE_RSA_WITH_AES_128_CBC_SHA256", false, Aes128Cbc(Sha256), Sha256),
    s(0x006B, "TLS_DHE_RSA_WITH_AES_256_CBC_SHA256", false, Aes256Cbc(Sha256), Sha256),
];

/// The suite with this IANA number, if apitool decrypts it.
pub fn suite(id: u16) -> Option<&'static Suite> {
    SUITES.iter().find(|s| s.id == id)
}

/// Why a record could not be decrypted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OpenError {
    /// Too short for its protection (nonce, tag, IV, MAC, a whole number of blocks).
    Length,
    /// The tag, or the MAC or padding, does not verify.
    Auth,
}

fn hmac_into(h: Hash, key: &[u8], parts: &[&[u8]], out: &mut [u8]) {
    macro_rules! run {
        ($d:ty) => {{
            // HMAC takes keys of any length.
            let Ok(mut m) = Hmac::<$d>::new_from_slice(key) else { return };
            for p in parts {
                m.update(p);
            }
            let tag = m.finalize().into_bytes();
            let n = out.len().min(tag.len());
            out[..n].copy_from_slice(&tag[..n]);
        }};
    }
    match h {
        Hash::Sha1 => run!(Sha1),
        Hash::Sha256 => run!(Sha256),
        Hash::Sha384 => run!(Sha384),
    }
}

/// The TLS 1.2 PRF (RFC 5246, section 5): P_hash(secret, label + seed), `out.len()` bytes.
pub fn prf(h: Hash, secret: &[u8], label: &[u8], seed: &[&[u8]], out: &mut [u8]) {
    let n = h.len();
    // A(1) = HMAC(secret, label + seed).
    let mut a = [0u8; 48];
    let mut parts: Vec<&[u8]> = Vec::with_capacity(seed.len() + 1);
    parts.push(label);
    parts.extend_from_slice(seed);
    hmac_into(h, secret, &parts, &mut a[..n]);
    let mut done = 0;
    while done < out.len() {
        let mut block = [0u8; 48];
        let mut p: Vec<&[u8]> = Vec::with_capacity(parts.len() + 1);
        p.push(&a[..n]);
        p.extend_from_slice(&parts);
        hmac_into(h, secret, &p, &mut block[..n]);
        let take = n.min(out.len() - done);
        out[done..done + take].copy_from_slice(&block[..take]);
        done += take;
        let prev = a;
        hmac_into(h, secret, &[&prev[..n]], &mut a[..n]);
    }
}

/// HKDF-Expand-Label (RFC 8446, section 7.1) with an empty context, `out.len()` bytes.
pub fn hkdf_expand_label(h: Hash, secret: &[u8], label: &[u8], out: &mut [u8]) -> bool {
    let mut info = Vec::with_capacity(10 + label.len());
    info.extend_from_slice(&(out.len() as u16).to_be_bytes());
    info.push((6 + label.len()) as u8);
    info.extend_from_slice(b"tls13 ");
    info.extend_from_slice(label);
    info.push(0);
    match h {
        Hash::Sha256 => hkdf::Hkdf::<Sha256>::from_prk(secret).is_ok_and(|k| k.expand(&info, out).is_ok()),
        Hash::Sha384 => hkdf::Hkdf::<Sha384>::from_prk(secret).is_ok_and(|k| k.expand(&info, out).is_ok()),
        Hash::Sha1 => false,
    }
}

/// The next TLS 1.3 traffic secret after a KeyUpdate: HKDF-Expand-Label(secret, "traffic upd",
/// "", Hash.length) (RFC 8446, section 7.2). `None` if the secret's length is not the hash's.
pub fn tls13_next_secret(h: Hash, secret: &[u8]) -> Option<Vec<u8>> {
    if secret.len() != h.len() {
        return None;
    }
    let mut out = vec![0u8; h.len()];
    hkdf_expand_label(h, secret, b"traffic upd", &mut out).then_some(out)
}

enum Aead {
    Aes128(Box<Aes128Gcm>),
    Aes256(Box<Aes256Gcm>),
    ChaCha(Box<ChaCha20Poly1305>),
}

enum Protect {
    Aead(Aead),
    Cbc { key: Box<[u8]>, mac_key: Box<[u8]>, mac: Hash, etm: bool },
}

/// The keys of one direction, and how records are protected.
pub struct Keys {
    protect: Protect,
    /// The IV: TLS 1.2 GCM's 4-byte salt, or the 12-byte IV XORed with the sequence number
    /// (TLS 1.3, TLS 1.2 ChaCha20-Poly1305).
    iv: [u8; 12],
    iv_len: usize,
    tls13: bool,
}

impl Drop for Keys {
    fn drop(&mut self) {
        if let Protect::Cbc { key, mac_key, .. } = &mut self.protect {
            key.fill(0);
            mac_key.fill(0);
        }
        self.iv.fill(0);
        std::hint::black_box(&mut self.iv);
    }
}

impl std::fmt::Debug for Keys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Keys(..)")
    }
}

fn aead(bulk: Bulk, key: &[u8]) -> Option<Aead> {
    Some(match bulk {
        Bulk::Aes128Gcm => Aead::Aes128(Box::new(Aes128Gcm::new_from_slice(key).ok()?)),
        Bulk::Aes256Gcm => Aead::Aes256(Box::new(Aes256Gcm::new_from_slice(key).ok()?)),
        Bulk::ChaCha20Poly1305 => Aead::ChaCha(Box::new(ChaCha20Poly1305::new_from_slice(key).ok()?)),
        _ => return None,
    })
}

/// The client's and the server's keys of a TLS 1.2 connection, from its master secret and
/// randoms (RFC 5246, section 6.3). `etm`: encrypt-then-MAC was negotiated (RFC 7366; CBC
/// suites only).
pub fn tls12_keys(suite: &Suite, master: &[u8], client_random: &[u8; 32], server_random: &[u8; 32], etm: bool) -> Option<[Keys; 2]> {
    if suite.tls13 || master.len() != 48 {
        return None;
    }
    let (mac_len, key_len, iv_len) = match suite.bulk {
        Bulk::Aes128Gcm | Bulk::Aes256Gcm => (0, suite.bulk.key_len(), 4),
        Bulk::ChaCha20Poly1305 => (0, 32, 12),
        Bulk::Aes128Cbc(h) | Bulk::Aes256Cbc(h) => (h.len(), suite.bulk.key_len(), 0),
    };
    let mut block = vec![0u8; 2 * (mac_len + key_len + iv_len)];
    prf(suite.hash, master, b"key expansion", &[server_random, client_random], &mut block);
    let (macs, rest) = block.split_at(2 * mac_len);
    let (keys, ivs) = rest.split_at(2 * key_len);
    let one = |i: usize| -> Option<Keys> {
        let mac_key = &macs[i * mac_len..(i + 1) * mac_len];
        let key = &keys[i * key_len..(i + 1) * key_len];
        let mut iv = [0u8; 12];
        iv[..iv_len].copy_from_slice(&ivs[i * iv_len..(i + 1) * iv_len]);
        let protect = match suite.bulk {
            Bulk::Aes128Cbc(h) | Bulk::Aes256Cbc(h) => Protect::Cbc { key: key.into(), mac_key: mac_key.into(), mac: h, etm },
            b => Protect::Aead(aead(b, key)?),
        };
        Some(Keys { protect, iv, iv_len, tls13: false })
    };
    let out = [one(0)?, one(1)?];
    block.fill(0);
    Some(out)
}

/// A TLS 1.3 direction's keys from its traffic secret (RFC 8446, section 7.3).
pub fn tls13_keys(suite: &Suite, secret: &[u8]) -> Option<Keys> {
    if !suite.tls13 || secret.len() != suite.hash.len() {
        return None;
    }
    let mut key = [0u8; 32];
    let key = &mut key[..suite.bulk.key_len()];
    let mut iv = [0u8; 12];
    if !hkdf_expand_label(suite.hash, secret, b"key", key) || !hkdf_expand_label(suite.hash, secret, b"iv", &mut iv) {
        return None;
    }
    let a = aead(suite.bulk, key);
    key.fill(0);
    Some(Keys { protect: Protect::Aead(a?), iv, iv_len: 12, tls13: true })
}

const TAG: usize = 16;

impl Keys {
    /// Decrypts the record `payload` (of content type `ctype`, the header's version
    /// `version`) with sequence number `seq`, in place; the plaintext's range in `payload`.
    /// TLS 1.3: the plaintext still ends with its inner content type and padding.
    pub fn open(&self, seq: u64, ctype: u8, version: u16, payload: &mut [u8]) -> Result<std::ops::Range<usize>, OpenError> {
        match &self.protect {
            Protect::Aead(a) => self.open_aead(a, seq, ctype, version, payload),
            Protect::Cbc { key, mac_key, mac, etm } => open_cbc(key, mac_key, *mac, *etm, seq, ctype, version, payload),
        }
    }

    fn open_aead(&self, a: &Aead, seq: u64, ctype: u8, version: u16, payload: &mut [u8]) -> Result<std::ops::Range<usize>, OpenError> {
        let mut nonce = self.iv;
        let (start, aad_len) = if self.tls13 || self.iv_len == 12 {
            for (n, s) in nonce[4..].iter_mut().zip(seq.to_be_bytes()) {
                *n ^= s;
            }
            (0, 0)
        } else {
            // TLS 1.2 GCM: salt + the record's explicit nonce.
            if payload.len() < 8 + TAG {
                return Err(OpenError::Length);
            }
            nonce[4..].copy_from_slice(&payload[..8]);
            (8, 0)
        };
        let _ = aad_len;
        if payload.len() < start + TAG {
            return Err(OpenError::Length);
        }
        let end = payload.len() - TAG;
        let mut aad = [0u8; 13];
        let aad: &[u8] = if self.tls13 {
            aad[0] = ctype;
            aad[1..3].copy_from_slice(&version.to_be_bytes());
            aad[3..5].copy_from_slice(&(payload.len() as u16).to_be_bytes());
            &aad[..5]
        } else {
            aad[..8].copy_from_slice(&seq.to_be_bytes());
            aad[8] = ctype;
            aad[9..11].copy_from_slice(&version.to_be_bytes());
            aad[11..13].copy_from_slice(&((end - start) as u16).to_be_bytes());
            &aad[..13]
        };
        let (body, tag) = payload[start..].split_at_mut(end - start);
        let ok = match a {
            Aead::Aes128(c) => c.decrypt_inout_detached(&nonce.into(), aad, body.into(), tag_of(tag)?).is_ok(),
            Aead::Aes256(c) => c.decrypt_inout_detached(&nonce.into(), aad, body.into(), tag_of(tag)?).is_ok(),
            Aead::ChaCha(c) => c.decrypt_inout_detached(&nonce.into(), aad, body.into(), tag_of(tag)?).is_ok(),
        };
        if ok { Ok(start..end) } else { Err(OpenError::Auth) }
    }
}

fn tag_of(t: &[u8]) -> Result<&aes_gcm::aead::array::Array<u8, aes_gcm::aead::consts::U16>, OpenError> {
    t.try_into().map_err(|_| OpenError::Length)
}

fn cbc_decrypt(key: &[u8], iv: &[u8], data: &mut [u8]) -> bool {
    macro_rules! run {
        ($c:ty) => {{
            let Ok(mut d) = cbc::Decryptor::<$c>::new_from_slices(key, iv) else { return false };
            let (blocks, tail) = cipher::InOutBuf::from(data).into_chunks::<cipher::consts::U16>();
            if !tail.is_empty() {
                return false;
            }
            d.decrypt_blocks_inout(blocks);
            true
        }};
    }
    match key.len() {
        16 => run!(aes::Aes128),
        32 => run!(aes::Aes256),
        _ => false,
    }
}

/// Constant-time equality of two byte strings of the same length.
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[allow(clippy::too_many_arguments)]
fn open_cbc(
    key: &[u8],
    mac_key: &[u8],
    mac: Hash,
    etm: bool,
    seq: u64,
    ctype: u8,
    version: u16,
    payload: &mut [u8],
) -> Result<std::ops::Range<usize>, OpenError> {
    let m = mac.len();
    let mut hdr = [0u8; 13];
    hdr[..8].copy_from_slice(&seq.to_be_bytes());
    hdr[8] = ctype;
    hdr[9..11].copy_from_slice(&version.to_be_bytes());
    let mut tag = [0u8; 48];
    if etm {
        // IV + ciphertext + MAC over (header, IV + ciphertext) (RFC 7366).
        if payload.len() < 32 + m || !(payload.len() - m).is_multiple_of(16) {
            return Err(OpenError::Length);
        }
        let ct_end = payload.len() - m;
        hdr[11..13].copy_from_slice(&(ct_end as u16).to_be_bytes());
        hmac_into(mac, mac_key, &[&hdr, &payload[..ct_end]], &mut tag[..m]);
        if !same(&tag[..m], &payload[ct_end..]) {
            return Err(OpenError::Auth);
        }
        let (iv, ct) = payload[..ct_end].split_at_mut(16);
        if !cbc_decrypt(key, iv, ct) {
            return Err(OpenError::Length);
        }
        let pad = ct[ct.len() - 1] as usize;
        if pad + 1 > ct.len() || !ct[ct.len() - 1 - pad..].iter().all(|&b| b as usize == pad) {
            return Err(OpenError::Auth);
        }
        return Ok(16..16 + ct.len() - pad - 1);
    }
    // IV + E(plaintext + MAC + padding) (RFC 5246, section 6.2.3.2).
    if payload.len() < 16 + 16 || !payload.len().is_multiple_of(16) || payload.len() < 16 + m + 1 {
        return Err(OpenError::Length);
    }
    let (iv, ct) = payload.split_at_mut(16);
    if !cbc_decrypt(key, iv, ct) {
        return Err(OpenError::Length);
    }
    let pad = ct[ct.len() - 1] as usize;
    let pad_ok = pad + 1 + m <= ct.len() && ct[ct.len() - 1 - pad..].iter().all(|&b| b as usize == pad);
    // Check the MAC even when the padding is wrong (over a plaintext that assumes no padding),
    // and fail after: the result is the same either way.
    let pt_len = if pad_ok { ct.len() - pad - 1 - m } else { ct.len().saturating_sub(m + 1) };
    hdr[11..13].copy_from_slice(&(pt_len as u16).to_be_bytes());
    hmac_into(mac, mac_key, &[&hdr, &ct[..pt_len]], &mut tag[..m]);
    let mac_ok = same(&tag[..m], &ct[pt_len..pt_len + m]);
    if pad_ok && mac_ok { Ok(16..16 + pt_len) } else { Err(OpenError::Auth) }
}

#[cfg(test)]
pub(crate) mod tests;
