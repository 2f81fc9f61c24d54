"""Reaping what an ownership record names: processes first, then servers, compose projects, paths.

Every step is best effort, bounded in time, and never raises: the watchdog runs it with nobody
left to handle an error. Linux only (reads /proc).
"""

from __future__ import annotations

import os
import shutil
import signal
import time
from pathlib import Path

from harness.errors import HarnessError
from harness.process.commands import run

# Files must not be removed under running servers: processes first, paths last.
REAP_ORDER = ("process_group", "postgres", "processes_naming", "compose", "path")


def reap(data: dict) -> list[str]:
    """Reap every entry of a record, processes first and paths last; never raises."""
    order = {kind: i for i, kind in enumerate(REAP_ORDER)}
    # Within a kind, last owned first, like any teardown.
    entries = sorted(reversed(data.get("entries", [])), key=lambda e: order.get(e.get("kind"), len(order)))
    done = []
    for entry in entries:
        reaper = {"process_group": _reap_group, "postgres": _reap_postgres, "processes_naming": _reap_naming,
                  "compose": _reap_compose, "path": _reap_path}.get(entry.get("kind"))
        try:
            outcome = reaper(entry) if reaper else f"unknown kind {entry.get('kind')!r}, left alone"
        except Exception as exc:
            outcome = f"failed: {type(exc).__name__}: {exc}"
        done.append(f"{entry.get('what', entry.get('key'))}: {outcome}")
    return done


# --- one entry ---------------------------------------------

def _reap_group(entry: dict) -> str:
    pgid = entry["pgid"]
    leader = _proc_stat(pgid)
    if leader and leader[0] != "Z" and leader[2] != entry.get("start"):
        return f"process {pgid} is no longer the one owned (pid reused), left alone"
    if not _group_members(pgid):
        return f"process group {pgid} already gone"
    _signal_group(pgid, signal.SIGTERM)
    if _wait_for(lambda: not _group_members(pgid), 3):
        return f"stopped process group {pgid}"
    _signal_group(pgid, signal.SIGKILL)
    _wait_for(lambda: not _group_members(pgid), 2)
    left = _group_members(pgid)
    return f"killed process group {pgid}" + (f", still running: {left}" if left else "")


def _reap_postgres(entry: dict) -> str:
    data_dir = entry["data_dir"]
    try:
        pid = int(Path(data_dir, "postmaster.pid").read_text().split("\n", 1)[0])
    except FileNotFoundError:
        return "not running (no postmaster.pid)"
    except (OSError, ValueError) as exc:
        return f"could not read postmaster.pid: {exc}"
    if not _running(pid) or not is_postmaster_of(pid, data_dir):
        return f"not running (postmaster.pid names {pid}, which is not its postmaster)"
    try:
        os.kill(pid, signal.SIGQUIT)  # immediate shutdown: no checkpoint, the server is disposable
        if _wait_for(lambda: not _running(pid), 5):
            return f"stopped postmaster {pid} (immediate shutdown)"
        os.kill(pid, signal.SIGKILL)  # its backends exit when they notice the postmaster is gone
    except ProcessLookupError:
        return f"postmaster {pid} stopped"
    _wait_for(lambda: not _running(pid), 2)
    return f"killed postmaster {pid}" + (" but it is still running" if _running(pid) else "")


def _reap_naming(entry: dict) -> str:
    path = entry["path"]
    found = _processes_naming(path)
    if not found:
        return "none running"
    for pid in found:
        _signal(pid, signal.SIGTERM)
    if not _wait_for(lambda: not _processes_naming(path), 3):
        for pid in _processes_naming(path):
            _signal(pid, signal.SIGKILL)
        _wait_for(lambda: not _processes_naming(path), 2)
    left = _processes_naming(path)
    return f"stopped {len(found)} process(es) naming {path}" + (f", still running: {left}" if left else "")


def processes_naming(path: str) -> list[int]:
    """Running processes (but this one and its parent) with an argument naming ``path`` or below it."""
    return _processes_naming(path)


