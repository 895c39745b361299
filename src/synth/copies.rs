//! Time-shifted copies of a recorded capture, as a merged or rotated capture would hold them.
//!
//! A benchmark needs a large capture of *recorded* traffic; recording a gigabyte takes long
//! and differs from run to run. Copy `k` of a capture is the same frames with every timestamp
//! moved by `k × spacing` and every client endpoint moved to its own address and port, so the
//! copies are distinct connections to the same servers:
//!
//! - IPv4 client `a.b.c.d` becomes `a.(b ^ k>>8).(c ^ k&255).d` (`127.0.0.1` → `127.0.k.1`);
//!   IPv6 clients get `k` XOR-ed into bytes 12 and 13 of the address;
//! - client ports from 1024 up move by `k × 1009` within `1024..=65535` (below 1024: kept);
//! - the IPv4 header checksum and the TCP checksum are updated incrementally (RFC 1624), so a
//!   correct checksum stays correct and a wrong one stays wrong by the same amount.
//!
//! Copy 0 is the original. The server side of a connection is the endpoint a SYN went to (or a
//! SYN-ACK came from), found in a first pass ([`Servers`]); for a connection seen without its
//! handshake, the endpoint with the lower port. Frames that are not TCP over IPv4/IPv6 (or that
//! the snap length cut inside the TCP header) are copied unchanged and counted.

use std::collections::HashSet;

use crate::capture::linktype;

/// One side of a TCP connection: address (IPv4 in the first 4 bytes) and port.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Endpoint {
    pub v6: bool,
    pub addr: [u8; 16],
    pub port: u16,
}

/// Where the IP and TCP headers of a frame are.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TcpAt {
    /// Offset of the IP header.
    pub ip: usize,
    pub v6: bool,
    /// Offset of the TCP header.
    pub tcp: usize,
}

/// Finds the IP and TCP headers of a frame of the given link type; `None` for anything that
/// is not an unfragmented (or first-fragment) TCP segment with its first 18 header bytes.
pub fn locate(linktype: u32, data: &[u8]) -> Option<TcpAt> {
    let ip = match linktype {
        linktype::ETHERNET => {
            let mut off = 12;
            let mut ty = u16::from_be_bytes([*data.get(off)?, *data.get(off + 1)?]);
            for _ in 0..2 {
                if matches!(ty, 0x8100 | 0x88a8 | 0x9100) {
                    off += 4;
                    ty = u16::from_be_bytes([*data.get(off)?, *data.get(off + 1)?]);
                }
            }
            if ty != 0x0800 && ty != 0x86dd {
                return None;
            }
            off + 2
        }
        linktype::LINUX_SLL => 16,
        linktype::LINUX_SLL2 => 20,
        linktype::NULL | linktype::LOOP => 4,
        linktype::RAW | linktype::RAW_BSD12 | linktype::RAW_BSD14 | linktype::IPV4 | linktype::IPV6 => 0,
        _ => return None,
    };
    let first = *data.get(ip)?;
    let (v6, tcp) = match first >> 4 {
        4 => {
            let ihl = usize::from(first & 0x0f) * 4;
            let proto = *data.get(ip + 9)?;
            let frag = u16::from_be_bytes([*data.get(ip + 6)?, *data.get(ip + 7)?]) & 0x1fff;
            if ihl < 20 || proto != 6 || frag != 0 {
                return None;
            }
            (false, ip + ihl)
        }
        6 => {
            if *data.get(ip + 6)? != 6 {
                return None;
            }
            (true, ip + 40)
        }
        _ => return None,
    };
    if data.len() < tcp + 18 {
        return None;
    }
    Some(TcpAt { ip, v6, tcp })
}

fn endpoints(data: &[u8], at: TcpAt) -> (Endpoint, Endpoint) {
    let (alen, src_at, dst_at) = if at.v6 { (16, at.ip + 8, at.ip + 24) } else { (4, at.ip + 12, at.ip + 16) };
    let mut s = [0u8; 16];
    let mut d = [0u8; 16];
    s[..alen].copy_from_slice(&data[src_at..src_at + alen]);
    d[..alen].copy_from_slice(&data[dst_at..dst_at + alen]);
    let sp = u16::from_be_bytes([data[at.tcp], data[at.tcp + 1]]);
    let dp = u16::from_be_bytes([data[at.tcp + 2], data[at.tcp + 3]]);
    (Endpoint { v6: at.v6, addr: s, port: sp }, Endpoint { v6: at.v6, addr: d, port: dp })
}

/// The servers of a capture: endpoints that received a SYN or sent a SYN-ACK.
#[derive(Debug, Default)]
pub struct Servers {
    set: HashSet<Endpoint>,
}

