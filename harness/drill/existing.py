"""Drills of backups the harness did not take: a user's own Barman (--stack existing).

Each chosen backup is restored to ``immediate`` (consistent at its end) and to ``latest`` (through the
newest archived WAL), each into a harmless scratch of this run; both must reach their target by the
server's own account, pass amcheck on every database and a full read of every row; rows and size of
every table are recorded. The newest commit in a ``latest`` restore gives the RPO, the time to a usable
instance the RTO; ``--max-rpo`` / ``--max-rto`` make them verdicts. With ``--canary`` the proof is exact:
a token written on production before a restore point must be in the restore, one written after it not.
"""

from __future__ import annotations

import datetime as dt
import re
import shutil
import time
import uuid
from dataclasses import dataclass

import psycopg

from harness.barman.catalog import Backup
from harness.checks import data, preflight
from harness.drill.recovery import new_record, restore_backup
from harness.drill.scratch import Restored, Scratch
from harness.drill.targets import RecoveryTarget
from harness.drill.wal_watermark import Watermarks
from harness.errors import SetupError, VerificationFailed
from harness.evidence.records import RestoreRecord
from harness.postgres.waldump import newest_commit_in
from harness.process import logfiles

CANARY_SCHEMA = "pgbv_canary"


class ExistingScratch(Scratch):
    """The restores of one drill of an existing Barman's backup."""

    def recover(self, backup: Backup, target: RecoveryTarget, timeout: float = 3600) -> Restored:
        stack = self.stack
        record = new_record(backup, target)
        self.records.append(record)
        status = backup.raw.get("status", "")
        if status != "DONE":  # a catalogue entry that cannot be restored: say why, from its metadata
            preflight.backup_metadata(stack.barman, backup, record)
            raise record.failed("backup_metadata", VerificationFailed(
                f"Backup {backup.backup_id} is {status or 'not DONE'} in Barman's catalogue: it cannot be restored.",
                "The newest backup of this server did not complete; see Barman's log for why."))
        pg = stack.binaries_for(backup)      # no verdict before any copy: wrong major, no room
        stack.require_room(backup, to_the_end=target.kind == "latest")
        server = stack.scratch_server(self.label, pg)
        self.servers.append(server)
        started = time.monotonic()
        with stack.progress.step(f"recover backup {backup.backup_id} of '{stack.server_name}' to {target.describe()}"):
            def newest_commit_copied() -> None:
                # What recovery to the end will replay: read before the server recycles its WAL.
                if target.kind == "latest":
                    # A restore that follows a timeline switch finds its WAL where Barman put it for restore_command.
                    copied = server.data_dir / "barman_wal"
                    wal = copied if copied.is_dir() else server.data_dir / "pg_wal"
                    record.newest_commit = newest_commit_in(pg, wal)
            watermarks = Watermarks(stack.config.reports_dir)
            # Keyed by configuration file and server: two Barmans may both name a server "main".
            key = f"{stack.config_path}:{stack.server_name}"
            verified = "" if stack.config.full_wal_check else watermarks.verified_through(key, backup.timeline)
            try:
                chain = restore_backup(stack.barman, server, backup, target, record, timeout=timeout,
                                       # The restore reads the WAL Barman copies in, never `barman get-wal`.
                                       recover_options=(*server.recover_options(backup), "--no-get-wal"),
                                       before_start=newest_commit_copied,
                                       # the drill to the end reads (with the watermark) what follows
                                       read_after_target=target.kind != "immediate",
                                       wal_verified_through=verified)
            except VerificationFailed as exc:
                unusable = _setting_that_cannot_work_here(server)
                if unusable:  # not the backup's fault: this host cannot run production's configuration
                    raise SetupError(f"The restore of backup {backup.backup_id} cannot be started here: {unusable}",
                                     "Override that setting for the scratch (it comes from production's "
                                     "configuration), or drill on a host that has what it needs.", exc.details) from None
                raise
            finally:
                record.overrides = list(server.overrides)
            if target.kind == "latest" and record.wal_checked_through:
                watermarks.advance(key, backup.timeline, record.wal_checked_through)
                record.passed("wal_watermark", (f"earlier runs had verified WAL through {verified}; " if verified else
                                                "read from the backup's first segment; ")
                              + f"verified through {record.wal_checked_through} now ({watermarks.path})")
        usable = time.monotonic() - started
        data.amcheck_all(server, record)
        data.full_read(server, record)
        data.inventory(server, record)
        if target.kind == "latest":
            record.rpo_seconds = _age(record.newest_commit)
        else:
            record.newest_commit = newest_commit(server)
        self._limits(record, usable, target)
        return Restored(server, backup, target, record, chain)

    def keep(self, destination):
        """Logs only: a failed drill of a production backup must not copy production's data under reports/."""
        destination.mkdir(parents=True, exist_ok=True)
        for server in self.servers:
            server.stop(mode="immediate")
            if server.log_path.exists():
                shutil.copy2(server.log_path, destination / f"{server.name}.log")
        for log in self.stack.log_files():
            if log.exists():
                shutil.copy2(log, destination / log.name)
        (destination / "README").write_text("The scratch data dirs of this drill were not kept (a production "
                                            "restore); rerun with --keep to keep the whole run directory.\n")
        return destination

    def _limits(self, record: RestoreRecord, usable_seconds: float, target: RecoveryTarget) -> None:
        config = self.stack.config
        if config.max_rto is not None:
            if usable_seconds > config.max_rto:
                raise record.failed("rto", VerificationFailed(
                    f"Backup {record.backup_id} took {usable_seconds:.0f} s to a usable instance, over --max-rto "
                    f"{config.max_rto:.0f} s.", "Restores of this server are slower than the recovery time "
                    "objective allows."))
            record.passed("rto", f"{usable_seconds:.1f} s <= {config.max_rto:.0f} s")
        if config.max_rpo is not None and target.kind == "latest":
            if record.rpo_seconds is None or record.rpo_seconds > config.max_rpo:
                found = "no commit found" if record.rpo_seconds is None else f"{record.rpo_seconds:.0f} s"
                raise record.failed("rpo", VerificationFailed(
                    f"The restore of backup {record.backup_id} through the archive ends {found} before now, over "
                    f"--max-rpo {config.max_rpo:.0f} s (newest commit in it: {record.newest_commit or 'unknown'}).",
                    "WAL is not reaching Barman's archive often enough, or the server wrote nothing since."))
            record.passed("rpo", f"{record.rpo_seconds:.1f} s <= {config.max_rpo:.0f} s")


