"""What every stack does the same way: start once, own what it starts, close whatever happened.

Each resource registers its cleanup in ``cleanups`` as it starts (run last-first, each with a
deadline, errors collected and reported after all ran) and is recorded in ``ownership``, so a
watchdog process ends it if the harness itself dies, SIGKILL included.
"""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
from pathlib import Path
from typing import ClassVar

from harness.config import DrillConfig
from harness.errors import SetupError
from harness.process.accounts import unreachable_parent
from harness.process.cleanup import CleanupFailed, Cleanups
from harness.process.progress import Progress
from harness.process.reaper import Ownership
from harness.stacks.workdir import default_workdir


class StackBase:
    kind: ClassVar[str] = ""
    default_server: ClassVar[str] = ""   # the Barman server's name unless the config names one

    @classmethod
    def configured_server(cls, config: DrillConfig) -> str:
        """The Barman server this kind of stack configures, known before it comes up."""
        return config.barman_server or cls.default_server

    def __init__(self, config: DrillConfig):
        self.config = config
        self.progress = Progress(config.progress)
        self.source = None
        self.barman = None
        self.credentials = None
        self.run_dir: Path | None = None
        self.cleanups = Cleanups(f"the {self.kind} stack")
        self.ownership: Ownership | None = None
        self._started = False
        self._closed = False
        self._scratch_count = 0
        self._versions: dict[str, str] | None = None

    def start(self):
        """Bring the stack up (once: a second call returns the running stack)."""
        if self._started:
            return self
        self._started = True
        self.ownership = Ownership.start(f"{self.kind} stack of process {os.getpid()}")
        atexit.register(self.close)
        try:
            self._bring_up()
        except BaseException:
            try:
                self.close()
            except CleanupFailed as cleanup:  # the start failure is the news; the cleanup's goes with it
                self.progress.say(cleanup.render())
            raise
        return self

    def _bring_up(self) -> None:
        raise NotImplementedError

    def barman_server_name(self, default: str) -> str:
        """The name of the Barman server this stack configures: the config's, else ``default``."""
        name = self.config.barman_server or default
        if name == "all" or not name.replace("-", "").replace("_", "").replace(".", "").isalnum():
            raise SetupError(f"{name!r} cannot name the Barman server of the {self.kind} stack.",
                             "Use letters, digits, '-', '_' or '.' ('all' means every server to Barman).")
        return name

    def _make_run_dir(self, run_as) -> None:
        """The run's directory: where the config says or a roomy default, reachable by ``run_as`` (who
        runs the servers), owned for removal and for the watchdog."""
        base = self.config.workdir
        if base is None:
            choice = default_workdir(self.config.rows)
            base = choice.path
            self.progress.say(f"run directory under {base}: {choice.why} (--workdir to choose)")
        if not Path(base).is_dir():
            raise SetupError(f"The work directory {base} does not exist.",
                             "Create it or choose another with --workdir.")
        blocked = unreachable_parent(Path(base), run_as)
        if blocked:
            raise SetupError(
                f"The server user '{run_as.user}' cannot reach the work directory {base}: {blocked} is "
                "closed to other users.", "Choose a work directory under /tmp or /var/tmp (--workdir).")
        self.run_dir = run_dir = Path(tempfile.mkdtemp(prefix="pgbv-", dir=base))
        if not self.config.keep:
            self.cleanups.add("remove the run directory", lambda: shutil.rmtree(run_dir, ignore_errors=True))
            self.ownership.own_path(run_dir, "the run directory")
        # Whatever still runs from the run dir (servers, receive-wal, pg_receivewal) names it.
        self.ownership.own_processes_naming(run_dir, "processes of the run directory")
        # The server user must reach its data dirs below this one.
        os.chmod(run_dir, 0o711)

    def versions(self) -> dict[str, str]:
        """PostgreSQL and Barman versions, read once (asking Barman costs a process start)."""
        if self._versions is not None:
            return self._versions
        found = self._read_versions()
        if self.barman is not None:  # up: the versions will not change
            self._versions = found
        return found

    def _read_versions(self) -> dict[str, str]:
        raise NotImplementedError

    def _next_scratch_name(self, label: str) -> str:
        self._scratch_count += 1
        return f"scratch-{self._scratch_count}-{label}"[:60].rstrip("-_.")

    def close(self) -> None:
        """Stop everything the stack started and remove its run directory (unless kept)."""
        if self._closed:
            return
        self._closed = True
        try:
            self.cleanups.close()
        except CleanupFailed:
            # Something could not be cleaned up in time: the watchdog ends what is left.
            if self.ownership is not None:
                self.ownership.abandon()
            raise
        if self.ownership is not None:
            self.ownership.release()

    def detach(self) -> list[dict]:
        """Leave everything running past this process (a stack kept up for manual work): no cleanup
        runs and the watchdog is released. Returns the ownership entries, which are what a later
        ``harness.stacks.kept_up_down.take_down`` removes."""
        if self._closed or self.ownership is None:
            raise SetupError(f"The {self.kind} stack is not up: there is nothing to keep running.")
        self._closed = True
        entries = self.ownership.entries
        self.cleanups = Cleanups(f"the {self.kind} stack")  # forgotten, not run
        self.ownership.release()
        return entries

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc) -> None:
        self.close()
