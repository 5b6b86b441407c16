"""End-to-end tests of the emberscope profiler on real CPython interpreters."""
