//! apitool: HTTP API traffic from packet captures to HAR files and hashed API witnesses.
//!
//! The pipeline, one way: `capture -> wire -> flow -> proto (http1) -> ir / output`, driven by
//! [`pipeline`]: frames are read from a memory map (or a stream), decoded to TCP segments,
//! reassembled per connection in parallel shards, handed to the connection's stream handler
//! ([`proto`] detects the protocol; HTTP/1.x is parsed into exchanges, TLS and HTTP/2 are
//! recognized and counted) and written as HAR entries in the order of their start time. [`ir`] holds the witness IR and its hash;
//! [`synth`] generates realistic captures with ground truth for benchmarks and tests.

pub mod capture;
pub mod cli;
pub mod flow;
pub mod ir;
pub mod output;
pub mod pipeline;
pub mod profile;
pub mod proto;
pub mod replay;
pub mod synth;
pub mod wire;
