"""Recovery targets, each captured on the source server, never from the client's clock."""

from __future__ import annotations

import re
from dataclasses import dataclass

KINDS = ("immediate", "time", "xid", "lsn", "name", "latest")


@dataclass(frozen=True)
class RecoveryTarget:
    """Where recovery must stop.

    ``inclusive`` matters for time, xid and lsn targets: inclusive stops just after the target
    commit (or LSN), exclusive just before it.
    """

    kind: str
    value: str = ""
    inclusive: bool = True
    commit_xid: str = ""  # the transaction a time target sits on, when known: its stop line names it
    at_lsn: str = ""      # the source's WAL insert position when the target was taken: WAL needed up to here
    at_time: str = ""     # commit time of the newest commit when it was taken (for the RPO window)

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ValueError(f"unknown recovery target kind {self.kind!r}; expected one of {', '.join(KINDS)}")
        if self.kind not in ("immediate", "latest") and not self.value:
            raise ValueError(f"a {self.kind} target needs a value")
        if self.kind == "time" and not re.search(r"\d\d:\d\d(:\d\d(\.\d+)?)?\s*([+-]\d\d(:?\d\d)?|Z)$", self.value):
            # A bare time is read in the Barman host's zone: a silent shift of hours.
            raise ValueError(f"time target {self.value!r} has no explicit UTC offset")

    @property
    def is_pitr(self) -> bool:
        """A point-in-time target (the server promotes there), as opposed to the end of archived WAL."""
        return self.kind != "latest"

    def barman_args(self) -> list[str]:
        if self.kind == "latest":
            return []
        if self.kind == "immediate":
            return ["--target-immediate"]
        args = [f"--target-{self.kind}", self.value]
        if not self.inclusive and self.kind in ("time", "xid", "lsn"):
            args.append("--exclusive")
        return args

    def describe(self) -> str:
        if self.kind == "immediate":
            return "immediate (end of backup)"
        if self.kind == "latest":
            return "latest (end of archived WAL)"
        edge = "" if self.kind == "name" else (" inclusive" if self.inclusive else " exclusive")
        return f"{self.kind} {self.value}{edge}"

    def stop_pattern(self) -> str:
        """The server log line that says recovery stopped exactly at this target."""
        if self.kind == "latest":
            return r"redo done at [0-9A-F]+/[0-9A-F]+"
        side = "after" if self.inclusive else "before"
        if self.kind == "immediate":
            return r"recovery stopping after reaching consistency"
        if self.kind == "xid":
            return rf"recovery stopping {side} commit of transaction {re.escape(self.value)}\b"
        if self.kind == "time":
            # Time targets stop BEFORE a commit or abort record: inclusive, before the first one
            # later than the target (so the commit on the target is in); exclusive, before the
            # first one at or after it (the commit on the target itself).
            xid = re.escape(self.commit_xid) if self.commit_xid else r"\d+"
            if self.inclusive:
                other = rf"(?!{xid}\b)\d+" if self.commit_xid else r"\d+"
                return rf"recovery stopping before (commit|abort) of transaction {other}, time "
            return rf"recovery stopping before commit of transaction {xid}, time "
        if self.kind == "lsn":
            return rf'recovery stopping {side} WAL location \(LSN\) "{re.escape(self.value)}"'
        return rf'recovery stopping at restore point "{re.escape(self.value)}"'


# SQL run on the source right after the transaction the target refers to has committed.
CAPTURE_SQL = {
    # Commit timestamp of the given xid: a target that sits exactly on that commit.
    "time": "SELECT to_char(pg_xact_commit_timestamp(%s::text::xid) AT TIME ZONE 'UTC', "
            "'YYYY-MM-DD HH24:MI:SS.US') || '+00:00'",
    "lsn": "SELECT pg_current_wal_insert_lsn()::text",
    "last_commit": "SELECT to_char((pg_last_committed_xact()).timestamp AT TIME ZONE 'UTC', "
                   "'YYYY-MM-DD HH24:MI:SS.US') || '+00:00'",
    "name": "SELECT pg_create_restore_point(%s)::text",
}
