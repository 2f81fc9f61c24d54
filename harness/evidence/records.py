"""Typed records of what a run verified: one per check, per restore, per drill, per run.

A restore fills one ``RestoreRecord`` as it proceeds (a failed restore still says how far it got);
the drill's driver (the pytest plugin, a script) collects them into ``DrillRecord``s and a
``RunRecord``. JUnit properties, JSON and HTML are rendered from these records at the edge
(harness.evidence.properties, .report_json, .report_html); nothing parses them back from text.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class CheckOutcome:
    """One check a restore ran: its name (e.g. ``verify_backup``), passed or not, and what it saw."""

    name: str
    passed: bool
    detail: str = ""

    def render(self) -> str:
        return ("passed" if self.passed else "FAILED") + (f": {self.detail}" if self.detail else "")


@dataclass(frozen=True)
class TableFacts:
    """One table of a restored cluster: its rows and size, as the restore holds them."""

    database: str
    table: str          # schema.name
    rows: int
    bytes: int

    def render(self) -> str:
        return f"{self.database}.{self.table}: {self.rows} rows, {self.bytes} bytes"


@dataclass
class RestoreRecord:
    """One restore of a backup to a target into a scratch instance, and what was proven of it."""

    backup_id: str
    backup_end_time: str
    target_kind: str
    target_value: str                 # the kind itself for immediate and latest
    target_inclusive: bool
    checks: list[CheckOutcome] = field(default_factory=list)
    stop_line: str = ""               # the server's own line saying where recovery stopped
    timeline: int | None = None
    combined_backups: tuple[str, ...] = ()  # an incremental's chain, full root first
    copy_seconds: float = 0.0         # `barman recover`
    start_seconds: float = 0.0        # scratch server start
    reach_seconds: float = 0.0        # until the server proved the target reached
    rpo_seconds: float | None = None  # from the target to the newest archived commit
    expected_fingerprint: str = ""
    actual_fingerprint: str = ""
    wal_checked_through: str = ""     # the newest segment the WAL integrity check read and found sound
    # Restores of backups the harness did not take (--stack existing):
    newest_commit: str = ""           # the newest commit found in the restore
    tables: list["TableFacts"] = field(default_factory=list)
    overrides: list[str] = field(default_factory=list)  # production settings the scratch overrode
    backup_size_bytes: int | None = None  # Barman's backup_size_bytes of the restored backup

    @property
    def recovery_seconds(self) -> float:
        """Wall time from `barman recover` until the target was reached (the drill's RTO)."""
        return self.copy_seconds + self.start_seconds + self.reach_seconds

    @property
    def verified(self) -> bool:
        """Every check ran and passed, through the fingerprint comparison."""
        return bool(self.checks) and all(c.passed for c in self.checks) and \
            any(c.name == "fingerprint" for c in self.checks)

    def passed(self, name: str, detail: str = "") -> None:
        self.checks.append(CheckOutcome(name, True, detail))

    def failed(self, name: str, error):
        """Record ``name`` as failed with the error's cause; returns the error for ``raise``."""
        self.checks.append(CheckOutcome(name, False, error.cause))
        return error

    def check(self, name: str) -> CheckOutcome | None:
        return next((c for c in self.checks if c.name == name), None)


@dataclass
class DrillRecord:
    """One test of the run, as the report shows it."""

    nodeid: str
    outcome: str                      # passed | failed | error | skipped
    seconds: float
    reason: str = ""                  # first lines of the failure or skip reason
    restores: list[RestoreRecord] = field(default_factory=list)
    facts: dict[str, str] = field(default_factory=dict)  # data_seed, postgresql_version, kept_evidence, ...

    @property
    def verified(self) -> bool:
        return self.outcome == "passed"


@dataclass
class RunRecord:
    """The whole run: its facts (versions, stack, host, times), every drill, kept evidence."""

    facts: dict[str, str] = field(default_factory=dict)
    drills: list[DrillRecord] = field(default_factory=list)
    kept: list[str] = field(default_factory=list)

    def counts(self) -> dict[str, int]:
        counts = {"passed": 0, "failed": 0, "error": 0, "skipped": 0}
        for drill in self.drills:
            counts[drill.outcome] = counts.get(drill.outcome, 0) + 1
        return counts

    def backups(self) -> list[str]:
        """Backup ids restored by the run, in first-use order."""
        ids: list[str] = []
        for drill in self.drills:
            for restore in drill.restores:
                if restore.backup_id and restore.backup_id not in ids:
                    ids.append(restore.backup_id)
        return ids

    @property
    def interrupted(self) -> str:
        """Why the run stopped before every drill it chose had run (the fact ``run_interrupted``), else ""."""
        return self.facts.get("run_interrupted", "")

    @property
    def verified(self) -> bool:
        """A pass, nothing red, nothing without a verdict, and every drill run: a run stopped early
        (SIGTERM, -x) vouches for nothing, since what it did not reach was not verified."""
        c = self.counts()
        return c["failed"] == c["error"] == 0 and c["passed"] > 0 and not self.interrupted

    def summary_line(self) -> str:
        c = self.counts()
        total = sum(c.values())
        verdict = "VERIFIED" if self.verified else "NOT VERIFIED"
        stopped = f"; the run stopped before every drill ran ({self.interrupted})" if self.interrupted else ""
        return (f"{verdict}: {c['passed']}/{total} drills passed, {c['failed']} failed, {c['error']} errors, "
                f"{c['skipped']} skipped; {len(self.backups())} backups used{stopped}")
