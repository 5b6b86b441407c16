"""Runs CPython's own lock test suites against emberscope's wrapped lock classes.

Usage: python lock_suite_runner.py CAPTURE_PCT [threading|asyncio ...]
Prints one JSON line {"suite": ..., "run": n, "failures": n, "errors": n, "skipped": n} per
suite and exits non-zero when a suite fails. Needs the interpreter's stdlib ``test`` package.
"""

import json
import sys
import threading
import unittest


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
