"""Drills in parallel (pytest-xdist) and in shards (--shard K/N + pgbv-merge): one set of evidence with
every drill exactly once, nothing shared between workers or runs, nothing left behind.

The pytest-xdist run and the three shards start at the same moment: four complete runs on this machine
at once, each with its own work dir and reports dir, which must not disturb one another (each must
pass, and each must leave its work dir empty). A third case kills one xdist worker in the middle of a
drill, with the plugin's own scheduling: the other drills finish on another worker, the killed drill is
"no verdict" and is not run again, the worker's stack is reaped.

Every inner run starts in a session of its own and is killed with everything it started, and waited
for, however a case ends (a timeout, a failed assert): none outlives its work dir.
"""

import json
import os
import re
import signal
import subprocess
import sys
import time
import uuid
from contextlib import ExitStack, suppress
from pathlib import Path

import pytest
from junitparser import JUnitXml
from support import ROOT, open_workdir, processes_naming, start_inner_run

from harness.process.reaper import OWNERS_DIR

PITR = ROOT / "scenarios" / "test_pitr.py"
CHOSEN = ["immediate", "xid-inclusive", "lsn", "restore-point"]
SELECTION = ("-m", "pitr", "-k", " or ".join(CHOSEN))
EXPECTED = {f"scenarios/test_pitr.py::test_pitr_restores_exact_state_at_target[{name}]" for name in CHOSEN}
XDIST = ("-p", "xdist", "-n", "2", "--dist", "load")   # test by test: both workers get drills of one file
XDIST_OWN = ("-p", "xdist", "-n", "2")                  # the plugin's scheduling: a test file's drills on one worker


def inner_run(stack: ExitStack, *args, **kwargs) -> subprocess.Popen:
    """start_inner_run in a session of its own, killed with every process it started and waited for when
    ``stack`` closes, however the case ends."""
    proc = start_inner_run(*args, own_session=True, **kwargs)

    def stop() -> None:
        if proc.poll() is None:   # (once it is reaped, its id may name another process group)
            with suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)   # its session: pytest-xdist workers included
        proc.wait(timeout=60)
        if proc.stdout is not None:
            proc.stdout.close()

    stack.callback(stop)
    return proc


def evidence(reports: Path) -> dict:
    found = sorted(reports.glob("drill-*.json"))
    assert len(found) == 1, f"one JSON expected in {reports}: {found}"
    assert len(list(reports.glob("drill-*.html"))) == 1
    return json.loads(found[0].read_text())


def junit_cases(path: Path) -> list[str]:
    return [f"{case.classname.replace('.', '/')}.py::{case.name}" for suite in JUnitXml.fromfile(str(path))
            for case in suite]


def ports_in_logs(run_dir: Path) -> set[int]:
    """Ports the servers of a run dir listened on, from their logs."""
    found = set()
    for log in run_dir.rglob("*.log"):
        found |= {int(port) for port in re.findall(r'listening on IPv4 address "127\.0\.0\.1", port (\d+)',
                                                   log.read_text(errors="replace"))}
    return found


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """The xdist run (run dirs kept, to compare them) and three shards, all started at once, then merged."""
    base = tmp_path_factory.mktemp("parallel")
    key = f"scenario-{uuid.uuid4().hex[:8]}"   # the run key the three shards share
    with ExitStack() as stack:
        workdirs = [stack.enter_context(open_workdir()) for _ in range(4)]
        started = [inner_run(stack, PITR, workdirs[0], base / "xdist", *XDIST, "--keep", *SELECTION)]
        started += [inner_run(stack, PITR, workdirs[k], base / f"shard{k}", f"--shard={k}/3", f"--shard-run={key}",
                              *SELECTION) for k in (1, 2, 3)]
        outputs = [proc.communicate(timeout=240)[0] for proc in started]
        merge = subprocess.run([sys.executable, "-m", "harness.cli.merge", str(base / "merged"),
                                *(str(base / f"shard{k}") for k in (1, 2, 3)), "--shard-run", key],
                               cwd=ROOT, capture_output=True, text=True, timeout=120)
        kept_run_dirs = [path for path in workdirs[0].glob("pgbv-*")]
        yield {"base": base, "workdirs": workdirs, "rcs": [proc.returncode for proc in started], "outputs": outputs,
               "merge": merge, "kept_run_dirs": kept_run_dirs, "key": key,
               "ports": {str(path): ports_in_logs(path) for path in kept_run_dirs}}


def test_xdist_run_writes_one_report_with_every_drill_once(runs):
    assert runs["rcs"][0] == 0, runs["outputs"][0]
    reports = runs["base"] / "xdist"
    document = evidence(reports)
    drills = [drill["nodeid"] for drill in document["drills"]]
    assert sorted(drills) == sorted(EXPECTED), drills
    assert document["summary"].startswith("VERIFIED: 4/4 drills passed")
    assert {drill["properties"]["xdist_worker"] for drill in document["drills"]} == {"gw0", "gw1"}
    assert sorted(junit_cases(reports / "junit.xml")) == sorted(EXPECTED)
    suite = next(iter(JUnitXml.fromfile(str(reports / "junit.xml"))))
    properties = {prop.name: prop.value for prop in suite.properties()}
    assert {"harness_version", "stack", "postgresql", "barman", "host", "run_started_utc"} <= set(properties)


