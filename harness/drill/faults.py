"""Breaking a backup chain on purpose, to prove the drills go red for the right reason.

Every fault is a context manager that damages one thing and puts it back exactly on exit, so the
drills that run after it see an intact archive.
"""

from __future__ import annotations

import os
import re
import shutil
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from harness.barman.catalog import Backup
from harness.barman.driver import Barman
from harness.drill.source import Source
from harness.drill.targets import RecoveryTarget
from harness.postgres.wal import segment_name, segment_number
from harness.process.commands import run


@dataclass(frozen=True)
class Damage:
    """What a fault changed, for the scenario to look for in the diagnosis."""

    what: str
    path: Path
    detail: str = ""


def _archived_segment_path(barman: Barman, segment: str) -> Path:
    path = barman.wal_path(segment)
    if not path.exists():
        raise FileNotFoundError(f"WAL segment {segment} is not in the archive at {path}")
    return path


def _quarantine(barman: Barman) -> Path:
    place = barman.home.parent / "fault-quarantine"
    place.mkdir(exist_ok=True)
    return place


@contextmanager
def wal_segment_deleted(barman: Barman, segment: str):
    """The archived file of ``segment`` is gone (Barman's catalogue still lists it)."""
    path = _archived_segment_path(barman, segment)
    aside = _quarantine(barman) / segment
    shutil.move(path, aside)
    try:
        yield Damage("WAL segment deleted from the archive", path, segment)
    finally:
        shutil.move(aside, path)


@contextmanager
def wal_segment_zeroed(barman: Barman, segment: str):
    """The archived ``segment`` is still there, listed and named right, but holds only zeros."""
    path = _archived_segment_path(barman, segment)
    original = path.read_bytes()
    path.write_bytes(b"\0" * len(original))
    try:
        yield Damage("WAL segment zeroed in the archive", path, segment)
    finally:
        path.write_bytes(original)


WAL_DAMAGE = ("bytes changed", "cut short", "another segment's content", "compressed data cut")


