"""The run history: every run's drills in SQLite, one row per restore, and one row per run and server
with its verdict. The HTML page reads it for trends, pgbv-nightly for how long a server has been red,
the metrics for the last success when their own file is gone.

Several runs may share one file: every write is one IMMEDIATE transaction, every connection waits
up to ``timeout`` seconds for another's lock (SQLite's busy timeout), and no connection stays open
between calls. A damaged or locked file raises ``HistoryUnavailable``: the caller says so and goes
on, since a history never costs a verdict. The file is never rewritten or removed by the harness.
"""

from __future__ import annotations

import sqlite3
import uuid
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from harness.errors import HarnessError
from harness.evidence.files import redacted
from harness.evidence.records import RunRecord
from harness.evidence.servers import FAILED, OUTCOMES, VERIFIED, ServerRun, run_time, server_runs, utc_text

SCHEMA_VERSION = 1
SCHEMA = (
    """CREATE TABLE runs (run_id TEXT NOT NULL, server TEXT NOT NULL, stack TEXT NOT NULL, run_time REAL NOT NULL,
       run_utc TEXT NOT NULL, host TEXT, verdict TEXT NOT NULL, passed INTEGER NOT NULL, failed INTEGER NOT NULL,
       errors INTEGER NOT NULL, skipped INTEGER NOT NULL, rto_seconds REAL, rpo_seconds REAL, backup_id TEXT,
       backup_size_bytes INTEGER, verified_backup_id TEXT, verified_backup_end_time REAL, harness_version TEXT,
       postgresql_version TEXT, barman_version TEXT, PRIMARY KEY (run_id, server, stack))""",
    "CREATE INDEX runs_by_server ON runs (server, stack, run_time)",
    """CREATE TABLE drills (run_id TEXT NOT NULL, run_utc TEXT NOT NULL, server TEXT NOT NULL, stack TEXT NOT NULL,
       nodeid TEXT NOT NULL, restore INTEGER NOT NULL, outcome TEXT NOT NULL, cause TEXT, drill_seconds REAL,
       backup_id TEXT, backup_end_time TEXT, backup_size_bytes INTEGER, target TEXT, rto_seconds REAL,
       rpo_seconds REAL, restored_bytes INTEGER, failed_checks TEXT, harness_version TEXT, postgresql_version TEXT,
       barman_version TEXT)""",
    "CREATE INDEX drills_by_run ON drills (run_id)",
)
_RUN_COLUMNS = ("run_id", "server", "stack", "run_time", "run_utc", "host", "verdict", "passed", "failed", "errors",
                "skipped", "rto_seconds", "rpo_seconds", "backup_id", "backup_size_bytes", "verified_backup_id",
                "verified_backup_end_time", "harness_version", "postgresql_version", "barman_version")
_DRILL_COLUMNS = ("run_id", "run_utc", "server", "stack", "nodeid", "restore", "outcome", "cause", "drill_seconds",
                  "backup_id", "backup_end_time", "backup_size_bytes", "target", "rto_seconds", "rpo_seconds",
                  "restored_bytes", "failed_checks", "harness_version", "postgresql_version", "barman_version")


class HistoryUnavailable(HarnessError):
    """The run history could not be read or written (damaged, locked, unwritable)."""


def history_path(chosen: Path | None, reports_dir: Path) -> Path:
    return Path(chosen) if chosen else Path(reports_dir) / "history.sqlite"


@dataclass(frozen=True)
class RunSummary:
    """One run of one server, as the history keeps it."""

    run_id: str
    run_time: float
    verdict: str
    passed: int
    failed: int
    errors: int
    skipped: int
    rto_seconds: float | None
    rpo_seconds: float | None
    backup_id: str | None
    backup_size_bytes: int | None

    @property
    def run_utc(self) -> str:
        return utc_text(self.run_time)


@dataclass(frozen=True)
class LastSuccess:
    run_time: float
    backup_id: str | None
    backup_end_time: float | None


@dataclass(frozen=True)
class RedStreak:
    """The runs since a server's last verified one: how many, since when, the latest's verdict."""

    runs: int
    since: float
    latest: str
    last_verified: float | None


