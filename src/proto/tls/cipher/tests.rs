use super::*;

fn hex(s: &str) -> Vec<u8> {
    let s: Vec<u8> = s.bytes().filter(|c| c.is_ascii_hexdigit()).collect();
    s.chunks(2).map(|p| u8::from_str_radix(std::str::from_utf8(p).unwrap(), 16).unwrap()).collect()
}

fn open_record(k: &Keys, seq: u64, record: &[u8]) -> Result<Vec<u8>, OpenError> {
    let mut payload = record[5..].to_vec();
    let r = k.open(seq, record[0], u16::from_be_bytes([record[1], record[2]]), &mut payload)?;
    Ok(payload[r].to_vec())
}

// RFC 8448, section 3 (simple 1-RTT handshake, TLS_AES_128_GCM_SHA256).
const CLIENT_HS: &str = "b3eddb126e067f35a780b3abf45e2d8f3b1a950738f52e9600746a0e27a55a21";
const SERVER_HS: &str = "b67b7d690cc16c4e75e54213cb2d37b4e9c912bcded9105d42befd59d391ad38";
const CLIENT_AP: &str = "9e40646ce79a7f9dc05af8889bce6552875afa0b06df0087f792ebb7c17504a5";
const SERVER_AP: &str = "a11af9f05531f856ad47116b45a950328204b4f44bfb6b3a4b4f1f3fcb631643";

#[test]
fn rfc8448_traffic_keys() {
    let suite = suite(0x1301).unwrap();
    let mut key = [0u8; 16];
    let mut iv = [0u8; 12];
    assert!(hkdf_expand_label(suite.hash, &hex(SERVER_HS), b"key", &mut key));
    assert!(hkdf_expand_label(suite.hash, &hex(SERVER_HS), b"iv", &mut iv));
    assert_eq!(key.to_vec(), hex("3fce516009c21727d0f2e4e86ee403bc"));
    assert_eq!(iv.to_vec(), hex("5d313eb2671276ee13000b30"));
    assert!(hkdf_expand_label(suite.hash, &hex(CLIENT_AP), b"key", &mut key));
    assert!(hkdf_expand_label(suite.hash, &hex(CLIENT_AP), b"iv", &mut iv));
    assert_eq!(key.to_vec(), hex("17422dda596ed5d9acd890e3c63f5051"));
    assert_eq!(iv.to_vec(), hex("5b78923dee08579033e523d9"));
}

#[test]
fn rfc8448_records() {
    let suite = suite(0x1301).unwrap();
    // {client} Finished under the client handshake keys, sequence 0.
    let ch = tls13_keys(suite, &hex(CLIENT_HS)).unwrap();
    let fin = hex("1703030035 75ec4dc238cce60b298044a71e219c56cc77b0517fe9b93c7a4bfc44d87f38f80338ac98fc46deb384bd1caeacab6867d726c40546");
    let pt = open_record(&ch, 0, &fin).unwrap();
    assert_eq!(pt[..4], [0x14, 0, 0, 0x20]);
    assert_eq!(pt.len(), 4 + 32 + 1);
    assert_eq!(pt[36], 22, "inner content type: handshake");
    // The same record with another sequence number does not verify.
    assert_eq!(open_record(&ch, 1, &fin), Err(OpenError::Auth));

    // {client} application data: 50 bytes 00..31, then close_notify, sequence 0 and 1.
    let ca = tls13_keys(suite, &hex(CLIENT_AP)).unwrap();
    let data = hex(
        "1703030043a23f7054b62c94d0affafe8228ba55cbefacea42f914aa66bcab3f2b9819a8a5b46b395bd54a9a20441e2b62974e1f5a6292a2977014bd1e3deae63aeebb21694915e4",
    );
    let pt = open_record(&ca, 0, &data).unwrap();
    let mut want: Vec<u8> = (0u8..0x32).collect();
    want.push(23);
    assert_eq!(pt, want);
    let alert = hex("1703030013c9872760655666b74d7ff1153efd6db6d0b0e3");
    assert_eq!(open_record(&ca, 1, &alert).unwrap(), vec![1, 0, 21]);

    // {server} application data, its second record under the application keys (the first
    // was a NewSessionTicket).
    let sa = tls13_keys(suite, &hex(SERVER_AP)).unwrap();
    let data = hex(
        "17030300432e937e11ef4ac740e538ad36005fc4a46932fc3225d05f82aa1b36e30efaf97d90e6dffc602dcb501a59a8fcc49c4bf2e5f0a21c0047c2abf332540dd032e167c2955d",
    );
    let pt = open_record(&sa, 1, &data).unwrap();
    assert_eq!(&pt[..50], &want[..50]);
    assert_eq!(pt[50], 23);
    // A flipped bit fails the tag.
    let mut bad = data.clone();
    bad[20] ^= 1;
    assert_eq!(open_record(&sa, 1, &bad), Err(OpenError::Auth));
}

