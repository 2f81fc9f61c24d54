"""Write histories for property-based PITR drills: steps, a model of the table, and their targets.

A history is plain data, so hypothesis can draw and shrink it. ``HistoryRun`` writes it to the
source one step at a time, into a table of its own (shaped like books, emptied when a run starts,
so an example neither depends on nor pays for what other drills wrote), and keeps a ``TableModel``
in step: the table as id -> the row's hash after every committed transaction (the hashes
come back from the writes themselves).
Every recovery target of the history (time, xid, lsn, restore point, immediate) then has an exact
expectation: a model version, whose fingerprint and rows are known. After each step the model is
checked against the source's own fingerprint, so a model that drifted is reported as that, never
as a broken backup.

Where a target sits exactly on a commit, inclusive and exclusive expect different versions:
xid and time targets on a commit's xid and commit timestamp, lsn targets on the start of its
commit record (found with pg_walinspect).
"""

from __future__ import annotations

import bisect
import functools
import heapq
import itertools
import time
import uuid
from collections import Counter
from dataclasses import dataclass, replace
from typing import Mapping, Union

import psycopg
from hypothesis import strategies as st
from psycopg import sql

from harness.drill.books import BookFactory
from harness.errors import HarnessError
from harness.drill.fingerprint import ROW_HASH_SQL, Fingerprint, combine, fingerprint
from harness.drill.rowdiff import diff_table
from harness.drill.targets import CAPTURE_SQL, RecoveryTarget
from harness.process.waiting import wait_until
from harness.postgres.wal import lsn_to_int

# -- steps ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Insert:
    """Insert ``count`` Faker books."""

    count: int

    def __str__(self) -> str:
        return f"insert {self.count}"


@dataclass(frozen=True)
class Update:
    """Give existing rows a new title and year. Each pick counts back from the newest live row
    (0 is the newest, wrapping around), so small picks hit rows this history just wrote."""

    picks: tuple[int, ...]

    def __str__(self) -> str:
        return f"update picks {','.join(map(str, self.picks))}"


@dataclass(frozen=True)
class Delete:
    """Delete existing rows, picked as for ``Update``."""

    picks: tuple[int, ...]

    def __str__(self) -> str:
        return f"delete picks {','.join(map(str, self.picks))}"


Statement = Union[Insert, Update, Delete]


@dataclass(frozen=True)
class Transaction:
    """One transaction of one or more statements; ``commit=False`` rolls it back at the end."""

    statements: tuple[Statement, ...]
    commit: bool = True

    def __str__(self) -> str:
        return f"transaction [{'; '.join(map(str, self.statements))}] {'committed' if self.commit else 'rolled back'}"


@dataclass(frozen=True)
class RestorePoint:
    """pg_create_restore_point() with a fresh name: a target of kind name."""

    def __str__(self) -> str:
        return "restore point"


@dataclass(frozen=True)
class SwitchWal:
    """pg_switch_wal(): later WAL goes to the next segment, so recovery must cross segments."""

    def __str__(self) -> str:
        return "switch WAL"


@dataclass(frozen=True)
class Pause:
    """Wait a little, so commits spread over time."""

    seconds: float

    def __str__(self) -> str:
        return f"pause {self.seconds}s"


Step = Union[Transaction, RestorePoint, SwitchWal, Pause]


@dataclass(frozen=True)
class History:
    """Steps written to the source; the backup is taken just before ``steps[backup_at]``."""

    seed: int
    steps: tuple[Step, ...]
    backup_at: int = 0

    @property
    def before_backup(self) -> tuple[Step, ...]:
        return self.steps[:self.backup_at]

    @property
    def after_backup(self) -> tuple[Step, ...]:
        return self.steps[self.backup_at:]

    def describe(self) -> str:
        lines = [f"history (seed {self.seed}):"]
        for index, step in enumerate(self.steps):
            if index == self.backup_at:
                lines.append("  -- backup --")
            lines.append(f"  step {index}: {step}")
        return "\n".join(lines)


# -- the model --------------------------------------------------------------------------------

Changes = dict  # id -> hash of the row's new contents, or None when the row was deleted


