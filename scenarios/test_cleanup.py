"""Nothing the harness starts outlives a run: after a pass, a failure, Ctrl-C and SIGKILL.

Each case runs a small drill in its own pytest process with its own work dir, then looks for
any process whose command line names that dir and for anything left in it. A run killed with
SIGKILL (a CI job timeout, the OOM killer) cannot clean up itself: its watchdog does, within
seconds.
"""

import signal
import time

import pytest

from harness import DrillConfig, make_stack
from harness.process.cleanup import CleanupFailed

from support import drill_file, open_workdir, processes_naming, start_inner_run

DRILL = '''
import os
from pathlib import Path
import time
from harness.drill.targets import RecoveryTarget

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
    "sigkill": "time.sleep(120)",
}
RETURN_CODES = {"pass": 0, "failure": 1, "interrupt": 2, "sigkill": -signal.SIGKILL}


@pytest.fixture
def workdir():
    with open_workdir() as path:
        yield path


@pytest.mark.parametrize("ending", list(ENDINGS))
def test_run_leaves_nothing_behind(tmp_path, workdir, ending):
    reports = tmp_path / "reports"
    marker = tmp_path / "recovered"
    with drill_file("test_inner_drill.py", DRILL.replace("ENDING", ENDINGS[ending])) as drill:
        proc = start_inner_run(drill, workdir, reports, env={"DRILL_MARKER": str(marker)})
        if ending in ("interrupt", "sigkill"):
            deadline = time.monotonic() + 120
            while not marker.exists() and proc.poll() is None and time.monotonic() < deadline:
                time.sleep(0.2)
            assert marker.exists(), "the inner drill never reached its recovery"
            assert processes_naming(workdir), "the stack should be running while the drill sleeps"
            proc.send_signal(signal.SIGINT if ending == "interrupt" else signal.SIGKILL)
        output, _ = proc.communicate(timeout=180)

    assert proc.returncode == RETURN_CODES[ending], output
    assert marker.exists(), output
    if ending == "sigkill":   # the watchdog reaps what the killed run left: give it a deadline
        deadline = time.monotonic() + 30
        while (processes_naming(workdir) or list(workdir.iterdir())) and time.monotonic() < deadline:
            time.sleep(0.5)
    assert processes_naming(workdir) == [], output
    assert list(workdir.iterdir()) == [], f"left in the work dir: {list(workdir.iterdir())}"
    kept = list((reports / "kept").glob("*")) if (reports / "kept").exists() else []
    if ending == "failure":
        assert len(kept) == 1 and (kept[0] / "barman.log").exists(), output
        assert any(path.name.startswith("scratch-") for path in kept[0].iterdir())
        assert f"kept for inspection: {kept[0]}" in output
    else:
        assert kept == []


def test_a_hung_and_a_failing_cleanup_do_not_keep_the_others_from_running(workdir):
    stack = make_stack(DrillConfig(workdir=str(workdir), rows=1000)).start()
    run_dir = stack.run_dir
    assert processes_naming(run_dir), "the stack should be running"
    # Registered last, so they run first: everything the stack registered must still be done after them.
    stack.cleanups.add("a cleanup that hangs", lambda: time.sleep(120), timeout=1)
    stack.cleanups.add("a cleanup that raises", lambda: 1 / 0)
    started = time.monotonic()
    try:
        with pytest.raises(CleanupFailed) as failed:
            stack.cleanups.close()   # the registry alone, without the watchdog's help
        assert time.monotonic() - started < 60
        assert "a cleanup that hangs" in str(failed.value) and "ZeroDivisionError" in str(failed.value)
        assert processes_naming(run_dir) == [], "a server or receive-wal outlived the cleanups"
        assert not run_dir.exists()
    finally:
        stack.close()
