"""A run's drills grouped by Barman server, and what each group proved: the unit that metrics, the
run history and the trends speak of.

A drill names its server in the fact ``barman_server``. A drill without one that was skipped touched
no server and belongs to none; one that ran (or failed to) without it is counted under ``unknown``,
so that it is never lost from a verdict, and no server of the run is verified: which server's drill
it was is not known. Neither is any server of a run that stopped before every drill ran.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from dataclasses import dataclass

from harness.evidence.records import DrillRecord, RestoreRecord, RunRecord

OUTCOMES = ("passed", "failed", "error", "skipped")
UNKNOWN = "unknown"

VERIFIED, FAILED, NO_VERDICT = "verified", "failed", "no verdict"


def timestamp(text: str | None) -> float | None:
    """Seconds since the epoch of an ISO time as the run and Barman write them; None if there is none."""
    if not text:
        return None
    try:
        moment = dt.datetime.fromisoformat(str(text).strip().replace("Z", "+00:00"))
    except ValueError:
        return None
    if moment.tzinfo is None:  # a time without zone is the harness's own: UTC
        moment = moment.replace(tzinfo=dt.UTC)
    return moment.timestamp()


def utc_text(seconds: float) -> str:
    """2026-11-28T02:00:05Z: how the history and the nightly line show a moment."""
    return dt.datetime.fromtimestamp(seconds, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def run_time(run: RunRecord) -> float:
    """When the run ended (its verdict's time), else when it started, else now."""
    for name in ("run_ended_utc", "run_started_utc"):
        seconds = timestamp(run.facts.get(name))
        if seconds is not None:
            return seconds
    return dt.datetime.now(dt.UTC).timestamp()


@dataclass(frozen=True)
class RestoredBackup:
    backup_id: str
    end_time: float | None
    size_bytes: int | None


@dataclass
class ServerRun:
    """The drills of one Barman server (on one kind of stack) in one run."""

    server: str
    stack: str
    drills: list[DrillRecord]
    unsettled: str = ""   # why no server of the run can be verified (stopped early, a drill of no known server)

    def counts(self) -> dict[str, int]:
        counted = Counter(drill.outcome for drill in self.drills)
        return {outcome: counted.get(outcome, 0) for outcome in OUTCOMES}

    @property
    def verdict(self) -> str:
        """As for the whole run: a red wins; verified needs a pass, nothing left without a verdict, and
        nothing unsettled in the run."""
        counts = self.counts()
        if counts["failed"]:
            return FAILED
        if counts["passed"] and not counts["error"] and not self.unsettled:
            return VERIFIED
        return NO_VERDICT

    def restores(self, passed_only: bool = False) -> list[RestoreRecord]:
        return [restore for drill in self.drills if drill.verified or not passed_only for restore in drill.restores]

    @property
    def rto_seconds(self) -> float | None:
        """The longest restore to a usable instance (target reached), as JUnit's recovery_seconds."""
        reached = [r.recovery_seconds for r in self.restores() if _reached(r)]
        return max(reached) if reached else None

    @property
    def rpo_seconds(self) -> float | None:
        """The widest data-loss window any restore measured, as JUnit's rpo_seconds."""
        measured = [r.rpo_seconds for r in self.restores() if r.rpo_seconds is not None]
        return max(measured) if measured else None

    def newest_backup(self, passed_only: bool = False) -> RestoredBackup | None:
        """The newest backup the drills restored (only those of passed drills: ``passed_only``)."""
        backups = [RestoredBackup(r.backup_id, timestamp(r.backup_end_time), r.backup_size_bytes)
                   for r in self.restores(passed_only) if r.backup_id]
        if not backups:
            return None
        return max(backups, key=lambda b: (b.end_time or 0.0, b.backup_id))

    def failed_checks(self) -> dict[str, int]:
        """Every check the restores ran, by name, with how many restores it failed in (0: none)."""
        failed: dict[str, int] = {}
        for restore in self.restores():
            for check in restore.checks:
                failed[check.name] = failed.get(check.name, 0) + (not check.passed)
        return failed

    def postgresql(self, run: RunRecord) -> str:
        versions = sorted({d.facts["postgresql_version"] for d in self.drills if d.facts.get("postgresql_version")})
        return ", ".join(versions) or run.facts.get("postgresql", "")


def _reached(restore: RestoreRecord) -> bool:
    check = restore.check("target_reached")
    return check is not None and check.passed


def server_runs(run: RunRecord) -> list[ServerRun]:
    """The run's drills by (server, stack), in order of first appearance."""
    stack = run.facts.get("stack") or UNKNOWN
    groups: dict[str, list[DrillRecord]] = {}
    unsettled = f"the run stopped before every drill ran ({run.interrupted})" if run.interrupted else ""
    for drill in run.drills:
        server = drill.facts.get("barman_server") or ""
        if not server and drill.outcome == "skipped":
            continue
        if not server:
            unsettled = unsettled or f"the drill {drill.nodeid} names no Barman server"
        groups.setdefault(server or UNKNOWN, []).append(drill)
    return [ServerRun(server, stack, drills, unsettled) for server, drills in groups.items()]
