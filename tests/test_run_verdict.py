"""The run's verdict as evidence and monitoring tell it: a run stopped early, a drill of no known server
or a bug of the harness itself is never a green; a monitoring step that breaks costs a note, never the
verdict or the JSON and HTML; two runs ending in one second keep their own evidence files.

Inner runs use the installed plugin with a stand-in stack (no PostgreSQL needed): what is checked is
the plugin's bookkeeping, from pytest's own hooks to the files it writes.
"""

import json
import os
import sqlite3
import subprocess
import sys
import types
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from harness.cli.merge import newest
from harness.config import DrillConfig
from harness.evidence.metrics import write_metrics
from harness.evidence.records import DrillRecord, RunRecord
from harness.evidence.run_history import RunHistory
from harness.evidence.servers import FAILED, NO_VERDICT, VERIFIED, server_runs
from harness.plugin import reporting
from harness.plugin.parallel import Controller
from harness.plugin.state import CONFIG, RUN, RunState

ENDED = "2026-11-27T02:00:00+00:00"

STAND_IN_STACK = '''
import types
import pytest

@pytest.fixture(scope="session")
def stack():
    barman = types.SimpleNamespace(server="source")
    return types.SimpleNamespace(barman=barman, versions=lambda: {"postgresql": "15.14"})
'''


def drill(outcome="passed", server="main") -> DrillRecord:
    return DrillRecord(f"scenarios/test_x.py::test_{outcome}[{server}]", outcome, 1.0, "",
                       facts={"barman_server": server} if server else {})


def run(*drills: DrillRecord, **facts) -> RunRecord:
    return RunRecord({"stack": "local", "run_ended_utc": ENDED, **facts}, list(drills))


def samples(path: Path) -> dict:
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(path.read_text()) for s in family.samples}


def last_success(path: Path, server: str = "source") -> float:
    [found] = [value for (name, labels), value in samples(path).items()
               if name == "pgbv_last_success_timestamp_seconds" and ("server", server) in labels]
    return found


def inner_run(tmp_path: Path, files: dict[str, str], *args: str, nightly: bool = False):
    """pytest (or pgbv-nightly) on ``files`` in a project of their own; returns (exit code, output, reports)."""
    project = tmp_path / "project"
    project.mkdir()
    (project / "pytest.ini").write_text("[pytest]\n")
    (project / "conftest.py").write_text(STAND_IN_STACK)
    for name, text in files.items():
        (project / name).write_text(text)
    reports = tmp_path / "reports"
    runner = ["-m", "harness.cli.nightly"] if nightly else ["-m", "pytest"]
    argv = [sys.executable, *runner, "-p", "no:cacheprovider", "--rootdir", str(project), "-c",
            str(project / "pytest.ini"), "--reports-dir", str(reports), "--metrics-file", str(tmp_path / "pgbv.prom"),
            *args, str(project)]
    env = {key: value for key, value in os.environ.items() if key != "CI"}
    done = subprocess.run(argv, cwd=project, env=env, capture_output=True, text=True, timeout=120,
                          stdin=subprocess.DEVNULL)
    return done.returncode, done.stdout + done.stderr, reports


def evidence(reports: Path) -> dict:
    [path] = reports.glob("drill-*.json")
    return json.loads(path.read_text())


def verdicts(reports: Path) -> list[tuple]:
    with sqlite3.connect(reports / "history.sqlite") as con:
        return con.execute("SELECT server, verdict FROM runs").fetchall()


def fake_session(tmp_path: Path, record: RunRecord, exitstatus=0, **session):
    config = types.SimpleNamespace(stash=pytest.Stash(), getoption=lambda name, default=None: default)
    config.stash[CONFIG] = DrillConfig(reports_dir=tmp_path / "reports", metrics_file=tmp_path / "pgbv.prom")
    config.stash[RUN] = RunState(record=record)
    values = {"shouldstop": False, "shouldfail": False, **session}
    return types.SimpleNamespace(config=config, exitstatus=exitstatus, **values)


# --- F1: a run stopped early is no verdict ---------------------------------------------------------

