"""The watchdog reaps what a SIGKILLed owner left behind; release() and live owners are left alone."""

import json
import os
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from harness.process import reaper, reaping
from harness.process.commands import start_background

ROOT = Path(__file__).resolve().parents[1]

# Owns a process group and a directory, then reports them and sleeps until killed.
HELPER = """
import json, os, sys, tempfile, time
from pathlib import Path
sys.path.insert(0, {root!r})
from harness.process import reaper
from harness.process.commands import start_background

reaper.OWNERS_DIR = Path(sys.argv[1])
mode = sys.argv[2]
owner = reaper.Ownership.start("reaper test")
sleeper = start_background(["sleep", "300"], log_path=Path(sys.argv[1]).parent / "sleep.log")
owner.own_process_group(sleeper.pid, "sleep 300")
directory = Path(tempfile.mkdtemp(prefix="pgbv-reaper-test-"))
(directory / "file").write_text("x")
owner.own_path(directory, "the run dir")
child = None
if mode == "release":
    owner.release()
elif mode == "fork":
    child = os.fork()  # holds the pipe's write end open: only the owner poll can notice the death
    if child == 0:
        time.sleep(60)
        os._exit(0)
print(json.dumps({{"sleep": sleeper.pid, "dir": str(directory), "record": str(owner.record),
                  "watchdog": owner.watchdog.pid, "child": child}}), flush=True)
time.sleep(300)
"""


def _gone(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0]
    except FileNotFoundError:
        return True
    return state == "Z"  # exited; its new parent just has not reaped it yet


def _eventually(condition, seconds=15.0) -> bool:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)
    return True


@pytest.fixture
def owner_process(tmp_path):
    """Runs the helper in a mode; yields (helper process, what it reported); cleans up whatever is left."""
    script = tmp_path / "owner.py"
    script.write_text(HELPER.format(root=str(ROOT)))
    started = []

    def run(mode):
        helper = subprocess.Popen([sys.executable, str(script), str(tmp_path / "owners"), mode],
                                  stdout=subprocess.PIPE, stderr=open(tmp_path / "owner.err", "wb"),
                                  text=True)
        started.append(helper)
        ready, _, _ = select.select([helper.stdout], [], [], 30)
        line = helper.stdout.readline() if ready else ""
        assert line, f"the helper did not report: {(tmp_path / 'owner.err').read_text()}"
        info = json.loads(line)
        started.append(info)
        return helper, info

    yield run
    for item in started:
        if isinstance(item, subprocess.Popen):
            item.kill()
            item.wait()
            continue
        if not _gone(item["sleep"]):
            os.killpg(item["sleep"], signal.SIGKILL)
        if item["child"] and not _gone(item["child"]):
            os.kill(item["child"], signal.SIGKILL)
        shutil.rmtree(item["dir"], ignore_errors=True)


@pytest.mark.parametrize("mode", ["kill", "fork"], ids=["pipe-closes", "owner-poll"])
def test_sigkilled_owner_is_reaped_by_its_watchdog(owner_process, mode):
    helper, info = owner_process(mode)
    record = Path(info["record"])
    assert record.exists() and not _gone(info["sleep"]) and Path(info["dir"]).is_dir()
    assert [e["kind"] for e in json.loads(record.read_text())["entries"]] == ["process_group", "path"]

    helper.send_signal(signal.SIGKILL)
    helper.wait()

    assert _eventually(lambda: _gone(info["sleep"])), "the owned process survived its owner"
    assert _eventually(lambda: not Path(info["dir"]).exists()), "the owned directory survived its owner"
    assert _eventually(lambda: not record.exists()), "the record survived the reaping"
    assert _eventually(lambda: _gone(info["watchdog"]))
    log = record.with_suffix(".log").read_text()
    assert "owner" in log and "stopped process group" in log and "removed" in log


