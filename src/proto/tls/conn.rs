//! The TLS connection handler: record layer, handshake and decryption per side, and an inner
//! handler for the plaintext.
//!
//! Contract: [`TlsConn`] takes the events `proto::Handler` takes (each side's bytes in order,
//! gaps, closes, the end) for a connection whose first bytes were a TLS record. It reads the
//! ClientHello and ServerHello (a HelloRetryRequest is followed by the second hellos), looks
//! the client random up in the key log, and decrypts each side's records with that side's
//! keys: TLS 1.2 from `CLIENT_RANDOM` once the side's ChangeCipherSpec is seen, TLS 1.3 with the
//! handshake traffic secrets up to the side's Finished, then the application traffic secrets
//! (KeyUpdate derives the next ones). Application data is handed, per side and in order, to an
//! inner [`Handler`] created fresh for the plaintext (the same detection as for a cleartext
//! connection chooses the protocol), each piece with the time and frame of its record's last
//! byte; every exchange the inner handler produces carries the connection's [`TlsFacts`].
//!
//! Only verified plaintext is handed on: a record that fails its tag or MAC stops that side
//! (counted, the inner handler told of a gap). Bytes missing from the ciphertext make the
//! record layer lose its place; it is found again only by a record that decrypts (its tag
//! verifies at a candidate record start, with a sequence number the record's explicit nonce
//! or the next ones give), the inner handler being told of a gap; otherwise the side stops.
//! Records that need keys not known yet (a TLS 1.3 client's flight read before the server's
//! ServerHello) are held within [`record::MAX_HELD`]. Connections that cannot be decrypted
//! are counted by [`Reason`] and listed ([`Undecrypted`]) with their SNI and client random.

use std::sync::Arc;

use crate::capture::Ts;
use crate::proto::tls::cipher::{self, Keys, Suite};
use crate::proto::tls::handshake::{self, Assembler, ClientHello, ServerHello};
use crate::proto::tls::keylog::{KeyLog, Label};
use crate::proto::tls::record::{self, Next, Reader};
use crate::proto::tls::{Reason, TlsFacts, Undecrypted};
use crate::proto::{Cap, Chunk, ConnMeta, Ctx, Exchange, ExchangeSink, Handler, Side};

/// AEAD trials spent looking for the records again after missing bytes, per gap.
const RESYNC_TRIALS: u32 = 4096;

/// Sequence numbers tried past the last one known, when the record does not carry its own.
const RESYNC_SEQ_WINDOW: u64 = 64;

/// Early data records skipped at most (their key is not read from key logs).
const MAX_EARLY_SKIPS: u32 = 64;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    /// Records in the clear (the hellos, TLS 1.2's handshake up to ChangeCipherSpec).
    Clear,
    /// TLS 1.3 handshake traffic keys.
    Handshake,
    /// Application traffic keys.
    App,
    /// Nothing more is decrypted on this side.
    Dead,
}

struct Half {
    rd: Reader,
    hs: Assembler,
    keys: Option<Keys>,
    seq: u64,
    /// The TLS 1.3 application traffic secret in use (for KeyUpdate).
    secret: Option<Vec<u8>>,
    phase: Phase,
    /// Plaintext handed to the inner handler so far.
    plain_off: u64,
    /// The next ciphertext offset expected.
    next_off: Option<u64>,
    /// Records read so far.
    records: u64,
    /// Records decrypted.
    decrypted: u64,
    early_skips: u32,
    /// Looking for a record start after missing bytes (AEAD trials left).
    resync: Option<u32>,
    /// The side's FIN came; handed on once the records held are read.
    closed: bool,
}

impl Half {
    fn new() -> Half {
        Half {
            rd: Reader::default(),
            hs: Assembler::default(),
            keys: None,
            seq: 0,
            secret: None,
            phase: Phase::Clear,
            plain_off: 0,
            next_off: None,
            records: 0,
            decrypted: 0,
            early_skips: 0,
            resync: None,
            closed: false,
        }
    }

    fn set_secret(&mut self, s: Option<Vec<u8>>) {
        if let Some(old) = self.secret.as_mut() {
            old.fill(0);
        }
        self.secret = s;
    }
}

impl Drop for Half {
    fn drop(&mut self) {
        self.set_secret(None);
    }
}

