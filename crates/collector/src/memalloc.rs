//! Allocation sampling and the live-heap table, independent of the interpreter.
//!
//! * [`ByteSampler`]: a Poisson process over allocated bytes with mean `mean` bytes. An
//!   allocation of `size` bytes is sampled when a sample point falls inside it, which happens
//!   with probability `p = 1 - exp(-size / mean)`; a sampled allocation then stands for
//!   `size / p` bytes and `1 / p` allocations (Horvitz–Thompson), so profile totals estimate
//!   the true bytes and counts whatever the allocation sizes.
//! * [`AddrFilter`]: a lock-free two-level filter in front of the live table. Every free
//!   checks one bit of a small, locality-preserving bitmap; only addresses whose bit is set
//!   (sampled allocations, plus rare collisions) check a second, hashed level, and only those
//!   that pass both go on to the table. It never has false negatives, not even while it is
//!   rebuilt: readers need no lock (a free that does not hold the GIL may check it at any
//!   time), counts dropping to zero clear bits, and saturated ones are cleared by rebuilding
//!   it from the live entries, which moves every word straight to its new value.
//! * [`HeapTable`]: the sampled allocations not yet freed, bounded (insertions beyond the
//!   capacity are dropped and counted).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU16, AtomicU64, AtomicU8, Ordering};

/// Estimates carried by one sampled allocation.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Weight {
    /// Estimated bytes this sample stands for (`size / p`).
    pub bytes: i64,
    /// Estimated number of allocations it stands for (`1 / p`, stochastically rounded).
    pub count: i64,
}

/// Sampling of an allocation stream by bytes.
#[derive(Debug, Clone)]
pub struct ByteSampler {
    mean: f64,
    rng: u64,
}

impl ByteSampler {
    /// A sampler with one sample point every `mean` bytes on average (at least 1).
    pub fn new(mean: u64, seed: u64) -> Self {
        ByteSampler {
            mean: mean.max(1) as f64,
            rng: seed | 1,
        }
    }

    /// Mean bytes between sample points.
    pub fn mean(&self) -> u64 {
        self.mean as u64
    }

    fn next_u64(&mut self) -> u64 {
        let mut x = self.rng;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.rng = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Uniform in (0, 1].
    fn uniform(&mut self) -> f64 {
        ((self.next_u64() >> 11) as f64 + 1.0) / (1u64 << 53) as f64
    }

    /// Bytes until the next sample point: exponential with mean `mean`, at least 1.
    pub fn draw(&mut self) -> i64 {
        let d = -self.uniform().ln() * self.mean;
        if d.is_finite() && d >= 1.0 {
            d.min(i64::MAX as f64 / 4.0) as i64
        } else {
            1
        }
    }

    /// The estimates a sampled allocation of `size` bytes carries.
    pub fn weight(&mut self, size: usize) -> Weight {
        let size = size.max(1) as f64;
        // -expm1(-x) = 1 - exp(-x), accurate for small x.
        let p = (-(-size / self.mean).exp_m1()).clamp(f64::MIN_POSITIVE, 1.0);
        let count = 1.0 / p;
        let whole = count.floor();
        let count = if self.uniform() <= count - whole {
            whole + 1.0
        } else {
            whole
        };
        Weight {
            bytes: (size / p).round().min(i64::MAX as f64) as i64,
            count: count.min(i64::MAX as f64) as i64,
        }
    }
}

/// Level-one bits: one per 16-byte granule of a 2 MiB address window (16 KiB).
const L1_LOG: u32 = 17;
const L1_BITS: usize = 1 << L1_LOG;
const L1_WORDS: usize = L1_BITS / 64;
/// Level-two slots: one counting byte each (128 KiB), read only after a level-one hit.
const FILTER_SLOTS: usize = 1 << 17;

/// A two-level filter of addresses that may be in the live table (no false negatives).
///
/// Every free reads one bit of level one. Its index keeps address locality (16-byte granules,
/// modulo a 2 MiB window), so frees close in memory (the same pymalloc pool) read the
/// same cache line and the 16 KiB bitmap stays in L1 cache where a hashed index sent every
/// free to a random line of a 128 KiB array (a cache miss each: most of the free path's cost).
/// Only the addresses whose level-one bit is set (sampled allocations, plus about
/// `live / 2^17` of the rest) read level two, a hashed counting byte array, which sends about
/// `live / 2^17` of those on to the table.
///
/// Both levels count, rather than keep plain bits: pymalloc hands the same addresses out
/// again and again, so a bit left behind by a freed sampled allocation would send every later
/// free of that hot address to the table. The level-one counts live apart from the bits and
/// are only touched on insert and remove. A saturated count stays set until
/// [`HeapTable::rebuild_filter`].
pub struct AddrFilter {
    bits: [AtomicU64; L1_WORDS],
    counts: [AtomicU16; L1_BITS],
    slots: [AtomicU8; FILTER_SLOTS],
}

impl Default for AddrFilter {
    fn default() -> Self {
        Self::new()
    }
}

impl AddrFilter {
    /// An empty filter (usable in a `static`).
    pub const fn new() -> Self {
        AddrFilter {
            bits: [const { AtomicU64::new(0) }; L1_WORDS],
            counts: [const { AtomicU16::new(0) }; L1_BITS],
            slots: [const { AtomicU8::new(0) }; FILTER_SLOTS],
        }
    }

