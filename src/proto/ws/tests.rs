use super::encode::{Deflater, frame};
use super::*;

const MASK: [u8; 4] = [0x37, 0xfa, 0x21, 0x3d];

fn deflate_both(no_takeover: bool, bits: u8) -> Extensions {
    let d = Deflate { no_context_takeover: no_takeover, max_window_bits: bits };
    Extensions { deflate: Some([d, d]), other: None }
}

/// Feeds `stream` in pieces of `step` bytes (the last one shorter), then ends it.
fn parse(client: bool, ext: &Extensions, limits: WsLimits, stream: &[u8], step: usize) -> Vec<WsMessage> {
    let mut d = WsDirection::new(client, ext, limits);
    let mut out = Vec::new();
    for (i, piece) in stream.chunks(step.max(1)).enumerate() {
        d.push(piece, Ts(i as i64), &mut |m| out.push(m));
    }
    d.end(&mut |m| out.push(m));
    out
}

fn summary(ms: &[WsMessage]) -> Vec<(u8, Vec<u8>, Option<Damage>)> {
    ms.iter().map(|m| (m.opcode, m.data.clone(), m.damage.clone())).collect()
}

fn noise(len: usize, seed: u32) -> Vec<u8> {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x as u8
        })
        .collect()
}

#[test]
fn extensions_from_the_servers_answer() {
    let e = Extensions::from_response([&b"permessage-deflate; client_max_window_bits=10; server_no_context_takeover"[..]]);
    let d = e.deflate.expect("deflate");
    assert_eq!(d[0], Deflate { no_context_takeover: false, max_window_bits: 10 });
    assert_eq!(d[1], Deflate { no_context_takeover: true, max_window_bits: 15 });
    assert_eq!(e.other, None);

    let e = Extensions::from_response([&b"permessage-deflate;server_max_window_bits=\"9\""[..]]);
    assert_eq!(e.deflate.expect("deflate")[1].max_window_bits, 9);

    // Out-of-range or unknown parameters make the offer unusable, and that is said.
    let e = Extensions::from_response([&b"permessage-deflate; server_max_window_bits=16"[..]]);
    assert_eq!(e.deflate, None);
    assert!(e.other.is_some());
    let e = Extensions::from_response([&b"x-webkit-deflate-frame"[..], b""]);
    assert_eq!((e.deflate, e.other.as_deref()), (None, Some("x-webkit-deflate-frame")));
    assert_eq!(Extensions::from_response([&b""[..]]), Extensions::default());
}

#[test]
fn messages_come_out_whole_from_any_split() {
    let big = noise(30_000, 7); // 16-bit length
    let huge = noise(70_000, 9); // 64-bit length
    for client in [false, true] {
        let mask = client.then_some(MASK);
        let mut s = Vec::new();
        s.extend(frame(true, false, OP_TEXT, mask, b"hello"));
        s.extend(frame(true, false, OP_TEXT, mask, b"")); // an empty message
        s.extend(frame(true, false, OP_BINARY, mask, &big));
        // Fragmented, a ping between the fragments.
        s.extend(frame(false, false, OP_TEXT, mask, b"frag"));
        s.extend(frame(true, false, OP_PING, mask, b"are you there"));
        s.extend(frame(false, false, OP_CONTINUATION, mask, b"men"));
        s.extend(frame(true, false, OP_CONTINUATION, mask, b"ted"));
        s.extend(frame(true, false, OP_BINARY, mask, &huge));
        s.extend(frame(true, false, OP_PONG, mask, b""));
        s.extend(frame(true, false, OP_CLOSE, mask, b"\x03\xe8bye"));
        let want = vec![
            (OP_TEXT, b"hello".to_vec(), None),
            (OP_TEXT, vec![], None),
            (OP_BINARY, big.clone(), None),
            (OP_PING, b"are you there".to_vec(), None),
            (OP_TEXT, b"fragmented".to_vec(), None),
            (OP_BINARY, huge.clone(), None),
            (OP_PONG, vec![], None),
            (OP_CLOSE, b"\x03\xe8bye".to_vec(), None),
        ];
        for step in [1, 2, 3, 5, 13, 1448, 65536, s.len()] {
            let got = parse(client, &Extensions::default(), WsLimits::default(), &s, step);
            assert_eq!(summary(&got), want, "client {client} step {step}");
            assert_eq!(got[4].frames, 3);
            assert_eq!(got[7].close_code(), Some((Some(1000), &b"bye"[..])));
        }
    }
}

