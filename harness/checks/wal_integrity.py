"""WAL integrity, before any copy: every segment recovery will read, read record by record.

`wal_continuity` proves each needed segment is listed and present; this proves each one is sound,
with PostgreSQL's own WAL reader (pg_waldump of the backup's major): every record's CRC, page headers
of the right position whose timeline never goes down, continuity across segment boundaries. The files
are staged first (harness.checks.wal_staging: decompressed, the right size). The first bad segment is
named with the LSN of the first bad record and what is wrong with it.

Across a timeline switch the segments are the files recovery reads (harness.checks.wal_route): the
parent's, then the child's. pg_waldump reads one timeline's file names, so each file is staged under
its position's name on the newest timeline of the range, and what pg_waldump says is mapped back to
the archived file's own name. Staged so, pg_waldump cannot tell a file of the parent's archived under
the child's name; so the timeline in each file's first page header is checked here too: never older
than the timeline whose WAL lies at that position, as the history followed says (the parent's before
the switch, even in the child's first segment), and never later than the file's name says.
"""

from __future__ import annotations

import re
import shutil
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from harness.checks.wal_staging import UNKNOWN, Stopped, stage, staged_names
from harness.errors import SetupError, VerificationFailed
from harness.evidence.records import RestoreRecord
from harness.postgres.binaries import PgBin
from harness.postgres.wal import SEGMENT_SIZE, first_page_timeline, lsn_to_int, segment_name, segment_number, segment_of
from harness.process.commands import run

ERROR_AT = re.compile(r"(?:error in WAL record at|could not find a valid record after) ([0-9A-F]+/[0-9A-F]+)"
                      r"(?::\s*(.*))?")
IN_SEGMENT = re.compile(r"in (?:log|WAL) segment ([0-9A-F]{24})(?:, offset (\d+))?")
RECORD_AT = re.compile(r"\bat ([0-9A-F]+/[0-9A-F]+)")
SEGMENT_NAME = re.compile(r"\b[0-9A-F]{24}\b")
CLASSES = (  # what pg_waldump (xlogreader) says -> the damage class a DBA reads
    ("checksum", "a record's CRC does not match (bytes changed)"),
    ("pageaddr", "a page belongs to another position (a segment replaced by another's content)"),
    ("timeline", "a page belongs to another timeline"),
    ("magic number", "a page header is not a WAL page header"),
    ("info bits", "a page header is damaged"),
    ("record length", "a record's length is impossible"),
    ("prev-link", "a record does not follow the one before it"),
    ("resource manager", "a record's resource manager is invalid"),
    ("contrecord", "a record continued from the previous segment is missing its continuation"),
    ("header specifies", "it is not a WAL segment (its first page header is not a WAL page header)"),
)


class WalIntegrityFailed(VerificationFailed):
    """A WAL segment recovery needs is present but damaged."""


@dataclass(frozen=True)
class WalReading:
    segments: int
    bytes: int
    seconds: float
    end: str          # LSN where reading stopped: the end asked for, or where valid WAL ends


def wal_integrity(barman, pg: PgBin, backup, segments: list[str], record: RestoreRecord, workdir: Path,
                  start_lsn: str = "", end_lsn: str = "", name: str = "wal_integrity",
                  raise_on_damage: bool = True, route: str = "",
                  encrypted: Callable[[str], bool | None] = UNKNOWN, stop=None,
                  page_timeline: Callable[[int], int | None] | None = None) -> WalReading | None:
    """Read ``segments`` (the files recovery reads, consecutive positions, oldest first) from ``start_lsn``
    (default: the backup's start) through ``end_lsn`` (default: the end of valid WAL in the last one).
    Records the outcome as check ``name`` (``route``: the timeline switches followed, said in it); raises
    WalIntegrityFailed on damage unless ``raise_on_damage`` is false (then the outcome is a warning).
    ``encrypted``: whether Barman's catalogue says a segment is encrypted (None: it does not say);
    ``stop``: an Event that ends the reading early, when its outcome is no longer wanted;
    ``page_timeline``: the timeline whose WAL lies at an LSN (WalRoute.page_timeline; None where unknown);
    without it a first page is only checked not to be of a timeline later than its file's name."""
    if not segments:
        return None
    started = time.monotonic()
    staging = workdir / f"wal-integrity-{uuid.uuid4().hex[:8]}"
    staging.mkdir(parents=True)
    try:
        size = _segment_size(barman, backup)
        damage = stage(barman, segments, staging, size, encrypted, stop)
        end = end_lsn
        if damage is None:
            damage, end = _read(pg, staging, segments, start_lsn or backup_begin_lsn(backup), end_lsn, size, stop)
            damage, end = _first(damage, end, _page_timelines(staging, segments, size, page_timeline))
        reading = WalReading(len(segments), len(segments) * size, time.monotonic() - started, end)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    if damage is not None:
        error = WalIntegrityFailed(
            f"WAL needed by backup {backup.backup_id} is damaged: {damage}.",
            "Recovery would stop there (or fail); the segment must be recovered from another copy, or a "
            "new backup taken after it.")
        if raise_on_damage:
            raise record.failed(name, error)
        record.passed(name, f"WARNING: {error.cause}")
        return reading
    mb = reading.bytes / 2**20
    record.passed(name, f"{segments[0]}..{segments[-1]}: {len(segments)} segments ({mb:.0f} MiB) read record by "
                        f"record through {end or 'the end of valid WAL'}" + (f", following {route}," if route else "")
                        + f" in {reading.seconds:.2f} s")
    return reading


