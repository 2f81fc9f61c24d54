"""A model of the history's table at every committed version, and the version each target expects.

Every recovery target of a history (time, xid, lsn, restore point, immediate) has an exact
expectation: a model version, whose fingerprint and rows are known.

Where a target sits exactly on a commit, inclusive and exclusive expect different versions:
xid and time targets on a commit's xid and commit timestamp, lsn targets on the start of its
commit record (found with pg_walinspect).
"""

from __future__ import annotations

import bisect
import heapq
import itertools
from dataclasses import dataclass
from typing import Mapping

from harness.drill.fingerprint import Fingerprint, combine
from harness.drill.targets import RecoveryTarget
from harness.postgres.wal import lsn_to_int

Changes = dict  # id -> hash of the row's new contents, or None when the row was deleted


class TableModel:
    """A table's rows (id -> the row's hash, harness.drill.fingerprint.ROW_HASH_SQL) at every committed version.

    Version 0 is the table when the model started; each ``commit`` makes the next version.
    Fingerprints are kept per version (incrementally, as the server sums them), rows are rebuilt
    on demand by replaying the changes.
    """

    def __init__(self, rows: Mapping[int, int], table: str = "books"):
        self.table = table
        self._base = dict(rows)
        self.current = dict(rows)
        self.ids = sorted(rows)  # live ids, ascending: picks count back from the newest
        self._changes: list[Changes] = []
        self._sums = [(len(rows), sum(rows.values()))]

    @property
    def version(self) -> int:
        return len(self._changes)

    def commit(self, changes: Changes) -> int:
        """Apply one committed transaction's changes; returns the new version."""
        count, total = self._sums[-1]
        for row_id, row_hash in changes.items():
            old = self.current.get(row_id)
            if old is not None:
                count, total = count - 1, total - old
            if row_hash is None:
                if old is not None:
                    del self.current[row_id]
                    del self.ids[bisect.bisect_left(self.ids, row_id)]
            else:
                if old is None:
                    bisect.insort(self.ids, row_id)
                self.current[row_id] = row_hash
                count, total = count + 1, total + row_hash
        self._changes.append(dict(changes))
        self._sums.append((count, total))
        return self.version

    def fingerprint_at(self, version: int) -> Fingerprint:
        count, total = self._sums[version]
        return combine(count, total, self.table)

    def rows_at(self, version: int) -> dict[int, int]:
        rows = dict(self._base)
        for changes in self._changes[:version]:
            for row_id, row_hash in changes.items():
                if row_hash is None:
                    rows.pop(row_id, None)
                else:
                    rows[row_id] = row_hash
        return rows

    def pick(self, picks: tuple[int, ...], pending: Changes) -> list[int]:
        """The live ids ``picks`` name, seen from inside a transaction with ``pending`` changes."""
        inserted = sorted((i for i, h in pending.items() if h is not None and i not in self.current), reverse=True)
        deleted = {i for i, h in pending.items() if h is None and i in self.current}
        live = len(self.ids) - len(deleted) + len(inserted)
        if live <= 0 or not picks:
            return []
        indexes = [p % live for p in picks]
        committed = (i for i in reversed(self.ids) if i not in deleted)
        newest = list(itertools.islice(heapq.merge(inserted, committed, reverse=True), max(indexes) + 1))
        return sorted({newest[i] for i in indexes})


@dataclass(frozen=True)
class CommitRecord:
    """A committed transaction of the history, as WAL and the commit timestamps know it."""

    version: int   # the model version it made
    step: int      # index of its step in the history
    xid: str       # 32-bit xid, as recovery_target_xid takes it
    lsn: str       # start of its commit record
    time: str      # its commit timestamp, UTC, microseconds, explicit offset (as targets are given)


@dataclass(frozen=True)
class Point:
    """The state right after one step of the history."""

    step: int
    version: int         # model version after the step
    lsn: str             # WAL insert position right after the step
    after_backup: bool
    restore_point: str = ""


def version_at(target: RecoveryTarget, commits: list[CommitRecord]) -> int:
    """The model version a restore to an xid, time or lsn ``target`` must hold.

    PostgreSQL's rules: xid stops after (inclusive) or before (exclusive) that commit; time
    replays every commit whose timestamp is before the target, or equal to it when inclusive;
    lsn replays every record that starts before the target, and inclusive also the first record at
    or past it, which for the targets here is a commit record only when the target sits on one.
    """
    if target.kind == "xid":
        commit = next((c for c in commits if c.xid == target.value), None)
        if commit is None:
            raise ValueError(f"xid {target.value} is not a committed transaction of this history")
        return commit.version if target.inclusive else commit.version - 1
    if target.kind == "time":
        def replayed(c: CommitRecord) -> bool:
            return c.time < target.value or (target.inclusive and c.time == target.value)
    elif target.kind == "lsn":
        at = lsn_to_int(target.value)

        def replayed(c: CommitRecord) -> bool:
            return lsn_to_int(c.lsn) < at or (target.inclusive and lsn_to_int(c.lsn) == at)
    else:
        raise ValueError(f"a {target.kind} target has no version computed from commits")
    return max((c.version for c in commits if replayed(c)), default=0)


class PlannedTarget:
    """A recovery target of the history and the model version a restore to it must hold.

    Not a dataclass: hypothesis prints a drawn target with this repr, one readable line.
    """

    __slots__ = ("target", "version", "where")

    def __init__(self, target: RecoveryTarget, version: int, where: str):
        self.target = target
        self.version = version
        self.where = where  # which step it sits on, for the failure message

    def __repr__(self) -> str:
        return f"<{self.target.describe()} at {self.where}: expects version {self.version}>"