#[test]
fn every_split_point_of_a_small_stream() {
    let mut s = frame(false, false, OP_BINARY, Some(MASK), b"ab");
    s.extend(frame(true, false, OP_CONTINUATION, Some(MASK), &noise(300, 3)));
    s.extend(frame(true, false, OP_CLOSE, Some(MASK), b""));
    let whole = parse(true, &Extensions::default(), WsLimits::default(), &s, s.len());
    assert_eq!(whole.len(), 2);
    for cut in 1..s.len() {
        let mut d = WsDirection::new(true, &Extensions::default(), WsLimits::default());
        let mut out = Vec::new();
        d.push(&s[..cut], Ts(1), &mut |m| out.push(m));
        d.push(&s[cut..], Ts(2), &mut |m| out.push(m));
        d.end(&mut |m| out.push(m));
        assert_eq!(summary(&out), summary(&whole), "cut {cut}");
    }
}

#[test]
fn permessage_deflate_with_and_without_context_takeover() {
    let texts: Vec<Vec<u8>> = (0..6)
        .map(|i| format!("{{\"seq\":{i},\"event\":\"price\",\"symbol\":\"ACME\",\"bid\":101.25}}").repeat(20 + i).into_bytes())
        .collect();
    for no_takeover in [false, true] {
        for bits in [9, 10, 12, 15] {
            let ext = deflate_both(no_takeover, bits);
            let mut z = Deflater::new(bits, no_takeover);
            let mut s = Vec::new();
            for (i, t) in texts.iter().enumerate() {
                let c = z.message(t);
                if i == 2 {
                    // A compressed message in three fragments (RSV1 on the first only).
                    let (a, rest) = c.split_at(c.len() / 3);
                    let (b, cc) = rest.split_at(rest.len() / 2);
                    s.extend(frame(false, true, OP_TEXT, None, a));
                    s.extend(frame(false, false, OP_CONTINUATION, None, b));
                    s.extend(frame(true, false, OP_CONTINUATION, None, cc));
                } else {
                    s.extend(frame(true, true, OP_TEXT, None, &c));
                }
                // An uncompressed message in between does not touch the inflater.
                s.extend(frame(true, false, OP_BINARY, None, &[i as u8; 3]));
            }
            for step in [1, 7, 100, 1448, s.len()] {
                let got = parse(false, &ext, WsLimits::default(), &s, step);
                assert_eq!(got.len(), 12, "takeover {} bits {bits} step {step}", !no_takeover);
                for (i, t) in texts.iter().enumerate() {
                    let m = &got[2 * i];
                    assert_eq!((&m.data, &m.damage, m.compressed), (t, &None, true), "message {i} step {step}");
                    assert_eq!(m.size, t.len() as u64);
                    assert!(m.wire_size < t.len() as u64);
                    assert_eq!(got[2 * i + 1].data, vec![i as u8; 3]);
                }
            }
        }
    }
}

#[test]
fn the_cap_holds_for_plain_and_compressed_messages() {
    let body = noise(10_000, 5);
    let mut z = Deflater::new(15, false);
    let mut s = frame(true, false, OP_BINARY, None, &body);
    s.extend(frame(true, true, OP_BINARY, None, &z.message(&body)));
    s.extend(frame(true, true, OP_BINARY, None, &z.message(b"short")));
    for cap in [0, 1, 100, 4096, 9_999, 10_000] {
        let limits = WsLimits { max_message: cap, ..WsLimits::default() };
        for step in [1, 999, s.len()] {
            let got = parse(false, &deflate_both(false, 15), limits, &s, step);
            assert_eq!(got.len(), 3);
            for m in &got[..2] {
                assert_eq!(m.data, body[..cap], "cap {cap}");
                assert!(m.data.capacity() <= cap, "capacity {} cap {cap}", m.data.capacity());
                assert_eq!((m.size, m.truncated, &m.damage), (10_000, cap < 10_000, &None));
            }
            // Decoding went on past the cap: the next message, which refers back, is exact.
            assert_eq!(got[2].data, b"short"[..cap.min(5)]);
            assert_eq!(got[2].damage, None);
        }
    }
}

