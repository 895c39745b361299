//! The TLS handler's state machine over TLS 1.2 connections made here: hellos built by hand,
//! records sealed by `cipher::tests::seal12` (the crates used directly, not `Keys`).

use std::sync::Arc;

use crate::capture::Ts;
use crate::proto::tls::cipher::tests::seal12;
use crate::proto::tls::cipher::{self, Suite};
use crate::proto::tls::keylog::{KeyLog, KeyLogLimits};
use crate::proto::tls::{Reason, TlsLimits};
use crate::proto::{Chunk, ConnMeta, Ctx, Exchange, Handler, Limits, Side, Stats};
use crate::wire::Endpoint;

const CR: [u8; 32] = [0xC1; 32];
const SR: [u8; 32] = [0x5E; 32];

fn master() -> Vec<u8> {
    (0..48u8).map(|i| i.wrapping_mul(13).wrapping_add(1)).collect()
}

fn hex(b: &[u8]) -> String {
    crate::proto::tls::hex(b)
}

fn keylog(with_key: bool) -> Limits {
    let mut k = KeyLog::new(KeyLogLimits::default());
    if with_key {
        k.add(format!("# a comment\nCLIENT_RANDOM {} {}\n", hex(&CR), hex(&master())).as_bytes());
    } else {
        k.add(format!("CLIENT_RANDOM {} {}\n", hex(&[9u8; 32]), hex(&master())).as_bytes());
    }
    Limits { tls: TlsLimits { keylog: Some(Arc::new(k)) }, ..Limits::default() }
}

fn record(ctype: u8, version: u16, payload: &[u8]) -> Vec<u8> {
    let mut v = vec![ctype];
    v.extend_from_slice(&version.to_be_bytes());
    v.extend_from_slice(&(payload.len() as u16).to_be_bytes());
    v.extend_from_slice(payload);
    v
}

fn hs(t: u8, body: &[u8]) -> Vec<u8> {
    let mut v = vec![t, 0, (body.len() >> 8) as u8, body.len() as u8];
    v.extend_from_slice(body);
    v
}

fn v16(d: &[u8]) -> Vec<u8> {
    let mut v = (d.len() as u16).to_be_bytes().to_vec();
    v.extend_from_slice(d);
    v
}

fn ext(t: u16, d: &[u8]) -> Vec<u8> {
    let mut v = t.to_be_bytes().to_vec();
    v.extend(v16(d));
    v
}

fn client_hello() -> Vec<u8> {
    let mut b = vec![3, 3];
    b.extend_from_slice(&CR);
    b.push(0);
    b.extend(v16(&[0xC0, 0x2F, 0xC0, 0x13]));
    b.extend_from_slice(&[1, 0]);
    let mut sni = vec![0];
    sni.extend(v16(b"api.test"));
    let mut exts = ext(0, &v16(&sni));
    exts.extend(ext(16, &v16(b"\x08http/1.1")));
    b.extend(v16(&exts));
    hs(1, &b)
}

fn server_hello(suite: u16, version: u16, etm: bool) -> Vec<u8> {
    let mut b = version.to_be_bytes().to_vec();
    b.extend_from_slice(&SR);
    b.push(0);
    b.extend_from_slice(&suite.to_be_bytes());
    b.push(0);
    let mut exts = ext(16, &v16(b"\x08http/1.1"));
    if etm {
        exts.extend(ext(22, &[]));
    }
    b.extend(v16(&exts));
    hs(2, &b)
}

const REQ: &[u8] = b"GET /a HTTP/1.1\r\nHost: api.test\r\n\r\n";
const REQ2: &[u8] = b"GET /b HTTP/1.1\r\nHost: api.test\r\n\r\n";
const RESP: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello";
const RESP2: &[u8] = b"HTTP/1.1 404 Not Found\r\nContent-Length: 3\r\n\r\nno!";

/// One TLS 1.2 connection, each side's stream as its records.
struct Conn {
    client: Vec<Vec<u8>>,
    server: Vec<Vec<u8>>,
}

fn conn(suite: &Suite, etm: bool) -> Conn {
    let m = master();
    let seal = |client: bool, seq: u64, ctype: u8, pt: &[u8]| seal12(suite, &m, &CR, &SR, etm, client, seq, ctype, pt);
    let fin = hs(20, &[0xF1; 12]);
    Conn {
        client: vec![
            record(22, 0x0301, &client_hello()),
            record(22, 0x0303, &hs(16, &[0x20; 33])),
            record(20, 0x0303, &[1]),
            seal(true, 0, 22, &fin),
            seal(true, 1, 23, REQ),
            seal(true, 2, 23, REQ2),
            seal(true, 3, 21, &[1, 0]),
        ],
        server: vec![
            record(22, 0x0303, &[server_hello(suite.id, 0x0303, etm), hs(14, &[])].concat()),
            record(20, 0x0303, &[1]),
            seal(false, 0, 22, &fin),
            seal(false, 1, 23, RESP),
            seal(false, 2, 23, RESP2),
        ],
    }
}

