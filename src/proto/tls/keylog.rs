//! TLS key logs in the NSS key log format, as written by curl, browsers, Python, Go and OpenSSL
//! when `SSLKEYLOGFILE` is set.
//!
//! Contract: [`KeyLog::add`] reads a key log (or any number of them, one call each, in order)
//! and keeps, per client random, the secrets of the labels apitool uses: `CLIENT_RANDOM` (the
//! TLS 1.2 master secret), `CLIENT_HANDSHAKE_TRAFFIC_SECRET`, `SERVER_HANDSHAKE_TRAFFIC_SECRET`,
//! `CLIENT_TRAFFIC_SECRET_0` and `SERVER_TRAFFIC_SECRET_0` (TLS 1.3). A line is
//! `LABEL <client random: 64 hex digits> <secret: hex>`, fields separated by spaces or tabs, a
//! CR before the LF tolerated. Blank lines and `#` comments are skipped; so are lines with
//! other labels (`CLIENT_EARLY_TRAFFIC_SECRET`, `EXPORTER_SECRET`, `RSA`...), counted in
//! [`KeyLogStats::other_labels`]. When a label comes twice for one client random, the later line
//! wins. A line that cannot be read is skipped and reported as a [`Problem`] with its line
//! number and what is wrong with it, never with its content: key logs hold secrets, and neither
//! a problem nor the `Debug` form of anything here shows a byte of one. Nothing panics, and the
//! secrets kept are bounded by [`KeyLogLimits::max_client_randoms`].

use std::fmt;

use rustc_hash::FxHashMap;

/// The largest secret a key log line carries: the TLS 1.2 master secret and SHA-384 TLS 1.3
/// secrets are 48 bytes.
pub const MAX_SECRET: usize = 48;

/// A secret from a key log. Its `Debug` form shows its length only, and its bytes are
/// overwritten when it is dropped.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret {
    bytes: [u8; MAX_SECRET],
    len: u8,
}

impl Secret {
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes[..self.len as usize]
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Secret({} bytes)", self.len)
    }
}

impl Drop for Secret {
    fn drop(&mut self) {
        self.bytes.fill(0);
        // Keep the writes: the bytes are not read again, and the optimizer would drop them.
        std::hint::black_box(&mut self.bytes);
    }
}

/// The key log labels apitool uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Label {
    /// `CLIENT_RANDOM`: the TLS 1.2 (and earlier) master secret.
    ClientRandom,
    ClientHandshakeTrafficSecret,
    ServerHandshakeTrafficSecret,
    ClientTrafficSecret0,
    ServerTrafficSecret0,
}

impl Label {
    pub const ALL: [Label; 5] = [
        Label::ClientRandom,
        Label::ClientHandshakeTrafficSecret,
        Label::ServerHandshakeTrafficSecret,
        Label::ClientTrafficSecret0,
        Label::ServerTrafficSecret0,
    ];

    /// As written in key logs.
    pub fn name(self) -> &'static str {
        match self {
            Label::ClientRandom => "CLIENT_RANDOM",
            Label::ClientHandshakeTrafficSecret => "CLIENT_HANDSHAKE_TRAFFIC_SECRET",
            Label::ServerHandshakeTrafficSecret => "SERVER_HANDSHAKE_TRAFFIC_SECRET",
            Label::ClientTrafficSecret0 => "CLIENT_TRAFFIC_SECRET_0",
            Label::ServerTrafficSecret0 => "SERVER_TRAFFIC_SECRET_0",
        }
    }

    fn from_name(b: &[u8]) -> Option<Label> {
        Label::ALL.into_iter().find(|l| l.name().as_bytes() == b)
    }

    /// The secret lengths the label can have: the master secret is 48 bytes; TLS 1.3 secrets
    /// are as long as the suite's hash (SHA-256 or SHA-384).
    fn lengths(self) -> &'static [usize] {
        match self {
            Label::ClientRandom => &[48],
            _ => &[32, 48],
        }
    }
}

/// The secrets known for one client random.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Secrets {
    /// `CLIENT_RANDOM`.
    pub master_secret: Option<Secret>,
    pub client_handshake_traffic_secret: Option<Secret>,
    pub server_handshake_traffic_secret: Option<Secret>,
    pub client_traffic_secret_0: Option<Secret>,
    pub server_traffic_secret_0: Option<Secret>,
}

impl Secrets {
    pub fn get(&self, label: Label) -> Option<&Secret> {
        self.slot_ref(label).as_ref()
    }

