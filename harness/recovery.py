"""Recovering a backup into a scratch instance and waiting until the target is really reached.

`pg_ctl start -w` returns once the server accepts connections, which says nothing about where
recovery stopped. The target counts as reached only when the server has left recovery (the
harness asks Barman for target action "promote") and its log holds the stop line that matches
this target. Recovery that ends before the target, or a server that dies, fails at once.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from pathlib import Path

import psycopg

from . import logfiles
from .barman import Backup, Barman
from .errors import RecoveryFailed, VerificationFailed
from .fingerprint import Fingerprint, fingerprint
from .server import PostgresServer, ServerStartFailed
from .targets import RecoveryTarget
from .waiting import wait_until

EARLY_END = re.compile(r"recovery ended before configured recovery target was reached")
STOP_LINE = re.compile(r"recovery stopping .*")
FATAL = r"FATAL|PANIC|recovery stopping|redo done|selected new timeline|archive recovery complete|consistent"

# Settings a restored copy must not inherit from the source.
SCRATCH_SETTINGS = {"archive_mode": "off", "hot_standby": "on", "fsync": "off"}


@dataclass
class Restore:
    """A scratch server recovered from ``backup`` to ``target``."""

    server: PostgresServer
    backup: Backup
    target: RecoveryTarget
    stop_line: str
    timeline: int
    recover_seconds: float
    start_seconds: float
    reach_seconds: float

    expected: Fingerprint | None = None
    actual: Fingerprint | None = None

    @property
    def recovery_seconds(self) -> float:
        """Wall time from `barman recover` until the target was reached (the drill's RTO)."""
        return self.recover_seconds + self.start_seconds + self.reach_seconds

    def fingerprint(self, table: str = "books") -> Fingerprint:
        with self.server.conn.connect("books_db") as conn:
            return fingerprint(conn, table)

    def assert_matches(self, expected: Fingerprint) -> None:
        """The restored table must equal, row count and checksum, what the source held at the target."""
        self.expected = expected
        self.actual = self.fingerprint(expected.table)
        if self.actual != expected:
            raise VerificationFailed(
                f"Backup {self.backup.backup_id} restored to {self.target.describe()} does not hold what the "
                f"source held there: {expected.table} expected {expected}, restored {self.actual}.",
                "The backup or its WAL lost or changed data; the kept scratch data dir and logs show what "
                "recovery did.",
                f"  recovery stop: {self.stop_line}")

    def evidence(self) -> dict:
        return {
            "backup_id": self.backup.backup_id,
            "backup_end_time": self.backup.end_time,
            "target_kind": self.target.kind,
            "target_value": self.target.value or "immediate",
            "target_inclusive": str(self.target.inclusive).lower(),
            "recovery_stop": self.stop_line,
            "timeline": str(self.timeline),
            "recovery_seconds": f"{self.recovery_seconds:.3f}",
            "expected_fingerprint": str(self.expected) if self.expected else "",
            "actual_fingerprint": str(self.actual) if self.actual else "",
        }


def recover(barman: Barman, backup: Backup, target: RecoveryTarget, scratch: PostgresServer,
            chown, timeout: float = 300) -> Restore:
    """Restore ``backup`` into ``scratch.data_dir`` with ``target``, start it, wait for the target."""
    t0 = time.monotonic()
    barman.recover(backup.backup_id, scratch.data_dir, target, timeout=timeout)
    chown(scratch.data_dir)
    t1 = time.monotonic()
    try:
        scratch.start(SCRATCH_SETTINGS, timeout=timeout)
    except ServerStartFailed as exc:
        raise _recovery_failed(scratch, target, "the scratch server did not come up", exc.details) from None
    t2 = time.monotonic()
    stop_line = wait_until_target_reached(scratch, target, timeout=timeout)
    t3 = time.monotonic()
    timeline = scratch.timeline()
    if timeline != backup.timeline + 1:
        # Promotion from a backup on timeline N must open N+1; anything else means other history.
        raise _recovery_failed(scratch, target, f"the restore opened timeline {timeline}, expected "
                               f"{backup.timeline + 1} (backup on timeline {backup.timeline})")
    return Restore(scratch, backup, target, stop_line, timeline, t1 - t0, t2 - t1, t3 - t2)


def wait_until_target_reached(server: PostgresServer, target: RecoveryTarget, timeout: float) -> str:
    """Return the log's stop line once the server has promoted at exactly ``target``."""
    expected = re.compile(target.stop_pattern())

    def reached():
        log = "\n".join(logfiles.tail(server.log_path, 400))
        if EARLY_END.search(log):
            raise _recovery_failed(server, target, "WAL ran out before the target: "
                                   "recovery ended before the configured target was reached")
        if not server.is_running():
            raise _recovery_failed(server, target, "the scratch server exited during recovery")
        stops = STOP_LINE.findall(log)
        if stops and not any(expected.search(line) for line in stops):
            raise _recovery_failed(server, target, f"recovery stopped elsewhere: {stops[-1]}")
        with server.conn.connect() as conn:
            if conn.execute("SELECT pg_is_in_recovery()").fetchone()[0]:
                return None
        if not stops:
            raise _recovery_failed(server, target, "the server left recovery without reporting a stop at "
                                   "the target (it replayed to the end of WAL instead)")
        return stops[-1]

    return wait_until(reached, what=f"recovery to reach {target.describe()} and promote",
                      timeout=timeout, interval=0.1, tolerate=(psycopg.OperationalError,),
                      evidence=lambda: server.log_excerpt(40, FATAL))


def _recovery_failed(server: PostgresServer, target: RecoveryTarget, reason: str, details: str = "") -> RecoveryFailed:
    return RecoveryFailed(
        f"Recovery of {server.data_dir} to {target.describe()} failed: {reason}.",
        "Check that the WAL from the backup to the target is archived (barman list-files --target wal).",
        details or server.log_excerpt(25, FATAL))