#[test]
fn tls12_prf_vectors() {
    // The TLS 1.2 PRF test vectors published on the TLS working group's list.
    let mut out = [0u8; 100];
    prf(Hash::Sha256, &hex("9bbe436ba940f017b17652849a71db35"), b"test label", &[&hex("a0ba9f936cda311827a6f796ffd5198c")], &mut out);
    assert_eq!(
        out.to_vec(),
        hex(
            "e3f229ba727be17b8d122620557cd453c2aab21d07c3d495329b52d4e61edb5a6b301791e90d35c9c9a46b4e14baf9af0fa022f7077def17abfd3797c0564bab4fbc91666e9def9b97fce34f796789baa48082d122ee42c5a72e5a5110fff70187347b66"
        )
    );
    let mut out = [0u8; 148];
    prf(Hash::Sha384, &hex("b80b733d6ceefcdc71566ea48e5567df"), b"test label", &[&hex("cd665cf6a8447dd6ff8b27555edb7465")], &mut out);
    let want = hex(
        "7b0c18e9ced410ed1804f2cfa34a336a1c14dffb4900bb5fd7942107e81c83cde9ca0faa60be9fe34f82b1233c9146a0e534cb400fed2700884f9dc236f80edd8bfa961144c9e8d792eca722a7b32fc3d416d473ebc2c5fd4abfdad05d9184259b5bf8",
    );
    assert_eq!(out[..want.len()], want[..]);
}

#[test]
fn key_update_secret() {
    // RFC 8446, section 7.2: the next secret is HKDF-Expand-Label(secret, "traffic upd", "", 32);
    // checked against the same expansion done by the hkdf crate directly.
    let s = hex(CLIENT_AP);
    let next = tls13_next_secret(Hash::Sha256, &s).unwrap();
    let mut info = vec![0, 32, 17];
    info.extend_from_slice(b"tls13 traffic upd");
    info.push(0);
    let mut want = [0u8; 32];
    hkdf::Hkdf::<Sha256>::from_prk(&s).unwrap().expand(&info, &mut want).unwrap();
    assert_eq!(next, want.to_vec());
    assert_ne!(next, s);
    assert!(tls13_next_secret(Hash::Sha384, &s).is_none());
}

