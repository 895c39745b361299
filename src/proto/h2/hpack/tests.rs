//! RFC 7541 Appendix C vectors, Huffman edge cases and the lost-table rules.

use super::*;

fn hex(s: &str) -> Vec<u8> {
    let s: String = s.chars().filter(|c| !c.is_whitespace()).collect();
    (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap()).collect()
}

fn fields(list: &[(&str, &str)]) -> Vec<Field> {
    list.iter().map(|(n, v)| (n.as_bytes().to_vec(), v.as_bytes().to_vec())).collect()
}

/// Decodes each block in turn, checking its fields and the table size after it (RFC 7541
/// gives both).
/// A block in hex, the fields it gives, the table size after it.
type Step<'a> = (&'a str, &'a [(&'a str, &'a str)], usize);

fn run(d: &mut Decoder, steps: &[Step<'_>]) {
    for (i, (block, want, size)) in steps.iter().enumerate() {
        let mut out = Vec::new();
        d.decode(&hex(block), usize::MAX, &mut out).unwrap_or_else(|e| panic!("block {i}: {e:?}"));
        assert_eq!(out, fields(want), "block {i}");
        assert_eq!(d.held_bytes(), *size, "table size after block {i}");
    }
}

#[test]
fn c2_literal_and_indexed_fields() {
    let mut d = Decoder::new(4096);
    run(&mut d, &[("400a 6375 7374 6f6d 2d6b 6579 0d63 7573 746f 6d2d 6865 6164 6572", &[("custom-key", "custom-header")], 55)]);
    for (block, want) in [
        ("040c 2f73 616d 706c 652f 7061 7468", (":path", "/sample/path")),
        ("1008 7061 7373 776f 7264 0673 6563 7265 74", ("password", "secret")),
        ("82", (":method", "GET")),
    ] {
        let mut d = Decoder::new(4096);
        run(&mut d, &[(block, &[want], 0)]);
    }
}

const REQ: [&[(&str, &str)]; 3] = [
    &[(":method", "GET"), (":scheme", "http"), (":path", "/"), (":authority", "www.example.com")],
    &[(":method", "GET"), (":scheme", "http"), (":path", "/"), (":authority", "www.example.com"), ("cache-control", "no-cache")],
    &[
        (":method", "GET"),
        (":scheme", "https"),
        (":path", "/index.html"),
        (":authority", "www.example.com"),
        ("custom-key", "custom-value"),
    ],
];

#[test]
fn c3_requests_without_huffman() {
    let mut d = Decoder::new(4096);
    run(
        &mut d,
        &[
            ("8286 8441 0f77 7777 2e65 7861 6d70 6c65 2e63 6f6d", REQ[0], 57),
            ("8286 84be 5808 6e6f 2d63 6163 6865", REQ[1], 110),
            ("8287 85bf 400a 6375 7374 6f6d 2d6b 6579 0c63 7573 746f 6d2d 7661 6c75 65", REQ[2], 164),
        ],
    );
}

#[test]
fn c4_requests_with_huffman() {
    let mut d = Decoder::new(4096);
    run(
        &mut d,
        &[
            ("8286 8441 8cf1 e3c2 e5f2 3a6b a0ab 90f4 ff", REQ[0], 57),
            ("8286 84be 5886 a8eb 1064 9cbf", REQ[1], 110),
            ("8287 85bf 4088 25a8 49e9 5ba9 7d7f 8925 a849 e95b b8e8 b4bf", REQ[2], 164),
        ],
    );
}

const RESP: [&[(&str, &str)]; 3] = [
    &[(":status", "302"), ("cache-control", "private"), ("date", "Mon, 21 Oct 2013 20:13:21 GMT"), ("location", "https://www.example.com")],
    &[(":status", "307"), ("cache-control", "private"), ("date", "Mon, 21 Oct 2013 20:13:21 GMT"), ("location", "https://www.example.com")],
    &[
        (":status", "200"),
        ("cache-control", "private"),
        ("date", "Mon, 21 Oct 2013 20:13:22 GMT"),
        ("location", "https://www.example.com"),
        ("content-encoding", "gzip"),
        ("set-cookie", "foo=ASDJKHQKBZXOQWEOPIUAXQWEOIU; max-age=3600; version=1"),
    ],
];

/// C.5 and C.6 use a 256-byte table: a size update (`3fe101`, 256) before the first block
/// sets it, as an encoder would after SETTINGS_HEADER_TABLE_SIZE = 256.
#[test]
fn c5_responses_without_huffman_evict() {
    let mut d = Decoder::new(4096);
    run(
        &mut d,
        &[
            (
                "3fe101 4803 3330 3258 0770 7269 7661 7465 611d 4d6f 6e2c 2032 3120 4f63 7420 3230 3133 2032 303a 3133 3a32 3120 474d 546e 1768 7474 7073 3a2f 2f77 7777 2e65 7861 6d70 6c65 2e63 6f6d",
                RESP[0],
                222,
            ),
            ("4803 3330 37c1 c0bf", RESP[1], 222),
            (
                "88c1 611d 4d6f 6e2c 2032 3120 4f63 7420 3230 3133 2032 303a 3133 3a32 3220 474d 54c0 5a04 677a 6970 7738 666f 6f3d 4153 444a 4b48 514b 425a 584f 5157 454f 5049 5541 5851 5745 4f49 553b 206d 6178 2d61 6765 3d33 3630 303b 2076 6572 7369 6f6e 3d31",
                RESP[2],
                215,
            ),
        ],
    );
}

#[test]
fn c6_responses_with_huffman_evict() {
    let mut d = Decoder::new(4096);
    run(
        &mut d,
        &[
            (
                "3fe101 4882 6402 5885 aec3 771a 4b61 96d0 7abe 9410 54d4 44a8 2005 9504 0b81 66e0 82a6 2d1b ff6e 919d 29ad 1718 63c7 8f0b 97c8 e9ae 82ae 43d3",
                RESP[0],
                222,
            ),
            ("4883 640e ffc1 c0bf", RESP[1], 222),
            (
                "88c1 6196 d07a be94 1054 d444 a820 0595 040b 8166 e084 a62d 1bff c05a 839b d9ab 77ad 94e7 821d d7f2 e6c7 b335 dfdf cd5b 3960 d5af 2708 7f36 72c1 ab27 0fb5 291f 9587 3160 65c0 03ed 4ee5 b106 3d50 07",
                RESP[2],
                215,
            ),
        ],
    );
}

#[test]
fn huffman_padding_and_eos_are_checked() {
    let mut out = Vec::new();
    // "www.example.com" from C.4.1.
    huffman_decode(&hex("f1e3 c2e5 f23a 6ba0 ab90 f4ff"), &mut out).unwrap();
    assert_eq!(out, b"www.example.com");
    // Padding of zeros instead of ones.
    assert!(huffman_decode(&[0xf1, 0xe3, 0xc2, 0xe5, 0xf2, 0x3a, 0x6b, 0xa0, 0xab, 0x90, 0xf4, 0x00], &mut Vec::new()).is_err());
    // A whole byte of padding (more than 7 bits).
    assert!(huffman_decode(&[0xff], &mut Vec::new()).is_err());
    // EOS (30 ones) inside the string.
    assert!(huffman_decode(&[0xff, 0xff, 0xff, 0xff], &mut Vec::new()).is_err());
    // Every byte value round-trips through the code table.
    for sym in 0..=255u8 {
        let (code, len) = CODES[sym as usize];
        let total = len as u32 + 7;
        let bits = (code as u64) << (64 - len as u32);
        let pad = u64::MAX >> len as u32;
        let v = bits | pad;
        let bytes: Vec<u8> = (0..total / 8).map(|i| (v >> (56 - 8 * i)) as u8).collect();
        let mut out = Vec::new();
        huffman_decode(&bytes, &mut out).unwrap();
        assert_eq!(out, [sym], "symbol {sym}");
    }
}

#[test]
fn malformed_blocks_are_refused_without_panic() {
    for block in [
        &b"\x80"[..],                // index 0
        b"\xff",                     // an integer cut short
        b"\xff\xff\xff\xff\xff\x7f", // integer too large
        b"\x40\x85ab",               // string past the block
        b"\x82\x20",                 // size update after a field
        b"\xbe",                     // dynamic index 62 in an empty table
    ] {
        let mut d = Decoder::new(4096);
        // What the list held before stays; none of the failed block's fields is added, not
        // even those decoded before its fault (`\x82` is `:method: GET`).
        let mut out = fields(&[("before", "1")]);
        let r = d.decode(block, usize::MAX, &mut out);
        assert!(matches!(r, Err(BlockError::Malformed(_))), "{block:?}: {r:?}");
        assert_eq!(out, fields(&[("before", "1")]), "{block:?}");
    }
}

#[test]
fn a_lost_table_gives_unknown_then_recovers_new_entries() {
    let mut d = Decoder::new(4096);
    let mut out = Vec::new();
    d.decode(&hex("828684410f7777772e6578616d706c652e636f6d"), usize::MAX, &mut out).unwrap();
    d.lose_state();
    // C.3.2 references index 62 (:authority, inserted before the loss): unknown, never guessed.
    let mut out = Vec::new();
    assert_eq!(d.decode(&hex("828684be58086e6f2d6361636865"), usize::MAX, &mut out), Err(BlockError::Unknown));
    assert!(out.is_empty());
    // Its insertion (cache-control: no-cache) was still applied: index 62 is now known.
    let mut out = Vec::new();
    d.decode(&hex("82be"), usize::MAX, &mut out).unwrap();
    assert_eq!(out, fields(&[(":method", "GET"), ("cache-control", "no-cache")]));
    // Index 63 is the entry from before the loss.
    assert_eq!(d.decode(&hex("bf"), usize::MAX, &mut Vec::new()), Err(BlockError::Unknown));
    // A size update to 0 empties the table: it is known again.
    d.decode(&hex("20"), usize::MAX, &mut Vec::new()).unwrap();
    assert!(d.is_certain());
}

#[test]
fn the_list_cap_drops_fields_but_keeps_the_table() {
    let mut d = Decoder::new(4096);
    let mut out = Vec::new();
    // C.3.1 is 4 fields, 32 + name + value each: over a cap of 100.
    assert_eq!(d.decode(&hex("828684410f7777772e6578616d706c652e636f6d"), 100, &mut out), Err(BlockError::TooLarge));
    assert!(out.is_empty());
    d.decode(&hex("be"), 100, &mut out).unwrap();
    assert_eq!(out, fields(&[(":authority", "www.example.com")]));
}

#[test]
fn the_table_cap_bounds_memory_and_marks_what_it_drops() {
    let mut d = Decoder::new(64);
    // A size update past the cap: kept at the cap, entries past it unknown.
    d.decode(&hex("3fe101"), usize::MAX, &mut Vec::new()).unwrap();
    assert!(!d.is_certain());
    // Two entries of 57 bytes each: only the newest fits in 64.
    d.decode(&hex("410f7777772e6578616d706c652e636f6d"), usize::MAX, &mut Vec::new()).unwrap();
    d.decode(&hex("410f7777772e6578616d706c652e636f6e"), usize::MAX, &mut Vec::new()).unwrap();
    assert!(d.held_bytes() <= 64);
    let mut out = Vec::new();
    d.decode(&hex("be"), usize::MAX, &mut out).unwrap();
    assert_eq!(out, fields(&[(":authority", "www.example.con")]));
    assert_eq!(d.decode(&hex("bf"), usize::MAX, &mut Vec::new()), Err(BlockError::Unknown));
}
