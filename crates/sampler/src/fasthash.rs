//! A fast hasher for maps keyed by addresses (the default SipHash costs more
//! than the rest of a cached frame lookup).

use std::collections::{HashMap, HashSet};
use std::hash::{BuildHasherDefault, Hasher};

/// Multiplicative hashing of one integer key; folds bytes for other keys.
#[derive(Debug, Default, Clone, Copy)]
pub struct AddrHasher(u64);

impl Hasher for AddrHasher {
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0.rotate_left(8) ^ u64::from(b)).wrapping_mul(0x100_0000_01b3);
        }
    }

    fn write_usize(&mut self, n: usize) {
        self.0 = (self.0 ^ n as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = (self.0 ^ n).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    }

    fn finish(&self) -> u64 {
        self.0 ^ (self.0 >> 31)
    }
}

/// `HashMap` keyed by address.
pub type AddrMap<V> = HashMap<usize, V, BuildHasherDefault<AddrHasher>>;
/// `HashSet` of addresses.
pub type AddrSet = HashSet<usize, BuildHasherDefault<AddrHasher>>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spreads_aligned_addresses() {
        let mut m: AddrMap<u32> = AddrMap::default();
        for i in 0..10_000usize {
            m.insert(0x7f00_0000_0000 + i * 64, i as u32);
        }
        for i in 0..10_000usize {
            assert_eq!(m.get(&(0x7f00_0000_0000 + i * 64)), Some(&(i as u32)));
        }
        let mut s = AddrSet::default();
        assert!(s.insert(8));
        assert!(!s.insert(8));
    }
}
