//! Exception sampling: which raised exceptions are recorded and what each one counts for.
//!
//! Every raise is a Bernoulli trial with probability `1 / interval`
//! (`DD_PROFILING_EXCEPTION_SAMPLING_INTERVAL`), implemented as a geometric countdown so the
//! unsampled path is one decrement. A recorded exception carries `exception-samples =
//! interval`, the Horvitz–Thompson weight, so the profile's total estimates the true number
//! of raises (the reference implementation records 1 per sample and under-reports by the
//! interval).

/// Sampling state of the exception collector.
#[derive(Debug, Clone)]
pub struct ExceptionSampler {
    interval: u64,
    countdown: u64,
    rng: u64,
    seen: u64,
    sampled: u64,
}

impl ExceptionSampler {
    /// A sampler recording on average one raise in `interval` (at least 1).
    pub fn new(interval: u64, seed: u64) -> Self {
        let mut s = ExceptionSampler {
            interval: interval.max(1),
            countdown: 0,
            rng: seed | 1,
            seen: 0,
            sampled: 0,
        };
        s.countdown = s.draw();
        s
    }

    /// The weight each recorded exception carries.
    pub fn weight(&self) -> i64 {
        self.interval.min(i64::MAX as u64) as i64
    }

    /// Counts one raise; true when this one must be recorded.
    #[inline]
    pub fn should_sample(&mut self) -> bool {
        self.seen += 1;
        if self.countdown > 1 {
            self.countdown -= 1;
            return false;
        }
        self.countdown = self.draw();
        self.sampled += 1;
        true
    }

    /// Returns and resets (seen, sampled) since the previous call.
    pub fn take_counts(&mut self) -> (u64, u64) {
        let r = (self.seen, self.sampled);
        self.seen = 0;
        self.sampled = 0;
        r
    }

    fn next_u64(&mut self) -> u64 {
        // xorshift64*: plenty for sampling decisions.
        let mut x = self.rng;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.rng = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Number of raises until the next recorded one: geometric with mean `interval`.
    fn draw(&mut self) -> u64 {
        if self.interval <= 1 {
            return 1;
        }
        let p = 1.0 / self.interval as f64;
        // Uniform in (0, 1].
        let u = ((self.next_u64() >> 11) as f64 + 1.0) / (1u64 << 53) as f64;
        let k = (u.ln() / (1.0 - p).ln()).floor();
        if k.is_finite() && k >= 0.0 {
            (k as u64).saturating_add(1)
        } else {
            1
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interval_one_records_everything() {
        let mut s = ExceptionSampler::new(1, 42);
        assert!((0..1000).all(|_| s.should_sample()));
        assert_eq!(s.weight(), 1);
    }

    #[test]
    fn estimate_is_unbiased_within_tolerance() {
        for interval in [10u64, 100, 1000] {
            let mut s = ExceptionSampler::new(interval, 7 + interval);
            let n = 2_000_000u64;
            let hits = (0..n).filter(|_| s.should_sample()).count() as u64;
            let estimate = hits * interval;
            let err = (estimate as f64 - n as f64).abs() / n as f64;
            assert!(
                err < 0.05,
                "interval {interval}: estimate {estimate} for {n}"
            );
            assert_eq!(s.take_counts(), (n, hits));
        }
    }
}
