"""A drill whose pytest-xdist worker died (SIGKILL, the OOM killer): recorded once, as no verdict, and not
given to another worker, whose death it would cause too.

Inner runs use pytest-xdist and the installed plugin with a stand-in stack (no PostgreSQL needed).
"""

import json
import os
import subprocess
import sys
import types

import pytest
from junitparser import JUnitXml

from harness.config import DrillConfig
from harness.evidence.records import DrillRecord
from harness.evidence.report_json import drill_document
from harness.plugin.parallel import PAYLOAD, Controller
from harness.plugin.state import CONFIG, RUN, RunState

STAND_IN_STACK = '''
import types
import pytest

@pytest.fixture(scope="session")
def stack():
    barman = types.SimpleNamespace(server="source")
    return types.SimpleNamespace(barman=barman, versions=lambda: {"postgresql": "15.14"})
'''

DRILLS = '''
import os, signal

def test_a_first(stack):
    pass

def test_b_brings_its_worker_down(stack):
    os.kill(os.getpid(), signal.SIGKILL)   # as the OOM killer would

def test_c_last(stack):
    pass
'''


@pytest.mark.parametrize("dist", [(), ("--dist", "loadfile")], ids=["default", "loadfile"])
def test_a_drill_that_kills_its_worker_runs_once_and_is_no_verdict(tmp_path, dist):
    project, reports = tmp_path / "project", tmp_path / "reports"
    project.mkdir()
    (project / "pytest.ini").write_text("[pytest]\n")
    (project / "conftest.py").write_text(STAND_IN_STACK)
    (project / "test_drills.py").write_text(DRILLS)
    argv = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-p", "xdist", "-n", "2", *dist,
            "--rootdir", str(project), "-c", str(project / "pytest.ini"), "--reports-dir", str(reports),
            "--junitxml", str(reports / "junit.xml"), str(project)]
    env = {key: value for key, value in os.environ.items() if key != "CI"}
    done = subprocess.run(argv, cwd=project, env=env, capture_output=True, text=True, timeout=120,
                          stdin=subprocess.DEVNULL)
    output = done.stdout + done.stderr
    assert done.returncode == 2, output                       # nothing red, one drill without a verdict
    [path] = reports.glob("drill-*.json")
    drills = json.loads(path.read_text())["drills"]
    outcomes = sorted((drill["nodeid"].split("::")[1], drill["outcome"]) for drill in drills)
    assert outcomes == [("test_a_first", "passed"), ("test_b_brings_its_worker_down", "error"),
                        ("test_c_last", "passed")], output
    [crashed] = [drill for drill in drills if drill["outcome"] == "error"]
    assert "worker running this drill died" in crashed["reason"] and "ran again" not in crashed["reason"]
    cases = [case.name for suite in JUnitXml.fromfile(str(reports / "junit.xml")) for case in suite]
    assert sorted(cases) == ["test_a_first", "test_b_brings_its_worker_down", "test_c_last"], output
    assert output.count("crashed while running") == 1, output


def test_a_drill_run_again_after_its_worker_died_is_one_record_that_stays_no_verdict():
    nodeid = "scenarios/test_pitr.py::test_pitr[lsn]"
    config = types.SimpleNamespace(stash=pytest.Stash())
    config.stash[CONFIG], config.stash[RUN] = DrillConfig(), RunState()
    controller = Controller(config)
    gateway = types.SimpleNamespace(gateway=types.SimpleNamespace(id="gw0"))
    controller.pytest_runtest_logreport(types.SimpleNamespace(when="???", failed=True, nodeid=nodeid, node=gateway,
                                                              longreprtext="worker 'gw0' crashed"))
    rerun = DrillRecord(nodeid, "passed", 3.0, "", facts={"barman_server": "source", "xdist_worker": "gw2"})
    report = types.SimpleNamespace(when="teardown", failed=False, nodeid=nodeid)
    setattr(report, PAYLOAD, json.dumps({"drill": drill_document(rerun), "no_verdict": False, "kept": []}))
    controller.pytest_runtest_logreport(report)
    controller.pytest_runtest_logreport(types.SimpleNamespace(when="???", failed=True, nodeid=nodeid, node=gateway,
                                                              longreprtext="worker 'gw3' crashed"))
    [recorded] = config.stash[RUN].record.drills
    assert recorded.outcome == "error" and not config.stash[RUN].record.verified
    assert "ran again after its worker died: passed on gw2; the first run's no verdict stands" in recorded.reason
    assert recorded.reason.count("ran again") == 2

