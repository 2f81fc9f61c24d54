"""One drill per Barman server at a time: an flock on a per-server lock file.

The kernel releases an flock when the last descriptor of it closes, so a holder killed outright
(SIGKILL, OOM) leaves no stale lock. The file itself is never removed (removing it would let two
processes lock two different files of the same name); it holds a line about its current holder.
"""

from __future__ import annotations

import datetime as dt
import fcntl
import os
import re
from pathlib import Path

from harness.errors import HarnessError
from harness.process.waiting import WaitTimedOut, wait_until


class LockBusy(HarnessError):
    """Another drill of the same server holds the lock."""


def lock_path(state_dir: Path, server: str) -> Path:
    return Path(state_dir) / f"{safe_name(server)}.lock"


def safe_name(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name) or "_"


class ServerLock:
    """The lock of one server's drills; ``fileno`` is handed to the drill process so the lock is held
    for as long as the drill runs, even if this process dies first."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        self.held = False

    def try_acquire(self, holder: str) -> bool:
        try:
            fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        self.held = True
        os.ftruncate(self.fd, 0)
        since = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
        os.pwrite(self.fd, f"pid {os.getpid()}, {holder}, since {since}\n".encode(), 0)
        return True

    def acquire(self, holder: str, timeout: float, interval: float = 1.0) -> None:
        """Take the lock, waiting up to ``timeout`` seconds (0: not at all); LockBusy names the holder."""
        if self.try_acquire(holder):
            return
        if timeout > 0:
            try:
                wait_until(lambda: self.try_acquire(holder), what=f"the drill lock {self.path}", timeout=timeout,
                           interval=interval)
                return
            except WaitTimedOut:
                pass
        raise LockBusy(f"another drill of this server holds {self.path} ({self.holder() or 'holder unknown'}); "
                       f"waited {timeout:.0f} s.")

    def holder(self) -> str:
        try:
            return os.pread(self.fd, 500, 0).decode(errors="replace").strip()
        except OSError:
            return ""

    def close(self) -> None:
        """Release (the kernel releases it too when the last descriptor closes)."""
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1
            self.held = False

    def __enter__(self) -> ServerLock:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
