"""Barman driven read-only: a configuration the harness did not write, of a server it must not change."""

from __future__ import annotations

import tempfile
from pathlib import Path

from harness.barman.driver import Barman
from harness.errors import SetupError

READ_ONLY = {"list-backups", "list-backup", "show-backup", "show-backups", "show-servers", "list-files", "verify-backup",
             "check", "replication-status", "status", "list-servers", "diagnose", "recover", "restore"}
CANARY_ONLY = {"switch-wal"}


class ExistingBarman(Barman):
    """One server section of the user's own Barman, driven read-only."""

    def __init__(self, executable: str, config_path: Path, server: str, progress, allow_canary: bool,
                 wal_source=None):
        super().__init__(executable, config_path, server, Path(tempfile.gettempdir()), wal_source, progress)
        self.allowed = READ_ONLY | (CANARY_ONLY if allow_canary else set())

    def barman_argv(self, *args) -> list[str]:
        words = [str(a) for a in args]
        subcommand = next((w for w in words if not w.startswith("-") and w != "json"), "")
        if subcommand and subcommand not in self.allowed and not subcommand.startswith("--"):
            raise SetupError(f"The harness does not run `barman {subcommand}` on an existing Barman.",
                             "Only read commands, `recover` into the run's own directory and (with --canary) "
                             "`switch-wal` are run there.")
        return super().barman_argv(*args)

    def receiver_running(self) -> bool:
        # The user's own receive-wal (cron starts it): Barman's check sees it.
        status, _ = self.check().checks.get("receive_wal_running", ("OK", ""))
        return status == "OK"

    def stop_receive_wal(self) -> None:
        """Never: this Barman's WAL receiver is not the harness's to stop."""