def test_release_leaves_resources_alone(owner_process):
    helper, info = owner_process("release")
    assert not Path(info["record"]).exists()
    assert _eventually(lambda: _gone(info["watchdog"]), 5)

    helper.send_signal(signal.SIGKILL)
    helper.wait()
    time.sleep(2)  # longer than the watchdog's poll: it would have reaped by now
    assert not _gone(info["sleep"])
    assert Path(info["dir"], "file").exists()


def _dead_pid() -> int:
    done = subprocess.Popen(["true"])
    done.wait()
    return done.pid


def test_reap_orphans_reaps_records_of_dead_owners_and_dead_watchdogs(tmp_path, monkeypatch):
    monkeypatch.setattr(reaper, "OWNERS_DIR", tmp_path / "owners")
    owners = reaper._owners_dir()
    owned = start_background(["sleep", "300"], log_path=tmp_path / "owned.log")
    foreign = start_background(["sleep", "300"], log_path=tmp_path / "foreign.log")
    directory = Path(tempfile.mkdtemp(prefix="pgbv-reaper-test-"))
    try:
        def record(name, owner_pid, owner_start, entries):
            path = owners / f"{name}.json"
            reaper._write_record(path, {"label": name, "owner_pid": owner_pid, "owner_start": owner_start,
                                        "watchdog_pid": _dead_pid(), "watchdog_start": None,
                                        "entries": entries})
            return path

        crashed = record("crashed", _dead_pid(), None, [
            {"kind": "process_group", "key": "a", "what": "owned sleep", "pgid": owned.pid,
             "start": reaper.start_time(owned.pid)},
            # Same pid, another start time: the pid was reused by a process that is not ours.
            {"kind": "process_group", "key": "b", "what": "reused pid", "pgid": foreign.pid, "start": "1"},
            {"kind": "path", "key": "c", "what": "run dir", "path": str(directory)},
        ])
        live = record("live", os.getpid(), reaper.start_time(os.getpid()), [
            {"kind": "path", "key": "d", "what": "live dir", "path": str(directory)}])

        done = reaper.reap_orphans()

        assert done == [f"crashed: reused pid: process {foreign.pid} is no longer the one owned "
                        "(pid reused), left alone",
                        f"crashed: owned sleep: stopped process group {owned.pid}",
                        f"crashed: run dir: removed {directory}"]
        assert owned.wait(timeout=5) == -signal.SIGTERM
        assert foreign.poll() is None
        assert not directory.exists()
        assert not crashed.exists() and not list(owners.glob("*.reaping-*"))
        assert live.exists()  # its owner (this process) still runs
    finally:
        for proc in (owned, foreign):
            proc.kill()
            proc.wait()
        shutil.rmtree(directory, ignore_errors=True)


def test_postgres_entry_stops_only_the_postmaster_of_its_data_dir(tmp_path):
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    # A stand-in postmaster: runs in its data directory, like the real one.
    postmaster = subprocess.Popen(["sleep", "300"], cwd=data_dir, start_new_session=True)
    try:
        entry = {"kind": "postgres", "key": "pg", "what": "source server", "data_dir": str(data_dir)}
        (data_dir / "postmaster.pid").write_text(f"{os.getpid()}\n{data_dir}\n")  # stale, names this test
        assert "not its postmaster" in reaper.reap({"entries": [entry]})[0]

        (data_dir / "postmaster.pid").write_text(f"{postmaster.pid}\n{data_dir}\n")
        assert reaper.reap({"entries": [entry]}) == [
            f"source server: stopped postmaster {postmaster.pid} (immediate shutdown)"]
        assert postmaster.wait(timeout=5) == -signal.SIGQUIT
    finally:
        postmaster.kill()
        postmaster.wait()


