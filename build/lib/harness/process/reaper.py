"""Ownership records and a watchdog that reaps what a killed harness left behind.

PostgreSQL servers (pg_ctl detaches them), ``barman receive-wal`` (its own session), compose projects
and the run directory all outlive a harness that dies by SIGKILL. ``Ownership.start`` writes a record
of what the harness owns and spawns a watchdog (``python -m harness.process.reaper --record PATH``)
in its own session. The watchdog blocks reading a pipe whose only write end the harness holds: the
kernel closes it however the harness dies, so end of file without a prior "release" line means the
owner is gone, and the watchdog reaps every entry of the record. Records whose owner and watchdog
both died are reaped by ``reap_orphans`` at the next start.

Kept free of heavy imports: the watchdog starts by importing this module.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import select
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from harness.errors import HarnessError
from harness.process.commands import run

# One directory per user: root and an ordinary user on one machine must not share (or fight over) it.
OWNERS_DIR = Path(tempfile.gettempdir()) / f"pgbv-owners-{os.getuid()}"

_ROOT = Path(__file__).resolve().parents[2]  # holds the harness package; the watchdog imports from it
# Files must not be removed under running servers: processes first, paths last.
_REAP_ORDER = ("process_group", "postgres", "processes_naming", "compose", "path")
_STALE_LOG_AGE = 7 * 24 * 3600


class Ownership:
    """What this process owns, recorded so that its watchdog can reap it if this process dies."""

    def __init__(self, record: Path, data: dict, watchdog: subprocess.Popen, pipe: int, reaped: list[str]):
        self.record = record
        self.watchdog = watchdog
        self.reaped_orphans = reaped  # what reap_orphans found from earlier runs, for the caller to log
        self._data = data
        self._pipe = pipe
        self._lock = threading.Lock()
        self._released = False

    @classmethod
    def start(cls, label: str) -> "Ownership":
        reaped = reap_orphans()
        directory = _owners_dir()
        record = directory / f"{os.getpid()}-{secrets.token_hex(4)}.json"
        data = {"label": label, "owner_pid": os.getpid(), "owner_start": _start_time(os.getpid()),
                "watchdog_pid": None, "watchdog_start": None, "entries": []}
        _write_record(record, data)
        read_end, write_end = os.pipe()  # not inheritable: no other child can hold the write end open
        python_path = os.pathsep.join(filter(None, [str(_ROOT), os.environ.get("PYTHONPATH")]))
        env = dict(os.environ, PYTHONPATH=python_path)
        try:
            with open(_log_path(record), "ab") as log:
                watchdog = subprocess.Popen(
                    [sys.executable, "-m", "harness.process.reaper", "--record", str(record)],
                    stdin=read_end, stdout=log, stderr=subprocess.STDOUT, close_fds=True,
                    start_new_session=True, cwd=_ROOT, env=env)
        except OSError as exc:
            os.close(write_end)
            record.unlink(missing_ok=True)
            raise HarnessError(f"Could not start the watchdog that cleans up after a killed run: {exc}.",
                               fix=f"Check that {sys.executable} runs and that {directory} is writable.",
                               ) from None
        finally:
            os.close(read_end)
        data["watchdog_pid"], data["watchdog_start"] = watchdog.pid, _start_time(watchdog.pid)
        _write_record(record, data)
        return cls(record, data, watchdog, write_end, reaped)

    def own_process_group(self, pid: int, what: str) -> str:
        """Reaped by SIGTERM to the group, then SIGKILL after ~3 s."""
        return self._own({"kind": "process_group", "key": f"process_group:{pid}", "what": what,
                          "pgid": pid, "start": _start_time(pid)})

    def own_postgres(self, data_dir: Path, what: str) -> str:
        """Reaped by SIGQUIT (immediate shutdown) then SIGKILL; register before the server starts."""
        path = os.path.abspath(data_dir)
        return self._own({"kind": "postgres", "key": f"postgres:{path}", "what": what, "data_dir": path})

    def own_path(self, path: Path, what: str) -> str:
        """Reaped by removing the file or directory tree."""
        path = os.path.abspath(path)
        return self._own({"kind": "path", "key": f"path:{path}", "what": what, "path": path})

    def own_processes_naming(self, path: Path, what: str) -> str:
        """Reaped by SIGTERM, then SIGKILL, to every process whose command line names ``path``: what
        runs from a run directory (servers, barman receive-wal, pg_receivewal, a barman command)
        names it, however it was started."""
        path = os.path.abspath(path)
        return self._own({"kind": "processes_naming", "key": f"processes_naming:{path}", "what": what,
                          "path": path})

    def own_compose_project(self, project: str, what: str) -> str:
        """Reaped by removing the project's containers, networks and volumes, found by label."""
        return self._own({"kind": "compose", "key": f"compose:{project}", "what": what, "project": project})

    def disown(self, what_or_key: str) -> None:
        """Drop entries (by description or by the key an own_* call returned) once cleaned up normally."""
        with self._lock:
            entries = self._data["entries"]
            kept = [e for e in entries if what_or_key not in (e["what"], e["key"])]
            if len(kept) != len(entries):
                self._data["entries"] = kept
                self._save()

    def release(self) -> None:
        """Clean end: the watchdog exits without reaping and the record goes away."""
        with self._lock:
            if self._released:
                return
            self._released = True
            try:
                os.write(self._pipe, b"release\n")
            except OSError:  # the watchdog is already gone
                pass
            os.close(self._pipe)
            self.record.unlink(missing_ok=True)
        try:
            self.watchdog.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.watchdog.kill()  # it would only have exited: there is nothing left for it to reap
            self.watchdog.wait(timeout=5)
        _log_path(self.record).unlink(missing_ok=True)

    def abandon(self, timeout: float = 60) -> None:
        """A clean end that did not come clean (a cleanup failed or hung): close the pipe without
        releasing, so the watchdog reaps whatever is left now, and wait for it to finish."""
        with self._lock:
            if self._released:
                return
            self._released = True
            os.close(self._pipe)
        try:
            self.watchdog.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            pass  # it goes on in its own session; the record stays for reap_orphans otherwise

    def _own(self, entry: dict) -> str:
        with self._lock:
            if self._released:
                raise HarnessError(f"Cannot record {entry['what']!r}: this ownership was already released.",
                                   fix="Start a new Ownership for resources created after release().")
            entries = [e for e in self._data["entries"] if e["key"] != entry["key"]]
            self._data["entries"] = entries + [entry]
            self._save()
        return entry["key"]

    def _save(self) -> None:
        try:
            _write_record(self.record, self._data)
        except OSError as exc:
            raise HarnessError(f"Could not update the ownership record {self.record}: {exc.strerror}.",
                               fix="Free space or fix permissions there; a killed run would leave this "
                                   "resource behind otherwise.") from None


