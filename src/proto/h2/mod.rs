//! HTTP/2 (RFC 9113) over a reassembled connection: frames, HPACK, streams as exchanges.
//!
//! Layout: [`frame`] reads frame headers and payloads, [`hpack`] decodes header blocks
//! (with the Huffman code of [`huffman_table`]).

pub mod frame;
pub mod hpack;
pub mod huffman_table;
