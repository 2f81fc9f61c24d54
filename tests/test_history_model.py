"""The history model without a server: versions, fingerprints, picks, expected versions, row diffs."""

import hashlib

from hypothesis import given, settings
from hypothesis import strategies as st

from harness.drill.fingerprint import combine, fingerprint_of_hashes
from harness.drill.rowdiff import diff_rows
from harness.drill.targets import RecoveryTarget
from harness.history import (
    CommitRecord,
    Delete,
    History,
    HistoryRun,
    Insert,
    Pause,
    PlannedTarget,
    Point,
    RestorePoint,
    SwitchWal,
    TableModel,
    Transaction,
    Update,
    version_at,
)
from harness.plugin.strategies import histories, planned_targets


def md5(text: str) -> int:
    """A stand-in row hash: signed 64-bit, as the server's row hashes are."""
    return int.from_bytes(hashlib.md5(text.encode()).digest()[:8], "big", signed=True)


def server_fingerprint(hashes):
    # What FINGERPRINT_SQL does: sum the signed bigints exactly, then the checksum is that sum mod 2**64.
    hashes = list(hashes)
    return combine(len(hashes), sum(hashes), "books")


HASHES = st.lists(st.text(max_size=8).map(md5), max_size=30)


@settings(database=None, max_examples=200)
@given(HASHES)
def test_fingerprint_of_hashes_equals_the_servers_signed_sums(hashes):
    assert fingerprint_of_hashes(hashes) == server_fingerprint(hashes)


def test_model_versions_and_fingerprints():
    model = TableModel({1: md5("a"), 2: md5("b")})
    assert model.version == 0
    assert model.commit({3: md5("c"), 1: md5("a2")}) == 1
    assert model.commit({2: None}) == 2
    assert model.rows_at(0) == {1: md5("a"), 2: md5("b")}
    assert model.rows_at(1) == {1: md5("a2"), 2: md5("b"), 3: md5("c")}
    assert model.rows_at(2) == {1: md5("a2"), 3: md5("c")} == model.current
    assert model.ids == [1, 3]
    for version in range(3):
        assert model.fingerprint_at(version) == fingerprint_of_hashes(model.rows_at(version).values())


def test_deleting_a_row_twice_or_one_never_there_changes_nothing_more():
    model = TableModel({1: md5("a")})
    model.commit({1: None, 99: None})
    assert model.current == {} and model.ids == []
    assert model.fingerprint_at(1) == fingerprint_of_hashes([])


CHANGES = st.dictionaries(st.integers(1, 40), st.none() | st.text(max_size=4).map(md5), max_size=8)


@settings(database=None, max_examples=200)
@given(base=st.dictionaries(st.integers(1, 40), st.text(max_size=4).map(md5), max_size=20),
       commits=st.lists(CHANGES, max_size=6))
def test_incremental_fingerprints_equal_those_of_the_rebuilt_rows(base, commits):
    model = TableModel(base)
    for changes in commits:
        model.commit(changes)
    for version in range(model.version + 1):
        rows = model.rows_at(version)
        assert model.fingerprint_at(version) == fingerprint_of_hashes(rows.values())
    assert model.ids == sorted(model.current)


def test_picks_count_back_from_the_newest_live_row():
    model = TableModel({i: md5(str(i)) for i in (1, 2, 3, 4, 5)})
    assert model.pick((0,), {}) == [5]
    assert model.pick((0, 1, 4), {}) == [1, 4, 5]
    assert model.pick((5,), {}) == [5]                       # wraps around
    assert model.pick((0, 0), {}) == [5]                     # each row once
    pending = {6: md5("6"), 5: None, 4: md5("4b")}           # inside a transaction: 6 new, 5 gone
    assert model.pick((0,), pending) == [6]
    assert model.pick((1,), pending) == [4]
    assert TableModel({}).pick((0, 3), {}) == []
    assert TableModel({1: md5("x")}).pick((0,), {1: None}) == []


def commit(version, xid, lsn, time):
    return CommitRecord(version, version, str(xid), lsn, f"2026-01-01 00:00:0{time}.000000+00:00")


COMMITS = [commit(1, 700, "0/3000100", 1), commit(2, 701, "0/3000200", 2), commit(3, 702, "0/4000028", 3)]


def test_xid_targets_keep_or_drop_their_commit():
    assert version_at(RecoveryTarget("xid", "701", True), COMMITS) == 2
    assert version_at(RecoveryTarget("xid", "701", False), COMMITS) == 1


