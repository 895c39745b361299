//! apitool: HTTP API traffic from packet captures to HAR files and hashed API witnesses.
//!
//! The pipeline, one way: `capture -> wire -> flow -> http -> ir / out`.

pub mod synth;
