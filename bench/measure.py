"""The measurements: each compares the harness with a baseline taken in the same run.

Every function takes a started LocalStack (except ``pytest_pitr``, which starts its own) and
returns plain data for reports/bench.json.
"""

from __future__ import annotations

import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ElementTree
from pathlib import Path
from typing import Callable

from psycopg import sql

from harness.drill.books import Books
from harness.drill.fingerprint import fingerprint
from harness.drill.scratch import Scratch

from bare import BareDrill
from seed_writer import write_seed_style

ROOT = Path(__file__).resolve().parent.parent
Say = Callable[[str], None]

# The fingerprint queries of earlier versions, kept to show the gain in the same run: the md5 of
# each row's text, summed as numeric (harness/fingerprint.py at 615a61a), then as bigint halves.
MD5_NUMERIC_FINGERPRINT_SQL = """
SELECT count(*),
       coalesce(sum(('x' || substr(h, 1, 16))::bit(64)::bigint::numeric), 0),
       coalesce(sum(('x' || substr(h, 17, 16))::bit(64)::bigint::numeric), 0)
FROM (SELECT md5(t::text) AS h FROM {table} AS t) AS hashed
"""
MD5_FINGERPRINT_SQL = """
SELECT count(*),
       coalesce(sum(h::bit(64)::bigint), 0),
       coalesce(sum((h << 64)::bit(64)::bigint), 0)
FROM (SELECT unnest(ARRAY[('x' || md5(t::text))::bit(128)]) AS h FROM {table} AS t) AS hashed
"""
# Floors, to show where a fingerprint's time goes (not used by the harness): the rows' text form
# alone, and visiting each row's columns with nothing computed.
ROW_TEXT_SQL = "SELECT count(*), sum(length(t::text)) FROM {table} AS t"
# count(*) as the issue defines its floor, a sequential scan: with an index on the table the planner
# answers count(*) from the (much smaller) index instead, so that plan is timed too.
SEQ_SCAN_ONLY = ("SET enable_indexonlyscan = off", "SET enable_indexscan = off", "SET enable_bitmapscan = off")
ANY_PLAN = ("RESET enable_indexonlyscan", "RESET enable_indexscan", "RESET enable_bitmapscan")


# The WAL integrity checks record their time in their detail: "... in 0.01 s".
SECONDS_IN_DETAIL = re.compile(r"in (\d+(?:\.\d+)?) s$")


def median(values) -> float:
    return statistics.median(values)


# -- databases of their own, so the drills' books table stays as the drills left it -------------

def create_books_database(stack, name: str) -> Callable:
    """A fresh database with the books schema; returns a connect() for it."""
    server = stack.source.server
    with server.conn.connect("postgres") as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {}").format(sql.Identifier(name)))
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    with server.conn.connect(name) as conn:
        conn.execute((ROOT / "init.sql").read_text().encode())
    return lambda autocommit=True: server.conn.connect(name, autocommit=autocommit)


def drop_database(stack, name: str) -> None:
    with stack.source.server.conn.connect("postgres") as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


def _empty_books(connect) -> None:
    with connect() as conn:
        conn.execute("TRUNCATE books RESTART IDENTITY")


# -- a. data generation ---------------------------------------------------------------------------

def generation(stack, rows: int, say: Say, repeats: int = 3) -> dict:
    """Harness writer (Books.insert, COPY) vs the seed-style writer, both into an empty table.

    Books.insert is timed; the Faker pools a Books builds once per seed are timed apart. The
    seed-style writer's Faker instance is inside its time (it is small next to its rows)."""
    connect = create_books_database(stack, "bench_generation")
    try:
        harness_seconds, pool_seconds = [], []
        for attempt in range(repeats):
            _empty_books(connect)
            say(f"generation: harness writer, {rows:,} rows ({attempt + 1}/{repeats})")
            started = time.perf_counter()
            books = Books(connect, seed=attempt)
            pool_seconds.append(time.perf_counter() - started)
            started = time.perf_counter()
            books.insert(rows)
            harness_seconds.append(time.perf_counter() - started)
        _empty_books(connect)
        say(f"generation: seed-style writer, {rows:,} rows (Faker per row, executemany of 100, commit each)")
        started = time.perf_counter()
        write_seed_style(lambda: connect(autocommit=False), rows, batch_size=100)
        seed_seconds = time.perf_counter() - started
        with connect() as conn:
            written = conn.execute("SELECT count(*) FROM books").fetchone()[0]
        if written != rows:
            raise RuntimeError(f"the seed-style writer left {written} rows, expected {rows}")
    finally:
        drop_database(stack, "bench_generation")
    harness_rate = rows / median(harness_seconds)
    seed_rate = rows / seed_seconds
    return {"rows": rows, "harness_seconds": harness_seconds, "harness_rows_per_s": harness_rate,
            "harness_pool_seconds": pool_seconds,
            "seed_style_seconds": seed_seconds, "seed_style_rows_per_s": seed_rate,
            "ratio": harness_rate / seed_rate}