/// A TLS 1.2 record sealed independently of `Keys`: the crates used directly, the layout of
/// RFC 5288 / RFC 7905 / RFC 5246 / RFC 7366 written out here.
#[allow(clippy::too_many_arguments)]
pub(crate) fn seal12(
    suite: &Suite,
    master: &[u8],
    cr: &[u8; 32],
    sr: &[u8; 32],
    etm: bool,
    client: bool,
    seq: u64,
    ctype: u8,
    pt: &[u8],
) -> Vec<u8> {
    use aes_gcm::aead::AeadInOut;
    use cbc::cipher::BlockModeEncrypt;
    let (mac_len, key_len, iv_len) = match suite.bulk {
        Bulk::Aes128Gcm => (0, 16, 4),
        Bulk::Aes256Gcm => (0, 32, 4),
        Bulk::ChaCha20Poly1305 => (0, 32, 12),
        Bulk::Aes128Cbc(h) => (h.len(), 16, 0),
        Bulk::Aes256Cbc(h) => (h.len(), 32, 0),
    };
    let mut kb = vec![0u8; 2 * (mac_len + key_len + iv_len)];
    prf(suite.hash, master, b"key expansion", &[sr, cr], &mut kb);
    let i = if client { 0 } else { 1 };
    let mac_key = kb[i * mac_len..][..mac_len].to_vec();
    let key = kb[2 * mac_len + i * key_len..][..key_len].to_vec();
    let iv = kb[2 * mac_len + 2 * key_len + i * iv_len..][..iv_len].to_vec();
    let mut aad = seq.to_be_bytes().to_vec();
    aad.push(ctype);
    aad.extend_from_slice(&[3, 3]);
    let mut body = Vec::new();
    match suite.bulk {
        Bulk::Aes128Gcm | Bulk::Aes256Gcm | Bulk::ChaCha20Poly1305 => {
            aad.extend_from_slice(&(pt.len() as u16).to_be_bytes());
            let mut nonce = [0u8; 12];
            let mut buf = pt.to_vec();
            let tag: Vec<u8> = if suite.bulk == Bulk::ChaCha20Poly1305 {
                nonce.copy_from_slice(&iv);
                for (n, s) in nonce[4..].iter_mut().zip(seq.to_be_bytes()) {
                    *n ^= s;
                }
                let c = chacha20poly1305::ChaCha20Poly1305::new_from_slice(&key).unwrap();
                c.encrypt_inout_detached(&nonce.into(), &aad, buf.as_mut_slice().into()).unwrap().to_vec()
            } else {
                nonce[..4].copy_from_slice(&iv);
                // An explicit nonce that is not the sequence number: it is read, not assumed.
                let explicit = (seq ^ 0x5a5a_0000_0000_0001).to_be_bytes();
                nonce[4..].copy_from_slice(&explicit);
                body.extend_from_slice(&explicit);
                if key_len == 16 {
                    let c = Aes128Gcm::new_from_slice(&key).unwrap();
                    c.encrypt_inout_detached(&nonce.into(), &aad, buf.as_mut_slice().into()).unwrap().to_vec()
                } else {
                    let c = Aes256Gcm::new_from_slice(&key).unwrap();
                    c.encrypt_inout_detached(&nonce.into(), &aad, buf.as_mut_slice().into()).unwrap().to_vec()
                }
            };
            body.extend_from_slice(&buf);
            body.extend_from_slice(&tag);
        }
        Bulk::Aes128Cbc(h) | Bulk::Aes256Cbc(h) => {
            let rec_iv = [0x42u8; 16];
            let pad_to = |mut v: Vec<u8>| {
                let pad = 15 - v.len() % 16;
                v.extend(std::iter::repeat_n(pad as u8, pad + 1));
                v
            };
            let enc = |v: &mut Vec<u8>| {
                if key_len == 16 {
                    cbc::Encryptor::<aes::Aes128>::new_from_slices(&key, &rec_iv)
                        .unwrap()
                        .encrypt_blocks_inout(cipher::InOutBuf::from(v.as_mut_slice()).into_chunks::<cipher::consts::U16>().0);
                } else {
                    cbc::Encryptor::<aes::Aes256>::new_from_slices(&key, &rec_iv)
                        .unwrap()
                        .encrypt_blocks_inout(cipher::InOutBuf::from(v.as_mut_slice()).into_chunks::<cipher::consts::U16>().0);
                }
            };
            let mut mac = [0u8; 48];
            if etm {
                let mut ct = pad_to(pt.to_vec());
                enc(&mut ct);
                body.extend_from_slice(&rec_iv);
                body.extend_from_slice(&ct);
                aad.extend_from_slice(&(body.len() as u16).to_be_bytes());
                hmac_into(h, &mac_key, &[&aad, &body], &mut mac[..h.len()]);
                body.extend_from_slice(&mac[..h.len()]);
            } else {
                aad.extend_from_slice(&(pt.len() as u16).to_be_bytes());
                hmac_into(h, &mac_key, &[&aad, pt], &mut mac[..h.len()]);
                let mut inner = pt.to_vec();
                inner.extend_from_slice(&mac[..h.len()]);
                let mut ct = pad_to(inner);
                enc(&mut ct);
                body.extend_from_slice(&rec_iv);
                body.extend_from_slice(&ct);
            }
        }
    }
    let mut rec = vec![ctype, 3, 3];
    rec.extend_from_slice(&(body.len() as u16).to_be_bytes());
    rec.extend_from_slice(&body);
    rec
}

