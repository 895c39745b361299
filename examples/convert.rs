//! Converting a capture to HAR with the library: `cargo run --example convert -- IN.pcap OUT.har`.

use apitool::capture::Input;
use apitool::pipeline::{Config, Converter};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let (Some(input), Some(output)) = (args.next(), args.next()) else {
        eprintln!("usage: convert IN.pcap OUT.har");
        std::process::exit(2);
    };
    let conv = Converter::new(Config::default());
    let out = std::io::BufWriter::new(std::fs::File::create(&output)?);
    let (summary, _) = conv.convert(Input::open(input.as_ref())?, &input, out, &mut |_| {})?;
    println!("{} frames, {} connections, {} exchanges written to {output}", summary.frames, summary.tcp.flows, summary.entries);
    Ok(())
}
