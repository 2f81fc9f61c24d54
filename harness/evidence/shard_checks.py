"""Whether the reports pgbv-merge was given are the shards of one run, whole.

Every shard 1..N once, all of one N and one plan; all of one run: the same run key (``--shard-run``,
the one the merge was given if it was given one), else, when no shard has a key, start times no
further apart than ``--max-spread``; and each shard's report holding exactly the drills it was dealt
(their number and digest are in its facts). A shard's directory can hold an older run's report (the
pod of this run lost, the volume kept), and a shard can end before it recorded what it was dealt:
neither may pass for a part of this run.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from harness.evidence.servers import timestamp, utc_text
from harness.shards import drills_digest

if TYPE_CHECKING:
    from harness.evidence.merge import Part

Problem = tuple[str, str]   # (subject, what is wrong)

MAX_SPREAD = 6 * 3600.0     # without run keys: shards that started further apart are not taken for one run

OLDER_RUN = ("a shard's directory may hold the report of an earlier run (this run's shard lost before it wrote one): "
             "its drills say nothing of this run's backups. Give every shard of a run the same --shard-run and a "
             "directory of its own per run, or clear the directory before the shard runs")


def shard_problems(parts: list[Part], facts: dict[str, str], run_key: str | None = None,
                   max_spread: float | None = None) -> tuple[list[Problem], list[str]]:
    """(problems, notes) of the readable parts; the merged run's facts learn its shards and run key."""
    sharded = [part for part in parts if part.record.facts.get("shard")]
    notes: list[str] = []
    if not sharded:
        return _run_problems(parts, facts, run_key, max_spread, notes) if run_key else [], notes
    problems = [(part.source, "not a shard (run without --shard) but merged with shards")
                for part in parts if not part.record.facts.get("shard")]
    problems += _run_problems(sharded, facts, run_key, max_spread or MAX_SPREAD, notes)
    problems += [problem for part in sharded for problem in _dealt_problems(part)]
    return problems + _split_problems(sharded, facts), notes


def _split_problems(sharded: list[Part], facts: dict[str, str]) -> list[Problem]:
    counts = sorted({part.record.facts["shard"].partition("/")[2] for part in sharded})
    if len(counts) > 1:
        return [("shards", f"shards of different splits are merged ({', '.join('N=' + n for n in counts)}): merge "
                           "the shards of one run")]
    count = int(counts[0])
    problems: list[Problem] = []
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


def _run_problems(parts: list[Part], facts: dict[str, str], expected: str | None, max_spread: float,
                  notes: list[str]) -> list[Problem]:
    """All of one run: one run key (the expected one), else start times close together."""
    keys = [(part, part.record.facts.get("shard_run", "")) for part in parts]
    if expected:
        facts["shard_run"] = expected
        return [(part.label, f"not of this run: {f'its run key is {key}' if key else 'its report has no run key'}, "
                             f"not {expected} (--shard-run): {OLDER_RUN}") for part, key in keys if key != expected]
    distinct = sorted({key for _, key in keys})
    if distinct == [""]:
        return _start_problems(parts, facts, max_spread, notes)
    if len(distinct) == 1:
        facts["shard_run"] = distinct[0]
        return []
    named = "; ".join(f"{part.label}: {key or 'none'}" for part, key in keys)
    return [("shard runs", f"the shards are not of one run (run keys, --shard-run: {named}): {OLDER_RUN}")]


def _start_problems(parts: list[Part], facts: dict[str, str], max_spread: float, notes: list[str]) -> list[Problem]:
    """No shard has a run key: shards that started within ``max_spread`` of each other are taken for one run."""
    starts = [(part, timestamp(part.record.facts.get("run_started_utc"))) for part in parts]
    unknown = [(part.label, "its report has neither a run key (--shard-run) nor a start time: whether it is of "
                            "this run is unknown") for part, start in starts if start is None]
    if unknown:
        return unknown
    first = min(starts, key=lambda pair: pair[1])
    last = max(starts, key=lambda pair: pair[1])
    spread = last[1] - first[1]
    if spread > max_spread:
        return [("shard runs", f"no shard has a run key (--shard-run), and {first[0].label} started at "
                               f"{utc_text(first[1])}, {span(spread)} before {last[0].label} ({utc_text(last[1])}), "
                               f"more than --max-spread {span(max_spread)}: {OLDER_RUN}")]
    note = (f"no shard has a run key (--shard-run): taken for one run because they started within {span(spread)} "
            f"of each other (--max-spread {span(max_spread)})")
    notes.append(note)
    facts["shards_of_one_run"] = note
    return []


def _dealt_problems(part: Part) -> list[Problem]:
    """The shard's report holds exactly the drills it was dealt (a run that ended early, a --collect-only run
    of an older pgbv, a report cut short: not the whole of its part)."""
    facts = part.record.facts
    count, digest = facts.get("shard_drills", ""), facts.get("shard_drills_digest", "")
    reported = {drill.nodeid for drill in part.record.drills}
    if not count.isdigit() or not digest:
        return [(part.label, "its report does not say which drills it was dealt (its run ended before it collected "
                             "them, or an older pgbv wrote it): whether it holds every one is unknown")]
    if digest == drills_digest(reported):
        return []
    stopped = f"; the shard's run stopped early ({part.record.interrupted})" if part.record.interrupted else ""
    if len(reported) < int(count):
        return [(part.label, f"it was dealt {count} drill(s) but its report holds {len(reported)}: "
                             f"{int(count) - len(reported)} drill(s) of it have no verdict{stopped}; rerun the shard")]
    return [(part.label, f"its report holds {len(reported)} drill(s), not the {count} it was dealt (plan "
                         f"{facts.get('shard_plan', '-')}){stopped}: it is not this shard's whole part; rerun the "
                         "shard")]


def span(seconds: float) -> str:
    """A spread of time as a person reads it: '45s', '12m 05s', '7h 30m'."""
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h {minutes:02d}m" if hours else f"{minutes}m {secs:02d}s" if minutes else f"{secs}s"
