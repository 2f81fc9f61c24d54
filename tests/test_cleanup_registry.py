"""Cleanups: every cleanup runs, last first, even when others hang, raise or Ctrl-C arrives."""

import os
import shutil
import signal
import tempfile
import time
from pathlib import Path

import pytest

from harness.errors import HarnessError
from harness.process.cleanup import CleanupFailed, Cleanups
from harness.process.commands import start_background, stop_process_group


def _raise():
    raise RuntimeError("disk on fire")


def test_hung_and_failing_cleanups_do_not_stop_the_others():
    ran = []
    cleanups = Cleanups("the drill")
    cleanups.add("first", lambda: ran.append("first"))
    cleanups.add("hangs", lambda: time.sleep(30), timeout=0.5)
    cleanups.add("middle", lambda: ran.append("middle"))
    cleanups.add("raises", _raise)
    cleanups.add("last", lambda: ran.append("last"))

    started = time.monotonic()
    with pytest.raises(CleanupFailed) as failed:
        cleanups.close()
    assert time.monotonic() - started < 5
    assert ran == ["last", "middle", "first"]
    assert isinstance(failed.value, HarnessError)
    assert [name for name, _ in failed.value.failures] == ["raises", "hangs"]
    text = str(failed.value)
    assert "2 of 5 cleanups of the drill" in text
    assert "raises: RuntimeError: disk on fire" in text
    assert "hangs: hung: still running after 0.5 s" in text


def test_close_is_idempotent_and_quiet_when_all_succeed():
    ran = []
    cleanups = Cleanups()
    cleanups.add("once", lambda: ran.append(1))
    cleanups.close()
    cleanups.close()
    assert ran == [1]


def test_context_manager_closes():
    ran = []
    with Cleanups() as cleanups:
        cleanups.add("on exit", lambda: ran.append(1))
    assert ran == [1]


@pytest.mark.skipif(signal.getsignal(signal.SIGINT) is not signal.default_int_handler,
                    reason="needs Python's own Ctrl-C handler")
@pytest.mark.parametrize("delay", [0, 0.2], ids=["while-starting", "while-waiting"])
def test_ctrl_c_during_close_runs_the_remaining_cleanups_then_interrupts(delay):
    ran = []
    cleanups = Cleanups()
    cleanups.add("first", lambda: ran.append("first"))

    def interrupt():
        time.sleep(delay)
        os.kill(os.getpid(), signal.SIGINT)  # lands in the main thread, in close()
        time.sleep(0.3)
        ran.append("interrupted")

    cleanups.add("ctrl-c", interrupt)
    with pytest.raises(KeyboardInterrupt):
        cleanups.close()
    assert ran == ["interrupted", "first"]


def test_add_refuses_what_is_not_callable():
    with pytest.raises(TypeError, match="'x' must be callable"):
        Cleanups().add("x", None)


def _gone(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0]
    except FileNotFoundError:
        return True
    return state == "Z"  # exited; only its parent's wait is missing


def test_real_process_and_directory_are_cleaned_despite_hung_and_failing_neighbours(tmp_path):
    directory = Path(tempfile.mkdtemp(prefix="pgbv-cleanup-test-"))
    (directory / "file").write_text("x")
    proc = start_background(["sleep", "300"], log_path=tmp_path / "sleep.log")
    try:
        cleanups = Cleanups("the real run")
        cleanups.add("remove the run dir", lambda: shutil.rmtree(directory))
        cleanups.add("hangs", lambda: time.sleep(30), timeout=0.5)
        cleanups.add("stop sleep", lambda: stop_process_group(proc))
        cleanups.add("raises", _raise)

        started = time.monotonic()
        with pytest.raises(CleanupFailed) as failed:
            cleanups.close()
        assert time.monotonic() - started < 15
        assert [name for name, _ in failed.value.failures] == ["raises", "hangs"]
        assert proc.poll() is not None
        assert _gone(proc.pid)
        with pytest.raises(ProcessLookupError):
            os.kill(proc.pid, 0)  # reaped by stop_process_group's wait: the pid is free
        assert not directory.exists()
    finally:
        if proc.poll() is None:
            stop_process_group(proc)
        shutil.rmtree(directory, ignore_errors=True)
