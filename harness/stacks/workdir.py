"""Where a run's directory goes when the user names none: a roomy tmpfs, else the temp dir.

A restore writes every file of the backup: at the drills' sizes that is a thousand-odd small
catalog files, and on some disks creating a file costs the kernel most of a millisecond (0.7 s
per restore measured on an ext4 VM disk, 0.07 s on tmpfs). /dev/shm is taken only with room to
spare, because PostgreSQL servers on the same machine keep their dynamic shared memory there:
the run's own estimated need must fit twice over and still leave FLOOR free.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

SHARED_MEMORY = Path("/dev/shm")
GiB = 2 ** 30
FLOOR = 4 * GiB
BASE_NEED = 1 * GiB          # catalogs of the source, its backups and restores, WAL, logs
NEED_PER_ROW = 1024          # a books row is ~200 bytes in the table; backups and restores hold copies


@dataclass(frozen=True)
class Choice:
    path: str
    why: str


def estimated_need(rows: int) -> int:
    return BASE_NEED + max(rows, 0) * NEED_PER_ROW


def choose(rows: int, tmpfs_free: int | None, temp_dir: str) -> Choice:
    """The work directory for a run of about ``rows`` rows, given /dev/shm's free bytes (None when
    it is not a usable tmpfs)."""
    need = estimated_need(rows)
    if tmpfs_free is not None and tmpfs_free >= 2 * need + FLOOR:
        return Choice(str(SHARED_MEMORY), f"tmpfs with {tmpfs_free / GiB:.1f} GiB free")
    if tmpfs_free is None:
        return Choice(temp_dir, "the system temp dir (no usable tmpfs at /dev/shm)")
    return Choice(temp_dir, f"the system temp dir (/dev/shm has {tmpfs_free / GiB:.1f} GiB free, "
                            f"less than twice the ~{need / GiB:.1f} GiB this run may need plus {FLOOR // GiB} GiB)")


def tmpfs_free_bytes(path: Path = SHARED_MEMORY) -> int | None:
    """Free bytes of ``path`` when it is a writable tmpfs mount point; None otherwise."""
    try:
        mounts = Path("/proc/self/mounts").read_text().splitlines()
    except OSError:
        return None
    if not any(line.split()[1:3] == [str(path), "tmpfs"] for line in mounts if len(line.split()) > 2):
        return None
    if not os.access(path, os.W_OK | os.X_OK):
        return None
    stats = os.statvfs(path)
    return stats.f_bavail * stats.f_frsize


def default_workdir(rows: int) -> Choice:
    return choose(rows, tmpfs_free_bytes(), tempfile.gettempdir())


KEPT_UP = Path("/var/tmp")


def kept_up_workdir() -> Choice:
    """Where a stack kept up for manual work goes: on disk. It may run for weeks, and a tmpfs would hold
    it in RAM all that time and lose it at a reboot (/var/tmp, unlike /tmp, is kept across reboots)."""
    if KEPT_UP.is_dir() and os.access(KEPT_UP, os.W_OK | os.X_OK):
        return Choice(str(KEPT_UP), "on disk and kept across reboots, for a stack kept up for manual work")
    return Choice(tempfile.gettempdir(), f"the system temp dir ({KEPT_UP} is not writable)")