def test_xdist_workers_share_no_run_dir_and_no_port(runs):
    run_dirs = runs["kept_run_dirs"]
    assert len(run_dirs) == 2, f"one stack per worker expected: {run_dirs}\n{runs['outputs'][0]}"
    kept = evidence(runs["base"] / "xdist")["kept"]
    assert sorted(kept) == sorted(str(path) for path in run_dirs), "each worker's kept run dir, reported once"
    first, second = (runs["ports"][str(path)] for path in run_dirs)
    assert first and second and not first & second, runs["ports"]
    for path in run_dirs:  # Barman's home and its lock directory are the run's own
        assert (path / "barman" / "locks").is_dir()


def test_three_shards_at_once_merge_into_every_drill_exactly_once(runs):
    assert runs["rcs"][1:] == [0, 0, 0], "\n".join(runs["outputs"][1:])
    ran = [set(drill["nodeid"] for drill in evidence(runs["base"] / f"shard{k}")["drills"]) for k in (1, 2, 3)]
    assert not (ran[0] & ran[1] or ran[0] & ran[2] or ran[1] & ran[2]), ran
    merge = runs["merge"]
    assert merge.returncode == 0, merge.stdout + merge.stderr
    assert "pgbv-merge: OK: VERIFIED: 4/4 drills passed" in merge.stdout
    merged = runs["base"] / "merged"
    document = evidence(merged)
    assert sorted(drill["nodeid"] for drill in document["drills"]) == sorted(EXPECTED)
    assert document["run"]["shards"] == "1/3, 2/3, 3/3" and document["run"]["shard_run"] == runs["key"]
    assert sorted(junit_cases(merged / "junit.xml")) == sorted(EXPECTED)
    assert "pgbv_drills_total" in (merged / "pgbv.prom").read_text()


def test_a_merge_missing_a_shard_is_no_verdict(runs, tmp_path):
    done = subprocess.run([sys.executable, "-m", "harness.cli.merge", str(tmp_path / "merged"),
                           str(runs["base"] / "shard1"), str(runs["base"] / "shard3")],
                          cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2, done.stdout + done.stderr
    assert "shard 2/3: missing" in done.stdout
    assert "pgbv-merge: NO VERDICT: NOT VERIFIED" in done.stdout


def test_runs_at_the_same_moment_leave_their_work_dirs_empty(runs):
    for workdir in runs["workdirs"][1:]:
        assert processes_naming(workdir) == [] and list(workdir.iterdir()) == []
    assert processes_naming(runs["workdirs"][0]) == [], "the xdist run kept its run dirs, but no process"


def _worker_records(controller: int) -> list[dict]:
    """Ownership records of this controller's workers (their parent is the controller)."""
    found = []
    for path in OWNERS_DIR.glob("*.json"):
        try:
            record = json.loads(path.read_text())
            stat = Path(f"/proc/{record['owner_pid']}/stat").read_text()
        except (OSError, ValueError, KeyError):
            continue
        if int(stat.rsplit(")", 1)[1].split()[1]) == controller:
            found.append({**record, "path": path})
    return found


def test_a_worker_killed_mid_drill_costs_that_drill_only_and_is_reaped(tmp_path):
    reports = tmp_path / "reports"
    with ExitStack() as stack:
        workdir = stack.enter_context(open_workdir())
        proc = inner_run(stack, PITR, workdir, reports, *XDIST_OWN, *SELECTION)
        victim, deadline = None, time.monotonic() + 120
        while victim is None and proc.poll() is None and time.monotonic() < deadline:
            busy = [record for record in _worker_records(proc.pid)
                    if any(entry["kind"] == "postgres" and "/scratch-" in entry["data_dir"]
                           for entry in record["entries"])]
            victim = busy[0] if busy else None
            time.sleep(0.1)
        assert victim is not None, "no worker reached a restore"
        os.kill(victim["owner_pid"], signal.SIGKILL)
        run_dir = next(entry["path"] for entry in victim["entries"] if entry["kind"] == "path")
        output, _ = proc.communicate(timeout=240)

        assert proc.returncode == 2, output   # nothing red; one drill without a verdict
        document = evidence(reports)
        ran = [drill["nodeid"] for drill in document["drills"]]
        assert sorted(ran) == sorted(EXPECTED), output   # each once: the killed worker's others ran elsewhere
        errors = [drill for drill in document["drills"] if drill["outcome"] != "passed"]
        assert len(errors) == 1 and errors[0]["outcome"] == "error", errors
        assert "worker running this drill died" in errors[0]["reason"] and "ran again" not in errors[0]["reason"]
        assert sorted(junit_cases(reports / "junit.xml")) == sorted(EXPECTED), "the killed drill was run again"
        deadline = time.monotonic() + 30   # the killed worker's watchdog reaps its stack
        while (processes_naming(run_dir) or Path(run_dir).exists()) and time.monotonic() < deadline:
            time.sleep(0.5)
        assert processes_naming(run_dir) == [] and not Path(run_dir).exists()
        assert not victim["path"].exists(), "the killed worker's ownership record was left"
        assert processes_naming(workdir) == [] and list(workdir.iterdir()) == []


def test_workers_that_cannot_bring_a_stack_up_say_why(tmp_path):
    reports = tmp_path / "reports"
    with ExitStack() as stack:
        workdir = stack.enter_context(open_workdir())
        proc = inner_run(stack, PITR, workdir, reports, *XDIST, "--pg-bindir", str(tmp_path / "no-bin"), *SELECTION)
        output, _ = proc.communicate(timeout=120)
    assert proc.returncode == 2, output
    assert re.search(r"no verdict \(gw\d+\): The local stack could not be brought up", output), output
    assert "PostgreSQL server binaries not found" in output
    reasons = [drill["reason"] for drill in evidence(reports)["drills"]]
    assert reasons and all("PostgreSQL server binaries not found" in reason for reason in reasons), reasons