/// What to do with the record at the read position.
enum Step {
    Done,
    Hold,
}

/// The stream handler of a TLS connection.
pub struct TlsConn {
    meta: ConnMeta,
    halves: [Half; 2],
    ch: Option<ClientHello>,
    sh: Option<ServerHello>,
    suite: Option<&'static Suite>,
    tls13: bool,
    /// A HelloRetryRequest was read (TLS 1.3): its ChangeCipherSpec precedes the ServerHello.
    hrr: bool,
    alpn: Option<Box<str>>,
    /// Why the connection is not (wholly) decrypted, once known (counted once).
    failed: Option<Reason>,
    decrypted_counted: bool,
    facts: Option<Arc<TlsFacts>>,
    inner: Handler,
    scratch: Vec<u8>,
    /// Handshake messages read from a record, handled after it.
    msgs: Vec<(u8, Vec<u8>)>,
}

/// Tags every exchange with the connection's TLS facts.
struct Tagged<'a> {
    sink: &'a mut dyn ExchangeSink,
    facts: &'a Arc<TlsFacts>,
}

impl ExchangeSink for Tagged<'_> {
    fn exchange(&mut self, mut ex: Exchange) {
        if ex.tls.is_none() {
            ex.tls = Some(self.facts.clone());
        }
        self.sink.exchange(ex)
    }
}

fn idx(side: Side) -> usize {
    side as usize
}

impl TlsConn {
    pub fn new(meta: ConnMeta) -> TlsConn {
        TlsConn {
            meta,
            halves: [Half::new(), Half::new()],
            ch: None,
            sh: None,
            suite: None,
            tls13: false,
            hrr: false,
            alpn: None,
            failed: None,
            decrypted_counted: false,
            facts: None,
            inner: Handler::new(meta),
            scratch: Vec::new(),
            msgs: Vec::new(),
        }
    }

