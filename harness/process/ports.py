"""TCP ports on 127.0.0.1: a free one for each server, or a clear error when a named one is taken.

The kernel's free port is free only until someone binds it, and a server binds its port long after
the harness chose it (after initdb; for a scratch, after verify-backup, the WAL reads and the copy of a
restore, which can take hours). Runs in parallel (pytest-xdist workers, two runs at once) ask the
kernel in that window too, so each chosen port is also reserved: a POSIX record lock on the byte at
offset <port> of one file per user. Another harness process skips a locked port. The reservation is
held until ``release`` (the server listens on the port, or is stopped and discarded:
harness.postgres.server); the kernel drops the locks when the process ends, however it ends, so a
killed run leaves no reservation. A reservation never released lapses after HOLD_SECONDS, so that a
long-lived process does not hoard ports.
"""

from __future__ import annotations

import fcntl
import os
import socket
import stat
import tempfile
import threading
import time
from pathlib import Path

from harness.errors import SetupError

RESERVATIONS = Path(tempfile.gettempdir()) / f".pgbv-ports-{os.getuid()}.lock"
HOLD_SECONDS = 7 * 24 * 3600   # a safety net only: servers release their port when they listen or stop
ATTEMPTS = 50

_lock = threading.Lock()
_held: dict[int, float] = {}   # port -> when this process reserved it (monotonic)
_file: int | None = None       # kept open for the process's life: closing it would drop every lock


def free_port() -> int:
    """A port free now and reserved against every other harness process of this user."""
    with _lock:
        _release_expired()
        for _ in range(ATTEMPTS):
            port = _kernel_choice()
            if port not in _held and _reserve(port):
                _held[port] = time.monotonic()
                return port
    raise SetupError(f"No free TCP port on 127.0.0.1 after {ATTEMPTS} tries: every port the kernel offered was "
                     "reserved by another run of the harness.",
                     f"Too many runs at once on this machine, or {RESERVATIONS} is not usable: check it.")


def release(port: int) -> None:
    """The port's server listens on it (the kernel now refuses it to others) or will not: drop the
    reservation. A port this process did not reserve is left alone."""
    with _lock:
        if _held.pop(port, None) is not None and _file is not None:
            fcntl.lockf(_file, fcntl.LOCK_UN, 1, port)


def require_free(port: int, purpose: str) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError as exc:
            raise SetupError(
                f"Port {port} on 127.0.0.1, asked for the {purpose}, is already in use ({exc.strerror}).",
                f"Stop what listens there (`ss -ltnp 'sport = :{port}'` shows it) or choose another port; "
                "without a port option the harness picks a free one.") from None
    return port


def _kernel_choice() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _reserve(port: int) -> bool:
    """Lock the port's byte; False when another process holds it. Without a usable lock file the
    port is taken unreserved (a collision then fails a server start with its own message)."""
    fd = _reservations()
    if fd is None:
        return True
    try:
        fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB, 1, port)
        return True
    except OSError:
        return False


def _release_expired() -> None:
    now = time.monotonic()
    for port, since in list(_held.items()):
        if now - since > HOLD_SECONDS:
            del _held[port]
            if _file is not None:
                fcntl.lockf(_file, fcntl.LOCK_UN, 1, port)


def _reservations() -> int | None:
    global _file
    if _file is None:
        try:
            fd = os.open(RESERVATIONS, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
        except OSError:
            return None
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode) or info.st_uid != os.getuid():  # planted by someone else
            os.close(fd)
            return None
        _file = fd
    return _file
