"""Taking a kept-up stack down: what its record names is removed, and what is left of it is told.

``take_down`` runs compose's own `down -v` first (when its env file is still there), then reaps the
ownership entries the watchdog would have reaped (servers, processes naming the run directory, the
compose project by label, the run directory); the record goes only when ``leftovers`` finds nothing.
The same ``leftovers`` tells a failed `up` whether it must leave a record for `down`.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from harness.config import DrillConfig
from harness.errors import HarnessError
from harness.process.commands import run
from harness.process.reaping import processes_naming, reap
from harness.stacks.kept_up_state import KeptUpStack, exclusive, load, state_path


class NotTakenDown(HarnessError):
    """`down` could not remove everything of the stack: the record stays for the next `down`."""


def take_down(config: DrillConfig) -> tuple[KeptUpStack | None, list[str]]:
    """Remove the recorded stack; (its record or None if none, what was done). Raises NotTakenDown,
    keeping the record, when something is left."""
    path = state_path(config.state_dir)
    with exclusive(path, "pgbv-stack down"):
        return _take_down(path)


def _take_down(path: Path) -> tuple[KeptUpStack | None, list[str]]:
    state = load(path)
    if state is None:
        return None, []
    done = []
    if state.compose and os.path.exists(state.compose["env_file"]):  # compose cannot read its file otherwise
        down = answer([*state.compose["argv"], "--profile", "scratch", "down", "-v", "--remove-orphans",
                       "--timeout", "20"])
        done.append(f"compose down -v of project {state.compose['project']}: "
                    + ("done" if down.returncode == 0 else f"exit {down.returncode}: {down.stdout.strip()[-500:]}"))
    done += reap({"entries": state.entries})
    left = leftovers(state)
    if left:
        raise NotTakenDown(f"The stack was not taken down completely: {'; '.join(left)}.",
                           f"The record stays in {path}: run `pgbv-stack down` again, or remove these by hand.",
                           "\n".join("    " + line for line in done))
    path.unlink(missing_ok=True)
    return state, done


def leftovers(state: KeptUpStack) -> list[str]:
    """What of the stack still exists: its run directory, processes naming it, compose resources."""
    left = []
    if os.path.lexists(state.run_dir):
        left.append(f"run directory {state.run_dir}")
    pids = processes_naming(os.path.abspath(state.run_dir))
    if pids:
        left.append(f"processes {', '.join(map(str, pids))} naming the run directory")
    if state.compose:
        label = f"label=com.docker.compose.project={state.compose['project']}"
        for noun, argv in (("containers", ["docker", "ps", "-aq"]), ("networks", ["docker", "network", "ls", "-q"]),
                           ("volumes", ["docker", "volume", "ls", "-q"])):
            listed = answer([*argv, "--filter", label])
            found = listed.stdout.split()
            if listed.returncode != 0:
                left.append(f"{noun} of compose project {state.compose['project']}: cannot tell "
                            f"({' '.join(found)[:200]})")
            elif found:
                left.append(f"{len(found)} {noun} of compose project {state.compose['project']}")
    return left


def answer(argv) -> subprocess.CompletedProcess:
    """The command's result, also when it could not be started (its output then says why)."""
    try:
        return run(argv, timeout=90, check=False)
    except HarnessError as exc:  # the command could not be started at all
        return subprocess.CompletedProcess(argv, None, exc.cause)
