"""Checks beside the copy: recorded as if run in sequence, the first failure in that order raised."""

import threading
import time
from types import SimpleNamespace

import pytest

from harness.checks import wal_staging
from harness.drill.aside import ChecksAside
from harness.drill.targets import RecoveryTarget
from harness.errors import SetupError, VerificationFailed
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


# -- a restore that ends elsewhere: what finished is recorded, what is queued never starts ----------

def test_a_check_still_queued_when_the_restore_ends_never_starts():
    rec, started, ran = record(), threading.Event(), []

    def holding(own):
        started.set()
        aside.abandoned.wait(10)   # a check that stops when told to

    with pytest.raises(SetupError, match="the copy could not run"):
        with ChecksAside(rec, workers=1) as aside:
            aside.start(holding)
            queued = aside.start(lambda own: ran.append("wal_after_target"))
            assert started.wait(5)
            raise SetupError("the copy could not run")
    assert ran == [] and queued.cancelled(), "a check queued behind the copy must not start once it is abandoned"


@pytest.mark.parametrize("ending", [SetupError("barman is not installed"), KeyboardInterrupt()])
def test_outcomes_of_checks_that_finished_reach_the_record_whatever_ends_the_copy(monkeypatch, tmp_path, ending):
    from harness.drill import recovery

    verified = threading.Event()

    def verify(own, *args):
        own.passed("verify_backup", "ok")
        verified.set()
        return []

    def copy(*args, **kwargs):
        assert verified.wait(5)
        raise ending

    monkeypatch.setattr(recovery.preflight, "backup_metadata", lambda *args: None)
    monkeypatch.setattr(recovery, "_verified_backup", verify)
    monkeypatch.setattr(recovery, "_wal_route", lambda own, *args: (SimpleNamespace(crosses=False), ["A"]))
    monkeypatch.setattr(recovery, "_wal_read", lambda own, *args: own.passed("wal_integrity", "ok"))
    rec = record()
    with pytest.raises(type(ending)) as raised:
        recovery.restore_backup(SimpleNamespace(recover=copy), SimpleNamespace(data_dir=tmp_path / "scratch"),
                                SimpleNamespace(backup_id="B1"), RecoveryTarget("latest"), rec,
                                read_after_target=False)
    assert raised.value is ending, "the restore's own exception goes on, not masked"
    assert [(c.name, c.passed) for c in rec.checks] == [("verify_backup", True), ("wal_integrity", True)]


def test_a_failure_beside_is_recorded_when_the_copy_ends_with_another_error():
    rec = record()
    with pytest.raises(SetupError, match="no space left"):
        with ChecksAside(rec) as aside:
            aside.start(failing("verify_backup"))
            assert aside.failure.wait(5)
            raise SetupError("no space left on the scratch")
    assert [(c.name, c.passed) for c in rec.checks] == [("verify_backup", False)]


def test_staging_stops_when_told_to(tmp_path):
    stop = threading.Event()
    wals = tmp_path / "wals"
    wals.mkdir()
    segments = [f"0000000100000000000000{n:02X}" for n in range(3, 6)]
    for name in segments:
        (wals / name).write_bytes(b"\1" * 64)

    class Archive:
        def wal_path(self, segment):
            stop.set()   # the restore is abandoned while the first one is staged
            return wals / segment

    staging = tmp_path / "staging"
    staging.mkdir()
    with pytest.raises(wal_staging.Stopped, match="stopped"):
        wal_staging.stage(Archive(), segments, staging, 64, stop=stop)
    assert [path.name for path in staging.iterdir()] == [segments[0]], "no segment after the stop is staged"
