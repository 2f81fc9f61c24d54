"""Several runs' evidence folded into one run: the shards of a sharded run (``--shard K/N``), or the
workers of a pytest-xdist run (harness.plugin.parallel uses ``merge_facts``).

A merge must never make a green out of less than the whole: a shard missing or unreadable, a shard
present twice, shards that collected different plans or are of different runs, a shard whose report
does not hold the drills it was dealt (harness.evidence.shard_checks), a drill reported by two shards:
each becomes a problem, and each problem an ``error`` drill of the merged run, so the merged report
cannot say VERIFIED and its verdict is at best "no verdict". Each server's time in the metrics is the
end of the shards that ran its drills, not of the merged run.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field

from harness.evidence.records import DrillRecord, RunRecord
from harness.evidence.servers import timestamp
from harness.evidence.shard_checks import shard_problems

# Facts of one shard or one machine, not of the merged run.
SHARD_FACTS = ("shard", "shard_plan", "shard_tests", "shard_drills", "shard_drills_digest", "shard_run", "run_id",
               "run_history", "metrics_file")


def merge_facts(into: dict[str, str], facts: dict[str, str]) -> None:
    """Facts of several runs: the earliest start, the latest end, else every distinct value in order
    (two hosts, two Barman versions: both named, never one silently chosen)."""
    for name, value in facts.items():
        value = str(value)
        known = into.get(name)
        if not known:
            into[name] = value
        elif name == "run_started_utc":
            into[name] = min(known, value)
        elif name == "run_ended_utc":
            into[name] = max(known, value)
        elif value not in known.split(", "):
            into[name] = f"{known}, {value}"


@dataclass
class Part:
    """One run to fold in: where it came from, and its record (None when it could not be read)."""

    source: str
    record: RunRecord | None
    unreadable: str = ""

    @property
    def label(self) -> str:
        shard = self.record.facts.get("shard") if self.record else None
        return f"shard {shard} ({self.source})" if shard else self.source


@dataclass
class Merged:
    record: RunRecord
    problem_cases: list[tuple[str, str]] = field(default_factory=list)   # (subject, what is wrong)
    other_failures: list[str] = field(default_factory=list)   # tests that are not drills and failed
    notes: list[str] = field(default_factory=list)            # what the merge assumed, said, not a problem
    ended: dict[str, float] = field(default_factory=dict)     # server -> when the shards that ran it ended

    def add_problem(self, subject: str, text: str) -> None:
        """A problem of the merge, also an error drill of the merged run: it cannot be VERIFIED."""
        self.problem_cases.append((subject, text))
        self.record.drills.append(DrillRecord(f"merge: {subject}", "error", 0.0, f"no verdict: {text}"))

    @property
    def problems(self) -> list[str]:
        return [f"{subject}: {text}" for subject, text in self.problem_cases]

    @property
    def exit_code(self) -> int:
        """0 every drill verified, 1 a drill (or another test) failed: a red wins, 2 no verdict (a problem,
        a drill that could not run, nothing run)."""
        if self.record.counts()["failed"] or self.other_failures:
            return 1
        return 0 if self.record.verified and not self.problem_cases else 2


def merge_runs(parts: list[Part], extra_problems: list[tuple[str, str]] = (), run_key: str | None = None,
               max_spread: float | None = None) -> Merged:
    """The parts folded into one run; ``run_key``: the --shard-run every shard must carry; ``max_spread``:
    without keys, how far apart the shards' starts may lie (default 6 h)."""
    merged = RunRecord(facts={"run_id": uuid.uuid4().hex})
    problems = list(extra_problems) + [(part.source, f"unreadable, so its drills have no verdict: {part.unreadable}")
                                       for part in parts if part.record is None]
    readable = [part for part in parts if part.record is not None]
    found, notes = shard_problems(readable, merged.facts, run_key, max_spread)
    problems += found
    seen: dict[str, str] = {}
    ended: dict[str, float] = {}
    for part in readable:
        merge_facts(merged.facts, {k: v for k, v in part.record.facts.items() if k not in SHARD_FACTS})
        merged.kept += part.record.kept
        end = timestamp(part.record.facts.get("run_ended_utc")) or timestamp(part.record.facts.get("run_started_utc"))
        for drill in part.record.drills:
            if drill.nodeid in seen:
                problems.append((drill.nodeid, f"reported by {seen[drill.nodeid]} and again by {part.label}: the "
                                               "shards did not share the work as planned"))
                continue
            seen[drill.nodeid] = part.label
            merged.drills.append(drill)
            server = drill.facts.get("barman_server")
            if server and end is not None:
                ended[server] = max(ended.get(server, end), end)
    merged.facts["merged_from"] = ", ".join(part.label for part in parts)
    result = Merged(merged, notes=notes, ended=ended)
    for subject, problem in problems:
        result.add_problem(subject, problem)
    return result