fn meta() -> ConnMeta {
    let ep = |port| Endpoint { ip: [0; 16], port, v6: false };
    ConnMeta { id: 7, client: ep(40000), server: ep(443), syn_ts: Some(Ts(0)), established_ts: Some(Ts(1)) }
}

/// Drives a handler: feeds, gaps, the end.
struct Run {
    h: Handler,
    limits: Limits,
    stats: Stats,
    out: Vec<Exchange>,
    off: [u64; 2],
    t: i64,
}

impl Run {
    fn new(limits: Limits) -> Run {
        let mut h = Handler::new(meta());
        h.clean_start(Side::Client);
        h.clean_start(Side::Server);
        Run { h, limits, stats: Stats::default(), out: Vec::new(), off: [0; 2], t: 10 }
    }

    fn feed(&mut self, side: Side, bytes: &[u8], piece: usize) {
        for p in bytes.chunks(piece.max(1)) {
            self.t += 1;
            let chunk = Chunk { ts: Ts(self.t), frame: self.t as u64, offset: self.off[side as usize], ack: None };
            let mut cx = Ctx { limits: &self.limits, stats: &mut self.stats, sink: &mut self.out };
            self.h.data(side, p, chunk, &mut cx);
            self.off[side as usize] += p.len() as u64;
        }
    }

    fn gap(&mut self, side: Side, len: u64) {
        let mut cx = Ctx { limits: &self.limits, stats: &mut self.stats, sink: &mut self.out };
        self.h.gap(side, len, Ts(self.t), None, &mut cx);
        self.off[side as usize] += len;
    }

    fn end(&mut self) {
        let mut cx = Ctx { limits: &self.limits, stats: &mut self.stats, sink: &mut self.out };
        self.h.end(true, Ts(self.t + 1), None, &mut cx);
    }

    /// (target, status, response body) of each exchange.
    fn exchanges(&self) -> Vec<(String, Option<u16>, Vec<u8>)> {
        self.out
            .iter()
            .map(|e| {
                (
                    e.request.as_ref().map(|r| String::from_utf8_lossy(r.head.target()).into_owned()).unwrap_or_default(),
                    e.response.as_ref().map(|r| r.head.status()),
                    e.response.as_ref().map(|r| r.body.clone()).unwrap_or_default(),
                )
            })
            .collect()
    }
}

/// Client flight, server flight, then request/response pairs in turn (as a real connection
/// goes), each record in pieces of `piece` bytes.
fn play(c: &Conn, limits: Limits, piece: usize) -> Run {
    let mut r = Run::new(limits);
    r.feed(Side::Client, &c.client[0], piece);
    r.feed(Side::Server, &c.server[0], piece);
    r.feed(Side::Client, &c.client[1..4].concat(), piece);
    r.feed(Side::Server, &c.server[1..3].concat(), piece);
    r.feed(Side::Client, &c.client[4], piece);
    r.feed(Side::Server, &c.server[3], piece);
    r.feed(Side::Client, &c.client[5], piece);
    r.feed(Side::Server, &c.server[4], piece);
    r.feed(Side::Client, &c.client[6], piece);
    r.end();
    r
}

fn want() -> Vec<(String, Option<u16>, Vec<u8>)> {
    vec![("/a".into(), Some(200), b"hello".to_vec()), ("/b".into(), Some(404), b"no!".to_vec())]
}

#[test]
fn every_tls12_suite_in_any_pieces() {
    for suite in cipher::SUITES.iter().filter(|s| !s.tls13) {
        let etms: &[bool] =
            if matches!(suite.bulk, cipher::Bulk::Aes128Cbc(_) | cipher::Bulk::Aes256Cbc(_)) { &[false, true] } else { &[false] };
        for &etm in etms {
            let c = conn(suite, etm);
            for piece in [1, 3, 100, 1 << 16] {
                let r = play(&c, keylog(true), piece);
                assert_eq!(r.exchanges(), want(), "{} etm {etm} pieces of {piece}", suite.name);
                let t = &r.stats.tls;
                assert_eq!((t.connections, t.decrypted_connections, t.records_decrypted), (1, 1, 2 + 3 + 2), "{}", suite.name);
                assert_eq!(t.plaintext_bytes as usize, REQ.len() + REQ2.len() + RESP.len() + RESP2.len());
                assert!(r.stats.tls_undecrypted.is_empty());
                let facts = r.out[0].tls.as_deref().expect("TLS facts");
                assert_eq!((facts.version, facts.cipher_suite), ("TLS 1.2", suite.name));
                assert_eq!((facts.sni.as_deref(), facts.alpn.as_deref()), (Some("api.test"), Some("http/1.1")));
                assert!(r.out.iter().all(|e| e.anomalies.is_empty()), "{:?}", r.out[0].anomalies);
            }
        }
    }
}

#[test]
fn client_records_before_the_server_hello_wait_for_it() {
    let c = conn(cipher::suite(0xC02F).unwrap(), false);
    let mut r = Run::new(keylog(true));
    r.feed(Side::Client, &c.client[..6].concat(), 7);
    assert!(r.out.is_empty());
    r.feed(Side::Server, &c.server.concat(), 7);
    r.feed(Side::Client, &c.client[6], 7);
    r.end();
    assert_eq!(r.exchanges(), want());
}

