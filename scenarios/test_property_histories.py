"""Property-based PITR: random write histories, every kind of target, each restore exact.

Hypothesis draws a history (inserts, updates, deletes, multi-statement and rolled-back
transactions, restore points, WAL switches, pauses) and where the backup falls in it. The history
is written to the source while a model keeps the table after every commit; hypothesis then picks
targets among the history's points (time, xid, lsn, restore point, immediate; inclusive and
exclusive on a commit), and each restore must hold exactly the model's rows there: count and
checksum, with the first differing ids when it does not. How many examples: the hypothesis profile
(ci by default, nightly for many).
"""

import pytest
from hypothesis import event, given, note
from hypothesis import strategies as st

from harness.history import Delete, HistoryRun, Insert, Transaction, Update
from harness.plugin.strategies import histories, planned_targets

# Written after every target and archived: a restore that replayed too far would hold it.
LATER_WRITES = (Transaction((Insert(5), Update((0, 1)), Delete((2,)))),)


@pytest.mark.pitr
@pytest.mark.property
@given(history=histories(), data=st.data())
def test_property_random_history_restores_exactly_at_each_target(source, barman, scratch, history, data):
    scratch.start_over()                           # this example's restores only
    note(history.describe())
    with HistoryRun(source, history.seed) as run:  # its own table, emptied: the model starts empty
        run.apply(history.before_backup)
        backup = barman.backup()
        run.mark_backup()
        run.apply(history.after_backup)
        plans = data.draw(planned_targets(run), label="targets")
        run.apply(LATER_WRITES)                    # after every target: must NOT survive recovery
    barman.archive_current_wal()

    for plan in plans:
        event(f"{plan.target.kind} target")
        restored = scratch.recover(backup, plan.target)
        restored.assert_matches(run.model.fingerprint_at(plan.version), rows=run.model.rows_at(plan.version))
        scratch.discard()                          # disk stays small; a failed restore stays as evidence


@pytest.mark.property
def test_property_model_follows_transactions_that_change_nothing(source):
    # Found by the drill: a transaction that wrote nothing before its commit record commits
    # asynchronously, so its record reaches flushed WAL (where pg_walinspect looks) a moment later.
    with HistoryRun(source, seed=0) as run:
        run.mark_backup()                                      # no backup: only the bookkeeping counts
        run.apply([Transaction((Update((0,)),)),              # an empty table: nothing to update
                   Transaction((Insert(2), Delete((0, 1)))),  # rows that never show outside
                   Transaction((Delete((0,)),), commit=False)])
        by_kind = run.targets()
    assert [c.version for c in run.commits] == [1, 2]
    assert all(c.lsn for c in run.commits), run.commits
    assert {plan.version for plan in by_kind["xid"]} == {0, 1, 2}
    assert run.model.fingerprint_at(2) == run.model.fingerprint_at(0) == source.fingerprint(run.model.table)