#[test]
fn a_compression_bomb_stops_at_the_inflate_limit() {
    let zeros = vec![0u8; 8 << 20];
    let mut z = Deflater::new(15, false);
    let bomb = z.message(&zeros);
    assert!(bomb.len() < 16 << 10, "{}", bomb.len());
    let mut s = frame(true, true, OP_BINARY, None, &bomb);
    s.extend(frame(true, true, OP_TEXT, None, &z.message(b"after the bomb")));
    let limits = WsLimits { max_message: 1000, max_inflate: 1 << 20 };
    let got = parse(false, &deflate_both(false, 15), limits, &s, 1448);
    assert_eq!(got.len(), 2);
    assert_eq!((got[0].data.len(), got[0].truncated), (1000, true));
    assert!(got[0].size >= 1 << 20 && got[0].size < 2 << 20, "{}", got[0].size);
    // The history was given up with the bomb: the next message either inflates exactly or is
    // marked, never wrong. This one refers to nothing before it.
    assert_eq!((got[1].data.as_slice(), &got[1].damage), (&b"after the bomb"[..], &None));
}

#[test]
fn a_gap_inside_a_payload_keeps_the_framing() {
    let mut s = frame(true, false, OP_TEXT, Some(MASK), b"first");
    let second = noise(2000, 11);
    let f2 = frame(true, false, OP_BINARY, Some(MASK), &second);
    let at = s.len() + 4 + 500; // inside the second payload
    s.extend(&f2);
    s.extend(frame(true, false, OP_TEXT, Some(MASK), b"third"));
    let mut d = WsDirection::new(true, &Extensions::default(), WsLimits::default());
    let mut out = Vec::new();
    d.push(&s[..at], Ts(1), &mut |m| out.push(m));
    d.gap(300, Ts(2), &mut |m| out.push(m));
    d.push(&s[at + 300..], Ts(3), &mut |m| out.push(m));
    d.end(&mut |m| out.push(m));
    assert_eq!(out.len(), 3);
    assert_eq!(out[0].data, b"first");
    assert_eq!(out[1].damage, Some(Damage::Gap { missing: 300 }));
    assert_eq!(out[1].data, second[..500 - 4]);
    assert_eq!(out[1].wire_size, 2000);
    assert_eq!((out[2].data.as_slice(), &out[2].damage), (&b"third"[..], &None));
    assert_eq!(d.stats().resyncs, 0);

    // A gap in the first fragment: the later fragments are not glued on behind it.
    let mut s = frame(false, false, OP_TEXT, None, &[b'a'; 100]);
    s.extend(frame(true, false, OP_CONTINUATION, None, b"tail"));
    let mut d = WsDirection::new(false, &Extensions::default(), WsLimits::default());
    let mut out = Vec::new();
    d.push(&s[..40], Ts(1), &mut |m| out.push(m));
    d.gap(10, Ts(2), &mut |m| out.push(m));
    d.push(&s[50..], Ts(3), &mut |m| out.push(m));
    d.end(&mut |m| out.push(m));
    assert_eq!(out.len(), 1);
    assert_eq!((out[0].data.as_slice(), out[0].frames, out[0].wire_size), (&[b'a'; 38][..], 2, 104));
    assert_eq!(out[0].damage, Some(Damage::Gap { missing: 10 }));
}

/// A stream of messages, one piece each (as a sender writes them), from the server.
fn pieces(msgs: &[(u8, Vec<u8>)]) -> Vec<Vec<u8>> {
    msgs.iter().map(|(op, data)| frame(true, false, *op, None, data)).collect()
}

