//! Writes the seed corpora of every target into `DIR/<target>/` (default `fuzz/corpus`), from
//! the captures in `testdata/` (whole captures, their frames, their TCP payload streams) and
//! from bodies compressed here. Run by `run.sh` before fuzzing; the corpora are not committed.
//!
//! `cargo run --example seeds -- [DIR]`

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use apitool::capture::{FrameReader, Next};
use apitool::proto::http1::head::{Looks, sniff};
use apitool::wire::{self, Decoded};

fn save(dir: &Path, target: &str, name: &str, data: &[u8]) {
    let d = dir.join(target);
    std::fs::create_dir_all(&d).expect("corpus directory");
    std::fs::write(d.join(name), data).expect("write seed");
}

fn frames(file: &[u8]) -> Vec<(u32, Vec<u8>)> {
    let mut out = Vec::new();
    let Ok((mut r, mut pos)) = FrameReader::open(file) else { return out };
    while pos < file.len() {
        match r.next(&file[pos..]) {
            Next::Frame(f, n) => {
                out.push((f.linktype, f.data.to_vec()));
                pos += n;
            }
            Next::Skip(n) => pos += n,
            _ => break,
        }
    }
    out
}

const LINKTYPES: &[u32] = &[0, 1, 12, 14, 101, 104, 105, 108, 113, 127, 129, 228, 229, 239, 276, 147];

fn main() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let dir = std::env::args().nth(1).map_or_else(|| root.join("corpus"), PathBuf::from);
    let testdata = root.join("../testdata");
    let mut captures: Vec<PathBuf> = std::fs::read_dir(&testdata)
        .expect("testdata")
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "pcap" || e == "pcapng"))
        .collect();
    captures.sort();
    for path in &captures {
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let file = std::fs::read(path).expect("read capture");
        // capture: the file as it is (cut at 64 KiB).
        let mut v = vec![0u8];
        v.extend_from_slice(&file[..file.len().min(64 << 10)]);
        save(&dir, "capture", &name, &v);
        // convert: small captures, read as a stream and mapped, one and two threads.
        if file.len() <= 32 << 10 {
            for mode in 0..4u8 {
                let mut v = vec![mode];
                v.extend_from_slice(&file);
                save(&dir, "convert", &format!("{name}.{mode}"), &v);
            }
        }
        // wire: the frames, eight to a seed.
        let fs = frames(&file);
        for (k, group) in fs.chunks(8).take(4).enumerate() {
            let mut v = Vec::new();
            for (lt, data) in group {
                let sel = LINKTYPES.iter().position(|x| x == lt).unwrap_or(0) as u8;
                let d = &data[..data.len().min(65535)];
                v.push(sel);
                v.push(0);
                v.extend_from_slice(&(d.len() as u16).to_le_bytes());
                v.extend_from_slice(d);
            }
            save(&dir, "wire", &format!("{name}.{k}"), &v);
        }
        // http: each connection's two payload streams, in capture order.
        let mut conns: BTreeMap<wire::FlowKey, [Vec<u8>; 2]> = BTreeMap::new();
        for (lt, data) in &fs {
            let frame = apitool::capture::Frame { index: 0, ts: apitool::capture::Ts(0), linktype: *lt, data, orig_len: data.len() as u32 };
            if let Decoded::Tcp(seg) = wire::decode(&frame) {
                conns.entry(seg.key).or_default()[seg.dir.idx()].extend_from_slice(seg.payload);
            }
        }
        for (k, [a, b]) in conns.values().enumerate().take(4) {
            let (client, server) = if sniff(b) == Looks::Request { (b, a) } else { (a, b) };
            let client = &client[..client.len().min(16_000)];
            let server = &server[..server.len().min(16_000)];
            let mut v = vec![0b10011];
            v.extend_from_slice(&(client.len() as u16).to_le_bytes());
            v.extend_from_slice(client);
            v.extend_from_slice(server);
            v.push(0);
            save(&dir, "http", &format!("{name}.{k}"), &v);
        }
    }
    // decode: a JSON body in every coding, alone and stacked.
    let plain: Vec<u8> = (0..300u32).flat_map(|i| format!("{{\"id\":{i},\"name\":\"item {}\"}},", i % 17).into_bytes()).collect();
    let gzip = |d: &[u8]| {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        e.write_all(d).unwrap();
        e.finish().unwrap()
    };
    let zlib = |d: &[u8]| {
        let mut e = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::fast());
        e.write_all(d).unwrap();
        e.finish().unwrap()
    };
    let br = |d: &[u8]| {
        let mut out = Vec::new();
        {
            let mut w = brotli::CompressorWriter::new(&mut out, 4096, 5, 18);
            w.write_all(d).unwrap();
        }
        out
    };
    let zstd = |d: &[u8]| zstd::encode_all(d, 3).unwrap();
    // Selector: count in bits 0-1, then two bits per coding (gzip 0, deflate 1, br 2, zstd 3),
    // listed in the order they were applied.
    let cases: Vec<(&str, u8, Vec<u8>)> = vec![
        ("gzip", 1, gzip(&plain)),
        ("deflate", 1 | 1 << 2, zlib(&plain)),
        ("br", 1 | 2 << 2, br(&plain)),
        ("zstd", 1 | 3 << 2, zstd(&plain)),
        ("gzip-br", 2 | 2 << 4, br(&gzip(&plain))),
        // zstd first (3), then deflate (1), then gzip (0, no bits).
        ("zstd-deflate-gzip", 3 | 3 << 2 | 1 << 4, gzip(&zlib(&zstd(&plain)))),
        ("identity", 0, plain.clone()),
    ];
    for (name, sel, enc) in cases {
        for cap in [1u8, 2, 3] {
            let mut v = vec![sel, cap, 7];
            v.extend_from_slice(&enc);
            save(&dir, "decode", &format!("{name}.{cap}"), &v);
        }
    }
    let mut v = vec![0x80, 2, 9];
    v.extend_from_slice(b"gzip, br\n");
    v.extend_from_slice(&br(&gzip(&plain)));
    save(&dir, "decode", "list-gzip-br", &v);
    // reassembly: arbitrary bytes (its input is `arbitrary`-encoded).
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    for (k, len) in [64usize, 256, 1024, 4096].into_iter().enumerate() {
        let v: Vec<u8> = (0..len)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect();
        save(&dir, "reassembly", &format!("random.{k}"), &v);
    }
    // The committed seeds (fuzz/seeds/<target>/) too.
    for t in std::fs::read_dir(root.join("seeds")).into_iter().flatten().flatten() {
        for e in std::fs::read_dir(t.path()).into_iter().flatten().flatten() {
            let data = std::fs::read(e.path()).expect("read seed");
            save(&dir, &t.file_name().to_string_lossy(), &e.file_name().to_string_lossy(), &data);
        }
    }
    // witness: the shared test vectors, encoded.
    let vectors = root.join("../../shared/ir-vectors/generalize_witnesses");
    for e in std::fs::read_dir(&vectors).into_iter().flatten().flatten() {
        let Ok(text) = std::fs::read_to_string(e.path()) else { continue };
        if let Ok(w) = apitool::ir::text::parse::<apitool::ir::Witness>(&text) {
            save(&dir, "witness", &e.file_name().to_string_lossy(), &prost::Message::encode_to_vec(&w));
        }
    }
}