def _processes_naming(path: str) -> list[int]:
    mine = {os.getpid(), os.getppid()}
    found = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit() or int(entry.name) in mine:
            continue
        try:
            argv = Path(entry.path, "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if _running(entry.name) and any(arg.decode(errors="replace").startswith(path) or
                                        f"={path}" in arg.decode(errors="replace") for arg in argv):
            found.append(int(entry.name))
    return found


def _signal(pid: int, sig: int) -> None:
    try:
        os.kill(pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def _reap_compose(entry: dict) -> str:
    docker = shutil.which("docker")
    if not docker:
        return "skipped: no docker CLI"
    label = f"label=com.docker.compose.project={entry['project']}"
    removed = []
    for listing, removal, noun in ((["ps", "-aq"], ["rm", "-f"], "containers"),
                                   (["network", "ls", "-q"], ["network", "rm"], "networks"),
                                   (["volume", "ls", "-q"], ["volume", "rm", "-f"], "volumes")):
        try:
            found = run([docker, *listing, "--filter", label], timeout=30, check=False)
            ids = found.stdout.split() if found.returncode == 0 else []
            if ids:
                gone = run([docker, *removal, *ids], timeout=60, check=False)
                removed.append(f"{len(ids)} {noun}" + ("" if gone.returncode == 0 else " (with errors)"))
        except HarnessError as exc:  # the command itself failed to run or timed out
            removed.append(f"{noun}: {exc.cause}")
    return "removed " + ", ".join(removed) if removed else "nothing left"


def _reap_path(entry: dict) -> str:
    path = entry["path"]
    if not os.path.lexists(path):
        return "already gone"
    if os.path.isdir(path) and not os.path.islink(path):
        shutil.rmtree(path, ignore_errors=True)
    else:
        os.unlink(path)
    return f"removed {path}" + (" partly" if os.path.lexists(path) else "")


# --- processes, from /proc ----------------------------------------------------------------------

def _proc_stat(pid) -> tuple[str, int, str] | None:
    """(state, process group, start time in clock ticks since boot) of a process, None if none."""
    try:
        text = Path(f"/proc/{int(pid)}/stat").read_text()
    except (OSError, ValueError, TypeError):
        return None
    # The command name (field 2) may hold spaces and parentheses: split after its last ")".
    fields = text.rpartition(")")[2].split()
    return fields[0], int(fields[2]), fields[19]


def start_time(pid: int) -> str | None:
    stat_ = _proc_stat(pid)
    return stat_[2] if stat_ else None


def _running(pid: int) -> bool:
    stat_ = _proc_stat(pid)
    return bool(stat_) and stat_[0] != "Z"  # a zombie has exited, it only waits to be reaped


def alive(pid, start) -> bool:
    """Whether ``pid`` still runs and is the same process (a reused pid has another start time)."""
    stat_ = _proc_stat(pid) if pid else None
    return bool(stat_) and stat_[0] != "Z" and (start is None or stat_[2] == start)


def _group_members(pgid: int) -> list[int]:
    members = []
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            stat_ = _proc_stat(entry.name)
            if stat_ and stat_[1] == pgid and stat_[0] != "Z":
                members.append(int(entry.name))
    return members


def _signal_group(pgid: int, sig: int) -> None:
    try:
        os.killpg(pgid, sig)
    except ProcessLookupError:
        pass


def is_postmaster_of(pid: int, data_dir: str) -> bool:
    # The postmaster runs in its data directory; a stale postmaster.pid may name a reused pid.
    try:
        return os.path.realpath(os.readlink(f"/proc/{pid}/cwd")) == os.path.realpath(data_dir)
    except PermissionError:  # another user's process we may still signal (root is not stopped here)
        return Path(f"/proc/{pid}/comm").read_text().strip() in ("postgres", "postmaster")
    except OSError:
        return False


def _wait_for(condition, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)
    return True
