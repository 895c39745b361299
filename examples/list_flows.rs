//! Walking a capture with the library's layers, without writing HAR: every TCP connection that
//! carried HTTP, with its exchanges. `cargo run --example list_flows -- capture.pcap`
//!
//! This drives the stages by hand (frames -> segments -> one shard -> exchanges); the
//! `pipeline` module does the same with parallel shards, windows and bounded memory.

use std::collections::BTreeMap;

use apitool::capture::{FrameReader, Next};
use apitool::flow::{FlowLimits, Shard};
use apitool::proto::http1::{Exchange, HttpLimits};
use apitool::wire::{self, Decoded};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let path = std::env::args().nth(1).ok_or("usage: list_flows CAPTURE")?;
    let data = std::fs::read(&path)?;
    let (mut reader, mut pos) = FrameReader::open(&data)?;
    let mut shard = Shard::new(FlowLimits::default(), HttpLimits::default(), Vec::<Exchange>::new());
    let mut last_ts = Default::default();
    while pos < data.len() {
        match reader.next(&data[pos..]) {
            Next::Frame(frame, used) => {
                pos += used;
                last_ts = frame.ts;
                if let Decoded::Tcp(seg) = wire::decode(&frame) {
                    shard.segment(&seg);
                }
            }
            Next::Skip(used) => pos += used,
            Next::NeedMore(_) | Next::Corrupt(_) => break,
        }
    }
    shard.finish(last_ts);
    let mut flows: BTreeMap<u64, Vec<&Exchange>> = BTreeMap::new();
    for ex in &shard.sink {
        flows.entry(ex.conn.id).or_default().push(ex);
    }
    for (id, exchanges) in flows {
        let c = &exchanges[0].conn;
        println!("connection {id}: {} -> {}", c.client, c.server);
        for ex in exchanges {
            let (m, t) = ex.request.as_ref().map_or((String::from("-"), String::from("-")), |r| {
                (String::from_utf8_lossy(r.head.method()).into_owned(), String::from_utf8_lossy(r.head.target()).into_owned())
            });
            let status = ex.response.as_ref().map_or(0, |r| r.head.status());
            let size = ex.response.as_ref().map_or(0, |r| r.body.len());
            println!(
                "  {m} {t} -> {status} ({size} bytes){}",
                if ex.anomalies.is_empty() { String::new() } else { format!(" {:?}", ex.anomalies) }
            );
        }
    }
    Ok(())
}
