"""Folding runs into one: JSON read back, shards merged by pgbv-merge (no stack needed: evidence files made
here), the facts of several xdist workers."""

import subprocess
import sys
from pathlib import Path

import pytest
from junitparser import Failure as JUnitFailure
from junitparser import JUnitXml, TestCase, TestSuite

from harness.cli.merge import main as merge_main
from harness.evidence.junit_merge import junit_address
from harness.evidence.merge import Part, merge_facts, merge_runs
from harness.evidence.read_json import EvidenceUnreadable, read_run
from harness.evidence.records import CheckOutcome, DrillRecord, RestoreRecord, RunRecord, TableFacts
from harness.evidence.report_json import write_json
from harness.shards import drills_digest

ROOT = Path(__file__).resolve().parent.parent


def drill(name: str, outcome: str = "passed", server: str = "main") -> DrillRecord:
    restore = RestoreRecord("20261130T010000", "2026-11-30 01:00:00+00", "latest", "latest", True,
                            checks=[CheckOutcome("amcheck", True, "clean"), CheckOutcome("fingerprint", True)],
                            timeline=2, combined_backups=("a", "b"), copy_seconds=1.5, rpo_seconds=3.25,
                            tables=[TableFacts("books_db", "public.books", 10, 8192)], overrides=["port: 1 -> 2"])
    return DrillRecord(f"scenarios/test_x.py::test_drill[{name}]", outcome, 2.0, "" if outcome == "passed" else "why",
                       [restore], {"barman_server": server, "data_seed": "7"})


def shard(index: int, count: int, drills: list[DrillRecord], plan: str = "p1", host: str = "a",
          run: str | None = "night-1", dealt: list[DrillRecord] | None = None, day: str = "30") -> RunRecord:
    """A shard's record as the plugin writes it: dealt ``drills`` (else ``dealt``), of the run key ``run``."""
    dealt_ids = [d.nodeid for d in (drills if dealt is None else dealt)]
    facts = {"shard": f"{index}/{count}", "shard_plan": plan, "host": host, "stack": "local",
             "run_started_utc": f"2026-11-{day}T01:0{index}:00+00:00",
             "run_ended_utc": f"2026-11-{day}T01:1{index}:00+00:00", "run_id": f"r{index}",
             "shard_drills": str(len(dealt_ids)), "shard_drills_digest": drills_digest(dealt_ids)}
    return RunRecord({**facts, "shard_run": run} if run else facts, drills, [])


def test_json_evidence_reads_back_into_the_same_records(tmp_path):
    run = RunRecord({"host": "a", "stack": "local"}, [drill("one"), drill("two", "failed")], ["reports/kept/x"])
    assert read_run(write_json(run, tmp_path / "drill.json", [])) == run


def test_unreadable_json_says_which_file_and_why(tmp_path):
    (tmp_path / "cut.json").write_text('{"run": {}, "drills": [{"nodeid": ')
    with pytest.raises(EvidenceUnreadable) as failed:
        read_run(tmp_path / "cut.json")
    assert str(tmp_path / "cut.json") in failed.value.render() and "not a run's JSON evidence" in failed.value.render()


def test_complete_shards_merge_into_one_verified_run():
    merged = merge_runs([Part("s1", shard(1, 2, [drill("a")], host="a")),
                         Part("s2", shard(2, 2, [drill("b")], host="b"))])
    assert merged.problems == [] and merged.exit_code == 0
    facts = merged.record.facts
    assert facts["shards"] == "1/2, 2/2" and facts["host"] == "a, b" and "shard" not in facts
    assert facts["run_started_utc"] == "2026-11-30T01:01:00+00:00"
    assert facts["run_ended_utc"] == "2026-11-30T01:12:00+00:00"
    assert facts["run_id"] not in ("r1", "r2") and facts["shard_run"] == "night-1"


