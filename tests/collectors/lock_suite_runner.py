"""Runs CPython's own lock test suites against emberscope's wrapped lock classes.

Usage: python lock_suite_runner.py CAPTURE_PCT [threading|asyncio|parity ...]
Prints one JSON line {"suite": ..., "run": n, "failures": n, "errors": n, "skipped": n} per
suite and exits non-zero when a suite fails. Needs the interpreter's stdlib ``test`` package
(except ``parity``: the wrapped classes against the real ones, call by call).
"""

import json
import sys
import threading
import unittest


PARITY_CHECKS = [0]


def _outcome(f):
    """What calling f() does: ("ok", a simple result or its type's name) or (exception type,
    message). Messages may name the method's class (3.10+: "lock.release() takes no
    arguments"), which is the wrapper's: the class name is left out."""
    import re
    try:
        r = f()
    except BaseException as e:  # noqa: B902 - any outcome is compared
        return (type(e).__name__, re.sub(r"\b\w+\.(\w+\(\))", r"\1", str(e)))
    return ("ok", r if isinstance(r, (bool, int, type(None))) else type(r).__name__)


def parity_problems(_locks, _native):
    """Wrapped Lock/RLock against the real ones: attributes, arguments, errors, docs,
    pickling, weak references, subclasses, and the direct (hand-made) methods in place."""
    import copy
    import pickle
    import weakref

    problems = []

    def check(what, got, want):
        PARITY_CHECKS[0] += 1
        if got != want:
            problems.append("%s: wrapped %r, real %r" % (what, got, want))

    fast = set(_native.lock_fast_methods())
    for name in ("acquire", "__enter__", "release", "__exit__"):
        check("direct Lock.%s" % name, "Lock.%s" % name in fast, True)
        check("direct RLock.%s" % name, "RLock.%s" % name in fast, True)
    check("direct RLock._release_save", "RLock._release_save" in fast, True)

    real_factories = {"Lock": _locks._originals[("threading", "Lock")][1],
                      "RLock": _locks._originals[("threading", "RLock")][1]}
    for kind, real_factory in sorted(real_factories.items()):
        wrapped_factory = getattr(threading, kind)
        w, r = wrapped_factory(), real_factory()
        check("%s is wrapped" % kind, type(w).__name__, "Profiled" + kind)
        for name in dir(type(r)):
            check("%s hasattr %s" % (kind, name), hasattr(w, name), True)
        for name in ("_at_fork_reinit", "_recursion_count", "_is_owned", "_release_save",
                     "_acquire_restore", "locked", "acquire_lock", "release_lock"):
            check("%s hasattr %s" % (kind, name), hasattr(w, name), hasattr(r, name))
        for name in ("acquire", "release", "__enter__", "__exit__"):
            check("%s.%s doc" % (kind, name), getattr(w, name).__doc__, getattr(r, name).__doc__)
        calls = [
            ("acquire()", lambda l: l.acquire()),
            ("acquire(False)", lambda l: l.acquire(False)),
            ("acquire(blocking=False)", lambda l: l.acquire(blocking=False)),
            ("acquire(timeout=0.01)", lambda l: l.acquire(timeout=0.01)),
            ("acquire(True, 0.01)", lambda l: l.acquire(True, 0.01)),
            ("acquire(1, 2, 3)", lambda l: l.acquire(1, 2, 3)),
            ("acquire(False, timeout=1)", lambda l: l.acquire(False, timeout=1)),
            ("acquire(timeout=-2)", lambda l: l.acquire(timeout=-2)),
            ("acquire(timeout='x')", lambda l: l.acquire(timeout="x")),
            ("acquire(foo=1)", lambda l: l.acquire(foo=1)),
            ("acquire(timeout=1e300)", lambda l: l.acquire(timeout=1e300)),
            ("release()", lambda l: l.release()),
            ("release(1)", lambda l: l.release(1)),
            ("__enter__(False)", lambda l: l.__enter__(False)),
            ("__exit__(None, None, None)", lambda l: l.__exit__(None, None, None)),
            ("__exit__()", lambda l: l.__exit__()),
            ("locked()", lambda l: l.locked() if hasattr(l, "locked") else None),
            ("pickle", lambda l: pickle.dumps(l)),
            ("copy", lambda l: copy.copy(l)),
            ("deepcopy", lambda l: copy.deepcopy(l)),
        ]
        for held in (False, True):
            for what, f in calls:
                if held and kind == "Lock" and what == "acquire()":
                    continue  # would wait forever, wrapped or not
                w, r = wrapped_factory(), real_factory()
                if held:
                    w.acquire()
                    r.acquire()
                check("%s %s (held=%s)" % (kind, what, held), _outcome(lambda: f(w)),
                      _outcome(lambda: f(r)))
        # A held lock seen from another thread, then released by the owner.
        w, r = wrapped_factory(), real_factory()
        w.acquire()
        r.acquire()
        seen = {}

        def other():
            seen["w"] = (w.acquire(False), _outcome(lambda: w.acquire(timeout=0.01)))
            seen["r"] = (r.acquire(False), _outcome(lambda: r.acquire(timeout=0.01)))
        t = threading.Thread(target=other)
        t.start()
        t.join()
        check("%s from another thread" % kind, seen["w"], seen["r"])
        if hasattr(r, "_at_fork_reinit"):
            w._at_fork_reinit()
            r._at_fork_reinit()
            check("%s after _at_fork_reinit" % kind, w.acquire(False), r.acquire(False))
        check("%s weakref" % kind, weakref.ref(w)() is w, True)

        class Sub(type(w)):
            pass
        s = Sub(real_factory(), "sub.py:1")
        check("%s subclass with" % kind, _outcome(lambda: s.__enter__()), ("ok", True))
        check("%s subclass release" % kind, _outcome(lambda: s.release()), ("ok", None))
    # RLock bookkeeping used by threading.Condition.
    w, r = threading.RLock(), real_factories["RLock"]()
    for l in (w, r):
        l.acquire()
        l.acquire()
    check("RLock _is_owned", w._is_owned(), r._is_owned())
    if hasattr(r, "_recursion_count"):
        check("RLock _recursion_count", w._recursion_count(), r._recursion_count())
    ws, rs = w._release_save(), r._release_save()
    check("RLock _release_save state", ws[0], rs[0])
    check("RLock released", (w._is_owned(), w.acquire(False)), (r._is_owned(), r.acquire(False)))
    w.release()
    r.release()
    w._acquire_restore(ws)
    r._acquire_restore(rs)
    check("RLock restored", w._is_owned(), r._is_owned())
    return problems