def reap_orphans() -> list[str]:
    """Reap records whose owner and watchdog both died; return what was done."""
    directory = OWNERS_DIR
    if not directory.is_dir():
        return []
    done = []
    for record in sorted(directory.glob("*.json")):
        try:
            data = json.loads(record.read_text())
            if _alive(data["owner_pid"], data.get("owner_start")) or \
                    _alive(data.get("watchdog_pid"), data.get("watchdog_start")):
                continue
            # Claimed by a rename, so two harnesses starting at once do not reap one record twice.
            claimed = record.with_name(record.name + f".reaping-{os.getpid()}")
            os.rename(record, claimed)
        except (OSError, ValueError, KeyError, TypeError):
            continue  # gone meanwhile, or not a record of ours
        done += [f"{data.get('label', record.stem)}: {line}" for line in reap(data)]
        claimed.unlink(missing_ok=True)
    now = time.time()
    for log in directory.glob("*.log"):
        try:
            if not log.with_suffix(".json").exists() and now - log.stat().st_mtime > _STALE_LOG_AGE:
                log.unlink()
        except OSError:
            pass
    return done


def reap(data: dict) -> list[str]:
    """Reap every entry of a record, processes first and paths last; never raises."""
    order = {kind: i for i, kind in enumerate(_REAP_ORDER)}
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


def main(argv=None) -> int:
    """The watchdog: wait for the owner to release or die, and reap its record if it died."""
    parser = argparse.ArgumentParser(prog="python -m harness.process.reaper")
    parser.add_argument("--record", required=True, type=Path)
    record = parser.parse_args(argv).record
    for sig in (signal.SIGINT, signal.SIGHUP):  # only the owner's death ends the watch
        signal.signal(sig, signal.SIG_IGN)
    try:
        data = json.loads(record.read_text())
    except FileNotFoundError:
        return 0  # the owner released it before this watchdog got going
    except (OSError, ValueError) as exc:
        _say(f"cannot read {record}: {exc}")
        return 1
    owner, owner_start = data["owner_pid"], data.get("owner_start")
    received = b""
    while True:
        ready, _, _ = select.select([0], [], [], 1.0)
        if ready:
            chunk = os.read(0, 4096)
            received += chunk
            if b"release\n" in received:
                return 0
            if not chunk:
                _say(f"owner {owner} died (its pipe closed)")
                break
        elif not _alive(owner, owner_start):  # someone else held the pipe open, e.g. a forked child
            _say(f"owner {owner} died (no longer running)")
            break
        elif not record.exists():
            return 0  # released, or reaped by someone else
    try:
        data = json.loads(record.read_text())  # the latest entries, not those at start
    except (OSError, ValueError) as exc:
        _say(f"cannot read {record}: {exc}")
        return 1
    for line in reap(data):
        _say(line)
    record.unlink(missing_ok=True)
    return 0


# --- reaping one entry: best effort, bounded in time ---------------------------------------------

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
    if not _running(pid) or not _is_postmaster_of(pid, data_dir):
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


def _start_time(pid: int) -> str | None:
    stat_ = _proc_stat(pid)
    return stat_[2] if stat_ else None


def _running(pid: int) -> bool:
    stat_ = _proc_stat(pid)
    return bool(stat_) and stat_[0] != "Z"  # a zombie has exited, it only waits to be reaped


def _alive(pid, start) -> bool:
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


def _is_postmaster_of(pid: int, data_dir: str) -> bool:
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


# --- records ----------------------------------------------------------------------------------

def _owners_dir() -> Path:
    directory = OWNERS_DIR
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    info = os.lstat(directory)
    # In a shared temp directory: refuse one that someone else made (or a symlink planted there).
    if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.getuid() or info.st_mode & 0o077:
        raise HarnessError(f"{directory} is not a private directory of this user (uid {os.getuid()}).",
                           fix="Remove it; the harness recreates it with mode 0700.")
    return directory


def _write_record(record: Path, data: dict) -> None:
    # Written whole and renamed into place: the watchdog never reads a half-written record.
    tmp = record.with_name(f"{record.name}.{secrets.token_hex(4)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w") as out:
            json.dump(data, out, indent=1)
        os.replace(tmp, record)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _log_path(record: Path) -> Path:
    return record.with_suffix(".log")


def _say(line: str) -> None:
    print(time.strftime("%Y-%m-%d %H:%M:%S"), line, flush=True)


if __name__ == "__main__":
    sys.exit(main())