#[test]
fn after_a_gap_across_headers_the_framing_is_found_again() {
    let msgs: Vec<(u8, Vec<u8>)> = (0..12u8).map(|i| (OP_BINARY, noise(50 + 40 * i as usize, i as u32))).collect();
    let ps = pieces(&msgs);
    let mut d = WsDirection::new(false, &Extensions::default(), WsLimits::default());
    let mut out = Vec::new();
    for (i, p) in ps.iter().enumerate() {
        match i {
            // Half of message 3, all of 4, and the start of 5 are lost.
            3 => {
                d.push(&p[..p.len() / 2], Ts(3), &mut |m| out.push(m));
                d.gap((p.len() - p.len() / 2) as u64, Ts(3), &mut |m| out.push(m));
            }
            4 => d.gap(p.len() as u64, Ts(4), &mut |m| out.push(m)),
            5 => {
                d.gap(10, Ts(5), &mut |m| out.push(m));
                d.push(&p[10..], Ts(5), &mut |m| out.push(m));
            }
            _ => d.push(p, Ts(i as i64), &mut |m| out.push(m)),
        }
    }
    d.end(&mut |m| out.push(m));
    // Messages 0-2 exact; 3 marked; 4 and 5 gone; 6 to 11 exact once the framing is found.
    let exact: Vec<&WsMessage> = out.iter().filter(|m| m.damage.is_none()).collect();
    let want: Vec<&Vec<u8>> = msgs.iter().enumerate().filter(|(i, _)| ![3, 4, 5].contains(i)).map(|(_, m)| &m.1).collect();
    assert_eq!(exact.iter().map(|m| &m.data).collect::<Vec<_>>(), want);
    assert_eq!(out.iter().filter(|m| m.damage.is_some()).count(), 1);
    assert_eq!(d.stats().resyncs, 1);
}

#[test]
fn messages_that_refer_to_lost_compressed_data_are_marked_not_invented() {
    let repeated = b"{\"type\":\"subscribe\",\"channel\":\"orders\",\"account\":\"A-1001\"}".repeat(4);
    let mut z = Deflater::new(15, false);
    let msgs = [
        z.message(&repeated),       // 0
        z.message(b"lost message"), // 1: lost
        z.message(&repeated),       // 2: refers to 0, which the fresh inflater lacks
        z.message(&noise(200, 1)),  // 3: literals only: inflates exactly from nothing
        z.message(&noise(200, 1)),  // 4: refers to 3, which the new history has
    ];
    let mut d = WsDirection::new(false, &deflate_both(false, 15), WsLimits::default());
    let mut out = Vec::new();
    for (i, c) in msgs.iter().enumerate() {
        let f = frame(true, true, OP_TEXT, None, c);
        if i == 1 {
            d.push(&f[..3], Ts(1), &mut |m| out.push(m));
            d.gap(f.len() as u64 - 3, Ts(1), &mut |m| out.push(m));
        } else {
            d.push(&f, Ts(i as i64), &mut |m| out.push(m));
        }
    }
    d.end(&mut |m| out.push(m));
    assert_eq!(out.len(), 5, "{:?}", summary(&out));
    assert_eq!((&out[0].data, &out[0].damage), (&repeated, &None));
    assert_eq!(out[1].damage, Some(Damage::Gap { missing: msgs[1].len() as u64 + 2 - 3 }));
    assert_eq!(out[2].damage, Some(Damage::ContextLost));
    assert_eq!((&out[3].data, &out[3].damage), (&noise(200, 1), &None));
    assert_eq!((&out[4].data, &out[4].damage), (&noise(200, 1), &None));
}