# -- b. fingerprint -------------------------------------------------------------------------------

def fingerprint_cost(stack, rows: int, say: Say, repeats: int = 5) -> dict:
    """harness.fingerprint vs SELECT count(*) on the same table, alternating, medians."""
    connect = create_books_database(stack, "bench_fingerprint")
    table = sql.Identifier("books")
    try:
        say(f"fingerprint: loading {rows:,} rows")
        Books(connect, seed=7).insert(rows)
        with connect() as conn:
            conn.execute("VACUUM (ANALYZE) books")  # hint bits and statistics: no first-scan penalty

            def run(query, settings=ANY_PLAN) -> float:
                """Seconds ``query`` takes under ``settings`` (set and reset outside the timing)."""
                for setting in settings:
                    conn.execute(setting)
                try:
                    started = time.perf_counter()
                    query()
                    return time.perf_counter() - started
                finally:
                    for setting in ANY_PLAN:
                        conn.execute(setting)

            def statement(text):
                return lambda: conn.execute(sql.SQL(text).format(table=table)).fetchone()

            count = lambda: conn.execute("SELECT count(*) FROM books").fetchone()  # noqa: E731
            queries = {
                "count": lambda: run(count, SEQ_SCAN_ONLY),
                "count_any_plan": lambda: run(count),
                "fingerprint": lambda: run(lambda: fingerprint(conn, "books")),
                "md5_fingerprint": lambda: run(statement(MD5_FINGERPRINT_SQL)),
                "md5_numeric_fingerprint": lambda: run(statement(MD5_NUMERIC_FINGERPRINT_SQL)),
                "row_text_only": lambda: run(statement(ROW_TEXT_SQL)),
            }
            for query in queries.values():  # warm the cache
                query()
            seconds = {name: [] for name in queries}
            for attempt in range(repeats):
                say(f"fingerprint vs count(*), {rows:,} rows ({attempt + 1}/{repeats})")
                for name, query in queries.items():
                    seconds[name].append(query())
            same_count = fingerprint(conn, "books").rows == rows
            count_plan = "\n".join(line for (line,) in conn.execute("EXPLAIN SELECT count(*) FROM books"))
            workers = conn.execute("SHOW max_parallel_workers_per_gather").fetchone()[0]
    finally:
        drop_database(stack, "bench_fingerprint")
    medians = {name: median(values) for name, values in seconds.items()}
    if not same_count:
        raise RuntimeError(f"the fingerprint of the {rows:,}-row table does not count {rows:,} rows")
    return {"rows": rows, "repeats": repeats, "seconds": seconds, "median_seconds": medians,
            "ratio": medians["fingerprint"] / medians["count"],
            "ratio_vs_count_any_plan": medians["fingerprint"] / medians["count_any_plan"],
            "md5_ratio": medians["md5_fingerprint"] / medians["count"],
            "speedup_vs_md5": medians["md5_fingerprint"] / medians["fingerprint"],
            "md5_numeric_ratio": medians["md5_numeric_fingerprint"] / medians["count"],
            "count_plan_any": count_plan, "max_parallel_workers_per_gather": workers}


# -- c. one drill: harness vs bare commands ------------------------------------------------------

def _commit_then_more(stack, books, timings: dict | None = None):
    """The target transaction after the backup, then writes after it whose WAL is archived."""
    commit = books.update(20)
    target = stack.source.capture_target("xid", commit)
    started = time.perf_counter()
    expected = stack.source.fingerprint()
    if timings is not None:
        timings["source_fingerprint_seconds"] = time.perf_counter() - started
    books.insert(100)
    stack.barman.archive_current_wal()
    return commit, target, expected


def integrity_seconds(record) -> float | None:
    """Seconds the WAL integrity checks of one restore took, from its record (None when it holds none):
    the read of the WAL recovery replays, plus the warning-only read of the WAL after the target."""
    found = [SECONDS_IN_DETAIL.search(outcome.detail) for outcome in record.checks
             if outcome.name in ("wal_integrity", "wal_after_target")]
    seconds = [float(match.group(1)) for match in found if match]
    return sum(seconds) if seconds else None