class RunHistory:
    def __init__(self, path: Path, timeout: float = 10.0):
        self.path = Path(path)
        self.timeout = timeout

    def append(self, run: RunRecord, secrets: list[str] = ()) -> str:
        """Record the run (again: its earlier rows are replaced); returns its run id."""
        run = redacted(run, list(secrets))
        run_id = run.facts.get("run_id") or uuid.uuid4().hex
        runs, drills = [], []
        for group in server_runs(run):
            runs.append(_run_row(run_id, run, group))
            drills += _drill_rows(run_id, run, group)
        with self._session("written", write=True) as con:
            con.execute("DELETE FROM runs WHERE run_id = ?", (run_id,))
            con.execute("DELETE FROM drills WHERE run_id = ?", (run_id,))
            con.executemany(_insert("runs", _RUN_COLUMNS), runs)
            con.executemany(_insert("drills", _DRILL_COLUMNS), drills)
        return run_id

    def recent(self, server: str, stack: str, limit: int = 10) -> list[RunSummary]:
        """The server's last ``limit`` runs, oldest first."""
        rows = self._read("SELECT run_id, run_time, verdict, passed, failed, errors, skipped, rto_seconds, rpo_seconds,"
                          " backup_id, backup_size_bytes FROM runs WHERE server = ? AND stack = ?"
                          " ORDER BY run_time DESC, rowid DESC LIMIT ?", (server, stack, limit))
        return [RunSummary(*row) for row in reversed(rows)]

    def last_successes(self, exclude_run: str = "") -> dict[tuple[str, str], LastSuccess]:
        """Per (server, stack): the newest verified run and the backup it verified."""
        rows = self._read("SELECT server, stack, run_time, verified_backup_id, verified_backup_end_time FROM runs"
                          " WHERE verdict = ? AND run_id != ? ORDER BY run_time", (VERIFIED, exclude_run))
        return {(server, stack): LastSuccess(when, backup, end) for server, stack, when, backup, end in rows}

    def drill_totals(self, exclude_run: str = "") -> dict[tuple[str, str], dict[str, int]]:
        """Per (server, stack): drills ever recorded, by outcome."""
        rows = self._read("SELECT server, stack, SUM(passed), SUM(failed), SUM(errors), SUM(skipped) FROM runs"
                          " WHERE run_id != ? GROUP BY server, stack", (exclude_run,))
        return {(row[0], row[1]): dict(zip(OUTCOMES, map(int, row[2:]), strict=True)) for row in rows}

    def red_streak(self, server: str, stack: str) -> RedStreak | None:
        """The runs since the server's last verified one, or None when its latest run was verified."""
        rows = self._read("SELECT run_time, verdict FROM runs WHERE server = ? AND stack = ?"
                          " ORDER BY run_time DESC, rowid DESC", (server, stack))
        streak = []
        for when, verdict in rows:
            if verdict == VERIFIED:
                return RedStreak(len(streak), streak[-1], rows[0][1], when) if streak else None
            streak.append(when)
        return RedStreak(len(streak), streak[-1], rows[0][1], None) if streak else None

    def _read(self, sql: str, params: tuple) -> list[tuple]:
        if not self.path.exists():
            return []
        with self._session("read") as con:
            if con.execute("PRAGMA user_version").fetchone()[0] == 0:
                return []  # created, nothing recorded yet
            return con.execute(sql, params).fetchall()

    @contextmanager
    def _session(self, verb: str, write: bool = False):
        try:
            if write:
                self.path.parent.mkdir(parents=True, exist_ok=True)
            con = sqlite3.connect(self.path, timeout=self.timeout, isolation_level=None)
            try:
                if write:
                    con.execute("BEGIN IMMEDIATE")  # the write lock now, not halfway through
                self._check_schema(con, create=write)
                yield con
                if write:
                    con.execute("COMMIT")
            finally:
                if con.in_transaction:
                    con.execute("ROLLBACK")
                con.close()
        except (sqlite3.Error, OSError) as exc:
            raise self._unavailable(verb, exc) from None

    def _check_schema(self, con: sqlite3.Connection, create: bool) -> None:
        version = con.execute("PRAGMA user_version").fetchone()[0]
        if version > SCHEMA_VERSION:
            raise sqlite3.DatabaseError(f"it was written by a newer harness (schema {version}, this one knows "
                                        f"{SCHEMA_VERSION})")
        if version == 0 and create:
            for statement in SCHEMA:
                con.execute(statement)
            con.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")

    def _unavailable(self, verb: str, exc: Exception) -> HistoryUnavailable:
        if "locked" in str(exc) or "busy" in str(exc):
            return HistoryUnavailable(
                f"The run history {self.path} could not be {verb}: another process held it locked for more than "
                f"{self.timeout:.0f} s ({exc}).",
                "This run's drills are not in it; its verdict stands. If no other run is writing it, find the "
                f"process holding it with `fuser {self.path}`.")
        return HistoryUnavailable(
            f"The run history {self.path} could not be {verb}: {exc}.",
            "This run's drills are not in it; its verdict stands. The file is left as it is: move it aside to keep "
            "it for inspection, and the next run starts a new one.")