    /// Calls the inner handler with a context whose sink tags exchanges.
    fn with_inner(&mut self, cx: &mut Ctx<'_>, f: impl FnOnce(&mut Handler, &mut Ctx<'_>)) {
        let facts = self.facts.get_or_insert_with(|| {
            Arc::new(TlsFacts {
                version: if self.tls13 { "TLS 1.3" } else { "TLS 1.2" },
                cipher_suite: self.suite.map_or("", |s| s.name),
                sni: self.ch.as_ref().and_then(|c| c.sni.clone()),
                alpn: self.alpn.clone(),
            })
        });
        let mut sink = Tagged { sink: &mut *cx.sink, facts };
        let mut icx = Ctx { limits: cx.limits, stats: &mut *cx.stats, sink: &mut sink };
        f(&mut self.inner, &mut icx);
    }

    /// Why the connection is not decrypted: counted and listed once.
    fn fail(&mut self, reason: Reason, cx: &mut Ctx<'_>) {
        if self.failed.is_some() {
            return;
        }
        self.failed = Some(reason);
        cx.stats.tls.count(reason);
        if cx.stats.tls_undecrypted.len() < crate::proto::tls::MAX_UNDECRYPTED_LISTED {
            cx.stats.tls_undecrypted.push(Undecrypted {
                flow: self.meta.id,
                client: self.meta.client.to_string(),
                server: self.meta.server.to_string(),
                sni: self.ch.as_ref().and_then(|c| c.sni.as_deref()).map(String::from),
                client_random: self.ch.as_ref().map(|c| crate::proto::tls::hex(&c.random)),
                reason,
            });
        }
    }

    /// Stops decrypting one side (and tells the inner handler its plaintext is missing from
    /// here, `len` bytes of ciphertext at least).
    fn kill(&mut self, side: Side, reason: Reason, len: u64, ts: Ts, cx: &mut Ctx<'_>) {
        let h = &mut self.halves[idx(side)];
        let had_plain = h.decrypted > 0;
        h.phase = Phase::Dead;
        h.keys = None;
        h.set_secret(None);
        h.resync = None;
        self.fail(reason, cx);
        if had_plain && len > 0 {
            self.with_inner(cx, |i, cx| i.gap(side, len, ts, None, cx));
        }
    }

    /// Whether nothing more is to be parsed.
    pub fn is_done(&self) -> bool {
        self.halves.iter().all(|h| h.phase == Phase::Dead) && (self.inner_unused() || self.inner.is_done())
    }

    fn inner_unused(&self) -> bool {
        self.halves.iter().all(|h| h.decrypted == 0)
    }

    pub fn pending_start(&self) -> Option<Ts> {
        self.inner.pending_start()
    }

    pub fn buffered_bytes(&self) -> usize {
        self.halves.iter().map(|h| h.rd.capacity() + h.hs.capacity()).sum::<usize>() + self.scratch.capacity() + self.inner.buffered_bytes()
    }

    pub fn bodies_held(&self) -> (usize, usize) {
        self.inner.bodies_held()
    }

    pub fn cut_bodies(&mut self) {
        self.inner.cut_bodies()
    }

    /// Bytes of one side, in order.
    pub fn data(&mut self, side: Side, bytes: &[u8], chunk: Chunk, cx: &mut Ctx<'_>) {
        let h = &mut self.halves[idx(side)];
        h.next_off = Some(chunk.offset + bytes.len() as u64);
        if h.phase == Phase::Dead && h.rd.held() == 0 {
            return;
        }
        if !h.rd.push(bytes, chunk.offset, chunk.ts, chunk.frame) {
            cx.stats.tls.held_over_cap += 1;
            let reason = if self.sh.is_none() { Reason::HandshakeNotCaptured } else { Reason::DecryptionFailed };
            self.kill(side, reason, bytes.len() as u64, chunk.ts, cx);
            self.halves[idx(side)].rd.clear();
            return;
        }
        self.pump(side, cx);
    }

    /// Reads the side's records held, as far as keys allow.
    fn pump(&mut self, side: Side, cx: &mut Ctx<'_>) {
        // Bounded: every turn consumes a record or stops.
        loop {
            let h = &mut self.halves[idx(side)];
            if h.resync.is_some() {
                if !self.search(side, cx) {
                    return;
                }
                continue;
            }
            match h.rd.next_record() {
                Next::Empty => return,
                Next::Lost => {
                    let h = &mut self.halves[idx(side)];
                    let ts = Ts(0);
                    if h.phase == Phase::App && h.keys.is_some() {
                        h.resync = Some(RESYNC_TRIALS);
                        continue;
                    }
                    let reason = if h.records == 0 || self.sh.is_none() { Reason::HandshakeNotCaptured } else { Reason::DecryptionFailed };
                    let n = h.rd.held() as u64;
                    cx.stats.tls.lost_sync += (h.records > 0) as u64;
                    h.rd.clear();
                    self.kill(side, reason, n, ts, cx);
                    return;
                }
                Next::Record(hdr, ts, frame) => match self.record(side, hdr, ts, frame, cx) {
                    Step::Done => self.halves[idx(side)].rd.consume(),
                    Step::Hold => return,
                },
            }
        }
    }

    /// One whole record at the side's read position.
    fn record(&mut self, side: Side, hdr: record::Header, ts: Ts, frame: u64, cx: &mut Ctx<'_>) -> Step {
        let first = self.halves[idx(side)].records == 0;
        let phase = self.halves[idx(side)].phase;
        if phase == Phase::Dead {
            return Step::Done;
        }
        if first && hdr.ctype != record::HANDSHAKE {
            // Not a hello: the capture starts after the handshake.
            self.halves[idx(side)].records += 1;
            self.kill(side, Reason::HandshakeNotCaptured, 0, ts, cx);
            return Step::Done;
        }
        match (hdr.ctype, phase) {
            (record::CHANGE_CIPHER_SPEC, _) => {
                if self.sh.is_none() {
                    // Before the ServerHello only a HelloRetryRequest's (TLS 1.3) comes.
                    if self.failed.is_some() || self.hrr {
                        return self.skip(side);
                    }
                    return Step::Hold;
                }
                self.halves[idx(side)].records += 1;
                if self.tls13 || phase != Phase::Clear {
                    // TLS 1.3 compatibility CCS: not counted in the sequence numbers.
                    return Step::Done;
                }
                self.tls12_keys(side, cx);
                Step::Done
            }
            // Handshake records before the keys, and in TLS 1.3 whatever the keys (it encrypts
            // records as application data only: the second ClientHello after a
            // HelloRetryRequest is read after the ServerHello).
            (record::HANDSHAKE, _) if phase == Phase::Clear || self.tls13 => {
                let h = &mut self.halves[idx(side)];
                h.records += 1;
                let mut msgs = std::mem::take(&mut self.msgs);
                h.hs.push(&h.rd.record()[record::HEADER..], |t, b| msgs.push((t, b.to_vec())));
                for (t, b) in msgs.drain(..) {
                    self.message(side, t, &b, ts, cx);
                }
                self.msgs = msgs;
                Step::Done
            }
            (_, Phase::Clear) => match hdr.ctype {
                record::APPLICATION_DATA if self.sh.is_none() && self.failed.is_none() && side == Side::Client => Step::Hold,
                _ => self.skip(side),
            },
            _ => self.decrypt(side, hdr, ts, frame, cx),
        }
    }

    fn skip(&mut self, side: Side) -> Step {
        self.halves[idx(side)].records += 1;
        Step::Done
    }

    /// Decrypts the record at the read position with the side's keys.
    fn decrypt(&mut self, side: Side, hdr: record::Header, ts: Ts, frame: u64, cx: &mut Ctx<'_>) -> Step {
        let h = &mut self.halves[idx(side)];
        h.records += 1;
        let Some(keys) = h.keys.as_ref() else {
            return Step::Done;
        };
        let mut buf = std::mem::take(&mut self.scratch);
        buf.clear();
        buf.extend_from_slice(&h.rd.record()[record::HEADER..]);
        let opened = keys.open(h.seq, hdr.ctype, hdr.version, &mut buf);
        let step = match opened {
            Err(_) => {
                let early = self.tls13
                    && side == Side::Client
                    && h.phase == Phase::Handshake
                    && h.decrypted == 0
                    && self.ch.as_ref().is_some_and(|c| c.early_data)
                    && h.early_skips < MAX_EARLY_SKIPS;
                if early {
                    h.early_skips += 1;
                    cx.stats.tls.early_data_records_skipped += 1;
                } else {
                    self.kill(side, Reason::DecryptionFailed, hdr.len as u64, ts, cx);
                }
                Step::Done
            }
            Ok(range) => {
                h.seq = h.seq.wrapping_add(1);
                h.decrypted += 1;
                cx.stats.tls.records_decrypted += 1;
                let (ctype, range) = if self.tls13 {
                    // The inner content type is the last non-zero byte; zeros after it are padding.
                    match buf[range.clone()].iter().rposition(|&b| b != 0) {
                        Some(p) => (buf[range.start + p], range.start..range.start + p),
                        None => {
                            self.scratch = buf;
                            self.kill(side, Reason::DecryptionFailed, hdr.len as u64, ts, cx);
                            return Step::Done;
                        }
                    }
                } else {
                    (hdr.ctype, range)
                };
                self.plaintext(side, ctype, &buf[range], ts, frame, cx);
                Step::Done
            }
        };
        self.scratch = buf;
        step
    }

    /// A decrypted record's content.
    fn plaintext(&mut self, side: Side, ctype: u8, data: &[u8], ts: Ts, frame: u64, cx: &mut Ctx<'_>) {
        match ctype {
            record::HANDSHAKE => {
                let mut msgs = std::mem::take(&mut self.msgs);
                self.halves[idx(side)].hs.push(data, |t, b| msgs.push((t, b.to_vec())));
                for (t, b) in msgs.drain(..) {
                    self.message(side, t, &b, ts, cx);
                }
                self.msgs = msgs;
            }
            record::APPLICATION_DATA if !data.is_empty() => {
                if !self.decrypted_counted {
                    self.decrypted_counted = true;
                    cx.stats.tls.decrypted_connections += 1;
                }
                cx.stats.tls.plaintext_bytes += data.len() as u64;
                let h = &mut self.halves[idx(side)];
                let chunk = Chunk { ts, frame, offset: h.plain_off, ack: None };
                h.plain_off += data.len() as u64;
                self.with_inner(cx, |i, cx| i.data(side, data, chunk, cx));
            }
            _ => {}
        }
    }

    /// One handshake message of a side.
    fn message(&mut self, side: Side, t: u8, body: &[u8], ts: Ts, cx: &mut Ctx<'_>) {
        let phase = self.halves[idx(side)].phase;
        match (side, t) {
            (Side::Client, handshake::CLIENT_HELLO) if phase == Phase::Clear => {
                let Some(hello) = handshake::client_hello(body) else { return };
                // After a HelloRetryRequest the second ClientHello keeps the random.
                if self.ch.is_none() {
                    if self.halves[idx(side)].records == 1 {
                        self.inner.clean_start(Side::Client);
                    }
                    self.ch = Some(hello);
                    // Ours now: a client record held before it can be read.
                }
            }
            (Side::Server, handshake::SERVER_HELLO) if phase == Phase::Clear && self.sh.is_none() => {
                let Some(hello) = handshake::server_hello(body) else { return };
                if hello.is_retry_request() {
                    // The client answers with a second ClientHello (same random); its records
                    // held for the server's answer can be read now.
                    if self.halves[idx(side)].records == 1 {
                        self.inner.clean_start(Side::Server);
                    }
                    self.hrr = true;
                    self.pump(Side::Client, cx);
                    return;
                }
                if self.halves[idx(side)].records == 1 {
                    self.inner.clean_start(Side::Server);
                }
                self.alpn = hello.alpn.clone();
                self.sh = Some(hello);
                self.negotiated(ts, cx);
                // The client's records held for the ServerHello can be read now.
                self.pump(Side::Client, cx);
            }
            (Side::Server, handshake::ENCRYPTED_EXTENSIONS) if phase == Phase::Handshake => {
                if let Some(alpn) = handshake::encrypted_extensions(body) {
                    self.alpn = alpn;
                }
            }
            (_, handshake::FINISHED) if phase == Phase::Handshake => {
                let label = if side == Side::Client { Label::ClientTrafficSecret0 } else { Label::ServerTrafficSecret0 };
                let limits = cx.limits;
                let secret = self.secret(limits.tls.keylog.as_deref(), label);
                // The secret is copied only into the side's state (zeroed when replaced).
                match secret.and_then(|s| Some((cipher::tls13_keys(self.suite?, s)?, s.to_vec()))) {
                    Some((keys, s)) => {
                        let h = &mut self.halves[idx(side)];
                        h.keys = Some(keys);
                        h.seq = 0;
                        h.set_secret(Some(s));
                        h.phase = Phase::App;
                    }
                    None => self.kill(side, Reason::NoKey, 0, ts, cx),
                }
            }
            (_, handshake::KEY_UPDATE) if phase == Phase::App && self.tls13 => {
                let Some(suite) = self.suite else { return };
                let h = &mut self.halves[idx(side)];
                let next = h.secret.as_deref().and_then(|s| cipher::tls13_next_secret(suite.hash, s));
                match next.and_then(|s| Some((cipher::tls13_keys(suite, &s)?, s))) {
                    Some((keys, s)) => {
                        h.keys = Some(keys);
                        h.seq = 0;
                        h.set_secret(Some(s));
                        cx.stats.tls.key_updates += 1;
                    }
                    None => self.kill(side, Reason::DecryptionFailed, 0, ts, cx),
                }
            }
            _ => {}
        }
    }

    /// The key log's secret of this label for the connection's client random.
    fn secret<'k>(&self, keylog: Option<&'k KeyLog>, label: Label) -> Option<&'k [u8]> {
        let ch = self.ch.as_ref()?;
        keylog?.get(&ch.random)?.get(label).map(|s| s.as_bytes())
    }

    /// The ServerHello was read: version, suite, and the keys the key log has.
    fn negotiated(&mut self, ts: Ts, cx: &mut Ctx<'_>) {
        let Some(sh) = self.sh.as_ref() else { return };
        let (version, suite_id) = (sh.version, sh.suite);
        if self.ch.is_none() {
            return self.fail_both(Reason::HandshakeNotCaptured, ts, cx);
        }
        self.tls13 = match version {
            0x0304 => true,
            0x0303 => false,
            _ => return self.fail_both(Reason::UnsupportedVersion, ts, cx),
        };
        match cipher::suite(suite_id).filter(|s| s.tls13 == self.tls13) {
            Some(s) => self.suite = Some(s),
            None => return self.fail_both(Reason::UnsupportedSuite, ts, cx),
        }
        let limits = cx.limits;
        let keylog = limits.tls.keylog.as_deref();
        if !self.tls13 {
            if self.secret(keylog, Label::ClientRandom).is_none() {
                self.fail_both(Reason::NoKey, ts, cx);
            }
            return;
        }
        for side in [Side::Client, Side::Server] {
            let label = if side == Side::Client { Label::ClientHandshakeTrafficSecret } else { Label::ServerHandshakeTrafficSecret };
            let keys = self.secret(keylog, label).and_then(|s| cipher::tls13_keys(self.suite?, s));
            match keys {
                Some(k) => {
                    let h = &mut self.halves[idx(side)];
                    h.keys = Some(k);
                    h.seq = 0;
                    h.phase = Phase::Handshake;
                }
                None => self.kill(side, Reason::NoKey, 0, ts, cx),
            }
        }
    }

    fn fail_both(&mut self, reason: Reason, ts: Ts, cx: &mut Ctx<'_>) {
        self.kill(Side::Client, reason, 0, ts, cx);
        self.kill(Side::Server, reason, 0, ts, cx);
    }

    /// TLS 1.2: the side's ChangeCipherSpec; its next records are under its keys.
    fn tls12_keys(&mut self, side: Side, cx: &mut Ctx<'_>) {
        let limits = cx.limits;
        let keys = (|| {
            let (ch, sh, suite) = (self.ch.as_ref()?, self.sh.as_ref()?, self.suite?);
            let master = limits.tls.keylog.as_deref()?.get(&ch.random)?.get(Label::ClientRandom)?;
            cipher::tls12_keys(suite, master.as_bytes(), &ch.random, &sh.random, sh.etm)
        })();
        let h = &mut self.halves[idx(side)];
        match keys {
            Some([c, s]) => {
                h.keys = Some(if side == Side::Client { c } else { s });
                h.seq = 0;
                h.phase = Phase::App;
            }
            None => {
                h.phase = Phase::Dead;
                let r = if self.suite.is_none() { Reason::HandshakeNotCaptured } else { Reason::NoKey };
                self.fail(r, cx);
            }
        }
    }

    /// After missing bytes: looks for a record start whose record decrypts. False when more
    /// bytes are needed (or the side gave up).
    fn search(&mut self, side: Side, cx: &mut Ctx<'_>) -> bool {
        let tls13 = self.tls13;
        let gcm12 = !tls13 && self.suite.is_some_and(|s| matches!(s.bulk, cipher::Bulk::Aes128Gcm | cipher::Bulk::Aes256Gcm));
        let h = &mut self.halves[idx(side)];
        let Some(mut trials) = h.resync else { return true };
        let Some(keys) = h.keys.as_ref() else {
            h.resync = None;
            return true;
        };
        let rest = h.rd.rest();
        let mut at = 0;
        let mut found = None;
        let mut buf = std::mem::take(&mut self.scratch);
        'scan: while at + record::HEADER <= rest.len() {
            let b = &rest[at..];
            let plausible = record::header(b).filter(|hd| hd.ctype == record::APPLICATION_DATA && (tls13 || hd.version == 0x0303));
            let Some(hd) = plausible else {
                at += 1;
                continue;
            };
            if b.len() < record::HEADER + hd.len {
                // Wait for the whole candidate.
                break;
            }
            let payload = &b[record::HEADER..record::HEADER + hd.len];
            let seqs: Box<dyn Iterator<Item = u64>> = if gcm12 && payload.len() >= 8 {
                let explicit = u64::from_be_bytes(payload[..8].try_into().unwrap_or_default());
                Box::new(std::iter::once(explicit).chain(h.seq..h.seq + RESYNC_SEQ_WINDOW))
            } else {
                Box::new(h.seq..h.seq + RESYNC_SEQ_WINDOW)
            };
            for seq in seqs {
                if trials == 0 {
                    break 'scan;
                }
                trials -= 1;
                buf.clear();
                buf.extend_from_slice(payload);
                if keys.open(seq, hd.ctype, hd.version, &mut buf).is_ok() {
                    found = Some((at, seq));
                    break 'scan;
                }
            }
            at += 1;
        }
        self.scratch = buf;
        match found {
            Some((at, seq)) => {
                h.rd.resync(at);
                h.seq = seq;
                h.resync = None;
                cx.stats.tls.resyncs += 1;
                true
            }
            None if trials == 0 => {
                cx.stats.tls.lost_sync += 1;
                h.rd.clear();
                self.kill(side, Reason::DecryptionFailed, 0, Ts(0), cx);
                false
            }
            None => {
                h.resync = Some(trials);
                // Drop what cannot start a record any more.
                let keep_from = at;
                h.rd.resync(keep_from);
                h.rd.set_lost();
                false
            }
        }
    }

    /// `len` bytes of one side are missing.
    pub fn gap(&mut self, side: Side, len: u64, ts: Ts, cap: Option<Cap>, cx: &mut Ctx<'_>) {
        let h = &mut self.halves[idx(side)];
        if let Some(o) = h.next_off.as_mut() {
            *o += len;
        }
        if h.phase == Phase::Dead {
            return;
        }
        h.rd.clear();
        match h.phase {
            Phase::App if h.keys.is_some() => {
                h.rd.set_lost();
                h.resync = Some(RESYNC_TRIALS);
                if h.decrypted > 0 {
                    self.with_inner(cx, |i, cx| i.gap(side, len, ts, cap, cx));
                }
            }
            _ => {
                let reason = if self.sh.is_none() || h.records == 0 { Reason::HandshakeNotCaptured } else { Reason::DecryptionFailed };
                cx.stats.tls.lost_sync += 1;
                self.kill(side, reason, len, ts, cx);
            }
        }
    }

    /// One side's stream ended with its FIN.
    pub fn side_closed(&mut self, side: Side, cx: &mut Ctx<'_>) {
        let h = &mut self.halves[idx(side)];
        h.closed = true;
        if h.decrypted > 0 {
            self.with_inner(cx, |i, cx| i.side_closed(side, cx));
        }
    }

    /// The connection ended.
    pub fn end(&mut self, clean: bool, ts: Ts, cap: Option<Cap>, cx: &mut Ctx<'_>) {
        // Records still held for keys that never came.
        if self.failed.is_none() && self.halves.iter().any(|h| h.rd.held() > 0 && h.phase != Phase::Dead && h.resync.is_none()) {
            let reason = if self.sh.is_none() { Reason::HandshakeNotCaptured } else { Reason::NoKey };
            self.fail(reason, cx);
        }
        if !self.inner_unused() {
            self.with_inner(cx, |i, cx| i.end(clean, ts, cap, cx));
        } else if self.failed.is_none() && self.halves.iter().all(|h| h.decrypted == 0) && self.halves.iter().any(|h| h.records > 0) {
            // A connection with records but no application data: nothing to say unless
            // its keys were missing (counted above when they were).
        }
    }
}

