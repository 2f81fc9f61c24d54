"""Write Faker book rows into a books_db by hand: `pgbv-write-data N --batch-size B` (or `python -m
harness.drill.write_data`).

Connects with a DSN argument if given, else with the variables an application is usually given
(DB_HOST, DB_PORT, DB_NAME, DB_USER, DB_PASSWORD) where set, and libpq's own (PGHOST, PGPORT, PGUSER,
PGPASSFILE, ...) for the rest. Rows come from a seed, so the same command writes the same rows.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import psycopg

from harness.drill.books import Books

# An application's connection variables -> libpq's connection parameters.
APP_VARIABLES = {"DB_HOST": "host", "DB_PORT": "port", "DB_NAME": "dbname", "DB_USER": "user",
                 "DB_PASSWORD": "password"}


def connection_parameters(environ) -> dict:
    """libpq parameters from the DB_* variables that are set (each wins over its PG* equivalent)."""
    return {key: environ[name] for name, key in APP_VARIABLES.items() if environ.get(name)}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="pgbv-write-data", description=__doc__.splitlines()[0])
    parser.add_argument("rows", type=int, help="how many book rows to insert")
    parser.add_argument("--batch-size", type=int, default=1000, help="rows per transaction (default: 1000)")
    parser.add_argument("--dsn", default="", help="libpq connection string (default: DB_HOST, DB_PORT, DB_NAME, "
                        "DB_USER, DB_PASSWORD where set, else the PG* environment variables)")
    parser.add_argument("--seed", type=int, default=0, help="data seed (default: 0)")
    args = parser.parse_args(argv)
    if args.rows < 0 or args.batch_size < 1:
        parser.error("rows must be >= 0 and --batch-size >= 1")

    parameters = {} if args.dsn else connection_parameters(os.environ)

    def connect():
        return psycopg.connect(args.dsn, autocommit=True, **parameters)

    show = sys.stderr.isatty()

    def progress(done: int, total: int) -> None:
        if show:
            print(f"\r{done}/{total} rows", end="", file=sys.stderr, flush=True)

    started = time.monotonic()
    try:
        Books(connect, args.seed).insert(args.rows, batch_size=args.batch_size, progress=progress)
    except psycopg.Error as exc:
        print(f"\nwrite_data: could not write to the database: {str(exc).strip()}", file=sys.stderr)
        return 1
    seconds = time.monotonic() - started
    if show:
        print(file=sys.stderr)
    print(f"inserted {args.rows} rows in {seconds:.2f} s ({args.rows / max(seconds, 1e-9):,.0f} rows/s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
