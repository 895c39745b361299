//! A global allocator that counts, for `apitool profile`: allocations, bytes live, and the
//! peak of bytes live.
//!
//! The binary installs [`Counting`] as its global allocator. Counting is off until
//! [`enable`] is called (by `apitool profile`): until then each allocation costs one relaxed
//! load of a flag more than the system allocator, so `convert` runs at full speed. Bytes
//! allocated before counting was enabled and freed after it make the live figure a little
//! lower than the truth (it is signed for that reason); the profile command enables counting
//! before it allocates anything large.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicBool, AtomicIsize, AtomicU64, Ordering::Relaxed};

/// The system allocator, counting when [`enable`]d.
pub struct Counting;

static ON: AtomicBool = AtomicBool::new(false);
static ALLOCATIONS: AtomicU64 = AtomicU64::new(0);
static LIVE: AtomicIsize = AtomicIsize::new(0);
static PEAK: AtomicIsize = AtomicIsize::new(0);

#[inline]
fn grew(by: usize) {
    let now = LIVE.fetch_add(by as isize, Relaxed) + by as isize;
    if now > PEAK.load(Relaxed) {
        PEAK.fetch_max(now, Relaxed);
    }
}

// SAFETY: every call is passed to the system allocator unchanged; the counters are atomics
// that never allocate, and a null result is passed back as it is.
unsafe impl GlobalAlloc for Counting {
    #[inline]
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: the caller's contract for `alloc` is the system allocator's.
        let p = unsafe { System.alloc(layout) };
        if ON.load(Relaxed) && !p.is_null() {
            ALLOCATIONS.fetch_add(1, Relaxed);
            grew(layout.size());
        }
        p
    }

    #[inline]
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: as for `alloc`.
        let p = unsafe { System.alloc_zeroed(layout) };
        if ON.load(Relaxed) && !p.is_null() {
            ALLOCATIONS.fetch_add(1, Relaxed);
            grew(layout.size());
        }
        p
    }

    #[inline]
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` was allocated by this allocator, that is by the system allocator, with
        // `layout`.
        unsafe { System.dealloc(ptr, layout) };
        if ON.load(Relaxed) {
            LIVE.fetch_sub(layout.size() as isize, Relaxed);
        }
    }

    #[inline]
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: as for `dealloc`, and `new_size` meets `realloc`'s contract by the caller's.
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if ON.load(Relaxed) && !p.is_null() {
            ALLOCATIONS.fetch_add(1, Relaxed);
            if new_size >= layout.size() {
                grew(new_size - layout.size());
            } else {
                LIVE.fetch_sub((layout.size() - new_size) as isize, Relaxed);
            }
        }
        p
    }
}

/// Starts counting. Returns whether [`Counting`] is the global allocator (counts move).
pub fn enable() -> bool {
    ON.store(true, Relaxed);
    let before = ALLOCATIONS.load(Relaxed);
    drop(std::hint::black_box(Box::new(std::hint::black_box(0u64))));
    ALLOCATIONS.load(Relaxed) > before
}

/// Whether counting is on and the counting allocator is installed.
pub fn active() -> bool {
    ON.load(Relaxed) && ALLOCATIONS.load(Relaxed) > 0
}

/// The counters at one moment.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Snapshot {
    /// Allocations (and reallocations) since counting began.
    pub allocations: u64,
    /// Bytes live now.
    pub live: u64,
    /// The most bytes live since the last [`reset_peak`].
    pub peak: u64,
}

pub fn snapshot() -> Snapshot {
    Snapshot { allocations: ALLOCATIONS.load(Relaxed), live: LIVE.load(Relaxed).max(0) as u64, peak: PEAK.load(Relaxed).max(0) as u64 }
}

/// Starts a new peak from the bytes live now; returns the peak that ends.
pub fn reset_peak() -> u64 {
    let live = LIVE.load(Relaxed);
    PEAK.swap(live, Relaxed).max(live).max(0) as u64
}