def test_time_targets_on_a_commit_timestamp():
    on_second = COMMITS[1].time
    assert version_at(RecoveryTarget("time", on_second, True), COMMITS) == 2
    assert version_at(RecoveryTarget("time", on_second, False), COMMITS) == 1
    assert version_at(RecoveryTarget("time", "2026-01-01 00:00:02.500000+00:00", False), COMMITS) == 2
    assert version_at(RecoveryTarget("time", "2026-01-01 00:00:00.000000+00:00", True), COMMITS) == 0


def test_lsn_targets_on_a_commit_record_and_between_records():
    assert version_at(RecoveryTarget("lsn", "0/3000200", True), COMMITS) == 2
    assert version_at(RecoveryTarget("lsn", "0/3000200", False), COMMITS) == 1
    assert version_at(RecoveryTarget("lsn", "0/3000250", True), COMMITS) == 2
    assert version_at(RecoveryTarget("lsn", "0/3000250", False), COMMITS) == 2
    # LSNs compare as numbers, not text: 0/4000028 is after 0/3000200.
    assert version_at(RecoveryTarget("lsn", "0/10000000", True), COMMITS) == 3


def test_every_kind_agrees_on_a_commit():
    for record in COMMITS:
        for inclusive in (True, False):
            expected = record.version if inclusive else record.version - 1
            assert version_at(RecoveryTarget("xid", record.xid, inclusive), COMMITS) == expected
            assert version_at(RecoveryTarget("time", record.time, inclusive), COMMITS) == expected
            assert version_at(RecoveryTarget("lsn", record.lsn, inclusive), COMMITS) == expected


def test_version_at_refuses_what_commits_cannot_answer():
    for target in (RecoveryTarget("xid", "999"), RecoveryTarget("name", "x"), RecoveryTarget("immediate")):
        try:
            version_at(target, COMMITS)
        except ValueError:
            continue
        raise AssertionError(f"{target} should be refused")


def test_planned_target_reads_as_a_sentence():
    plan = PlannedTarget(RecoveryTarget("xid", "701", False), 1,
                         "the commit of step 2 (transaction [insert 1] committed)")
    assert repr(plan) == ("<xid 701 exclusive at the commit of step 2 (transaction [insert 1] committed): "
                          "expects version 1>")


def test_steps_describe_themselves():
    tx = Transaction((Insert(3), Update((0, 2)), Delete((1,))), commit=False)
    assert str(tx) == "transaction [insert 3; update picks 0,2; delete picks 1] rolled back"
    assert [str(s) for s in (RestorePoint(), SwitchWal(), Pause(0.1))] == ["restore point", "switch WAL", "pause 0.1s"]


@settings(database=None, max_examples=200)
@given(histories())
def test_histories_commit_after_the_backup(history):
    assert isinstance(history, History)
    assert 1 <= len(history.steps) <= 12
    assert any(isinstance(step, Transaction) and step.commit for step in history.after_backup)
    assert history.before_backup + history.after_backup == history.steps
    for step in history.steps:
        if isinstance(step, Transaction):
            assert step.statements


def test_targets_need_the_backup_first():
    run = HistoryRun.__new__(HistoryRun)   # no source: only the bookkeeping is exercised
    run.backup_version = None
    try:
        run.targets()
    except ValueError as exc:
        assert "mark_backup" in str(exc)
    else:
        raise AssertionError("targets() before the backup should be refused")


def test_row_diff_names_missing_extra_and_changed_ids():
    expected = {1: "a", 2: "b", 3: "c", 5: "e"}
    actual = [(1, "a"), (3, "C"), (4, "d"), (5, "e"), (6, "f")]
    diff = diff_rows(actual, expected)
    assert (diff.missing, diff.extra, diff.changed) == ([2], [4, 6], [3])
    assert diff.render() == "row diff: 1 missing (ids 2); 2 extra (ids 4, 6); 1 changed (ids 3)"
    assert not diff_rows([(1, "a")], {1: "a"})


def test_row_diff_lists_the_first_ids_and_counts_the_rest():
    diff = diff_rows([], {i: "x" for i in range(1, 26)}, limit=3)
    assert diff.missing == [1, 2, 3] and diff.totals["missing"] == 25
    assert diff.render() == "row diff: 25 missing (ids 1, 2, 3, ... (22 more))"


@settings(database=None, max_examples=300)
@given(actual=st.dictionaries(st.integers(0, 30), st.sampled_from("abc")),
       expected=st.dictionaries(st.integers(0, 30), st.sampled_from("abc")))
