"""The same scenario files on the compose stack (`--stack compose`), and nothing of the project left after.

Runs the drills in their own pytest process with `--stack compose`, as a user would; skipped with
the reason when no Docker engine can be had on this machine.
"""

import signal
import subprocess
import time
import uuid

import pytest

from harness.stacks import compose
from harness.stacks.compose import EngineUnavailable

from support import ROOT, drill_file, open_workdir, start_inner_run

SCENARIOS = ["test_full_backup.py", "test_pitr.py", "test_two_backups.py", "test_wal_streaming.py",
             "test_faults.py"]


@pytest.fixture(scope="module")
def engine():
    try:
        compose.ensure_engine()
    except EngineUnavailable as exc:
        pytest.skip(f"no Docker engine: {exc.cause}")


def project_resources(project: str) -> list[str]:
    label = f"label=com.docker.compose.project={project}"
    found = []
    for kind, argv in (("container", ["docker", "ps", "-a", "--filter", label, "--format", "{{.Names}}"]),
                       ("network", ["docker", "network", "ls", "--filter", label, "--format", "{{.Name}}"]),
                       ("volume", ["docker", "volume", "ls", "--filter", label, "--format", "{{.Name}}"])):
        out = subprocess.run(argv, capture_output=True, text=True, timeout=60).stdout.split()
        found += [f"{kind} {name}" for name in out]
    return found


def test_scenarios_pass_on_compose_and_leave_nothing(engine, tmp_path):
    project = f"pgbvci{uuid.uuid4().hex[:8]}"
    reports = tmp_path / "reports"
    with open_workdir() as workdir:
        proc = start_inner_run([ROOT / "scenarios" / name for name in SCENARIOS], workdir, reports,
                               "--stack", "compose", "--compose-project", project)
        output, _ = proc.communicate(timeout=1800)
        assert proc.returncode == 0, output[-6000:]
        assert "stack compose" in output
    assert project_resources(project) == []


@pytest.mark.parametrize("ending", ["failure", "interrupt", "sigkill"])
def test_failed_or_interrupted_compose_run_leaves_nothing(engine, ending):
    project = f"pgbv{ending[:3]}{uuid.uuid4().hex[:8]}"
    last_line = "assert False, 'deliberate failure'" if ending == "failure" else "time.sleep(300)"
    drill = ("import time\n\ndef test_drill(source, barman, books):\n    books.insert(100)\n"
             f"    barman.backup()\n    {last_line}\n")
    with open_workdir() as workdir, drill_file("test_compose_ending.py", drill) as path:
        proc = start_inner_run(path, workdir, workdir / "reports", "--stack", "compose", "--compose-project", project)
        if ending in ("interrupt", "sigkill"):
            deadline = time.monotonic() + 600
            while time.monotonic() < deadline and proc.poll() is None:
                if list(workdir.glob("*/barman/*/meta/*-backup.info")):   # up, and a backup taken
                    break
                time.sleep(1)
            assert proc.poll() is None, proc.communicate()[0][-4000:]
            proc.send_signal(signal.SIGINT if ending == "interrupt" else signal.SIGKILL)
        output, _ = proc.communicate(timeout=600)
        if ending == "sigkill":   # nothing ran the run's own cleanup: its watchdog removes the project by label
            deadline = time.monotonic() + 90
            while (project_resources(project) or list(workdir.glob("pgbv-compose-*"))) and time.monotonic() < deadline:
                time.sleep(1)
            assert not list(workdir.glob("pgbv-compose-*")), "the killed run's directory was left behind"
    assert proc.returncode == {"failure": 1, "interrupt": 2, "sigkill": -signal.SIGKILL}[ending], output[-4000:]
    assert project_resources(project) == [], output[-4000:]