def main():
    pct = float(sys.argv[1])
    suites = sys.argv[2:] or ["threading", "asyncio"]
    from emberscope.profiling.profiler import Profiler
    from emberscope.profiling import _locks
    from emberscope import _native

    prof = Profiler(capture_pct=pct, upload_interval=60.0, memory=False, lock=True)
    if not prof.start():
        print("profiler did not start")
        return 3
    assert _locks.installed(), "lock factories were not replaced"
    assert type(threading.Lock()).__name__ == "ProfiledLock", type(threading.Lock())
    ok = True
    for suite in suites:
        loader = unittest.TestLoader()
        if suite == "threading":
            from test import lock_tests

            class LockTests(lock_tests.LockTests):
                locktype = staticmethod(threading.Lock)

            class RLockTests(lock_tests.RLockTests):
                locktype = staticmethod(threading.RLock)

            class ConditionAsRLockTests(lock_tests.RLockTests):
                locktype = staticmethod(threading.Condition)

                def test_recursion_count(self):
                    self.skipTest("Condition does not expose _recursion_count")

            class ConditionTests(lock_tests.ConditionTests):
                condtype = staticmethod(threading.Condition)

            class SemaphoreTests(lock_tests.SemaphoreTests):
                semtype = staticmethod(threading.Semaphore)

            class BoundedSemaphoreTests(lock_tests.BoundedSemaphoreTests):
                semtype = staticmethod(threading.BoundedSemaphore)

            class EventTests(lock_tests.EventTests):
                eventtype = staticmethod(threading.Event)

            class BarrierTests(lock_tests.BarrierTests):
                barriertype = staticmethod(threading.Barrier)

            classes = [LockTests, RLockTests, ConditionAsRLockTests, ConditionTests,
                       SemaphoreTests, BoundedSemaphoreTests, EventTests, BarrierTests]
            tests = unittest.TestSuite(loader.loadTestsFromTestCase(c) for c in classes)
        elif suite == "parity":
            problems = parity_problems(_locks, _native)
            for p in problems:
                sys.stderr.write("parity: %s\n" % p)
            print(json.dumps({"suite": suite, "run": PARITY_CHECKS[0],
                              "failures": len(problems), "errors": 0, "skipped": 0}))
            sys.stdout.flush()
            ok = ok and not problems
            continue
        elif suite == "asyncio":
            import asyncio
            assert asyncio.Lock.__module__ == "asyncio.locks"
            assert asyncio.Lock is not _locks._originals[("asyncio.locks", "Lock")][1], \
                "asyncio.Lock was not replaced"
            from test.test_asyncio import test_locks
            tests = loader.loadTestsFromModule(test_locks)
        else:
            raise SystemExit("unknown suite %r" % suite)
        result = unittest.TextTestRunner(stream=sys.stderr, verbosity=1).run(tests)
        print(json.dumps({"suite": suite, "run": result.testsRun,
                          "failures": len(result.failures), "errors": len(result.errors),
                          "skipped": len(result.skipped)}))
        sys.stdout.flush()
        ok = ok and result.wasSuccessful()
    events = _native.memalloc_stats()  # keeps the session alive until here
    prof.stop(flush=False)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