    /// Level-one bit of `addr`: its 16-byte granule modulo the window. (Mixing in the bits
    /// above the window would spread page-aligned blocks, which all fall on 512 of the bits,
    /// but costs three instructions on every free; level two sorts those out.)
    #[inline(always)]
    fn bit(addr: usize) -> usize {
        (addr >> 4) & (L1_BITS - 1)
    }

    #[inline(always)]
    fn slot(addr: usize) -> usize {
        // Allocations are at least 8-byte aligned: drop the low bits, then mix.
        (((addr as u64) >> 3).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 47) as usize
            & (FILTER_SLOTS - 1)
    }

    /// Whether `addr` may be tracked: one relaxed load of a (usually cached) bitmap word, and
    /// a second load only when its bit is set.
    #[inline(always)]
    pub fn maybe_contains(&self, addr: usize) -> bool {
        let b = Self::bit(addr);
        (self.bits[b / 64].load(Ordering::Relaxed) >> (b % 64)) & 1 != 0
            && self.slots[Self::slot(addr)].load(Ordering::Relaxed) != 0
    }

    /// Counts `addr` in (callers serialise insert/remove: the table's lock).
    pub fn insert(&self, addr: usize) {
        let s = &self.slots[Self::slot(addr)];
        let v = s.load(Ordering::Relaxed);
        if v < u8::MAX {
            s.store(v + 1, Ordering::Relaxed);
        }
        let b = Self::bit(addr);
        let c = &self.counts[b];
        let v = c.load(Ordering::Relaxed);
        if v < u16::MAX {
            c.store(v + 1, Ordering::Relaxed);
        }
        if v == 0 {
            self.bits[b / 64].fetch_or(1 << (b % 64), Ordering::Relaxed);
        }
    }

    /// Counts `addr` out (a saturated count stays set).
    pub fn remove(&self, addr: usize) {
        let s = &self.slots[Self::slot(addr)];
        let v = s.load(Ordering::Relaxed);
        if v > 0 && v < u8::MAX {
            s.store(v - 1, Ordering::Relaxed);
        }
        let b = Self::bit(addr);
        let c = &self.counts[b];
        let v = c.load(Ordering::Relaxed);
        if v > 0 && v < u16::MAX {
            c.store(v - 1, Ordering::Relaxed);
            if v == 1 {
                self.bits[b / 64].fetch_and(!(1 << (b % 64)), Ordering::Relaxed);
            }
        }
    }

    /// Sets the filter to hold exactly `addrs` (callers serialise this with insert/remove).
    ///
    /// Concurrent readers never see a false negative for an address in `addrs`: the new
    /// counts are computed apart, then each word is stored once, straight from its old value to
    /// its new one, and a live address's bit and slot are set in both. (Clearing first and
    /// inserting again would leave a window in which a live address is missed.) Returns false,
    /// changing nothing, when the 384 KiB of scratch space cannot be allocated.
    pub fn rebuild(&self, addrs: impl Iterator<Item = usize>) -> bool {
        let (mut counts, mut slots) = (Vec::<u16>::new(), Vec::<u8>::new());
        if counts.try_reserve_exact(L1_BITS).is_err()
            || slots.try_reserve_exact(FILTER_SLOTS).is_err()
        {
            return false;
        }
        counts.resize(L1_BITS, 0);
        slots.resize(FILTER_SLOTS, 0);
        for a in addrs {
            let c = &mut counts[Self::bit(a)];
            *c = c.saturating_add(1);
            let s = &mut slots[Self::slot(a)];
            *s = s.saturating_add(1);
        }
        for (i, &v) in slots.iter().enumerate() {
            let s = &self.slots[i];
            if s.load(Ordering::Relaxed) != v {
                s.store(v, Ordering::Relaxed);
            }
        }
        for (w, chunk) in counts.chunks(64).enumerate() {
            let mut word = 0u64;
            for (j, &v) in chunk.iter().enumerate() {
                let c = &self.counts[w * 64 + j];
                if c.load(Ordering::Relaxed) != v {
                    c.store(v, Ordering::Relaxed);
                }
                word |= u64::from(v != 0) << j;
            }
            let b = &self.bits[w];
            if b.load(Ordering::Relaxed) != word {
                b.store(word, Ordering::Relaxed);
            }
        }
        true
    }

