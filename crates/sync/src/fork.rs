//! Holding locks across `fork()`.
//!
//! A `pthread_atfork` *prepare* handler takes every lock another thread could hold and
//! parks the guards here; the *parent* and *child* handlers, which run on the same thread,
//! drop them with [`release_all`], last taken first released. So the child starts with every
//! lock free, whatever the profiler's other threads were doing when the application forked.

use std::any::Any;
use std::cell::RefCell;
use std::sync::Arc;

use crate::{Mutex, MutexGuard};

thread_local! {
    static HELD: RefCell<Vec<Box<dyn Any>>> = const { RefCell::new(Vec::new()) };
}

/// Keeps `value` (a guard, or the owner of locks whose guards are stashed after it) until
/// [`release_all`] on this thread. If this thread's storage is gone, `value` is dropped now.
pub fn stash<V: 'static>(value: V) {
    let mut value = Some(value);
    let _ = HELD.try_with(|held| {
        if let (Ok(mut v), Some(x)) = (held.try_borrow_mut(), value.take()) {
            v.push(Box::new(x));
        }
    });
    drop(value);
}

/// Locks a `static` mutex until [`release_all`].
pub fn hold_static<T: 'static>(mutex: &'static Mutex<T>) {
    stash(mutex.lock());
}

/// Locks a shared mutex until [`release_all`], keeping it alive that long.
pub fn hold_arc<T: 'static>(mutex: &Arc<Mutex<T>>) {
    stash(mutex.clone());
    // SAFETY: the clone stashed just before keeps the mutex alive until the guard, stashed
    // after it, has been dropped by release_all (last in, first out).
    unsafe { hold(mutex) }
}

/// Locks `mutex` until [`release_all`].
///
/// # Safety
/// `mutex` must outlive the next [`release_all`] on this thread, e.g. because its owner was
/// passed to [`stash`] before this call.
pub unsafe fn hold<T: 'static>(mutex: &Mutex<T>) {
    let guard = mutex.lock();
    // SAFETY: only the lifetime changes; the caller guarantees the mutex outlives the guard,
    // which release_all drops before anything stashed earlier.
    let guard: MutexGuard<'static, T> = unsafe { std::mem::transmute(guard) };
    stash(guard);
}

/// Drops everything stashed on this thread, last stashed first.
pub fn release_all() {
    loop {
        let last = HELD
            .try_with(|held| held.try_borrow_mut().ok().and_then(|mut v| v.pop()))
            .ok()
            .flatten();
        match last {
            Some(x) => drop(x),
            None => return,
        }
    }
}

/// How many values are stashed on this thread.
#[cfg(test)]
fn held() -> usize {
    HELD.try_with(|h| h.try_borrow().map(|v| v.len()).unwrap_or(0))
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    static A: Mutex<u32> = Mutex::new(0);

    #[test]
    fn held_until_release_then_free() {
        let shared = Arc::new(Mutex::new(String::from("x")));
        hold_static(&A);
        hold_arc(&shared);
        assert_eq!(held(), 3);
        assert!(A.try_lock().is_none());
        assert!(shared.try_lock().is_none());
        // Another thread cannot take them either.
        let s2 = shared.clone();
        let other = std::thread::spawn(move || (A.try_lock().is_none(), s2.try_lock().is_none()));
        assert_eq!(other.join().unwrap(), (true, true));
        release_all();
        assert_eq!(held(), 0);
        assert!(A.try_lock().is_some());
        assert_eq!(shared.lock().as_str(), "x");
        // The stashed clone is gone too.
        assert_eq!(Arc::strong_count(&shared), 1);
    }

    #[test]
    fn a_forked_child_takes_the_locks_a_parked_thread_left() {
        // A thread parked in a timed wait at the moment of fork() must not leave anything
        // behind that the child trips over: the child waits on a fresh condvar with a
        // timeout, many times, then takes every lock.
        static PARKED: Mutex<bool> = Mutex::new(false);
        static CV: crate::Condvar = crate::Condvar::new();
        let waiter = std::thread::spawn(|| {
            let mut g = PARKED.lock();
            while !*g {
                g = CV.wait_for(g, std::time::Duration::from_millis(1)).0;
            }
        });
        std::thread::sleep(std::time::Duration::from_millis(20));
        static B: Mutex<u32> = Mutex::new(0);
        hold_static(&PARKED);
        hold_static(&B);
        // SAFETY: fork in a test; the child only uses async-signal-tolerant code paths of
        // this crate and exits with _exit.
        let pid = unsafe { libc_fork() };
        release_all();
        if pid == 0 {
            let m = Mutex::new(0u8);
            let cv = crate::Condvar::new();
            let mut g = m.lock();
            for _ in 0..50 {
                g = cv.wait_for(g, std::time::Duration::from_micros(200)).0;
            }
            drop(g);
            let ok = PARKED.try_lock().is_some() && B.try_lock().is_some();
            // SAFETY: leaving the forked child without running the test harness.
            unsafe { libc_exit(if ok { 0 } else { 3 }) };
        }
        assert!(pid > 0);
        let mut status = 0;
        // SAFETY: waiting for our own child.
        unsafe { libc_waitpid(pid, &mut status, 0) };
        assert_eq!(status, 0, "child status {status}");
        *PARKED.lock() = true;
        waiter.join().unwrap();
    }

    extern "C" {
        #[link_name = "fork"]
        fn libc_fork() -> i32;
        #[link_name = "_exit"]
        fn libc_exit(code: i32) -> !;
        #[link_name = "waitpid"]
        fn libc_waitpid(pid: i32, status: *mut i32, options: i32) -> i32;
    }
}
