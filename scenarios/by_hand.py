"""A person at a terminal: shell lines run one at a time under a pseudo-terminal (`docker exec -it` and
docker-compose's `exec` need one), their output read as that person reads it (no colours, no CRs)."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from harness.process.reaping import processes_naming, reap
from harness.process.waiting import wait_until

VENV_BIN = Path(sys.executable).parent        # pgbv-stack, pgbv-write-data, barman, pytest
# colours, carriage returns, and the ^@ the terminal echoes when `script` finds its stdin at its end
_NOISE = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|\r|\x00|\^@")

# A list-backup line: "postgres 20261130T070122 - F - Mon Nov 30 07:01:23 2026 - Size: 45.9 MiB - WAL Size: 0 B"
LIST_BACKUP_LINE = re.compile(r"^(?P<server>\S+) (?P<id>\d{8}T\d{6}) - (?:[FI] - )?\w{3} \w{3} +\d+ "
                              r"\d\d:\d\d:\d\d \d{4} - Size: [\d.]+ \w+ - WAL Size: [\d.]+ \w+", re.MULTILINE)


def clean(text: str) -> str:
    return _NOISE.sub("", text)


@dataclass
class Terminal:
    env: dict
    cwd: Path

    @classmethod
    def fresh(cls, cwd: Path, **variables: str) -> Terminal:
        env = {key: value for key, value in os.environ.items() if not key.startswith(("DRILL_", "PG", "DB_"))}
        # psql pages its output on a terminal: the pager would wait for a key
        env.update(variables, PATH=f"{VENV_BIN}:{env.get('PATH', '/usr/bin:/bin')}", SHELL="/bin/bash",
                   PAGER="cat", PSQL_PAGER="cat")
        env.pop("CI", None)
        return cls(env, cwd)

    def argv(self, line: str) -> list[str]:
        return ["script", "-qefc", line, "/dev/null"]

    def run(self, line: str, rc: int | None = 0, timeout: float = 300, cwd: Path | None = None) -> str:
        """Run ``line``; its output (stdout and stderr as the terminal shows them). ``rc``: the exit code it
        must end with (None: any)."""
        done = subprocess.run(self.argv(line), cwd=cwd or self.cwd, env=self.env, stdin=subprocess.DEVNULL,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=timeout)
        output = clean(done.stdout)
        assert rc is None or done.returncode == rc, f"`{line}` exited {done.returncode}:\n{output[-4000:]}"
        return output

    def start(self, line: str) -> subprocess.Popen:
        """``line &``: started, not waited for."""
        return subprocess.Popen(self.argv(line), cwd=self.cwd, env=self.env, stdin=subprocess.DEVNULL,
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)

    def source(self, line: str) -> None:
        """What `eval`-ing ``line``'s output leaves in the environment becomes this terminal's."""
        done = subprocess.run(["bash", "-c", f'eval "$({line})" && env -0'], cwd=self.cwd, env=self.env,
                              stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=60, check=True)
        self.env = dict(item.split("=", 1) for item in done.stdout.split("\0") if "=" in item)


def finish(proc: subprocess.Popen, seconds: float = 10) -> tuple[bool, str]:
    """(still running after ``seconds``, output so far); a command still running is stopped."""
    try:
        output, _ = proc.communicate(timeout=seconds)
        return False, clean(output)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGTERM)
        output, _ = proc.communicate(timeout=30)
        return True, clean(output)


def wait_for_output(term: Terminal, line: str, expected: str, what: str, timeout: float = 60) -> str:
    """Run ``line`` until its output holds ``expected``."""
    seen = []

    def holds():
        seen[:] = [term.run(line, rc=None, timeout=60)]
        return seen[0] if expected in seen[0] else None
    return wait_until(holds, what=what, timeout=timeout, interval=1, logs=lambda: "  last output:\n" + "".join(seen))


@dataclass
class Ending:
    """How a kept-up stack's `with` block ended: what `pgbv-stack down` said, what was left after it."""

    down: str = ""
    left: list[str] = field(default_factory=list)


@contextmanager
def kept_up(term: Terminal, up: str, workdir: Path, project: str | None = None):
    """``up`` (a `pgbv-stack up` line), the block, then `pgbv-stack down` whatever happened, even if `up`
    itself failed half-way: a stack left up keeps running with nothing to stop it, and a compose one holds
    the fixed container names postgres, barman and app, so every later `up` would fail. `down` runs from
    where the terminal was at the start (the block may move it into the stack's directory, which `down`
    removes). Whatever is left after it (``Ending.left``, for the test to assert empty) is reaped then."""
    ending, home = Ending(), term.cwd
    try:
        term.run(up)
        yield ending
    finally:
        try:
            ending.down = term.run("pgbv-stack down", rc=None, cwd=home)
        except Exception as exc:  # a hung `down`: what is left is still reaped below
            ending.down = f"`pgbv-stack down` did not end: {exc}"
        ending.left = reap_leftovers(workdir, project)


def reap_leftovers(workdir: Path, project: str | None = None) -> list[str]:
    """What is left of a stack: processes naming ``workdir``, its contents, the compose ``project``'s
    containers, networks and volumes; each is reaped (whatever a record says or does not say)."""
    left = [f"process {pid} naming {workdir}" for pid in processes_naming(str(workdir))]
    left += [f"{path} in the work dir" for path in sorted(workdir.iterdir())]
    entries = [{"kind": "processes_naming", "path": str(workdir), "what": f"processes naming {workdir}"}]
    entries += [{"kind": "path", "path": str(path), "what": str(path)} for path in workdir.iterdir()]
    if project is not None:
        from test_compose_stack import project_resources

        left += project_resources(project)
        entries.append({"kind": "compose", "project": project, "what": f"compose project {project}"})
    if left:
        reap({"entries": entries})
    return left