    fn slot_ref(&self, label: Label) -> &Option<Secret> {
        match label {
            Label::ClientRandom => &self.master_secret,
            Label::ClientHandshakeTrafficSecret => &self.client_handshake_traffic_secret,
            Label::ServerHandshakeTrafficSecret => &self.server_handshake_traffic_secret,
            Label::ClientTrafficSecret0 => &self.client_traffic_secret_0,
            Label::ServerTrafficSecret0 => &self.server_traffic_secret_0,
        }
    }

    fn slot(&mut self, label: Label) -> &mut Option<Secret> {
        match label {
            Label::ClientRandom => &mut self.master_secret,
            Label::ClientHandshakeTrafficSecret => &mut self.client_handshake_traffic_secret,
            Label::ServerHandshakeTrafficSecret => &mut self.server_handshake_traffic_secret,
            Label::ClientTrafficSecret0 => &mut self.client_traffic_secret_0,
            Label::ServerTrafficSecret0 => &mut self.server_traffic_secret_0,
        }
    }
}

/// What is wrong with a line (never what the line says).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProblemKind {
    /// A label apitool uses, but not the two fields after it.
    FieldCount,
    /// The client random is not 64 hex digits.
    ClientRandom,
    /// The secret is not hex digits (an even number of them).
    SecretNotHex,
    /// The secret has a length this label does not have.
    SecretLength,
    /// The line does not start with a label (letters, digits and `_`) followed by a space.
    NotALine,
    /// The client random is new and [`KeyLogLimits::max_client_randoms`] are kept already.
    Cap,
}

/// A line that was skipped, and why.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Problem {
    /// Which [`KeyLog::add`] call (from 0), for a log read from several sources.
    pub source: u32,
    /// The line number (from 1).
    pub line: u64,
    /// The label, when the line has one apitool uses.
    pub label: Option<Label>,
    pub kind: ProblemKind,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}: ", self.line)?;
        if let Some(l) = self.label {
            write!(f, "{}: ", l.name())?;
        }
        f.write_str(match self.kind {
            ProblemKind::FieldCount => "expected a client random and a secret after the label",
            ProblemKind::ClientRandom => "the client random is not 64 hex digits",
            ProblemKind::SecretNotHex => "the secret is not an even number of hex digits",
            ProblemKind::SecretLength => "the secret has the wrong length for this label",
            ProblemKind::NotALine => "not a key log line (a label, a client random and a secret)",
            ProblemKind::Cap => "skipped: the key log cap on client randoms was reached",
        })
    }
}

/// Caps of the key log.
#[derive(Clone, Copy, Debug)]
pub struct KeyLogLimits {
    /// Client randoms kept (each costs some 300 bytes); lines for new ones past it are skipped
    /// and reported. 0: none kept.
    pub max_client_randoms: usize,
    /// Problems kept to report (the rest are counted in [`KeyLogStats::bad_lines`]).
    pub max_problems: usize,
}

impl Default for KeyLogLimits {
    fn default() -> Self {
        KeyLogLimits { max_client_randoms: 1 << 20, max_problems: 100 }
    }
}

/// Counters of the key log.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct KeyLogStats {
    pub lines: u64,
    /// Lines whose secret was kept (a later one for the same label and client random replaces
    /// an earlier one, and both count).
    pub secrets: u64,
    /// Secrets that replaced an earlier one for the same label and client random.
    pub replaced: u64,
    /// Lines with labels apitool does not use.
    pub other_labels: u64,
    /// Lines skipped as [`Problem`]s, reported or not.
    pub bad_lines: u64,
}

/// Secrets per client random, from key logs.
#[derive(Clone, Default)]
pub struct KeyLog {
    map: FxHashMap<[u8; 32], Secrets>,
    pub limits: KeyLogLimits,
    pub stats: KeyLogStats,
    /// The first [`KeyLogLimits::max_problems`] lines that were skipped.
    pub problems: Vec<Problem>,
    sources: u32,
}

impl fmt::Debug for KeyLog {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyLog").field("client_randoms", &self.map.len()).field("stats", &self.stats).finish_non_exhaustive()
    }
}

impl KeyLog {
    pub fn new(limits: KeyLogLimits) -> KeyLog {
        KeyLog { limits, ..KeyLog::default() }
    }