def test_an_interrupted_run_is_no_verdict_for_every_server_and_a_red_stays_red():
    record = run(drill("passed", "main"), drill("passed", "reports"), drill("failed", "red"),
                 run_interrupted="KeyboardInterrupt: signal 15")
    assert not record.verified
    assert "stopped before every drill ran (KeyboardInterrupt: signal 15)" in record.summary_line()
    assert {group.server: group.verdict for group in server_runs(record)} == {
        "main": NO_VERDICT, "reports": NO_VERDICT, "red": FAILED}


def test_sigterm_during_a_drill_moves_no_gauge_and_is_saved_as_no_verdict(tmp_path):
    drills = '''
import os, signal, time

def test_first_drill(stack):
    pass

def test_second_drill(stack):
    os.kill(os.getpid(), signal.SIGTERM)   # as CI ends a job
    time.sleep(30)
'''
    code, output, reports = inner_run(tmp_path, {"test_drills.py": drills}, nightly=True)
    assert code == 2, output
    last_line = output.strip().splitlines()[-1]
    assert last_line.startswith("nightly: NO VERDICT") and "signal 15" in last_line, last_line
    document = evidence(reports)
    assert "signal 15" in document["run"]["run_interrupted"]
    assert not document["summary"].startswith("VERIFIED")
    assert last_success(tmp_path / "pgbv.prom") == 0      # the finished drill moved nothing
    assert verdicts(reports) == [("source", NO_VERDICT)]


def test_a_run_stopped_by_maxfail_is_not_verified(tmp_path):
    session = fake_session(tmp_path, run(drill("passed", "source")), exitstatus=1,
                           shouldfail="stopping after 1 failures")
    reporting.pytest_sessionfinish(session, 1)
    record = session.config.stash[RUN].record
    assert record.facts["run_interrupted"] == "stopping after 1 failures"
    assert not record.verified and last_success(tmp_path / "pgbv.prom") == 0


@pytest.mark.parametrize("exitstatus", [pytest.ExitCode.INTERRUPTED, pytest.ExitCode.INTERNAL_ERROR,
                                        pytest.ExitCode.USAGE_ERROR])
def test_an_interrupted_internal_or_usage_error_exit_is_no_verdict(tmp_path, exitstatus):
    session = fake_session(tmp_path, run(drill("passed", "source")), exitstatus=exitstatus)
    reporting.pytest_sessionfinish(session, exitstatus)
    assert exitstatus.name in session.config.stash[RUN].record.facts["run_interrupted"]
    assert last_success(tmp_path / "pgbv.prom") == 0


def test_a_run_that_ran_everything_still_moves_the_gauge(tmp_path):
    session = fake_session(tmp_path, run(drill("passed", "source")))
    reporting.pytest_sessionfinish(session, 0)
    assert "run_interrupted" not in session.config.stash[RUN].record.facts
    assert last_success(tmp_path / "pgbv.prom") > 0


# --- F2: a drill of no known server ----------------------------------------------------------------

def test_a_drill_of_no_known_server_leaves_every_server_without_a_verdict():
    groups = {group.server: group.verdict for group in server_runs(run(drill("passed", "main"), drill("error", ""),
                                                                       drill("failed", "red")))}
    assert groups == {"main": NO_VERDICT, "unknown": NO_VERDICT, "red": FAILED}
    skipped_only = run(drill("passed", "main"), drill("skipped", ""))   # touched no server
    assert [group.verdict for group in server_runs(skipped_only)] == [VERIFIED]


def test_a_drill_whose_stack_failed_is_counted_on_the_configured_server(tmp_path):
    broken = '''
import pytest

@pytest.fixture(scope="module")
def stack():
    raise OSError(28, "No space left on device")

def test_drill_on_a_broken_stack(stack):
    pass
'''
    code, output, reports = inner_run(tmp_path, {"test_a_fine.py": "def test_fine_drill(stack):\n    pass\n",
                                                 "test_b_broken.py": broken})
    outcomes = {d["nodeid"].split("::")[1]: (d["outcome"], d["properties"].get("barman_server"))
                for d in evidence(reports)["drills"]}
    assert outcomes == {"test_fine_drill": ("passed", "source"), "test_drill_on_a_broken_stack": ("error", "source")}
    assert verdicts(reports) == [("source", NO_VERDICT)]
    assert last_success(tmp_path / "pgbv.prom") == 0


