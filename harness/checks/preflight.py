"""Pre-flight checks, before any copy: is this backup, with its WAL, restorable at all?

The backup's metadata is readable and complete, `barman verify-backup` passes (for an incremental
backup, on every parent up to its full root too: all are combined into the restore), and the WAL
from the backup's first segment through the one that holds the target is all archived.
Each outcome goes into the restore's record.
"""

from __future__ import annotations

from harness.errors import SetupError, VerificationFailed
from harness.evidence.records import RestoreRecord


def backup_metadata(barman, backup, record: RestoreRecord) -> None:
    """backup.info must exist, parse, say DONE and name the WAL range the restore relies on."""
    info_path = barman.backup_info_path(backup.backup_id)
    if not info_path.exists():
        raise record.failed("backup_metadata", VerificationFailed(
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
        raise record.failed("backup_metadata", VerificationFailed(
            f"Backup {backup.backup_id}: its metadata file {info_path} is damaged "
            f"(status {fields.get('status', 'absent')!r}; missing or empty: {', '.join(absent) or 'none'}).",
            "Barman's catalogue entry for this backup cannot be trusted; take a new backup."))
    record.passed("backup_metadata", f"{info_path.name} status DONE, WAL {fields['begin_wal']}..{fields['end_wal']}")


def verify_backup(barman, backup, record: RestoreRecord, stop=None) -> None:
    """pg_verifybackup, through Barman, against the backup manifest (``stop``: an Event that ends it early,
    when its outcome is no longer wanted)."""
    raw = getattr(backup, "raw", {}) or {}
    method = raw.get("base_backup_information", {}).get("backup_method", "postgres")
    version = int(raw.get("postgresql_version") or 0)
    if method != "postgres" or (version and version < MANIFESTS_SINCE):
        # Such a backup has no manifest to verify against (a missing one of a postgres backup is damage).
        record.passed("verify_backup", f"not applicable: a {method} backup of PostgreSQL {version or '?'} has no "
                                       "manifest; the restore's own checks stand")
        return
    problem = verify_backup_problem(barman, backup.backup_id, stop=stop)
    if problem:
        raise record.failed("verify_backup", problem)
    record.passed("verify_backup", "pg_verifybackup: backup matches its manifest")


def verify_backup_problem(barman, backup_id: str, what: str = "Backup", stop=None) -> VerificationFailed | None:
    """`barman verify-backup` of one stored backup: None when it matches its manifest."""
    done = barman.command("verify-backup", barman.server, backup_id, check=False, timeout=VERIFY_TIMEOUT, stop=stop)
    if done.returncode is None:
        raise SetupError(f"`barman verify-backup` of {backup_id} did not finish within {VERIFY_TIMEOUT} s: no verdict.",
                         details=done.stdout[-1000:])
    if done.returncode == 0:
        return None
    problems = [line.strip() for line in done.stdout.splitlines()
                if "mismatch" in line or "missing" in line or "error" in line.lower()]
    return VerificationFailed(
        f"{what} {backup_id} fails `barman verify-backup`: "
        + ("; ".join(problems[:5]) or f"exit code {done.returncode}") + ".",
        "A file of the stored backup no longer matches its manifest: the backup is damaged.",
        done.stdout[-2000:])


VERIFY_TIMEOUT = 3600
MANIFESTS_SINCE = 130000  # pg_basebackup writes backup_manifest from PostgreSQL 13 on
def backup_chain(barman, backup, record: RestoreRecord, stop=None) -> list:
    """An incremental backup restores only combined with every parent up to its full root:
    each parent must be catalogued, on disk, and pass verify-backup. Returns the chain, leaf first.
    (A full backup is its own chain; nothing is logged for it.)"""
    chain = [backup]
    while chain[-1].parent_backup_id:
        child, parent_id = chain[-1], chain[-1].parent_backup_id
        absent = [str(path) for path in (barman.backup_info_path(parent_id), barman.backup_dir(parent_id))
                  if not path.exists()]
        if absent:
            raise record.failed("backup_chain", VerificationFailed(
                f"Backup {backup.backup_id} is incremental and its chain is broken: {child.backup_id}'s parent "
                f"backup {parent_id} is missing ({' and '.join(absent)} absent).",
                f"An incremental backup is restored by combining it with every parent up to its full backup "
                f"({backup.root_backup_id or 'unknown root'}); without {parent_id} it cannot be restored. Put the "
                f"parent back, or restore from a backup older than the gap and take a new full backup."))
        if len(chain) > 100:
            raise record.failed("backup_chain", VerificationFailed(
                f"Backup {backup.backup_id}: its chain of parents does not end in a full backup "
                f"(over 100 links: {', '.join(link.backup_id for link in chain[:5])} ...).",
                "Barman's catalogue is inconsistent."))
        chain.append(barman.show_backup(parent_id))
    if len(chain) == 1:
        return chain
    root = chain[-1]
    if root.backup_type != "full" or (backup.root_backup_id and root.backup_id != backup.root_backup_id):
        raise record.failed("backup_chain", VerificationFailed(
            f"Backup {backup.backup_id}: its chain ends in {root.backup_id} ({root.backup_type or 'unknown type'}), "
            f"not in its full root backup {backup.root_backup_id or '(none recorded)'}.",
            "Barman's catalogue of the chain is inconsistent; take a new full backup."))
    for parent in chain[1:]:
        problem = verify_backup_problem(barman, parent.backup_id, what="its parent backup", stop=stop)
        if problem:
            raise record.failed("backup_chain", VerificationFailed(
                f"Backup {backup.backup_id} is incremental and its chain is broken: {problem.cause}",
                "Every backup of the chain is combined into the restore: a damaged parent damages it.",
                problem.details))
    record.passed("backup_chain", f"{describe_chain(chain)}: {len(chain)} backups, every parent catalogued and "
                               "passing verify-backup")
    return chain


def describe_chain(chain: list) -> str:
    """'ROOT <- CHILD <- LEAF' for a chain given leaf first."""
    return " <- ".join(link.backup_id for link in reversed(chain))


def wal_continuity(barman, backup, needed: list[str], archived, record: RestoreRecord) -> None:
    """Every segment recovery reads (``needed``: from the backup's begin WAL through the one holding the
    target, across timeline switches) is in ``archived``, Barman's catalogue of what it holds."""
    missing = [segment for segment in needed if segment not in archived]
    if missing:
        shown = ", ".join(missing[:5]) + (f" and {len(missing) - 5} more" if len(missing) > 5 else "")
        streaming = "" if barman.receiver_running() else " Barman's WAL receiver (receive-wal) is not running."
        raise record.failed("wal_continuity", VerificationFailed(
            f"WAL needed by backup {backup.backup_id} is not in the archive: {len(missing)} missing segment(s) "
            f"between {needed[0]} and {needed[-1]}: {shown}.{streaming}",
            "Recovery would stop at the first gap; find the segment (barman list-files --target wal) or take "
            "a new backup after the gap."))
    record.passed("wal_continuity", f"{needed[0]}..{needed[-1]} all archived")
