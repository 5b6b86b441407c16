"""An app whose own sitecustomize.py (beside it, on PYTHONPATH) must run.

Prints how many times that sitecustomize ran, whether emberscope was loaded
before the app started, then burns CPU in app_work().
"""

import builtins
import json
import os
import sys
import time


def app_work(seconds):
    end = time.thread_time() + seconds
    x = 0
    while time.thread_time() < end:
        for i in range(2000):
            x += i
    return x


def main():
    info = {
        "pid": os.getpid(),
        "app_sitecustomize_runs": getattr(builtins, "_APP_SITECUSTOMIZE_RUNS", 0),
        "app_sitecustomize_pid": os.environ.get("APP_SITECUSTOMIZE_PID"),
        "emberscope_loaded": "emberscope" in sys.modules,
        "sitecustomize_file": getattr(sys.modules.get("sitecustomize"), "__file__", None),
    }
    app_work(1.0)
    sys.stdout.write(json.dumps(info, sort_keys=True) + "\n")


if __name__ == "__main__":
    main()
