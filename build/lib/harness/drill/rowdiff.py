"""Row-level differences between a table on a server and the rows a model expects.

Rows are compared by id and by the row's hash (the one the fingerprint sums), so
a diff names the first ids that are missing, extra or changed. The server's side is streamed in
id order: memory stays bounded by the model, whatever the table's size.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterable, Iterator, Mapping

from psycopg import sql

from harness.drill.fingerprint import ROW_HASH_SQL

ROW_HASHES_SQL = f"SELECT id, {ROW_HASH_SQL} FROM {{table}} AS t ORDER BY id"


@dataclass
class RowDiff:
    """The first differing ids of each kind (up to ``limit``) and how many there are in all."""

    limit: int
    missing: list[int] = field(default_factory=list)   # expected, not on the server
    extra: list[int] = field(default_factory=list)     # on the server, not expected
    changed: list[int] = field(default_factory=list)   # on both, with other contents
    totals: dict = field(default_factory=lambda: {"missing": 0, "extra": 0, "changed": 0})

    def __bool__(self) -> bool:
        return any(self.totals.values())

    def add(self, kind: str, row_id: int) -> None:
        self.totals[kind] += 1
        ids = getattr(self, kind)
        if len(ids) < self.limit:
            ids.append(row_id)

    def render(self) -> str:
        if not self:
            return "row diff: no row differs (same ids, same contents)"
        parts = []
        for kind in ("missing", "extra", "changed"):
            total = self.totals[kind]
            if total:
                ids = ", ".join(map(str, getattr(self, kind)))
                more = f", ... ({total - self.limit} more)" if total > self.limit else ""
                parts.append(f"{total} {kind} (ids {ids}{more})")
        return "row diff: " + "; ".join(parts)


def diff_rows(actual: Iterable[tuple[int, int]], expected: Mapping[int, int], limit: int = 10) -> RowDiff:
    """Compare ``actual`` (id, row hash) pairs in ascending id order with ``expected`` (id -> row hash)."""
    diff = RowDiff(limit)
    wanted = iter(sorted(expected.items()))
    want = next(wanted, None)
    for row_id, row_hash in actual:
        while want is not None and want[0] < row_id:
            diff.add("missing", want[0])
            want = next(wanted, None)
        if want is not None and want[0] == row_id:
            if want[1] != row_hash:
                diff.add("changed", row_id)
            want = next(wanted, None)
        else:
            diff.add("extra", row_id)
    while want is not None:
        diff.add("missing", want[0])
        want = next(wanted, None)
    return diff


def row_hashes(conn, table: str = "books") -> Iterator[tuple[int, int]]:
    """(id, row hash) of every row, in id order, streamed from the server."""
    query = sql.SQL(ROW_HASHES_SQL).format(table=sql.Identifier(*table.split(".")))
    yield from conn.cursor().stream(query)


def diff_table(conn, expected: Mapping[int, int], table: str = "books", limit: int = 10) -> RowDiff:
    """How ``table`` on the server behind ``conn`` differs from ``expected``, row by row."""
    return diff_rows(row_hashes(conn, table), expected, limit)
