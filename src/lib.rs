//! apitool: HTTP API traffic from packet captures to HAR files and hashed API witnesses.
//!
//! The pipeline, one way: `capture -> wire -> flow -> http -> ir / out`, driven by
//! [`pipeline`]: frames are read from a memory map (or a stream), decoded to TCP segments,
//! reassembled per connection in parallel shards, parsed as HTTP/1.x exchanges and written as
//! HAR entries in the order of their start time. [`ir`] holds the witness IR and its hash;
//! [`synth`] generates realistic captures with ground truth for benchmarks and tests.

pub mod capture;
pub mod cli;
pub mod flow;
pub mod http;
pub mod ir;
pub mod out;
pub mod pipeline;
pub mod profile;
pub mod proto;
pub mod replay;
pub mod synth;
pub mod wire;
