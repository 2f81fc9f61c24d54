"""One restore, start to finish: pre-flight checks, `barman recover` into a scratch server, start it,
and prove the target was reached. What happened goes into the restore's record as it happens, so
a restore that fails still tells how far it got."""

from __future__ import annotations

import datetime as dt
import time

from harness.barman.catalog import Backup
from harness.barman.driver import Barman
from harness.checks import preflight, reached, wal_integrity, wal_route
from harness.drill.aside import ChecksAside
from harness.drill.targets import RecoveryTarget
from harness.errors import CommandFailed, SetupError, TargetRefused
from harness.evidence.records import RestoreRecord
from harness.postgres import versions as pgversions
from harness.postgres.server import ServerStartFailed
from harness.postgres.wal import lsn_to_int, segment_number

# Settings a restored copy must not inherit from the source.
SCRATCH_SETTINGS = {"archive_mode": "off", "hot_standby": "on", "fsync": "off"}


def new_record(backup: Backup, target: RecoveryTarget) -> RestoreRecord:
    return RestoreRecord(backup_id=backup.backup_id, backup_end_time=backup.end_time, target_kind=target.kind,
                         target_value=target.value or target.kind, target_inclusive=target.inclusive,
                         backup_size_bytes=backup.size_bytes or None)


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
    with ChecksAside(record) as aside:
        # verify-backup (a Barman process reading the whole stored backup) needs nothing of the rest:
        # it runs beside the WAL checks and the copy; the server starts only once it passed.
        verified = aside.start(_verified_backup, barman, backup, aside.abandoned)
        route, needed = aside.run(_wal_route, barman, backup, target)
        from_watermark = _on(route, wal_verified_through, needed)
        reading = needed[needed.index(wal_verified_through):] if from_watermark else needed
        # Damaged WAL is named before any copy; only a read long enough to matter goes on beside it.
        read = aside.start if len(reading) >= READ_BESIDE_THE_COPY_FROM else aside.run
        read(_wal_read, barman, server, backup, target, route, reading, from_watermark, aside.abandoned)
        if read_after_target:
            aside.start(_wal_after_target, barman, server, backup, target, route, aside.abandoned)
        t0 = time.monotonic()
        try:
            barman.recover(backup.backup_id, server.data_dir, target, timeout=timeout,
                           extra=(*recover_options, *_timeline_options(route)), stop=aside.failure)
        except (TargetRefused, CommandFailed) as exc:
            aside.settle()  # a check beside the copy that failed stopped it, and is the cause
            if isinstance(exc, TargetRefused):
                raise record.failed("target_accepted", exc) from None
            raise
        aside.settle()
    chain = verified.result()
    record.combined_backups = tuple(link.backup_id for link in reversed(chain))
    record.wal_checked_through = needed[-1]
    record.passed("target_accepted", target.describe())
    if before_start is not None:
        before_start()
    server.adopt_restored_files()
    t1 = time.monotonic()
    record.copy_seconds = t1 - t0
    try:
        server.start(SCRATCH_SETTINGS, timeout=timeout)
    except ServerStartFailed as exc:
        raise reached.start_failure(server, target, record, exc.details, route) from None
    t2 = time.monotonic()
    record.start_seconds = t2 - t1
    reached.target_reached(server, target, record, route, timeout)
    record.reach_seconds = time.monotonic() - t2
    archive_recovery = target.is_pitr or route.crosses  # crash recovery to the end stays on the backup's timeline
    reached.timeline_opened(server, target, record, backup.timeline,
                            route.promotes_to if archive_recovery else backup.timeline)
    return chain


# Segments (16 MiB each) from which the integrity read of the WAL recovery needs runs beside the copy:
# about a second of reading here; shorter reads come first, so damage is named before any copy.
READ_BESIDE_THE_COPY_FROM = 64


def _verified_backup(record: RestoreRecord, barman: Barman, backup: Backup, stop) -> list[Backup]:
    preflight.verify_backup(barman, backup, record, stop)
    return preflight.backup_chain(barman, backup, record, stop)  # an incremental's parents, up to its full root


def _wal_route(record: RestoreRecord, barman: Barman, backup: Backup, target: RecoveryTarget):
    """The files recovery reads (across timeline switches), and those through the target all archived."""
    route = wal_route.plan(barman.wal_catalogue(backup.begin_wal), backup, target.kind, record)
    needed = route.through(backup.begin_wal, _last_needed_segment(target, backup, route))
    preflight.wal_continuity(barman, backup, needed, route.archived, record)
    return route, needed


def _on(route, segment: str, needed: list[str]) -> bool:
    """Whether ``segment`` (a watermark) is one recovery reads, after the first of ``needed``."""
    return bool(segment) and segment in needed[1:] and route.segment(segment_number(segment)) == segment


def _wal_read(record: RestoreRecord, barman: Barman, server, backup: Backup, target: RecoveryTarget, route,
              segments: list[str], from_watermark: bool, stop) -> None:
    """Every record recovery will read, read first: damage is named before the server starts."""
    wal_integrity.wal_integrity(barman, wal_reader(server, backup), backup, segments, record, server.data_dir.parent,
                                start_lsn=wal_integrity.segment_start(segments[0]) if from_watermark else "",
                                end_lsn=_stop_lsn(backup, target), route=route.describe(),
                                encrypted=route.encrypted, stop=stop, page_timeline=route.page_timeline)


def _wal_after_target(record: RestoreRecord, barman: Barman, server, backup: Backup, target: RecoveryTarget,
                      route, stop) -> None:
    """The WAL after the target, read the same way: damage there cannot change this restore, so it is a
    warning."""
    after, newest = _stop_lsn(backup, target), route.newest()
    if not after or not newest or segment_number(newest) < segment_number(route.segment_of(after)):
        return
    wal_integrity.wal_integrity(barman, wal_reader(server, backup), backup,
                                route.through(route.segment_of(after), newest), record, server.data_dir.parent,
                                start_lsn=after, name="wal_after_target", raise_on_damage=False,
                                route=route.describe(), encrypted=route.encrypted, stop=stop,
                                page_timeline=route.page_timeline)


def _stop_lsn(backup: Backup, target: RecoveryTarget) -> str:
    """Where recovery stops reading ("" for the end of the WAL): at the target, never before the backup's
    end (which recovery must reach to be consistent at all)."""
    end = wal_integrity.backup_end_lsn(backup)
    stop = {"immediate": end, "latest": ""}.get(target.kind, target.at_lsn)
    return end if stop and end and lsn_to_int(stop) < lsn_to_int(end) else stop


def _timeline_options(route) -> tuple[str, ...]:
    """Across a timeline switch, the timeline the checks followed is the one recovery follows; for a
    restore to the end this is what makes it follow the switch at all (Barman's default is the backup's)."""
    return ("--target-tli", str(route.timeline)) if route.crosses else ()


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


def _last_needed_segment(target: RecoveryTarget, backup: Backup, route) -> str:
    """The segment holding the target; never one before the backup's end."""
    if target.kind == "immediate":
        last = backup.end_wal
    elif target.kind == "latest" or not target.at_lsn:
        last = route.newest() or backup.end_wal
    else:
        last = route.segment_of(target.at_lsn)
    return route.segment(max(segment_number(last), segment_number(backup.end_wal)))


def _utc(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text.replace(" ", "T", 1))
