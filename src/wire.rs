//! Decoding frames down to TCP segments: link layers, tunnels, IPv4/IPv6 and TCP.
//!
//! Contract: [`decode`] looks at one [`Frame`] and tells what it holds: a [`TcpSegment`] whose
//! payload borrows the frame, an IPv4/IPv6 fragment to hand to a [`defrag::Defragmenter`], or
//! the reason it is of no interest. It keeps no state, allocates nothing and never panics on
//! bad input. The payload is trimmed to the IP packet's own length, so Ethernet padding never
//! becomes TCP payload; bytes that the snap length cut off are reported in
//! [`TcpSegment::missing`], never invented.
//!
//! Link types: Ethernet (802.1Q/802.1ad/QinQ VLANs, MPLS, PPPoE session, LLC/SNAP), Linux SLL
//! and SLL2, BSD NULL and LOOP, raw IPv4/IPv6, NFLOG, Cisco HDLC. Tunnels: IP-in-IP, GRE
//! (including transparent Ethernet bridging and ERSPAN types II/III), VXLAN, Geneve, Teredo,
//! AYIYA and TZSP on their standard UDP ports, and TZSP on one more port given in
//! [`WireOptions`] (senders often pick their own).

use std::net::IpAddr;

use etherparse::{IpNumber, LaxIpSlice, TcpHeaderSlice};

use crate::capture::{Frame, Ts, linktype};

pub mod defrag;

/// A TCP connection's identity: the two endpoints, the lower one first.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FlowKey {
    pub a_ip: [u8; 16],
    pub b_ip: [u8; 16],
    pub a_port: u16,
    pub b_port: u16,
    pub v6: bool,
}

impl FlowKey {
    /// Builds the canonical key and the direction of a packet from `src` to `dst`.
    pub fn new(src: Endpoint, dst: Endpoint) -> (FlowKey, Dir) {
        let v6 = src.v6 || dst.v6;
        if (src.ip, src.port) <= (dst.ip, dst.port) {
            let k = FlowKey { a_ip: src.ip, b_ip: dst.ip, a_port: src.port, b_port: dst.port, v6 };
            (k, Dir::AtoB)
        } else {
            let k = FlowKey { a_ip: dst.ip, b_ip: src.ip, a_port: dst.port, b_port: src.port, v6 };
            (k, Dir::BtoA)
        }
    }

    /// The endpoint that sends in direction `dir`.
    pub fn src(&self, dir: Dir) -> Endpoint {
        match dir {
            Dir::AtoB => Endpoint { ip: self.a_ip, port: self.a_port, v6: self.v6 },
            Dir::BtoA => Endpoint { ip: self.b_ip, port: self.b_port, v6: self.v6 },
        }
    }

    /// A hash that does not depend on the process (for sharding): the addresses and ports
    /// read as five words, each mixed in with one multiplication, then finished as
    /// MurmurHash3's `fmix64` does (so that the low bits, which pick the shard, depend on
    /// every input bit).
    pub fn shard_hash(&self) -> u64 {
        const K: u64 = 0x9e37_79b9_7f4a_7c15;
        let w = |b: &[u8; 16], i: usize| u64::from_le_bytes(b[i..i + 8].try_into().expect("8 bytes"));
        let ports = u64::from(self.a_port) << 16 | u64::from(self.b_port);
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for x in [w(&self.a_ip, 0), w(&self.a_ip, 8), w(&self.b_ip, 0), w(&self.b_ip, 8), ports] {
            h = (h ^ x).wrapping_mul(K).rotate_left(31);
        }
        h ^= h >> 33;
        h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
        h ^= h >> 33;
        h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
        h ^ (h >> 33)
    }
}

/// One end of a connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Endpoint {
    /// IPv4 addresses are stored IPv4-mapped (`::ffff:a.b.c.d`).
    pub ip: [u8; 16],
    pub port: u16,
    pub v6: bool,
}

impl Endpoint {
    pub fn from_addr(addr: IpAddr, port: u16) -> Endpoint {
        match addr {
            IpAddr::V4(a) => Endpoint { ip: a.to_ipv6_mapped().octets(), port, v6: false },
            IpAddr::V6(a) => Endpoint { ip: a.octets(), port, v6: true },
        }
    }

    pub fn addr(&self) -> IpAddr {
        let a = std::net::Ipv6Addr::from(self.ip);
        match (self.v6, a.to_ipv4_mapped()) {
            (false, Some(v4)) => IpAddr::V4(v4),
            _ => IpAddr::V6(a),
        }
    }
}

impl std::fmt::Display for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.addr() {
            IpAddr::V4(a) => write!(f, "{a}:{}", self.port),
            IpAddr::V6(a) => write!(f, "[{a}]:{}", self.port),
        }
    }
}

/// Which way a segment travels within its [`FlowKey`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Dir {
    AtoB = 0,
    BtoA = 1,
}

impl Dir {
    pub fn other(self) -> Dir {
        match self {
            Dir::AtoB => Dir::BtoA,
            Dir::BtoA => Dir::AtoB,
        }
    }
    pub fn idx(self) -> usize {
        self as usize
    }
}

