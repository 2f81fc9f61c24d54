"""One drill per Barman server at a time: an flock (harness.process.filelock) on a per-server lock file.

The drill process inherits the lock's descriptor, so the lock is held for as long as the drill runs,
even if the hook's process dies first; the kernel releases it when the last holder ends.
"""

from __future__ import annotations

import re
from pathlib import Path

from harness.process.filelock import FileLock, LockBusy

__all__ = ["LockBusy", "ServerLock", "lock_path", "safe_name"]


def lock_path(state_dir: Path, server: str) -> Path:
    return Path(state_dir) / f"{safe_name(server)}.lock"


def safe_name(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name) or "_"


class ServerLock(FileLock):
    """The lock of one server's drills; ``fd`` is handed to the drill process."""

    def __init__(self, path: Path):
        super().__init__(path, busy="another drill of this server")
