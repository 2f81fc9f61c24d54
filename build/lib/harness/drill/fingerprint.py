"""A table's fingerprint: row count plus a checksum of its full contents, computed on the server.

Each row is hashed by the server from its column values (``hash_record_extended``: every column
with its type's own 64-bit hash, so no text is produced), and that row hash is hashed once more:
the record hash combines columns linearly, and without the second, non-linear step a sum over rows
would not see two rows swapping a value. The row hashes are summed modulo 2**64. The sum streams
through the server's aggregate (constant memory on both sides, parallel-safe), does not depend on
row order, and any changed value in any row changes it (but for a 2**-64 chance).

Values are compared as their types compare them: numeric 1.0 and 1.00 hash alike, as they are equal.
The books tables hold integers, text and timestamps, where equal means identical.

The same ROW_HASH_SQL gives each row's hash to the property model (from the writes' RETURNING) and
to row diffs, so both agree with the fingerprint by construction.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable

from psycopg import sql

MOD = 2 ** 64

# A row's hash, for a row aliased ``t``: a signed 64-bit integer.
ROW_HASH_SQL = "hashint8extended(hash_record_extended(t, 0), 0)"


@dataclass(frozen=True)
class Fingerprint:
    table: str
    rows: int
    checksum: str

    def __str__(self) -> str:
        return f"{self.rows} rows, checksum {self.checksum}"


FINGERPRINT_SQL = f"SELECT count(*), coalesce(sum({ROW_HASH_SQL}), 0) FROM {{table}} AS t"


def fingerprint_query(table: str) -> sql.Composed:
    return sql.SQL(FINGERPRINT_SQL).format(table=sql.Identifier(*table.split(".")))


def combine(rows: int, total: int, table: str) -> Fingerprint:
    """The fingerprint of ``rows`` rows whose hashes add up to ``total`` (any integer: the
    server's sum of signed bigints comes back as an exact numeric)."""
    return Fingerprint(table, int(rows), f"{int(total) % MOD:016x}")


def fingerprint(conn, table: str = "books") -> Fingerprint:
    """Fingerprint ``table`` over an open connection (one whose session settings are pinned)."""
    rows, total = conn.execute(fingerprint_query(table)).fetchone()
    return combine(rows, total, table)


def fingerprint_of_hashes(row_hashes: Iterable[int], table: str = "books") -> Fingerprint:
    """The fingerprint the server computes for a table whose rows hash to ``row_hashes``."""
    rows = total = 0
    for row_hash in row_hashes:
        rows, total = rows + 1, total + row_hash
    return combine(rows, total, table)
