"""The dashboard lowers its own CPU priority once (DASHBOARD_NICE), whatever the number of reruns."""

from __future__ import annotations

import subprocess
import sys

from tests.conftest import PROJECT

PROBE = """
import os
from dashboard.priority import lower_once
before = os.getpriority(os.PRIO_PROCESS, 0)
for _ in range(3):  # Streamlit runs app.py at every interaction
    lower_once(int(os.environ["N"]))
print(before, os.getpriority(os.PRIO_PROCESS, 0))
"""


def _run(nice: int) -> tuple[int, int]:
    out = subprocess.run([sys.executable, "-c", PROBE], cwd=PROJECT, env={"N": str(nice), "PATH": ""},
                         capture_output=True, text=True, check=True).stdout.split()
    return int(out[0]), int(out[1])


def test_lowered_once_by_the_setting():
    before, after = _run(10)
    assert after == min(before + 10, 19)


def test_zero_leaves_it():
    before, after = _run(0)
    assert after == before


def test_app_applies_the_setting():
    source = (PROJECT / "app.py").read_text()
    assert "lower_once(get_settings().dashboard_nice)" in source