#[test]
fn tls12_suites_round_trip() {
    let master: Vec<u8> = (0..48u8).map(|i| i.wrapping_mul(7)).collect();
    let cr = [0x11u8; 32];
    let sr = [0x22u8; 32];
    for suite in SUITES.iter().filter(|s| !s.tls13) {
        let etms: &[bool] = if matches!(suite.bulk, Bulk::Aes128Cbc(_) | Bulk::Aes256Cbc(_)) { &[false, true] } else { &[false] };
        for &etm in etms {
            let [ck, sk] = tls12_keys(suite, &master, &cr, &sr, etm).unwrap();
            for (seq, len) in [(0u64, 0usize), (1, 1), (7, 15), (8, 16), (300, 1000)] {
                let pt: Vec<u8> = (0..len).map(|i| (i * 31 + seq as usize) as u8).collect();
                let rec = seal12(suite, &master, &cr, &sr, etm, true, seq, 23, &pt);
                assert_eq!(open_record(&ck, seq, &rec).unwrap(), pt, "{} etm {etm} len {len}", suite.name);
                // The other direction's keys, or another sequence number, do not open it.
                assert!(open_record(&sk, seq, &rec).is_err(), "{}", suite.name);
                assert!(open_record(&ck, seq + 1, &rec).is_err(), "{}", suite.name);
                let rec = seal12(suite, &master, &cr, &sr, etm, false, seq, 22, &pt);
                assert_eq!(open_record(&sk, seq, &rec).unwrap(), pt, "{} server", suite.name);
                // Any flipped bit is caught.
                for at in [5, rec.len() / 2, rec.len() - 1] {
                    let mut bad = rec.clone();
                    bad[at] ^= 0x10;
                    assert!(open_record(&sk, seq, &bad).is_err(), "{} flip at {at}", suite.name);
                }
            }
            // Truncated records are errors, not panics.
            let rec = seal12(suite, &master, &cr, &sr, etm, true, 0, 23, b"hello");
            for n in 5..rec.len() {
                let _ = open_record(&ck, 0, &rec[..n]);
            }
        }
    }
}

#[test]
fn tls13_suites_round_trip() {
    use aes_gcm::aead::AeadInOut;
    for suite in SUITES.iter().filter(|s| s.tls13) {
        let secret: Vec<u8> = (0..suite.hash.len() as u8).collect();
        let k = tls13_keys(suite, &secret).unwrap();
        let mut key = vec![0u8; suite.bulk.key_len()];
        let mut iv = [0u8; 12];
        assert!(hkdf_expand_label(suite.hash, &secret, b"key", &mut key));
        assert!(hkdf_expand_label(suite.hash, &secret, b"iv", &mut iv));
        let seq = 5u64;
        let mut nonce = iv;
        for (n, s) in nonce[4..].iter_mut().zip(seq.to_be_bytes()) {
            *n ^= s;
        }
        let mut inner = b"GET / HTTP/1.1\r\n\r\n".to_vec();
        inner.push(23);
        inner.extend_from_slice(&[0, 0, 0]);
        let len = (inner.len() + 16) as u16;
        let hdr = [23, 3, 3, (len >> 8) as u8, len as u8];
        let mut buf = inner.clone();
        let tag = match suite.bulk {
            Bulk::Aes128Gcm => {
                Aes128Gcm::new_from_slice(&key).unwrap().encrypt_inout_detached(&nonce.into(), &hdr, buf.as_mut_slice().into()).unwrap()
            }
            Bulk::Aes256Gcm => {
                Aes256Gcm::new_from_slice(&key).unwrap().encrypt_inout_detached(&nonce.into(), &hdr, buf.as_mut_slice().into()).unwrap()
            }
            _ => chacha20poly1305::ChaCha20Poly1305::new_from_slice(&key)
                .unwrap()
                .encrypt_inout_detached(&nonce.into(), &hdr, buf.as_mut_slice().into())
                .unwrap(),
        };
        let mut rec = hdr.to_vec();
        rec.extend_from_slice(&buf);
        rec.extend_from_slice(&tag);
        assert_eq!(open_record(&k, seq, &rec).unwrap(), inner, "{}", suite.name);
        assert_eq!(open_record(&k, seq - 1, &rec), Err(OpenError::Auth));
        assert!(tls13_keys(suite, &secret[1..]).is_none());
    }
}
