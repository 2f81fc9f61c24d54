"""Throughput of the WAL integrity check (harness/checks/wal_integrity.py), against its floors.

After a backup, a database of its own is updated until the WAL since the backup's begin LSN
reaches the size asked for; the current segment is archived, and every archived segment from the
backup's begin WAL through the newest is read three ways, interleaved, medians:

- the harness's ``wal_integrity`` (stage a link per segment, check its size, pg_waldump record by record),
- ``pg_waldump --quiet`` alone on the same range, straight from the archive (the reader's own cost),
- ``cat`` of the same files to /dev/null (reading the bytes, nothing checked).

Throughput is the WAL actually read, from the backup's begin LSN to the end LSN the reader reached,
in MB (10^6 bytes) per second. The files were just written, so they are read from the page cache
(on tmpfs they are in memory anyway): the figure is the CPU cost of the check, not disk speed.
"""

from __future__ import annotations

import re
import shutil
import statistics
import subprocess
import time
from pathlib import Path
from typing import Callable

from harness.checks.wal_integrity import segment_range, wal_integrity
from harness.checks.wal_staging import compression_of
from harness.drill.books import Books
from harness.drill.recovery import new_record
from harness.drill.targets import RecoveryTarget
from harness.postgres.wal import SEGMENT_SIZE, lsn_to_int

import measure

Say = Callable[[str], None]
MB = 10 ** 6
TABLE_ROWS = 200_000            # rewritten whole until the WAL is large enough
DATABASE = "bench_integrity"
LSN_LINE = re.compile(r"len \(rec/tot\):\s*\d+/\s*(\d+), tx:.*?lsn: ([0-9A-F]+/[0-9A-F]+)")


def throughput(stack, wal_bytes: int, say: Say, repeats: int = 3) -> dict:
    connect = measure.create_books_database(stack, DATABASE)
    try:
        say(f"integrity: loading {TABLE_ROWS:,} rows into {DATABASE}")
        Books(connect, seed=20261201).insert(TABLE_ROWS)
        say("integrity: backup")
        backup = stack.barman.backup()
        begin_lsn = backup.raw["base_backup_information"]["begin_lsn"]
        write_seconds, passes = _write_wal(connect, begin_lsn, wal_bytes, say)
        stack.barman.archive_current_wal()
        archived = stack.barman.archived_wal_segments(backup.backup_id)
    finally:
        measure.drop_database(stack, DATABASE)
    segments = segment_range(backup.begin_wal, archived[-1])
    missing = sorted(set(segments) - set(archived))
    if missing:
        raise RuntimeError(f"the archive lacks {len(missing)} segments of the range, first {missing[0]}")
    paths = [stack.barman.wal_path(segment) for segment in segments]
    compressed = sum(1 for path in paths if compression_of(path) is not None)
    if compressed:
        raise RuntimeError(f"{compressed} archived segments are compressed: the floors below read them raw")
    timeline = int(segments[0][:8], 16)
    directory, linked = _one_directory(stack, paths)

    def harness() -> tuple[float, str]:
        record = new_record(backup, RecoveryTarget("latest"))
        started = time.perf_counter()
        reading = wal_integrity(stack.barman, stack.pg, backup, segments, record, stack.run_dir)
        seconds = time.perf_counter() - started
        outcome = record.check("wal_integrity")
        if outcome is None or not outcome.passed or outcome.detail.startswith("WARNING"):
            raise RuntimeError(f"the WAL integrity check did not pass: {outcome}")
        return seconds, reading.end

    waldump_argv = [stack.pg.tool("pg_waldump"), "--quiet", "--path", str(directory), "--timeline", str(timeline),
                    "--start", begin_lsn, segments[0], segments[-1]]
    waldump_codes = set()

    def waldump() -> tuple[float, str]:
        started = time.perf_counter()
        done = subprocess.run(waldump_argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                              stdin=subprocess.DEVNULL)
        seconds = time.perf_counter() - started
        waldump_codes.add(done.returncode)  # 1 when it stops at the end of valid WAL, as the check expects
        return seconds, ""

    def cat() -> tuple[float, str]:
        started = time.perf_counter()
        subprocess.run(["cat", *map(str, paths)], stdout=subprocess.DEVNULL, check=True)
        return time.perf_counter() - started, ""

    sides = {"harness": harness, "pg_waldump": waldump, "cat": cat}
    seconds = {name: [] for name in sides}
    ends = []
    try:
        cat()  # the files into the page cache, whatever the file system
        for attempt in range(repeats):
            names = list(sides) if attempt % 2 == 0 else list(reversed(sides))
            for name in names:
                say(f"integrity: {name} over {len(segments)} segments ({attempt + 1}/{repeats})")
                took, end = sides[name]()
                seconds[name].append(took)
                if name == "harness":
                    ends.append(end)
    finally:
        if linked:
            shutil.rmtree(directory, ignore_errors=True)
    end_lsn = ends[0] or _last_record_end(stack, directory if not linked else paths[-1].parent, timeline,
                                          segments[-1])
    read_bytes = lsn_to_int(end_lsn) - lsn_to_int(begin_lsn)
    medians = {name: statistics.median(values) for name, values in seconds.items()}
    rates = {name: read_bytes / MB / took for name, took in medians.items()}
    return {"wal_bytes_asked": wal_bytes, "table_rows": TABLE_ROWS, "update_passes": passes,
            "write_seconds": write_seconds, "backup_id": backup.backup_id, "begin_lsn": begin_lsn,
            "end_lsn": end_lsn, "end_reached_by": "the check" if ends[0] else "the last record of the last segment",
            "read_bytes": read_bytes, "segments": len(segments), "segment_bytes": len(segments) * SEGMENT_SIZE,
            "first_segment": segments[0], "last_segment": segments[-1], "repeats": repeats,
            "seconds": seconds, "median_seconds": medians, "mb_per_s": rates,
            "seconds_per_gb": {name: took / (read_bytes / 1e9) for name, took in medians.items()},
            "harness_vs_pg_waldump": medians["harness"] / medians["pg_waldump"],
            "harness_own_seconds": medians["harness"] - medians["pg_waldump"],
            "pg_waldump_returncodes": sorted(waldump_codes), "pg_waldump_argv": " ".join(waldump_argv),
            "staged_links_for_floor": linked}