def test_row_diff_agrees_with_set_arithmetic(actual, expected):
    diff = diff_rows(sorted(actual.items()), expected, limit=100)
    assert diff.missing == sorted(expected.keys() - actual.keys())
    assert diff.extra == sorted(actual.keys() - expected.keys())
    assert diff.changed == sorted(i for i in actual.keys() & expected.keys() if actual[i] != expected[i])
    assert bool(diff) == (actual != expected)


def test_history_describes_its_steps_and_the_backup():
    history = History(7, (Transaction((Insert(2),)), RestorePoint(), Pause(0.0)), backup_at=1)
    assert history.describe() == ("history (seed 7):\n  step 0: transaction [insert 2] committed\n  -- backup --\n"
                                  "  step 1: restore point\n  step 2: pause 0.0s")


def run_after(commits, points, steps, backup_version):
    run = HistoryRun.__new__(HistoryRun)   # no source: only the bookkeeping is exercised
    run.commits, run.points, run.steps, run.backup_version = commits, points, steps, backup_version
    run._unflushed = {}
    return run


def test_targets_offer_every_kind_after_the_backup_with_exact_versions():
    steps = [Transaction((Insert(1),)), Transaction((Insert(2),)), RestorePoint(), Transaction((Delete((0,)),))]
    commits = [commit(1, 700, "0/3000100", 1), commit(2, 701, "0/3000200", 2), commit(3, 702, "0/3000400", 3)]
    commits = [CommitRecord(c.version, step, c.xid, c.lsn, c.time) for c, step in zip(commits, (0, 1, 3))]
    points = [Point(0, 1, "0/3000150", False), Point(1, 2, "0/3000250", True),
              Point(2, 2, "0/3000300", True, restore_point="rp1"), Point(3, 3, "0/3000450", True)]
    by_kind = run_after(commits, points, steps, backup_version=1).targets()

    assert sorted(by_kind) == ["immediate", "lsn", "name", "time", "xid"]
    versions = {(p.target.kind, p.target.value, p.target.inclusive): p.version
                for plans in by_kind.values() for p in plans}
    assert versions[("immediate", "", True)] == 1
    assert versions[("xid", "701", True)] == 2 and versions[("xid", "701", False)] == 1
    assert versions[("time", commits[2].time, True)] == 3 and versions[("time", commits[2].time, False)] == 2
    assert versions[("lsn", "0/3000200", True)] == 2 and versions[("lsn", "0/3000200", False)] == 1
    assert versions[("lsn", "0/3000300", True)] == 2     # the end of the restore point step
    assert versions[("name", "rp1", True)] == 2
    assert not any(p.target.value == "700" for p in by_kind["xid"]), "commits before the backup are no targets"
    assert all(p.target.at_lsn for kind in by_kind if kind != "immediate" for p in by_kind[kind])


def test_a_commit_time_shared_by_two_commits_is_no_time_target():
    same = "2026-01-01 00:00:01.000000+00:00"
    commits = [CommitRecord(1, 0, "700", "0/3000100", same), CommitRecord(2, 1, "701", "0/3000200", same)]
    points = [Point(0, 1, "0/3000150", True), Point(1, 2, "0/3000250", True)]
    steps = [Transaction((Insert(1),)), Transaction((Insert(1),))]
    assert "time" not in run_after(commits, points, steps, backup_version=0).targets()


def test_planned_targets_draw_distinct_kinds_with_their_versions():
    steps = [Transaction((Insert(1),)), RestorePoint()]
    commits = [CommitRecord(1, 0, "700", "0/3000100", "2026-01-01 00:00:01.000000+00:00")]
    points = [Point(0, 1, "0/3000150", True), Point(1, 1, "0/3000200", True, restore_point="rp")]
    run = run_after(commits, points, steps, backup_version=0)

    @settings(database=None, max_examples=100)
    @given(planned_targets(run))
    def check(plans):
        assert 1 <= len(plans) <= 3
        kinds = [plan.target.kind for plan in plans]
        assert len(set(kinds)) == len(kinds)
        for plan in plans:
            assert plan.version == (0 if plan.target.kind == "immediate" or not plan.target.inclusive else 1)
    check()


@settings(database=None, max_examples=100)
@given(histories(max_steps=5, pauses=False))
def test_histories_without_pauses(history):
    assert len(history.steps) <= 5
    assert not any(isinstance(step, Pause) for step in history.steps)
