"""pgbv-post-backup without a Barman: what it decides from Barman's variables, the exit codes it may
use (only 0 and 62: anything else makes Barman retry it forever), the drill it would run, and the
per-server lock between real processes. scenarios/test_post_backup_hook.py runs it under Barman."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import harness.hook.drill as hook_drill
from harness.cli.post_backup import main
from harness.config import ConfigError
from harness.hook.drill import DRILLS, drill_argv, given_settings, run_drill
from harness.hook.event import ABORT_CONTINUE, EXIT_OK, BackupEvent, decide, exit_code_of_drill
from harness.hook.lock import LockBusy, ServerLock, lock_path

import lock_holder


def barman_env(**changes) -> dict:
    env = {"BARMAN_SERVER": "main", "BARMAN_BACKUP_ID": "20261201T010000", "BARMAN_STATUS": "DONE",
           "BARMAN_PHASE": "post", "BARMAN_CONFIGURATION": "/etc/barman.conf", "BARMAN_HOOK": "backup_retry_script",
           "BARMAN_RETRY": "1", "BARMAN_ERROR": "", "BARMAN_VERSION": "3.19.1"}
    env.update(changes)
    return {name: value for name, value in env.items() if value is not None}


@pytest.mark.parametrize("changes, action", [
    ({}, "drill"),
    ({"BARMAN_STATUS": "WAITING_FOR_WALS"}, "wait"),
    ({"BARMAN_STATUS": "FAILED", "BARMAN_ERROR": "failure copy (connection lost)"}, "ignore"),
    ({"BARMAN_STATUS": "STARTED"}, "ignore"),
    ({"BARMAN_PHASE": "pre", "BARMAN_STATUS": "STARTED"}, "ignore"),
    ({"BARMAN_HOOK": "recovery_retry_script"}, "ignore"),
    ({"BARMAN_BACKUP_ID": None}, "refuse"),
    ({"BARMAN_SERVER": ""}, "refuse"),
])
def test_what_the_hook_does_with_each_call(changes, action):
    decision = decide(BackupEvent.from_env(barman_env(**changes)))
    assert decision.action == action, decision
    assert decision.exit_code == (ABORT_CONTINUE if action == "refuse" else EXIT_OK)


def test_a_failed_backup_is_said_with_barmans_error():
    reason = decide(BackupEvent.from_env(barman_env(BARMAN_STATUS="FAILED", BARMAN_ERROR="failure copy (x)"))).reason
    assert "FAILED (failure copy (x))" in reason and "no drill" in reason


@pytest.mark.parametrize("returncode, code", [(0, 0), (1, 62), (2, 62), (5, 62), (-9, 62), (None, 62)])
def test_only_a_verified_drill_exits_0(returncode, code):
    assert exit_code_of_drill(returncode) == code


def _hook_options(*argv):
    from harness.cli.post_backup import parser
    return parser().parse_args(list(argv))


def test_the_drill_is_exactly_that_backup_with_the_hooks_options():
    event = BackupEvent.from_env(barman_env())
    settings = given_settings(_hook_options("--reports-dir", "/r", "--max-rpo", "15m", "--no-keep-on-failure"))
    assert settings == ["--no-keep-on-failure", "--max-rpo", "15m"]
    argv = drill_argv(event, Path("/r"), settings, ["-x", "--maxfail", "1"])
    assert argv[1:4] == ["-m", "harness.cli.nightly", str(DRILLS)] and DRILLS.is_file()
    joined = " ".join(argv)
    assert ("--stack existing --barman-config /etc/barman.conf --barman-server main --backups 20261201T010000 "
            "--reports-dir /r --no-keep-on-failure --max-rpo 15m -x --maxfail 1") in joined
    assert "-c /dev/null --rootdir /r" in joined and "--junitxml /r/junit-main-20261201T010000.xml" in joined


@pytest.mark.parametrize("flag", ["--backups", "--barman-server", "--barman-config", "--stack"])
def test_what_barman_names_cannot_be_overridden(flag):
    with pytest.raises(ConfigError, match=f"{flag} cannot be given to the post-backup hook"):
        given_settings(_hook_options(flag, "existing"))


def run_hook(monkeypatch, argv, **changes) -> int:
    for name in list(os.environ):
        if name.startswith(("BARMAN_", "DRILL_")):
            monkeypatch.delenv(name)
    for name, value in barman_env(**changes).items():
        monkeypatch.setenv(name, value)
    return main(argv)


def log_of(reports: Path, server: str = "main") -> list[str]:
    return (reports / "post-backup" / f"{server}.log").read_text().splitlines()


def test_a_failed_backup_is_logged_and_not_drilled(monkeypatch, tmp_path):
    rc = run_hook(monkeypatch, ["--reports-dir", str(tmp_path)], BARMAN_STATUS="FAILED",
                  BARMAN_ERROR="failure copy (password=hunter2 lost)")
    assert rc == 0
    called, ended = log_of(tmp_path)
    assert "status FAILED" in called and "retry 1" in called
    assert "exit 0: backup 20261201T010000 is FAILED" in ended
    assert "hunter2" not in called + ended


def test_a_configuration_named_relative_to_barmans_directory_is_made_absolute(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    run_hook(monkeypatch, ["--reports-dir", str(tmp_path)], BARMAN_STATUS="FAILED", BARMAN_CONFIGURATION="barman.conf")
    assert f"configuration {tmp_path}/barman.conf" in log_of(tmp_path)[0]


@pytest.mark.parametrize("argv, says", [
    (["--bogus"], "Unrecognized arguments: --bogus"),
    ([], "needs an absolute --reports-dir"),
    (["--reports-dir", "relative/reports"], "needs an absolute --reports-dir"),
    (["--reports-dir", "{tmp}", "--max-rto", "soon"], "--max-rto 'soon'"),
    (["--reports-dir", "{tmp}", "--backups", "all"], "--backups cannot be given"),
    (["--reports-dir", "{tmp}", "--wal-timeout", "-3"], "--wal-timeout"),
])
def test_bad_options_exit_62_with_one_message(monkeypatch, tmp_path, capsys, argv, says):
    rc = run_hook(monkeypatch, [arg.replace("{tmp}", str(tmp_path)) for arg in argv])
    err = capsys.readouterr().err
    assert rc == 62 and says in err and "Traceback" not in err, err


@pytest.mark.parametrize("changes", [{"BARMAN_STATUS": "FAILED"}, {"BARMAN_PHASE": "pre", "BARMAN_STATUS": "STARTED"}])
@pytest.mark.parametrize("argv, says", [
    (["--backups", "all"], "--backups cannot be given to the post-backup hook"),
    (["--metrics-file", "pgbv.prom"], "needs an absolute --metrics-file (or DRILL_METRICS_FILE), given: pgbv.prom"),
    (["--workdir", "scratch"], "needs an absolute --workdir"),
])
def test_a_bad_hook_line_is_refused_whatever_the_backup(monkeypatch, tmp_path, capsys, changes, argv, says):
    # Not only when a backup is drilled at last: a FAILED backup or the pre phase shows the bad line too.
    rc = run_hook(monkeypatch, ["--reports-dir", str(tmp_path), *argv], **changes)
    assert rc == 62 and says in capsys.readouterr().err
    assert "exit 62: no drill: " in log_of(tmp_path)[-1] and says in log_of(tmp_path)[-1]


def test_a_relative_path_from_the_environment_is_refused_too(monkeypatch, tmp_path, capsys):
    monkeypatch.setattr("harness.cli.post_backup.decide", lambda event: pytest.fail("decided on a bad line"))
    for name in list(os.environ):
        if name.startswith(("BARMAN_", "DRILL_")):
            monkeypatch.delenv(name)
    monkeypatch.setenv("DRILL_HISTORY", "history.sqlite")
    for name, value in barman_env().items():
        monkeypatch.setenv(name, value)
    assert main(["--reports-dir", str(tmp_path)]) == 62
    assert "needs an absolute --history (or DRILL_HISTORY), given: history.sqlite" in capsys.readouterr().err


def test_absolute_drill_paths_pass(monkeypatch, tmp_path):
    rc = run_hook(monkeypatch, ["--reports-dir", str(tmp_path), "--metrics-file", str(tmp_path / "pgbv.prom"),
                                "--history", str(tmp_path / "h.sqlite"), "--workdir", "/var/tmp"],
                  BARMAN_STATUS="FAILED")
    assert rc == 0, log_of(tmp_path)


SECRET_TALK = "import sys, time; print('conninfo host=db password=hunter2 user=barman', flush=True); " \
              "print(\"CREATE ROLE app PASSWORD 'hunter3'\", flush=True); time.sleep(float(sys.argv[1]))"


@pytest.mark.parametrize("sleep, timeout, returncode", [(0, 60, 0), (60, 1, None)])
def test_the_drills_console_output_is_redacted_however_it_ends(tmp_path, sleep, timeout, returncode):
    output = tmp_path / "main-B1.out"
    argv = [sys.executable, "-c", SECRET_TALK, str(sleep)]
    assert run_drill(argv, output, timeout, cwd=tmp_path) == returncode
    text = output.read_text()
    assert "hunter2" not in text and "hunter3" not in text, text
    assert "host=db password=******** user=barman" in text and "PASSWORD ********" in text
    assert sorted(p.name for p in tmp_path.iterdir()) == ["main-B1.out"]   # no temporary file left


def test_help_exits_0(monkeypatch, capsys):
    assert run_hook(monkeypatch, ["--help"]) == 0
    assert "post_backup_retry_script = pgbv-post-backup" in capsys.readouterr().out


def test_a_crash_still_exits_62_and_is_logged(monkeypatch, tmp_path):
    def broken(event):
        raise ZeroDivisionError("something unforeseen")
    monkeypatch.setattr("harness.cli.post_backup.decide", broken)
    assert run_hook(monkeypatch, ["--reports-dir", str(tmp_path)]) == 62
    assert "exit 62: the hook crashed" in log_of(tmp_path)[-1] and "ZeroDivisionError" in log_of(tmp_path)[-1]


def test_a_backup_that_stays_waiting_for_wals_is_skipped_with_the_reason(monkeypatch, tmp_path):
    monkeypatch.setattr(hook_drill, "catalogue_status", lambda event: "WAITING_FOR_WALS")
    rc = run_hook(monkeypatch, ["--reports-dir", str(tmp_path), "--wait", "--wal-timeout", "1"],
                  BARMAN_STATUS="WAITING_FOR_WALS")
    assert rc == 62
    assert "skipped, no drill: Timed out after 1 s waiting for Barman to mark backup 20261201T010000 DONE" \
        in log_of(tmp_path)[-1]
    assert "pgbv-nightly --backups 20261201T010000" in log_of(tmp_path)[-1]


def test_a_waiting_backup_that_fails_its_wal_check_is_not_drilled(monkeypatch, tmp_path):
    monkeypatch.setattr(hook_drill, "catalogue_status", lambda event: "FAILED")
    rc = run_hook(monkeypatch, ["--reports-dir", str(tmp_path), "--wait"], BARMAN_STATUS="WAITING_FOR_WALS")
    assert rc == 0 and "is now FAILED: nothing to drill" in log_of(tmp_path)[-1]


def hold_lock(path: Path, seconds: float) -> subprocess.Popen:
    return lock_holder.hold("harness.hook.lock:ServerLock", path, seconds, "drill of backup B1")


def test_one_drill_per_server_and_no_stale_lock_after_sigkill(tmp_path):
    path = lock_path(tmp_path, "main")
    holder = hold_lock(path, 120)
    try:
        with ServerLock(path) as lock:
            assert not lock.try_acquire("drill of backup B2")
            with pytest.raises(LockBusy, match=f"pid {holder.pid}, drill of backup B1"):
                lock.acquire("drill of backup B2", timeout=0)
            with ServerLock(lock_path(tmp_path, "other")) as other:
                assert other.try_acquire("another server's drill")   # servers do not wait for each other
            holder.send_signal(signal.SIGKILL)
            holder.wait(timeout=10)
            lock.acquire("drill of backup B2", timeout=5)            # the kernel released it
            assert lock.holder().startswith(f"pid {os.getpid()}, drill of backup B2")
    finally:
        holder.kill()
        holder.wait(timeout=10)


def test_the_next_drill_queues_until_the_first_ends(tmp_path):
    path = lock_path(tmp_path, "main")
    holder = hold_lock(path, 1.5)
    try:
        with ServerLock(path) as lock:
            lock.acquire("drill of backup B2", timeout=60, interval=0.2)
            assert holder.poll() is not None, "got the lock while the first drill still held it"
    finally:
        holder.kill()
        holder.wait(timeout=10)


def test_a_busy_server_with_no_queue_is_skipped_with_the_holder_named(monkeypatch, tmp_path):
    holder = hold_lock(lock_path(tmp_path / "post-backup", "main"), 120)
    try:
        rc = run_hook(monkeypatch, ["--reports-dir", str(tmp_path), "--wait", "--queue-timeout", "0"])
    finally:
        holder.kill()
        holder.wait(timeout=10)
    assert rc == 62
    queued, skipped = log_of(tmp_path)[-2:]
    assert f"queued: another drill of server main runs (pid {holder.pid}, drill of backup B1" in queued
    assert "exit 62: skipped, no drill: another drill of this server holds" in skipped
    assert not list(tmp_path.glob("junit-*.xml")) and not list((tmp_path / "post-backup").glob("*.out"))


def test_in_the_background_the_hook_returns_at_once_and_the_drill_process_logs_its_end(tmp_path):
    # --wal-timeout 0: the background process skips the WAITING_FOR_WALS backup, so no Barman is needed.
    env = {**{k: v for k, v in os.environ.items() if not k.startswith(("BARMAN_", "DRILL_"))},
           **barman_env(BARMAN_STATUS="WAITING_FOR_WALS")}
    hook = Path(sys.executable).parent / "pgbv-post-backup"
    done = subprocess.run([str(hook), "--reports-dir", str(tmp_path), "--wal-timeout", "0"], env=env, cwd="/",
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "runs in the background (pid" in done.stderr      # and it returned: nothing holds its output open
    deadline = time.monotonic() + 30
    while not any(": exit 62: " in line for line in log_of(tmp_path)) and time.monotonic() < deadline:
        time.sleep(0.2)
    lines = log_of(tmp_path)
    assert any("detached drill process: " in line for line in lines), lines
    assert "exit 62: skipped, no drill: backup 20261201T010000 is WAITING_FOR_WALS and --wal-timeout is 0" \
        in lines[-1], lines

