"""The run history (SQLite): one row per restore, verdicts per server, how long a server has been red,
trends and drifts; a damaged or locked file costs a note, never a verdict; concurrent runs share it."""

import multiprocessing
import sqlite3
from pathlib import Path

import pytest

from harness.config import DrillConfig
from harness.evidence.records import CheckOutcome, DrillRecord, RestoreRecord, RunRecord, TableFacts
from harness.evidence.report_html import render_html
from harness.evidence.run_history import HistoryUnavailable, RunHistory, RunSummary, unverified_servers
from harness.evidence.servers import timestamp
from harness.evidence.trends import drift_flags, server_trends
from harness.plugin.monitoring import history_trends, record_history, write_metrics_file
from harness.plugin.state import RunState

SECRET = "s3cr3t-Pa55word_x"


def restore(*, seconds=3.0, size=40_000_000, passed=True, backup_id="20261127T010000") -> RestoreRecord:
    record = RestoreRecord(backup_id, "2026-11-27 01:00:05+00:00", "xid", "812", True, copy_seconds=seconds,
                           rpo_seconds=2.5, backup_size_bytes=size,
                           tables=[TableFacts("books_db", "public.books", 300, 65536)])
    record.checks += [CheckOutcome("target_reached", True), CheckOutcome("fingerprint", passed, "checksum")]
    return record


def run(ended: str, outcome="passed", *, server="main", seconds=3.0, size=40_000_000, run_id="") -> RunRecord:
    restores = [] if outcome == "error" else [restore(seconds=seconds, size=size, passed=outcome != "failed")]
    drills = [DrillRecord("scenarios/test_x.py::test_restore", outcome, 8.0,
                          f"password={SECRET} rejected" if outcome != "passed" else "", restores,
                          {"barman_server": server, "postgresql_version": "15.14"}),
              DrillRecord("scenarios/test_x.py::test_other", "skipped", 0.0, "not here", [], {})]
    facts = {"stack": "local", "run_ended_utc": ended, "harness_version": "0.2.0", "barman": "3.19.0", "host": "h"}
    return RunRecord({**facts, "run_id": run_id} if run_id else facts, drills)


def rows(path: Path, sql: str) -> list[tuple]:
    with sqlite3.connect(path) as con:
        return con.execute(sql).fetchall()


def test_one_row_per_restore_with_what_a_dba_asks_of_it(tmp_path):
    history = RunHistory(tmp_path / "history.sqlite")
    run_id = history.append(run("2026-11-27T02:00:00+00:00", "failed"), secrets=[SECRET])
    [row] = rows(history.path, "SELECT run_id, run_utc, server, stack, outcome, cause, backup_id, target, rto_seconds,"
                               " rpo_seconds, backup_size_bytes, restored_bytes, failed_checks, postgresql_version,"
                               " barman_version, harness_version FROM drills")
    assert row == (run_id, "2026-11-27T02:00:00Z", "main", "local", "failed", "password=******** rejected",
                   "20261127T010000", "xid 812", 3.0, 2.5, 40_000_000, 65536, "fingerprint", "15.14", "3.19.0", "0.2.0")
    assert rows(history.path, "SELECT server, verdict, passed, failed FROM runs") == [("main", "failed", 0, 1)]


def test_a_drill_without_restore_still_has_its_row_and_recording_again_replaces(tmp_path):
    history = RunHistory(tmp_path / "history.sqlite")
    record = run("2026-11-27T02:00:00+00:00", "error", run_id="r1")
    history.append(record)
    history.append(record)
    assert rows(history.path, "SELECT restore, outcome, backup_id FROM drills") == [(0, "error", None)]
    assert rows(history.path, "SELECT verdict FROM runs") == [("no verdict",)]


def test_since_when_a_server_is_red(tmp_path):
    history = RunHistory(tmp_path / "history.sqlite")
    for day, outcome in [(25, "failed"), (26, "passed"), (27, "error"), (28, "failed"), (29, "failed")]:
        history.append(run(f"2026-11-{day}T02:00:00+00:00", outcome))
    streak = history.red_streak("main", "local")
    assert (streak.runs, streak.since, streak.last_verified) == (3, timestamp("2026-11-27T02:00:00+00:00"),
                                                                 timestamp("2026-11-26T02:00:00+00:00"))
    latest = run("2026-11-29T02:00:00+00:00", "failed")
    assert unverified_servers(history, latest) == [
        "server main red since 2026-11-27T02:00:00Z (3 runs not verified; last verified 2026-11-26T02:00:00Z)"]
    history.append(run("2026-11-30T02:00:00+00:00", "passed"))
    assert history.red_streak("main", "local") is None


