"""Barman driven through its command line, with a configuration generated per run."""

from __future__ import annotations

import json
import os
import subprocess
import threading
import time
from pathlib import Path
from typing import Protocol

from harness.barman.catalog import Backup, CheckResult, backup_id_from_output, parse_check_json
from harness.barman.wal_catalogue import WalCatalogue, read_catalogue
from harness.drill.targets import RecoveryTarget
from harness.errors import CommandFailed, HarnessError, SetupError, TargetRefused
from harness.postgres.wal import lsn_to_int, missing_segments
from harness.process import logfiles
from harness.process.commands import run, start_background, stop_process_group
from harness.process.progress import QUIET, Progress
from harness.process.waiting import wait_until

# rsync workers for `barman recover`, one per core up to four: on 2 cores two copied 10-20 % faster
# than one at 10k and 1M rows (four gave nothing more there).
RECOVER_JOBS = max(1, min(4, os.cpu_count() or 1))



class WalSource(Protocol):
    """What Barman needs of the server it archives: WAL to nudge a switched segment out, and where
    WAL and commits stand (harness.drill.source.Source is one)."""

    def emit_wal(self) -> None: ...
    def current_wal_segment(self) -> str: ...
    def last_commit_time(self) -> str: ...


class Barman:
    """One Barman server section, driven by ``barman -c CONFIG``."""

    stoppable = True  # stopping a command here stops what it started (see ComposeBarman)

    def __init__(self, executable: str, config_path: Path, server: str, home: Path, wal_source: WalSource | None,
                 progress: Progress = QUIET):
        self.executable = executable
        self.config_path = Path(config_path)
        self.server = server
        self.home = Path(home)
        # Where Barman keeps this server's catalogue (a configuration may place them elsewhere:
        # ``use_directories_of_configuration`` asks Barman).
        self.backup_directory = self.home / server
        self.basebackups_directory = self.backup_directory / "base"
        self.wals_directory = self.backup_directory / "wals"
        self.xlogdb_directory: Path | None = None  # where the WAL catalogue lives: wals_directory unless configured
        self._wal_source = wal_source  # None: a Barman whose server the harness must not write to
        self._log_file: Path | None = None
        self.progress = progress
        self.receiver: subprocess.Popen | None = None
        self._newest_archived_commit = ""  # commit time of the newest commit known to be archived
        self.receiver_log = self.home / "receive-wal.log"
        self._last_backup_done = 0.0  # time.time() when the previous backup returned

    @property
    def log_path(self) -> Path:
        return self._log_file or self.home / "barman.log"

    def use_directories_of_configuration(self) -> dict:
        """Take the catalogue's directories and log file from Barman's own view of the configuration
        (`show-servers`, read-only); returns that view."""
        section = self.json("show-servers", self.server).get(self.server) or {}
        for name in ("backup_directory", "basebackups_directory", "wals_directory", "xlogdb_directory"):
            if section.get(name):
                setattr(self, name, Path(section[name]))
        if section.get("log_file"):
            self._log_file = Path(section["log_file"])
        return section

    def command(self, *args, timeout: float = 120, check: bool = True, json_output: bool = False,
                cause: str = "", stop: threading.Event | None = None) -> subprocess.CompletedProcess:
        """``stop``: once set, the command is stopped where it can be (see ``stoppable``)."""
        argv = self.barman_argv(*(["-f", "json"] if json_output else []), *args)
        return run(argv, timeout=timeout, check=check, cause=cause, stop=stop if self.stoppable else None)

    def barman_argv(self, *args) -> list[str]:
        """The argv of one barman command (the compose stack runs it inside its container)."""
        return [self.executable, "-c", str(self.config_path), *map(str, args)]

    def json(self, *args, timeout: float = 60) -> dict:
        done = self.command(*args, timeout=timeout, json_output=True)
        try:
            return json.loads(done.stdout)
        except json.JSONDecodeError:
            raise CommandFailed(self.barman_argv(*args), done.returncode, done.stdout,
                                cause="Barman did not print the JSON it was asked for.") from None

    # -- WAL streaming ------------------------------------------------------------------------

    def create_slot(self) -> None:
        self.command("receive-wal", "--create-slot", self.server, timeout=60,
                     cause=f"Barman could not create the replication slot for '{self.server}'.")

    def start_receive_wal(self) -> None:
        self.receiver = start_background(self.barman_argv("receive-wal", self.server),
                                         log_path=self.receiver_log)

    def receiver_running(self) -> bool:
        return self.receiver is not None and self.receiver.poll() is None

    def stop_receive_wal(self) -> None:
        if self.receiver is not None:
            stop_process_group(self.receiver)
            self.receiver = None

    def emit_wal(self) -> None:
        # Without new WAL, pg_receivewal keeps a switched segment open: waits nudge the source.
        if self._wal_source is not None:
            self._wal_source.emit_wal()

    def archive_current_wal(self, timeout: float = 60) -> str:
        """Close the WAL segment written now and wait until Barman has archived it; return its name.

        Everything committed before this call is then in the archive, so a recovery that ends at
        the end of WAL would include it: a drill proves the cut by finding it absent.
        """
        segment = self._wal_source.current_wal_segment()
        newest_commit = self._wal_source.last_commit_time()

        def archived():
            if self.is_archived(segment):
                return segment
            self._with_wal_ticks(["switch-wal", "--force", "--archive", "--archive-timeout",
                                  str(int(timeout)), self.server], timeout, "switch-wal --archive")
            return segment if self.is_archived(segment) else None
        archived_segment = wait_until(archived, what=f"WAL segment {segment} to be archived by Barman",
                                      timeout=timeout, interval=0.2, logs=self.log_excerpt)
        self._newest_archived_commit = newest_commit
        return archived_segment

    def newest_archived_commit(self) -> str:
        """Commit time of the newest commit this driver has seen archived ("" before any): the end of
        the data-loss window a restore is measured against."""
        return self._newest_archived_commit

    def backup_info_path(self, backup_id: str) -> Path:
        """Barman 3.13.2+ keeps it as meta/<id>-backup.info; older ones as base/<id>/backup.info."""
        current = self.backup_directory / "meta" / f"{backup_id}-backup.info"
        legacy = self.backup_dir(backup_id) / "backup.info"
        return legacy if legacy.exists() and not current.exists() else current

    def backup_dir(self, backup_id: str) -> Path:
        return self.basebackups_directory / backup_id

    def is_archived(self, segment: str) -> bool:
        return self.wal_path(segment).exists()

    def wal_path(self, segment: str) -> Path:
        """Where the archive keeps ``segment`` (uncompressed name; Barman may add a suffix when it compresses)."""
        return self.wals_directory / segment[:16] / segment

    def wait_for_streaming(self, timeout: float = 30) -> dict:
        """Wait until replication-status lists Barman's streaming client."""
        def streaming():
            if not self.receiver_running():
                raise SetupError(f"`barman receive-wal {self.server}` exited.", details=self.log_excerpt())
            status = self.replication_status()
            return status if status["clients"] else None
        return wait_until(streaming, what=f"Barman's WAL receiver to stream from '{self.server}'",
                          timeout=timeout, interval=0.3, logs=self.log_excerpt)

    def wait_until_received(self, lsn: str, timeout: float = 40) -> dict:
        """Wait until the WAL receiver reports it has written WAL past ``lsn``.

        pg_receivewal reports its position every 10 s (its --status-interval), hence the deadline.
        """
        def received():
            status = self.replication_status()
            written = [lsn_to_int(client["write_lsn"]) for client in status["clients"] if client.get("write_lsn")]
            return status if written and max(written) > lsn_to_int(lsn) else None
        return wait_until(received, what=f"Barman's WAL receiver to report WAL written past {lsn}",
                          timeout=timeout, interval=0.5, logs=self.log_excerpt)

    def replication_status(self) -> dict:
        """The source's current LSN and its WAL streaming clients, as Barman reports them."""
        data = self.json("replication-status", "--target", "wal-streamer", self.server)
        section = data.get(self.server) or {}
        return {"server_lsn": section.get("server_lsn"), "clients": section.get("wal_streamers", []),
                "errors": data.get("_ERROR", [])}

    # -- checks and backups -------------------------------------------------------------------

    def check(self) -> CheckResult:
        done = self.command("check", self.server, check=False, timeout=60, json_output=True)
        try:
            return parse_check_json(json.loads(done.stdout), self.server)
        except json.JSONDecodeError:
            return CheckResult({"barman check": ("FAILED", done.stdout.strip()[-300:])})

    def wait_until_check_ok(self, timeout: float = 60) -> CheckResult:
        last: list[CheckResult] = []

        def all_ok():
            result = self.check()
            last[:] = [result]
            if not result.ok:
                self.emit_wal()
            return result if result.ok else None

        def failing_checks():
            failing = "\n".join("    " + line for line in (last[0].failures() if last else []))
            return f"  failing checks:\n{failing}\n{self.log_excerpt()}"
        try:
            return wait_until(all_ok, what=f"`barman check {self.server}` to report all OK", timeout=timeout,
                              interval=0.5, logs=failing_checks)
        except HarnessError as exc:
            raise SetupError(exc.cause, "Barman cannot back this server up; the failing checks are below.",
                             exc.details) from None

    def backup(self, timeout: float = 600, incremental_from: str | None = None) -> Backup:
        """A new backup: full, or block-level incremental on ``incremental_from`` (a backup id,
        ``latest-full`` or ``latest``; PostgreSQL 17+ with summarize_wal on)."""
        incremental = ["--incremental", incremental_from] if incremental_from else []
        self._wait_for_a_new_backup_id()
        with self.progress.step(f"barman backup {self.server}"):
            try:
                done = self._with_wal_ticks(["backup", *incremental, "--wait", "--wait-timeout", str(int(timeout)),
                                             self.server], timeout, "backup")
            finally:
                self._last_backup_done = time.time()
        backup_id = backup_id_from_output(done.stdout)
        return self.show_backup(backup_id)

    def _wait_for_a_new_backup_id(self) -> None:
        # A backup id is the second Barman starts it in: a second backup within the same second
        # gets the same id, and Barman writes it over the first (an incremental erases its own
        # parent). Starting in a later second than the previous backup returned rules that out,
        # whatever time zone Barman names the second in.
        next_second = int(self._last_backup_done) + 1
        if self._last_backup_done and time.time() < next_second:
            time.sleep(next_second - time.time())

    def show_backup(self, backup_id: str) -> Backup:
        data = self.json("show-backup", self.server, backup_id)
        info = data.get(self.server, data)
        base = info.get("base_backup_information", {})
        catalog = info.get("catalog_information", {})
        return Backup(
            backup_id=info.get("backup_id", backup_id),
            begin_wal=base.get("begin_wal", ""),
            end_wal=base.get("end_wal", ""),
            begin_time=base.get("begin_time", ""),
            end_time=base.get("end_time", ""),
            timeline=int(base.get("timeline", 0) or 0),
            size_bytes=int(base.get("backup_size_bytes", 0) or 0),
            backup_type=info.get("backup_type", ""),
            parent_backup_id=catalog.get("parent_backup_id") or "",
            root_backup_id=catalog.get("root_backup_id") or "",
            raw=info,
        )

    def archived_wal_segments(self, backup_id: str) -> list[str]:
        """Segments of the backup's timeline from its first WAL on, listed in Barman's catalogue and on
        disk, oldest first."""
        backup = self.show_backup(backup_id)
        return sorted(name for name in self.wal_catalogue(backup.begin_wal).segments
                      if int(name[:8], 16) == backup.timeline)

    def wal_catalogue(self, first: str) -> WalCatalogue:
        """What Barman's WAL catalogue lists from segment ``first`` on (any timeline) and the archive holds,
        with every history file: read from the file, no Barman process."""
        return read_catalogue(self.xlogdb_path, self.wals_directory, first)

    @property
    def xlogdb_path(self) -> Path:
        """`<server>-xlog.db` in the xlogdb directory (Barman 3.11+), else the older `wals/xlog.db`."""
        current = (self.xlogdb_directory or self.wals_directory) / f"{self.server}-xlog.db"
        legacy = self.wals_directory / "xlog.db"
        return legacy if legacy.exists() and not current.exists() else current

    def backup_ids(self) -> list[str]:
        """Ids of the backups Barman lists for the server, oldest first."""
        listed = self.json("list-backups", self.server).get(self.server, [])
        return sorted(item["backup_id"] for item in listed if isinstance(item, dict) and "backup_id" in item)

    def missing_wal(self, backup: Backup, through_segment: str) -> list[str]:
        """Segments of the backup's timeline from its first WAL to ``through_segment`` not in the archive."""
        archived = self.wal_catalogue(backup.begin_wal).segments
        return missing_segments(sorted(archived), backup.begin_wal, through_segment)

    # -- recovery -----------------------------------------------------------------------------

    def recover(self, backup_id: str, destination: Path, target: RecoveryTarget, timeout: float = 600,
                extra: tuple[str, ...] = (), stop: threading.Event | None = None) -> subprocess.CompletedProcess:
        """``stop``: once set (a check beside the copy failed), the copy is stopped where it can be."""
        # Promote at a point-in-time target (Barman accepts a target action only with a target).
        action = ["--target-action", "promote"] if target.is_pitr else []
        argv = ["recover", "--jobs", RECOVER_JOBS, *target.barman_args(), *action, *extra, self.server, backup_id,
                destination]
        done = self.command(*argv, timeout=timeout, check=False, stop=stop)
        if done.returncode != 0:
            refused = [line for line in done.stdout.splitlines() if "ERROR" in line or "before the backup" in line]
            if any("target" in line.lower() for line in refused):
                raise TargetRefused(
                    f"Barman refused the recovery target {target.describe()} for backup {backup_id}: "
                    + " ".join(line.strip() for line in refused), details=done.stdout)
            raise CommandFailed(self.barman_argv(*argv), done.returncode, done.stdout,
                                cause=f"`barman recover` of backup {backup_id} into {destination} failed.")
        return done

    # -- internals ----------------------------------------------------------------------------

    def _with_wal_ticks(self, args: list[str], timeout: float, what: str) -> subprocess.CompletedProcess:
        """Run a Barman command that waits for WAL, emitting a tiny WAL record every 0.3 s meanwhile."""
        argv = self.barman_argv(*args)
        proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + timeout + 30
        try:
            while proc.poll() is None:
                if time.monotonic() > deadline:
                    proc.kill()
                    break
                try:
                    self.emit_wal()
                except Exception:  # the source may be busy or gone; the command's own error tells
                    pass
                try:
                    proc.wait(timeout=0.3)
                except subprocess.TimeoutExpired:
                    pass
            output = proc.communicate()[0]
        except BaseException:
            proc.kill()
            proc.wait()
            raise
        if proc.returncode != 0:
            raise CommandFailed(argv, proc.returncode, output + "\n" + self.log_excerpt(),
                                cause=f"`barman {what}` for '{self.server}' failed.")
        return subprocess.CompletedProcess(argv, proc.returncode, output)

    def log_excerpt(self) -> str:
        """The end of Barman's log and the WAL receiver's, for error messages."""
        return (logfiles.excerpt(self.log_path, 15) + "\n" + logfiles.excerpt(self.receiver_log, 10))