def _insert(table: str, columns: tuple[str, ...]) -> str:
    return f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})"


def _run_row(run_id: str, run: RunRecord, group: ServerRun) -> tuple:
    when = run_time(run)
    counts = group.counts()
    newest, verified = group.newest_backup(), group.newest_backup(passed_only=True)
    if group.verdict != VERIFIED:
        verified = None
    return (run_id, group.server, group.stack, when, utc_text(when), run.facts.get("host"), group.verdict,
            counts["passed"], counts["failed"], counts["error"], counts["skipped"], group.rto_seconds,
            group.rpo_seconds, newest and newest.backup_id, newest and newest.size_bytes,
            verified and verified.backup_id, verified and verified.end_time, run.facts.get("harness_version"),
            group.postgresql(run), run.facts.get("barman"))


def _drill_rows(run_id: str, run: RunRecord, group: ServerRun) -> list[tuple]:
    when = utc_text(run_time(run))
    rows = []
    for drill in group.drills:
        shared = (run_id, when, group.server, group.stack, drill.nodeid)
        postgresql = drill.facts.get("postgresql_version") or run.facts.get("postgresql")
        versions = (run.facts.get("harness_version"), postgresql, run.facts.get("barman"))
        cause = drill.reason[:4000] or None
        if not drill.restores:
            rows.append(shared + (0, drill.outcome, cause, drill.seconds) + (None,) * 8 + versions)
        for index, restore in enumerate(drill.restores, start=1):
            target = restore.target_kind if restore.target_value in ("", restore.target_kind) else \
                f"{restore.target_kind} {restore.target_value}"
            failed = ", ".join(check.name for check in restore.checks if not check.passed) or None
            restored = sum(table.bytes for table in restore.tables) if restore.tables else None
            reached = restore.check("target_reached")
            rows.append(shared + (index, drill.outcome, cause, drill.seconds, restore.backup_id,
                                  restore.backup_end_time, restore.backup_size_bytes, target,
                                  restore.recovery_seconds if reached and reached.passed else None,
                                  restore.rpo_seconds, restored, failed) + versions)
    return rows


def unverified_servers(history: RunHistory, run: RunRecord) -> list[str]:
    """For each server the run did not verify, since when it has not been (see ``describe_streak``)."""
    lines = []
    for group in server_runs(run):
        streak = history.red_streak(group.server, group.stack) if group.verdict != VERIFIED else None
        if streak is not None:
            lines.append(describe_streak(group.server, streak))
    return lines


def describe_streak(server: str, streak: RedStreak) -> str:
    """'server source red since 2026-11-28T02:00:05Z (3 runs not verified; last verified 2026-11-27T02:00:04Z)'."""
    state = "red" if streak.latest == FAILED else "without a verdict"
    last = f"last verified {utc_text(streak.last_verified)}" if streak.last_verified else \
        "never verified in the history"
    runs = f"{streak.runs} run{'s' if streak.runs != 1 else ''} not verified"
    return f"server {server} {state} since {utc_text(streak.since)} ({runs}; {last})"