#[test]
fn a_record_that_does_not_verify_stops_its_side() {
    let mut c = conn(cipher::suite(0xC030).unwrap(), false);
    // The first request's ciphertext, one bit flipped.
    let n = c.client[4].len();
    c.client[4][n - 20] ^= 0x04;
    let r = play(&c, keylog(true), 1 << 16);
    assert_eq!(r.stats.tls.decryption_failed, 1);
    assert_eq!(r.stats.tls_undecrypted.len(), 1);
    assert_eq!(r.stats.tls_undecrypted[0].reason, Reason::DecryptionFailed);
    // Nothing of the client's side after it is handed on: no request, nor a garbled one.
    assert!(r.out.iter().all(|e| e.request.is_none()), "{:?}", r.exchanges());
}

#[test]
fn without_its_key_a_connection_is_counted_and_listed() {
    let c = conn(cipher::suite(0xC02F).unwrap(), false);
    let r = play(&c, keylog(false), 1 << 16);
    assert!(r.out.is_empty());
    assert_eq!((r.stats.tls.no_key, r.stats.tls.decrypted_connections, r.stats.tls.records_decrypted), (1, 0, 0));
    let u = &r.stats.tls_undecrypted[0];
    assert_eq!((u.flow, u.reason, u.sni.as_deref()), (7, Reason::NoKey, Some("api.test")));
    assert_eq!(u.client_random.as_deref(), Some(hex(&CR).as_str()));
    assert!(r.h.is_done());
}

#[test]
fn no_key_log_at_all_lists_the_client_hello() {
    let c = conn(cipher::suite(0xC02F).unwrap(), false);
    let r = play(&c, Limits::default(), 1 << 16);
    assert!(r.out.is_empty());
    assert_eq!((r.stats.detected.tls_connections, r.stats.tls.connections), (1, 0));
    assert_eq!(r.stats.tls_undecrypted[0].client_random.as_deref(), Some(hex(&CR).as_str()));
    assert!(r.h.is_done());
}

#[test]
fn unsupported_suites_and_versions_are_counted() {
    let base = conn(cipher::suite(0xC02F).unwrap(), false);
    for (suite, version, reason) in [(0x0005u16, 0x0303u16, Reason::UnsupportedSuite), (0xC02F, 0x0301, Reason::UnsupportedVersion)] {
        let mut c = Conn { client: base.client.clone(), server: base.server.clone() };
        c.server[0] = record(22, 0x0303, &server_hello(suite, version, false));
        let r = play(&c, keylog(true), 1 << 16);
        assert!(r.out.is_empty());
        assert_eq!(r.stats.tls_undecrypted[0].reason, reason);
        assert_eq!(r.stats.tls.unsupported_suite + r.stats.tls.unsupported_version, 1);
    }
}

#[test]
fn a_capture_that_starts_after_the_handshake() {
    let c = conn(cipher::suite(0xC02F).unwrap(), false);
    let mut r = Run::new(keylog(true));
    r.feed(Side::Client, &c.client[4], 1 << 16);
    r.feed(Side::Server, &c.server[3], 1 << 16);
    r.end();
    assert!(r.out.is_empty());
    assert_eq!(r.stats.tls.handshake_not_captured, 1);
    assert_eq!(r.stats.tls_undecrypted[0].client_random, None);
}

#[test]
fn after_missing_bytes_gcm_records_are_found_again_by_their_tag() {
    // The server's first response record is lost: the second is found again (its explicit
    // nonce gives the sequence number, its tag verifies) and the inner handler is told of
    // the gap; nothing unverified is handed on.
    for (id, etm) in [(0xC02F, false), (0xCCA8, false), (0xC013, true), (0xC014, false)] {
        let c = conn(cipher::suite(id).unwrap(), etm);
        let mut r = Run::new(keylog(true));
        r.feed(Side::Client, &c.client[0], 1 << 16);
        r.feed(Side::Server, &c.server[0], 1 << 16);
        r.feed(Side::Client, &c.client[1..4].concat(), 1 << 16);
        r.feed(Side::Server, &c.server[1..3].concat(), 1 << 16);
        r.feed(Side::Client, &c.client[4], 1 << 16);
        r.gap(Side::Server, c.server[3].len() as u64);
        r.feed(Side::Client, &c.client[5], 1 << 16);
        // Some bytes of no record first, then the record.
        r.feed(Side::Server, &c.server[4], 5);
        r.end();
        assert_eq!(r.stats.tls.resyncs, 1, "{id:x}: {:?}", r.stats.tls);
        assert_eq!(r.stats.tls.decryption_failed, 0);
        let ex = r.exchanges();
        assert_eq!(ex.last(), Some(&("/b".to_string(), Some(404), b"no!".to_vec())), "{id:x}: {ex:?}");
        // The first exchange lost its response, and says so.
        assert!(r.out.iter().any(|e| e.request.as_ref().is_some_and(|q| q.head.target() == b"/a") && e.response.is_none()));
    }
}
