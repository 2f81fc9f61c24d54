"""A real second process that holds a lock, for the tests of every lock the harness takes."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
HOLDER = """
import importlib, sys, time
module, name = sys.argv[1].split(":")
lock = getattr(importlib.import_module(module), name)(sys.argv[2])
assert lock.try_acquire(sys.argv[4])
print("locked", flush=True)
time.sleep(float(sys.argv[3]))
"""


def hold(lock_class: str, path: Path, seconds: float, doing: str) -> subprocess.Popen:
    """Start a process holding ``lock_class`` ("module:Class") on ``path`` for ``seconds``, doing ``doing``."""
    proc = subprocess.Popen([sys.executable, "-c", HOLDER, lock_class, str(path), str(seconds), doing],
                            stdout=subprocess.PIPE, text=True, cwd=ROOT)
    assert proc.stdout.readline().strip() == "locked"
    return proc
