"""Installed as a user installs it: the wheel, a fresh venv outside the checkout, a test file of one's own.

Nothing of the checkout is on the path there: the fixtures, options and markers come from the
installed distribution's pytest11 entry point, init.sql and the report template from its package
data. The drill must end green and leave its evidence.
"""

import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from junitparser import JUnitXml, Properties

from support import ROOT, open_workdir

USER_TEST = '''
import pytest
from harness import RecoveryTarget


@pytest.mark.pitr
def test_my_backup_restores_exactly(source, barman, books, scratch):
    books.insert(300)
    backup = barman.backup()
    commit = books.update(10)
    target = source.capture_target("xid", commit)
    expected = source.fingerprint()
    books.insert(50)                     # after the target: must not be restored
    barman.archive_current_wal()
    scratch.recover(backup, target).assert_matches(expected)


def test_immediate_restore_of_a_fresh_backup(source, barman, books, scratch):
    books.insert(100)
    expected = source.fingerprint()
    backup = barman.backup()
    scratch.recover(backup, RecoveryTarget("immediate")).assert_matches(expected)
'''


def run(argv, **kwargs):
    return subprocess.run([str(a) for a in argv], capture_output=True, text=True, stdin=subprocess.DEVNULL, **kwargs)


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """A wheel of this checkout installed into a new venv made from the system's Python, outside the checkout."""
    home = Path(tempfile.mkdtemp(prefix="pgbv-user-"))
    try:
        dist = tmp_path_factory.mktemp("dist")
        # Built from a copy of the tracked sources: a build leaves build/ behind, and a stale build/ of
        # the checkout could carry files the sources no longer have.
        source = home / "source"
        tracked = run(["git", "ls-files", "-z"], cwd=ROOT, timeout=60).stdout.split("\0")
        for name in filter(None, tracked):
            path = ROOT / name
            if path.is_symlink() or path.is_file():
                (source / name).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(path, source / name, follow_symlinks=False)
        built = run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "-w", dist, source], timeout=600)
        assert built.returncode == 0, built.stdout[-3000:] + built.stderr[-3000:]
        [wheel] = dist.glob("pgbv-*.whl")
        made = run(["/usr/bin/python3", "-m", "venv", home / "venv"], timeout=300)
        assert made.returncode == 0, made.stderr
        pip = run([home / "venv" / "bin" / "pip", "install", "--quiet", "--disable-pip-version-check", wheel],
                  timeout=900)
        assert pip.returncode == 0, pip.stdout[-3000:] + pip.stderr[-3000:]
        yield home, wheel
    finally:
        shutil.rmtree(home, ignore_errors=True)


def test_wheel_carries_the_package_data(installed):
    _, wheel = installed
    names = run([sys.executable, "-m", "zipfile", "-l", wheel], timeout=60).stdout
    for needed in ("harness/drill/init.sql", "harness/evidence/templates/report.html.j2",
                   "harness/stacks/docker/compose.yaml", "harness/stacks/docker/barman/Dockerfile",
                   "entry_points.txt"):
        assert needed in names, f"{needed} is missing from {wheel.name}"
    assert "docker/wheels/" not in names and "docker/.env" not in names


def test_a_users_own_test_file_runs_a_green_drill_with_evidence(installed):
    home, _ = installed
    project = home / "my-backups"
    project.mkdir()
    (project / "test_my_backups.py").write_text(USER_TEST)
    venv = home / "venv" / "bin"
    where = run([venv / "python", "-c", "import harness; print(harness.__file__)"], cwd=project, timeout=60)
    assert where.stdout.startswith(str(home / "venv")), where.stdout + where.stderr

    options = run([venv / "pytest", "--help"], cwd=project, timeout=120).stdout
    assert "--stack" in options and "--pg-versions" in options and "backup verification drills" in options
    markers = run([venv / "pytest", "--markers"], cwd=project, timeout=120).stdout
    assert "@pytest.mark.pitr" in markers and "@pytest.mark.drill" in markers

    with open_workdir() as workdir:
        done = run([venv / "pytest", "-p", "no:cacheprovider", "-W", "error::pytest.PytestUnknownMarkWarning",
                    "--junitxml", project / "junit.xml", "--workdir", workdir, "test_my_backups.py"],
                   cwd=project, timeout=600)
        assert done.returncode == 0, done.stdout[-5000:] + done.stderr[-3000:]
        assert list(workdir.iterdir()) == [], "the run left its directory behind"
    assert "drill summary: VERIFIED: 2/2 drills passed" in done.stdout
    assert "incompatible with junit_family" not in done.stdout, "drills need per-testcase properties (xunit1)"

    case = next(c for suite in JUnitXml.fromfile(str(project / "junit.xml")) for c in suite
                if c.name == "test_my_backup_restores_exactly")
    props = {p.name: p.value for group in case.iterchildren(Properties) for p in group}
    assert props["check_fingerprint"].startswith("passed") and props["check_target_reached"].startswith("passed")
    assert props["expected_fingerprint"] == props["actual_fingerprint"] and props["backup_id"]
    [evidence] = (project / "reports").glob("drill-*.json")
    assert json.loads(evidence.read_text())["summary"].startswith("VERIFIED: 2/2")
    assert list((project / "reports").glob("drill-*.html"))
