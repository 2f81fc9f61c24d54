"""Shrinking works on histories: a deliberately wrong model is caught and shrunk to a tiny history.

The wrong model is off by one transaction: it forgets the last commit. No recovery is needed to
catch it: after each drawn history the real source's fingerprint is the truth it is held against.
"""

import pytest
from hypothesis import HealthCheck, find, settings

from harness.history import History, HistoryRun, Transaction, histories

SHRINK_SETTINGS = settings(max_examples=20, derandomize=True, database=None, deadline=None,
                           suppress_health_check=list(HealthCheck))


@pytest.mark.property
def test_property_shrinking_reduces_a_wrong_model_to_a_minimal_history(source):
    runs = []

    def off_by_one_model_disagrees(history: History) -> bool:
        run = HistoryRun(source, history.seed, check_each_step=False)
        run.apply(history.steps)
        runs.append(run)
        off_by_one = max(run.model.version - 1, 0)   # the deliberate bug: the last commit is forgotten
        return source.fingerprint(run.model.table) != run.model.fingerprint_at(off_by_one)

    smallest = find(histories(max_steps=6), off_by_one_model_disagrees, settings=SHRINK_SETTINGS)

    assert len(runs) > 1, "hypothesis should have tried several histories"
    assert len(smallest.steps) <= 2, f"not shrunk: {smallest}"
    assert any(isinstance(step, Transaction) and step.commit for step in smallest.steps), smallest
