"""Shrinking works on histories: a deliberately wrong model is caught and shrunk to a minimal history.

The wrong model is off by one transaction once a restore point came before the last commit (as if
it had counted the restore point as a transaction). No recovery is needed to catch it: after each
drawn history the real source's fingerprint is the truth it is held against. A restore point and
one commit are all it takes to show the bug, so hypothesis must shrink the history it first caught
it on down to those two steps.
"""

import pytest
from hypothesis import HealthCheck, find, settings

from harness.history import History, HistoryRun, Insert, RestorePoint, Transaction
from harness.plugin.strategies import histories

SHRINK_SETTINGS = settings(max_examples=50, derandomize=True, database=None, deadline=None,
                           suppress_health_check=list(HealthCheck))


@pytest.mark.property
def test_property_shrinking_reduces_a_wrong_model_to_a_minimal_history(source):
    caught = []   # the histories the wrong model was caught on, in the order tried

    def wrong_model_disagrees(history: History) -> bool:
        with HistoryRun(source, history.seed, check_each_step=False) as run:
            run.apply(history.steps)
        version = run.model.version
        last_commit = run.commits[-1].step if run.commits else 0
        if any(isinstance(step, RestorePoint) for step in history.steps[:last_commit]):
            version -= 1                         # the deliberate bug: one transaction behind
        wrong = source.fingerprint(run.model.table) != run.model.fingerprint_at(version)
        if wrong:
            caught.append(history)
        return wrong

    # Pauses only cost time here.
    smallest = find(histories(max_steps=6, pauses=False), wrong_model_disagrees, settings=SHRINK_SETTINGS)

    assert smallest.steps == (RestorePoint(), Transaction((Insert(1),))), f"not shrunk: {smallest}"
    assert len(caught[0].steps) > 2, f"the first history caught was already minimal: {caught[0]}"
    print(f"caught first on {caught[0].describe()}\nshrunk to {smallest.describe()}")