/// Lists a TLS connection seen without a key log (reason: no key), with the SNI and client
/// random of its ClientHello when `first` (the first bytes of `side`) holds it whole.
pub fn list_without_keys(meta: ConnMeta, side: Side, first: &[u8], stats: &mut crate::proto::Stats) {
    let hello = (side == Side::Client)
        .then(|| {
            let h = record::header(first.get(..record::HEADER)?)?;
            let payload = first.get(record::HEADER..record::HEADER + h.len)?;
            let len = u32::from_be_bytes([0, *payload.get(1)?, *payload.get(2)?, *payload.get(3)?]) as usize;
            (h.ctype == record::HANDSHAKE && payload[0] == handshake::CLIENT_HELLO)
                .then(|| handshake::client_hello(payload.get(4..4 + len)?))
                .flatten()
        })
        .flatten();
    if stats.tls_undecrypted.len() < crate::proto::tls::MAX_UNDECRYPTED_LISTED {
        stats.tls_undecrypted.push(Undecrypted {
            flow: meta.id,
            client: meta.client.to_string(),
            server: meta.server.to_string(),
            sni: hello.as_ref().and_then(|c| c.sni.as_deref()).map(String::from),
            client_random: hello.as_ref().map(|c| crate::proto::tls::hex(&c.random)),
            reason: Reason::NoKey,
        });
    }
}

#[cfg(test)]
mod tests;
