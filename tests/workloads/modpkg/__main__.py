import json
import os
import sys
import time


def modpkg_work(seconds):
    end = time.thread_time() + seconds
    x = 0
    while time.thread_time() < end:
        for i in range(2000):
            x += i
    return x


modpkg_work(float(sys.argv[1]) if len(sys.argv) > 1 else 1.0)
sys.stdout.write(json.dumps({"pid": os.getpid(), "argv": sys.argv[1:]}) + "\n")
