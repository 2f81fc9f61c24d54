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

    def use_directories_of_configuration(self) -> dict:
        """The server's directories, log file and conninfo as Barman's own configuration code reads them
        from the file, without `show-servers`, which would connect to the server."""
        try:
            from barman.config import Config  # Barman's library: the same parsing and defaults as its CLI
        except ImportError:
            raise SetupError("Barman's Python library is not importable where the harness runs, so the "
                             "configuration cannot be read without connecting to the server.",
                             "Install barman into the harness's Python environment (it is a dependency of it).") from None

        try:
            config = Config(str(self.config_path))
            config.load_configuration_files_directory()
            server = config.get_server(self.server)
        except Exception as exc:  # Barman raises its own errors for a configuration it cannot use
            raise SetupError(f"Barman cannot read server '{self.server}' of {self.config_path}: {exc}") from None
        if server is None:
            raise SetupError(f"The Barman configuration {self.config_path} has no server '{self.server}'.")
        for name in ("backup_directory", "basebackups_directory", "wals_directory"):
            setattr(self, name, Path(getattr(server, name)))
        if getattr(server, "xlogdb_directory", None):  # Barman 3.11+
            self.xlogdb_directory = Path(server.xlogdb_directory)
        if config.log_file:
            self._log_file = Path(config.log_file)
        return {"conninfo": server.conninfo or "", "streaming_conninfo": server.streaming_conninfo or "",
                "backup_directory": str(self.backup_directory)}

    def receiver_running(self) -> bool:
        """Not asked: `barman check` would connect to the server; the user's receive-wal is theirs."""
        return True

    def stop_receive_wal(self) -> None:
        """Never: this Barman's WAL receiver is not the harness's to stop."""