LAST_COMMIT = re.compile(r"last completed transaction was at log time (.+?)\s*$")
UTC_TEXT = "to_char(({}) AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS.US') || '+00:00'"


UNUSABLE_HERE = re.compile(r"invalid value for parameter|could not load library|unrecognized configuration parameter|"
                           r"configuration file .* contains errors|could not (create|map) .*shared memory|"
                           r"could not create semaphores|could not access file .*: No such file")


def _setting_that_cannot_work_here(server) -> str:
    """The server's own FATAL line when it refused production's configuration, else ""."""
    lines = [line for line in logfiles.tail(server.log_path, 200) if UNUSABLE_HERE.search(line)]
    return re.sub(r"^.*?(FATAL|LOG|ERROR):\s+", "", lines[-1]).strip() if lines else ""


def newest_commit(server) -> str:
    """The commit time of the last transaction an archive recovery applied (the server keeps it; its
    log says it too). A restore to the end of WAL is a crash recovery: see newest_commit_in."""
    with server.conn.connect("postgres") as conn:
        value = conn.execute("SELECT " + UTC_TEXT.format("pg_last_xact_replay_timestamp()")).fetchone()[0]
        if not value:
            logged = [m.group(1) for line in logfiles.tail(server.log_path, 5000) if (m := LAST_COMMIT.search(line))]
            if logged:
                value = conn.execute("SELECT " + UTC_TEXT.format("%s::timestamptz"), (logged[-1],)).fetchone()[0]
    return value or ""


