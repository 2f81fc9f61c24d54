"""WAL integrity, before any copy: every segment recovery will read, read record by record.

`wal_continuity` proves each needed segment is listed and present; this proves each one is sound,
with PostgreSQL's own WAL reader (pg_waldump of the backup's major): the right size, page headers of
the right timeline and position, every record's CRC, continuity across segment boundaries. Barman may
store segments compressed (gzip, bzip2, lz4, zstd, xz: recognized by their magic bytes) or under a
suffix; they are decompressed into the run's directory first, and a segment that no longer
decompresses is named as such. The first bad segment is named with the LSN of the first bad record
and what is wrong with it.

Across a timeline switch the segments are the files recovery reads (harness.checks.wal_route): the
parent's, then the child's. pg_waldump reads one timeline's file names, so each file is staged under
its position's name on the newest timeline of the range, and what pg_waldump says is mapped back to
the archived file's own name.
"""

from __future__ import annotations

import bz2
import gzip
import lzma
import re
import shutil
import subprocess
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from harness.errors import SetupError, VerificationFailed
from harness.evidence.records import RestoreRecord
from harness.postgres.binaries import PgBin
from harness.postgres.wal import SEGMENT_SIZE, segment_name, segment_number, segment_of
from harness.process.commands import run, run_to_file

MAGIC = ((b"\x1f\x8b", "gzip"), (b"BZh", "bzip2"), (b"\xfd7zXZ\x00", "xz"), (b"\x28\xb5\x2f\xfd", "zstd"),
         (b"\x04\x22\x4d\x18", "lz4"))
PYTHON_DECOMPRESS = {"gzip": gzip.open, "bzip2": bz2.open, "xz": lzma.open}
TOOLS = {"zstd": ["zstd", "-d", "-q", "-c"], "lz4": ["lz4", "-d", "-q", "-c"]}
SUFFIXES = ("", ".gz", ".bz2", ".xz", ".zst", ".lz4")
UNKNOWN: Callable[[str], bool | None] = lambda name: None  # noqa: E731 (no catalogue to say if it is encrypted)

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
                  encrypted: Callable[[str], bool | None] = UNKNOWN, stop=None) -> WalReading | None:
    """Read ``segments`` (the files recovery reads, consecutive positions, oldest first) from ``start_lsn``
    (default: the backup's start) through ``end_lsn`` (default: the end of valid WAL in the last one).
    Records the outcome as check ``name`` (``route``: the timeline switches followed, said in it); raises
    WalIntegrityFailed on damage unless ``raise_on_damage`` is false (then the outcome is a warning).
    ``encrypted``: whether Barman's catalogue says a segment is encrypted (None: it does not say);
    ``stop``: an Event that ends the reading early, when its outcome is no longer wanted."""
    if not segments:
        return None
    started = time.monotonic()
    staging = workdir / f"wal-integrity-{uuid.uuid4().hex[:8]}"
    staging.mkdir(parents=True)
    try:
        damage, size = _stage(barman, segments, staging, _segment_size(barman, backup), encrypted)
        end = end_lsn
        if damage is None:
            damage, end = _read(pg, staging, segments, start_lsn or _begin_lsn(backup), end_lsn, size, stop)
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


