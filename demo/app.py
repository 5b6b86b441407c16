"""emberscope demo service: a few distinct hot paths, threads, allocations and exceptions.

Run it under the profiler (scripts/demo.sh does this):

    DD_PROFILING_ENABLED=true DD_SERVICE=demo emberscope-run python demo/app.py --seconds 30
"""
import argparse
import hashlib
import json
import random
import threading
import time


class InventoryError(Exception):
    pass


def parse_orders(n):
    """JSON round trips: an allocation-heavy path."""
    orders = [{"id": i, "sku": "sku-%d" % (i % 97), "qty": i % 5 + 1} for i in range(n)]
    return json.loads(json.dumps(orders))


def price(order):
    digest = hashlib.sha256(order["sku"].encode()).digest()
    return (digest[0] + 1) * order["qty"]


def checkout(orders):
    """CPU-heavy path: pricing every order."""
    total = 0
    for o in orders:
        total += price(o)
    return total


def reserve_stock(orders, stock):
    """Raises (and handles) a known kind of exception now and then."""
    reserved = 0
    for o in orders:
        try:
            if stock.get(o["sku"], 0) < o["qty"]:
                raise InventoryError(o["sku"])
            stock[o["sku"]] -= o["qty"]
            reserved += 1
        except InventoryError:
            stock[o["sku"]] = 50
    return reserved


def fibonacci(n):
    return n if n < 2 else fibonacci(n - 1) + fibonacci(n - 2)


def report_worker(stop):
    """A background thread doing recursive work."""
    while not stop.is_set():
        fibonacci(20)
        time.sleep(0.01)


def io_worker(stop):
    """A mostly idle thread: shows up in wall time, not CPU time."""
    while not stop.is_set():
        time.sleep(0.05)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=30.0, help="how long to run (default 30)")
    args = ap.parse_args()
    stop = threading.Event()
    workers = [
        threading.Thread(target=report_worker, args=(stop,), name="report-worker"),
        threading.Thread(target=io_worker, args=(stop,), name="io-worker"),
    ]
    for w in workers:
        w.start()
    stock = {}
    deadline = time.monotonic() + args.seconds
    rounds = 0
    while time.monotonic() < deadline:
        orders = parse_orders(2000)
        checkout(orders)
        reserve_stock(random.sample(orders, 200), stock)
        rounds += 1
    stop.set()
    for w in workers:
        w.join()
    print("demo finished: %d rounds" % rounds)


if __name__ == "__main__":
    main()