/// TCP flag bits.
pub mod flags {
    pub const FIN: u8 = 0x01;
    pub const SYN: u8 = 0x02;
    pub const RST: u8 = 0x04;
    pub const ACK: u8 = 0x10;
}

/// One TCP segment, its payload borrowed from the capture.
#[derive(Clone, Copy, Debug)]
pub struct TcpSegment<'m> {
    pub frame: u64,
    pub ts: Ts,
    pub key: FlowKey,
    pub dir: Dir,
    pub seq: u32,
    pub ack: u32,
    pub flags: u8,
    pub payload: &'m [u8],
    /// Payload bytes that belong to this segment but were not captured (snap length).
    pub missing: u32,
}

impl TcpSegment<'_> {
    pub fn has(&self, flag: u8) -> bool {
        self.flags & flag != 0
    }
}

/// An IP fragment: the IP payload piece and what identifies its datagram.
#[derive(Clone, Copy, Debug)]
pub struct Fragment<'m> {
    pub src: [u8; 16],
    pub dst: [u8; 16],
    pub v6: bool,
    pub id: u32,
    pub protocol: u8,
    /// Offset of this piece in the datagram's payload, in bytes.
    pub offset: u32,
    pub more: bool,
    pub data: &'m [u8],
}

/// Why a frame carries no TCP segment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Skip {
    /// A link type we do not decode (the value is the link type).
    UnsupportedLinktype(u32),
    /// Not IP (ARP, LLDP, ...) or a network protocol we do not decode.
    NotIp,
    /// IP, but neither TCP nor a tunnel.
    NotTcp,
    /// Headers cut short or invalid; the text names the layer.
    Malformed(&'static str),
    /// Tunnels nested deeper than we follow.
    TooDeep,
}

/// What a frame holds.
#[derive(Clone, Copy, Debug)]
pub enum Decoded<'m> {
    Tcp(TcpSegment<'m>),
    Fragment(Fragment<'m>),
    Skip(Skip),
}

const MAX_DEPTH: u8 = 8;

/// The UDP port of TZSP (TaZmen Sniffer Protocol), decoded whatever the options.
pub const TZSP_PORT: u16 = 37008;

/// What decoding needs beyond the frame: tunnels on ports of the user's choosing.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct WireOptions {
    /// A UDP port that also carries TZSP, besides [`TZSP_PORT`] (0: none).
    pub tzsp_port: u16,
}

/// Decodes one frame (with the default [`WireOptions`]).
pub fn decode<'m>(frame: &Frame<'m>) -> Decoded<'m> {
    decode_with(frame, WireOptions::default())
}

/// Decodes one frame.
pub fn decode_with<'m>(frame: &Frame<'m>, opts: WireOptions) -> Decoded<'m> {
    let cut = frame.orig_len.saturating_sub(frame.data.len() as u32);
    let cx = Cx { frame: frame.index, ts: frame.ts, cut, tzsp_port: opts.tzsp_port };
    let d = frame.data;
    match frame.linktype {
        linktype::ETHERNET => cx.ethernet(d, 0),
        linktype::NULL | linktype::LOOP => {
            if d.len() < 4 {
                return Decoded::Skip(Skip::Malformed("loopback header"));
            }
            // NULL stores the address family in the capturing host's byte order; LOOP in
            // network order. Either way, accept both.
            let le = u32::from_le_bytes([d[0], d[1], d[2], d[3]]);
            let be = u32::from_be_bytes([d[0], d[1], d[2], d[3]]);
            let family = if le < 256 { le } else { be };
            match family {
                2 => cx.ip(&d[4..], 0),
                // AF_INET6 differs between systems: 10 (Linux), 24 (NetBSD/OpenBSD), 28
                // (FreeBSD), 30 (macOS).
                10 | 24 | 28 | 30 => cx.ip(&d[4..], 0),
                _ => Decoded::Skip(Skip::NotIp),
            }
        }
        linktype::RAW | linktype::RAW_BSD12 | linktype::RAW_BSD14 => cx.ip(d, 0),
        linktype::IPV4 | linktype::IPV6 => cx.ip(d, 0),
        linktype::LINUX_SLL => {
            if d.len() < 16 {
                return Decoded::Skip(Skip::Malformed("linux cooked header"));
            }
            cx.ethertype(u16::from_be_bytes([d[14], d[15]]), &d[16..], 0)
        }
        linktype::LINUX_SLL2 => {
            if d.len() < 20 {
                return Decoded::Skip(Skip::Malformed("linux cooked v2 header"));
            }
            cx.ethertype(u16::from_be_bytes([d[0], d[1]]), &d[20..], 0)
        }
        // Cisco HDLC: address, control, then an Ethernet type.
        104 => {
            if d.len() < 4 {
                return Decoded::Skip(Skip::Malformed("cisco hdlc header"));
            }
            cx.ethertype(u16::from_be_bytes([d[2], d[3]]), &d[4..], 0)
        }
        // NFLOG: a 4-byte header then TLVs (host byte order); the packet is TLV type 9.
        239 => cx.nflog(d),
        // Linux ARCNET: source, destination, offset, then a protocol id: RFC 1201 IP (0xd4)
        // with split flag and sequence (and 4 more bytes for an exception packet), or
        // RFC 1051 IP (0xf0).
        129 => match (d.get(4), d.get(5)) {
            (Some(0xd4), Some(0xff)) if d.len() >= 12 => cx.ip(&d[12..], 0),
            (Some(0xd4), Some(_)) if d.len() >= 8 => cx.ip(&d[8..], 0),
            (Some(0xf0), _) => cx.ip(&d[5..], 0),
            (Some(_), _) => Decoded::Skip(Skip::NotIp),
            _ => Decoded::Skip(Skip::Malformed("arcnet header")),
        },
        // IEEE 802.11, and 802.11 behind a radiotap header (its length at bytes 2..4).
        105 => cx.wlan(d, 0),
        127 => {
            if d.len() < 4 {
                return Decoded::Skip(Skip::Malformed("radiotap header"));
            }
            let n = u16::from_le_bytes([d[2], d[3]]) as usize;
            if d.len() < n {
                return Decoded::Skip(Skip::Malformed("radiotap header"));
            }
            cx.wlan(&d[n..], 0)
        }
        other => Decoded::Skip(Skip::UnsupportedLinktype(other)),
    }
}