def test_reap_order_is_processes_then_servers_then_compose_then_paths(monkeypatch):
    calls = []
    for kind in ("group", "postgres", "naming", "compose", "path"):
        def fake(entry, kind=kind):
            calls.append((kind, entry["what"]))
            return "ok"
        monkeypatch.setattr(reaping, f"_reap_{kind}", fake)
    entries = [{"kind": "path", "what": "p1"}, {"kind": "compose", "what": "c"},
               {"kind": "processes_naming", "what": "n"},
               {"kind": "postgres", "what": "pg"}, {"kind": "process_group", "what": "g"},
               {"kind": "path", "what": "p2"}, {"kind": "nonsense", "what": "x"}]
    done = reaper.reap({"entries": entries})
    assert calls == [("group", "g"), ("postgres", "pg"), ("naming", "n"), ("compose", "c"), ("path", "p2"),
                     ("path", "p1")]
    assert done[-1] == "x: unknown kind 'nonsense', left alone"


def test_processes_naming_a_run_dir_are_stopped_however_they_were_started(tmp_path):
    run_dir = tmp_path / "pgbv-run"
    run_dir.mkdir()
    # One names the dir as an argument, one as --option=value (pg_receivewal's way); one names another dir.
    naming = [subprocess.Popen([sys.executable, "-c", "import time; time.sleep(300)", str(run_dir / "barman.conf")]),
              subprocess.Popen([sys.executable, "-c", "import time; time.sleep(300)", f"--directory={run_dir}/wals"])]
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(300)", str(tmp_path / "pgbv-other")])
    try:
        assert _eventually(lambda: len(reaping._processes_naming(str(run_dir))) == 2), "both started"
        entry = {"kind": "processes_naming", "key": "n", "what": "processes of the run dir", "path": str(run_dir)}
        [line] = reaper.reap({"entries": [entry]})
        assert line.startswith(f"processes of the run dir: stopped 2 process(es) naming {run_dir}"), line
        assert [proc.wait(timeout=5) for proc in naming] == [-signal.SIGTERM, -signal.SIGTERM]
        assert other.poll() is None, "a process naming another directory must be left alone"
    finally:
        for proc in [*naming, other]:
            proc.kill()
            proc.wait()


def test_importing_the_reaper_is_cheap():
    out = subprocess.run([sys.executable, "-c", "import sys, harness.process.reaper;"
                          "print(sorted(m for m in ('psycopg', 'tenacity', 'pytest', 'hypothesis', 'faker')"
                          " if m in sys.modules))"], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_record_follows_own_and_disown_and_release_ends_the_watchdog(tmp_path, monkeypatch):
    monkeypatch.setattr(reaper, "OWNERS_DIR", tmp_path / "owners")
    owner = reaper.Ownership.start("in process")
    try:
        entries = lambda: [e["key"] for e in json.loads(owner.record.read_text())["entries"]]  # noqa: E731
        key = owner.own_path(tmp_path / "run", "the run dir")
        owner.own_compose_project("pgbv-x", "the compose project")
        owner.own_postgres(tmp_path / "data", "the source server")
        assert key == f"path:{tmp_path / 'run'}"
        assert entries() == [key, "compose:pgbv-x", f"postgres:{tmp_path / 'data'}"]
        owner.disown(key)
        owner.disown("the compose project")
        assert entries() == [f"postgres:{tmp_path / 'data'}"]
        assert json.loads(owner.record.read_text())["watchdog_pid"] == owner.watchdog.pid
    finally:
        owner.release()
    assert owner.watchdog.returncode == 0
    assert not list((tmp_path / "owners").iterdir())
    owner.release()  # a second release does nothing
    with pytest.raises(reaper.HarnessError, match="already released"):
        owner.own_path(tmp_path, "late")


def test_owners_dir_open_to_others_is_refused(tmp_path, monkeypatch):
    shared = tmp_path / "owners"
    shared.mkdir(mode=0o777)
    shared.chmod(0o777)
    monkeypatch.setattr(reaper, "OWNERS_DIR", shared)
    with pytest.raises(reaper.HarnessError, match="not a private directory"):
        reaper.Ownership.start("x")
