//! Opening captures and iterating their frames.
//!
//! Contract: a [`FrameReader`] is created from the first bytes of a capture (legacy pcap in its
//! four variants, or pcapng) and then walks a byte slice record by record, handing out
//! [`Frame`]s that borrow the slice. It never allocates per frame and never panics on bad
//! input: a record cut short reports [`Next::NeedMore`] (the caller decides whether more bytes
//! can come, or whether the capture ends there: a truncated capture), a record that cannot be a
//! record reports [`Next::Corrupt`] with its byte offset.
//!
//! Inputs are memory-mapped (see [`Input`]) or read from standard input as a stream.

use std::fs::File;
use std::io::Read;
use std::path::Path;

use pcap_parser::pcapng::Block;
use pcap_parser::{PcapError, pcapng};

/// A point in capture time: nanoseconds since the Unix epoch.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Ts(pub i64);

impl Ts {
    /// Microseconds between `self` and a later `other`, never negative.
    pub fn micros_until(self, other: Ts) -> i64 {
        other.0.saturating_sub(self.0).max(0) / 1_000
    }
}

/// The latest capture time a reader hands out (2^62 ns, in the year 2116). Capture times are
/// kept in `[0, MAX_TS]`, so that the difference of any two never overflows.
pub const MAX_TS: i64 = 1 << 62;

/// Link types (LINKTYPE_* values, as found in pcap headers and pcapng IDBs).
pub mod linktype {
    pub const NULL: u32 = 0;
    pub const ETHERNET: u32 = 1;
    /// DLT_RAW on some BSDs.
    pub const RAW_BSD12: u32 = 12;
    pub const RAW_BSD14: u32 = 14;
    pub const RAW: u32 = 101;
    pub const LOOP: u32 = 108;
    pub const LINUX_SLL: u32 = 113;
    pub const IPV4: u32 = 228;
    pub const IPV6: u32 = 229;
    pub const LINUX_SLL2: u32 = 276;
}

/// One captured frame, borrowing the capture's bytes.
#[derive(Clone, Copy, Debug)]
pub struct Frame<'m> {
    /// 1-based frame number, as Wireshark counts them.
    pub index: u64,
    pub ts: Ts,
    pub linktype: u32,
    /// The captured bytes (at most the snap length).
    pub data: &'m [u8],
    /// The frame's length on the wire; larger than `data.len()` when the snap length cut it.
    pub orig_len: u32,
}

/// What the reader found at the current position.
#[derive(Debug)]
pub enum Next<'m> {
    /// A packet, and how many bytes its record took.
    Frame(Frame<'m>, usize),
    /// A record that holds no packet (pcapng interface, statistics, name blocks, ...).
    Skip(usize),
    /// The record is cut short: at least this many more bytes are needed.
    NeedMore(usize),
    /// The bytes here cannot be a record.
    Corrupt(String),
}

/// The capture format, as recognised from its first bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Pcap { big_endian: bool, nanos: bool },
    PcapNg,
}

impl std::fmt::Display for Format {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Format::Pcap { big_endian, nanos } => {
                write!(f, "pcap ({}, {})", if *big_endian { "big-endian" } else { "little-endian" }, if *nanos { "ns" } else { "µs" })
            }
            Format::PcapNg => f.write_str("pcapng"),
        }
    }
}

/// Why a capture cannot be read at all.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error("empty file")]
    Empty,
    #[error("not a pcap or pcapng capture (magic {0:02x?})")]
    UnknownMagic(Vec<u8>),
    #[error("pcap header cut short ({0} bytes)")]
    ShortHeader(usize),
    #[error("unsupported pcap version {0}.{1}")]
    Version(u16, u16),
    #[error("bad pcapng section header: {0}")]
    BadSection(String),
}

#[derive(Clone, Copy, Debug)]
struct Iface {
    linktype: u32,
    /// Timestamp units per second.
    units: u64,
    /// Seconds added to every timestamp (`if_tsoffset`).
    offset_s: i64,
    snaplen: u32,
}