#[test]
fn protocol_breaks_are_marked() {
    let mut s = frame(true, false, OP_CONTINUATION, None, b"orphan");
    s.extend(frame(false, false, OP_TEXT, None, b"never "));
    s.extend(frame(true, false, OP_TEXT, None, b"finished"));
    s.extend(frame(false, false, OP_BINARY, None, b"cut"));
    let got = parse(false, &Extensions::default(), WsLimits::default(), &s, 4);
    assert_eq!(got.len(), 4);
    assert!(matches!(got[0].damage, Some(Damage::Protocol(_))));
    assert_eq!(got[1].data, b"never ");
    assert!(matches!(got[1].damage, Some(Damage::Protocol(_))));
    assert_eq!((got[2].data.as_slice(), &got[2].damage), (&b"finished"[..], &None));
    assert_eq!(got[3].damage, Some(Damage::Unfinished));

    // RSV1 without a negotiated extension: kept as sent, marked.
    let got = parse(false, &Extensions::default(), WsLimits::default(), &frame(true, true, OP_TEXT, None, b"xx"), 1);
    assert!(matches!(got[0].damage, Some(Damage::Unsupported(_))));
    assert_eq!(got[0].data, b"xx");
}

#[test]
fn a_bad_header_in_sync_loses_the_framing_without_inventing_messages() {
    let mut s = frame(true, false, OP_TEXT, None, b"ok");
    s.extend([0x73, 0x05, 1, 2, 3, 4, 5]); // reserved bits set: not a frame
    let ps: Vec<Vec<u8>> = (0..5u8).map(|i| frame(true, false, OP_TEXT, None, &[b'a' + i; 20])).collect();
    let mut d = WsDirection::new(false, &Extensions::default(), WsLimits::default());
    let mut out = Vec::new();
    d.push(&s, Ts(0), &mut |m| out.push(m));
    for p in &ps {
        d.push(p, Ts(1), &mut |m| out.push(m));
    }
    d.end(&mut |m| out.push(m));
    assert_eq!(out[0].data, b"ok");
    assert_eq!(d.stats().bad_headers, 1);
    // Found again at the next piece: the rest exact, nothing made up.
    let rest: Vec<&[u8]> = out[1..].iter().map(|m| m.data.as_slice()).collect();
    assert_eq!(rest, ps.iter().map(|p| &p[2..]).collect::<Vec<_>>());
}

// ---------------------------------------------------------------------------------------------
// properties

use proptest::prelude::*;

#[derive(Clone, Debug)]
struct Msg {
    opcode: u8,
    data: Vec<u8>,
    /// Fragment sizes (data messages only).
    frags: Vec<usize>,
    compressed: bool,
}

fn msg() -> impl Strategy<Value = Msg> {
    let data = prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..200),
        (0usize..3000, any::<u32>()).prop_map(|(n, s)| noise(n, s)),
        (1usize..40, 0usize..60).prop_map(|(n, k)| format!("{{\"k\":{k},\"v\":\"text\"}}").repeat(n).into_bytes()),
    ];
    (
        prop_oneof![Just(OP_TEXT), Just(OP_BINARY), Just(OP_PING), Just(OP_CLOSE)],
        data,
        proptest::collection::vec(1usize..500, 0..3),
        any::<bool>(),
    )
        .prop_map(|(opcode, mut data, frags, compressed)| {
            let control = opcode >= OP_CLOSE;
            if control {
                data.truncate(125);
            }
            Msg { opcode, data, frags: if control { vec![] } else { frags }, compressed: compressed && !control }
        })
}