def test_a_dead_workers_drill_is_counted_on_its_server():
    def crashed(nodeid):
        return types.SimpleNamespace(when="???", failed=True, nodeid=nodeid, longreprtext="worker 'gw0' crashed",
                                     node=types.SimpleNamespace(gateway=types.SimpleNamespace(id="gw0")))

    from harness.plugin.existing import PLAN
    for drill_config, nodeid, server in (
            (DrillConfig(), "scenarios/test_pitr.py::test_pitr[lsn]", "source"),
            (DrillConfig(stack="compose", barman_server="pg15"), "scenarios/test_pitr.py::test_pitr", "pg15"),
            (DrillConfig(stack="existing"), "existing_drills.py::test_restore[main-20261127T010000]", "main")):
        config = types.SimpleNamespace(stash=pytest.Stash())
        config.stash[CONFIG], config.stash[RUN] = drill_config, RunState()
        config.stash[PLAN] = [("main", "20261127T010000")]
        Controller(config).pytest_runtest_logreport(crashed(nodeid))
        [recorded] = config.stash[RUN].record.drills
        assert (recorded.outcome, recorded.facts.get("barman_server")) == ("error", server)


# --- D1: monitoring never costs a verdict or the evidence ------------------------------------------

def test_a_previous_metrics_sample_missing_a_label_is_left_out_with_a_note(tmp_path):
    path = tmp_path / "pgbv.prom"
    path.write_text('pgbv_drills_total{server="a",stack="b"} 3\n'
                    'pgbv_last_success_timestamp_seconds{server="a",stack="b"} 1700000000\n')
    notes = write_metrics(run(drill("failed", "main")), path)
    assert any("left out" in note for note in notes), notes
    assert samples(path)[("pgbv_last_success_timestamp_seconds", (("server", "a"), ("stack", "b")))] == 1700000000


@pytest.mark.parametrize("broken, fact", [("harness.plugin.monitoring.write_metrics", "metrics_file"),
                                          ("harness.plugin.monitoring.RunHistory.append", "run_history"),
                                          ("harness.plugin.monitoring.server_trends", None)])
def test_a_monitoring_step_that_breaks_costs_a_note_not_the_verdict_or_the_evidence(tmp_path, monkeypatch,
                                                                                    broken, fact):
    def fails(*args, **kwargs):
        raise KeyError("outcome")

    monkeypatch.setattr(broken, fails)
    session = fake_session(tmp_path, run(drill("failed", "source")), exitstatus=1)
    reporting.pytest_sessionfinish(session, 1)
    state = session.config.stash[RUN]
    assert session.exitstatus == 1                       # still red
    assert sorted(path.suffix for path in (tmp_path / "reports").glob("drill-*")) == [".html", ".json"]
    assert any("KeyError" in note and "verdict stands" in note for note in state.notes), state.notes
    if fact:
        assert "KeyError" in state.record.facts[fact]


def test_nightly_still_tells_a_red_when_the_history_breaks_while_naming_red_servers(monkeypatch):
    from harness.cli import nightly

    def fails(*args):
        raise KeyError("verdict")

    monkeypatch.setattr(nightly, "unverified_servers", fails)
    config = types.SimpleNamespace(stash=pytest.Stash())
    config.stash[RUN] = RunState(record=run(drill("failed", "main")), history=RunHistory(Path("unused.sqlite")))
    verdict = nightly._Verdict()
    verdict.pytest_sessionfinish(types.SimpleNamespace(config=config))
    assert verdict.summary.startswith("NOT VERIFIED") and "KeyError" in verdict.unverified[0]


def test_the_merge_writes_its_reports_when_its_metrics_step_breaks(monkeypatch, tmp_path, capsys):
    from harness.cli.merge import write_merged_metrics
    from harness.evidence.merge import Part, merge_runs

    def fails(*args):
        raise KeyError("outcome")

    monkeypatch.setattr("harness.evidence.metrics.write_metrics", fails)
    merged = merge_runs([Part("s1", run(drill("passed", "main")))])
    assert write_merged_metrics(merged, tmp_path / "pgbv.prom") == []
    assert "metrics NOT WRITTEN (the verdict stands)" in capsys.readouterr().out and merged.exit_code == 0


