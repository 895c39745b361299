//! HTTP/2 (RFC 9113) over a reassembled connection: frames, HPACK, streams as exchanges.
//!
//! Layout: [`frame`] reads frame headers and payloads, [`hpack`] decodes header blocks
//! (with the Huffman code of [`huffman_table`]), [`conn`] is the stream handler
//! ([`H2Conn`]): h2c with prior knowledge, after `Upgrade: h2c`, and (fed by a TLS handler)
//! h2 over TLS, the same code with the scheme `https`.
//!
//! Each stream is one [`Exchange`](crate::proto::Exchange): its messages carry an
//! HTTP/1-shaped head built from the decoded fields (version `HTTP/2.0`, the start line
//! from the pseudo-header fields, which are kept apart in [`H2Facts`]), its body decoded as
//! HTTP/1's are (content codings, `--max-body`, deferred decoding).

pub mod conn;
pub mod frame;
pub mod grpc;
pub mod hpack;
pub mod huffman_table;

pub use conn::H2Conn;
pub use hpack::Field;

/// Caps of the HTTP/2 layer.
#[derive(Clone, Copy, Debug)]
pub struct H2Limits {
    /// Largest header list (RFC 9113 counting: name + value + 32 per field) and header block
    /// kept per message; past it the message's fields are dropped (marked).
    pub max_header_list: usize,
    /// Streams open at once per connection; past it new streams are written as far as their
    /// headers and not followed.
    pub max_streams: usize,
    /// HPACK dynamic table kept per direction; a peer that sets a larger one loses us the
    /// entries past it (blocks that use them are marked, never guessed).
    pub max_table: usize,
}

impl Default for H2Limits {
    fn default() -> Self {
        H2Limits { max_header_list: 256 << 10, max_streams: 1000, max_table: 64 << 10 }
    }
}

/// Counters of the HTTP/2 layer (exchanges, bodies and their caps are counted with HTTP/1's
/// in [`HttpStats`](crate::proto::http1::HttpStats)).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct H2Stats {
    pub connections: u64,
    pub streams: u64,
    pub header_blocks: u64,
    /// Header blocks that referenced table entries lost (a gap, a mid-stream start, a table
    /// past the cap): their message's fields are unknown.
    pub header_blocks_unknown: u64,
    pub hpack_errors: u64,
    pub header_lists_over_cap: u64,
    pub streams_over_cap: u64,
    pub frame_errors: u64,
    /// Frames too large to hold (over the header-list cap) skipped.
    pub frames_skipped: u64,
    pub resets: u64,
    pub goaways: u64,
    pub pushed: u64,
    /// Directions whose frame boundaries were lost at a gap, and found again.
    pub sides_lost: u64,
    pub resyncs: u64,
    pub midstream_sides: u64,
    pub bytes_not_parsed: u64,
    /// DATA bytes of streams not known (opened before the capture, or past the stream cap).
    pub orphan_data_bytes: u64,
    /// The largest SETTINGS_HEADER_TABLE_SIZE seen.
    pub settings_table_size: u64,
    /// Streams that were gRPC calls.
    pub grpc_calls: u64,
    /// gRPC messages cut where their side's decoded bytes reached `--max-body`.
    pub grpc_messages_truncated: u64,
}

impl std::ops::AddAssign for H2Stats {
    fn add_assign(&mut self, b: H2Stats) {
        self.connections += b.connections;
        self.streams += b.streams;
        self.header_blocks += b.header_blocks;
        self.header_blocks_unknown += b.header_blocks_unknown;
        self.hpack_errors += b.hpack_errors;
        self.header_lists_over_cap += b.header_lists_over_cap;
        self.streams_over_cap += b.streams_over_cap;
        self.frame_errors += b.frame_errors;
        self.frames_skipped += b.frames_skipped;
        self.resets += b.resets;
        self.goaways += b.goaways;
        self.pushed += b.pushed;
        self.sides_lost += b.sides_lost;
        self.resyncs += b.resyncs;
        self.midstream_sides += b.midstream_sides;
        self.bytes_not_parsed += b.bytes_not_parsed;
        self.orphan_data_bytes += b.orphan_data_bytes;
        self.settings_table_size = self.settings_table_size.max(b.settings_table_size);
        self.grpc_calls += b.grpc_calls;
        self.grpc_messages_truncated += b.grpc_messages_truncated;
    }
}

