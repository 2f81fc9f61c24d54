"""``--shard K/N``: this run takes its part of the collected tests (harness.shards chooses), deselects the
rest (reported as deselected), and says in its evidence which part it ran, of which run (``--shard-run``)
and which drills it was dealt, so that pgbv-merge can fold N shards' reports into one and notice a shard
missing, a report of another run, a plan that differed between machines, or drills a shard never reported.
"""

from __future__ import annotations

import pytest

from harness.plugin.existing import existing_server
from harness.plugin.state import drill_config, run_state
from harness.shards import drills_digest, plan_digest, select
from harness.test_ids import without_group


def pytest_configure(config):
    drill = drill_config(config)
    facts = run_state(config).record.facts
    if drill.shard is not None:
        facts["shard"] = str(drill.shard)
    if drill.shard_run:
        facts["shard_run"] = drill.shard_run


@pytest.hookimpl(trylast=True)  # after -m, -k and the other plugins chose: deal out what would run
def pytest_collection_modifyitems(config, items):
    shard = drill_config(config).shard
    if shard is None:
        return
    keys = [(existing_server(config, item.nodeid), without_group(item.nodeid)) for item in items]
    mine = select(keys, shard)
    kept = [item for item, chosen in zip(items, mine, strict=True) if chosen]
    dropped = [item for item, chosen in zip(items, mine, strict=True) if not chosen]
    items[:] = kept
    if dropped:
        config.hook.pytest_deselected(items=dropped)
    dealt = [without_group(item.nodeid) for item in kept if "drill" in item.keywords]
    run_state(config).record.facts.update({
        "shard_plan": plan_digest(keys), "shard_tests": f"{len(kept)} of {len(keys)}",
        "shard_drills": str(len(dealt)), "shard_drills_digest": drills_digest(dealt)})


def pytest_report_collectionfinish(config, items):
    shard = drill_config(config).shard
    if shard is not None:
        facts = run_state(config).record.facts
        return f"shard {shard}: {facts.get('shard_tests', '0 of 0')} tests (plan {facts.get('shard_plan', '-')})"


@pytest.hookimpl(trylast=True)
def pytest_sessionfinish(session):
    # A shard dealt nothing (more shards than units) did its part: not "no tests collected".
    # (Under -n the controller collects nothing itself: the workers' facts say what they were dealt.)
    dealt, _, collected = run_state(session.config).record.facts.get("shard_tests", "").partition(" of ")
    if drill_config(session.config).shard is not None and dealt == "0" and collected not in ("", "0") \
            and session.exitstatus == pytest.ExitCode.NO_TESTS_COLLECTED:
        session.exitstatus = pytest.ExitCode.OK
