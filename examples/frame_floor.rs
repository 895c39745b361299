//! The speed floor: iterate the frames of a memory-mapped capture with pcap-parser and slice
//! each with etherparse, doing nothing else. `cargo run --release --example frame_floor -- F`
//!
//! This is what any converter must at least do; `benches/compare.sh` sets apitool against it.

use etherparse::SlicedPacket;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let path = std::env::args().nth(1).ok_or("usage: frame_floor CAPTURE.pcap")?;
    let file = std::fs::File::open(&path)?;
    // SAFETY: read-only private map of a file nobody else writes during the run.
    let map = unsafe { memmap2::Mmap::map(&file)? };
    let (mut rest, header) = pcap_parser::pcap::parse_pcap_header(&map).map_err(|e| format!("{e:?}"))?;
    let be = header.is_bigendian();
    let (mut frames, mut tcp, mut payload) = (0u64, 0u64, 0u64);
    let t = std::time::Instant::now();
    while !rest.is_empty() {
        let r = if be { pcap_parser::pcap::parse_pcap_frame_be(rest) } else { pcap_parser::pcap::parse_pcap_frame(rest) };
        let Ok((next, block)) = r else { break };
        rest = next;
        frames += 1;
        if let Ok(p) = SlicedPacket::from_ethernet(block.data)
            && let Some(etherparse::TransportSlice::Tcp(t)) = p.transport
        {
            tcp += 1;
            payload += t.payload().len() as u64;
        }
    }
    let secs = t.elapsed().as_secs_f64();
    println!("{frames} frames, {tcp} tcp, {payload} payload bytes in {secs:.3} s: {:.0} MB/s", map.len() as f64 / secs / 1e6);
    Ok(())
}
