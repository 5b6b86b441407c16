"""Fixtures of the collector tests (allocation, heap, locks): the interpreter and runner
fixtures of ``tests/profiler`` (``EMBERSCOPE_TEST_SITE``, ``EMBERSCOPE_TEST_PYTHONS_DIR``)."""

import os
from pathlib import Path

from profiler.conftest import interp, pytest_configure, pytest_generate_tests, runner  # noqa: F401

WORKLOADS = Path(__file__).resolve().parent / "workloads"


def workload(name):
    return str(WORKLOADS / name)


def base_env():
    return dict((k, v) for k, v in os.environ.items())
