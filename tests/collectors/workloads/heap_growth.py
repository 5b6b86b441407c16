"""A cache that grows to a known live size, next to churn that frees everything it makes."""
import json
import os
import sys

ITEMS = int(os.environ.get("HEAP_ITEMS", "4000"))
cache = []


def grow_cache(n):
    for _ in range(n):
        cache.append(bytearray(10000))


def churn(n):
    for _ in range(n):
        tmp = [bytearray(5000) for _ in range(20)]
        del tmp


for _ in range(20):
    grow_cache(ITEMS // 20)
    churn(200)

live = sum(sys.getsizeof(b) for b in cache)
print(json.dumps({"pid": os.getpid(), "live_bytes": live, "items": len(cache)}))
