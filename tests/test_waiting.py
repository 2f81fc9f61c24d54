"""wait_until: first truthy value, timeouts that explain themselves, tolerated and fatal errors."""

import time

import pytest

from harness.errors import HarnessError
from harness.process.waiting import WaitTimedOut, wait_until


class Sequence:
    """A probe that returns (or raises) the given outcomes in turn, then repeats the last one."""

    def __init__(self, *outcomes):
        self.outcomes = list(outcomes)
        self.calls = 0

    def __call__(self):
        outcome = self.outcomes[min(self.calls, len(self.outcomes) - 1)]
        self.calls += 1
        if isinstance(outcome, BaseException):
            raise outcome
        return outcome


def test_returns_first_truthy_value():
    probe = Sequence(None, 0, "", [], "ready", "later")
    assert wait_until(probe, what="x", timeout=5, interval=0.01) == "ready"
    assert probe.calls == 5


def test_returns_immediately_when_already_true():
    probe = Sequence({"clients": [1]})
    assert wait_until(probe, what="x", timeout=5, interval=1) == {"clients": [1]}
    assert probe.calls == 1


def test_timeout_names_what_and_carries_log_lines():
    probe = Sequence(None)
    start = time.monotonic()
    with pytest.raises(WaitTimedOut) as info:
        wait_until(probe, what="the WAL receiver to stream", timeout=0.3, interval=0.05,
                   logs=lambda: "LOG:  log line 42")
    elapsed = time.monotonic() - start
    error = info.value
    assert isinstance(error, HarnessError)
    assert "the WAL receiver to stream" in str(error)
    assert "Timed out" in error.cause
    assert "log line 42" in error.details
    assert "log line 42" in error.render()
    assert probe.calls > 1
    assert 0.25 <= elapsed < 3


def test_timeout_without_log_lines():
    with pytest.raises(WaitTimedOut) as info:
        wait_until(lambda: False, what="nothing", timeout=0.1, interval=0.02)
    assert info.value.details == ""
    assert "nothing" in info.value.cause


def test_tolerated_exception_is_retried():
    probe = Sequence(ConnectionError("not yet"), ConnectionError("still not"), None, "up")
    assert wait_until(probe, what="x", timeout=5, interval=0.01, tolerate=(ConnectionError,)) == "up"
    assert probe.calls == 4


def test_tolerated_exception_until_deadline_becomes_timeout_with_last_error():
    probe = Sequence(ConnectionError("connection refused on port 5999"))
    with pytest.raises(WaitTimedOut) as info:
        wait_until(probe, what="the server to accept connections", timeout=0.3, interval=0.05,
                   tolerate=(ConnectionError,), logs=lambda: "FATAL: the log line")
    error = info.value
    assert "the server to accept connections" in error.cause
    assert "connection refused on port 5999" in error.cause
    assert "FATAL: the log line" in error.details
    assert probe.calls > 1


def test_other_exception_propagates_at_once():
    probe = Sequence(None, RuntimeError("server died"))
    start = time.monotonic()
    with pytest.raises(RuntimeError, match="server died"):
        wait_until(probe, what="x", timeout=10, interval=0.01, tolerate=(ConnectionError,))
    assert time.monotonic() - start < 2
    assert probe.calls == 2


def test_exception_propagates_at_once_without_tolerate():
    probe = Sequence(ValueError("boom"))
    start = time.monotonic()
    with pytest.raises(ValueError, match="boom"):
        wait_until(probe, what="x", timeout=10, interval=0.01)
    assert time.monotonic() - start < 2
    assert probe.calls == 1


def test_harness_error_from_probe_is_not_turned_into_timeout():
    class Died(HarnessError):
        pass

    probe = Sequence(Died("the scratch server exited during recovery"))
    with pytest.raises(Died):
        wait_until(probe, what="x", timeout=10, interval=0.01, tolerate=(ConnectionError,))
    assert probe.calls == 1