# --- R3: evidence files of runs ending in one second -----------------------------------------------

def test_two_runs_ending_in_one_second_keep_their_own_evidence(tmp_path, monkeypatch):
    monkeypatch.setattr("harness.evidence.files.utc_stamp", lambda moment=None: "20261127T020000Z")
    monkeypatch.setattr("harness.plugin.reporting.utc_stamp", lambda moment=None: "20261127T020000Z", raising=False)
    for outcome in ("passed", "failed"):
        reporting.pytest_sessionfinish(fake_session(tmp_path, run(drill(outcome, "source"))), 0)
    names = sorted(path.name for path in (tmp_path / "reports").glob("drill-*"))
    assert len(names) == 4 and all(name.startswith("drill-20261127T020000Z-") for name in names), names
    run_ids = {json.loads(path.read_text())["run"]["run_id"][:8] for path in (tmp_path / "reports").glob("*.json")}
    assert {name.rsplit("-", 1)[1].split(".")[0] for name in names} == run_ids


def test_the_merge_reads_a_shards_newest_evidence_within_one_second(tmp_path):
    older, newer = tmp_path / "drill-20261127T020000Z-ffffffff.json", tmp_path / "drill-20261127T020000Z-00000000.json"
    for age, path in ((100, older), (0, newer)):
        path.write_text("{}")
        os.utime(path, (path.stat().st_atime - age, path.stat().st_mtime - age))
    (tmp_path / "drill-20261126T020000Z-99999999.json").write_text("{}")
    assert newest(tmp_path, "drill-*.json") == newer


# --- I1: a bug of the harness is no verdict --------------------------------------------------------

def test_python_errors_of_the_harness_are_told_from_findings():
    import psycopg

    from harness.errors import VerificationFailed
    from harness.plugin.reporting import harness_bug
    for error, named in ((TypeError("unsupported operand"), "TypeError: unsupported operand"),
                         (AttributeError("no attribute 'x'"), "AttributeError: no attribute 'x'"),
                         (NameError("name 'x'"), "NameError: name 'x'"), (ImportError("no 'x'"), "ImportError: no 'x'"),
                         (ExceptionGroup("two", [TypeError("a"), NameError("b")]), "TypeError: a; NameError: b")):
        assert named in harness_bug(error) and "bug of pgbv" in harness_bug(error)
    for finding in (AssertionError("checksums differ"), VerificationFailed("does not hold what the source held"),
                    psycopg.errors.DataCorrupted("invalid page"), ExceptionGroup("two", [TypeError("a"),
                                                                                        AssertionError("b")])):
        assert harness_bug(finding) == ""


def test_a_harness_bug_in_a_drill_is_no_verdict_and_says_so(tmp_path):
    drills = '''
import psycopg

def test_harness_bug(stack):
    stack.barman.no_such_method()

def test_backup_red(stack):
    assert "restored" == "source", "the restore does not hold what the source held"

def test_database_red(stack):
    raise psycopg.errors.DataCorrupted("invalid page in block 0 of relation base/5/16384")
'''
    code, output, reports = inner_run(tmp_path, {"test_drills.py": drills})
    assert code == 1, output                             # the reds stay red
    drills_by_name = {d["nodeid"].split("::")[1]: d for d in evidence(reports)["drills"]}
    assert {name: d["outcome"] for name, d in drills_by_name.items()} == {
        "test_harness_bug": "error", "test_backup_red": "failed", "test_database_red": "failed"}
    reason = drills_by_name["test_harness_bug"]["reason"]
    assert "harness itself failed" in reason and "AttributeError" in reason, reason

    (tmp_path / "project").rename(tmp_path / "first")
    (tmp_path / "reports").rename(tmp_path / "first-reports")
    code, output, _ = inner_run(tmp_path, {"test_drills.py": drills}, "-k", "harness_bug")
    assert code == 2, output                             # nothing red: no verdict
