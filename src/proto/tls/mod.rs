//! TLS: what apitool needs to read TLS connections. So far the key material: [`keylog`] reads
//! the NSS key log format (`SSLKEYLOGFILE`) into secrets per client random. The record layer,
//! the handshake and decryption are to come; until then `proto` recognizes TLS connections
//! and counts them.

pub mod cipher;
pub mod keylog;
