"""Recovering a backup into a scratch instance and proving the target was really reached.

`pg_ctl start -w` returns once the server accepts connections, which says nothing about where
recovery stopped. A point-in-time target counts as reached only when the server has left recovery
(the harness asks Barman for target action "promote") and its log holds the stop line matching
this target. A "latest" restore must have replayed through the newest archived segment: over a
gap PostgreSQL stops early without an error, so the redo end is checked against the archive.
Recovery that ends before the target, or a server that dies, fails at once with its log.
"""

from __future__ import annotations

import datetime as dt
import re
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Mapping

import psycopg

from harness.checks import preflight as checks
from harness.process import logfiles
from harness.barman.driver import Backup, Barman
from harness.checks.preflight import CheckLog
from harness.errors import RecoveryFailed, TargetRefused, VerificationFailed
from harness.drill.fingerprint import Fingerprint, fingerprint
from harness.drill.rowdiff import diff_table
from harness.postgres.server import PostgresServer, ServerStartFailed
from harness.drill.targets import RecoveryTarget
from harness.process.waiting import wait_until
from harness.postgres.wal import segment_name, segment_number, segment_of

EARLY_END = re.compile(r"recovery ended before configured recovery target was reached")
STOP_LINE = re.compile(r"recovery stopping .*")
REDO_DONE = re.compile(r"redo done at ([0-9A-F]+/[0-9A-F]+)")
RELEVANT = r"FATAL|PANIC|ERROR|recovery stopping|redo done|selected new timeline|archive recovery complete|consistent"

# Settings a restored copy must not inherit from the source.
SCRATCH_SETTINGS = {"archive_mode": "off", "hot_standby": "on", "fsync": "off"}


@dataclass
class Restore:
    """One recovery of ``backup`` to ``target`` into a scratch server; filled in as it proceeds,
    so a failed attempt still tells how far it got."""

    server: PostgresServer
    backup: Backup
    target: RecoveryTarget
    checks: CheckLog = field(default_factory=CheckLog)
    stop_line: str = ""
    timeline: int = 0
    recover_seconds: float = 0.0
    start_seconds: float = 0.0
    reach_seconds: float = 0.0
    expected: Fingerprint | None = None
    actual: Fingerprint | None = None
    newest_archived_commit: str = ""
    chain: list = field(default_factory=list)  # the backups combined into the restore, leaf first

    @property
    def rpo_seconds(self) -> float | None:
        """Data-loss window at the target: from the target to the newest archived commit."""
        target_time = self.target.at_time or (self.backup.end_time if self.target.kind == "immediate" else "")
        if self.target.kind == "latest":
            return 0.0
        if not (target_time and self.newest_archived_commit):
            return None
        delta = _utc(self.newest_archived_commit) - _utc(target_time)
        return max(delta.total_seconds(), 0.0)

    @property
    def recovery_seconds(self) -> float:
        """Wall time from `barman recover` until the target was reached (the drill's RTO)."""
        return self.recover_seconds + self.start_seconds + self.reach_seconds

    def fingerprint(self, table: str = "books") -> Fingerprint:
        with self.server.conn.connect("books_db") as conn:
            return fingerprint(conn, table)

    def assert_matches(self, expected: Fingerprint, rows: Mapping[int, int] | None = None) -> None:
        """amcheck must find the restored table sound, and it must equal, row count and checksum,
        what the source held at the target. With the expected ``rows`` (id -> the row's hash),
        a mismatch also names the first missing, extra and changed ids."""
        checks.amcheck(self.server, expected.table, self.checks)
        self.expected = expected
        self.actual = self.fingerprint(expected.table)
        if self.actual != expected:
            same_count = "same row count, different contents" if self.actual.rows == expected.rows else \
                f"{self.actual.rows - expected.rows:+d} rows"
            raise self.checks.failed("fingerprint", VerificationFailed(
                f"Backup {self.backup.backup_id} restored to {self.target.describe()} does not hold what the "
                f"source held there ({same_count}): {expected.table} expected {expected}, restored {self.actual}.",
                "The backup or its WAL lost or changed data, or the expectation was not taken at the target; "
                "the kept scratch data dir and logs show what recovery did.",
                f"  recovery stop: {self.stop_line}" + self._row_diff(expected.table, rows)))
        self.checks.passed("fingerprint", str(self.actual))

    def _row_diff(self, table: str, rows: Mapping[int, int] | None) -> str:
        if rows is None:
            return ""
        with self.server.conn.connect("books_db") as conn:
            return f"\n  {diff_table(conn, rows, table).render()}"

    def evidence(self) -> dict:
        facts = {
            "backup_id": self.backup.backup_id,
            "backup_end_time": self.backup.end_time,
            "target_kind": self.target.kind,
            "target_value": self.target.value or self.target.kind,
            "target_inclusive": str(self.target.inclusive).lower(),
            "recovery_stop": self.stop_line,
            "timeline": str(self.timeline or ""),
            "backups_combined": " <- ".join(link.backup_id for link in reversed(self.chain)),
            "recovery_seconds": f"{self.recovery_seconds:.3f}",
            "rpo_seconds": "" if self.rpo_seconds is None else f"{self.rpo_seconds:.3f}",
            "expected_fingerprint": str(self.expected) if self.expected else "",
            "actual_fingerprint": str(self.actual) if self.actual else "",
        }
        facts.update(self.checks.as_properties())
        return facts


