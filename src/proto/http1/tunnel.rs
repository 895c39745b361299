//! Cleartext proxy tunnels that HTTP runs through: the target a SOCKS handshake names.
//!
//! Contract: [`socks_target`] reads the first bytes a client sent on a connection and, when
//! they are a SOCKS 4, 4a or 5 CONNECT request, returns the protocol and the target
//! (`"socks5 example.com:80"`). It never returns credentials (SOCKS 5 username/password
//! authentication is skipped over, SOCKS 4 user ids are not kept) and never panics.

/// The tunnel a SOCKS preamble opens, as `"socks4 host:port"` / `"socks4a"` / `"socks5"`.
pub fn socks_target(client: &[u8]) -> Option<String> {
    match client.first()? {
        4 => socks4(client),
        5 => socks5(client),
        _ => None,
    }
}

fn port(b: &[u8]) -> u16 {
    u16::from_be_bytes([b[0], b[1]])
}

fn socks4(c: &[u8]) -> Option<String> {
    // VER CMD DSTPORT(2) DSTIP(4) USERID NUL [HOST NUL]
    if c.len() < 9 || c[1] != 1 {
        return None;
    }
    let p = port(&c[2..4]);
    let ip = &c[4..8];
    let user_end = 8 + c[8..].iter().position(|&b| b == 0)?;
    if ip[0] == 0 && ip[1] == 0 && ip[2] == 0 && ip[3] != 0 {
        // 4a: the host name follows the user id.
        let rest = &c[user_end + 1..];
        let host = &rest[..rest.iter().position(|&b| b == 0)?];
        let host = std::str::from_utf8(host).ok().filter(|h| !h.is_empty() && h.len() <= 255)?;
        return Some(format!("socks4a {host}:{p}"));
    }
    Some(format!("socks4 {}.{}.{}.{}:{p}", ip[0], ip[1], ip[2], ip[3]))
}

fn socks5(c: &[u8]) -> Option<String> {
    // Greeting: VER NMETHODS METHODS...
    let n = *c.get(1)? as usize;
    let methods = c.get(2..2 + n)?;
    let mut at = 2 + n;
    // Username/password subnegotiation (RFC 1929): VER(1) ULEN UNAME PLEN PASSWD.
    if methods.contains(&2) && c.get(at) == Some(&1) {
        let ulen = *c.get(at + 1)? as usize;
        let plen = *c.get(at + 2 + ulen)? as usize;
        at += 3 + ulen + plen;
    }
    // Request: VER CMD RSV ATYP DST.ADDR DST.PORT
    let r = c.get(at..)?;
    if r.len() < 4 || r[0] != 5 || r[1] != 1 {
        return None;
    }
    let (host, rest) = match r[3] {
        1 => {
            let a = r.get(4..8)?;
            (format!("{}.{}.{}.{}", a[0], a[1], a[2], a[3]), r.get(8..)?)
        }
        3 => {
            let len = *r.get(4)? as usize;
            let name = std::str::from_utf8(r.get(5..5 + len)?).ok().filter(|h| !h.is_empty())?;
            (name.to_string(), r.get(5 + len..)?)
        }
        4 => {
            let a = r.get(4..20)?;
            let ip = std::net::Ipv6Addr::from(<[u8; 16]>::try_from(a).ok()?);
            (format!("[{ip}]"), r.get(20..)?)
        }
        _ => return None,
    };
    Some(format!("socks5 {host}:{}", port(rest.get(..2)?)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn socks_requests_name_their_target() {
        // SOCKS 4 to 93.184.216.34:80 with a user id.
        assert_eq!(socks_target(b"\x04\x01\x00\x50\x5d\xb8\xd8\x22alice\0").as_deref(), Some("socks4 93.184.216.34:80"));
        // 4a with a host name.
        assert_eq!(socks_target(b"\x04\x01\x1f\x90\x00\x00\x00\x01\0api.test\0").as_deref(), Some("socks4a api.test:8080"));
        // 5, no authentication, domain name.
        assert_eq!(socks_target(b"\x05\x01\x00\x05\x01\x00\x03\x08api.test\x00\x50").as_deref(), Some("socks5 api.test:80"));
        // 5 with username/password: the credentials are skipped, not kept.
        let with_auth = b"\x05\x02\x00\x02\x01\x04user\x06secret\x05\x01\x00\x01\x7f\x00\x00\x01\x1f\x90";
        let t = socks_target(with_auth).unwrap();
        assert_eq!(t, "socks5 127.0.0.1:8080");
        assert!(!t.contains("secret") && !t.contains("user"));
        // IPv6.
        let mut v6 = b"\x05\x01\x00\x05\x01\x00\x04".to_vec();
        v6.extend_from_slice(&std::net::Ipv6Addr::LOCALHOST.octets());
        v6.extend_from_slice(&[0, 80]);
        assert_eq!(socks_target(&v6).as_deref(), Some("socks5 [::1]:80"));
    }

    #[test]
    fn anything_else_is_not_socks() {
        for b in
            [&b""[..], b"GET / HTTP/1.1\r\n", b"\x04", b"\x04\x02\x00\x50\x01\x02\x03\x04\0", b"\x05\x01", b"\x05\xff\x00", b"\x16\x03\x01"]
        {
            assert_eq!(socks_target(b), None, "{b:?}");
        }
        // Every prefix of a valid request, and every byte changed, never panics.
        let full = b"\x05\x02\x00\x02\x01\x04user\x06secret\x05\x01\x00\x03\x08api.test\x00\x50";
        for n in 0..full.len() {
            let _ = socks_target(&full[..n]);
            for v in [0u8, 1, 5, 0xff] {
                let mut m = full.to_vec();
                m[n] = v;
                let _ = socks_target(&m);
            }
        }
    }
}
