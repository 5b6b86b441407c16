"""The configuration reference in docs/ is generated from the settings table and must match it."""
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def test_configuration_doc_is_up_to_date():
    proc = subprocess.run([sys.executable, os.path.join(ROOT, "tools", "gen-config-doc.py"), "--check"],
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, universal_newlines=True)
    assert proc.returncode == 0, proc.stdout
