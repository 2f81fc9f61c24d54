"""Prometheus metrics per Barman server: parsed back with prometheus_client's own parser; a red or
no-verdict run never moves the last-success gauge; counters only grow; other servers are kept."""

from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from harness.evidence.metrics import MetricsNotWritten, write_metrics
from harness.evidence.records import CheckOutcome, DrillRecord, RestoreRecord, RunRecord
from harness.evidence.run_history import RunHistory
from harness.evidence.servers import timestamp

BACKUP_END = "2026-11-27 01:00:05.5+00:00"
ALLOWED_LABELS = {"server", "stack", "outcome", "check", "backup_id", "harness", "postgresql", "barman"}


def restore(backup_id="20261127T010000", end=BACKUP_END, *, failed_check="", seconds=4.0, rpo=7.5) -> RestoreRecord:
    record = RestoreRecord(backup_id, end, "latest", "latest", True, copy_seconds=seconds, rpo_seconds=rpo,
                           backup_size_bytes=50_000_000)
    for name in ("verify_backup", "wal_continuity", "target_reached", "fingerprint"):
        record.checks.append(CheckOutcome(name, name != failed_check, "detail"))
    return record


def drill(outcome="passed", server="main", **restore_args) -> DrillRecord:
    failed_check = "fingerprint" if outcome == "failed" else ""
    restores = [] if outcome == "error" else [restore(failed_check=failed_check, **restore_args)]
    reason = {"failed": "Backup 20261127T010000 does not hold what the source held",
              "error": "no room"}.get(outcome, "")
    return DrillRecord(f"scenarios/test_x.py::test_{outcome}[{server}]", outcome, 9.0, reason, restores,
                       {"barman_server": server, "postgresql_version": "15.14"})


def run(ended: str, *drills: DrillRecord, run_id: str = "") -> RunRecord:
    facts = {"stack": "existing", "run_ended_utc": ended, "harness_version": "0.2.0", "barman": "3.19.0"}
    if run_id:
        facts["run_id"] = run_id
    return RunRecord(facts, list(drills))


