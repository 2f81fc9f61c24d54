"""One way to take a file lock: an exclusive flock with a deadline, and a refusal that names the holder.

The kernel releases an flock when the last descriptor of it closes, so a holder killed outright
(SIGKILL, OOM) leaves no stale lock; a child the descriptor is handed to (``fd``, pass_fds) holds it
on. The lock file is never removed (two processes could then lock two different files of one name);
it holds one line about its current holder: pid, what holds it, since when.
"""

from __future__ import annotations

import datetime as dt
import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from harness.process.waiting import WaitTimedOut, wait_until


class LockBusy(WaitTimedOut):
    """The lock was still held by another process at the deadline."""


class FileLock:
    """An exclusive flock on ``path``; ``busy`` says who holds it when it is not free, in the words of
    the caller ("another drill of this server")."""

    def __init__(self, path: Path, busy: str = "another process"):
        self.path = Path(path)
        self.busy = busy
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)

    def try_acquire(self, holder: str) -> bool:
        """Take the lock if it is free now, and write ``holder`` into the file; False when it is not."""
        try:
            fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        since = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
        line = f"pid {os.getpid()}, {holder}, since {since}\n".encode()
        try:
            os.ftruncate(self.fd, 0)
            os.pwrite(self.fd, line, 0)
        except OSError:   # the line only informs whoever waits; the lock is held all the same
            pass
        return True

    def acquire(self, holder: str, timeout: float, interval: float = 1.0) -> None:
        """Take the lock, waiting up to ``timeout`` seconds (0: not at all); LockBusy names the holder."""
        if self.try_acquire(holder):
            return
        if timeout > 0:
            try:
                wait_until(lambda: self.try_acquire(holder), what=f"the lock {self.path} ({self.busy} holds it)",
                           timeout=timeout, interval=interval)
                return
            except WaitTimedOut:
                pass
        raise LockBusy(f"{self.busy} holds the lock {self.path} ({self.holder() or 'holder unknown'}); "
                       f"waited {timeout:.0f} s.")

    def holder(self) -> str:
        """The line its current (or last) holder wrote."""
        try:
            return os.pread(self.fd, 500, 0).decode(errors="replace").strip()
        except OSError:
            return ""

    def close(self) -> None:
        """Close this descriptor: released unless a child holds a copy of it (never LOCK_UN, which
        would release the child's hold too)."""
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def __enter__(self) -> FileLock:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


@contextmanager
def locked(path: Path, holder: str, timeout: float, busy: str = "another process",
           interval: float = 0.2) -> Iterator[FileLock]:
    """Hold the lock on ``path`` for the block; LockBusy (a WaitTimedOut) past ``timeout``."""
    with FileLock(path, busy) as lock:
        lock.acquire(holder, timeout, interval)
        yield lock