@pytest.mark.parametrize("parts, says", [
    ([Part("s1", shard(1, 3, [drill("a")])), Part("s3", shard(3, 3, [drill("c")]))], "shard 2/3: missing"),
    ([Part("s1", shard(1, 2, [drill("a")])), Part("s2", None, "no drill-*.json in s2")], "s2: unreadable"),
    ([Part("s1", shard(1, 2, [drill("a")])), Part("s2", shard(2, 2, [drill("a")]))],
     "test_drill[a]: reported by shard 1/2 (s1) and again by shard 2/2 (s2)"),
    ([Part("s1", shard(1, 2, [drill("a")])), Part("s2", shard(2, 2, [drill("b")], plan="p2"))],
     "the shards collected different tests"),
    ([Part("s1", shard(1, 2, [drill("a")])), Part("x", shard(2, 3, [drill("b")]))], "shards of different splits"),
    ([Part("s1", shard(1, 1, [drill("a")])), Part("s1", shard(1, 1, [drill("b")]))], "shard 1/1: given twice"),
    # Last night's report of shard 2 left in its directory, tonight's pod lost.
    ([Part("s1", shard(1, 2, [drill("a")], run="night-2")), Part("s2", shard(2, 2, [drill("b")], run="night-1"))],
     "shard runs: the shards are not of one run (run keys, --shard-run: shard 1/2 (s1): night-2; shard 2/2 (s2): "
     "night-1)"),
    ([Part("s1", shard(1, 2, [drill("a")], run="night-2")), Part("s2", shard(2, 2, [drill("b")], run=None))],
     "shard 2/2 (s2): none"),
    ([Part("s1", shard(1, 2, [drill("a")], run=None)), Part("s2", shard(2, 2, [drill("b")], run=None, day="29"))],
     "no shard has a run key (--shard-run), and shard 2/2 (s2) started at 2026-11-29T01:02:00Z, 23h 59m before"),
    # Dealt drills it never reported (its run ended early, a --collect-only run of an older pgbv).
    ([Part("s1", shard(1, 2, [drill("a")])), Part("s2", shard(2, 2, [], dealt=[drill("b"), drill("c")]))],
     "shard 2/2 (s2): it was dealt 2 drill(s) but its report holds 0: 2 drill(s) of it have no verdict"),
    ([Part("s1", shard(1, 2, [drill("a")])), Part("s2", shard(2, 2, [drill("c")], dealt=[drill("b")]))],
     "shard 2/2 (s2): its report holds 1 drill(s), not the 1 it was dealt"),
    ([Part("s1", shard(1, 2, [drill("a")])),
      Part("s2", RunRecord({k: v for k, v in shard(2, 2, [drill("b")]).facts.items() if k != "shard_drills"},
                           [drill("b")]))], "shard 2/2 (s2): its report does not say which drills it was dealt"),
])
def test_a_merge_that_is_not_the_whole_has_no_verdict(parts, says):
    merged = merge_runs(parts)
    assert any(says in problem for problem in merged.problems), merged.problems
    assert merged.exit_code == 2 and not merged.record.verified
    assert any(d.nodeid.startswith("merge: ") and d.outcome == "error" for d in merged.record.drills)


def test_shards_without_run_keys_are_one_run_when_they_started_close_together():
    merged = merge_runs([Part("s1", shard(1, 2, [drill("a")], run=None)),
                         Part("s2", shard(2, 2, [drill("b")], run=None))])
    assert merged.problems == [] and merged.exit_code == 0
    assert merged.notes == ["no shard has a run key (--shard-run): taken for one run because they started within "
                            "1m 00s of each other (--max-spread 6h 00m)"]
    far = merge_runs([Part("s1", shard(1, 2, [drill("a")], run=None)), Part("s2", shard(2, 2, [drill("b")], run=None))],
                     max_spread=30)
    assert far.exit_code == 2 and "more than --max-spread 30s" in far.problems[0]


def test_the_run_key_given_to_the_merge_must_be_every_shards():
    parts = [Part("s1", shard(1, 2, [drill("a")])), Part("s2", shard(2, 2, [drill("b")]))]
    assert merge_runs(parts, run_key="night-1").exit_code == 0
    stale = merge_runs(parts, run_key="night-2")   # every shard of the run lost, last night's reports left
    assert stale.exit_code == 2
    assert stale.problems[0].startswith("shard 1/2 (s1): not of this run: its run key is night-1, not night-2")


def test_a_red_wins_over_a_missing_shard():
    merged = merge_runs([Part("s1", shard(1, 2, [drill("a", "failed")]))])
    assert merged.exit_code == 1


def test_worker_facts_take_the_earliest_start_and_name_every_distinct_value():
    facts = {}
    merge_facts(facts, {"run_started_utc": "2026-11-30T01:05:00+00:00", "barman": "3.19.1", "host": "vm"})
    merge_facts(facts, {"run_started_utc": "2026-11-30T01:04:00+00:00", "barman": "3.19.1", "host": "vm2"})
    assert facts == {"run_started_utc": "2026-11-30T01:04:00+00:00", "barman": "3.19.1", "host": "vm, vm2"}


def test_junit_address_is_pytests():
    assert junit_address("scenarios/test_pitr.py::test_x[lsn]") == ("scenarios.test_pitr", "test_x[lsn]")
    assert junit_address("tests/a/test_b.py::TestC::test_d[x::y]") == ("tests.a.test_b.TestC", "test_d[x::y]")


def write_shard(directory: Path, run: RunRecord, failed_unit_test: bool = False) -> Path:
    write_json(run, directory / "drill-20261130T010000Z.json", [])
    suite = TestSuite("backup-verification-drills")
    for case_drill in run.drills:
        classname, name = junit_address(case_drill.nodeid)
        suite.add_testcase(TestCase(name, classname))
    if failed_unit_test:
        case = TestCase("test_unit", "tests.test_unit")
        case.result = [JUnitFailure("assert 1 == 2")]
        suite.add_testcase(case)
    xml = JUnitXml()
    xml.add_testsuite(suite)
    xml.write(str(directory / "junit.xml"))
    return directory