def _stage(barman, segments: list[str], staging: Path, size: int,
           encrypted: Callable[[str], bool | None] = UNKNOWN) -> tuple[str | None, int]:
    """Each segment, as PostgreSQL would read it, into ``staging`` under its staged name: a link, or
    decompressed."""
    for segment, staged in zip(segments, staged_names(segments, size), strict=True):
        try:
            found = next((path for path in (barman.wal_path(segment).with_name(segment + suffix)
                                            for suffix in SUFFIXES) if path.exists()), None)
        except OSError as exc:  # a directory of the archive the harness may not enter
            return f"segment {segment} cannot be read ({barman.wal_path(segment).parent}: {exc.strerror})", size
        if found is None:
            return f"segment {segment} is missing from the archive", size
        try:
            kind = compression_of(found)
        except OSError as exc:
            return f"segment {segment} cannot be read ({found}: {exc.strerror})", size
        if kind == "openpgp" and encrypted(segment) is False:
            kind = None  # Barman's catalogue says it stored it unencrypted: bytes that are no WAL, read below
        if kind == "openpgp":
            raise SetupError(f"WAL segment {segment} is encrypted (OpenPGP, {found}): the harness does not read "
                             "encrypted WAL, so its integrity is not verified: no verdict.")
        target = staging / staged
        if kind is None:
            target.symlink_to(found)
        else:
            try:
                _decompress(found, kind, target)
            except Exception as exc:  # the archive's file is the problem, whatever the library says
                return (f"segment {segment} ({kind}-compressed, {found}) cannot be decompressed: "
                        f"{str(exc).strip() or type(exc).__name__}"), size
        actual = target.stat().st_size
        if actual != size:
            return (f"segment {segment} has the wrong size: {actual} bytes instead of {size} ("
                    + ("cut short; " if actual < size else "") + f"{found})"), size
    return None, size


def staged_names(segments: list[str], size: int = SEGMENT_SIZE) -> list[str]:
    """Each segment's name at its position on the newest timeline of the range (the last one's)."""
    timeline = int(segments[-1][:8], 16)
    return [segment_name(timeline, segment_number(segment, size), size) for segment in segments]


def unpacked(path: Path) -> bytes:
    """The bytes of a small archived file (a history file), decompressed when Barman compressed it."""
    kind = compression_of(path)
    if kind in PYTHON_DECOMPRESS:
        with PYTHON_DECOMPRESS[kind](path, "rb") as packed:
            return packed.read()
    if kind in TOOLS and shutil.which(TOOLS[kind][0]):
        done = subprocess.run([*TOOLS[kind], str(path)], capture_output=True, timeout=60, stdin=subprocess.DEVNULL)
        if done.returncode != 0:
            raise ValueError(done.stderr.decode(errors="replace").strip()[:300] or f"{kind} exit {done.returncode}")
        return done.stdout
    return path.read_bytes()


def compression_of(path: Path) -> str | None:
    """gzip, bzip2, xz, zstd, lz4, openpgp (Barman's encryption), or None for plain WAL."""
    with open(path, "rb") as handle:
        head = handle.read(6)
    found = next((kind for magic, kind in MAGIC if head.startswith(magic)), None)
    # An OpenPGP message opens with an encrypted-session-key packet; a WAL page never has these bytes first.
    return found or ("openpgp" if head[:1] in (b"\x84", b"\x85", b"\x8c", b"\xc1", b"\xc3") else None)


def _decompress(source: Path, kind: str, target: Path) -> None:
    if kind in PYTHON_DECOMPRESS:
        with PYTHON_DECOMPRESS[kind](source, "rb") as packed, open(target, "wb") as out:
            shutil.copyfileobj(packed, out, 1 << 20)
        return
    tool = shutil.which(TOOLS[kind][0])
    if tool is None:
        raise SetupError(f"WAL is {kind}-compressed and no `{TOOLS[kind][0]}` is installed to read it.",
                         f"Install {TOOLS[kind][0]} (Debian: apt-get install {TOOLS[kind][0]}).")
    done = run_to_file([tool, *TOOLS[kind][1:], source], target, timeout=300)
    if done.returncode is None:
        raise SetupError(f"Decompressing {source} did not finish in time: no verdict.")
    if done.returncode != 0:
        raise ValueError(done.stdout.strip()[:300] or f"{tool} exit {done.returncode}")


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


def _begin_lsn(backup) -> str:
    info = getattr(backup, "raw", {}) or {}
    return str(info.get("base_backup_information", {}).get("begin_lsn") or info.get("begin_xlog") or "")


def _lsn_of(segment: str, size: int, offset: int = 0) -> str:
    position = segment_number(segment, size) * size + offset
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
