"""The planted request work shared by the two web workloads (web_app.py under uvicorn,
wsgi_app.py under gunicorn): GET /a runs planted_a (two kernel calls), GET /b planted_b (one),
and handle() measures each with thread_time into TRUTH (the accuracy figure's truth)."""
import time

TRUTH = {"a": 0.0, "b": 0.0}
COUNT = {"a": 0, "b": 0}


def fib(n):
    return n if n < 2 else fib(n - 1) + fib(n - 2)


def kernel():
    fib(15)
    return sorted(str(i) for i in range(60))


def planted_a():
    return len(kernel()) + len(kernel())


def planted_b():
    return len(kernel())


PLANTED = {"a": planted_a, "b": planted_b}


def handle(route):
    """Runs the planted function of `route` ("a" or "b"), counting its CPU time."""
    t = time.thread_time()
    n = PLANTED[route]()
    TRUTH[route] += time.thread_time() - t
    COUNT[route] += 1
    return n
