"""Sleep and socket waits: a mostly idle process with a planted wall-time split.

BENCH_THREADS workers (default 4) loop: planted_a sleeps 2*D (time.sleep), planted_b sends a
byte on a socketpair and blocks in recv until its echo thread answers after D. So planted_a
holds 2/3 of the workers' wall time (measured with perf_counter); CPU is near zero.
"""
import os
import socket
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _common  # noqa: E402

D = 0.004


def echo(sock, stop):
    while not stop.is_set():
        data = sock.recv(1)
        if not data:
            return
        time.sleep(D)
        sock.send(data)


def planted_a():
    time.sleep(2 * D)


def planted_b(sock):
    sock.send(b"x")
    sock.recv(1)


def worker(rec, rounds):
    rec.register()
    mine, theirs = socket.socketpair()
    stop = threading.Event()
    t = threading.Thread(target=echo, args=(theirs, stop), name="echo")
    t.start()
    wa = wb = 0.0
    for _ in range(rounds):
        w = time.perf_counter()
        planted_a()
        w2 = time.perf_counter()
        planted_b(mine)
        w3 = time.perf_counter()
        wa += w2 - w
        wb += w3 - w2
    stop.set()
    mine.close()
    t.join()
    theirs.close()
    rec.add("wall", "a", wa)
    rec.add("wall", "b", wb)


def main():
    threads = _common.env_int("BENCH_THREADS", 4)
    rounds = max(1, int(_common.env_int("BENCH_ROUNDS", 240) * _common.scale()))
    rec = _common.Recorder()
    rec.start()
    _common.run_threads(threads, worker, rec, rounds)
    rec.finish()


if __name__ == "__main__":
    main()
