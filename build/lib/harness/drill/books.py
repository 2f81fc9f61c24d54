"""Writing Faker book rows: inserts (COPY), updates and deletes, reproducible from a seed.

Faker is slow per call, so it fills pools of titles and authors once per seed; rows are then
composed from the pools with a seeded ``random.Random``: the same seed writes the same rows.
Composing is the bulk writer's hot loop, so its draws are inlined (see ``BookFactory.rows``).
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from faker import Faker

# The books_db schema every stack loads (also at the repository root as init.sql).
INIT_SQL = Path(__file__).with_name("init.sql")

POOL_SIZE = 1000
CATEGORIES = 20
YEARS = (1900, 2026)
COLUMNS = ("category_id", "title", "author", "isbn", "year")

# ISBN-13: "978" + 9 drawn digits + a check digit; weights alternate 1, 3 from the left, so the
# prefix adds 9*1 + 7*3 + 8*1 and the drawn digits (positions 4 to 12) are weighted 3, 1, 3, ...
ISBN_PREFIX_WEIGHTED = 38
ISBN_BODY_WEIGHTS = (3, 1, 3, 1, 3, 1, 3, 1, 3)


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
        return next(self._isbn13s(1))

    def row(self) -> tuple:
        return next(self.rows(1))

    def rows(self, count: int, titles: list | None = None, authors: list | None = None):
        """``count`` rows (category_id, title, author, isbn, year), drawn from the given pools
        (the factory's own by default).

        Each draw is ``rng.getrandbits(k)`` repeated until below n, which is how ``randrange``,
        ``randint`` and ``choice`` draw on CPython: the rows are the ones those calls gave, for a
        seed, at about five times the speed (a Python call per draw cost more than the row).
        """
        titles = self.titles if titles is None else titles
        authors = self.authors if authors is None else authors
        if not titles or not authors:
            raise IndexError("cannot draw a book from an empty pool of titles or authors")
        bits = self.rng.getrandbits
        n_categories, k_categories = CATEGORIES, CATEGORIES.bit_length()
        n_titles, k_titles = len(titles), len(titles).bit_length()
        n_authors, k_authors = len(authors), len(authors).bit_length()
        n_years = YEARS[1] - YEARS[0] + 1
        k_years = n_years.bit_length()
        isbns = self._isbn13s(count)
        for _ in range(count):
            category = bits(k_categories)
            while category >= n_categories:
                category = bits(k_categories)
            title = bits(k_titles)
            while title >= n_titles:
                title = bits(k_titles)
            author = bits(k_authors)
            while author >= n_authors:
                author = bits(k_authors)
            isbn = next(isbns)
            year = bits(k_years)
            while year >= n_years:
                year = bits(k_years)
            yield (category + 1, titles[title], authors[author], isbn, YEARS[0] + year)

    def _isbn13s(self, count: int):
        bits = self.rng.getrandbits
        for _ in range(count):
            body = 0
            weighted = ISBN_PREFIX_WEIGHTED
            for weight in ISBN_BODY_WEIGHTS:
                digit = bits(4)
                while digit >= 10:
                    digit = bits(4)
                body = body * 10 + digit
                weighted += weight * digit
            yield f"978{body:09d}{-weighted % 10}"

    def copy_text(self, count: int) -> str:
        """``count`` rows in COPY text format."""
        titles = [_copy_escape(title) for title in self.titles]
        authors = [_copy_escape(author) for author in self.authors]
        return "".join(f"{category}\t{title}\t{author}\t{isbn}\t{year}\n"
                       for category, title, author, isbn, year in self.rows(count, titles, authors))


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