/// Walks the records of one capture.
#[derive(Debug)]
pub struct FrameReader {
    format: Format,
    /// pcapng: byte order of the current section.
    big_endian: bool,
    linktype: u32,
    ifaces: Vec<Iface>,
    frames: u64,
}

/// Records larger than this are taken for corruption, whatever the header's snap length says.
pub const MAX_RECORD: usize = 64 << 20;

impl FrameReader {
    /// Recognises the capture from its first bytes. Returns the reader and how many bytes the
    /// file header took (the pcapng section header is read as an ordinary record).
    pub fn open(head: &[u8]) -> Result<(FrameReader, usize), OpenError> {
        if head.is_empty() {
            return Err(OpenError::Empty);
        }
        if head.len() < 4 {
            return Err(OpenError::ShortHeader(head.len()));
        }
        let magic = [head[0], head[1], head[2], head[3]];
        let ng_magic = [0x0a, 0x0d, 0x0d, 0x0a];
        if magic == ng_magic {
            if head.len() < 12 {
                return Err(OpenError::ShortHeader(head.len()));
            }
            let bom = [head[8], head[9], head[10], head[11]];
            let big_endian = match bom {
                [0x4d, 0x3c, 0x2b, 0x1a] => false,
                [0x1a, 0x2b, 0x3c, 0x4d] => true,
                _ => return Err(OpenError::BadSection("unknown byte-order magic".into())),
            };
            let reader = FrameReader { format: Format::PcapNg, big_endian, linktype: 0, ifaces: Vec::new(), frames: 0 };
            return Ok((reader, 0));
        }
        let (big_endian, nanos) = match magic {
            [0xd4, 0xc3, 0xb2, 0xa1] => (false, false),
            [0x4d, 0x3c, 0xb2, 0xa1] => (false, true),
            [0xa1, 0xb2, 0xc3, 0xd4] => (true, false),
            [0xa1, 0xb2, 0x3c, 0x4d] => (true, true),
            _ => return Err(OpenError::UnknownMagic(magic.to_vec())),
        };
        if head.len() < 24 {
            return Err(OpenError::ShortHeader(head.len()));
        }
        let u16_at = |o: usize| {
            let b = [head[o], head[o + 1]];
            if big_endian { u16::from_be_bytes(b) } else { u16::from_le_bytes(b) }
        };
        let u32_at = |o: usize| {
            let b = [head[o], head[o + 1], head[o + 2], head[o + 3]];
            if big_endian { u32::from_be_bytes(b) } else { u32::from_le_bytes(b) }
        };
        let (major, minor) = (u16_at(4), u16_at(6));
        if major != 2 {
            return Err(OpenError::Version(major, minor));
        }
        // The upper bits of the link-type field carry FCS information (libpcap); the link type
        // itself is the low 16 bits.
        let network = u32_at(20);
        let reader = FrameReader {
            format: Format::Pcap { big_endian, nanos },
            big_endian,
            linktype: network & 0xffff,
            ifaces: Vec::new(),
            frames: 0,
        };
        Ok((reader, 24))
    }

    pub fn format(&self) -> Format {
        self.format
    }

    /// Link types seen so far (one per pcapng interface).
    pub fn linktypes(&self) -> Vec<u32> {
        match self.format {
            Format::Pcap { .. } => vec![self.linktype],
            Format::PcapNg => self.ifaces.iter().map(|i| i.linktype).collect(),
        }
    }

    /// Frames handed out so far.
    pub fn frames(&self) -> u64 {
        self.frames
    }

