"""What monitoring sees of real runs: a verified drill, then the same server red by a damaged backup.

The metrics file (parsed with prometheus_client), the run history, the HTML trends and pgbv-nightly's
last line must all tell the same story: verified once, then red since the second run, with the
last-success gauge left where the green run put it.
"""

import json
import os
import sqlite3
import subprocess
import sys

import pytest
from junitparser import JUnitXml, Properties
from prometheus_client.parser import text_string_to_metric_families
from support import ROOT, drill_file, open_workdir, start_inner_run

from harness.evidence.servers import timestamp, utc_text

DRILLS = '''
from harness.drill import faults

def test_backup_restores_exactly(source, barman, books, scratch):
    books.insert(300)
    backup = barman.backup()
    expected = source.fingerprint()
    scratch.recover(backup, source.capture_target("immediate")).assert_matches(expected)

def test_damaged_backup_restores_exactly(source, barman, books, scratch):
    books.insert(300)
    backup = barman.backup()
    expected = source.fingerprint()
    with faults.backup_byte_flipped(barman, backup, faults.heap_file_of(source, "books")):
        scratch.recover(backup, source.capture_target("immediate")).assert_matches(expected)
'''


def start_nightly(drills, workdir, reports, *extra):
    """pgbv-nightly on one drill file, as cron would run it (its own process, its own stack)."""
    argv = [sys.executable, "-m", "harness.cli.nightly", "-c", str(ROOT / "pytest.ini"), "--rootdir", str(ROOT),
            "-p", "no:cacheprovider", "--junitxml", str(reports / "junit.xml"), "--workdir", str(workdir),
            "--reports-dir", str(reports), *extra, str(drills)]
    env = {key: value for key, value in os.environ.items() if key != "CI"}
    return subprocess.Popen(argv, cwd=ROOT, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)


def finished(proc) -> dict:
    output, _ = proc.communicate(timeout=300)
    return {"rc": proc.returncode, "output": output}


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory):
    base = tmp_path_factory.mktemp("monitoring")
    metrics, history = base / "textfile" / "pgbv.prom", base / "history.sqlite"
    monitored = ["--metrics-file", str(metrics), "--history", str(history)]
    runs = {}
    with open_workdir() as workdir, drill_file("test_monitored_drills.py", DRILLS) as drills:
        for name, start, selection in (("green", start_inner_run, "test_backup_restores_exactly"),
                                       ("red", start_nightly, "test_damaged_backup_restores_exactly")):
            reports = base / name
            runs[name] = finished(start(drills, workdir, reports, *monitored, "-k", selection))
            runs[name]["metrics"] = metrics_of(metrics.read_text())
            [evidence] = reports.glob("drill-*.json")
            runs[name]["json"] = json.loads(evidence.read_text())
            [page] = reports.glob("drill-*.html")
            runs[name]["html"] = page.read_text()
            runs[name]["junit"] = reports / "junit.xml"
    runs["history"] = history
    return runs


def metrics_of(text: str) -> dict:
    return {(sample.name, tuple(sorted(sample.labels.items()))): sample.value
            for family in text_string_to_metric_families(text) for sample in family.samples}


def gauge(samples: dict, name: str, **labels) -> float:
    return samples[(name, tuple(sorted({"server": "source", "stack": "local", **labels}.items())))]


def test_the_green_run_moves_the_last_success_and_names_the_backup(two_runs):
    green = two_runs["green"]
    assert green["rc"] == 0, green["output"][-3000:]
    ended = timestamp(green["json"]["run"]["run_ended_utc"])
    [drill] = green["json"]["drills"]
    backup = drill["restores"][0]
    samples = green["metrics"]
    assert gauge(samples, "pgbv_last_success_timestamp_seconds") == ended
    assert gauge(samples, "pgbv_last_run_timestamp_seconds") == ended
    assert gauge(samples, "pgbv_last_run_verified") == 1
    assert gauge(samples, "pgbv_verified_backup_info", backup_id=backup["backup_id"]) == 1
    assert gauge(samples, "pgbv_verified_backup_end_timestamp_seconds") == timestamp(backup["backup_end_time"])
    assert gauge(samples, "pgbv_last_rto_seconds") == pytest.approx(backup["recovery_seconds"])
    assert gauge(samples, "pgbv_drills_total", outcome="passed") == 1
    assert backup["backup_size_bytes"] > 0


def test_the_red_run_leaves_the_last_success_and_counts_the_failure(two_runs):
    green, red = two_runs["green"], two_runs["red"]
    assert red["rc"] == 1, red["output"][-3000:]
    samples = red["metrics"]
    assert gauge(samples, "pgbv_last_success_timestamp_seconds") == timestamp(green["json"]["run"]["run_ended_utc"])
    assert gauge(samples, "pgbv_last_run_timestamp_seconds") == timestamp(red["json"]["run"]["run_ended_utc"])
    assert gauge(samples, "pgbv_last_run_verified") == 0
    assert gauge(samples, "pgbv_last_run_failed_checks", check="verify_backup") == 1
    assert gauge(samples, "pgbv_drills_total", outcome="passed") == 1       # kept from the green run
    assert gauge(samples, "pgbv_drills_total", outcome="failed") == 1


def test_the_history_holds_both_runs_with_their_causes(two_runs):
    with sqlite3.connect(two_runs["history"]) as con:
        drills = con.execute("SELECT server, outcome, cause, backup_id, rto_seconds, backup_size_bytes,"
                             " postgresql_version FROM drills ORDER BY run_utc, rowid").fetchall()
        verdicts = con.execute("SELECT verdict FROM runs ORDER BY run_time").fetchall()
    assert [row[:2] for row in drills] == [("source", "passed"), ("source", "failed")]
    assert "verify-backup" in drills[1][2] and drills[0][2] is None
    assert drills[0][4] > 0 and drills[0][5] > 0 and drills[0][6]
    assert verdicts == [("verified",), ("failed",)]
    assert two_runs["red"]["json"]["run"]["run_history"] == str(two_runs["history"])


def test_the_page_shows_the_servers_runs_over_time(two_runs):
    page = two_runs["red"]["html"]
    assert "Barman server source (stack local): last 2 runs" in page
    assert page.count("<tr data-verdict='verified'>") == 1 and page.count("<tr data-verdict='failed'>") == 1
    assert "<polyline" in page


def test_nightly_says_since_when_the_server_is_red(two_runs):
    green, red = two_runs["green"], two_runs["red"]
    last_line = red["output"].strip().splitlines()[-1]
    since = timestamp(red["json"]["run"]["run_ended_utc"])
    last_verified = timestamp(green["json"]["run"]["run_ended_utc"])
    assert last_line.startswith("nightly: FAILED VERIFICATION: NOT VERIFIED: 0/1 drills passed"), last_line
    assert (f"server source red since {utc_text(since)} (1 run not verified; last verified {utc_text(last_verified)})"
            in last_line), last_line


def test_every_drill_names_its_server_after_the_properties_of_release_0_1_0(two_runs):
    suite = list(JUnitXml.fromfile(str(two_runs["green"]["junit"])))[0]
    [case] = [case for case in suite if case.name == "test_backup_restores_exactly"]
    names = [prop.name for group in case.iterchildren(Properties) for prop in group]
    values = {prop.name: prop.value for group in case.iterchildren(Properties) for prop in group}
    assert names[-1] == "barman_server" and values["barman_server"] == "source"
