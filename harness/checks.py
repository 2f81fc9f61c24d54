"""Checks every drill runs, before and after the restore; each outcome is kept as evidence.

Pre-flight: the backup's metadata is readable and complete, `barman verify-backup` passes, and the
WAL from the backup's first segment through the one that holds the target is all archived.
Post-restore: amcheck finds the restored books table and its indexes sound. (Target reached,
timeline and the exact fingerprint comparison live in recovery.py.)
"""

from __future__ import annotations

from dataclasses import dataclass, field

from psycopg import sql

from .errors import VerificationFailed


@dataclass
class CheckOutcome:
    name: str
    passed: bool
    detail: str = ""


@dataclass
class CheckLog:
    """The checks one restore ran, in order."""

    outcomes: list[CheckOutcome] = field(default_factory=list)

    def passed(self, name: str, detail: str = "") -> None:
        self.outcomes.append(CheckOutcome(name, True, detail))

    def failed(self, name: str, error: VerificationFailed) -> VerificationFailed:
        self.outcomes.append(CheckOutcome(name, False, error.cause))
        return error

    def as_properties(self) -> dict:
        return {f"check_{outcome.name}": ("passed" if outcome.passed else "FAILED")
                + (f": {outcome.detail}" if outcome.detail else "") for outcome in self.outcomes}


def backup_metadata(barman, backup, log: CheckLog) -> None:
    """backup.info must exist, parse, say DONE and name the WAL range the restore relies on."""
    info_path = barman.backup_info_path(backup.backup_id)
    if not info_path.exists():
        raise log.failed("backup_metadata", VerificationFailed(
            f"Backup {backup.backup_id}: its metadata file {info_path} is missing.",
            "Barman cannot restore a backup it has no metadata for; restore the file or take a new backup."))
    fields = {}
    for line in info_path.read_text(errors="replace").splitlines():
        key, sep, value = line.partition("=")
        if sep:
            fields[key.strip()] = value.strip()
    wanted = ("status", "begin_wal", "end_wal", "begin_xlog", "end_xlog", "timeline", "version")
    absent = [key for key in wanted if not fields.get(key) or fields.get(key) == "None"]
    if absent or fields.get("status") != "DONE":
        raise log.failed("backup_metadata", VerificationFailed(
            f"Backup {backup.backup_id}: its metadata file {info_path} is damaged "
            f"(status {fields.get('status', 'absent')!r}; missing or empty: {', '.join(absent) or 'none'}).",
            "Barman's catalogue entry for this backup cannot be trusted; take a new backup."))
    log.passed("backup_metadata", f"{info_path.name} status DONE, WAL {fields['begin_wal']}..{fields['end_wal']}")


def verify_backup(barman, backup, log: CheckLog) -> None:
    """pg_verifybackup, through Barman, against the backup manifest."""
    done = barman.command("verify-backup", barman.server, backup.backup_id, check=False, timeout=600)
    if done.returncode != 0:
        problems = [line.strip() for line in done.stdout.splitlines()
                    if "mismatch" in line or "missing" in line or "error" in line.lower()]
        raise log.failed("verify_backup", VerificationFailed(
            f"Backup {backup.backup_id} fails `barman verify-backup`: "
            + ("; ".join(problems[:5]) or f"exit code {done.returncode}") + ".",
            "A file of the stored backup no longer matches its manifest: the backup is damaged.",
            done.stdout[-2000:]))
    log.passed("verify_backup", "pg_verifybackup: backup matches its manifest")


def wal_continuity(barman, backup, through_segment: str, log: CheckLog) -> None:
    """Every segment from the backup's begin WAL through ``through_segment`` is archived."""
    missing = barman.missing_wal(backup, through_segment)
    if missing:
        shown = ", ".join(missing[:5]) + (f" and {len(missing) - 5} more" if len(missing) > 5 else "")
        streaming = "" if barman.receiver_running() else " Barman's WAL receiver (receive-wal) is not running."
        raise log.failed("wal_continuity", VerificationFailed(
            f"WAL needed by backup {backup.backup_id} is not in the archive: {len(missing)} missing segment(s) "
            f"between {backup.begin_wal} and {through_segment}: {shown}.{streaming}",
            "Recovery would stop at the first gap; find the segment (barman list-files --target wal) or take "
            "a new backup after the gap."))
    log.passed("wal_continuity", f"{backup.begin_wal}..{through_segment} all archived")


AMCHECK_SQL = {
    "heap": "SELECT blkno, offnum, msg FROM verify_heapam({table}::regclass) LIMIT 5",
    "indexes": ("SELECT c.relname::text, bt_index_check(c.oid, true)::text FROM pg_index i "
                "JOIN pg_class c ON c.oid = i.indexrelid JOIN pg_am a ON a.oid = c.relam "
                "WHERE i.indrelid = {table}::regclass AND a.amname = 'btree'"),
}


def amcheck(server, table: str, log: CheckLog) -> None:
    """verify_heapam on the table and bt_index_check (heapallindexed) on each of its btree indexes."""
    with server.conn.connect("books_db") as conn:
        conn.execute("CREATE EXTENSION IF NOT EXISTS amcheck")
        literal = sql.Literal(table)
        try:
            corrupt = conn.execute(sql.SQL(AMCHECK_SQL["heap"]).format(table=literal)).fetchall()
            indexes = [row[0] for row in conn.execute(sql.SQL(AMCHECK_SQL["indexes"]).format(table=literal))]
        except Exception as exc:  # amcheck raises on index corruption
            raise log.failed("amcheck", VerificationFailed(
                f"amcheck found corruption in the restored {table}: {str(exc).strip()}",
                "The restored data is not what PostgreSQL wrote.")) from None
    if corrupt:
        where = "; ".join(f"block {blk} item {off}: {msg}" for blk, off, msg in corrupt)
        raise log.failed("amcheck", VerificationFailed(
            f"amcheck (verify_heapam) found corruption in the restored {table}: {where}.",
            "The restored data is not what PostgreSQL wrote."))
    log.passed("amcheck", f"verify_heapam({table}) clean; bt_index_check on {', '.join(indexes) or 'no indexes'}")
