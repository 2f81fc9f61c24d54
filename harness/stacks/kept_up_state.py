"""The record of a stack kept up for manual work, and how to reach it as shell `export` lines.

`pgbv-stack up` leaves one stack running per state directory and records it in ``stack.json`` there
(0600): what runs, where, and what `down` must remove (the ownership entries the watchdog would
have reaped); a failed `up` that could not remove all it had started records what is left. No
secret goes into it: the application role's password is in the stack's env file (0600, in its run
directory), which the printed lines source unless secrets are asked for.
``stack.lock`` beside it keeps to one `up` or `down` per state directory at a time.
"""

from __future__ import annotations

import json
import os
import secrets
import shlex
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path

from harness.errors import HarnessError, SetupError
from harness.process.filelock import FileLock, LockBusy

STATE_FILE = "stack.json"


def state_path(state_dir: str | None) -> Path:
    """The state file: in ``state_dir``, else $XDG_STATE_HOME/pgbv, else ~/.local/state/pgbv."""
    if state_dir:
        return Path(state_dir) / STATE_FILE
    base = os.environ.get("XDG_STATE_HOME") or Path.home() / ".local" / "state"
    return Path(base) / "pgbv" / STATE_FILE


@dataclass
class KeptUpStack:
    """A stack kept up: how to reach it, how to run its Barman, and what `down` removes. The record of
    a failed `up` (``failed_up``: why it failed) names only what `down` must remove: no server is up."""

    kind: str                 # local | compose
    run_dir: str
    started: str              # UTC, ISO 8601
    db: dict                  # host, port, name, user: the application login role
    barman_server: str
    barman_config: str        # as the barman command reads it (inside the barman container for compose)
    barman_argv: list[str]    # `barman` with its configuration: [exe, -c, conf] or [docker, exec, barman, barman]
    entries: list[dict] = field(default_factory=list)   # ownership entries: what `down` reaps
    compose: dict | None = None                          # project, argv (the compose command with -p and -f)
    failed_up: str = ""                                  # why `up` failed, on the record of what it left

    @property
    def env_file(self) -> Path:
        return Path(self.run_dir) / "stack.env"

    @property
    def passfile(self) -> Path:
        return Path(self.run_dir) / "app.pgpass"

    def where(self) -> str:
        what = f"compose project {self.compose['project']}" if self.compose else "local servers"
        if self.failed_up:
            return (f"what a failed `pgbv-stack up` (started {self.started}) left of a {self.kind} stack ({what}), "
                    f"run dir {self.run_dir} (it failed: {self.failed_up})")
        return (f"{self.kind} stack ({what}), up since {self.started}, PostgreSQL on "
                f"{self.db['host']}:{self.db['port']}, Barman server '{self.barman_server}', run dir {self.run_dir}")


LOCK_FILE = "stack.lock"


class StackBusy(SetupError):
    """Another `pgbv-stack up` or `down` of this state directory is under way."""


@contextmanager
def exclusive(path: Path, command: str):
    """Hold the state directory's lock for the block (``path``: its state file); StackBusy at once when
    another `up` or `down` holds it: two `up` would both find no record and the second would overwrite
    the first's, which `down` could then never find."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        lock = FileLock(path.with_name(LOCK_FILE), busy="another pgbv-stack up or down")
    except OSError as exc:
        raise SetupError(f"The state directory {path.parent} cannot hold the stack's lock: {exc.strerror or exc}.",
                         "Nothing was done. Choose another with --state-dir (or DRILL_STATE_DIR).") from None
    with lock:
        try:
            lock.acquire(command, timeout=0)
        except LockBusy as exc:
            raise StackBusy(f"{exc.cause} It is bringing a stack up or taking it down in {path.parent}.",
                            "Nothing was done. Let it finish (an `up` may take a minute or two), then see "
                            "`pgbv-stack status`.") from None
        yield


def save(state: KeptUpStack, path: Path) -> None:
    write_private(path, json.dumps(asdict(state), indent=1) + "\n")


def load(path: Path) -> KeptUpStack | None:
    """The recorded stack, None when none is recorded."""
    try:
        data = json.loads(path.read_text())
        return KeptUpStack(**data)
    except FileNotFoundError:
        return None
    except (OSError, ValueError, TypeError) as exc:
        raise HarnessError(f"The state file {path} cannot be read ({exc}).",
                           "If no stack is up, remove it; otherwise take the stack down by hand "
                           "(its run directory and compose project are named inside).") from None


def write_private(path: Path, text: str) -> None:
    """Written whole (0600 from the start) and renamed into place."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w") as out:
            out.write(text)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_secrets(state: KeptUpStack, password: str) -> None:
    """The env file (every export, the password included) and the libpq passfile, both 0600."""
    write_private(state.env_file, "# pgbv-stack: the kept-up stack's environment (secret: mode 0600)\n"
                  + "\n".join(exports(state, password)) + "\n")
    db = state.db
    # Any port: a server recovered from the stack's backups holds the same role.
    write_private(state.passfile, f"{db['host']}:*:{db['name']}:{db['user']}:{_pgpass_escape(password)}\n")


def exports(state: KeptUpStack, password: str | None = None) -> list[str]:
    """`export` lines; without ``password`` the last line sources the env file, which sets it."""
    db = state.db
    values = {"DB_HOST": db["host"], "DB_PORT": db["port"], "DB_NAME": db["name"], "DB_USER": db["user"]}
    if password is not None:
        values["DB_PASSWORD"] = password
    # PGPASSFILE, never PGPASSWORD: libpq would use PGPASSWORD for every role, Barman's too, in place of
    # the passfile its conninfo names, and `barman check` would fail in the shell that sourced these lines.
    values.update({"PGHOST": db["host"], "PGPORT": db["port"], "PGDATABASE": db["name"], "PGUSER": db["user"],
                   "PGPASSFILE": state.passfile})
    values.update({"BARMAN_CONFIG": state.barman_config, "BARMAN_SERVER": state.barman_server,
                   "PGBV_STACK_DIR": state.run_dir})
    lines = [f"export {name}={shlex.quote(str(value))}" for name, value in values.items()]
    if state.compose:
        lines.append("# BARMAN_CONFIG is the path inside the barman container; for docker-compose commands: "
                     'cd "$PGBV_STACK_DIR" (its .env names the project and the compose files)')
    if password is None:
        lines.append(f". {shlex.quote(str(state.env_file))}   # sets DB_PASSWORD (0600 file)")
    return lines


def _pgpass_escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace(":", "\\:")
