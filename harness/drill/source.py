"""The source server as drills see it: its books, its fingerprint, targets captured on it."""

from __future__ import annotations

import uuid

from harness.drill.books import Books, Commit
from harness.drill.fingerprint import Fingerprint, fingerprint
from harness.drill.targets import CAPTURE_SQL, RecoveryTarget
from harness.postgres.server import PostgresServer
from harness.process.progress import QUIET, Progress


class Source:
    """The PostgreSQL server Barman backs up."""

    def __init__(self, server: PostgresServer, progress: Progress = QUIET):
        self.server = server
        self.progress = progress

    def connect(self, dbname: str = "books_db"):
        return self.server.conn.connect(dbname)

    def books(self, seed: int) -> Books:
        return Books(self.connect, seed, progress=self.progress.rows)

    def fingerprint(self, table: str = "books") -> Fingerprint:
        with self.connect() as conn:
            return fingerprint(conn, table)

    def capture_target(self, kind: str, commit: Commit | None = None, inclusive: bool = True) -> RecoveryTarget:
        """A recovery target taken on the server right after ``commit`` (the latest commit).

        time: ``commit``'s own commit timestamp (so inclusive/exclusive decide whether it is in);
        xid: ``commit``'s xid; lsn: the WAL insert position now; name: a new restore point now.
        """
        if kind in ("immediate", "latest"):
            return RecoveryTarget(kind)
        if kind in ("time", "xid") and commit is None:
            raise ValueError(f"a {kind} target is taken on a commit: pass the Commit the workload returned")
        with self.connect() as conn:
            if kind == "name":
                name = f"drill-{uuid.uuid4().hex[:12]}"
                conn.execute(CAPTURE_SQL["name"], (name,))
            at_lsn = conn.execute(CAPTURE_SQL["lsn"]).fetchone()[0]
            at_time = conn.execute(CAPTURE_SQL["last_commit"]).fetchone()[0] or ""
            if kind == "xid":
                return RecoveryTarget("xid", commit.xid, inclusive, at_lsn=at_lsn, at_time=at_time)
            if kind == "time":
                value = conn.execute(CAPTURE_SQL["time"], (commit.xid,)).fetchone()[0]
                if value is None:
                    raise RuntimeError(f"no commit timestamp for xid {commit.xid} (track_commit_timestamp off?)")
                return RecoveryTarget("time", value, inclusive, commit_xid=commit.xid, at_lsn=at_lsn, at_time=value)
            if kind == "lsn":
                return RecoveryTarget("lsn", at_lsn, inclusive, at_lsn=at_lsn, at_time=at_time)
            if kind == "name":
                return RecoveryTarget("name", name, at_lsn=at_lsn, at_time=at_time)
        raise ValueError(f"unknown recovery target kind {kind!r}")

    def emit_wal(self) -> None:
        """A tiny WAL record, so the WAL receiver closes a switched segment without idling."""
        with self.connect("postgres") as conn:
            conn.execute("SELECT pg_logical_emit_message(false, 'drill', 'tick')")

    def last_commit_time(self) -> str:
        """Commit time (UTC, explicit offset) of the newest committed transaction."""
        with self.connect("postgres") as conn:
            return conn.execute(CAPTURE_SQL["last_commit"]).fetchone()[0] or ""

    def current_wal_segment(self) -> str:
        with self.connect("postgres") as conn:
            return conn.execute("SELECT pg_walfile_name(pg_current_wal_insert_lsn())").fetchone()[0]
