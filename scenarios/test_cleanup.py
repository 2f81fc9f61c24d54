"""Nothing the harness starts outlives a run: after a pass, a failure and Ctrl-C.

Each case runs a small drill in its own pytest process with its own work dir, then looks for
any process whose command line names that dir and for anything left in it.
"""

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

DRILL = '''
import os, time
from pathlib import Path
from harness.targets import RecoveryTarget

def test_small_drill(source, barman, books, scratch):
    books.insert(200)
    expected = source.fingerprint()
    backup = barman.backup()
    restored = scratch.recover(backup, RecoveryTarget("immediate"))
    restored.assert_matches(expected)
    Path(os.environ["DRILL_MARKER"]).write_text("recovered")
    ENDING
'''

ENDINGS = {
    "pass": "pass",
    "failure": "assert False, 'deliberate failure'",
    "interrupt": "time.sleep(120)",
}


def processes_naming(path: Path) -> list[str]:
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if str(path) in cmdline:
            found.append(f"{entry.name}: {cmdline.strip()}")
    return found


@pytest.fixture
def workdir():
    # Under the system temp dir: pytest's own tmp dirs are closed to the server user.
    path = Path(tempfile.mkdtemp(prefix="cleanup-check-"))
    os.chmod(path, 0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.mark.parametrize("ending", list(ENDINGS))
def test_run_leaves_nothing_behind(tmp_path, workdir, ending):
    reports = tmp_path / "reports"
    marker = tmp_path / "recovered"
    drill = tmp_path / "test_inner_drill.py"
    drill.write_text(DRILL.replace("ENDING", ENDINGS[ending]))
    argv = [sys.executable, "-m", "pytest", "-c", str(ROOT / "pytest.ini"), "--rootdir", str(ROOT),
            "-p", "conftest", "-p", "no:cacheprovider", "--junitxml", str(reports / "junit.xml"),
            "--workdir", str(workdir), "--reports-dir", str(reports), str(drill)]
    env = {**os.environ, "PYTHONPATH": str(ROOT), "DRILL_MARKER": str(marker)}
    proc = subprocess.Popen(argv, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if ending == "interrupt":
        deadline = time.monotonic() + 120
        while not marker.exists() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.2)
        assert marker.exists(), "the inner drill never reached its recovery"
        assert processes_naming(workdir), "the stack should be running while the drill sleeps"
        proc.send_signal(signal.SIGINT)
    output, _ = proc.communicate(timeout=180)

    expected_rc = {"pass": 0, "failure": 1, "interrupt": 2}[ending]
    assert proc.returncode == expected_rc, output
    assert marker.exists(), output
    assert processes_naming(workdir) == [], output
    assert list(workdir.iterdir()) == [], f"left in the work dir: {list(workdir.iterdir())}"
    kept = list((reports / "kept").glob("*")) if (reports / "kept").exists() else []
    if ending == "failure":
        assert len(kept) == 1 and (kept[0] / "barman.log").exists(), output
        assert any(path.name.startswith("scratch-") for path in kept[0].iterdir())
        assert f"kept for inspection: {kept[0]}" in output
    else:
        assert kept == []
