"""The recoveries of one drill: scratch instances, their evidence, and keeping them on failure."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

from harness.barman.driver import Backup
from harness.drill.recovery import Restore
from harness.drill.targets import RecoveryTarget


class Scratch:
    """Recovers backups into scratch instances for one drill and remembers what happened."""

    def __init__(self, stack, label: str):
        self.stack = stack
        self.label = re.sub(r"[^A-Za-z0-9_.-]+", "-", label).strip("-")[:40] or "drill"
        self.restores: list[Restore] = []
        self.servers = []

    def recover(self, backup: Backup, target: RecoveryTarget, timeout: float = 300) -> Restore:
        """Restore ``backup`` to ``target``; returns once the server reached exactly that target."""
        server = self.stack.new_scratch(self.label)
        self.servers.append(server)
        restore = Restore(server, backup, target)
        self.restores.append(restore)  # kept even if recovery fails: its checks are evidence
        return self.stack.recover_into(restore, timeout=timeout)

    def evidence(self) -> list[tuple[str, str]]:
        """(name, value) pairs for the report: one set per restore, numbered when there are several."""
        pairs = []
        for index, restore in enumerate(self.restores, start=1):
            prefix = f"restore{index}_" if len(self.restores) > 1 else ""
            pairs += [(prefix + key, value) for key, value in restore.evidence().items()]
        return pairs

    def keep(self, destination: Path) -> Path:
        """Copy the scratch data dirs and every log of the run under ``destination``."""
        destination.mkdir(parents=True, exist_ok=True)
        for server in self.servers:
            server.stop(mode="immediate")
            if server.data_dir.parent.exists():
                shutil.copytree(server.data_dir.parent, destination / server.name, symlinks=True,
                                ignore=shutil.ignore_patterns("sockets"), dirs_exist_ok=True)
        for log in self.stack.log_files():
            if log.exists():
                shutil.copy2(log, destination / log.name)
        return destination

    def discard(self) -> None:
        for server in self.servers:
            self.stack.discard_scratch(server)
        self.servers.clear()

    def start_over(self) -> None:
        """Discard every scratch instance and forget earlier restores.

        A property drill runs many examples in one test: only the latest example's restores are
        evidence (after a failure, hypothesis replays the minimal failing example last).
        """
        self.discard()
        self.restores.clear()
