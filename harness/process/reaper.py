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
import signal
import stat
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from harness.errors import HarnessError
from harness.process.reaping import alive, reap, start_time

# One directory per user: root and an ordinary user on one machine must not share (or fight over) it.
OWNERS_DIR = Path(tempfile.gettempdir()) / f".pgbv-owners-{os.getuid()}"  # hidden: not a run dir

_ROOT = Path(__file__).resolve().parents[2]  # holds the harness package; the watchdog imports from it
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
        data = {"label": label, "owner_pid": os.getpid(), "owner_start": start_time(os.getpid()),
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
        data["watchdog_pid"], data["watchdog_start"] = watchdog.pid, start_time(watchdog.pid)
        _write_record(record, data)
        return cls(record, data, watchdog, write_end, reaped)

    def own_process_group(self, pid: int, what: str) -> str:
        """Reaped by SIGTERM to the group, then SIGKILL after ~3 s."""
        return self._own({"kind": "process_group", "key": f"process_group:{pid}", "what": what,
                          "pgid": pid, "start": start_time(pid)})

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

    @property
    def entries(self) -> list[dict]:
        """What is owned now (a copy): a stack kept up past its process records these for its `down`."""
        with self._lock:
            return [dict(entry) for entry in self._data["entries"]]

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
            if alive(data["owner_pid"], data.get("owner_start")) or \
                    alive(data.get("watchdog_pid"), data.get("watchdog_start")):
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
        elif not alive(owner, owner_start):  # someone else held the pipe open, e.g. a forked child
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
