"""A small service with distinct hot paths, threads and allocations.

Used as the profiled application in the end-to-end tests (run under
`ddtrace-run` or `emberscope-run`). Runs for WORKLOAD_SECONDS (default 10).
"""
import json
import os
import threading
import time

SECONDS = float(os.environ.get("WORKLOAD_SECONDS", "10"))
SLOW = int(os.environ.get("WORKLOAD_SLOW_FACTOR", "1"))
STOP = time.time() + SECONDS


def compute_primes(limit):
    primes = []
    for n in range(2, limit):
        is_prime = True
        for p in primes:
            if p * p > n:
                break
            if n % p == 0:
                is_prime = False
                break
        if is_prime:
            primes.append(n)
    return primes


def render_json(rows):
    return json.dumps([{"id": i, "name": "row-%d" % i, "tags": ["a", "b"]} for i in range(rows)])


def slow_path():
    return compute_primes(3000 * SLOW)


def handle_request(i):
    if i % 3 == 0:
        slow_path()
    render_json(200)


def allocate_buffers():
    keep = []
    while time.time() < STOP:
        keep.append(bytearray(256 * 1024))
        if len(keep) > 40:
            keep = keep[20:]
        time.sleep(0.002)


def idle_waiter(event):
    while time.time() < STOP:
        event.wait(0.05)


def json_worker():
    while time.time() < STOP:
        render_json(500)
        time.sleep(0.001)


def main():
    ev = threading.Event()
    threads = [
        threading.Thread(target=allocate_buffers, name="allocator"),
        threading.Thread(target=idle_waiter, args=(ev,), name="idle-waiter"),
        threading.Thread(target=json_worker, name="json-worker"),
    ]
    for t in threads:
        t.start()
    i = 0
    try:
        from ddtrace import tracer  # noqa: F401  (optional: spans when ddtrace is present)
    except Exception:  # pragma: no cover
        tracer = None
    while time.time() < STOP:
        if tracer is not None:
            with tracer.trace("request", service=os.environ.get("DD_SERVICE"), resource="GET /items", span_type="web"):
                handle_request(i)
        else:
            handle_request(i)
        i += 1
    ev.set()
    for t in threads:
        t.join()
    print("workload done, %d requests" % i)


if __name__ == "__main__":
    main()
