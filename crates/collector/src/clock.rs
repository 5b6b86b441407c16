//! Clocks: per-thread CPU time by kernel thread id, the calling thread's CPU time, and the
//! wall clock as nanoseconds since the Unix epoch.
//!
//! A thread's CPU clock is addressed through the clock id Linux derives from its TID
//! (`MAKE_THREAD_CPUCLOCK`), so reading the clock of a thread that has already exited is a
//! plain `EINVAL`, never a dereference of freed `pthread` memory.

use std::time::{SystemTime, UNIX_EPOCH};

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
}
