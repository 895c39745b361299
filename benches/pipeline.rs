//! Throughput of each stage of `convert`, in bytes of capture per second, on a generated capture
//! of realistic API traffic (`apitool::synth`, seed 7, 32 MiB): frame iteration, link/IP/TCP
//! decoding, reassembly with HTTP parsing and body decoding, HAR entry writing, witness building
//! (construction, hashing and encoding), body decoding alone, and the whole conversion to HAR
//! and to witnesses. Before measuring it prints allocations per packet and per exchange of a
//! whole conversion, and per witness, counted by a wrapping global allocator.
//!
//! `cargo bench --bench pipeline` (add `-- --quick` for a short run).

use std::alloc::{GlobalAlloc, Layout, System};
use std::hint::black_box;
use std::io::Write;
use std::sync::atomic::{AtomicUsize, Ordering};

use apitool::capture::{FrameReader, Input, Next};
use apitool::flow::{FlowLimits, Shard};
use apitool::ir::build::{WitnessBuilder, WitnessOptions};
use apitool::output::filter::Filter;
use apitool::pipeline::{Config, Converter, OutputOptions};
use apitool::proto::http1::decode::{BodyDecoder, Coding};
use apitool::proto::http1::{Exchange, HttpLimits};
use apitool::wire::{self, Decoded};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};

struct Counting;

