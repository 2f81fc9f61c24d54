"""Running external commands: argv lists, a deadline, errors that carry the output."""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from harness.errors import CommandFailed


@dataclass(frozen=True)
class RunAs:
    """Who runs a command: ``user`` None means the current user."""

    user: str | None = None

    def popen_kwargs(self) -> dict:
        if self.user is None:
            return {}
        # A login-less switch: subprocess sets uid/gid itself, no shell or sudo involved.
        import pwd

        entry = pwd.getpwnam(self.user)
        return {"user": entry.pw_uid, "group": entry.pw_gid, "extra_groups": []}


CURRENT_USER = RunAs()


def run(argv, *, timeout: float = 120, env: dict | None = None, cwd: str | Path | None = None,
        run_as: RunAs = CURRENT_USER, check: bool = True, cause: str = "", fix: str = "",
        stop: threading.Event | None = None):
    """Run ``argv`` to completion; stdout and stderr are merged into ``.stdout``.

    With ``check=False`` nothing the command does raises, a deadline passed included: the result then
    has ``returncode`` None and says so in its output (a cleanup must be able to go on). A command
    that cannot be started at all still raises CommandFailed. ``stop``: once set, the command and its
    children are stopped (returncode None, said in its output).
    """
    argv = [str(a) for a in argv]
    full_env = _merged_env(env)
    try:
        if stop is not None:
            done = _run_until_stopped(argv, timeout, stop, env=full_env, cwd=cwd, **run_as.popen_kwargs())
        else:
            done = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                  timeout=timeout, env=full_env, cwd=cwd, stdin=subprocess.DEVNULL,
                                  **run_as.popen_kwargs())
    except subprocess.TimeoutExpired as exc:
        output = exc.stdout.decode(errors="replace") if isinstance(exc.stdout, bytes) else (exc.stdout or "")
        if not check:
            return subprocess.CompletedProcess(argv, None, output + f"\n(did not finish within {timeout:.0f} s)")
        raise CommandFailed(argv, None, output,
                            cause=cause or f"`{' '.join(argv)}` did not finish within {timeout:.0f} s.",
                            fix=fix) from None
    except FileNotFoundError:
        raise CommandFailed(argv, None, "", cause=cause or f"Command not found: {argv[0]}.",
                            fix=fix) from None
    except OSError as exc:  # e.g. permission denied for the user it runs as
        raise CommandFailed(argv, None, str(exc), cause=cause or f"Could not run {argv[0]}: {exc.strerror}.",
                            fix=fix) from None
    if check and done.returncode != 0:
        raise CommandFailed(argv, done.returncode, done.stdout, cause=cause, fix=fix)
    return done


def _run_until_stopped(argv: list[str], timeout: float, stop: threading.Event, **popen) -> subprocess.CompletedProcess:
    # Its own process group, so that stopping it stops what it started too (barman recover's rsync).
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            stdin=subprocess.DEVNULL, start_new_session=True, **popen)
    deadline = time.monotonic() + timeout
    try:
        while True:
            try:
                output, _ = proc.communicate(timeout=0.1)
                return subprocess.CompletedProcess(argv, proc.returncode, output)
            except subprocess.TimeoutExpired:
                if stop.is_set():
                    stop_process_group(proc)
                    return subprocess.CompletedProcess(argv, None, proc.communicate()[0] + "\n(stopped)")
                if time.monotonic() > deadline:
                    stop_process_group(proc)
                    raise subprocess.TimeoutExpired(argv, timeout, proc.communicate()[0]) from None
    except BaseException:  # Ctrl-C included: its own session kept the signal away from it
        stop_process_group(proc)
        raise


def run_to_file(argv, path: Path, *, timeout: float = 120) -> subprocess.CompletedProcess:
    """Run ``argv`` with its (binary) standard output written to ``path``; ``.stdout`` holds its errors."""
    argv = [str(a) for a in argv]
    with open(path, "wb") as out:
        try:
            done = subprocess.run(argv, stdout=out, stderr=subprocess.PIPE, timeout=timeout, env=_merged_env(None),
                                  stdin=subprocess.DEVNULL)
        except subprocess.TimeoutExpired:
            return subprocess.CompletedProcess(argv, None, f"did not finish within {timeout:.0f} s")
        except OSError as exc:
            raise CommandFailed(argv, None, str(exc), cause=f"Could not run {argv[0]}: {exc.strerror}.") from None
    return subprocess.CompletedProcess(argv, done.returncode, done.stderr.decode(errors="replace"))


def start_background(argv, *, log_path: Path, env: dict | None = None,
                     run_as: RunAs = CURRENT_USER) -> subprocess.Popen:
    """Start a long-running command in its own session, output appended to ``log_path``.

    Its own session keeps Ctrl-C away from it, so the harness decides when it stops and its
    children (pg_receivewal under barman receive-wal) stop with it.
    """
    log = open(log_path, "ab")
    try:
        return subprocess.Popen([str(a) for a in argv], stdout=log, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, env=_merged_env(env),
                                start_new_session=True, **run_as.popen_kwargs())
    finally:
        log.close()


def stop_process_group(proc: subprocess.Popen, timeout: float = 10) -> None:
    """Stop a background command, then anything left in its process group.

    The leader gets SIGTERM alone first, so it can stop and reap its own children (barman
    receive-wal stops pg_receivewal); whatever remains after that is killed.
    """
    if proc.poll() is None:
        try:
            proc.terminate()
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)
    _reap_group(proc.pid)


def _reap_group(pgid: int) -> None:
    # The leader may be gone while a child (pg_receivewal) still runs in its group.
    try:
        os.killpg(pgid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def _merged_env(env: dict | None) -> dict:
    merged = dict(os.environ)
    # Messages must be parseable: the harness reads PostgreSQL and Barman output.
    merged.update({"LC_ALL": "C.UTF-8", "LANG": "C.UTF-8"})
    merged.pop("PGPASSWORD", None)
    if env:
        merged.update(env)
    return merged