def test_a_damaged_file_is_named_and_left_as_it_is(tmp_path):
    path = tmp_path / "history.sqlite"
    garbage = b"\x13\x37not a database at all\x00" * 300
    path.write_bytes(garbage)
    with pytest.raises(HistoryUnavailable, match="could not be written") as error:
        RunHistory(path).append(run("2026-11-27T02:00:00+00:00"))
    assert str(path) in error.value.cause and "verdict stands" in error.value.render()
    with pytest.raises(HistoryUnavailable, match="could not be read"):
        RunHistory(path).recent("main", "local")
    assert path.read_bytes() == garbage


def test_a_locked_file_costs_a_note_and_the_run_goes_on(tmp_path):
    path = tmp_path / "history.sqlite"
    RunHistory(path).append(run("2026-11-26T02:00:00+00:00"))
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")
    try:
        state = RunState(record=run("2026-11-27T02:00:00+00:00"))
        drill = DrillConfig(reports_dir=tmp_path, history=path, metrics_file=tmp_path / "pgbv.prom")
        history = record_history(state, drill, timeout=0.3)
        assert history is None
        assert state.record.facts["run_history"].startswith("not recorded: ")
        assert "locked" in state.record.facts["run_history"]
        assert any("NOT RECORDED (the verdict stands)" in note for note in state.notes)
        assert write_metrics_file(state, drill, history) == [tmp_path / "pgbv.prom"]   # the metrics still are
        assert history_trends(state, history) is None
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert len(RunHistory(path).recent("main", "local")) == 1    # nothing half-written


def test_a_damaged_file_through_the_plugin_leaves_a_fact_and_a_page_without_trends(tmp_path):
    path = tmp_path / "history.sqlite"
    path.write_bytes(b"garbage" * 1000)
    state = RunState(record=run("2026-11-27T02:00:00+00:00"))
    assert record_history(state, DrillConfig(reports_dir=tmp_path, history=path)) is None
    page = render_html(state.record, history_trends(state, None))
    assert "No trends to show (run history: not recorded: The run history" in page
    assert "file is not a database" in page


def _append_many(path: str, worker: int) -> None:
    history = RunHistory(Path(path), timeout=30)
    for index in range(5):
        history.append(run(f"2026-11-27T02:{worker:02d}:{index:02d}+00:00", server=f"server{worker}"))


def test_concurrent_runs_do_not_corrupt_it(tmp_path):
    path = tmp_path / "history.sqlite"
    context = multiprocessing.get_context("fork")
    workers = [context.Process(target=_append_many, args=(str(path), worker)) for worker in range(4)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(60)
    assert [worker.exitcode for worker in workers] == [0, 0, 0, 0]
    assert rows(path, "PRAGMA integrity_check") == [("ok",)]
    assert rows(path, "SELECT COUNT(*) FROM runs") == [(20,)]
    assert rows(path, "SELECT COUNT(*) FROM drills") == [(20,)]


def summary(rto=None, size=None, verdict="verified") -> RunSummary:
    return RunSummary("r", 0.0, verdict, 1, 0, 0, 0, rto, 1.0, "b", size)


def test_drift_needs_three_earlier_points_and_twice_their_median():
    assert drift_flags([summary(2.0), summary(2.0), summary(9.0)])[-1] == []       # two points: no call
    assert drift_flags([summary(2.0), summary(3.0), summary(2.0), summary(3.9)])[-1] == []   # under 2x
    flags = drift_flags([summary(2.0), summary(3.0), summary(2.0), summary(6.0)])
    assert flags[-1] == ["restore time 6.0 s is 3.0x the median 2.0 s of the 3 runs before"]


def test_a_backup_size_jump_either_way_is_flagged():
    sizes = [summary(size=100 << 20) for _ in range(3)]
    assert drift_flags(sizes + [summary(size=120 << 20)])[-1] == []
    assert "backup size jumped to 160.0 MiB (1.60x" in drift_flags(sizes + [summary(size=160 << 20)])[-1][0]
    assert "(0.40x the median 100.0 MiB" in drift_flags(sizes + [summary(size=40 << 20)])[-1][0]


def test_the_page_shows_each_servers_last_runs_and_its_drift(tmp_path):
    history = RunHistory(tmp_path / "history.sqlite")
    for day in range(20, 26):
        history.append(run(f"2026-11-{day}T02:00:00+00:00", server="main"))
    latest = run("2026-11-26T02:00:00+00:00", "failed", seconds=30.0)
    history.append(latest)
    [trend] = server_trends(history, latest)
    assert [row["verdict"] for row in trend.rows] == ["verified"] * 6 + ["failed"]
    assert trend.drifts == ["restore time 30.0 s is 10.0x the median 3.0 s of the 6 runs before"]
    page = render_html(latest, [trend])
    assert "Barman server main (stack local): last 7 runs" in page
    assert "DRIFT: restore time 30.0 s" in page and "<polyline" in page
    assert page.count("<tr data-verdict=") == 7