def test_pgbv_merge_writes_one_of_each_and_exits_by_the_verdict(tmp_path, capsys):
    one = write_shard(tmp_path / "one", shard(1, 2, [drill("a")]))
    two = write_shard(tmp_path / "two", shard(2, 2, [drill("b")]))
    assert merge_main([str(tmp_path / "out"), str(one), str(two)]) == 0
    out = capsys.readouterr().out
    assert "pgbv-merge: OK: VERIFIED: 2/2 drills passed" in out
    cases = [case.name for suite in JUnitXml.fromfile(str(tmp_path / "out" / "junit.xml")) for case in suite]
    assert sorted(cases) == ["test_drill[a]", "test_drill[b]"]
    assert [path.name for path in (tmp_path / "out").glob("drill-*.*")] and (tmp_path / "out" / "pgbv.prom").exists()
    assert len(read_run(next((tmp_path / "out").glob("drill-*.json"))).drills) == 2


def test_pgbv_merge_missing_shard_is_an_error_case_in_the_junit_too(tmp_path, capsys):
    one = write_shard(tmp_path / "one", shard(1, 2, [drill("a")]))
    assert merge_main([str(tmp_path / "out"), str(one), str(tmp_path / "absent")]) == 2
    out = capsys.readouterr().out
    assert "problem: shard 2/2: missing" in out and f"problem: {tmp_path / 'absent'}: unreadable" in out
    suites = list(JUnitXml.fromfile(str(tmp_path / "out" / "junit.xml")))
    assert suites[-1].name == "pgbv-merge" and suites[-1].errors == 2


def test_pgbv_merge_a_failed_test_that_is_not_a_drill_is_red(tmp_path, capsys):
    one = write_shard(tmp_path / "one", shard(1, 1, [drill("a")]), failed_unit_test=True)
    assert merge_main([str(tmp_path / "out"), str(one)]) == 1
    assert "failed (not a drill): tests.test_unit::test_unit" in capsys.readouterr().out


def test_pgbv_merge_bad_usage_exits_2(tmp_path):
    done = subprocess.run([sys.executable, "-m", "harness.cli.merge", str(tmp_path)], capture_output=True, text=True,
                          cwd=ROOT)
    assert done.returncode == 2 and "usage: pgbv-merge" in done.stderr and "Traceback" not in done.stderr
    one = write_shard(tmp_path / "one", shard(1, 1, [drill("a")]))
    done = subprocess.run([sys.executable, "-m", "harness.cli.merge", str(one), str(one)], capture_output=True,
                          text=True, cwd=ROOT)
    assert done.returncode == 2 and "is also a shard directory" in done.stderr


def test_pgbv_merge_of_a_shard_dir_holding_last_nights_report_is_no_verdict(tmp_path, capsys):
    # Tonight's pod of shard 2 was lost; its directory still holds last night's complete report.
    one = write_shard(tmp_path / "one", shard(1, 2, [drill("a")], run="night-2"))
    two = write_shard(tmp_path / "two", shard(2, 2, [drill("b", server="crm")], run="night-1", day="29"))
    assert merge_main([str(tmp_path / "out"), str(one), str(two)]) == 2
    out = capsys.readouterr().out
    assert "problem: shard runs: the shards are not of one run" in out and "pgbv-merge: NO VERDICT" in out
    prom = (tmp_path / "out" / "pgbv.prom").read_text()
    assert 'pgbv_last_success_timestamp_seconds{server="crm",stack="local"} 0.0' in prom


def test_merged_metrics_take_each_servers_time_from_the_shard_that_ran_it(tmp_path, capsys):
    from prometheus_client.parser import text_string_to_metric_families

    from harness.evidence.servers import timestamp
    one = write_shard(tmp_path / "one", shard(1, 2, [drill("a", server="main")]))
    two = write_shard(tmp_path / "two", shard(2, 2, [drill("b", server="crm")]))
    assert merge_main([str(tmp_path / "out"), str(one), str(two)]) == 0, capsys.readouterr().out
    success = {sample.labels["server"]: sample.value
               for family in text_string_to_metric_families((tmp_path / "out" / "pgbv.prom").read_text())
               for sample in family.samples if sample.name == "pgbv_last_success_timestamp_seconds"}
    assert success == {"main": timestamp("2026-11-30T01:11:00+00:00"), "crm": timestamp("2026-11-30T01:12:00+00:00")}


def test_pgbv_merge_names_a_file_given_as_a_directory(tmp_path, capsys):
    one = write_shard(tmp_path / "one", shard(1, 2, [drill("a")]))
    (tmp_path / "file").write_text("not a directory")
    assert merge_main([str(tmp_path / "out"), str(one), str(tmp_path / "file")]) == 2
    assert f"problem: {tmp_path / 'file'}: unreadable, so its drills have no verdict: not a directory" in \
        capsys.readouterr().out


def test_pgbv_merge_refuses_a_file_as_out_dir_before_reading_any_shard(tmp_path, capsys, monkeypatch):
    import harness.cli.merge as merge_cli

    (tmp_path / "out").write_text("a file")
    monkeypatch.setattr(merge_cli, "read_shard", lambda directory: pytest.fail("a shard was read"))
    assert merge_main([str(tmp_path / "out"), str(tmp_path / "one")]) == 2
    err = capsys.readouterr().err
    assert f"{tmp_path / 'out'} is not a directory" in err and "Errno" not in err
