"""Fallback load generator (used when wrk is not installed): closed loop, C keep-alive
connections on loopback, alternating GET /a and GET /b for D seconds. Runs in its own process.
Prints one JSON line: requests, errors, rps, p50_ms, p90_ms, p99_ms.

    python loadgen.py HOST PORT SECONDS CONNECTIONS
"""
import http.client
import json
import sys
import threading
import time


def main():
    host, port, seconds, conns = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), int(sys.argv[4])
    lat, errors, lock = [], [0], threading.Lock()
    deadline = time.perf_counter() + seconds

    def client(k):
        c = http.client.HTTPConnection(host, port, timeout=10)
        mine, i = [], k
        while time.perf_counter() < deadline:
            i += 1
            t = time.perf_counter()
            try:
                c.request("GET", "/a" if i % 2 == 0 else "/b")
                c.getresponse().read()
            except (OSError, http.client.HTTPException):
                errors[0] += 1
                c.close()
                c = http.client.HTTPConnection(host, port, timeout=10)
                continue
            mine.append(time.perf_counter() - t)
        c.close()
        with lock:
            lat.extend(mine)

    t0 = time.perf_counter()
    ts = [threading.Thread(target=client, args=(k,)) for k in range(conns)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    took = time.perf_counter() - t0
    lat.sort()

    def pct(p):
        return lat[min(len(lat) - 1, int(p / 100.0 * len(lat)))] * 1000 if lat else float("nan")

    print(json.dumps({"requests": len(lat), "errors": errors[0], "rps": len(lat) / took,
                      "p50_ms": pct(50), "p90_ms": pct(90), "p99_ms": pct(99)}))


if __name__ == "__main__":
    main()