def _age(timestamp: str) -> float | None:
    if not timestamp:
        return None
    then = dt.datetime.fromisoformat(timestamp.replace(" ", "T", 1))
    return max((dt.datetime.now(dt.timezone.utc) - then).total_seconds(), 0.0)


@dataclass(frozen=True)
class CanaryPoint:
    """Two tokens on production around a restore point, both archived by Barman."""

    restore_point: str
    before: str     # written before the restore point: must be in a restore to it
    after: str      # written after it: must not be
    database: str   # where the tokens are


class Canary:
    """A table of the harness's own schema on production, and the WAL Barman archives for it.

    Keeps the WalSource contract (harness.barman.driver) so Barman's switch-wal can be waited for."""

    def __init__(self, dsn: str):
        self.dsn = dsn

    def _connect(self):
        try:
            return psycopg.connect(self.dsn, autocommit=True, connect_timeout=10)
        except psycopg.OperationalError as exc:
            raise SetupError(f"The canary cannot connect to the production server: {str(exc).strip()}",
                             "Give a DSN with --canary-dsn, or run where the Barman server's conninfo works.") from None

    def plant(self, barman) -> CanaryPoint:
        with self._connect() as conn:
            point = CanaryPoint(f"pgbv-canary-{uuid.uuid4().hex[:12]}", uuid.uuid4().hex, uuid.uuid4().hex,
                                conn.info.dbname)
            conn.execute(f"CREATE SCHEMA IF NOT EXISTS {CANARY_SCHEMA}")
            conn.execute(f"CREATE TABLE IF NOT EXISTS {CANARY_SCHEMA}.tokens (token text PRIMARY KEY, "
                         "written_at timestamptz NOT NULL DEFAULT clock_timestamp())")
            conn.execute(f"INSERT INTO {CANARY_SCHEMA}.tokens (token) VALUES (%s)", (point.before,))
            conn.execute("SELECT pg_create_restore_point(%s)", (point.restore_point,))
        barman.archive_current_wal()
        with self._connect() as conn:
            conn.execute(f"INSERT INTO {CANARY_SCHEMA}.tokens (token) VALUES (%s)", (point.after,))
        barman.archive_current_wal()  # the later token is archived too: a restore that went past the point has it
        return point

    # -- WalSource ----------------------------------------------------------------------------------

    def emit_wal(self) -> None:
        with self._connect() as conn:
            conn.execute("SELECT pg_logical_emit_message(false, 'pgbv-canary', 'tick')")

    def current_wal_segment(self) -> str:
        with self._connect() as conn:
            return conn.execute("SELECT pg_walfile_name(pg_current_wal_insert_lsn())").fetchone()[0]

    def last_commit_time(self) -> str:
        return ""


def canary_found(restored: Restored, point: CanaryPoint) -> None:
    """The token before the restore point is in the restore, exactly once; the one after is not."""
    record = restored.record
    with restored.server.conn.connect(point.database) as conn:
        tokens = {row[0] for row in conn.execute(f"SELECT token FROM {CANARY_SCHEMA}.tokens "
                                                 "WHERE token IN (%s, %s)", (point.before, point.after))}
    if point.before not in tokens or point.after in tokens:
        what = ("the token written before it is missing" if point.before not in tokens
                else "the token written after it is present: recovery went past the point")
        raise record.failed("canary", VerificationFailed(
            f"Backup {record.backup_id} restored to restore point {point.restore_point} does not hold what production "
            f"held there: {what}.", "Recovery did not stop at the restore point, or the archive lost WAL."))
    record.passed("canary", f"token {point.before[:8]} present, token {point.after[:8]} absent")
