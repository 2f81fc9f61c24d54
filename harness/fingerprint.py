"""A table's fingerprint: row count plus a checksum of its full contents, computed on the server.

Each row's text form (with TimeZone, DateStyle and float digits pinned by the session) is hashed
with md5; the two 64-bit halves of every hash are summed. The sum streams through the server's
aggregate (constant memory on both sides, parallel-safe) and does not depend on row order, and
any changed value in any row changes it.

Cost: md5 runs once per row. A plain subquery would be flattened into the two sums and hash every
row twice; the set-returning unnest keeps it a step of its own (OFFSET 0 would too, but it makes
the plan serial). The halves are summed as bigint: the server adds those in 128-bit integers,
exact and far cheaper than numeric.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable

from psycopg import sql

MOD = 2 ** 64


@dataclass(frozen=True)
class Fingerprint:
    table: str
    rows: int
    checksum: str

    def __str__(self) -> str:
        return f"{self.rows} rows, checksum {self.checksum}"


FINGERPRINT_SQL = """
SELECT count(*),
       coalesce(sum(h::bit(64)::bigint), 0),
       coalesce(sum((h << 64)::bit(64)::bigint), 0)
FROM (SELECT unnest(ARRAY[('x' || md5(t::text))::bit(128)]) AS h FROM {table} AS t) AS hashed
"""


def fingerprint_query(table: str) -> sql.Composed:
    return sql.SQL(FINGERPRINT_SQL).format(table=sql.Identifier(*table.split(".")))


def combine(rows: int, high_sum: int, low_sum: int, table: str) -> Fingerprint:
    return Fingerprint(table, int(rows), f"{int(high_sum) % MOD:016x}{int(low_sum) % MOD:016x}")


def fingerprint(conn, table: str = "books") -> Fingerprint:
    """Fingerprint ``table`` over an open connection (one whose session settings are pinned)."""
    rows, high, low = conn.execute(fingerprint_query(table)).fetchone()
    return combine(rows, high, low, table)


def md5_halves(row_md5: str) -> tuple[int, int]:
    """The two 64-bit halves of a row's md5, as the server's sum adds them (equal modulo 2**64)."""
    return int(row_md5[:16], 16), int(row_md5[16:32], 16)


def fingerprint_of_hashes(row_md5s: Iterable[str], table: str = "books") -> Fingerprint:
    """The fingerprint the server computes for a table whose rows hash to ``row_md5s``."""
    rows = high = low = 0
    for row_md5 in row_md5s:
        first, second = md5_halves(row_md5)
        rows, high, low = rows + 1, high + first, low + second
    return combine(rows, high, low, table)