    /// Reads the record at the start of `buf`.
    pub fn next<'m>(&mut self, buf: &'m [u8]) -> Next<'m> {
        match self.format {
            Format::Pcap { nanos, .. } => self.next_pcap(buf, nanos),
            Format::PcapNg => self.next_pcapng(buf),
        }
    }

    fn next_pcap<'m>(&mut self, buf: &'m [u8], nanos: bool) -> Next<'m> {
        if buf.len() < 16 {
            return Next::NeedMore(16 - buf.len());
        }
        let caplen = {
            let b = [buf[8], buf[9], buf[10], buf[11]];
            if self.big_endian { u32::from_be_bytes(b) } else { u32::from_le_bytes(b) }
        } as usize;
        if caplen > MAX_RECORD {
            return Next::Corrupt(format!("record length {caplen} is implausible"));
        }
        let parsed = if self.big_endian { pcap_parser::pcap::parse_pcap_frame_be(buf) } else { pcap_parser::pcap::parse_pcap_frame(buf) };
        match parsed {
            Ok((rest, rec)) => {
                let frac = rec.ts_usec as i64;
                let ns = if nanos { frac } else { frac * 1_000 };
                self.frames += 1;
                let frame = Frame {
                    index: self.frames,
                    ts: Ts(rec.ts_sec as i64 * 1_000_000_000 + ns),
                    linktype: self.linktype,
                    data: rec.data,
                    orig_len: rec.origlen.max(rec.caplen),
                };
                Next::Frame(frame, buf.len() - rest.len())
            }
            Err(nom::Err::Incomplete(_)) => Next::NeedMore(16 + caplen - buf.len()),
            Err(e) => Next::Corrupt(format!("bad record: {e:?}")),
        }
    }

    fn next_pcapng<'m>(&mut self, buf: &'m [u8]) -> Next<'m> {
        if buf.len() < 12 {
            return Next::NeedMore(12 - buf.len());
        }
        let block_type = [buf[0], buf[1], buf[2], buf[3]];
        if block_type == [0x0a, 0x0d, 0x0d, 0x0a] {
            // A new section may change the byte order and always resets the interfaces.
            match [buf[8], buf[9], buf[10], buf[11]] {
                [0x4d, 0x3c, 0x2b, 0x1a] => self.big_endian = false,
                [0x1a, 0x2b, 0x3c, 0x4d] => self.big_endian = true,
                _ => return Next::Corrupt("section header with unknown byte-order magic".into()),
            }
            self.ifaces.clear();
        }
        let len = {
            let b = [buf[4], buf[5], buf[6], buf[7]];
            if self.big_endian { u32::from_be_bytes(b) } else { u32::from_le_bytes(b) }
        } as usize;
        if len < 12 || !len.is_multiple_of(4) || len > MAX_RECORD {
            return Next::Corrupt(format!("block length {len} is invalid"));
        }
        if buf.len() < len {
            return Next::NeedMore(len - buf.len());
        }
        let block = &buf[..len];
        let parsed = if self.big_endian { pcapng::parse_block_be(block) } else { pcapng::parse_block_le(block) };
        let block = match parsed {
            Ok((_, b)) => b,
            Err(nom::Err::Incomplete(_)) => {
                return Next::Corrupt("block content overruns its length".into());
            }
            Err(nom::Err::Error(e) | nom::Err::Failure(e)) => {
                return Next::Corrupt(format!("bad block: {}", describe_pcap_error(&e)));
            }
        };
        match block {
            Block::SectionHeader(shb) => {
                if shb.major_version != 1 {
                    return Next::Corrupt(format!("unsupported pcapng version {}.{}", shb.major_version, shb.minor_version));
                }
                Next::Skip(len)
            }
            Block::InterfaceDescription(idb) => {
                let units = idb.ts_resolution().unwrap_or(1_000_000);
                self.ifaces.push(Iface {
                    linktype: (idb.linktype.0 as u32) & 0xffff,
                    units,
                    offset_s: idb.if_tsoffset,
                    snaplen: idb.snaplen,
                });
                Next::Skip(len)
            }
            Block::EnhancedPacket(epb) => {
                let Some(iface) = self.ifaces.get(epb.if_id as usize).copied() else {
                    return Next::Corrupt(format!("packet names interface {} but only {} are described", epb.if_id, self.ifaces.len()));
                };
                let caplen = (epb.caplen as usize).min(epb.data.len());
                let raw = ((epb.ts_high as u64) << 32) | epb.ts_low as u64;
                self.frames += 1;
                let frame = Frame {
                    index: self.frames,
                    ts: ts_from_units(raw, iface.units, iface.offset_s),
                    linktype: iface.linktype,
                    data: &epb.data[..caplen],
                    orig_len: epb.origlen.max(caplen as u32),
                };
                Next::Frame(frame, len)
            }
            Block::SimplePacket(spb) => {
                let Some(iface) = self.ifaces.first().copied() else {
                    return Next::Corrupt("simple packet before any interface".into());
                };
                let mut caplen = (spb.origlen as usize).min(spb.data.len());
                if iface.snaplen > 0 {
                    caplen = caplen.min(iface.snaplen as usize);
                }
                self.frames += 1;
                let frame = Frame {
                    index: self.frames,
                    // Simple packet blocks carry no timestamp.
                    ts: Ts(0),
                    linktype: iface.linktype,
                    data: &spb.data[..caplen],
                    orig_len: spb.origlen.max(caplen as u32),
                };
                Next::Frame(frame, len)
            }
            _ => Next::Skip(len),
        }
    }
}