def harness_drill(stack, books, label: str) -> dict:
    started = time.perf_counter()
    backup = stack.barman.backup()
    backup_seconds = time.perf_counter() - started
    _commit, target, expected = _commit_then_more(stack, books)
    drill = Scratch(stack, label)
    try:
        started = time.perf_counter()
        restored = drill.recover(backup, target)
        restore_seconds = time.perf_counter() - started
        if restored.fingerprint() != expected:
            raise RuntimeError(f"the harness restore of {backup.backup_id} does not match the source at the target")
    finally:
        drill.discard()
    record = restored.record
    return {"backup": backup_seconds, "restore": restore_seconds, "total": backup_seconds + restore_seconds,
            "checks": restore_seconds - record.recovery_seconds, "wal_integrity": integrity_seconds(record),
            "recover": record.copy_seconds, "start": record.start_seconds, "reach": record.reach_seconds}


def bare_drill(stack, bare: BareDrill, books, label: str) -> dict:
    backup_seconds = bare.backup()
    commit, _target, _expected = _commit_then_more(stack, books)
    home = bare.prepare(label)
    try:
        restore = bare.restore(commit.xid, home)
    finally:
        bare.discard(home)
    return {"backup": backup_seconds, "restore": restore.seconds, "total": backup_seconds + restore.seconds,
            "recover": restore.recover_seconds, "start": restore.start_seconds, "reach": restore.reach_seconds}


