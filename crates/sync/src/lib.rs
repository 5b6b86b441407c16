//! Fork-safe locks for everything that runs inside the profiled process.
//!
//! The profiler's threads (sampler, scheduler, uploader) and the hooks that run on the
//! application's threads share state behind mutexes, and the application may `fork()` at any
//! moment. Two things must then hold in the child:
//!
//! * **No lock is inherited in a held state.** The `pthread_atfork` handlers take every lock
//!   before `fork()` ([`fork::stash`]) and release them after it, in parent and child
//!   ([`fork::release_all`]).
//! * **No lock implementation keeps process-global state about other threads.** This is why
//!   these are thin wrappers over `std::sync` (a futex word inside each lock on Linux) and not
//!   `parking_lot`: `parking_lot_core` keeps every parked thread in one global hash table, a
//!   child inherits entries that point into the stacks of threads that do not exist there,
//!   and its next timed-out wait walks them (a SIGSEGV in a gunicorn worker, D10 in
//!   docs/DECISIONS.md).
//!
//! Nothing here panics: a poisoned lock (a panic elsewhere while holding it, which the
//! workspace lints forbid) is used as is.
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

pub mod fork;

use std::sync::{PoisonError, TryLockError};
use std::time::{Duration, Instant};

/// The guard of a [`Mutex`].
pub type MutexGuard<'a, T> = std::sync::MutexGuard<'a, T>;

/// A mutual-exclusion lock (`std::sync::Mutex` without poisoning).
#[derive(Debug, Default)]
pub struct Mutex<T: ?Sized>(std::sync::Mutex<T>);

impl<T> Mutex<T> {
    /// A new unlocked mutex (usable in `static`s).
    pub const fn new(value: T) -> Self {
        Mutex(std::sync::Mutex::new(value))
    }
}

impl<T: ?Sized> Mutex<T> {
    /// Blocks until the lock is held.
    pub fn lock(&self) -> MutexGuard<'_, T> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The lock if it is free now, `None` otherwise.
    pub fn try_lock(&self) -> Option<MutexGuard<'_, T>> {
        match self.0.try_lock() {
            Ok(g) => Some(g),
            Err(TryLockError::Poisoned(p)) => Some(p.into_inner()),
            Err(TryLockError::WouldBlock) => None,
        }
    }

    /// The lock if it becomes free within `timeout` (polled every millisecond), `None`
    /// otherwise. For the rare paths that must not block on a lock whose holder may be gone.
    pub fn try_lock_for(&self, timeout: Duration) -> Option<MutexGuard<'_, T>> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(g) = self.try_lock() {
                return Some(g);
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
    }
}

/// A condition variable for [`Mutex`] (`std::sync::Condvar` without poisoning).
#[derive(Debug, Default)]
pub struct Condvar(std::sync::Condvar);

impl Condvar {
    /// A new condition variable (usable in `static`s).
    pub const fn new() -> Self {
        Condvar(std::sync::Condvar::new())
    }

    /// Waits for a notification (or a spurious wake-up).
    pub fn wait<'a, T>(&self, guard: MutexGuard<'a, T>) -> MutexGuard<'a, T> {
        self.0.wait(guard).unwrap_or_else(PoisonError::into_inner)
    }

    /// Waits for a notification for at most `timeout`; `true` if the time ran out.
    pub fn wait_for<'a, T>(
        &self,
        guard: MutexGuard<'a, T>,
        timeout: Duration,
    ) -> (MutexGuard<'a, T>, bool) {
        match self.0.wait_timeout(guard, timeout) {
            Ok((g, r)) => (g, r.timed_out()),
            Err(p) => {
                let (g, r) = p.into_inner();
                (g, r.timed_out())
            }
        }
    }

    /// Waits for a notification until `deadline`; `true` if the deadline has passed.
    pub fn wait_until<'a, T>(
        &self,
        guard: MutexGuard<'a, T>,
        deadline: Instant,
    ) -> (MutexGuard<'a, T>, bool) {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return (guard, true);
        }
        let (g, _) = self.wait_for(guard, left);
        (g, Instant::now() >= deadline)
    }

    /// Wakes every waiter.
    pub fn notify_all(&self) {
        self.0.notify_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn try_lock_and_timeouts() {
        let m = Mutex::new(1);
        let g = m.lock();
        assert!(m.try_lock().is_none());
        assert!(m.try_lock_for(Duration::from_millis(5)).is_none());
        drop(g);
        assert_eq!(*m.try_lock().unwrap(), 1);
        let cv = Condvar::new();
        let t0 = Instant::now();
        let (g, timed_out) = cv.wait_for(m.lock(), Duration::from_millis(20));
        drop(g);
        assert!(timed_out || t0.elapsed() < Duration::from_millis(20));
        let (g, timed_out) = cv.wait_until(m.lock(), Instant::now());
        drop(g);
        assert!(timed_out);
    }

    #[test]
    fn notify_wakes_a_waiter() {
        let shared = Arc::new((Mutex::new(false), Condvar::new()));
        let s2 = shared.clone();
        let t = std::thread::spawn(move || {
            *s2.0.lock() = true;
            s2.1.notify_all();
        });
        let mut g = shared.0.lock();
        let deadline = Instant::now() + Duration::from_secs(10);
        while !*g {
            let (g2, late) = shared.1.wait_until(g, deadline);
            g = g2;
            assert!(!late, "no notification within 10 s");
        }
        drop(g);
        t.join().unwrap();
    }

    #[test]
    fn poisoned_lock_is_still_usable() {
        let m = Arc::new(Mutex::new(5));
        let m2 = m.clone();
        let _ = std::thread::spawn(move || {
            let _g = m2.lock();
            panic!("poison it");
        })
        .join();
        assert_eq!(*m.lock(), 5);
        assert_eq!(*m.try_lock().unwrap(), 5);
    }
}