    /// Reads one key log (a file's bytes, or a pcapng Decryption Secrets Block's), after the
    /// ones read before it.
    pub fn add(&mut self, data: &[u8]) {
        let source = self.sources;
        self.sources = self.sources.saturating_add(1);
        let mut rest = data;
        let mut number = 0u64;
        while !rest.is_empty() {
            let (line, next) = match memchr::memchr(b'\n', rest) {
                Some(p) => (&rest[..p], &rest[p + 1..]),
                None => (rest, &rest[rest.len()..]),
            };
            rest = next;
            number += 1;
            self.stats.lines += 1;
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            if let Err((label, kind)) = self.line(line) {
                self.stats.bad_lines += 1;
                if self.problems.len() < self.limits.max_problems {
                    self.problems.push(Problem { source, line: number, label, kind });
                }
            }
        }
    }

    /// The secrets known for a client random.
    pub fn get(&self, client_random: &[u8; 32]) -> Option<&Secrets> {
        self.map.get(client_random)
    }

    /// Client randoms with secrets.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    fn line(&mut self, line: &[u8]) -> Result<(), (Option<Label>, ProblemKind)> {
        let line = trim(line);
        if line.is_empty() || line[0] == b'#' {
            return Ok(());
        }
        let mut fields = line.split(|&c| c == b' ' || c == b'\t').filter(|f| !f.is_empty());
        let name = fields.next().unwrap_or_default();
        let Some(label) = Label::from_name(name) else {
            let label_like = name.iter().all(|&c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == b'_');
            if !label_like || line.len() == name.len() {
                return Err((None, ProblemKind::NotALine));
            }
            self.stats.other_labels += 1;
            return Ok(());
        };
        let bad = |kind| Err((Some(label), kind));
        let (Some(random), Some(secret), None) = (fields.next(), fields.next(), fields.next()) else {
            return bad(ProblemKind::FieldCount);
        };
        let mut cr = [0u8; 32];
        if random.len() != 64 || !unhex(random, &mut cr) {
            return bad(ProblemKind::ClientRandom);
        }
        let mut s = Secret { bytes: [0; MAX_SECRET], len: 0 };
        if secret.len() % 2 != 0 || secret.iter().any(|c| !c.is_ascii_hexdigit()) {
            return bad(ProblemKind::SecretNotHex);
        }
        let n = secret.len() / 2;
        if !label.lengths().contains(&n) {
            return bad(ProblemKind::SecretLength);
        }
        unhex(secret, &mut s.bytes[..n]);
        s.len = n as u8;
        if self.map.len() >= self.limits.max_client_randoms && !self.map.contains_key(&cr) {
            return bad(ProblemKind::Cap);
        }
        let slot = self.map.entry(cr).or_default().slot(label);
        self.stats.replaced += slot.is_some() as u64;
        *slot = Some(s);
        self.stats.secrets += 1;
        Ok(())
    }
}

fn trim(b: &[u8]) -> &[u8] {
    let start = b.iter().position(|c| !matches!(c, b' ' | b'\t')).unwrap_or(b.len());
    let end = b.iter().rposition(|c| !matches!(c, b' ' | b'\t')).map_or(start, |p| p + 1);
    &b[start..end]
}

/// Decodes `hex` (twice as long as `out`) into `out`; false if a digit is not hex.
fn unhex(hex: &[u8], out: &mut [u8]) -> bool {
    fn digit(c: u8) -> Option<u8> {
        match c {
            b'0'..=b'9' => Some(c - b'0'),
            b'a'..=b'f' => Some(c - b'a' + 10),
            b'A'..=b'F' => Some(c - b'A' + 10),
            _ => None,
        }
    }
    if hex.len() != out.len() * 2 {
        return false;
    }
    for (o, pair) in out.iter_mut().zip(hex.chunks_exact(2)) {
        match (digit(pair[0]), digit(pair[1])) {
            (Some(h), Some(l)) => *o = h << 4 | l,
            _ => return false,
        }
    }
    true
}

#[cfg(test)]
mod tests;

/// The key log of `tls` with the TLS key logs of a pcapng file's Decryption Secrets Blocks
/// added after it (a DSB's line for a client random wins over a file's), and how many blocks
/// there were. Without blocks, `tls` as it is (the same shared key log).
pub fn with_secrets_blocks(tls: &super::TlsLimits, file: &[u8]) -> (super::TlsLimits, u64) {
    let blocks = super::dsb::pcapng_tls_key_logs(file);
    if blocks.is_empty() {
        return (tls.clone(), 0);
    }
    let mut log = tls.keylog.as_deref().cloned().unwrap_or_default();
    for b in &blocks {
        log.add(b);
    }
    (super::TlsLimits { keylog: Some(std::sync::Arc::new(log)) }, blocks.len() as u64)
}
