"""The one file lock: a refusal at the deadline names what it waited for and who holds it; a holder
killed outright leaves no stale lock; a child handed the descriptor holds the lock on."""

import os
import signal
import subprocess
from pathlib import Path

import pytest

from harness.process.filelock import FileLock, LockBusy, locked
from harness.process.waiting import WaitTimedOut

import lock_holder


def hold(path: Path, seconds: float) -> subprocess.Popen:
    return lock_holder.hold("harness.process.filelock:FileLock", path, seconds, "a metrics update")


def test_past_the_deadline_the_refusal_names_the_holder_and_what_holds_it(tmp_path):
    path = tmp_path / "sub" / "pgbv.prom.lock"
    holder = hold(path, 120)
    try:
        with pytest.raises(LockBusy) as refused:
            with locked(path, "another update", timeout=0.5, busy="another run writing its metrics"):
                pytest.fail("got a lock another process holds")
        assert isinstance(refused.value, WaitTimedOut)   # callers that tolerate a timed-out wait tolerate it
        said = refused.value.render()
        assert said.startswith(f"another run writing its metrics holds the lock {path} (pid {holder.pid}, "
                               "a metrics update, since "), said
        assert said.endswith("waited 0 s.") or said.endswith("waited 1 s."), said
        holder.send_signal(signal.SIGKILL)
        holder.wait(timeout=10)
        with locked(path, "another update", timeout=5) as lock:   # the kernel released it
            assert lock.holder().startswith(f"pid {os.getpid()}, another update, since ")
    finally:
        holder.kill()
        holder.wait(timeout=10)


def test_a_waiter_gets_the_lock_once_it_is_free(tmp_path):
    holder = hold(tmp_path / "x.lock", 1.0)
    try:
        with locked(tmp_path / "x.lock", "the next", timeout=60):
            assert holder.poll() is not None, "got the lock while the first still held it"
    finally:
        holder.kill()
        holder.wait(timeout=10)


def test_a_child_handed_the_descriptor_holds_it_after_the_parent_closes(tmp_path):
    path = tmp_path / "main.lock"
    with FileLock(path) as lock:
        assert lock.try_acquire("drill of backup B1")
        child = subprocess.Popen(["sleep", "120"], pass_fds=(lock.fd,))
    try:
        with FileLock(path) as other:
            assert not other.try_acquire("drill of backup B2")
        child.kill()
        child.wait(timeout=10)
        with FileLock(path) as other:
            assert other.try_acquire("drill of backup B2")
    finally:
        child.kill()
        child.wait(timeout=10)
