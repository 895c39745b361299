//! Hashing the parsed vector witnesses (`../shared/ir-vectors/generalize_witnesses`).
//!
//! Reports time per witness (criterion's throughput in elements) and, once before measuring,
//! the allocations per witness hash counted by a wrapping global allocator.

use std::alloc::{GlobalAlloc, Layout, System};
use std::hint::black_box;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use apitool::ir::hash::{ObjectHasher, digest};
use apitool::ir::pb;
use apitool::ir::text;
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

fn load() -> Vec<pb::Witness> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/ir-vectors/generalize_witnesses");
    let Ok(entries) = std::fs::read_dir(&dir) else {
        eprintln!("notice: {} not found; nothing to bench", dir.display());
        return Vec::new();
    };
    let mut names: Vec<_> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.file_name().is_some_and(|n| n.to_string_lossy().starts_with("gitlab.")))
        .collect();
    names.sort();
    names
        .iter()
        .map(|p| {
            let src = std::fs::read_to_string(p).expect("read vector");
            text::parse(&src).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
        })
        .collect()
}

fn bench(c: &mut Criterion) {
    let witnesses = load();
    if witnesses.is_empty() {
        return;
    }
    let n = witnesses.len();

    let mut h = ObjectHasher::new();
    let before = ALLOCS.load(Ordering::Relaxed);
    for w in &witnesses {
        black_box(h.digest(w));
    }
    let cold = ALLOCS.load(Ordering::Relaxed) - before;
    let before = ALLOCS.load(Ordering::Relaxed);
    for w in &witnesses {
        black_box(h.digest(w));
    }
    let warm = ALLOCS.load(Ordering::Relaxed) - before;
    eprintln!(
        "allocations hashing {n} witnesses: {cold} with a new ObjectHasher, {warm} reusing it \
         ({:.2} per witness warm)",
        warm as f64 / n as f64
    );

    let mut g = c.benchmark_group("ir_hash");
    g.throughput(Throughput::Elements(n as u64));
    g.bench_function("reused_hasher", |b| {
        b.iter(|| {
            for w in &witnesses {
                black_box(h.digest(black_box(w)));
            }
        })
    });
    g.bench_function("thread_local_digest", |b| {
        b.iter(|| {
            for w in &witnesses {
                black_box(digest(black_box(w)));
            }
        })
    });
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .sample_size(20)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2));
    targets = bench
}
criterion_main!(benches);
