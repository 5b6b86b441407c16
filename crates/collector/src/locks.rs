//! Lock-event sampling: which acquisitions are recorded and what each one counts for.
//!
//! Every acquisition is a Bernoulli trial with probability `capture_pct / 100`
//! (`DD_PROFILING_CAPTURE_PCT`), implemented as a geometric countdown so the unsampled path is
//! one decrement. A recorded acquisition (and its matching release) carries the weight
//! `100 / capture_pct`: `lock-acquire` and `lock-release` are that weight (stochastically
//! rounded to an integer), `lock-acquire-wait` and `lock-release-hold` are the measured
//! durations times that weight, so the profile's totals estimate the true counts and times.
//! (The reference records one in `100 / capture_pct` acquisitions unscaled, which
//! under-reports by that factor.)

/// Sampling state of the lock collector.
#[derive(Debug, Clone)]
pub struct LockSampler {
    p: f64,
    rng: u64,
}

impl LockSampler {
    /// A sampler recording `capture_pct` percent of acquisitions (clamped to (0, 100]).
    pub fn new(capture_pct: f64, seed: u64) -> Self {
        let pct = if capture_pct.is_finite() {
            capture_pct.clamp(1e-6, 100.0)
        } else {
            1.0
        };
        LockSampler {
            p: pct / 100.0,
            rng: seed | 1,
        }
    }

    /// The multiplier each recorded event carries (`100 / capture_pct`).
    pub fn scale(&self) -> f64 {
        1.0 / self.p
    }

    fn next_u64(&mut self) -> u64 {
        let mut x = self.rng;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.rng = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn uniform(&mut self) -> f64 {
        ((self.next_u64() >> 11) as f64 + 1.0) / (1u64 << 53) as f64
    }

    /// Number of acquisitions until the next recorded one (geometric, mean `1 / p`, >= 1).
    pub fn draw(&mut self) -> i64 {
        if self.p >= 1.0 {
            return 1;
        }
        let k = (self.uniform().ln() / (1.0 - self.p).ln()).floor();
        if k.is_finite() && k >= 0.0 {
            (k.min(i64::MAX as f64 / 4.0) as i64).saturating_add(1)
        } else {
            1
        }
    }

    /// The integer count a recorded event stands for (unbiased rounding of the scale).
    pub fn count_weight(&mut self) -> i64 {
        let s = self.scale();
        let whole = s.floor();
        let w = if self.uniform() <= s - whole {
            whole + 1.0
        } else {
            whole
        };
        w.min(i64::MAX as f64) as i64
    }

    /// A measured duration scaled to the estimate it stands for.
    pub fn scaled_ns(&self, ns: u64) -> i64 {
        (ns as f64 * self.scale()).round().min(i64::MAX as f64) as i64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn full_capture_records_everything_with_weight_one() {
        let mut s = LockSampler::new(100.0, 3);
        assert!((0..100).all(|_| s.draw() == 1));
        assert_eq!(s.count_weight(), 1);
        assert_eq!(s.scaled_ns(17), 17);
    }

    #[test]
    fn scaled_counts_estimate_the_truth() {
        for pct in [1.0f64, 3.0, 25.0] {
            let mut s = LockSampler::new(pct, 11);
            let n = 3_000_000i64;
            let mut countdown = s.draw();
            let mut est = 0i64;
            for _ in 0..n {
                countdown -= 1;
                if countdown <= 0 {
                    countdown = s.draw();
                    est += s.count_weight();
                }
            }
            let err = (est - n).abs() as f64 / n as f64;
            assert!(err < 0.03, "pct {pct}: {est} for {n}");
        }
    }
}
