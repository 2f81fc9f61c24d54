"""Who runs the servers, and the run's passwords (kept in a 0600 passfile, never logged)."""

from __future__ import annotations

import os
import pwd
import secrets
from dataclasses import dataclass, field
from pathlib import Path

from harness.errors import SetupError
from harness.process.commands import CURRENT_USER, RunAs

ROLES = ("postgres", "barman", "streaming_barman")


def server_runner(requested_user: str | None = None) -> RunAs:
    """PostgreSQL refuses to run as root: as root, servers run as an unprivileged user."""
    if os.geteuid() != 0:
        return CURRENT_USER
    name = requested_user or "postgres"
    try:
        entry = pwd.getpwnam(name)
    except KeyError:
        raise SetupError(
            f"Running as root, and the user '{name}' that should run the PostgreSQL servers does not exist.",
            "Create it (`useradd --system --home /var/lib/postgresql postgres`) or name another "
            "unprivileged user with --server-user.") from None
    if entry.pw_uid == 0:
        raise SetupError("PostgreSQL refuses to run as root.", "Name an unprivileged user with --server-user.")
    return RunAs(name)


def chown_to(path: Path, run_as: RunAs, recursive: bool = False) -> None:
    if run_as.user is None:
        return
    entry = pwd.getpwnam(run_as.user)
    os.chown(path, entry.pw_uid, entry.pw_gid)
    if recursive:
        for root, dirs, files in os.walk(path):
            for name in dirs + files:
                os.lchown(os.path.join(root, name), entry.pw_uid, entry.pw_gid)


def unreachable_parent(path: Path, run_as: RunAs) -> Path | None:
    """The first directory on ``path`` that ``run_as`` cannot traverse, if any (root's case only)."""
    if run_as.user is None:
        return None
    uid = pwd.getpwnam(run_as.user).pw_uid
    for directory in [*reversed(path.resolve().parents), path.resolve()]:
        info = directory.stat()
        if not (info.st_mode & 0o001 or (info.st_uid == uid and info.st_mode & 0o100)):
            return directory
    return None


@dataclass
class Credentials:
    """Random per-run passwords for the roles the stack uses, and the passfile that holds them."""

    passfile: Path
    passwords: dict = field(default_factory=dict)

    @classmethod
    def create(cls, passfile: Path) -> "Credentials":
        creds = cls(passfile, {role: secrets.token_urlsafe(18) for role in ROLES})
        # Any port: scratch instances restored from a backup keep the source's roles.
        lines = [f"127.0.0.1:*:*:{role}:{pw}" for role, pw in creds.passwords.items()]
        fd = os.open(passfile, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        os.fchmod(fd, 0o600)  # also when the file existed with looser permissions
        with os.fdopen(fd, "w") as handle:
            handle.write("\n".join(lines) + "\n")
        return creds

    def secrets(self) -> list[str]:
        """Values that must never appear in a log or report."""
        return list(self.passwords.values())
