"""Writing Faker book rows: inserts (COPY), updates and deletes, reproducible from a seed.

Faker is slow per call, so it fills pools of titles and authors once per seed; rows are then
composed from the pools with a seeded ``random.Random``: the same seed writes the same rows.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Callable

from faker import Faker

POOL_SIZE = 1000
CATEGORIES = 20
COLUMNS = ("category_id", "title", "author", "isbn", "year")


@dataclass(frozen=True)
class Commit:
    """One committed transaction of the workload."""

    xid: str
    action: str
    rows: int


class BookFactory:
    """Seeded book rows."""

    def __init__(self, seed: int):
        self.seed = seed
        self.rng = random.Random(seed)
        fake = Faker()
        fake.seed_instance(seed)
        self.titles = [fake.catch_phrase()[:255] for _ in range(POOL_SIZE)]
        self.authors = [fake.name()[:255] for _ in range(POOL_SIZE)]

    def isbn13(self) -> str:
        digits = [9, 7, 8] + [self.rng.randrange(10) for _ in range(9)]
        check = (10 - sum(d * (3 if i % 2 else 1) for i, d in enumerate(digits)) % 10) % 10
        return "".join(map(str, digits)) + str(check)

    def row(self) -> tuple:
        rng = self.rng
        return (rng.randint(1, CATEGORIES), rng.choice(self.titles), rng.choice(self.authors),
                self.isbn13(), rng.randint(1900, 2026))

    def copy_text(self, count: int) -> str:
        """``count`` rows in COPY text format."""
        return "".join("\t".join(_copy_escape(v) for v in self.row()) + "\n" for _ in range(count))


def _copy_escape(value) -> str:
    text = str(value)
    if "\\" in text or "\t" in text or "\n" in text or "\r" in text:
        text = text.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n").replace("\r", "\\r")
    return text


class Books:
    """The books table of one server, written in whole transactions that report their xid."""

    COPY_SQL = f"COPY books ({', '.join(COLUMNS)}) FROM STDIN"

    def __init__(self, connect: Callable, seed: int, progress: Callable[[int, int], None] | None = None):
        self._connect = connect  # returns a new psycopg connection to books_db
        self.seed = seed
        self.progress = progress
        self.factory = BookFactory(seed)

    def insert(self, count: int, batch_size: int | None = None,
               progress: Callable[[int, int], None] | None = None) -> Commit:
        """Insert ``count`` rows with COPY, one transaction per batch (one in all by default)."""
        batch_size = batch_size or count or 1
        progress = progress or self.progress
        done = 0
        last = Commit("", "insert", 0)
        with self._connect() as conn:
            while done < count:
                size = min(batch_size, count - done)
                with conn.transaction():
                    with conn.cursor().copy(self.COPY_SQL) as copy:
                        chunk = 5000
                        for start in range(0, size, chunk):
                            copy.write(self.factory.copy_text(min(chunk, size - start)))
                            if progress:
                                progress(done + min(start + chunk, size), count)
                    xid = _current_xid(conn)
                done += size
                last = Commit(xid, "insert", size)
        return Commit(last.xid, "insert", count)

    def update(self, count: int) -> Commit:
        """Change title and year of up to ``count`` existing rows, chosen by the seed."""
        with self._connect() as conn, conn.transaction():
            ids = self._pick_ids(conn, count)
            cur = conn.execute(
                "UPDATE books SET title = left(title || ' (revised)', 255), year = year %% 2026 + 1 "
                "WHERE id = ANY(%s)", (ids,))
            return Commit(_current_xid(conn), "update", cur.rowcount)

    def delete(self, count: int) -> Commit:
        """Delete up to ``count`` existing rows, chosen by the seed."""
        with self._connect() as conn, conn.transaction():
            ids = self._pick_ids(conn, count)
            cur = conn.execute("DELETE FROM books WHERE id = ANY(%s)", (ids,))
            return Commit(_current_xid(conn), "delete", cur.rowcount)

    def _pick_ids(self, conn, count: int) -> list[int]:
        # Ids drawn from the live range without reading the table to the client.
        low, high = conn.execute("SELECT min(id), max(id) FROM books").fetchone()
        if low is None:
            return []
        span = range(low, high + 1)
        picked = self.factory.rng.sample(span, min(count, len(span)))
        return sorted(picked)


def _current_xid(conn) -> str:
    # The 32-bit xid recovery_target_xid expects (pg_current_xact_id() carries the epoch).
    return str(conn.execute("SELECT (pg_current_xact_id()::text::bigint % 4294967296)").fetchone()[0])
