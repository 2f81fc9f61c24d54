"""Finding PostgreSQL's server binaries, Barman and rsync, with errors that say how to get them."""

from __future__ import annotations

import glob
import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from harness.errors import SetupError

SERVER_TOOLS = ("initdb", "pg_ctl", "postgres", "pg_basebackup", "pg_receivewal")


@dataclass(frozen=True)
class PgBin:
    """A PostgreSQL bin dir whose tools the harness runs."""

    bindir: Path
    version: str  # as the server prints it, e.g. "15.18"

    @property
    def major(self) -> int:
        return int(self.version.split(".")[0])

    def tool(self, name: str) -> str:
        return str(self.bindir / name)


def find_pg_bindir(requested: str | None = None) -> PgBin:
    """``requested`` if given, else pg_config's bindir, else the newest /usr/lib/postgresql/*/bin."""
    if requested:
        candidates = [(Path(requested), "--pg-bindir")]
    else:
        candidates = []
        pg_config = shutil.which("pg_config")
        if pg_config:
            try:
                out = subprocess.run([pg_config, "--bindir"], capture_output=True, text=True,
                                     timeout=10).stdout.strip()
                if out:
                    candidates.append((Path(out), "pg_config --bindir"))
            except (OSError, subprocess.SubprocessError):
                pass
        for path in sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=_version_key, reverse=True):
            candidates.append((Path(path), "/usr/lib/postgresql"))
    looked = []
    for path, source in candidates:
        missing = [tool for tool in SERVER_TOOLS if not os.access(path / tool, os.X_OK)]
        if not missing:
            return PgBin(path, _server_version(path))
        looked.append(f"{path} (from {source}; missing {', '.join(missing)})")
    where = "; ".join(looked) if looked else "no candidate directory (no pg_config, no /usr/lib/postgresql/*/bin)"
    raise SetupError(
        f"PostgreSQL server binaries not found: looked at {where}.",
        "Install them (Debian: `apt-get install -y postgresql`) or name a bin dir holding "
        f"{', '.join(SERVER_TOOLS)} with --pg-bindir.")


def find_barman() -> str:
    """The barman executable next to this interpreter (the project's venv), else on PATH."""
    beside = Path(sys.executable).parent / "barman"
    found = str(beside) if os.access(beside, os.X_OK) else shutil.which("barman")
    if not found:
        raise SetupError("Barman is not installed in this environment.",
                         "Run ./setup.sh (it installs barman>=3.19 into .venv), or `pip install 'barman>=3.19'`.")
    return found


def require_rsync() -> str:
    found = shutil.which("rsync")
    if not found:
        raise SetupError("rsync is not installed; `barman recover` needs it even for a local recovery.",
                         "Install it: `apt-get install -y rsync` (./setup.sh does this when run as root).")
    return found


def tool_version(argv: list[str]) -> str:
    try:
        out = subprocess.run(argv, capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    match = re.search(r"\d+(\.\d+)+", out.stdout + out.stderr)
    return match.group(0) if match else "unknown"


def _server_version(bindir: Path) -> str:
    return tool_version([str(bindir / "postgres"), "--version"])


def _version_key(path: str):
    match = re.search(r"/(\d+)/bin$", path)
    return int(match.group(1)) if match else -1
