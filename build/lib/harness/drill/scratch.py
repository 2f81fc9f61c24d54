"""The recoveries of one drill: scratch instances, their records, and keeping them on failure."""

from __future__ import annotations

import re
import shutil
from pathlib import Path
from typing import Mapping

from harness.barman.catalog import Backup
from harness.checks import data
from harness.drill.fingerprint import Fingerprint, fingerprint
from harness.drill.recovery import new_record, restore_backup
from harness.drill.targets import RecoveryTarget
from harness.evidence.records import RestoreRecord


class Restored:
    """A scratch instance restored to a target: query it, hold it against an expectation."""

    def __init__(self, server, backup: Backup, target: RecoveryTarget, record: RestoreRecord, chain: list[Backup]):
        self.server = server
        self.backup = backup
        self.target = target
        self.record = record
        self.chain = chain  # the backups combined into the restore, leaf first

    def fingerprint(self, table: str = "books") -> Fingerprint:
        with self.server.conn.connect("books_db") as conn:
            return fingerprint(conn, table)

    def assert_matches(self, expected: Fingerprint, rows: Mapping[int, int] | None = None) -> None:
        """amcheck must find the restored table sound, and it must equal, row count and checksum,
        what the source held at the target. With the expected ``rows`` (id -> the row's hash),
        a mismatch also names the first missing, extra and changed ids."""
        data.amcheck(self.server, expected.table, self.record)
        data.fingerprint_matches(self.server, self.backup.backup_id, self.target.describe(), expected,
                                 self.record, rows)


class Scratch:
    """Recovers backups into scratch instances of ``stack`` for one drill, and keeps their records."""

    def __init__(self, stack, label: str):
        self.stack = stack
        self.label = re.sub(r"[^A-Za-z0-9_.-]+", "-", label).strip("-")[:40] or "drill"
        self.records: list[RestoreRecord] = []
        self.servers = []

    def recover(self, backup: Backup, target: RecoveryTarget, timeout: float = 300) -> Restored:
        """Restore ``backup`` to ``target``; returns once the server reached exactly that target."""
        server = self.stack.scratch_server(self.label)
        self.servers.append(server)
        record = new_record(backup, target)
        self.records.append(record)  # kept even if recovery fails: its checks are evidence
        with self.stack.progress.step(f"recover backup {backup.backup_id} to {target.describe()}"):
            chain = restore_backup(self.stack.barman, server, backup, target, record,
                                   self.stack.barman.newest_archived_commit(), timeout=timeout)
        return Restored(server, backup, target, record, chain)

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
        self.records.clear()