@contextmanager
def wal_segment_damaged(barman: Barman, segment: str, how: str, pg=None):
    """The archived ``segment`` is still there and listed, but: a byte inside one of its records is
    inverted (``bytes changed``; ``pg`` finds a record wholly inside the segment), it is cut to half its
    size (``cut short``), it holds the previous segment's bytes (``another segment's content``), or its
    compressed file is cut to a tenth (``compressed data cut``)."""
    path = _archived_segment_path(barman, segment)
    original = path.read_bytes()
    if how == "bytes changed":
        offset = _inside_a_record(pg, path, segment)
        damaged = original[:offset] + bytes([original[offset] ^ 0xFF]) + original[offset + 1:]
    elif how == "cut short":
        damaged = original[: len(original) // 2]
    elif how == "another segment's content":
        previous = segment_name(int(segment[:8], 16), segment_number(segment) - 1)
        damaged = _archived_segment_path(barman, previous).read_bytes()
    elif how == "compressed data cut":
        damaged = original[: max(len(original) // 10, 1)]
    else:
        raise ValueError(f"unknown WAL damage {how!r}; one of {', '.join(WAL_DAMAGE)}")
    path.write_bytes(damaged)
    try:
        yield Damage(f"WAL segment {how}", path, segment)
    finally:
        path.write_bytes(original)


@contextmanager
def history_file_damaged(barman: Barman, timeline: int, garbage: str = "this is not a timeline history\n"):
    """The archived history file of ``timeline`` holds ``garbage`` instead of its lines."""
    path = barman.wals_directory / f"{timeline:08X}.history"
    original = path.read_bytes()
    path.write_text(garbage)
    try:
        yield Damage("timeline history file damaged", path, path.name)
    finally:
        path.write_bytes(original)


def _inside_a_record(pg, path: Path, segment: str) -> int:
    """An offset in the payload of a record that starts and ends inside ``segment``."""
    if pg is None:
        raise ValueError("changing bytes inside a record needs the PostgreSQL binaries (pg) to find one")
    done = run([pg.tool("pg_waldump"), "--path", path.parent, segment, segment], timeout=60, check=False)
    size = path.stat().st_size
    start = segment_number(segment) * size
    for line in done.stdout.splitlines():
        found = re.search(r"len \(rec/tot\):\s*(\d+)/\s*(\d+), .*lsn: ([0-9A-F]+)/([0-9A-F]+)", line)
        if not found:
            continue
        total, lsn = int(found.group(2)), (int(found.group(3), 16) << 32) | int(found.group(4), 16)
        offset = lsn - start
        if total >= 48 and offset % 8192 + total < 8192 - 8:   # within one page: no header in between
            return offset + total - 8
    raise ValueError(f"no record wholly inside one page of {segment}")


@contextmanager
def wal_streaming_stopped(barman: Barman):
    """Barman's WAL receiver is killed; it is restarted (and streaming again) on exit."""
    barman.stop_receive_wal()
    try:
        yield Damage("WAL streaming stopped (receive-wal killed)", barman.receiver_log)
    finally:
        barman.start_receive_wal()
        barman.wait_for_streaming()


@contextmanager
def backup_byte_flipped(barman: Barman, backup: Backup, relative_file: str, offset: int | None = None):
    """One byte of a data file inside the stored backup is inverted."""
    path = barman.backup_dir(backup.backup_id) / "data" / relative_file
    size = path.stat().st_size
    offset = size // 2 if offset is None else offset
    with open(path, "r+b") as handle:
        handle.seek(offset)
        byte = handle.read(1)
        handle.seek(offset)
        handle.write(bytes([byte[0] ^ 0xFF]))
    try:
        yield Damage("one byte changed in a backup data file", path, f"{relative_file} offset {offset}")
    finally:
        with open(path, "r+b") as handle:
            handle.seek(offset)
            handle.write(byte)


@contextmanager
def backup_metadata_damaged(barman: Barman, backup: Backup, how: str = "missing"):
    """The backup's backup.info is removed (``missing``) or cut short mid-file (``truncated``)."""
    path = barman.backup_info_path(backup.backup_id)
    original = path.read_bytes()
    if how == "missing":
        os.unlink(path)
    elif how == "truncated":
        path.write_bytes(original[: len(original) // 3])
    else:
        raise ValueError(f"unknown metadata damage {how!r}")
    try:
        yield Damage(f"backup metadata {how}", path)
    finally:
        path.write_bytes(original)


def target_after_last_commit(source: Source) -> RecoveryTarget:
    """A time target an hour past the source's clock: no archived commit reaches it."""
    with source.connect() as conn:
        value = conn.execute("SELECT to_char((clock_timestamp() + interval '1 hour') AT TIME ZONE 'UTC', "
                             "'YYYY-MM-DD HH24:MI:SS.US') || '+00:00'").fetchone()[0]
    return RecoveryTarget("time", value)


def heap_file_of(source: Source, table: str = "books") -> str:
    """The table's main data file, relative to the data directory (as in the backup)."""
    with source.connect() as conn:
        return conn.execute("SELECT pg_relation_filepath(%s::regclass)", (table,)).fetchone()[0]


def incremental_file_of(relation_file: str) -> str:
    """Where an incremental backup keeps a relation file's changed blocks: 'base/5/16390' ->
    'base/5/INCREMENTAL.16390' (pg_basebackup --incremental, PostgreSQL 17+)."""
    directory, _, name = relation_file.rpartition("/")
    return f"{directory}/INCREMENTAL.{name}" if directory else f"INCREMENTAL.{name}"


@contextmanager
def incremental_file_changed(barman: Barman, backup: Backup, relation_file: str):
    """One byte of ``relation_file``'s INCREMENTAL file inside the incremental ``backup`` is inverted."""
    if not backup.is_incremental:
        raise ValueError(f"backup {backup.backup_id} is {backup.backup_type or 'not incremental'}: "
                         "it has no INCREMENTAL files")
    incremental = incremental_file_of(relation_file)
    path = barman.backup_dir(backup.backup_id) / "data" / incremental
    if not path.exists():
        raise FileNotFoundError(f"backup {backup.backup_id} holds no {incremental} (was {relation_file} "
                                "sent whole, or not changed?)")
    # The last byte is block data when the file holds blocks, never the header alone.
    with backup_byte_flipped(barman, backup, incremental, offset=path.stat().st_size - 1) as damage:
        yield Damage("one byte changed in an INCREMENTAL file of an incremental backup", damage.path,
                     damage.detail)


@contextmanager
def backup_removed(barman: Barman, backup: Backup):
    """The stored ``backup`` (its data dir and its metadata) is gone from Barman's catalogue.

    Its children still name it as their parent: the gap an incremental chain must not hide.
    """
    place = _quarantine(barman) / f"removed-{backup.backup_id}"
    place.mkdir()
    moved = [path for path in (barman.backup_dir(backup.backup_id), barman.backup_info_path(backup.backup_id))
             if path.exists()]
    for path in moved:
        shutil.move(path, place / path.name)
    try:
        yield Damage("backup removed from Barman's catalogue", barman.backup_dir(backup.backup_id),
                     backup.backup_id)
    finally:
        for path in moved:
            shutil.move(place / path.name, path)
        place.rmdir()