class TableModel:
    """A table's rows (id -> the row's hash, harness.fingerprint.ROW_HASH_SQL) at every committed version.

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


class ModelDiverged(HarnessError):
    """The model no longer matches the source: a bug in the model or the writes, not a backup."""


# -- applying a history -----------------------------------------------------------------------

XID_AND_LSN_SQL = ("SELECT (pg_current_xact_id()::text::bigint % 4294967296)::text, "
                   "pg_current_wal_insert_lsn()::text")
COMMIT_RECORD_SQL = ("SELECT start_lsn::text FROM pg_get_wal_records_info(%s::pg_lsn, pg_current_wal_flush_lsn()) "
                     "WHERE resource_manager = 'Transaction' AND record_type LIKE 'COMMIT%%' "
                     "AND xid = %s::text::xid ORDER BY start_lsn LIMIT 1")
HISTORY_TABLE = "history_books"
# The table's definition follows books' (columns, defaults, constraints, indexes).
CREATE_SQL = "CREATE TABLE IF NOT EXISTS {table} (LIKE books INCLUDING ALL)"
INSERT_SQL = ("INSERT INTO {table} AS t (category_id, title, author, isbn, year) "
              "SELECT * FROM unnest(%s::int[], %s::text[], %s::text[], %s::text[], %s::int[]) "
              "RETURNING t.id, " + ROW_HASH_SQL)
UPDATE_SQL = ("UPDATE {table} AS t SET title = v.title, year = v.year "
              "FROM unnest(%s::int[], %s::text[], %s::int[]) AS v(id, title, year) "
              "WHERE t.id = v.id RETURNING t.id, " + ROW_HASH_SQL)
DELETE_SQL = "DELETE FROM {table} WHERE id = ANY(%s) RETURNING id"


class HistoryRun:
    """Writes a history's steps to the source and keeps the model, the commits and the points.

    The run starts by emptying ``table`` (created like books if missing), so the model starts
    empty. ``factory`` makes the Faker rows (default: pools of seed 0, built once); its random
    stream is reseeded with the history's seed, so the same history writes the same rows.
    A run holds two connections to the source until ``close()`` (or the end of its ``with``).
    """

    def __init__(self, source, seed: int, factory: BookFactory | None = None, table: str = HISTORY_TABLE,
                 check_each_step: bool = True):
        self.source = source
        self.factory = factory or _default_factory()
        self.factory.rng.seed(seed)
        self.check_each_step = check_each_step
        self._sql = {name: sql.SQL(text).format(table=sql.Identifier(table)) for name, text in
                     (("insert", INSERT_SQL), ("update", UPDATE_SQL), ("delete", DELETE_SQL))}
        self.model = TableModel({}, table)
        self.commits: list[CommitRecord] = []
        self._unflushed: dict[int, str] = {}  # commit index -> LSN its record lies after (see _transaction)
        self.points: list[Point] = []
        self.steps: list[Step] = []
        self.backup_version: int | None = None
        self._conn = source.connect()
        try:
            self._wal = source.connect("postgres")
            self._wal.execute("CREATE EXTENSION IF NOT EXISTS pg_walinspect")  # finds commit records' LSNs
            self._conn.execute(sql.SQL(CREATE_SQL).format(table=sql.Identifier(table)))
            self._conn.execute(sql.SQL("TRUNCATE {table}").format(table=sql.Identifier(table)))
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        for conn in (self._conn, getattr(self, "_wal", None)):
            if conn is not None:
                conn.close()

    def __enter__(self) -> "HistoryRun":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- writing --------------------------------------------------------------------------------

    def apply(self, steps) -> None:
        conn, wal = self._conn, self._wal
        for step in steps:
            index = len(self.steps)
            self.steps.append(step)
            restore_point = self._apply(conn, wal, index, step)
            lsn = conn.execute("SELECT pg_current_wal_insert_lsn()::text").fetchone()[0]
            self.points.append(Point(index, self.model.version, lsn, self.backup_version is not None,
                                     restore_point))
            if self.check_each_step:
                self.check_against_source(conn, f"step {index} ({step})")

    def mark_backup(self) -> None:
        """The backup was just taken: what follows can be a recovery target."""
        self.backup_version = self.model.version

    def _apply(self, conn, wal, index: int, step: Step) -> str:
        if isinstance(step, Transaction):
            self._transaction(conn, wal, index, step)
        elif isinstance(step, RestorePoint):
            name = f"history-{uuid.uuid4().hex[:12]}"
            conn.execute(CAPTURE_SQL["name"], (name,))
            return name
        elif isinstance(step, SwitchWal):
            conn.execute("SELECT pg_switch_wal()")
        elif isinstance(step, Pause):
            time.sleep(step.seconds)
        else:
            raise TypeError(f"not a history step: {step!r}")
        return ""

    def _transaction(self, conn, wal, index: int, step: Transaction) -> None:
        pending: Changes = {}
        with conn.transaction():
            for statement in step.statements:
                pending.update(self._statement(conn, statement, pending))
            # Asking for the xid assigns one: every transaction here writes a commit or abort record.
            xid, before_commit = conn.execute(XID_AND_LSN_SQL).fetchone()
            if not step.commit:
                raise psycopg.Rollback()
        if not step.commit:
            return
        # A transaction that wrote nothing before its commit record commits asynchronously: its record
        # reaches flushed WAL (all pg_walinspect reads) a moment later. Look it up when targets need it.
        commit_lsn = _commit_record_lsn(wal, before_commit, xid, wait=False)
        if not commit_lsn:
            self._unflushed[len(self.commits)] = before_commit
        committed_at = conn.execute(CAPTURE_SQL["time"], (xid,)).fetchone()[0]
        if committed_at is None:
            raise ModelDiverged(f"No commit timestamp for xid {xid} of step {index}.",
                                "track_commit_timestamp must be on.")
        version = self.model.commit(pending)
        self.commits.append(CommitRecord(version, index, xid, commit_lsn, committed_at))

    def _statement(self, conn, statement: Statement, pending: Changes) -> Changes:
        if isinstance(statement, Insert):
            rows = [self.factory.row() for _ in range(statement.count)]
            returned = conn.execute(self._sql["insert"], [list(column) for column in zip(*rows)]).fetchall()
            return dict(returned)
        ids = self.model.pick(statement.picks, pending)
        if not ids:
            return {}
        if isinstance(statement, Update):
            titles = [self.factory.rng.choice(self.factory.titles) for _ in ids]
            years = [self.factory.rng.randint(1900, 2026) for _ in ids]
            return dict(conn.execute(self._sql["update"], (ids, titles, years)).fetchall())
        if isinstance(statement, Delete):
            return {row_id: None for (row_id,) in conn.execute(self._sql["delete"], (ids,)).fetchall()}
        raise TypeError(f"not a statement: {statement!r}")

    def check_against_source(self, conn, where: str) -> None:
        actual = fingerprint(conn, self.model.table)
        expected = self.model.fingerprint_at(self.model.version)
        if actual != expected:
            diff = diff_table(conn, self.model.current, self.model.table)
            raise ModelDiverged(f"After {where} the source holds {actual}, the model expects {expected}.",
                                "The history model or its writes are wrong (no backup is involved yet).",
                                f"  {diff.render()} (source vs model)")

    # -- targets --------------------------------------------------------------------------------

    def targets(self) -> dict[str, list[PlannedTarget]]:
        """Every recovery target this history offers after the backup, by kind."""
        if self.backup_version is None:
            raise ValueError("mark_backup() first: targets lie after the backup")
        for index, after in sorted(self._unflushed.items()):
            commit = self.commits[index]
            self.commits[index] = replace(commit, lsn=_commit_record_lsn(self._wal, after, commit.xid, wait=True))
        self._unflushed.clear()
        found: dict[str, list[PlannedTarget]] = {"immediate": [
            PlannedTarget(RecoveryTarget("immediate"), self.backup_version, "the end of the backup")]}

        def add(target: RecoveryTarget, where: str, version: int | None = None) -> None:
            if version is None:
                version = version_at(target, self.commits)
            found.setdefault(target.kind, []).append(PlannedTarget(target, version, where))

        after = [p for p in self.points if p.after_backup]
        lsn_after = {p.step: p.lsn for p in after}
        commit_times = Counter(c.time for c in self.commits)
        for commit in self.commits:
            if commit.step not in lsn_after:
                continue
            where = f"the commit of step {commit.step} ({self.steps[commit.step]})"
            # at_lsn: the WAL a restore needs; at_time: the newest commit then (the RPO window's end)
            taken = dict(at_lsn=lsn_after[commit.step], at_time=commit.time)
            for inclusive in (True, False):
                add(RecoveryTarget("xid", commit.xid, inclusive, **taken), where)
                if commit_times[commit.time] == 1:  # a time shared by two commits would stop at the first
                    add(RecoveryTarget("time", commit.time, inclusive, commit_xid=commit.xid, **taken), where)
                add(RecoveryTarget("lsn", commit.lsn, inclusive, **taken), f"the commit record of step "
                    f"{commit.step} ({self.steps[commit.step]})")
        for point in after:
            where = f"the end of step {point.step} ({self.steps[point.step]})"
            newest = [c.time for c in self.commits if c.step <= point.step]
            taken = dict(at_lsn=point.lsn, at_time=newest[-1] if newest else "")
            add(RecoveryTarget("lsn", point.lsn, True, **taken), where)
            if point.restore_point:
                add(RecoveryTarget("name", point.restore_point, **taken), where, point.version)
        return found


def _commit_record_lsn(wal, after: str, xid: str, wait: bool) -> str:
    """Where xid's commit record starts, at or after ``after``; "" when it is not flushed yet and
    ``wait`` is false (the WAL writer flushes an asynchronous commit within wal_writer_delay)."""
    def found():
        try:
            row = wal.execute(COMMIT_RECORD_SQL, (after, xid)).fetchone()
        except psycopg.errors.InvalidParameterValue:  # "cannot accept future start LSN": not flushed
            return ""
        return row[0] if row else ""
    if not wait:
        return found()
    return wait_until(found, what=f"the commit record of xid {xid} to be flushed", timeout=10, interval=0.05)


@functools.lru_cache(maxsize=1)
def _default_factory() -> BookFactory:
    return BookFactory(0)  # Faker fills its pools once (a tenth of a second); runs reseed its rng


# -- hypothesis strategies ----------------------------------------------------------------------

PICKS = st.lists(st.integers(0, 200), min_size=1, max_size=5).map(tuple)
STATEMENTS = st.one_of(
    st.builds(Insert, st.integers(1, 20)),
    st.builds(Update, PICKS),
    st.builds(Delete, PICKS),
)
STATEMENT_LISTS = st.lists(STATEMENTS, min_size=1, max_size=4).map(tuple)
TRANSACTIONS = st.builds(
    Transaction,
    STATEMENT_LISTS,
    st.integers(0, 3).map(lambda n: n != 3),  # one in four rolls back; shrinks to a commit
)
COMMITTED_TRANSACTIONS = st.builds(Transaction, STATEMENT_LISTS, st.just(True))
WAL_STEPS = st.one_of(st.just(RestorePoint()), st.just(SwitchWal()))
PAUSES = st.sampled_from((0.0, 0.01, 0.1, 0.3)).map(Pause)


@st.composite
def histories(draw, max_steps: int = 12, max_before_backup: int = 4, pauses: bool = True) -> History:
    """A history of 1..max_steps steps with at least one committed transaction after the backup
    (so xid and time targets exist; it shrinks to that one transaction)."""
    steps = st.one_of(TRANSACTIONS, st.one_of(WAL_STEPS, PAUSES) if pauses else WAL_STEPS)
    before = draw(st.lists(steps, max_size=min(max_before_backup, max_steps - 1)))
    after = draw(st.lists(steps, max_size=max_steps - len(before) - 1))
    after.insert(draw(st.integers(0, len(after))), draw(COMMITTED_TRANSACTIONS))
    seed = draw(st.integers(0, 2 ** 16))
    return History(seed, tuple(before + after), len(before))


def planned_targets(run: HistoryRun, max_targets: int = 3) -> st.SearchStrategy[list[PlannedTarget]]:
    """1..max_targets targets of ``run``, each of another kind (the kinds in a drawn order, so each
    is as likely to be tested), each one of that kind's targets."""
    by_kind = run.targets()
    # Drawn orders lean towards this one: immediate, the same state in every example, comes last.
    kinds = [kind for kind in ("xid", "time", "lsn", "name", "immediate") if kind in by_kind]

    @st.composite
    def plans(draw) -> list[PlannedTarget]:
        order = draw(st.permutations(kinds))
        count = draw(st.integers(1, min(max_targets, len(order))))
        return [draw(st.sampled_from(by_kind[kind])) for kind in order[:count]]
    return plans()
