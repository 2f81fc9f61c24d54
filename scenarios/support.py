"""Running a small drill file in its own pytest process, for scenarios about whole runs
(cleanup after every ending, the reports a run leaves)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from contextlib import contextmanager
from pathlib import Path

from harness.stacks.workdir import default_workdir

ROOT = Path(__file__).resolve().parent.parent
INNER_DRILLS = ROOT / ".inner-drills"
INNER_DRILLS.mkdir(exist_ok=True)


@contextmanager
def drill_file(name: str, text: str):
    """A test file inside the project (so the project's conftest.py applies to it as it would to any
    scenario), removed afterwards."""
    folder = Path(tempfile.mkdtemp(prefix="inner-", dir=INNER_DRILLS))
    path = folder / name
    path.write_text(text)
    try:
        yield path
    finally:
        shutil.rmtree(folder, ignore_errors=True)


@contextmanager
def open_workdir():
    """A work dir where a run without --workdir would go (pytest's own tmp dirs are closed to the
    server user)."""
    path = Path(tempfile.mkdtemp(prefix="inner-run-", dir=default_workdir(rows=10_000).path))
    os.chmod(path, 0o755)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def start_inner_run(targets, workdir: Path, reports: Path, *extra: str, env: dict | None = None,
                    own_session: bool = False):
    """Start pytest on ``targets`` (a test file or a list of them) with the project's plugin;
    stdout and stderr merged. ``own_session``: in a session (and process group) of its own, so that the
    run and every process it started (pytest-xdist workers) can be killed together."""
    targets = [targets] if isinstance(targets, (str, Path)) else list(targets)
    argv = [sys.executable, "-m", "pytest", "-c", str(ROOT / "pytest.ini"), "--rootdir", str(ROOT),
            "-p", "no:cacheprovider", "--junitxml", str(reports / "junit.xml"),
            "--workdir", str(workdir), "--reports-dir", str(reports), *extra, *map(str, targets)]
    full_env = {**os.environ, **(env or {})}
    full_env.pop("CI", None)
    return subprocess.Popen(argv, cwd=ROOT, env=full_env, stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=own_session)


def processes_naming(path: Path) -> list[str]:
    """Live processes whose command line mentions ``path``."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if str(path) in cmdline:
            found.append(f"{entry.name}: {cmdline.strip()}")
    return found
