"""pytest configuration of the Python-layer tests; helpers live in pyl_helpers.py."""

import os
import sys


sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