def _write_wal(connect, begin_lsn: str, wal_bytes: int, say: Say) -> tuple[float, int]:
    """Rewrite the whole table (then VACUUM it) until ``wal_bytes`` of WAL follow ``begin_lsn``."""
    started = time.perf_counter()
    passes = 0
    with connect() as conn:
        while True:
            written = lsn_to_int(conn.execute("SELECT pg_current_wal_insert_lsn()::text").fetchone()[0]) - \
                lsn_to_int(begin_lsn)
            if written >= wal_bytes:
                break
            passes += 1
            say(f"integrity: writing WAL, {written / MB:,.0f} of {wal_bytes / MB:,.0f} MB (pass {passes})")
            conn.execute("UPDATE books SET year = year % 2026 + 1, title = left(title || '.', 255)")
            conn.execute("VACUUM books")
    return time.perf_counter() - started, passes


def _one_directory(stack, paths: list[Path]) -> tuple[Path, bool]:
    """The archive directory holding every path, or (when they span several) a directory of links."""
    parents = {path.parent for path in paths}
    if len(parents) == 1:
        return parents.pop(), False
    staging = stack.run_dir / "bench-integrity-links"
    staging.mkdir(exist_ok=True)
    for path in paths:
        (staging / path.name).symlink_to(path)
    return staging, True


def _last_record_end(stack, directory: Path, timeline: int, segment: str) -> str:
    """Where the last record of ``segment`` ends. After a switch record the rest of its segment is
    skipped, never read: that tail is not counted."""
    done = subprocess.run([stack.pg.tool("pg_waldump"), "--path", str(directory), "--timeline", str(timeline),
                           segment], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                          stdin=subprocess.DEVNULL)
    last = None
    for line in done.stdout.splitlines():
        found = LSN_LINE.search(line)
        if found:
            last = (int(found.group(1)), found.group(2))
    if last is None:
        raise RuntimeError(f"pg_waldump found no record in {segment}: {done.stdout[-300:]}")
    length, lsn = last
    end = lsn_to_int(lsn) + length
    return f"{end >> 32:X}/{end & 0xFFFFFFFF:X}"
