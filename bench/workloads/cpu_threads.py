"""CPU-bound, several threads: the slowdown workload. Prints JSON with its own timings."""
import json
import os
import sys
import threading
import time


def fib(n):
    return n if n < 2 else fib(n - 1) + fib(n - 2)


def work(rounds):
    for _ in range(rounds):
        fib(22)


def main():
    threads = int(os.environ.get("BENCH_THREADS", "4"))
    rounds = int(os.environ.get("BENCH_ROUNDS", "100"))
    t0, c0 = time.perf_counter(), time.process_time()
    ts = [threading.Thread(target=work, args=(rounds,), name="worker-%d" % i) for i in range(threads)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    print(json.dumps({"elapsed_s": time.perf_counter() - t0, "proc_cpu_s": time.process_time() - c0}))
    sys.stdout.flush()


if __name__ == "__main__":
    main()
