"""A drill after every backup: pgbv-post-backup named in a hand-written barman.conf, as a user would.

"Production" is scenarios/production.py (bare initdb, hand-written barman.conf, no harness code); the
hook's line is added to its server section the way an operator edits the file. Then the backups are
taken with Barman's own command: as cron takes them (no --wait: the hook sees WAITING_FOR_WALS and
the drill runs in the background), with the hook's --wait (the backup command ends with the verdict),
with --wait and a damaged backup behind another drill's lock (a red drill: exit 62, the backup stays
DONE, Barman goes on), and a backup that fails.
"""

import os
import re
import signal
import sys
import threading
import time
from pathlib import Path

import pytest
from junitparser import JUnitXml, Properties
from production import production
from support import open_workdir, processes_naming

from harness.hook.lock import ServerLock, lock_path
from harness.process.waiting import wait_until

HOOK = Path(sys.executable).parent / "pgbv-post-backup"   # the console script, installed beside this Python
MARK = "\n# drills after every backup\n"


@pytest.fixture(scope="module")
def prod():
    with production(rows=1000, backups=0) as built:
        yield built


@pytest.fixture(scope="module")
def places(prod, tmp_path_factory):
    """(reports dir, work dir) of the hook's drills; afterwards nothing of them may still run or remain."""
    reports = tmp_path_factory.mktemp("hook-reports")
    with open_workdir() as workdir:
        yield reports, workdir
        leftover = _stop_leftovers(reports)
        left = list(workdir.iterdir())
    assert not leftover, f"drill processes still ran after the module: {leftover}"
    assert left == [], f"the hook's drills left {left} behind"


def set_hook_lines(prod, *lines: str) -> None:
    """Write the hook lines into the server's section, which is the last of the hand-written file."""
    text = prod.barman_conf.read_text().split(MARK)[0]
    assert text.rindex("\n[") == text.index(f"\n[{prod.server}]"), "the server section must be the last"
    prod.barman_conf.write_text(text + MARK + "".join(line + "\n" for line in lines))


def hook_command(reports: Path, workdir: Path, *options: str) -> str:
    return (f"post_backup_retry_script = {HOOK} --reports-dir {reports} --workdir {workdir} --wal-timeout 180 "
            f"--queue-timeout 300 {' '.join(options)}").rstrip()


def hook_log(reports: Path, backup_id: str) -> list[str]:
    path = reports / "post-backup" / "postgres.log"
    text = path.read_text() if path.exists() else ""
    return [line for line in text.splitlines() if f" postgres {backup_id}: " in line]


def statuses(prod) -> dict[str, str]:
    return {item["backup_id"]: item["status"] for item in prod.backup_list()}


def junit_cases(path: Path) -> dict[str, dict]:
    cases = {}
    for suite in JUnitXml.fromfile(str(path)):
        for case in suite:
            cases[case.name] = {p.name: p.value for group in case.iterchildren(Properties) for p in group}
    return cases


def test_a_backup_taken_as_cron_takes_it_is_drilled_in_the_background(prod, places):
    reports, workdir = places
    set_hook_lines(prod, hook_command(reports, workdir))
    before = statuses(prod)
    prod.barman("backup", prod.server, timeout=300)            # as cron runs it: no --wait
    [backup_id] = set(statuses(prod)) - set(before)
    lines = hook_log(reports, backup_id)
    called = next(line for line in lines if "called: " in line)
    launched = next(line for line in lines if "runs in the background" in line)
    assert "status WAITING_FOR_WALS" in called, called        # Barman calls the hook before the WAL is in
    assert "exit 0: " in launched and "runs in the background (pid" in launched, launched
    assert not any("VERIFIED" in line for line in hook_log(reports, backup_id)), "barman backup waited for the drill"

    prod.archive_now()                                          # what barman cron then does: archive the WAL ...
    if statuses(prod)[backup_id] == "WAITING_FOR_WALS":
        prod.barman("check-backup", prod.server, backup_id)     # ... and mark the backup DONE
    assert statuses(prod)[backup_id] == "DONE"

    child = int(re.search(r"pid (\d+)\)", launched).group(1))
    verdict = wait_until(lambda: next((line for line in hook_log(reports, backup_id)
                                       if f"pid {child} " in line and ": exit " in line), None),
                         what=f"the verdict of the drill of backup {backup_id} in the hook's log", timeout=600,
                         interval=1, logs=lambda: "\n".join(hook_log(reports, backup_id)))
    lines = hook_log(reports, backup_id)
    assert "exit 0: VERIFIED: nightly: OK: VERIFIED: 2/2 drills passed" in verdict, "\n".join(lines)
    assert any("is now DONE" in line for line in lines), lines
    cases = junit_cases(reports / f"junit-postgres-{backup_id}.xml")
    assert len(cases) == 2 and {props["backup_id"] for props in cases.values()} == {backup_id}, cases
    for props in cases.values():
        assert props["check_verify_backup"].startswith("passed") and props["check_amcheck"].startswith("passed")
    assert any(backup_id in path.read_text() for path in reports.glob("drill-*.json"))
    wait_until(lambda: not _alive(child), what=f"the drill process {child} to end", timeout=60)