def drill_overhead(stack, books, bare: BareDrill, say: Say, repeats: int = 3) -> dict:
    """Backup + recover + start + reach the target, harness vs bare, interleaved H B B H H B ..."""
    runs = {"harness": [], "bare": []}
    order = []
    for attempt in range(repeats):
        order += ["harness", "bare"] if attempt % 2 == 0 else ["bare", "harness"]
    for step, side in enumerate(order, start=1):
        say(f"drill overhead: {side} drill ({step}/{len(order)})")
        if side == "harness":
            runs[side].append(harness_drill(stack, books, f"bench-overhead-{step}"))
        else:
            runs[side].append(bare_drill(stack, bare, books, f"bare-{step}"))
    # The run with the median total, so its steps add up to the figure shown.
    median_runs = {side: sorted(done, key=lambda run: run["total"])[(len(done) - 1) // 2] for side, done in runs.items()}
    totals = {side: median([run["total"] for run in done]) for side, done in runs.items()}
    restores = {side: median([run["restore"] for run in done]) for side, done in runs.items()}
    integrity = [run["wal_integrity"] for run in runs["harness"] if run["wal_integrity"] is not None]
    return {"repeats": repeats, "order": order, "runs": runs, "median": median_runs, "median_total": totals,
            "ratio": totals["harness"] / totals["bare"], "restore_ratio": restores["harness"] / restores["bare"],
            "median_wal_integrity": median(integrity) if integrity else None}


# -- d. growth ------------------------------------------------------------------------------------

def _tree_bytes(path: Path) -> int:
    total = 0
    for root, _dirs, files in os.walk(path):
        for name in files:
            try:
                total += os.lstat(os.path.join(root, name)).st_size
            except FileNotFoundError:
                pass
    return total


def growth_drill(stack, books, bare: BareDrill, rows: int, say: Say) -> dict:
    """Top the books table up to ``rows``, then one full drill; then, of the same backup, a bare
    `barman recover` to the same target and a `cp -a` of its directory."""
    with stack.source.connect() as conn:
        present = conn.execute("SELECT count(*) FROM books").fetchone()[0]
    load_seconds = 0.0
    if rows > present:
        say(f"growth: loading {rows - present:,} rows (to {rows:,})")
        started = time.perf_counter()
        books.insert(rows - present)
        load_seconds = time.perf_counter() - started

    say(f"growth: drill at {rows:,} rows")
    drill_started = time.perf_counter()
    started = time.perf_counter()
    backup = stack.barman.backup()
    backup_seconds = time.perf_counter() - started
    timings = {}
    commit, target, expected = _commit_then_more(stack, books, timings)
    drill = Scratch(stack, f"bench-growth-{rows}")
    try:
        started = time.perf_counter()
        restored = drill.recover(backup, target)
        restore_wall = time.perf_counter() - started
        started = time.perf_counter()
        restored.assert_matches(expected)  # amcheck, then the fingerprint of the restore
        verify_seconds = time.perf_counter() - started
        total_seconds = time.perf_counter() - drill_started
    finally:
        drill.discard()

    backup_dir = stack.barman.backup_dir(backup.backup_id)
    size = _tree_bytes(backup_dir)
    say(f"growth: cp -a of the backup dir ({size / 2**20:,.0f} MiB)")
    copy = stack.run_dir / f"cp-{rows}"
    started = time.perf_counter()
    subprocess.run(["cp", "-a", str(backup_dir), str(copy)], check=True)
    cp_seconds = time.perf_counter() - started
    shutil.rmtree(copy, ignore_errors=True)
    say("growth: rsync -a of the backup dir (the copy tool barman recover runs)")
    started = time.perf_counter()
    subprocess.run(["rsync", "-a", f"{backup_dir}/", str(copy)], check=True)
    rsync_seconds = time.perf_counter() - started
    shutil.rmtree(copy, ignore_errors=True)
    say("growth: bare barman recover of the same backup")
    home = bare.prepare(f"bare-growth-{rows}")
    try:
        bare_recover_seconds = bare.recover_only(commit.xid, backup.backup_id, home)
    finally:
        bare.discard(home)

    record = restored.record
    recovery = record.recovery_seconds
    return {"rows": rows, "load_seconds": load_seconds, "backup_bytes": size, "backup_seconds": backup_seconds,
            "checks_seconds": restore_wall - recovery, "recovery_seconds": recovery,
            "recover_copy_seconds": record.copy_seconds, "start_seconds": record.start_seconds,
            "reach_seconds": record.reach_seconds, "cp_seconds": cp_seconds,
            "recovery_mib_per_s": size / 2**20 / recovery, "cp_mib_per_s": size / 2**20 / cp_seconds,
            "recovery_vs_cp": cp_seconds / recovery, "recover_step_vs_cp": cp_seconds / record.copy_seconds,
            "bare_barman_recover_seconds": bare_recover_seconds, "bare_barman_recover_vs_cp": cp_seconds / bare_recover_seconds,
            "rsync_seconds": rsync_seconds, "rsync_vs_cp": cp_seconds / rsync_seconds,
            "source_fingerprint_seconds": timings["source_fingerprint_seconds"], "verify_seconds": verify_seconds,
            "total_drill_seconds": total_seconds, "verified": True}


# -- e. the PITR scenarios end to end ------------------------------------------------------------

def pytest_pitr(rows: int, say: Say) -> dict:
    """`pytest -k pitr` as a user runs it, its own stack start included; wall seconds."""
    say(f"pytest -k pitr with {rows:,} rows (starts its own stack)")
    scratch = Path(tempfile.mkdtemp(prefix="bench-pytest-"))
    try:
        junit = scratch / "junit.xml"
        env = dict(os.environ, DRILL_ROWS=str(rows))
        argv = [str(ROOT / ".venv" / "bin" / "pytest"), "-k", "pitr", "-p", "no:cacheprovider", "--junitxml", str(junit)]
        if not Path(argv[0]).exists():
            argv[0:1] = [sys.executable, "-m", "pytest"]
        started = time.perf_counter()
        done = subprocess.run(argv, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                              stdin=subprocess.DEVNULL, timeout=1800)
        wall = time.perf_counter() - started
        # The run's drill evidence (JSON, HTML) is conftest's; this timing run's copy is not wanted.
        for line in done.stdout.splitlines():
            if line.startswith("drill evidence: "):
                Path(line.split(": ", 1)[1].strip()).unlink(missing_ok=True)
        counts = {"tests": 0, "failures": 0, "errors": 0, "skipped": 0}
        durations = {}
        if junit.exists():
            root = ElementTree.parse(junit).getroot()
            suites = [root] if root.tag == "testsuite" else list(root)
            for suite in suites:
                for key in counts:
                    counts[key] += int(suite.get(key, 0) or 0)
                for case in suite.iter("testcase"):
                    name = f"{case.get('classname', '').rsplit('.', 1)[-1]}::{case.get('name')}"
                    durations[name] = float(case.get("time", 0) or 0)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return {"rows": rows, "wall_seconds": wall, "returncode": done.returncode, **counts,
            "test_seconds": dict(sorted(durations.items(), key=lambda item: -item[1])),
            "argv": " ".join(argv[:1] + ["-k", "pitr", "-p", "no:cacheprovider", "--junitxml", "<tmp>"]),
            "output_tail": done.stdout[-3000:] if done.returncode != 0 else done.stdout.strip().splitlines()[-1:]}
