"""The application's own sitecustomize: emberscope-run must still run it, once."""

import builtins
import os

builtins._APP_SITECUSTOMIZE_RUNS = getattr(builtins, "_APP_SITECUSTOMIZE_RUNS", 0) + 1
os.environ["APP_SITECUSTOMIZE_PID"] = str(os.getpid())
