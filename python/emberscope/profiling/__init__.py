"""emberscope.profiling: the public profiling API."""

from emberscope.profiling.profiler import Profiler

__all__ = ["Profiler"]
