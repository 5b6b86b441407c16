"""Burns CPU until it receives SIGTERM.

usage: sigterm.py default|handler

Prints its truth line (pid, names) then "ready", then burns in busy_loop().
"default": SIGTERM's default action (killed by the signal, status -15).
"handler": the app installs its own SIGTERM handler, which prints
"app-handler-ran" and calls sys.exit(143).
"""

import signal
import sys
import time

from _wl import code_name, emit


def on_term(signum, frame):
    sys.stdout.write("app-handler-ran\n")
    sys.stdout.flush()
    sys.exit(143)


def busy_loop():
    x = 0
    while True:
        for i in range(2000):
            x += i


def main():
    mode = sys.argv[1] if len(sys.argv) > 1 else "default"
    if mode == "handler":
        signal.signal(signal.SIGTERM, on_term)
    emit({"mode": mode, "names": {"busy": code_name(busy_loop)}, "start_monotonic": time.monotonic()})
    sys.stdout.write("ready\n")
    sys.stdout.flush()
    busy_loop()


if __name__ == "__main__":
    main()
