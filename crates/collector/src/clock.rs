//! Clocks: per-thread CPU time by kernel thread id, the calling thread's CPU time, and the
//! wall clock as nanoseconds since the Unix epoch.
//!
//! A thread's CPU clock is addressed through the clock id Linux derives from its TID
//! (`MAKE_THREAD_CPUCLOCK`), so reading the clock of a thread that has already exited is a
//! plain `EINVAL`, never a dereference of freed `pthread` memory.

use std::collections::HashMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// CPU time consumed so far by the thread with kernel id `tid`, in nanoseconds, or `None`
/// when the thread no longer exists.
pub fn thread_cpu_ns(tid: u32) -> Option<u64> {
    // MAKE_THREAD_CPUCLOCK(tid, CPUCLOCK_SCHED): (~tid << 3) | CPUCLOCK_PERTHREAD_MASK | SCHED
    let clock: libc::clockid_t = ((!(tid as libc::clockid_t)) << 3) | 6;
    read_clock(clock)
}

/// CPU time consumed so far by the calling thread, in nanoseconds.
pub fn own_cpu_ns() -> u64 {
    read_clock(libc::CLOCK_THREAD_CPUTIME_ID).unwrap_or(0)
}

/// CPU time consumed so far by the whole process, in nanoseconds.
pub fn process_cpu_ns() -> u64 {
    read_clock(libc::CLOCK_PROCESS_CPUTIME_ID).unwrap_or(0)
}

fn read_clock(clock: libc::clockid_t) -> Option<u64> {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec; the kernel validates the clock id.
    let rc = unsafe { libc::clock_gettime(clock, &mut ts) };
    if rc != 0 {
        return None;
    }
    Some((ts.tv_sec as u64).saturating_mul(1_000_000_000) + ts.tv_nsec as u64)
}

/// Nanoseconds since the Unix epoch for `t` (0 before the epoch).
pub fn epoch_ns(t: SystemTime) -> i64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos().min(i64::MAX as u128) as i64)
        .unwrap_or(0)
}

/// Kernel thread id of the calling thread.
pub fn gettid() -> u32 {
    // SAFETY: gettid has no preconditions.
    unsafe { libc::syscall(libc::SYS_gettid) as u32 }
}

/// CPU time each thread used since the previous sample, keyed by kernel thread id (a Python
/// ident is reused by later threads, a TID is not reused while the old one is remembered).
#[derive(Debug, Default)]
pub struct CpuDeltas {
    last: HashMap<u32, (u64, u64)>,
    tick: u64,
}

impl CpuDeltas {
    /// Starts a sampling tick; threads not seen for 64 ticks are forgotten.
    pub fn begin_tick(&mut self) {
        self.tick += 1;
        if self.tick % 64 == 0 {
            let tick = self.tick;
            self.last
                .retain(|_, (_, seen)| tick.saturating_sub(*seen) < 64);
        }
    }

    /// CPU nanoseconds thread `tid` used since it was last sampled (0 the first time, or
    /// when its clock cannot be read).
    pub fn delta(&mut self, tid: u32) -> u64 {
        let Some(now) = thread_cpu_ns(tid) else {
            return 0;
        };
        let entry = self.last.entry(tid).or_insert((now, self.tick));
        let delta = now.saturating_sub(entry.0);
        *entry = (now, self.tick);
        delta
    }
}

/// Paces a sampler by its own cost: the interval that keeps the moving average of a tick's
/// CPU cost within `budget` (a fraction of one core), between `min` and `max`.
#[derive(Debug, Clone)]
pub struct Pacer {
    cost_ewma_ns: f64,
    budget: f64,
    min: Duration,
    max: Duration,
}

impl Pacer {
    /// `budget` is clamped to 0.001 %..100 % of a core.
    pub fn new(budget: f64, min: Duration, max: Duration) -> Pacer {
        Pacer {
            cost_ewma_ns: 0.0,
            budget: budget.clamp(0.00001, 1.0),
            min,
            max: max.max(min),
        }
    }

    /// Adds one tick's cost; returns the interval until the next tick.
    pub fn next_interval(&mut self, cost_ns: u64) -> Duration {
        let cost = cost_ns as f64;
        self.cost_ewma_ns = if self.cost_ewma_ns == 0.0 {
            cost
        } else {
            0.8 * self.cost_ewma_ns + 0.2 * cost
        };
        Duration::from_nanos((self.cost_ewma_ns / self.budget) as u64).clamp(self.min, self.max)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_thread_clock_matches_tid_clock() {
        let tid = gettid();
        let mut x = 0u64;
        for i in 0..2_000_000u64 {
            x = x.wrapping_mul(31).wrapping_add(i);
        }
        assert!(x != 1);
        let by_tid = thread_cpu_ns(tid).expect("own tid clock");
        let own = own_cpu_ns();
        assert!(by_tid > 0);
        // Both read the same clock a few microseconds apart.
        assert!(own.abs_diff(by_tid) < 50_000_000, "{own} vs {by_tid}");
    }

    #[test]
    fn exited_thread_clock_is_none() {
        let tid = std::thread::spawn(gettid).join().unwrap();
        // Give the kernel a moment to reap the thread.
        std::thread::sleep(std::time::Duration::from_millis(20));
        assert_eq!(thread_cpu_ns(tid), None);
    }

    #[test]
    fn pacer_keeps_cost_within_budget_and_bounds() {
        let ms = Duration::from_millis;
        let mut p = Pacer::new(0.01, ms(10), ms(1000));
        // 50 µs per tick at 1 % of a core: 5 ms wanted, below the 10 ms floor.
        assert_eq!(p.next_interval(50_000), ms(10));
        // An expensive tick moves the average a fifth of the way.
        let i = p.next_interval(1_050_000);
        assert_eq!(i, Duration::from_nanos(25_000_000));
        // Whatever the cost, never above the ceiling.
        let mut p = Pacer::new(0.01, ms(10), ms(1000));
        assert_eq!(p.next_interval(u64::MAX / 4), ms(1000));
    }

    #[test]
    fn cpu_deltas_per_thread() {
        let tid = gettid();
        let mut d = CpuDeltas::default();
        d.begin_tick();
        assert_eq!(d.delta(tid), 0, "first sample has no previous reading");
        let end = own_cpu_ns() + 20_000_000;
        while own_cpu_ns() < end {}
        d.begin_tick();
        assert!(d.delta(tid) >= 15_000_000);
        // A thread that does not exist: nothing.
        assert_eq!(d.delta(u32::MAX - 7), 0);
        // Forgotten after 64 ticks without a sample.
        for _ in 0..128 {
            d.begin_tick();
        }
        assert!(d.last.is_empty());
    }
}