    /// Clears every slot (writing only the non-zero ones, so pages of a `static` filter that
    /// were never used stay unwritten).
    pub fn clear(&self) {
        for w in &self.bits {
            if w.load(Ordering::Relaxed) != 0 {
                w.store(0, Ordering::Relaxed);
            }
        }
        for c in &self.counts {
            if c.load(Ordering::Relaxed) != 0 {
                c.store(0, Ordering::Relaxed);
            }
        }
        for s in &self.slots {
            if s.load(Ordering::Relaxed) != 0 {
                s.store(0, Ordering::Relaxed);
            }
        }
    }
}

/// One sampled allocation that has not been freed yet.
#[derive(Debug, Clone)]
pub struct LiveAlloc<S> {
    /// Estimates of the allocation (see [`ByteSampler::weight`]).
    pub weight: Weight,
    /// Allocator domain (`obj`, `mem`, `raw`).
    pub domain: &'static str,
    /// Whatever the caller keeps to describe where it was allocated (the stack, thread).
    pub site: S,
}

/// Counters of a [`HeapTable`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct HeapCounters {
    /// Sampled allocations not tracked because the table was full.
    pub dropped: u64,
    /// Frees that passed the filter but were not in the table.
    pub filter_false_positives: u64,
    /// Tracked allocations freed.
    pub untracked: u64,
}

/// The bounded table of live sampled allocations.
pub struct HeapTable<S> {
    entries: HashMap<usize, LiveAlloc<S>>,
    capacity: usize,
    removed_since_rebuild: usize,
    rebuilds: u64,
    counters: HeapCounters,
}

impl<S> HeapTable<S> {
    /// An empty table holding at most `capacity` allocations.
    pub fn new(capacity: usize) -> Self {
        HeapTable {
            entries: HashMap::new(),
            capacity,
            removed_since_rebuild: 0,
            rebuilds: 0,
            counters: HeapCounters::default(),
        }
    }

    /// Number of tracked allocations.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether nothing is tracked.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Tracks `addr` (and marks it in `filter`); false when dropped because the table is full.
    pub fn insert(&mut self, filter: &AddrFilter, addr: usize, alloc: LiveAlloc<S>) -> bool {
        if self.entries.len() >= self.capacity && !self.entries.contains_key(&addr) {
            self.counters.dropped += 1;
            return false;
        }
        if self.entries.insert(addr, alloc).is_none() {
            filter.insert(addr);
        }
        true
    }

    /// Forgets `addr` if tracked and counts it out of `filter`.
    pub fn remove(&mut self, filter: &AddrFilter, addr: usize) -> Option<LiveAlloc<S>> {
        let r = self.entries.remove(&addr);
        if r.is_some() {
            filter.remove(addr);
            self.counters.untracked += 1;
            self.removed_since_rebuild += 1;
        } else {
            self.counters.filter_false_positives += 1;
        }
        r
    }

    /// Whether the filter has collected enough stale bits to be worth rebuilding.
    pub fn filter_is_stale(&self) -> bool {
        self.removed_since_rebuild > 65_536 + 4 * self.entries.len()
    }

    /// Sets `filter` to the live entries (no false negatives for them at any point, see
    /// [`AddrFilter::rebuild`]).
    pub fn rebuild_filter(&mut self, filter: &AddrFilter) {
        // Without memory for it, the filter stays as it is (correct, only slower) and the
        // rebuild is tried again after as many removals.
        if filter.rebuild(self.entries.keys().copied()) {
            self.rebuilds += 1;
        }
        self.removed_since_rebuild = 0;
    }

    /// How many times the filter was rebuilt (never reset: for tests and diagnostics).
    pub fn rebuilds(&self) -> u64 {
        self.rebuilds
    }

    /// Visits every live allocation.
    pub fn iter(&self) -> impl Iterator<Item = (&usize, &LiveAlloc<S>)> {
        self.entries.iter()
    }

    /// Returns and resets the counters.
    pub fn take_counters(&mut self) -> HeapCounters {
        std::mem::take(&mut self.counters)
    }

