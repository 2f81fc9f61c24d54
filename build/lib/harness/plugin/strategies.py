"""Hypothesis strategies for write histories and for the recovery targets a run of one offers."""

from __future__ import annotations

from hypothesis import strategies as st

from harness.history.model import PlannedTarget
from harness.history.run import HistoryRun
from harness.history.steps import Delete, History, Insert, Pause, RestorePoint, SwitchWal, Transaction, Update

PICKS = st.lists(st.integers(0, 200), min_size=1, max_size=5).map(tuple)
STATEMENTS = st.one_of(
    st.builds(Insert, st.integers(1, 20)),
    st.builds(Update, PICKS),
    st.builds(Delete, PICKS),
)
STATEMENT_LISTS = st.lists(STATEMENTS, min_size=1, max_size=4).map(tuple)
TRANSACTIONS = st.builds(
    Transaction,
    STATEMENT_LISTS,
    st.integers(0, 3).map(lambda n: n != 3),  # one in four rolls back; shrinks to a commit
)
COMMITTED_TRANSACTIONS = st.builds(Transaction, STATEMENT_LISTS, st.just(True))
WAL_STEPS = st.one_of(st.just(RestorePoint()), st.just(SwitchWal()))
PAUSES = st.sampled_from((0.0, 0.01, 0.1, 0.3)).map(Pause)


@st.composite
def histories(draw, max_steps: int = 12, max_before_backup: int = 4, pauses: bool = True) -> History:
    """A history of 1..max_steps steps with at least one committed transaction after the backup
    (so xid and time targets exist; it shrinks to that one transaction)."""
    steps = st.one_of(TRANSACTIONS, st.one_of(WAL_STEPS, PAUSES) if pauses else WAL_STEPS)
    before = draw(st.lists(steps, max_size=min(max_before_backup, max_steps - 1)))
    after = draw(st.lists(steps, max_size=max_steps - len(before) - 1))
    after.insert(draw(st.integers(0, len(after))), draw(COMMITTED_TRANSACTIONS))
    seed = draw(st.integers(0, 2 ** 16))
    return History(seed, tuple(before + after), len(before))


def planned_targets(run: HistoryRun, max_targets: int = 3) -> st.SearchStrategy[list[PlannedTarget]]:
    """1..max_targets targets of ``run``, each of another kind (the kinds in a drawn order, so each
    is as likely to be tested), each one of that kind's targets."""
    by_kind = run.targets()
    # Drawn orders lean towards this one: immediate, the same state in every example, comes last.
    kinds = [kind for kind in ("xid", "time", "lsn", "name", "immediate") if kind in by_kind]

    @st.composite
    def plans(draw) -> list[PlannedTarget]:
        order = draw(st.permutations(kinds))
        count = draw(st.integers(1, min(max_targets, len(order))))
        return [draw(st.sampled_from(by_kind[kind])) for kind in order[:count]]
    return plans()
