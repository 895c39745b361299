//! TLS: decrypting TLS connections with the secrets of key logs, and handing their plaintext
//! to the handler it calls for (HTTP/1 today, whatever protocol detection finds).
//!
//! One file per concern: [`keylog`] reads the NSS key log format (`SSLKEYLOGFILE`) into
//! secrets per client random; [`record`] is the record layer over one side's reassembled
//! stream; [`handshake`] joins handshake messages and reads the hellos and
//! EncryptedExtensions; [`cipher`] holds the suites, the key derivations (TLS 1.2 PRF, TLS 1.3
//! HKDF-Expand-Label and KeyUpdate) and record decryption; [`conn`] is the connection handler
//! that ties them together ([`conn::TlsConn`], `proto::Handler::Tls`).
//!
//! Secrets never leave this module: nothing here formats one, the facts an exchange carries
//! ([`TlsFacts`]) are the version, the suite's name, SNI and ALPN, and what is reported about a
//! connection that could not be decrypted ([`Undecrypted`]) is its SNI and client random (which
//! is public: it is sent in the clear).

pub mod cipher;
pub mod conn;
pub mod dsb;
pub mod handshake;
pub mod keylog;
pub mod record;

use std::sync::Arc;

use keylog::KeyLog;

/// What an exchange carried over TLS says about its connection (`_apitool.tls` in the HAR).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TlsFacts {
    /// "TLS 1.2" or "TLS 1.3".
    pub version: &'static str,
    /// The IANA name of the suite.
    pub cipher_suite: &'static str,
    pub sni: Option<Box<str>>,
    /// The protocol ALPN chose, when it did.
    pub alpn: Option<Box<str>>,
}

/// What TLS decryption works with: the key log, shared read-only by every shard.
#[derive(Clone, Default)]
pub struct TlsLimits {
    pub keylog: Option<Arc<KeyLog>>,
}

impl std::fmt::Debug for TlsLimits {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsLimits").field("keylog", &self.keylog.as_ref().map(|k| k.len())).finish()
    }
}

/// Why a TLS connection (or one side of it) was not decrypted.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Reason {
    /// The key log has no secrets for the client random.
    NoKey,
    /// A version apitool does not decrypt (SSL 3.0, TLS 1.0, TLS 1.1).
    UnsupportedVersion,
    /// A cipher suite apitool does not decrypt.
    UnsupportedSuite,
    /// The ClientHello or ServerHello was not captured (the capture starts mid-connection, or
    /// bytes of the handshake are missing).
    HandshakeNotCaptured,
    /// A record did not verify (wrong key, corrupt data), or the records lost their place
    /// after missing bytes and could not be found again.
    DecryptionFailed,
}

impl Reason {
    pub fn describe(self) -> &'static str {
        match self {
            Reason::NoKey => "no key for the client random",
            Reason::UnsupportedVersion => "unsupported TLS version",
            Reason::UnsupportedSuite => "unsupported cipher suite",
            Reason::HandshakeNotCaptured => "handshake not captured",
            Reason::DecryptionFailed => "decryption failed",
        }
    }
}

/// A TLS connection that was not (wholly) decrypted, for the user to find its key.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Undecrypted {
    /// The connection's id (its first frame), as `_apitool.flow` says.
    pub flow: u64,
    pub client: String,
    pub server: String,
    pub sni: Option<String>,
    /// 64 hex digits, as key logs write it (public: the ClientHello sends it in the clear).
    pub client_random: Option<String>,
    pub reason: Reason,
}

/// Most [`Undecrypted`] connections listed (the counters count them all).
pub const MAX_UNDECRYPTED_LISTED: usize = 1000;

/// Counters of TLS decryption.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct TlsStats {
    /// Connections seen to carry TLS, read with a key log (without one they are counted in
    /// `proto::Detected::tls_connections`).
    pub connections: u64,
    /// Connections of which application data was decrypted.
    pub decrypted_connections: u64,
    /// Connections not decrypted, by reason.
    pub no_key: u64,
    pub unsupported_version: u64,
    pub unsupported_suite: u64,
    pub handshake_not_captured: u64,
    /// Connections whose decryption failed part way (a side stops there).
    pub decryption_failed: u64,
    pub records_decrypted: u64,
    /// Application data bytes handed on.
    pub plaintext_bytes: u64,
    /// TLS 1.3 early data records skipped (their key is not in key logs apitool reads).
    pub early_data_records_skipped: u64,
    pub key_updates: u64,
    /// Sides that found their records again after missing bytes (verified by the record's tag).
    pub resyncs: u64,
    /// Sides that lost their records after missing bytes and did not find them again.
    pub lost_sync: u64,
    /// Sides that stopped because more bytes waited for keys than the cap holds.
    pub held_over_cap: u64,
}

impl TlsStats {
    fn count(&mut self, r: Reason) {
        match r {
            Reason::NoKey => self.no_key += 1,
            Reason::UnsupportedVersion => self.unsupported_version += 1,
            Reason::UnsupportedSuite => self.unsupported_suite += 1,
            Reason::HandshakeNotCaptured => self.handshake_not_captured += 1,
            Reason::DecryptionFailed => self.decryption_failed += 1,
        }
    }
}

impl std::ops::AddAssign for TlsStats {
    fn add_assign(&mut self, b: TlsStats) {
        self.connections += b.connections;
        self.decrypted_connections += b.decrypted_connections;
        self.no_key += b.no_key;
        self.unsupported_version += b.unsupported_version;
        self.unsupported_suite += b.unsupported_suite;
        self.handshake_not_captured += b.handshake_not_captured;
        self.decryption_failed += b.decryption_failed;
        self.records_decrypted += b.records_decrypted;
        self.plaintext_bytes += b.plaintext_bytes;
        self.early_data_records_skipped += b.early_data_records_skipped;
        self.key_updates += b.key_updates;
        self.resyncs += b.resyncs;
        self.lost_sync += b.lost_sync;
        self.held_over_cap += b.held_over_cap;
    }
}

/// Hex of bytes (client randoms, which are public).
pub fn hex(b: &[u8]) -> String {
    let mut s = String::with_capacity(b.len() * 2);
    for x in b {
        s.push(char::from_digit((x >> 4) as u32, 16).unwrap_or('0'));
        s.push(char::from_digit((x & 15) as u32, 16).unwrap_or('0'));
    }
    s
}
