"""Teardown that cannot be foiled: every registered cleanup runs, even when another one hangs or fails."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Callable

from harness.errors import HarnessError


class CleanupFailed(HarnessError):
    """Some cleanups failed or hung; every other registered cleanup still ran."""

    def __init__(self, what: str, failures: list[tuple[str, str]], total: int):
        self.failures = failures
        names = ", ".join(name for name, _ in failures)
        details = "\n".join(f"    {name}: {error}" for name, error in failures)
        super().__init__(
            cause=f"{len(failures)} of {total} cleanups of {what} did not complete: {names}.",
            fix="Every other cleanup ran. Stop or remove what these left behind (processes, servers, "
                "containers, directories) before the next run.",
            details=details)


@dataclass(frozen=True)
class _Cleanup:
    what: str
    undo: Callable[[], None]
    timeout: float


class Cleanups:
    """Cleanups registered as resources start, run last first by ``close()``, each one best effort.

    Each cleanup runs in its own daemon thread with its own deadline, so one that hangs is abandoned
    (and reported) instead of keeping the others from running or the process from exiting.
    """

    def __init__(self, what: str = "the run"):
        self.what = what
        self._pending: list[_Cleanup] = []
        self._lock = threading.Lock()

    def add(self, what: str, undo: Callable[[], None], timeout: float = 60.0) -> None:
        """Register the cleanup of a resource right as it starts ("stop the source server", ...)."""
        if not callable(undo):
            raise TypeError(f"the cleanup {what!r} must be callable, not {type(undo).__name__}")
        with self._lock:
            self._pending.append(_Cleanup(what, undo, timeout))

    def close(self) -> None:
        """Run every registered cleanup once, last registered first; raise CleanupFailed at the end."""
        with self._lock:
            # Taken out before running: a second close (or one from a nested teardown) runs nothing twice.
            pending, self._pending = self._pending, []
        failures: list[tuple[str, str]] = []
        interrupted = False
        for cleanup in reversed(pending):
            try:
                error, was_interrupted = _run(cleanup)
            except KeyboardInterrupt:  # landed outside the wait: the cleanup runs on, unwatched
                error, was_interrupted = "interrupted before it could be awaited", True
            interrupted |= was_interrupted
            if error:
                failures.append((cleanup.what, error))
        failed = CleanupFailed(self.what, failures, len(pending)) if failures else None
        if interrupted:
            # Ctrl-C still stops the run, but only once everything had its chance to clean up.
            raise KeyboardInterrupt() from failed
        if failed:
            raise failed

    def __enter__(self) -> "Cleanups":
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()


def _run(cleanup: _Cleanup) -> tuple[str | None, bool]:
    """Run one cleanup with its deadline: (error or None, whether Ctrl-C arrived meanwhile)."""
    outcome: list[BaseException] = []
    finished = threading.Event()  # waited on instead of join(): an interrupted join can misreport the thread

    def call():
        try:
            cleanup.undo()
        except BaseException as exc:  # anything, SystemExit included, is a failed cleanup
            outcome.append(exc)
        finally:
            finished.set()

    interrupted = False
    deadline = time.monotonic() + cleanup.timeout
    try:
        threading.Thread(target=call, name=f"cleanup: {cleanup.what}", daemon=True).start()
    except KeyboardInterrupt:  # start() waits for the thread to run: Ctrl-C may land there
        interrupted = True
    while not finished.is_set() and (remaining := deadline - time.monotonic()) > 0:
        try:
            finished.wait(remaining)
        except KeyboardInterrupt:
            interrupted = True
    if not finished.is_set():
        return f"hung: still running after {cleanup.timeout:g} s, abandoned", interrupted
    if outcome:
        exc = outcome[0]
        text = str(exc).replace("\n", "\n      ")
        return f"{type(exc).__name__}: {text}" if text else type(exc).__name__, interrupted
    return None, interrupted
