"""``--shard K/N``: this run takes its part of the collected tests (harness.shards chooses), deselects the
rest (reported as deselected), and says in its evidence which part it ran, so that pgbv-merge can fold
N shards' reports into one and notice a shard missing or a plan that differed between machines.
"""

from __future__ import annotations

import pytest

from harness.plugin.parallel import plain_nodeid
from harness.plugin.state import drill_config, run_state
from harness.shards import plan_digest, select


def server_of(item) -> str | None:
    """The Barman server a drill of --stack existing restores from (None for every other test)."""
    params = getattr(getattr(item, "callspec", None), "params", {})
    backup = params.get("existing_backup")
    return str(backup[0]) if backup else None


def pytest_configure(config):
    shard = drill_config(config).shard
    if shard is not None:
        run_state(config).record.facts["shard"] = str(shard)


@pytest.hookimpl(trylast=True)  # after -m, -k and the other plugins chose: deal out what would run
def pytest_collection_modifyitems(config, items):
    shard = drill_config(config).shard
    if shard is None:
        return
    keys = [(server_of(item), plain_nodeid(item)) for item in items]
    mine = select(keys, shard)
    kept = [item for item, chosen in zip(items, mine, strict=True) if chosen]
    dropped = [item for item, chosen in zip(items, mine, strict=True) if not chosen]
    items[:] = kept
    if dropped:
        config.hook.pytest_deselected(items=dropped)
    run_state(config).record.facts.update({
        "shard_plan": plan_digest(keys), "shard_tests": f"{len(kept)} of {len(keys)}"})


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