def recover(barman: Barman, restore: Restore, chown, timeout: float = 300) -> Restore:
    """Pre-flight checks, `barman recover`, start, then wait until the target is provably reached."""
    backup, target, scratch, log = restore.backup, restore.target, restore.server, restore.checks
    restore.newest_archived_commit = barman.newest_archived_commit
    checks.backup_metadata(barman, backup, log)
    with ThreadPoolExecutor(max_workers=1) as pool:
        # Listing the archive is read-only and independent of verify-backup: it runs meanwhile.
        listing = pool.submit(barman.archived_wal_segments, backup.backup_id)
        checks.verify_backup(barman, backup, log)
        restore.chain = checks.backup_chain(barman, backup, log)  # an incremental's parents, up to its full root
        archived = listing.result()
    checks.wal_continuity(barman, backup, _last_needed_segment(target, backup, archived), log, archived)

    t0 = time.monotonic()
    try:
        barman.recover(backup.backup_id, scratch.data_dir, target, timeout=timeout)
    except TargetRefused as exc:
        raise log.failed("target_accepted", exc) from None
    log.passed("target_accepted", target.describe())
    chown(scratch.data_dir)
    t1 = time.monotonic()
    restore.recover_seconds = t1 - t0
    try:
        scratch.start(SCRATCH_SETTINGS, timeout=timeout)
    except ServerStartFailed as exc:
        reason = _early_end(scratch) or "the scratch server did not come up"
        raise log.failed("target_reached", _recovery_failed(scratch, target, reason, exc.details)) from None
    t2 = time.monotonic()
    restore.start_seconds = t2 - t1
    try:
        restore.stop_line = wait_until_target_reached(scratch, target, timeout=timeout)
    except VerificationFailed as exc:
        raise log.failed("target_reached", exc) from None
    restore.reach_seconds = time.monotonic() - t2
    if not target.is_pitr:
        _check_replayed_to_archive_end(restore, archived[-1] if archived else backup.end_wal)
    log.passed("target_reached", restore.stop_line)

    restore.timeline = scratch.timeline()
    # Promotion from a backup on timeline N opens N+1; crash recovery to the end stays on N.
    expected_timeline = backup.timeline + (1 if target.is_pitr else 0)
    if restore.timeline != expected_timeline:
        raise log.failed("timeline", _recovery_failed(
            scratch, target, f"the restore is on timeline {restore.timeline}, expected {expected_timeline} "
            f"(backup on timeline {backup.timeline})"))
    log.passed("timeline", str(restore.timeline))
    return restore


def _last_needed_segment(target: RecoveryTarget, backup: Backup, archived: list[str]) -> str:
    if target.kind == "immediate":
        return backup.end_wal
    if target.kind == "latest" or not target.at_lsn:
        return archived[-1] if archived else backup.end_wal
    return segment_of(target.at_lsn, backup.timeline)


def wait_until_target_reached(server: PostgresServer, target: RecoveryTarget, timeout: float) -> str:
    """Return the log's stop line once the server has left recovery at exactly ``target``."""
    expected = re.compile(target.stop_pattern())

    def reached():
        early = _early_end(server)
        if early:
            raise _recovery_failed(server, target, early)
        log = "\n".join(logfiles.tail(server.log_path, 400))
        if not server.is_running():
            raise _recovery_failed(server, target, "the scratch server exited during recovery")
        stops = STOP_LINE.findall(log) if target.is_pitr else REDO_DONE.findall(log)
        if target.is_pitr and stops and not any(expected.search(line) for line in stops):
            raise _recovery_failed(server, target, f"recovery stopped elsewhere: {stops[-1]}")
        with server.conn.connect() as conn:
            if conn.execute("SELECT pg_is_in_recovery()").fetchone()[0]:
                return None
        if not stops:
            raise _recovery_failed(server, target, "the server left recovery without reporting where it "
                                   "stopped" + (" (it replayed to the end of WAL instead)" if target.is_pitr else ""))
        return stops[-1] if target.is_pitr else f"redo done at {stops[-1]}"

    return wait_until(reached, what=f"recovery to reach {target.describe()} and leave recovery",
                      timeout=timeout, interval=0.1, tolerate=(psycopg.OperationalError,),
                      evidence=lambda: server.log_excerpt(40, RELEVANT))


def _utc(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text.replace(" ", "T", 1))


def _early_end(server: PostgresServer) -> str:
    if any(EARLY_END.search(line) for line in logfiles.tail(server.log_path, 400)):
        return "WAL ran out before the target: recovery ended before the configured target was reached"
    return ""


def _check_replayed_to_archive_end(restore: Restore, newest_segment: str) -> None:
    # Over a WAL gap, recovery to "latest" ends quietly at the gap: compare where redo ended
    # with the newest segment the archive holds.
    redo_end = restore.stop_line.rsplit(" ", 1)[-1]
    redo_segment = segment_of(redo_end, restore.backup.timeline)
    if segment_number(redo_segment) < segment_number(newest_segment):
        unreplayed = segment_name(restore.backup.timeline, segment_number(redo_segment) + 1)
        raise restore.checks.failed("target_reached", _recovery_failed(
            restore.server, restore.target,
            f"redo stopped early at {redo_end} in segment {redo_segment} while the archive holds WAL through "
            f"{newest_segment}: segment {unreplayed} could not be replayed (missing or damaged), so every "
            f"change after {redo_end} is absent from the restore"))


def _recovery_failed(server: PostgresServer, target: RecoveryTarget, reason: str, details: str = "") -> RecoveryFailed:
    return RecoveryFailed(
        f"Recovery of {server.data_dir} to {target.describe()} failed: {reason}.",
        "Check that the WAL from the backup to the target is archived (barman list-files --target wal).",
        details or server.log_excerpt(25, RELEVANT))
