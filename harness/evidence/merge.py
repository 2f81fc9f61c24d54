"""Several runs' evidence folded into one run: the shards of a sharded run (``--shard K/N``), or the
workers of a pytest-xdist run (harness.plugin.parallel uses ``merge_facts``).

A merge must never make a green out of less than the whole: a shard missing or unreadable, a shard
present twice, shards that collected different plans, a drill reported by two shards: each becomes
a problem, and each problem an ``error`` drill of the merged run, so the merged report cannot say
VERIFIED and its verdict is at best "no verdict".
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field

from harness.evidence.records import DrillRecord, RunRecord

# Facts of one shard or one machine, not of the merged run.
SHARD_FACTS = ("shard", "shard_plan", "shard_tests", "run_id", "run_history", "metrics_file")


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


@dataclass
class Merged:
    record: RunRecord
    problem_cases: list[tuple[str, str]] = field(default_factory=list)   # (subject, what is wrong)
    other_failures: list[str] = field(default_factory=list)   # tests that are not drills and failed

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


def merge_runs(parts: list[Part], extra_problems: list[tuple[str, str]] = ()) -> Merged:
    merged = RunRecord(facts={"run_id": uuid.uuid4().hex})
    problems = list(extra_problems) + [(part.source, f"unreadable, so its drills have no verdict: {part.unreadable}")
                                       for part in parts if part.record is None]
    readable = [part for part in parts if part.record is not None]
    problems += _shard_problems(readable, merged.facts)
    seen: dict[str, str] = {}
    for part in readable:
        label = _label(part)
        merge_facts(merged.facts, {k: v for k, v in part.record.facts.items() if k not in SHARD_FACTS})
        merged.kept += part.record.kept
        for drill in part.record.drills:
            if drill.nodeid in seen:
                problems.append((drill.nodeid, f"reported by {seen[drill.nodeid]} and again by {label}: the shards "
                                               "did not share the work as planned"))
                continue
            seen[drill.nodeid] = label
            merged.drills.append(drill)
    merged.facts["merged_from"] = ", ".join(_label(part) for part in parts)
    result = Merged(merged)
    for subject, problem in problems:
        result.add_problem(subject, problem)
    return result


def _label(part: Part) -> str:
    shard = part.record.facts.get("shard") if part.record else None
    return f"shard {shard} ({part.source})" if shard else part.source


def _shard_problems(parts: list[Part], facts: dict[str, str]) -> list[tuple[str, str]]:
    """Every shard 1..N present once, all of one N and one plan."""
    sharded = [part for part in parts if part.record.facts.get("shard")]
    if not sharded:
        return []
    problems = [(part.source, "not a shard (run without --shard) but merged with shards")
                for part in parts if not part.record.facts.get("shard")]
    counts = sorted({part.record.facts["shard"].partition("/")[2] for part in sharded})
    if len(counts) > 1:
        return problems + [("shards", f"shards of different splits are merged ({', '.join('N=' + n for n in counts)}):"
                                      " merge the shards of one run")]
    count = int(counts[0])
    where: dict[int, list[str]] = {}
    for part in sharded:
        where.setdefault(int(part.record.facts["shard"].partition("/")[0]), []).append(part.source)
    for index in range(1, count + 1):
        sources = where.get(index, [])
        if not sources:
            problems.append((f"shard {index}/{count}", "missing: no readable report of it was given, so its drills "
                                                       "have no verdict"))
        elif len(sources) > 1:
            problems.append((f"shard {index}/{count}",
                             f"given twice ({', '.join(sources)}): merge one report per shard"))
    plans = sorted({part.record.facts.get("shard_plan", "") for part in sharded} - {""})
    if len(plans) > 1:
        problems.append(("shard plans", f"the shards collected different tests (plans {', '.join(plans)}): some "
                                        "drills may have run twice or not at all; run every shard with the same "
                                        "checkout, options and Barman configuration"))
    facts["shards"] = ", ".join(f"{index}/{count}" for index in sorted(where))
    return problems