def _segment_size(barman, backup) -> int:
    """The cluster's WAL segment size, as Barman recorded it in the backup's metadata file."""
    try:
        for line in barman.backup_info_path(backup.backup_id).read_text(errors="replace").splitlines():
            key, _, value = line.partition("=")
            if key.strip() == "xlog_segment_size" and value.strip().isdigit():
                return int(value.strip())
    except OSError:
        pass
    return SEGMENT_SIZE


def _page_timelines(staging: Path, segments: list[str], size: int,
                    page_timeline: Callable[[int], int | None] | None) -> tuple[int, str] | None:
    """The first segment whose first page belongs to an older timeline than the one whose WAL lies there,
    or to a later one than its name's: (that page's LSN, the damage), or None. (A child's first segment
    holds its parent's pages before the switch, so a page of a timeline in between is never damage.)"""
    for segment, staged in zip(segments, staged_names(segments, size), strict=True):
        written = first_page_timeline(staging / staged)
        if written is None:  # no WAL page header: pg_waldump says what it is
            continue
        position = segment_number(segment, size) * size
        expected, named = page_timeline(position) if page_timeline else None, int(segment[:8], 16)
        if expected is not None and written < expected:
            whose = f"not timeline {expected}, whose WAL recovery reads there"
        elif written > named:
            whose = f"later than timeline {named} of its name"
        else:
            continue
        return position, (f"segment {segment}: its first page ({_lsn_at(position)}) belongs to timeline {written}, "
                          f"{whose} (a file of another timeline archived under this name)")
    return None


def _first(damage: str | None, end: str, page: tuple[int, str] | None) -> tuple[str | None, str]:
    """What pg_waldump found, or a first page of another timeline, whichever comes first in the WAL."""
    if page is None or (damage is not None and (not end or lsn_to_int(end) <= page[0])):
        return damage, end
    return page[1], _lsn_at(page[0])


def _read(pg: PgBin, staging: Path, segments: list[str], start_lsn: str, end_lsn: str,
          size: int, stop=None) -> tuple[str | None, str]:
    """pg_waldump over the staged range; (damage or None, where reading ended)."""
    staged = staged_names(segments, size)
    timeline = int(staged[0][:8], 16)
    real = dict(zip(staged, segments, strict=True))
    start = start_lsn or _lsn_of(segments[0], size)
    argv = [pg.tool("pg_waldump"), "--quiet", "--path", staging, "--timeline", timeline, "--start", start]
    if end_lsn:
        argv += ["--end", end_lsn]
    # Barman archives whole segments only: valid WAL never just ends inside one (a switch record, or
    # a record going on into the next segment, ends it), so any error here is damage.
    done = run(argv + [staged[0], staged[-1]], timeout=max(120, 10 * len(segments)), check=False, stop=stop)
    if done.returncode is None and stop is not None and stop.is_set():
        raise Stopped(f"Reading {len(segments)} WAL segments with pg_waldump was stopped: the restore ended "
                      "before it: no verdict from it.")
    if done.returncode is None:
        raise SetupError(f"Reading {len(segments)} WAL segments with pg_waldump did not finish in time: no verdict.",
                         details=done.stdout[-1000:])
    if done.returncode == 0:
        return None, end_lsn
    message = " ".join(line.split("error:", 1)[-1].strip() for line in done.stdout.splitlines() if "error" in line)
    for name, own in real.items():  # what pg_waldump says in staged names, in the archive's own
        message = message.replace(name, own)
    found = ERROR_AT.search(message)
    if not found:  # before any record: the file itself (its first page header says no WAL segment size)
        named = SEGMENT_NAME.search(message)
        what = next((text for key, text in CLASSES if key in message), "pg_waldump cannot read it")
        return f"segment {named.group(0) if named else segments[0]}: {what} " \
               f"({message or done.stdout.strip()[:300]})", ""
    lsn, reason = found.group(1), (found.group(2) or "no valid record follows").strip()
    # The most precise position the reader gives: a page (segment + offset), else the bad record itself.
    named, record_at = IN_SEGMENT.search(reason), RECORD_AT.search(reason)
    if named and named.group(2):
        lsn = _lsn_of(named.group(1), size, int(named.group(2)))
    elif record_at:
        lsn = record_at.group(1)
    position = segment_number(named.group(1), size) if named else segment_number(segment_of(lsn, timeline, size), size)
    first, last = segment_number(segments[0], size), segment_number(segments[-1], size)
    # a record starting before the range reaches into a bad page of the first
    segment = segments[min(max(position, first), last) - first]
    what = next((text for key, text in CLASSES if key in reason), "a record cannot be read")
    return f"segment {segment}: first bad record at {lsn}: {what} ({reason})", lsn


def backup_begin_lsn(backup) -> str:
    info = getattr(backup, "raw", {}) or {}
    return str(info.get("base_backup_information", {}).get("begin_lsn") or info.get("begin_xlog") or "")


def _lsn_of(segment: str, size: int, offset: int = 0) -> str:
    return _lsn_at(segment_number(segment, size) * size + offset)


def _lsn_at(position: int) -> str:
    return f"{position >> 32:X}/{position & 0xFFFFFFFF:X}"


def segment_range(first: str, last: str) -> list[str]:
    """The consecutive segments of ``first``'s timeline from ``first`` through ``last``."""
    timeline = int(first[:8], 16)
    return [segment_name(timeline, number) for number in range(segment_number(first), segment_number(last) + 1)]


def segment_start(segment: str, size: int = SEGMENT_SIZE) -> str:
    """The LSN where ``segment`` begins (reading from there finds the first record that starts in it)."""
    return _lsn_of(segment, size)


def backup_end_lsn(backup) -> str:
    info = getattr(backup, "raw", {}) or {}
    return str(info.get("base_backup_information", {}).get("end_lsn") or info.get("end_xlog") or "")
