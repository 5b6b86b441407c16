"""Two allocating functions with a known byte ratio (3000 vs 1000 byte buffers)."""
import json
import os
import sys

N = int(os.environ.get("ALLOC_N", "60000"))


def alloc_big(n):
    for _ in range(n):
        b = bytearray(3000)
    return b


def alloc_small(n):
    for _ in range(n):
        b = bytearray(1000)
    return b


for _ in range(10):
    alloc_big(N // 10)
    alloc_small(N // 10)

big = sys.getsizeof(bytearray(3000))
small = sys.getsizeof(bytearray(1000))
print(json.dumps({"pid": os.getpid(), "big_bytes": big * N, "small_bytes": small * N}))