impl Servers {
    /// Learns from one frame (the first pass).
    pub fn observe(&mut self, linktype: u32, data: &[u8]) {
        let Some(at) = locate(linktype, data) else { return };
        let flags = data[at.tcp + 13];
        let (s, d) = endpoints(data, at);
        match flags & 0x12 {
            0x02 => {
                self.set.insert(d);
            }
            0x12 => {
                self.set.insert(s);
            }
            _ => {}
        }
    }

    pub fn len(&self) -> usize {
        self.set.len()
    }

    pub fn is_empty(&self) -> bool {
        self.set.is_empty()
    }

    /// Whether the client of a segment [`locate`] found is its source (else its destination).
    pub fn client_is_source(&self, data: &[u8], at: TcpAt) -> bool {
        let (s, d) = endpoints(data, at);
        if self.set.contains(&d) {
            true
        } else if self.set.contains(&s) {
            false
        } else {
            // No handshake seen: the ephemeral port is the higher one.
            s.port > d.port
        }
    }
}

/// The client port of copy `k` for original port `p`.
pub fn shifted_port(p: u16, k: u32) -> u16 {
    if p < 1024 {
        return p;
    }
    let span = 65536 - 1024;
    (1024 + (u64::from(p - 1024) + u64::from(k) * 1009) % span) as u16
}

