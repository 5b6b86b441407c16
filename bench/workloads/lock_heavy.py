"""Lock-heavy: 4 threads doing small units of work, each inside a shared threading.Lock,
an RLock (re-entered) and a Condition-protected counter; about 640 000 lock operations (~100 000 per CPU second)
per run. Prints {"main_cpu_s", "process_cpu_s", "wall_s", "ops"} for the measured section."""
import json
import os
import threading
import time

N = int(os.environ.get("BENCH_OPS", "40000"))
THREADS = 4

lock = threading.Lock()
rlock = threading.RLock()
cond = threading.Condition()
state = {"n": 0, "items": []}


def work(k):
    total = 0
    for i in range(N):
        with lock:
            state["n"] += 1
        with rlock:
            with rlock:
                total += sum(range(k, k + 300))
        with cond:
            state["items"].append(i)
            if len(state["items"]) > 100:
                del state["items"][:50]
    return total


def main():
    t0, p0 = time.perf_counter(), time.process_time()
    threads = [threading.Thread(target=work, args=(k,)) for k in range(THREADS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    t1, p1 = time.perf_counter(), time.process_time()
    # all threads' CPU is what the lock profiler can add to: report the process CPU
    print(json.dumps({"main_cpu_s": p1 - p0, "process_cpu_s": p1 - p0, "wall_s": t1 - t0,
                      "ops": N * THREADS * 4}))


main()