#[derive(Clone, Copy)]
struct Cx {
    frame: u64,
    ts: Ts,
    /// Bytes of the frame cut off by the snap length.
    cut: u32,
    /// [`WireOptions::tzsp_port`].
    tzsp_port: u16,
}

impl Cx {
    fn ethernet<'m>(self, d: &'m [u8], depth: u8) -> Decoded<'m> {
        if d.len() < 14 {
            return Decoded::Skip(Skip::Malformed("ethernet header"));
        }
        let ty = u16::from_be_bytes([d[12], d[13]]);
        if ty <= 1500 {
            return self.llc(&d[14..], depth);
        }
        self.ethertype(ty, &d[14..], depth)
    }

    fn llc<'m>(self, d: &'m [u8], depth: u8) -> Decoded<'m> {
        // 802.2 LLC with SNAP: AA AA 03, a 3-byte OUI, then an Ethernet type.
        if d.len() >= 8 && d[0] == 0xaa && d[1] == 0xaa && d[2] == 0x03 {
            return self.ethertype(u16::from_be_bytes([d[6], d[7]]), &d[8..], depth);
        }
        Decoded::Skip(Skip::NotIp)
    }

    fn ethertype<'m>(self, mut ty: u16, mut d: &'m [u8], depth: u8) -> Decoded<'m> {
        // VLAN tags (802.1Q, 802.1ad, the old QinQ 0x9100), any number of them.
        while matches!(ty, 0x8100 | 0x88a8 | 0x9100 | 0x9200) {
            if d.len() < 4 {
                return Decoded::Skip(Skip::Malformed("vlan tag"));
            }
            ty = u16::from_be_bytes([d[2], d[3]]);
            d = &d[4..];
        }
        match ty {
            0x0800 | 0x86dd => self.ip(d, depth),
            // MPLS unicast/multicast: pop labels to the bottom of the stack, then guess IP from
            // the version nibble.
            0x8847 | 0x8848 => {
                loop {
                    if d.len() < 4 {
                        return Decoded::Skip(Skip::Malformed("mpls label"));
                    }
                    let bottom = d[2] & 1 == 1;
                    d = &d[4..];
                    if bottom {
                        break;
                    }
                }
                match d.first().map(|b| b >> 4) {
                    Some(4 | 6) => self.ip(d, depth),
                    _ => Decoded::Skip(Skip::NotIp),
                }
            }
            // PPPoE session: 6-byte header, then a PPP protocol number.
            0x8864 => {
                if d.len() < 7 {
                    return Decoded::Skip(Skip::Malformed("pppoe header"));
                }
                self.ppp(&d[6..], depth)
            }
            // Ethernet bridged inside Ethernet (e.g. after a transparent bridging tunnel).
            0x6558 => self.nested_ethernet(d, depth),
            _ => Decoded::Skip(Skip::NotIp),
        }
    }

    /// An 802.11 data frame: its header (addresses, QoS, HT control), then LLC/SNAP.
    fn wlan<'m>(self, d: &'m [u8], depth: u8) -> Decoded<'m> {
        if d.len() < 24 {
            return Decoded::Skip(Skip::Malformed("802.11 header"));
        }
        let (fc, flags) = (d[0], d[1]);
        let (kind, subtype) = ((fc >> 2) & 3, fc >> 4);
        // Data frames only; null-data subtypes carry nothing; protected frames are encrypted.
        if kind != 2 || subtype & 4 != 0 || flags & 0x40 != 0 {
            return Decoded::Skip(Skip::NotIp);
        }
        let mut hl = 24;
        if flags & 3 == 3 {
            hl += 6;
        }
        if subtype & 8 != 0 {
            hl += 2;
            if flags & 0x80 != 0 {
                hl += 4;
            }
        }
        if d.len() < hl {
            return Decoded::Skip(Skip::Malformed("802.11 header"));
        }
        self.llc(&d[hl..], depth)
    }

    /// PPP: optional address/control bytes, a protocol field of one byte (compressed, odd) or
    /// two.
    fn ppp<'m>(self, d: &'m [u8], depth: u8) -> Decoded<'m> {
        let p = if d.len() >= 2 && d[0] == 0xff && d[1] == 0x03 { &d[2..] } else { d };
        if p.is_empty() || (p[0] & 1 == 0 && p.len() < 2) {
            return Decoded::Skip(Skip::Malformed("ppp header"));
        }
        let (proto, rest) = if p[0] & 1 == 1 { (p[0] as u16, &p[1..]) } else { (u16::from_be_bytes([p[0], p[1]]), &p[2..]) };
        match proto {
            0x21 | 0x57 => self.ip(rest, depth),
            _ => Decoded::Skip(Skip::NotIp),
        }
    }

    fn nested_ethernet<'m>(self, d: &'m [u8], depth: u8) -> Decoded<'m> {
        if depth >= MAX_DEPTH {
            return Decoded::Skip(Skip::TooDeep);
        }
        self.ethernet(d, depth + 1)
    }

    fn nflog<'m>(self, d: &'m [u8]) -> Decoded<'m> {
        if d.len() < 4 {
            return Decoded::Skip(Skip::Malformed("nflog header"));
        }
        let mut rest = &d[4..];
        while rest.len() >= 4 {
            let len = u16::from_le_bytes([rest[0], rest[1]]) as usize;
            let ty = u16::from_le_bytes([rest[2], rest[3]]);
            if len < 4 || len > rest.len() {
                return Decoded::Skip(Skip::Malformed("nflog tlv"));
            }
            if ty == 9 {
                return self.ip(&rest[4..len], 0);
            }
            let padded = (len + 3) & !3;
            rest = &rest[padded.min(rest.len())..];
        }
        Decoded::Skip(Skip::NotIp)
    }

    fn ip<'m>(self, d: &'m [u8], depth: u8) -> Decoded<'m> {
        if depth >= MAX_DEPTH {
            return Decoded::Skip(Skip::TooDeep);
        }
        let ip = match LaxIpSlice::from_slice(d) {
            Ok((ip, _)) => ip,
            Err(_) => {
                return match d.first().map(|b| b >> 4) {
                    Some(4 | 6) => Decoded::Skip(Skip::Malformed("ip header")),
                    _ => Decoded::Skip(Skip::NotIp),
                };
            }
        };
        let payload = ip.payload();
        let (src, dst, v6) = match &ip {
            LaxIpSlice::Ipv4(v4) => {
                let h = v4.header();
                (
                    std::net::Ipv4Addr::from(h.source()).to_ipv6_mapped().octets(),
                    std::net::Ipv4Addr::from(h.destination()).to_ipv6_mapped().octets(),
                    false,
                )
            }
            LaxIpSlice::Ipv6(v6) => (v6.header().source(), v6.header().destination(), true),
        };
        // Bytes of this IP packet beyond what was captured.
        let declared_end = match &ip {
            LaxIpSlice::Ipv4(v4) => v4.header().total_len() as usize,
            LaxIpSlice::Ipv6(v6) => 40 + v6.header().payload_length() as usize,
        };
        let ip_missing = if payload.incomplete { (declared_end.saturating_sub(d.len()) as u32).min(self.cut) } else { 0 };
        if payload.fragmented {
            let (id, offset, more) = match &ip {
                LaxIpSlice::Ipv4(v4) => {
                    let h = v4.header();
                    (h.identification() as u32, h.fragments_offset().byte_offset() as u32, h.more_fragments())
                }
                LaxIpSlice::Ipv6(v6) => match ipv6_fragment(v6) {
                    Some(f) => f,
                    None => return Decoded::Skip(Skip::Malformed("ipv6 fragment header")),
                },
            };
            if ip_missing > 0 {
                return Decoded::Skip(Skip::Malformed("fragment cut by snap length"));
            }
            return Decoded::Fragment(Fragment { src, dst, v6, id, protocol: payload.ip_number.0, offset, more, data: payload.payload });
        }
        self.transport(payload.ip_number, src, dst, v6, payload.payload, ip_missing, depth)
    }

    /// Decodes what an IP packet carries (also used for reassembled fragments).
    #[allow(clippy::too_many_arguments)]
    fn transport<'m>(self, proto: IpNumber, src: [u8; 16], dst: [u8; 16], v6: bool, d: &'m [u8], missing: u32, depth: u8) -> Decoded<'m> {
        match proto {
            IpNumber::TCP => self.tcp(src, dst, v6, d, missing),
            IpNumber::IPV4 | IpNumber::IPV6 => self.ip(d, depth + 1),
            IpNumber::GRE => self.gre(d, depth + 1),
            IpNumber::UDP => self.udp(d, depth + 1),
            _ => Decoded::Skip(Skip::NotTcp),
        }
    }

    fn tcp<'m>(self, src: [u8; 16], dst: [u8; 16], v6: bool, d: &'m [u8], missing: u32) -> Decoded<'m> {
        let Ok(h) = TcpHeaderSlice::from_slice(d) else {
            return Decoded::Skip(Skip::Malformed("tcp header"));
        };
        let hl = h.slice().len();
        let s = Endpoint { ip: src, port: h.source_port(), v6 };
        let t = Endpoint { ip: dst, port: h.destination_port(), v6 };
        let (key, dir) = FlowKey::new(s, t);
        let raw_flags = h.slice()[13];
        Decoded::Tcp(TcpSegment {
            frame: self.frame,
            ts: self.ts,
            key,
            dir,
            seq: h.sequence_number(),
            ack: h.acknowledgment_number(),
            flags: raw_flags & (flags::FIN | flags::SYN | flags::RST | flags::ACK | 0x08),
            payload: &d[hl..],
            missing,
        })
    }

    fn gre<'m>(self, d: &'m [u8], depth: u8) -> Decoded<'m> {
        if d.len() < 4 {
            return Decoded::Skip(Skip::Malformed("gre header"));
        }
        let fl = d[0];
        let version = d[1] & 7;
        let proto = u16::from_be_bytes([d[2], d[3]]);
        let mut off = 4;
        if fl & 0x80 != 0 {
            off += 4; // checksum + reserved
        }
        if fl & 0x20 != 0 {
            off += 4; // key
        }
        if fl & 0x10 != 0 {
            off += 4; // sequence number
        }
        if version == 1 {
            // Enhanced GRE (PPTP): acknowledgment number when the A bit is set.
            if d[1] & 0x80 != 0 {
                off += 4;
            }
        }
        if d.len() < off {
            return Decoded::Skip(Skip::Malformed("gre header"));
        }
        let inner = &d[off..];
        match proto {
            0x0800 | 0x86dd => self.ip(inner, depth),
            0x6558 => self.nested_ethernet(inner, depth),
            // ERSPAN type II: an 8-byte header, then Ethernet.
            0x88be => {
                if inner.len() < 8 {
                    return Decoded::Skip(Skip::Malformed("erspan header"));
                }
                self.nested_ethernet(&inner[8..], depth)
            }
            // ERSPAN type III: a 12-byte header, plus 8 more when the O bit says so.
            0x22eb => {
                if inner.len() < 12 {
                    return Decoded::Skip(Skip::Malformed("erspan header"));
                }
                let extra = if inner[11] & 1 != 0 { 8 } else { 0 };
                if inner.len() < 12 + extra {
                    return Decoded::Skip(Skip::Malformed("erspan header"));
                }
                self.nested_ethernet(&inner[12 + extra..], depth)
            }
            // PPP inside enhanced GRE.
            0x880b => self.ppp(inner, depth),
            // Aruba's GRE carries 802.11 frames.
            0x8200 | 0x8210 => self.wlan(inner, depth),
            _ => Decoded::Skip(Skip::NotIp),
        }
    }

    fn udp<'m>(self, d: &'m [u8], depth: u8) -> Decoded<'m> {
        if d.len() < 8 {
            return Decoded::Skip(Skip::Malformed("udp header"));
        }
        let sport = u16::from_be_bytes([d[0], d[1]]);
        let dport = u16::from_be_bytes([d[2], d[3]]);
        let len = (u16::from_be_bytes([d[4], d[5]]) as usize).clamp(8, d.len());
        let p = &d[8..len];
        let either = |port: u16| sport == port || dport == port;
        if either(4789) {
            // VXLAN: 8-byte header with the I flag, then Ethernet.
            if p.len() >= 8 && p[0] & 0x08 != 0 {
                return self.nested_ethernet(&p[8..], depth);
            }
            return Decoded::Skip(Skip::NotTcp);
        }
        if either(6081) {
            // Geneve: 8-byte header plus options, then the protocol named in it.
            if p.len() >= 8 {
                let opt = (p[0] & 0x3f) as usize * 4;
                let proto = u16::from_be_bytes([p[2], p[3]]);
                if p.len() >= 8 + opt {
                    let inner = &p[8 + opt..];
                    return match proto {
                        0x6558 => self.nested_ethernet(inner, depth),
                        0x0800 | 0x86dd => self.ip(inner, depth),
                        _ => Decoded::Skip(Skip::NotTcp),
                    };
                }
            }
            return Decoded::Skip(Skip::Malformed("geneve header"));
        }
        if either(3544) {
            // Teredo: optional authentication (0x0001) and origin indication (0x0000)
            // headers, then IPv6.
            let mut q = p;
            if q.len() >= 4 && q[0] == 0 && q[1] == 1 {
                let id_len = q[2] as usize;
                let auth_len = q[3] as usize;
                let skip = 4 + id_len + auth_len + 9;
                if q.len() < skip {
                    return Decoded::Skip(Skip::Malformed("teredo authentication"));
                }
                q = &q[skip..];
            }
            if q.len() >= 8 && q[0] == 0 && q[1] == 0 {
                q = &q[8..];
            }
            if q.first().map(|b| b >> 4) == Some(6) {
                return self.ip(q, depth);
            }
            return Decoded::Skip(Skip::NotTcp);
        }
        if either(TZSP_PORT) || (self.tzsp_port != 0 && either(self.tzsp_port)) {
            return self.tzsp(p, depth);
        }
        if either(5072) {
            // AYIYA: lengths of identity and signature in 4-byte units / 2^n, next header.
            if p.len() >= 8 {
                let id_len = 1usize << (p[0] >> 4);
                let sig_len = ((p[1] >> 4) as usize) * 4;
                let next = p[3];
                let hl = 8 + id_len + sig_len;
                if p.len() >= hl && (next == 4 || next == 41) {
                    return self.ip(&p[hl..], depth);
                }
            }
            return Decoded::Skip(Skip::NotTcp);
        }
        Decoded::Skip(Skip::NotTcp)
    }
}