    /// Forgets everything (after fork, at stop) and clears `filter`.
    pub fn clear(&mut self, filter: &AddrFilter) {
        self.entries.clear();
        self.removed_since_rebuild = 0;
        filter.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs a stream of allocations through the countdown the way the hook does.
    fn estimate(sizes: &[usize], repeat: usize, mean: u64, seed: u64) -> (f64, f64) {
        let mut s = ByteSampler::new(mean, seed);
        let mut countdown = s.draw();
        let (mut bytes, mut count) = (0f64, 0f64);
        for _ in 0..repeat {
            for &size in sizes {
                countdown -= size as i64;
                if countdown <= 0 {
                    countdown = s.draw();
                    let w = s.weight(size);
                    bytes += w.bytes as f64;
                    count += w.count as f64;
                }
            }
        }
        (bytes, count)
    }

    #[test]
    fn estimates_are_unbiased_for_mixed_sizes() {
        let sizes = [24usize, 64, 100, 1000, 4096, 70_000, 3_000_000];
        let repeat = 20_000;
        let true_bytes: f64 = sizes.iter().sum::<usize>() as f64 * repeat as f64;
        let (b, _) = estimate(&sizes, repeat, 256 * 1024, 99);
        assert!(
            (b - true_bytes).abs() / true_bytes < 0.03,
            "{b} vs {true_bytes}"
        );
        // Counts are dominated by small objects: use a denser sampling to keep variance low.
        let sizes = [24usize, 64, 100, 1000, 4096];
        let true_count = (sizes.len() * repeat) as f64;
        let (_, c) = estimate(&sizes, repeat, 1024, 7);
        assert!(
            (c - true_count).abs() / true_count < 0.05,
            "{c} vs {true_count}"
        );
    }

    #[test]
    fn byte_ratio_of_two_sites_is_kept() {
        // Two interleaved allocators, one allocating 3x the bytes of the other.
        let mut s = ByteSampler::new(64 * 1024, 5);
        let mut countdown = s.draw();
        let mut per = [0f64; 2];
        for _ in 0..400_000 {
            for (i, size) in [(0usize, 300usize), (1, 100)] {
                countdown -= size as i64;
                if countdown <= 0 {
                    countdown = s.draw();
                    per[i] += s.weight(size).bytes as f64;
                }
            }
        }
        let ratio = per[0] / per[1];
        assert!((ratio - 3.0).abs() < 0.15, "ratio {ratio}");
    }

    #[test]
    fn filter_has_no_false_negatives_and_rebuilds() {
        let f = Box::new(AddrFilter::new());
        let mut t: HeapTable<()> = HeapTable::new(10_000);
        let w = Weight { bytes: 1, count: 1 };
        for i in 0..5000usize {
            let a = 0x7f00_0000_0000 + i * 48;
            assert!(t.insert(
                &f,
                a,
                LiveAlloc {
                    weight: w,
                    domain: "obj",
                    site: ()
                }
            ));
        }
        for i in 0..5000usize {
            assert!(f.maybe_contains(0x7f00_0000_0000 + i * 48));
        }
        for i in 0..4999usize {
            assert!(t.remove(&f, 0x7f00_0000_0000 + i * 48).is_some());
        }
        t.rebuild_filter(&f);
        assert!(f.maybe_contains(0x7f00_0000_0000 + 4999 * 48));
        let hits = (0..100_000usize)
            .filter(|i| f.maybe_contains(0x5500_0000_0000 + i * 16))
            .count();
        assert!(hits < 100, "false positives after rebuild: {hits}");
    }

    #[test]
    fn freed_hot_address_leaves_the_filter() {
        // pymalloc reuses addresses: a freed sampled allocation must not keep its slot set.
        let f = Box::new(AddrFilter::new());
        let mut t: HeapTable<()> = HeapTable::new(10);
        let w = Weight { bytes: 1, count: 1 };
        let a = 0x7f12_3456_7890usize;
        t.insert(
            &f,
            a,
            LiveAlloc {
                weight: w,
                domain: "obj",
                site: (),
            },
        );
        assert!(f.maybe_contains(a));
        assert!(t.remove(&f, a).is_some());
        assert!(!f.maybe_contains(a));
        assert_eq!(t.take_counters().filter_false_positives, 0);
    }

    #[test]
    fn shared_level_one_bits_are_counted() {
        // Two addresses sharing a level-one bit: freeing one must keep the other visible,
        // freeing both must clear the bit.
        let f = Box::new(AddrFilter::new());
        let a = 0x7f00_0000_0040usize;
        let b = a + (1 << (L1_LOG + 4));
        assert_eq!(AddrFilter::bit(a), AddrFilter::bit(b));
        f.insert(a);
        f.insert(a + 16);
        f.remove(a + 16);
        assert!(f.maybe_contains(a));
        f.insert(b);
        f.remove(b);
        assert!(f.maybe_contains(a));
        f.remove(a);
        assert!(!f.maybe_contains(a));
        assert!(f.bits.iter().all(|w| w.load(Ordering::Relaxed) == 0));
        assert!(f.counts.iter().all(|c| c.load(Ordering::Relaxed) == 0));
    }

    #[test]
    fn level_one_keeps_locality_and_few_false_positives() {
        // Neighbouring granules map to neighbouring bits (one cache line covers 8 KiB).
        let base = 0x7f3a_1234_0000usize;
        let first = AddrFilter::bit(base);
        for i in 0..512usize {
            assert_eq!(AddrFilter::bit(base + 16 * i), first + i);
        }
        // With 2000 live entries spread over a large heap, frees elsewhere rarely pass both
        // levels (about (2000 / 2^17)^2, 0.02 %).
        let f = Box::new(AddrFilter::new());
        let mut t: HeapTable<()> = HeapTable::new(10_000);
        let w = Weight { bytes: 1, count: 1 };
        let mut rng = ByteSampler::new(1, 3);
        for _ in 0..2000 {
            let a = 0x7f00_0000_0000 + (rng.next_u64() as usize % (1 << 32)) * 16;
            t.insert(
                &f,
                a,
                LiveAlloc {
                    weight: w,
                    domain: "obj",
                    site: (),
                },
            );
        }
        let hits = (0..1_000_000usize)
            .filter(|i| f.maybe_contains(0x5600_0000_0000 + i * 16))
            .count();
        assert!(hits < 1000, "false positives: {hits}");
    }

    #[test]
    fn rebuild_has_no_false_negatives_for_concurrent_readers() {
        // A reader that does not hold the table's lock (a RAW free without the GIL) checks
        // live addresses while the filter is rebuilt again and again: never a miss.
        use std::sync::atomic::AtomicBool;
        use std::sync::Arc;
        let f = Arc::new(AddrFilter::new());
        let mut t: HeapTable<()> = HeapTable::new(100_000);
        let w = Weight { bytes: 1, count: 1 };
        let live: Vec<usize> = (0..3000usize)
            .map(|i| 0x7f00_0000_0000 + i * 4096 + 48)
            .collect();
        for &a in &live {
            t.insert(
                &f,
                a,
                LiveAlloc {
                    weight: w,
                    domain: "obj",
                    site: (),
                },
            );
        }
        // Stale bits from many freed addresses, so the rebuild has words to clear.
        for i in 0..20_000usize {
            let a = 0x5500_0000_0000 + i * 16;
            t.insert(
                &f,
                a,
                LiveAlloc {
                    weight: w,
                    domain: "obj",
                    site: (),
                },
            );
            f.insert(a); // a second count: removal leaves it set, as a saturated one would
            t.remove(&f, a);
        }
        let stop = Arc::new(AtomicBool::new(false));
        let reader = {
            let (f, stop, live) = (f.clone(), stop.clone(), live.clone());
            std::thread::spawn(move || {
                let mut misses = 0usize;
                let mut rounds = 0usize;
                while !stop.load(Ordering::Relaxed) || rounds == 0 {
                    misses += live.iter().filter(|&&a| !f.maybe_contains(a)).count();
                    rounds += 1;
                }
                misses
            })
        };
        for _ in 0..50 {
            t.rebuild_filter(&f);
        }
        stop.store(true, Ordering::Relaxed);
        assert_eq!(reader.join().ok(), Some(0));
        let stale = (0..20_000usize)
            .filter(|i| f.maybe_contains(0x5500_0000_0000 + i * 16))
            .count();
        assert!(stale < 100, "stale entries after rebuild: {stale}");
        for &a in &live {
            assert!(t.remove(&f, a).is_some());
        }
        assert!(f.bits.iter().all(|w| w.load(Ordering::Relaxed) == 0));
        assert!(f.slots.iter().all(|s| s.load(Ordering::Relaxed) == 0));
    }

    #[test]
    fn table_is_bounded() {
        let f = Box::new(AddrFilter::new());
        let mut t: HeapTable<()> = HeapTable::new(3);
        let w = Weight { bytes: 1, count: 1 };
        for a in 1..=5usize {
            t.insert(
                &f,
                a * 16,
                LiveAlloc {
                    weight: w,
                    domain: "mem",
                    site: (),
                },
            );
        }
        assert_eq!(t.len(), 3);
        assert_eq!(t.take_counters().dropped, 2);
        t.clear(&f);
        assert!(t.is_empty());
        assert!(!f.maybe_contains(16));
    }
}