/// The stream of `msgs` from one side, and for each message the pieces it was written in.
fn encode_all(msgs: &[Msg], client: bool, z: &mut Option<Deflater>) -> Vec<Vec<u8>> {
    let mask = client.then_some(MASK);
    let mut out = Vec::new();
    for m in msgs {
        let payload = match (m.compressed, z.as_mut()) {
            (true, Some(z)) => z.message(&m.data),
            _ => m.data.clone(),
        };
        let rsv1 = m.compressed && z.is_some();
        let mut frames = Vec::new();
        let mut rest = &payload[..];
        for &f in &m.frags {
            if f >= rest.len() {
                break;
            }
            frames.push(rest[..f].to_vec());
            rest = &rest[f..];
        }
        frames.push(rest.to_vec());
        let mut piece = Vec::new();
        let last = frames.len() - 1;
        for (i, f) in frames.iter().enumerate() {
            let op = if i == 0 { m.opcode } else { OP_CONTINUATION };
            piece.extend(frame(i == last, rsv1 && i == 0, op, mask, f));
        }
        out.push(piece);
    }
    out
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 300,
        rng_seed: proptest::test_runner::RngSeed::Fixed(20_261_203),
        ..ProptestConfig::default()
    })]

    /// Any messages, fragmented, compressed or not, masked from the client, cut into arbitrary
    /// pieces: every message comes out exactly, in order.
    #[test]
    fn any_stream_in_any_pieces_is_exact(
        msgs in proptest::collection::vec(msg(), 0..12),
        client in any::<bool>(),
        deflate in any::<bool>(),
        no_takeover in any::<bool>(),
        cuts in proptest::collection::vec(1usize..2000, 1..40),
    ) {
        let ext = if deflate { deflate_both(no_takeover, 15) } else { Extensions::default() };
        let mut z = deflate.then(|| Deflater::new(15, no_takeover));
        let stream: Vec<u8> = encode_all(&msgs, client, &mut z).concat();
        let mut d = WsDirection::new(client, &ext, WsLimits::default());
        let mut out = Vec::new();
        let mut rest = &stream[..];
        let mut k = 0;
        while !rest.is_empty() {
            let n = cuts[k % cuts.len()].min(rest.len());
            d.push(&rest[..n], Ts(k as i64), &mut |m| out.push(m));
            rest = &rest[n..];
            k += 1;
        }
        d.end(&mut |m| out.push(m));
        prop_assert_eq!(out.len(), msgs.len());
        for (m, w) in out.iter().zip(&msgs) {
            prop_assert_eq!(m.opcode, w.opcode);
            prop_assert_eq!(&m.data, &w.data);
            prop_assert_eq!(&m.damage, &None);
        }
    }

    /// The same with whole pieces lost (as a capture loses segments, each message written in
    /// one piece): every message before the first loss comes out exactly, and every message
    /// that comes out unmarked after it is exactly one that was sent, in order.
    #[test]
    fn after_losses_every_unmarked_message_is_one_that_was_sent(
        msgs in proptest::collection::vec(msg(), 1..16),
        client in any::<bool>(),
        deflate in any::<bool>(),
        lost in proptest::collection::vec(any::<bool>(), 16),
        cut_lost in any::<bool>(),
    ) {
        let ext = if deflate { deflate_both(false, 15) } else { Extensions::default() };
        let mut z = deflate.then(|| Deflater::new(15, false));
        let ps = encode_all(&msgs, client, &mut z);
        let mut d = WsDirection::new(client, &ext, WsLimits::default());
        let mut out = Vec::new();
        for (i, p) in ps.iter().enumerate() {
            if lost[i] && !p.is_empty() {
                // Lose the piece whole, or all but its first bytes.
                let keep = if cut_lost { p.len().min(3) } else { 0 };
                d.push(&p[..keep], Ts(i as i64), &mut |m| out.push(m));
                d.gap((p.len() - keep) as u64, Ts(i as i64), &mut |m| out.push(m));
            } else {
                d.push(p, Ts(i as i64), &mut |m| out.push(m));
            }
        }
        d.end(&mut |m| out.push(m));
        // Up to the first loss, everything, exactly.
        let first_loss = (0..ps.len()).find(|&i| lost[i]).unwrap_or(ps.len());
        for (m, w) in out.iter().zip(&msgs[..first_loss]) {
            prop_assert_eq!((m.opcode, &m.data, &m.damage), (w.opcode, &w.data, &None));
        }
        prop_assert!(out.len() >= first_loss);
        let mut j = 0;
        for m in out.iter().filter(|m| m.damage.is_none()) {
            while j < msgs.len() && !(msgs[j].opcode == m.opcode && msgs[j].data == m.data) {
                j += 1;
            }
            prop_assert!(j < msgs.len(), "an unmarked message that was not sent: {:?}", m);
            j += 1;
        }
        prop_assert!(d.stats().messages == out.len() as u64);
    }
}