def test_with_wait_the_backup_command_ends_with_the_verdict(prod, places):
    reports, workdir = places
    set_hook_lines(prod, hook_command(reports, workdir, "--wait"))
    backup_id = prod.backup()                                  # barman backup --wait: DONE when the hook runs
    lines = hook_log(reports, backup_id)                       # the drill ran inside Barman's backup command
    assert "status DONE" in lines[0] and not any("background" in line for line in lines), lines
    assert "exit 0: VERIFIED: nightly: OK: VERIFIED: 2/2 drills passed" in lines[-1], lines
    cases = junit_cases(reports / f"junit-postgres-{backup_id}.xml")
    assert {props["backup_id"] for props in cases.values()} == {backup_id} and len(cases) == 2


def test_a_red_drill_leaves_the_backup_done_and_barman_goes_on(prod, places, tmp_path):
    reports, workdir = places
    set_hook_lines(prod, hook_command(reports, workdir, "--wait"))
    taken = {}

    def backup():
        try:
            taken["id"] = prod.backup()                          # barman backup --wait: DONE when the hook runs
        except BaseException as exc:
            taken["error"] = exc

    before = set(statuses(prod))
    thread = threading.Thread(target=backup)
    damage = None
    with ServerLock(lock_path(reports / "post-backup", prod.server)) as lock:
        assert lock.try_acquire("another drill of this server")  # the hook must queue behind it
        thread.start()
        try:
            backup_id = wait_until(lambda: next((name for name in set(statuses(prod)) - before
                                                 if any("queued: " in line for line in hook_log(reports, name))), None),
                                   what="the hook to queue behind the drill lock", timeout=300, interval=0.5)
            assert statuses(prod)[backup_id] == "DONE"
            damage = _flip_a_byte(prod, backup_id)                # after DONE, before its drill: a real red
        except BaseException:
            lock.close()
            thread.join(timeout=600)
            raise
    try:
        thread.join(timeout=600)
        assert not thread.is_alive(), "barman backup did not end: the hook is being retried"
    finally:
        if damage:
            damage[0].write_bytes(damage[1])
    assert "error" not in taken, taken.get("error")
    assert taken["id"] == backup_id and statuses(prod)[backup_id] == "DONE"
    shown = prod.barman_json("show-backup", prod.server, backup_id)[prod.server]
    assert shown["status"] == "DONE", shown

    lines = hook_log(reports, backup_id)
    assert sum("called: " in line for line in lines) == 1, lines     # run once: 62 is not retried
    assert any("queued: another drill of server postgres runs (pid " in line for line in lines), lines
    assert "exit 62: RED (a drill failed verification)" in lines[-1], lines
    assert "was aborted (got exit status 62, Barman resumes)" in prod.barman_log.read_text()
    cases = junit_cases(reports / f"junit-postgres-{backup_id}.xml")
    assert {props["backup_id"] for props in cases.values()} == {backup_id}
    for props in cases.values():
        assert props["check_verify_backup"].startswith("FAILED") and "checksum mismatch" in props["check_verify_backup"]


def test_a_failed_backup_is_not_drilled(prod, places):
    reports, workdir = places
    # A pre-backup hook that aborts (63) fails the backup; Barman still runs the post-backup hooks.
    set_hook_lines(prod, "pre_backup_retry_script = exit 63", hook_command(reports, workdir))
    before = statuses(prod)
    prod.barman("backup", prod.server, check=False, timeout=120)
    [backup_id] = set(statuses(prod)) - set(before)
    assert statuses(prod)[backup_id] == "FAILED"
    lines = hook_log(reports, backup_id)
    assert len(lines) == 2 and "status FAILED" in lines[0], lines
    assert "exit 0: " in lines[1] and "is FAILED" in lines[1] and "no drill" in lines[1], lines
    assert not (reports / f"junit-postgres-{backup_id}.xml").exists()
    set_hook_lines(prod)
    prod.barman("delete", prod.server, backup_id)               # the production's next users need no FAILED entry


def _flip_a_byte(prod, backup_id: str) -> tuple[Path, bytes]:
    base = prod.barman_home / prod.server / "base" / backup_id / "data" / "base"
    heap = next(p for p in sorted(base.rglob("*")) if p.is_file() and p.stat().st_size >= 8192 and p.name.isdigit())
    original = heap.read_bytes()
    heap.write_bytes(original[:4096] + bytes([original[4096] ^ 0xFF]) + original[4097:])
    return heap, original


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def _stop_leftovers(reports: Path) -> list[str]:
    """End drills of this module still running (each names the reports dir); say which there were."""
    left = processes_naming(reports)
    for entry in left:
        try:
            os.kill(int(entry.split(":", 1)[0]), signal.SIGTERM)
        except ProcessLookupError:
            pass
    deadline = time.monotonic() + 120
    while processes_naming(reports) and time.monotonic() < deadline:
        time.sleep(0.5)
    return left
