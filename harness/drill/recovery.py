"""One restore, start to finish: pre-flight checks, `barman recover` into a scratch server, start it,
and prove the target was reached. What happened goes into the restore's record as it happens, so
a restore that fails still tells how far it got."""

from __future__ import annotations

import datetime as dt
import time
from concurrent.futures import ThreadPoolExecutor

from harness.barman.catalog import Backup
from harness.barman.driver import Barman
from harness.checks import preflight, reached, wal_integrity
from harness.drill.targets import RecoveryTarget
from harness.errors import SetupError, TargetRefused
from harness.evidence.records import RestoreRecord
from harness.postgres import versions as pgversions
from harness.postgres.server import ServerStartFailed
from harness.postgres.wal import segment_of

# Settings a restored copy must not inherit from the source.
SCRATCH_SETTINGS = {"archive_mode": "off", "hot_standby": "on", "fsync": "off"}


def new_record(backup: Backup, target: RecoveryTarget) -> RestoreRecord:
    return RestoreRecord(backup_id=backup.backup_id, backup_end_time=backup.end_time, target_kind=target.kind,
                         target_value=target.value or target.kind, target_inclusive=target.inclusive)


def restore_backup(barman: Barman, server, backup: Backup, target: RecoveryTarget, record: RestoreRecord,
                   newest_archived_commit: str = "", timeout: float = 300,
                   recover_options: tuple[str, ...] = (), before_start=None,
                   wal_verified_through: str = "", read_after_target: bool = True) -> list[Backup]:
    """Restore ``backup`` to ``target`` into the empty scratch ``server`` and start it; returns the
    backups combined into the restore (leaf first). Raises VerificationFailed with the cause.
    ``wal_verified_through``: a segment an earlier run read whole and found sound; WAL integrity is read
    from there on (re-reading that one, for the continuity into the next)."""
    record.rpo_seconds = rpo_seconds(backup, target, newest_archived_commit)
    preflight.backup_metadata(barman, backup, record)
    with ThreadPoolExecutor(max_workers=1) as pool:
        # Listing the archive is read-only and independent of verify-backup: it runs meanwhile.
        listing = pool.submit(barman.archived_wal_segments, backup.backup_id)
        preflight.verify_backup(barman, backup, record)
        chain = preflight.backup_chain(barman, backup, record)  # an incremental's parents, up to its full root
        archived = _on_the_backups_timeline(listing.result(), backup, target)
    record.combined_backups = tuple(link.backup_id for link in reversed(chain))
    through = _last_needed_segment(target, backup, archived)
    preflight.wal_continuity(barman, backup, through, record, archived)
    _wal_integrity(barman, server, backup, target, through, archived, record, wal_verified_through,
                   read_after_target)

    t0 = time.monotonic()
    try:
        barman.recover(backup.backup_id, server.data_dir, target, timeout=timeout, extra=recover_options)
    except TargetRefused as exc:
        raise record.failed("target_accepted", exc) from None
    record.passed("target_accepted", target.describe())
    if before_start is not None:
        before_start()
    server.adopt_restored_files()
    t1 = time.monotonic()
    record.copy_seconds = t1 - t0
    try:
        server.start(SCRATCH_SETTINGS, timeout=timeout)
    except ServerStartFailed as exc:
        raise reached.start_failure(server, target, record, exc.details, archived, backup.timeline) from None
    t2 = time.monotonic()
    record.start_seconds = t2 - t1
    reached.target_reached(server, target, record, archived or [backup.end_wal], backup.timeline, timeout)
    record.reach_seconds = time.monotonic() - t2
    reached.timeline_opened(server, target, record, backup.timeline)
    return chain


def _on_the_backups_timeline(archived: list[str], backup: Backup, target: RecoveryTarget) -> list[str]:
    """The archive's segments of the backup's timeline. WAL of a later timeline (a failover after the
    backup) means recovery beyond the backup's end would have to follow the switch, which these checks
    do not: no verdict, rather than a gap that is not one."""
    later = sorted({int(name[:8], 16) for name in archived} - {backup.timeline})
    later = [timeline for timeline in later if timeline > backup.timeline]
    if later and target.kind != "immediate":
        raise SetupError(f"The archive holds WAL of timeline {later[-1]} after backup {backup.backup_id} (timeline "
                         f"{backup.timeline}): a restore past the backup's end would follow a timeline switch, which "
                         "the harness does not verify yet.",
                         "Drill a backup taken on the current timeline, or restore to `immediate` only.")
    return [name for name in archived if int(name[:8], 16) == backup.timeline]


def _wal_integrity(barman: Barman, server, backup: Backup, target: RecoveryTarget, through: str,
                   archived: list[str], record: RestoreRecord, verified_through: str = "",
                   read_after_target: bool = True) -> None:
    """Every record recovery will read, read first: damage is named before any copy. WAL after the
    target is read too: damage there cannot change this restore, so it is a warning."""
    pg = wal_reader(server, backup)
    workdir = server.data_dir.parent
    stop = {"immediate": wal_integrity.backup_end_lsn(backup), "latest": ""}.get(target.kind, target.at_lsn)
    first, start = backup.begin_wal, ""
    if verified_through and backup.begin_wal < verified_through <= through:
        first, start = verified_through, wal_integrity.segment_start(verified_through)
    wal_integrity.wal_integrity(barman, pg, backup, wal_integrity.segment_range(first, through), record,
                                workdir, start_lsn=start, end_lsn=stop)
    record.wal_checked_through = through
    if read_after_target and stop and archived and archived[-1] >= segment_of(stop, backup.timeline):
        wal_integrity.wal_integrity(barman, pg, backup,
                                    wal_integrity.segment_range(segment_of(stop, backup.timeline), archived[-1]),
                                    record, workdir, start_lsn=stop, name="wal_after_target", raise_on_damage=False)


def wal_reader(server, backup: Backup):
    """pg_waldump of the backup's major: the scratch server's own binaries, else the installed ones."""
    pg = getattr(server, "pg", None)
    if pg is not None:
        return pg
    version = int(backup.raw.get("postgresql_version") or 0)
    found = pgversions.by_major(version // 10000 if version >= 100000 else version // 100) if version else None
    if found is None:
        raise SetupError(f"No pg_waldump of PostgreSQL {version or '(unknown)'} here to read the WAL of backup "
                         f"{backup.backup_id} with.", "Install that major's server binaries.")
    return found.pg


def rpo_seconds(backup: Backup, target: RecoveryTarget, newest_archived_commit: str) -> float | None:
    """Data-loss window at the target: from the target to the newest archived commit."""
    if target.kind == "latest":
        return 0.0
    target_time = target.at_time or (backup.end_time if target.kind == "immediate" else "")
    if not (target_time and newest_archived_commit):
        return None
    delta = _utc(newest_archived_commit) - _utc(target_time)
    return max(delta.total_seconds(), 0.0)


def _last_needed_segment(target: RecoveryTarget, backup: Backup, archived: list[str]) -> str:
    if target.kind == "immediate":
        return backup.end_wal
    if target.kind == "latest" or not target.at_lsn:
        return archived[-1] if archived else backup.end_wal
    return segment_of(target.at_lsn, backup.timeline)


def _utc(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text.replace(" ", "T", 1))
