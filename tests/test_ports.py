"""A free port chosen by one harness process is reserved against the others until its server listens."""

import os
import subprocess
import sys
from pathlib import Path

from harness.process import ports

ROOT = Path(__file__).resolve().parent.parent


def test_a_reserved_port_is_not_handed_to_another_process():
    mine = ports.free_port()
    code = ("import sys; from harness.process import ports; "
            "ports._kernel_choice = lambda: int(sys.argv[1]); "
            "ports.ATTEMPTS = 3\ntry: ports.free_port()\nexcept Exception as exc: print(type(exc).__name__)")
    done = subprocess.run([sys.executable, "-c", code, str(mine)], capture_output=True, text=True, cwd=ROOT,
                          env={**os.environ})
    assert done.stdout.strip() == "SetupError", done.stdout + done.stderr
    code = "from harness.process import ports; import sys; ports._kernel_choice = lambda: int(sys.argv[1]); " \
           "print(ports.free_port())"
    other = 1 + max(mine, 1024) % 60000
    done = subprocess.run([sys.executable, "-c", code, str(other)], capture_output=True, text=True, cwd=ROOT)
    assert done.stdout.strip() == str(other), done.stderr
