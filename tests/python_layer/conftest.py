"""pytest configuration of the Python-layer tests; helpers live in pyl_helpers.py."""

import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture
def stub_log(tmp_path):
    return str(tmp_path / "native-calls.jsonl")
