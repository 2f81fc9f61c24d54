"""Checks beside the copy: recorded as if run in sequence, the first failure in that order raised."""

import threading
import time

import pytest

from harness.drill.aside import ChecksAside
from harness.errors import VerificationFailed
from harness.evidence.records import RestoreRecord


def record() -> RestoreRecord:
    return RestoreRecord("B1", "", "xid", "1234", True)


def passing(name, seconds=0.0):
    def check(rec):
        time.sleep(seconds)
        rec.passed(name, "ok")
        return name
    return check


def failing(name, seconds=0.0):
    def check(rec):
        time.sleep(seconds)
        raise rec.failed(name, VerificationFailed(f"{name} is damaged"))
    return check


def test_outcomes_are_recorded_in_the_order_the_checks_started_whenever_they_finish():
    rec = record()
    with ChecksAside(rec) as aside:
        slow = aside.start(passing("verify_backup", 0.2))
        assert aside.run(passing("wal_continuity")) == "wal_continuity"
        aside.start(passing("wal_after_target"))
        aside.settle()
    assert [c.name for c in rec.checks] == ["verify_backup", "wal_continuity", "wal_after_target"]
    assert slow.result() == "verify_backup"


def test_a_failure_here_waits_for_the_earlier_check_and_the_earlier_failure_wins():
    rec = record()
    with ChecksAside(rec) as aside:
        aside.start(failing("verify_backup", 0.2))
        with pytest.raises(VerificationFailed, match="verify_backup is damaged"):
            aside.run(failing("wal_integrity"))
    assert [(c.name, c.passed) for c in rec.checks] == [("verify_backup", False)], \
        "the record stops at the first failure"


def test_a_failure_beside_sets_the_signal_that_stops_the_copy():
    rec = record()
    with ChecksAside(rec) as aside:
        aside.run(passing("wal_integrity"))
        aside.start(failing("verify_backup", 0.05))
        assert aside.failure.wait(5), "the copy running meanwhile is told at once"
        with pytest.raises(VerificationFailed, match="verify_backup"):
            aside.settle()
    assert [(c.name, c.passed) for c in rec.checks] == [("wal_integrity", True), ("verify_backup", False)]


def test_a_command_is_stopped_with_what_it_started_when_told_to():
    from harness.process.commands import run

    told = threading.Event()
    stop = threading.Timer(0.3, told.set)
    stop.start()
    started = time.monotonic()
    done = run(["sh", "-c", "sleep 30 & sleep 30; echo never"], timeout=60, check=False, stop=told)
    assert done.returncode is None and "(stopped)" in done.stdout and "never" not in done.stdout
    assert time.monotonic() - started < 15
