"""Write a history to the source one step at a time, keeping its model in step.

``HistoryRun`` writes into a table of its own (shaped like books, emptied when a run starts, so
an example neither depends on nor pays for what other drills wrote) and keeps a ``TableModel``:
the table as id -> the row's hash after every committed transaction (the hashes come back from
the writes themselves). After each step the model is checked against the source's own
fingerprint, so a model that drifted is reported as that, never as a broken backup.
"""

from __future__ import annotations

import functools
import time
import uuid
from collections import Counter
from dataclasses import replace

import psycopg
from psycopg import sql

from harness.drill.books import BookFactory
from harness.drill.fingerprint import ROW_HASH_SQL, fingerprint
from harness.drill.rowdiff import diff_table
from harness.drill.targets import CAPTURE_SQL, RecoveryTarget
from harness.errors import HarnessError
from harness.history.model import Changes, CommitRecord, PlannedTarget, Point, TableModel, version_at
from harness.history.steps import Delete, Insert, Pause, RestorePoint, Statement, Step, SwitchWal, Transaction, Update
from harness.process.waiting import wait_until


class ModelDiverged(HarnessError):
    """The model no longer matches the source: a bug in the model or the writes, not a backup."""


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