/// A pcapng timestamp in nanoseconds, clamped to `[0, MAX_TS]` (a hostile or broken
/// `if_tsoffset`, resolution or timestamp must not make times that overflow when subtracted).
fn ts_from_units(raw: u64, units: u64, offset_s: i64) -> Ts {
    let units = units.max(1);
    let secs = i64::try_from(raw / units).unwrap_or(i64::MAX);
    let frac = raw % units;
    let ns = (frac as u128 * 1_000_000_000u128 / units as u128) as i64;
    Ts(secs.saturating_add(offset_s).saturating_mul(1_000_000_000).saturating_add(ns).clamp(0, MAX_TS))
}

fn describe_pcap_error(e: &PcapError<&[u8]>) -> String {
    match e {
        PcapError::NomError(_, kind) => format!("{kind:?}"),
        PcapError::OwnedNomError(_, kind) => format!("{kind:?}"),
        other => format!("{other:?}"),
    }
}

/// The bytes of one input: a read-only memory map of a file, or standard input read as a
/// stream.
pub enum Input {
    Mapped {
        map: memmap2::Mmap,
    },
    /// Standard input, or a file that cannot be mapped (a pipe, a device): read in chunks.
    Stream(Box<dyn Read + Send>),
}

impl Input {
    /// Opens a path; `-` is standard input.
    pub fn open(path: &Path) -> std::io::Result<Input> {
        if path.as_os_str() == "-" {
            return Ok(Input::Stream(Box::new(std::io::stdin())));
        }
        let file = File::open(path)?;
        let meta = file.metadata()?;
        if !meta.is_file() {
            return Ok(Input::Stream(Box::new(file)));
        }
        if meta.len() == 0 {
            // An empty file cannot be mapped; let the reader report it as empty.
            return Ok(Input::Stream(Box::new(std::io::empty())));
        }
        // SAFETY: the map is read-only and private to this process. Another process
        // truncating or rewriting the file while we read it is outside what we can guard
        // against (as for every mmap-based reader); it would end the run with SIGBUS, not
        // corrupt memory we own.
        let map = unsafe { memmap2::MmapOptions::new().map(&file)? };
        Ok(Input::Mapped { map })
    }

