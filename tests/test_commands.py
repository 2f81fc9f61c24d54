"""Running commands: a deadline that raises when checked, and never when a caller (a cleanup) asked not to."""

import sys
import time

import pytest

from harness.errors import CommandFailed
from harness.process.commands import run

SLOW = [sys.executable, "-c", "import time; print('started', flush=True); time.sleep(30)"]


def test_a_checked_command_past_its_deadline_raises_with_its_output():
    with pytest.raises(CommandFailed, match="did not finish within 1 s") as failed:
        run(SLOW, timeout=1)
    assert "started" in failed.value.details


def test_an_unchecked_command_past_its_deadline_returns_instead_of_raising():
    started = time.monotonic()
    done = run(SLOW, timeout=1, check=False)
    assert time.monotonic() - started < 10
    assert done.returncode is None
    assert "started" in done.stdout and "did not finish within 1 s" in done.stdout


def test_an_unchecked_failure_is_returned():
    done = run([sys.executable, "-c", "import sys; print('no'); sys.exit(3)"], check=False)
    assert (done.returncode, done.stdout.strip()) == (3, "no")


def test_a_missing_command_raises_even_unchecked():
    with pytest.raises(CommandFailed, match="Command not found: no-such-command-xyz"):
        run(["no-such-command-xyz"], check=False)