def parsed(path: Path) -> dict:
    """{(sample name, frozenset of labels): value}, read with prometheus_client's parser."""
    samples = {}
    for family in text_string_to_metric_families(path.read_text()):
        for sample in family.samples:
            samples[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return samples


def value(samples: dict, name: str, server: str = "main", **labels) -> float:
    return samples[(name, frozenset({"server": server, "stack": "existing", **labels}.items()))]


def test_file_parses_back_with_every_metric_per_server(tmp_path):
    path = tmp_path / "pgbv.prom"
    record = run("2026-11-27T02:00:00+00:00", drill("passed"), drill("passed", server="reports"))
    assert write_metrics(record, path) == []
    samples = parsed(path)
    ended = timestamp("2026-11-27T02:00:00+00:00")
    for server in ("main", "reports"):
        assert value(samples, "pgbv_last_run_timestamp_seconds", server) == ended
        assert value(samples, "pgbv_last_success_timestamp_seconds", server) == ended
        assert value(samples, "pgbv_last_run_verified", server) == 1
        assert value(samples, "pgbv_verified_backup_info", server, backup_id="20261127T010000") == 1
        assert value(samples, "pgbv_verified_backup_end_timestamp_seconds", server) == timestamp(BACKUP_END)
        assert value(samples, "pgbv_last_rto_seconds", server) == 4.0
        assert value(samples, "pgbv_last_rpo_seconds", server) == 7.5
        assert value(samples, "pgbv_last_run_failed_checks", server, check="fingerprint") == 0
        assert value(samples, "pgbv_drills_total", server, outcome="passed") == 1
        assert value(samples, "pgbv_drills_total", server, outcome="failed") == 0
        assert value(samples, "pgbv_versions_info", server, harness="0.2.0", postgresql="15.14", barman="3.19.0") == 1
    assert {name for name, _ in samples} == {
        "pgbv_last_run_timestamp_seconds", "pgbv_last_run_verified", "pgbv_last_run_drills",
        "pgbv_last_success_timestamp_seconds", "pgbv_verified_backup_info",
        "pgbv_verified_backup_end_timestamp_seconds", "pgbv_last_rto_seconds", "pgbv_last_rpo_seconds",
        "pgbv_last_run_failed_checks", "pgbv_drills_total", "pgbv_versions_info"}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["pgbv.prom", "pgbv.prom.lock"]  # no temporary file left


def test_labels_are_bounded_and_carry_no_test_ids_or_causes(tmp_path):
    path = tmp_path / "pgbv.prom"
    write_metrics(run("2026-11-27T02:00:00+00:00", drill("failed"), drill("error")), path)
    labels = {name for _, pairs in parsed(path) for name, _ in pairs}
    assert labels <= ALLOWED_LABELS
    text = path.read_text()
    assert "test_failed" not in text and "does not hold" not in text and "no room" not in text


@pytest.mark.parametrize("outcome", ["failed", "error"])
def test_a_red_or_no_verdict_run_does_not_move_the_last_success(tmp_path, outcome):
    path = tmp_path / "pgbv.prom"
    write_metrics(run("2026-11-27T02:00:00+00:00", drill("passed")), path)
    write_metrics(run("2026-11-28T02:00:00+00:00", drill("passed", backup_id="20261128T010000"), drill(outcome)),
                  path)
    samples = parsed(path)
    assert value(samples, "pgbv_last_success_timestamp_seconds") == timestamp("2026-11-27T02:00:00+00:00")
    assert value(samples, "pgbv_last_run_timestamp_seconds") == timestamp("2026-11-28T02:00:00+00:00")
    assert value(samples, "pgbv_last_run_verified") == 0
    assert value(samples, "pgbv_verified_backup_info", backup_id="20261127T010000") == 1  # not the newer backup
    assert value(samples, "pgbv_last_run_drills", outcome=outcome) == 1
    if outcome == "failed":
        assert value(samples, "pgbv_last_run_failed_checks", check="fingerprint") == 1


def test_a_server_never_verified_has_a_last_success_of_zero(tmp_path):
    path = tmp_path / "pgbv.prom"
    write_metrics(run("2026-11-27T02:00:00+00:00", drill("failed")), path)
    samples = parsed(path)
    assert value(samples, "pgbv_last_success_timestamp_seconds") == 0   # stale since 1970: the alert fires
    assert not [name for name, _ in samples if name == "pgbv_verified_backup_info"]


def test_counters_only_grow_across_runs(tmp_path):
    path = tmp_path / "pgbv.prom"
    outcomes = [("passed", "passed"), ("failed",), ("passed", "error"), ("passed",)]
    seen = []
    for day, today in enumerate(outcomes, start=1):
        write_metrics(run(f"2026-11-{day:02d}T02:00:00+00:00", *(drill(o) for o in today)), path)
        samples = parsed(path)
        seen.append({o: value(samples, "pgbv_drills_total", outcome=o) for o in ("passed", "failed", "error")})
    assert seen[-1] == {"passed": 4, "failed": 1, "error": 1}
    for before, after in zip(seen, seen[1:], strict=False):
        assert all(after[o] >= before[o] for o in before), seen


def test_servers_of_other_runs_are_kept_as_they_were(tmp_path):
    path = tmp_path / "pgbv.prom"
    write_metrics(run("2026-11-27T02:00:00+00:00", drill("passed", server="main")), path)
    write_metrics(run("2026-11-27T03:00:00+00:00", drill("failed", server="reports")), path)
    samples = parsed(path)
    assert value(samples, "pgbv_last_success_timestamp_seconds", "main") == timestamp("2026-11-27T02:00:00+00:00")
    assert value(samples, "pgbv_last_run_timestamp_seconds", "main") == timestamp("2026-11-27T02:00:00+00:00")
    assert value(samples, "pgbv_last_run_verified", "reports") == 0
    assert value(samples, "pgbv_drills_total", "main", outcome="passed") == 1


def test_a_lost_file_takes_the_last_success_and_counters_from_the_history(tmp_path):
    path, history = tmp_path / "pgbv.prom", RunHistory(tmp_path / "history.sqlite")
    green = run("2026-11-27T02:00:00+00:00", drill("passed"), drill("passed"), run_id="green")
    history.append(green)
    write_metrics(green, path, history)
    path.unlink()
    red = run("2026-11-28T02:00:00+00:00", drill("failed"), run_id="red")
    history.append(red)                               # the history already holds the run being written
    write_metrics(red, path, history)
    samples = parsed(path)
    assert value(samples, "pgbv_last_success_timestamp_seconds") == timestamp("2026-11-27T02:00:00+00:00")
    assert value(samples, "pgbv_verified_backup_info", backup_id="20261127T010000") == 1
    assert value(samples, "pgbv_drills_total", outcome="passed") == 2
    assert value(samples, "pgbv_drills_total", outcome="failed") == 1   # this run counted once


def test_a_damaged_history_or_previous_file_costs_only_a_note(tmp_path):
    path, damaged = tmp_path / "pgbv.prom", tmp_path / "history.sqlite"
    damaged.write_bytes(b"\x00garbage\xff" * 100)
    path.write_text("pgbv_drills_total{server=\"main\" 12\n")
    notes = write_metrics(run("2026-11-27T02:00:00+00:00", drill("passed")), path, RunHistory(damaged, timeout=0.2))
    assert any("could not be parsed" in note for note in notes), notes
    assert any("run history was not read" in note for note in notes), notes
    assert value(parsed(path), "pgbv_last_run_verified") == 1


def test_an_unwritable_place_is_one_clear_error(tmp_path):
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("")
    with pytest.raises(MetricsNotWritten, match="could not be written") as error:
        write_metrics(run("2026-11-27T02:00:00+00:00", drill("passed")), blocker / "pgbv.prom")
    assert "verdict stands" in error.value.render()