    /// Total size when known.
    pub fn size(&self) -> Option<u64> {
        match self {
            Input::Mapped { map } => Some(map.len() as u64),
            Input::Stream(_) => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A legacy pcap header with an Ethernet link type and a 65535-byte snap length.
    fn pcap_header(big_endian: bool, nanos: bool) -> Vec<u8> {
        use crate::synth::pcap::{Endian, LinkType, PcapOptions, TsRes, file_header};
        let endian = if big_endian { Endian::Big } else { Endian::Little };
        let ts = if nanos { TsRes::Nano } else { TsRes::Micro };
        file_header(PcapOptions { endian, ts, link: LinkType::Ethernet, snaplen: 65535 })
    }

    fn pcap_record(big_endian: bool, sec: u32, frac: u32, data: &[u8], orig: u32) -> Vec<u8> {
        let mut v = Vec::new();
        for x in [sec, frac, data.len() as u32, orig] {
            v.extend_from_slice(&if big_endian { x.to_be_bytes() } else { x.to_le_bytes() });
        }
        v.extend_from_slice(data);
        v
    }

    #[test]
    fn reads_all_four_pcap_variants() {
        for big_endian in [false, true] {
            for nanos in [false, true] {
                let mut file = pcap_header(big_endian, nanos);
                file.extend(pcap_record(big_endian, 10, 500, b"abcd", 60));
                file.extend(pcap_record(big_endian, 11, 7, b"xy", 2));
                let (mut r, hl) = FrameReader::open(&file).unwrap();
                assert_eq!(hl, 24);
                assert_eq!(r.format(), Format::Pcap { big_endian, nanos });
                let mut pos = hl;
                let Next::Frame(f, n) = r.next(&file[pos..]) else { panic!() };
                assert_eq!(f.index, 1);
                assert_eq!(f.data, b"abcd");
                assert_eq!(f.orig_len, 60);
                assert_eq!(f.linktype, 1);
                let unit = if nanos { 1 } else { 1000 };
                assert_eq!(f.ts, Ts(10_000_000_000 + 500 * unit));
                pos += n;
                let Next::Frame(f, n) = r.next(&file[pos..]) else { panic!() };
                assert_eq!(f.index, 2);
                assert_eq!(f.data, b"xy");
                pos += n;
                assert!(matches!(r.next(&file[pos..]), Next::NeedMore(16)));
            }
        }
    }

    #[test]
    fn every_cut_of_a_record_needs_more() {
        let mut file = pcap_header(false, false);
        file.extend(pcap_record(false, 1, 2, b"0123456789", 10));
        let (mut r, hl) = FrameReader::open(&file).unwrap();
        for cut in hl..file.len() {
            match r.next(&file[hl..cut]) {
                Next::NeedMore(n) => assert!(n > 0 && cut + n <= file.len(), "cut {cut}"),
                other => panic!("cut {cut}: {other:?}"),
            }
        }
    }

    #[test]
    fn rejects_garbage_and_implausible_records() {
        assert!(matches!(FrameReader::open(b""), Err(OpenError::Empty)));
        assert!(matches!(FrameReader::open(b"GET / HTTP/1.1\r\n\r\n"), Err(OpenError::UnknownMagic(_))));
        assert!(matches!(FrameReader::open(&[0xd4, 0xc3, 0xb2, 0xa1, 2]), Err(OpenError::ShortHeader(5))));
        let mut h = pcap_header(false, false);
        h[4] = 1;
        assert!(matches!(FrameReader::open(&h), Err(OpenError::Version(1, 4))));
        let mut file = pcap_header(false, false);
        file.extend([0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0x7f, 0, 0, 0, 0]);
        let (mut r, hl) = FrameReader::open(&file).unwrap();
        assert!(matches!(r.next(&file[hl..]), Next::Corrupt(_)));
    }

    #[test]
    fn pcapng_times_are_clamped_to_a_range_that_cannot_overflow() {
        assert_eq!(ts_from_units(1_500_000, 1_000_000, 0), Ts(1_500_000_000));
        assert_eq!(ts_from_units(u64::MAX, 1, 0), Ts(MAX_TS));
        assert_eq!(ts_from_units(u64::MAX, 1, i64::MAX), Ts(MAX_TS));
        assert_eq!(ts_from_units(0, 1, i64::MIN), Ts(0));
        assert_eq!(ts_from_units(5, 1_000_000_000, -10), Ts(0));
        assert_eq!(ts_from_units(u64::MAX, 0, 0), Ts(MAX_TS));
        // Differences of any two times handed out fit.
        assert_eq!(Ts(MAX_TS).micros_until(Ts(0)), 0);
        assert_eq!(Ts(0).micros_until(Ts(MAX_TS)), MAX_TS / 1_000);
        assert_eq!(Ts(i64::MIN).micros_until(Ts(i64::MAX)), i64::MAX / 1_000);
    }

    fn ng_block(kind: u32, body: &[u8]) -> Vec<u8> {
        let mut body = body.to_vec();
        while !body.len().is_multiple_of(4) {
            body.push(0);
        }
        let len = 12 + body.len() as u32;
        let mut v = Vec::new();
        v.extend(kind.to_le_bytes());
        v.extend(len.to_le_bytes());
        v.extend(body);
        v.extend(len.to_le_bytes());
        v
    }

    #[test]
    fn pcapng_interfaces_have_their_own_linktype_and_resolution() {
        let mut shb = Vec::new();
        shb.extend(0x1a2b_3c4du32.to_le_bytes());
        shb.extend(1u16.to_le_bytes());
        shb.extend(0u16.to_le_bytes());
        shb.extend((-1i64).to_le_bytes());
        let mut file = ng_block(0x0a0d_0d0a, &shb);
        // Interface 0: Ethernet, default resolution (µs).
        let mut idb0 = Vec::new();
        idb0.extend(1u16.to_le_bytes());
        idb0.extend(0u16.to_le_bytes());
        idb0.extend(0u32.to_le_bytes());
        file.extend(ng_block(1, &idb0));
        // Interface 1: SLL2, if_tsresol = 9 (ns).
        let mut idb1 = Vec::new();
        idb1.extend(276u16.to_le_bytes());
        idb1.extend(0u16.to_le_bytes());
        idb1.extend(0u32.to_le_bytes());
        idb1.extend(9u16.to_le_bytes()); // if_tsresol
        idb1.extend(1u16.to_le_bytes());
        idb1.extend([9, 0, 0, 0]);
        idb1.extend([0, 0, 0, 0]); // opt_endofopt
        file.extend(ng_block(1, &idb1));
        let epb = |iface: u32, ts: u64, data: &[u8]| {
            let mut b = Vec::new();
            b.extend(iface.to_le_bytes());
            b.extend(((ts >> 32) as u32).to_le_bytes());
            b.extend((ts as u32).to_le_bytes());
            b.extend((data.len() as u32).to_le_bytes());
            b.extend((data.len() as u32 + 5).to_le_bytes());
            b.extend(data);
            ng_block(6, &b)
        };
        file.extend(epb(0, 1_500_000, b"hello"));
        file.extend(epb(1, 2_000_000_123, b"abc"));
        let (mut r, hl) = FrameReader::open(&file).unwrap();
        assert_eq!(hl, 0);
        let mut pos = 0;
        let mut frames = Vec::new();
        while pos < file.len() {
            match r.next(&file[pos..]) {
                Next::Frame(f, n) => {
                    frames.push((f.linktype, f.ts, f.data.to_vec(), f.orig_len));
                    pos += n
                }
                Next::Skip(n) => pos += n,
                other => panic!("{other:?}"),
            }
        }
        assert_eq!(frames, vec![(1, Ts(1_500_000_000), b"hello".to_vec(), 10), (276, Ts(2_000_000_123), b"abc".to_vec(), 8),]);
        assert_eq!(r.linktypes(), vec![1, 276]);
        // A packet naming an undescribed interface is corruption, not a panic.
        let bad = epb(7, 0, b"x");
        assert!(matches!(r.next(&bad), Next::Corrupt(_)));
    }
}