impl Cx {
    /// TZSP: version 1, a type, the encapsulated protocol, then tagged fields up to the END
    /// tag (1); tag 0 is one byte of padding, every other tag has a length byte and that many
    /// bytes. Only the types that carry a packet (0 received, 1 for transmit) are followed,
    /// into Ethernet (protocol 1) or 802.11 (18).
    fn tzsp<'m>(self, d: &'m [u8], depth: u8) -> Decoded<'m> {
        if d.len() < 4 || d[0] != 1 {
            return Decoded::Skip(Skip::Malformed("tzsp header"));
        }
        if d[1] > 1 {
            return Decoded::Skip(Skip::NotTcp);
        }
        let proto = u16::from_be_bytes([d[2], d[3]]);
        let mut i = 4;
        loop {
            match d.get(i) {
                None => return Decoded::Skip(Skip::Malformed("tzsp tags")),
                Some(0) => i += 1,
                Some(1) => {
                    i += 1;
                    break;
                }
                Some(_) => match d.get(i + 1) {
                    Some(&len) => i += 2 + len as usize,
                    None => return Decoded::Skip(Skip::Malformed("tzsp tags")),
                },
            }
        }
        let Some(inner) = d.get(i..) else {
            return Decoded::Skip(Skip::Malformed("tzsp tags"));
        };
        match proto {
            1 => self.nested_ethernet(inner, depth),
            18 => self.wlan(inner, depth),
            _ => Decoded::Skip(Skip::NotTcp),
        }
    }
}