/// Applies RFC 1624's `HC' = ~(~HC + ~m + m')` for the 16-bit words of `old` → `new`.
fn checksum_update(hc: u16, old: &[u8], new: &[u8]) -> u16 {
    let mut sum = u32::from(!hc);
    for (o, n) in old.chunks_exact(2).zip(new.chunks_exact(2)) {
        sum += u32::from(!u16::from_be_bytes([o[0], o[1]]));
        sum += u32::from(u16::from_be_bytes([n[0], n[1]]));
    }
    while sum >> 16 != 0 {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// What [`shift_client`] did to a frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Shifted {
    /// The client's address and port were moved (or `k` is 0: nothing to do).
    Tcp,
    /// Not a TCP segment this module reads: left unchanged.
    Other,
}

/// Moves the client endpoint of one frame, in place, to copy `k`'s address and port.
pub fn shift_client(linktype: u32, data: &mut [u8], servers: &Servers, k: u32) -> Shifted {
    let Some(at) = locate(linktype, data) else { return Shifted::Other };
    if k == 0 {
        return Shifted::Tcp;
    }
    let src_is_client = servers.client_is_source(data, at);
    let (alen, addr_at) = match (at.v6, src_is_client) {
        (false, true) => (4, at.ip + 12),
        (false, false) => (4, at.ip + 16),
        (true, true) => (16, at.ip + 8),
        (true, false) => (16, at.ip + 24),
    };
    let port_at = if src_is_client { at.tcp } else { at.tcp + 2 };
    let mut old = [0u8; 18];
    old[..alen].copy_from_slice(&data[addr_at..addr_at + alen]);
    old[alen..alen + 2].copy_from_slice(&data[port_at..port_at + 2]);
    let mut new = old;
    let kb = (k as u16).to_be_bytes();
    if at.v6 {
        new[12] ^= kb[0];
        new[13] ^= kb[1];
    } else {
        new[1] ^= kb[0];
        new[2] ^= kb[1];
    }
    let port = shifted_port(u16::from_be_bytes([old[alen], old[alen + 1]]), k);
    new[alen..alen + 2].copy_from_slice(&port.to_be_bytes());

    data[addr_at..addr_at + alen].copy_from_slice(&new[..alen]);
    data[port_at..port_at + 2].copy_from_slice(&new[alen..alen + 2]);
    if !at.v6 {
        let c = u16::from_be_bytes([data[at.ip + 10], data[at.ip + 11]]);
        let c = checksum_update(c, &old[..4], &new[..4]);
        data[at.ip + 10..at.ip + 12].copy_from_slice(&c.to_be_bytes());
    }
    // The TCP checksum covers the pseudo-header's addresses and the port.
    let c = u16::from_be_bytes([data[at.tcp + 16], data[at.tcp + 17]]);
    let c = checksum_update(c, &old[..alen + 2], &new[..alen + 2]);
    data[at.tcp + 16..at.tcp + 18].copy_from_slice(&c.to_be_bytes());
    Shifted::Tcp
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::synth::pcap::{MAX_HEADERS, TcpFields, build_headers, internet_checksum};
    use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

    fn frame(src: IpAddr, dst: IpAddr, sp: u16, dp: u16, flags: u8, payload: &[u8]) -> Vec<u8> {
        let mut h = [0u8; MAX_HEADERS];
        let tcp = TcpFields { src_port: sp, dst_port: dp, seq: 7, ack: 9, flags, window: 512, mss_option: 0 };
        let n = build_headers(src, dst, &tcp, payload, 33, 64, &mut h);
        let mut f = vec![0u8; 12];
        f.extend_from_slice(if src.is_ipv4() { &[0x08, 0x00] } else { &[0x86, 0xdd] });
        f.extend_from_slice(&h[..n]);
        f.extend_from_slice(payload);
        f
    }

    #[test]
    fn shifted_frames_equal_frames_built_for_the_new_client() {
        let srv4 = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 1));
        let cli4 = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 1));
        let srv6 = IpAddr::V6(Ipv6Addr::LOCALHOST);
        let cli6 = IpAddr::V6(Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0xab, 0x1234));
        let mut servers = Servers::default();
        servers.observe(linktype::ETHERNET, &frame(cli4, srv4, 50000, 8080, 0x02, b""));
        servers.observe(linktype::ETHERNET, &frame(srv6, cli6, 443, 40000, 0x12, b""));
        assert_eq!(servers.len(), 2);
        let payload: Vec<u8> = (0..1001u32).map(|i| (i * 31 % 251) as u8).collect();
        for k in [1u32, 2, 255, 256, 1000, 65535] {
            let ka = (k as u16).to_be_bytes();
            let port = shifted_port(50000, k);
            let new4 = IpAddr::V4(Ipv4Addr::new(127, ka[0], ka[1], 1));
            // Client to server and server to client.
            let mut f = frame(cli4, srv4, 50000, 8080, 0x18, &payload);
            assert_eq!(shift_client(linktype::ETHERNET, &mut f, &servers, k), Shifted::Tcp);
            assert_eq!(f, frame(new4, srv4, port, 8080, 0x18, &payload), "k={k}");
            let mut f = frame(srv4, cli4, 8080, 50000, 0x10, &payload[..3]);
            shift_client(linktype::ETHERNET, &mut f, &servers, k);
            assert_eq!(f, frame(srv4, new4, 8080, port, 0x10, &payload[..3]), "k={k}");
            // IPv6, odd payload length.
            let mut o = cli6.to_string().parse::<Ipv6Addr>().unwrap().octets();
            o[12] ^= ka[0];
            o[13] ^= ka[1];
            let new6 = IpAddr::V6(Ipv6Addr::from(o));
            let p6 = shifted_port(40000, k);
            let mut f = frame(cli6, srv6, 40000, 443, 0x18, &payload);
            shift_client(linktype::ETHERNET, &mut f, &servers, k);
            assert_eq!(f, frame(new6, srv6, p6, 443, 0x18, &payload), "k={k}");
        }
    }

    #[test]
    fn ipv4_header_checksum_stays_valid() {
        let a = IpAddr::V4(Ipv4Addr::new(10, 1, 2, 3));
        let b = IpAddr::V4(Ipv4Addr::new(10, 9, 9, 9));
        let mut f = frame(a, b, 61000, 80, 0x10, b"x");
        shift_client(linktype::ETHERNET, &mut f, &Servers::default(), 77);
        assert_eq!(internet_checksum(&f[14..34]), 0);
        assert_eq!(&f[26..30], &[10, 1, 2 ^ 77, 3]);
    }

    #[test]
    fn ports_stay_in_range_and_distinct_per_copy() {
        let mut seen = HashSet::new();
        for k in 0..64 {
            let p = shifted_port(65535, k);
            assert!(p >= 1024);
            assert!(seen.insert(p));
        }
        assert_eq!(shifted_port(80, 5), 80);
        assert_eq!(shifted_port(1024, 0), 1024);
    }

    #[test]
    fn other_frames_are_left_alone() {
        let mut arp = vec![0u8; 12];
        arp.extend_from_slice(&[0x08, 0x06]);
        arp.extend_from_slice(&[1; 28]);
        let before = arp.clone();
        assert_eq!(shift_client(linktype::ETHERNET, &mut arp, &Servers::default(), 3), Shifted::Other);
        assert_eq!(arp, before);
        // A frame cut by the snap length inside the TCP header.
        let a = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1));
        let mut f = frame(a, a, 5000, 80, 0x10, b"");
        f.truncate(14 + 20 + 10);
        let before = f.clone();
        assert_eq!(shift_client(linktype::ETHERNET, &mut f, &Servers::default(), 3), Shifted::Other);
        assert_eq!(f, before);
        assert_eq!(locate(linktype::ETHERNET, &[]), None);
    }
}