static ALLOCS: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: forwarded unchanged to the system allocator.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` came from `System.alloc` with this layout.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: forwarded unchanged to the system allocator.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// A generated capture, written to a temporary file so it can be memory-mapped.
fn capture() -> (tempfile::NamedTempFile, Vec<u8>) {
    let cfg = apitool::synth::SynthConfig { seed: 7, target_bytes: 32 << 20, ..Default::default() };
    let format = apitool::synth::pcap::CaptureFormat::from_name("pcap", apitool::synth::pcap::LinkType::Ethernet).expect("pcap format");
    let (_, bytes) = apitool::synth::generate_to(&cfg, &format, Vec::new(), &mut |_| Ok(())).expect("generate");
    let mut f = tempfile::NamedTempFile::new().expect("temp file");
    f.write_all(&bytes).expect("write capture");
    (f, bytes)
}

fn frames(data: &[u8], mut each: impl FnMut(&apitool::capture::Frame<'_>)) {
    let (mut r, mut pos) = FrameReader::open(data).expect("a capture");
    while pos < data.len() {
        match r.next(&data[pos..]) {
            Next::Frame(f, n) => {
                each(&f);
                pos += n;
            }
            Next::Skip(n) => pos += n,
            _ => break,
        }
    }
}

fn shard_run(data: &[u8]) -> Vec<Exchange> {
    let mut shard = Shard::new(FlowLimits::default(), HttpLimits::default(), Vec::<Exchange>::new());
    let mut last = Default::default();
    frames(data, |f| {
        last = f.ts;
        if let Decoded::Tcp(seg) = wire::decode(f) {
            shard.segment(&seg);
        }
    });
    shard.finish(last);
    shard.sink
}

fn report_allocations(file: &std::path::Path, data: &[u8]) {
    let mut packets = 0u64;
    frames(data, |_| packets += 1);
    let conv = Converter::new(Config { threads: 1, ..Config::default() });
    let before = ALLOCS.load(Ordering::Relaxed);
    let (summary, _) = conv.convert(Input::open(file).expect("open"), "bench", std::io::sink(), &mut |_| {}).expect("convert");
    let n = (ALLOCS.load(Ordering::Relaxed) - before) as f64;
    eprintln!(
        "allocations in a whole conversion: {n} for {packets} packets and {} exchanges: {:.2} per packet, {:.1} per exchange",
        summary.entries,
        n / packets as f64,
        n / summary.entries.max(1) as f64
    );

    // Witnesses: a whole conversion, and the same with every exchange filtered out (the
    // difference is what building, hashing, encoding and writing witnesses allocate).
    let witness_run = |output: OutputOptions| {
        let conv = Converter::new(Config { threads: 1, output, ..Config::default() });
        let before = ALLOCS.load(Ordering::Relaxed);
        let (summary, _, _) = conv
            .convert_to(Input::open(file).expect("open"), "bench", None::<std::io::Sink>, Some(std::io::sink()), &mut |_| {})
            .expect("convert");
        (ALLOCS.load(Ordering::Relaxed) - before, summary)
    };
    let (all, summary) = witness_run(OutputOptions::default());
    let none = Filter::from_patterns(&["^$".into()], &[]).expect("filter");
    let (base, _) = witness_run(OutputOptions { filter: Some(std::sync::Arc::new(none)), ..OutputOptions::default() });
    let w = summary.witnesses.as_ref().map_or(0, |w| w.written).max(1) as f64;
    eprintln!(
        "allocations in a whole witness conversion: {all} for {w} witnesses: {:.1} per witness, {:.1} per witness for building, hashing, encoding and writing it",
        all as f64 / w,
        all.saturating_sub(base) as f64 / w
    );
}

fn bench(c: &mut Criterion) {
    let (file, data) = capture();
    report_allocations(file.path(), &data);
    let bytes = data.len() as u64;
    let mut g = c.benchmark_group("stages");
    g.throughput(Throughput::Bytes(bytes));
    g.sample_size(10);
    g.bench_function("frames", |b| {
        b.iter(|| {
            let mut n = 0usize;
            frames(&data, |f| n += f.data.len());
            black_box(n)
        })
    });
    g.bench_function("decode", |b| {
        b.iter(|| {
            let mut n = 0usize;
            frames(&data, |f| {
                if let Decoded::Tcp(s) = wire::decode(f) {
                    n += s.payload.len();
                }
            });
            black_box(n)
        })
    });
    g.bench_function("reassembly_http_decoding", |b| b.iter(|| black_box(shard_run(&data).len())));
    let exchanges = shard_run(&data);
    g.bench_function("har_entries", |b| {
        let mut buf = Vec::with_capacity(1 << 20);
        b.iter(|| {
            let mut total = 0;
            for ex in &exchanges {
                buf.clear();
                apitool::output::har::write_entry(&mut buf, ex);
                total += buf.len();
            }
            black_box(total)
        })
    });
    g.bench_function("witnesses", |b| {
        let mut builder = WitnessBuilder::new(WitnessOptions::default());
        let mut buf = Vec::with_capacity(1 << 20);
        b.iter(|| {
            let mut total = 0;
            for ex in &exchanges {
                buf.clear();
                if let Some(w) = builder.build(ex) {
                    builder.encode(&w, &mut buf);
                    builder.recycle(w);
                }
                total += buf.len();
            }
            black_box(total)
        })
    });
    for threads in [1, 2] {
        let conv = Converter::new(Config { threads, ..Config::default() });
        g.bench_function(format!("convert_{threads}_threads"), |b| {
            b.iter(|| {
                let (s, _) = conv.convert(Input::open(file.path()).expect("open"), "bench", std::io::sink(), &mut |_| {}).expect("convert");
                black_box(s.entries)
            })
        });
        g.bench_function(format!("convert_witness_{threads}_threads"), |b| {
            b.iter(|| {
                let (s, _, _) = conv
                    .convert_to(Input::open(file.path()).expect("open"), "bench", None::<std::io::Sink>, Some(std::io::sink()), &mut |_| {})
                    .expect("convert");
                black_box(s.entries)
            })
        });
    }
    g.finish();

    // Body decoding alone, in bytes of decoded output per second.
    let body: Vec<u8> =
        (0..20_000u32).flat_map(|i| format!("{{\"id\":{i},\"name\":\"user{}\",\"ok\":true}},", i % 977).into_bytes()).collect();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(&body).expect("gzip");
    let gz = gz.finish().expect("gzip");
    let mut br = Vec::new();
    {
        let mut w = brotli::CompressorWriter::new(&mut br, 4096, 5, 22);
        w.write_all(&body).expect("br");
    }
    let mut g = c.benchmark_group("body_decoding");
    g.throughput(Throughput::Bytes(body.len() as u64));
    for (name, coding, enc) in [("gzip", Coding::Gzip, &gz), ("br", Coding::Brotli, &br)] {
        g.bench_function(name, |b| {
            b.iter(|| {
                let mut d = BodyDecoder::new(&[coding], 64 << 20);
                for piece in enc.chunks(1448) {
                    d.push(piece);
                }
                d.finish();
                black_box(d.out.len())
            })
        });
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