fn ipv6_fragment(v6: &etherparse::LaxIpv6Slice<'_>) -> Option<(u32, u32, bool)> {
    for ext in v6.extensions().clone().into_iter() {
        if let etherparse::Ipv6ExtensionSlice::Fragment(f) = ext {
            return Some((f.identification(), f.fragment_offset().byte_offset() as u32, f.more_fragments()));
        }
    }
    None
}

/// Decodes the payload of a reassembled IP datagram (with the default [`WireOptions`]).
pub fn decode_reassembled<'a>(frame: u64, ts: Ts, frag: &Fragment<'_>, payload: &'a [u8]) -> Decoded<'a> {
    decode_reassembled_with(frame, ts, frag, payload, WireOptions::default())
}

/// Decodes the payload of a reassembled IP datagram.
pub fn decode_reassembled_with<'a>(frame: u64, ts: Ts, frag: &Fragment<'_>, payload: &'a [u8], opts: WireOptions) -> Decoded<'a> {
    let cx = Cx { frame, ts, cut: 0, tzsp_port: opts.tzsp_port };
    cx.transport(IpNumber(frag.protocol), frag.src, frag.dst, frag.v6, payload, 0, 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// IPv4 + TCP packet with the given payload (checksums left zero: we never check them).
    pub(crate) fn ipv4_tcp(src: [u8; 4], dst: [u8; 4], sport: u16, dport: u16, seq: u32, fl: u8, payload: &[u8]) -> Vec<u8> {
        let total = 20 + 20 + payload.len();
        let mut v = vec![0x45, 0, (total >> 8) as u8, total as u8, 0, 1, 0x40, 0, 64, 6, 0, 0];
        v.extend(src);
        v.extend(dst);
        v.extend(sport.to_be_bytes());
        v.extend(dport.to_be_bytes());
        v.extend(seq.to_be_bytes());
        v.extend(0u32.to_be_bytes());
        v.extend([0x50, fl, 0xff, 0xff, 0, 0, 0, 0]);
        v.extend(payload);
        v
    }

    fn frame(linktype: u32, data: &[u8]) -> Frame<'_> {
        Frame { index: 1, ts: Ts(5), linktype, data, orig_len: data.len() as u32 }
    }

    fn eth(ty: u16, inner: &[u8]) -> Vec<u8> {
        let mut v = vec![0u8; 12];
        v.extend(ty.to_be_bytes());
        v.extend(inner);
        v
    }

    fn expect_tcp<'a>(d: Decoded<'a>) -> TcpSegment<'a> {
        match d {
            Decoded::Tcp(t) => t,
            other => panic!("expected tcp, got {other:?}"),
        }
    }

    #[test]
    fn ethernet_padding_is_not_payload() {
        let ip = ipv4_tcp([10, 0, 0, 1], [10, 0, 0, 2], 1234, 80, 7, flags::ACK, b"hi");
        let mut f = eth(0x0800, &ip);
        f.resize(60, 0xee); // padded to the Ethernet minimum with junk
        let t = expect_tcp(decode(&frame(linktype::ETHERNET, &f)));
        assert_eq!(t.payload, b"hi");
        assert_eq!(t.missing, 0);
        assert_eq!(t.seq, 7);
        // 10.0.0.1 sorts first: it is the key's `a` side, and this packet goes from it.
        assert_eq!(t.key.a_port, 1234);
        assert_eq!(t.dir, Dir::AtoB);
    }

    #[test]
    fn vlan_qinq_mpls_pppoe_and_cooked_headers() {
        let ip = ipv4_tcp([1, 1, 1, 1], [2, 2, 2, 2], 1, 2, 0, 0, b"x");
        let mut qinq = vec![0, 5, 0x81, 0x00, 0, 6, 0x08, 0x00];
        qinq.extend(&ip);
        assert_eq!(expect_tcp(decode(&frame(1, &eth(0x88a8, &qinq)))).payload, b"x");
        let mut mpls = vec![0, 0, 0x11, 64];
        mpls.extend(&ip);
        assert_eq!(expect_tcp(decode(&frame(1, &eth(0x8847, &mpls)))).payload, b"x");
        let mut pppoe = vec![0x11, 0, 0, 1, 0, 0, 0x00, 0x21];
        pppoe.extend(&ip);
        assert_eq!(expect_tcp(decode(&frame(1, &eth(0x8864, &pppoe)))).payload, b"x");
        let mut sll = vec![0u8; 14];
        sll.extend([0x08, 0x00]);
        sll.extend(&ip);
        assert_eq!(expect_tcp(decode(&frame(linktype::LINUX_SLL, &sll))).payload, b"x");
        let mut sll2 = vec![0x08, 0x00];
        sll2.extend([0u8; 18]);
        sll2.extend(&ip);
        assert_eq!(expect_tcp(decode(&frame(linktype::LINUX_SLL2, &sll2))).payload, b"x");
        for lt in [linktype::NULL, linktype::LOOP] {
            let mut null = if lt == linktype::NULL { 2u32.to_le_bytes().to_vec() } else { 2u32.to_be_bytes().to_vec() };
            null.extend(&ip);
            assert_eq!(expect_tcp(decode(&frame(lt, &null))).payload, b"x");
        }
        assert_eq!(expect_tcp(decode(&frame(linktype::RAW, &ip))).payload, b"x");
    }

    #[test]
    fn snap_length_cut_is_reported_as_missing() {
        let ip = ipv4_tcp([1, 1, 1, 1], [2, 2, 2, 2], 1, 2, 0, 0, &[b'a'; 100]);
        let f = eth(0x0800, &ip);
        let cut = &f[..f.len() - 60];
        let fr = Frame { index: 1, ts: Ts(0), linktype: 1, data: cut, orig_len: f.len() as u32 };
        let t = expect_tcp(decode(&fr));
        assert_eq!(t.payload.len(), 40);
        assert_eq!(t.missing, 60);
    }

    #[test]
    fn tunnels_are_followed() {
        let ip = ipv4_tcp([1, 1, 1, 1], [2, 2, 2, 2], 1, 2, 0, 0, b"in");
        // GRE carrying IPv4, inside IPv4.
        let mut gre = vec![0, 0, 0x08, 0x00];
        gre.extend(&ip);
        let mut outer = vec![0x45, 0, 0, 0, 0, 1, 0, 0, 64, 47, 0, 0, 9, 9, 9, 9, 8, 8, 8, 8];
        let tl = (20 + gre.len()) as u16;
        outer[2..4].copy_from_slice(&tl.to_be_bytes());
        outer.extend(&gre);
        assert_eq!(expect_tcp(decode(&frame(linktype::RAW, &outer))).payload, b"in");
        // VXLAN carrying Ethernet carrying IPv4.
        let inner_eth = eth(0x0800, &ip);
        let mut udp = vec![0x30, 0x39, 0x12, 0xb5, 0, 0, 0, 0];
        udp.extend([0x08, 0, 0, 0, 0, 0, 1, 0]);
        udp.extend(&inner_eth);
        let ul = udp.len() as u16;
        udp[4..6].copy_from_slice(&ul.to_be_bytes());
        let mut outer = vec![0x45, 0, 0, 0, 0, 1, 0, 0, 64, 17, 0, 0, 9, 9, 9, 9, 8, 8, 8, 8];
        let tl = (20 + udp.len()) as u16;
        outer[2..4].copy_from_slice(&tl.to_be_bytes());
        outer.extend(&udp);
        assert_eq!(expect_tcp(decode(&frame(linktype::RAW, &outer))).payload, b"in");
    }

    /// IPv4 + UDP from port 5555 to `dport` carrying `payload`.
    fn ipv4_udp(dport: u16, payload: &[u8]) -> Vec<u8> {
        let mut udp = vec![0x15, 0xb3];
        udp.extend(dport.to_be_bytes());
        udp.extend(((8 + payload.len()) as u16).to_be_bytes());
        udp.extend([0, 0]);
        udp.extend(payload);
        let mut ip = vec![0x45, 0, 0, 0, 0, 1, 0, 0, 64, 17, 0, 0, 9, 9, 9, 9, 8, 8, 8, 8];
        let tl = (20 + udp.len()) as u16;
        ip[2..4].copy_from_slice(&tl.to_be_bytes());
        ip.extend(udp);
        ip
    }

    /// A TZSP header (version 1, type received, Ethernet) with a padding byte, a tag with two
    /// bytes of data (signal), and END, then `inner`.
    fn tzsp(inner: &[u8]) -> Vec<u8> {
        let mut t = vec![1, 0, 0, 1, 0x00, 0x0a, 2, 0xd8, 0x00, 0x01];
        t.extend(inner);
        t
    }

    #[test]
    fn tzsp_is_followed_on_its_port_and_on_the_one_given() {
        let ip = ipv4_tcp([1, 1, 1, 1], [2, 2, 2, 2], 40000, 80, 9, flags::ACK, b"GET / HTTP/1.1\r\n");
        let inner = eth(0x0800, &ip);
        // What decoding makes of the TZSP datagram sent to `port`: payload, seq, server port.
        let on = |port: u16, opts: WireOptions| match decode_with(&frame(linktype::RAW, &ipv4_udp(port, &tzsp(&inner))), opts) {
            Decoded::Tcp(t) => Ok((t.payload.to_vec(), t.seq, t.key.b_port)),
            Decoded::Skip(k) => Err(k),
            Decoded::Fragment(_) => panic!("not a fragment"),
        };
        assert_eq!(on(TZSP_PORT, WireOptions::default()), Ok((b"GET / HTTP/1.1\r\n".to_vec(), 9, 80)));
        // Another port: only when it is given.
        assert_eq!(on(31337, WireOptions::default()), Err(Skip::NotTcp));
        assert_eq!(on(31337, WireOptions { tzsp_port: 31337 }), Ok((b"GET / HTTP/1.1\r\n".to_vec(), 9, 80)));
        // Inside Ethernet, as a sniffer forwards it.
        let outer = eth(0x0800, &ipv4_udp(TZSP_PORT, &tzsp(&inner)));
        assert_eq!(expect_tcp(decode(&frame(linktype::ETHERNET, &outer))).payload, b"GET / HTTP/1.1\r\n");
        // A keepalive (type 4) carries no packet; an unknown encapsulation is not followed; a
        // version other than 1 is malformed.
        let mut keepalive = tzsp(&inner);
        keepalive[1] = 4;
        assert!(matches!(decode(&frame(linktype::RAW, &ipv4_udp(TZSP_PORT, &keepalive))), Decoded::Skip(Skip::NotTcp)));
        let mut other = tzsp(&inner);
        other[3] = 0x77;
        assert!(matches!(decode(&frame(linktype::RAW, &ipv4_udp(TZSP_PORT, &other))), Decoded::Skip(Skip::NotTcp)));
        let mut v2 = tzsp(&inner);
        v2[0] = 2;
        assert!(matches!(decode(&frame(linktype::RAW, &ipv4_udp(TZSP_PORT, &v2))), Decoded::Skip(Skip::Malformed("tzsp header"))));
        // Tags that run past the end.
        let cut = ipv4_udp(TZSP_PORT, &[1, 0, 0, 1, 0x0a, 200, 1, 2]);
        assert!(matches!(decode(&frame(linktype::RAW, &cut)), Decoded::Skip(Skip::Malformed("tzsp tags"))));
        // No prefix of the TZSP payload panics.
        let full = tzsp(&inner);
        for n in 0..=full.len() {
            let _ = decode_with(&frame(linktype::RAW, &ipv4_udp(31337, &full[..n])), WireOptions { tzsp_port: 31337 });
        }
    }

    #[test]
    fn no_prefix_of_a_frame_panics() {
        let ip = ipv4_tcp([1, 1, 1, 1], [2, 2, 2, 2], 1, 2, 0, 0, b"payload");
        let f = eth(0x8100, &[&[0u8, 1, 0x08, 0x00][..], &ip].concat());
        for lt in [0, 1, 101, 108, 113, 276, 104, 239, 12345] {
            for cut in 0..=f.len() {
                let fr = Frame { index: 1, ts: Ts(0), linktype: lt, data: &f[..cut], orig_len: f.len() as u32 };
                let _ = decode(&fr);
            }
        }
    }
}