/// What an HTTP/2 exchange adds to the model: its stream and pseudo-header fields.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct H2Facts {
    pub stream: u32,
    /// The connection's scheme (`http` for h2c, `https` under TLS), for a request without
    /// `:scheme`.
    pub scheme: &'static str,
    pub request_pseudo: Vec<Field>,
    pub response_pseudo: Vec<Field>,
    /// A pushed stream: the stream whose PUSH_PROMISE announced it.
    pub pushed_by: Option<u32>,
    /// Stream 1 after `Upgrade: h2c`: its request is the HTTP/1.1 one.
    pub upgraded: bool,
    /// A gRPC call (`content-type: application/grpc*`): its messages and status.
    pub grpc: Option<Box<grpc::Grpc>>,
}

impl H2Facts {
    /// A request pseudo-header field's value.
    pub fn request(&self, name: &str) -> Option<&[u8]> {
        self.request_pseudo.iter().find(|(n, _)| n == name.as_bytes()).map(|(_, v)| v.as_slice())
    }
}

/// What went wrong on an HTTP/2 stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum H2Anomaly {
    /// A header block could not be decoded (HPACK state lost, malformed, or interrupted).
    HeadersUnknown,
    /// A header list past `--h2-max-header-list`.
    HeaderListCap,
    /// Past `--h2-max-streams` streams open at once.
    StreamCap,
    Reset {
        by_server: bool,
        code: u32,
    },
    GoAway {
        by_server: bool,
        code: u32,
        last_stream: u32,
    },
    /// A gRPC body that does not end on a whole message (cut short, or truncated).
    GrpcIncomplete {
        response: bool,
        bytes: u64,
    },
    /// gRPC messages cut where the side's decoded bytes reached `--max-body` (a compressed
    /// message decompresses to more than the body that carried it).
    GrpcTruncated {
        response: bool,
        messages: u64,
    },
}

impl H2Anomaly {
    /// The cap that caused it, if one of the general caps did (the HTTP/2 caps have their
    /// own counters).
    pub fn cap(&self) -> Option<crate::proto::http1::Cap> {
        match self {
            H2Anomaly::GrpcTruncated { .. } => Some(crate::proto::http1::Cap::MaxBody),
            _ => None,
        }
    }
}

impl std::fmt::Display for H2Anomaly {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let who = |s: &bool| if *s { "server" } else { "client" };
        match self {
            H2Anomaly::HeadersUnknown => f.write_str("HTTP/2 header block not decodable (HPACK table state lost): header fields unknown"),
            H2Anomaly::HeaderListCap => f.write_str("HTTP/2 header list over the cap (--h2-max-header-list): header fields dropped"),
            H2Anomaly::StreamCap => f.write_str("HTTP/2 stream past the open-stream cap (--h2-max-streams): not followed"),
            H2Anomaly::Reset { by_server, code } => {
                write!(f, "HTTP/2 stream reset by the {} ({})", who(by_server), frame::error_name(*code))
            }
            H2Anomaly::GoAway { by_server, code, last_stream } => {
                write!(f, "HTTP/2 GOAWAY from the {} ({}, last stream {last_stream})", who(by_server), frame::error_name(*code))
            }
            H2Anomaly::GrpcIncomplete { response, bytes } => {
                let side = if *response { "response" } else { "request" };
                write!(f, "{side}: gRPC body ends with {bytes} bytes that are not a whole message")
            }
            H2Anomaly::GrpcTruncated { response, messages } => {
                let side = if *response { "response" } else { "request" };
                let s = if *messages == 1 { "" } else { "s" };
                write!(f, "{side}: {messages} gRPC message{s} truncated at the decoded size cap (--max-body)")
            }
        }
    }
}

#[cfg(test)]
mod tests;
