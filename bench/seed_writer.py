"""The seed project's writer, kept as the baseline the harness's writer is measured against.

Faker fills every row as it is made; psycopg inserts batches of 100 rows with executemany and
commits each batch (what the seed's `write_data.py N --batch-size 100` did).
"""

from __future__ import annotations

import random
from typing import Callable

from faker import Faker

INSERT_SQL = "INSERT INTO books (category_id, title, author, isbn, year) VALUES (%s, %s, %s, %s, %s)"


def write_seed_style(connect: Callable, rows: int, batch_size: int = 100, seed: int = 0) -> None:
    """Insert ``rows`` books; ``connect`` returns a new psycopg connection in a transaction."""
    fake = Faker()
    fake.seed_instance(seed)
    rng = random.Random(seed)
    with connect() as conn, conn.cursor() as cur:
        for start in range(0, rows, batch_size):
            batch = [(rng.randint(1, 20), fake.catch_phrase()[:255], fake.name()[:255], fake.isbn13(),
                      rng.randint(1900, 2026))
                     for _ in range(min(batch_size, rows - start))]
            cur.executemany(INSERT_SQL, batch)
            conn.commit()
