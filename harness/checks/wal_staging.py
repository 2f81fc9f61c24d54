"""Archived WAL files as PostgreSQL reads them: found under Barman's suffixes, decompressed, staged.

Barman may store a file compressed (gzip, bzip2, xz, zstd, lz4: recognized by their magic bytes, not
by the name) or encrypted (OpenPGP). `stage` puts each segment a read needs into a directory of the
run, under the name pg_waldump reads it by: a link to the archived file, or its decompressed bytes. A
file that is missing, unreadable, does not decompress or has the wrong size is said as damage; one
that is encrypted is no verdict (the harness does not read encrypted WAL).
"""

from __future__ import annotations

import bz2
import gzip
import lzma
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

from harness.barman.wal_catalogue import SUFFIXES
from harness.errors import SetupError
from harness.postgres.wal import SEGMENT_SIZE, segment_name, segment_number
from harness.process.commands import run_to_file

MAGIC = ((b"\x1f\x8b", "gzip"), (b"BZh", "bzip2"), (b"\xfd7zXZ\x00", "xz"), (b"\x28\xb5\x2f\xfd", "zstd"),
         (b"\x04\x22\x4d\x18", "lz4"))
PYTHON_DECOMPRESS = {"gzip": gzip.open, "bzip2": bz2.open, "xz": lzma.open}
TOOLS = {"zstd": ["zstd", "-d", "-q", "-c"], "lz4": ["lz4", "-d", "-q", "-c"]}
UNKNOWN: Callable[[str], bool | None] = lambda name: None  # noqa: E731 (no catalogue to say if it is encrypted)


class Stopped(SetupError):
    """The read was told to stop (the restore ended elsewhere): no verdict from it."""


def stage(barman, segments: list[str], staging: Path, size: int,
          encrypted: Callable[[str], bool | None] = UNKNOWN, stop=None) -> str | None:
    """Each segment, as PostgreSQL would read it, into ``staging`` under its staged name: a link, or
    decompressed. Returns the damage of the first that cannot be (None when all are staged); raises
    Stopped as soon as ``stop`` is set."""
    for segment, staged in zip(segments, staged_names(segments, size), strict=True):
        if stop is not None and stop.is_set():
            raise Stopped(f"Reading WAL segment {segment} and on was stopped: the restore ended before it: "
                          "no verdict from it.")
        try:
            found = next((path for path in (barman.wal_path(segment).with_name(segment + suffix)
                                            for suffix in SUFFIXES) if path.exists()), None)
        except OSError as exc:  # a directory of the archive the harness may not enter
            return f"segment {segment} cannot be read ({barman.wal_path(segment).parent}: {exc.strerror})"
        if found is None:
            return f"segment {segment} is missing from the archive"
        try:
            kind = compression_of(found)
        except OSError as exc:
            return f"segment {segment} cannot be read ({found}: {exc.strerror})"
        if kind == "openpgp" and encrypted(segment) is False:
            kind = None  # Barman's catalogue says it stored it unencrypted: bytes that are no WAL, read later
        if kind == "openpgp":
            raise SetupError(f"WAL segment {segment} is encrypted (OpenPGP, {found}): the harness does not read "
                             "encrypted WAL, so its integrity is not verified: no verdict.")
        target = staging / staged
        if kind is None:
            target.symlink_to(found)
        else:
            try:
                decompress(found, kind, target)
            except SetupError:
                raise
            except Exception as exc:  # the archive's file is the problem, whatever the library says
                return (f"segment {segment} ({kind}-compressed, {found}) cannot be decompressed: "
                        f"{str(exc).strip() or type(exc).__name__}")
        actual = target.stat().st_size
        if actual != size:
            return (f"segment {segment} has the wrong size: {actual} bytes instead of {size} ("
                    + ("cut short; " if actual < size else "") + f"{found})")
    return None


def staged_names(segments: list[str], size: int = SEGMENT_SIZE) -> list[str]:
    """Each segment's name at its position on the newest timeline of the range (the last one's)."""
    timeline = int(segments[-1][:8], 16)
    return [segment_name(timeline, segment_number(segment, size), size) for segment in segments]


def unpacked(path: Path, encrypted: bool | None = None) -> bytes:
    """The bytes of a small archived file (a history file), decompressed when Barman compressed it.
    ``encrypted``: whether Barman's catalogue says it is (None: it does not say)."""
    kind = compression_of(path)
    if kind == "openpgp" and encrypted is not False:
        raise SetupError(f"{path} is encrypted (OpenPGP): the harness does not read encrypted files of the "
                         "archive, so it cannot follow what it says: no verdict.")
    if kind in (None, "openpgp"):
        return path.read_bytes()
    with tempfile.TemporaryDirectory(prefix="pgbv-unpacked-") as scratch:
        target = Path(scratch) / path.name
        decompress(path, kind, target)
        return target.read_bytes()


def compression_of(path: Path) -> str | None:
    """gzip, bzip2, xz, zstd, lz4, openpgp (Barman's encryption), or None for plain WAL."""
    with open(path, "rb") as handle:
        head = handle.read(6)
    found = next((kind for magic, kind in MAGIC if head.startswith(magic)), None)
    # An OpenPGP message opens with an encrypted-session-key packet; a WAL page never has these bytes first.
    return found or ("openpgp" if head[:1] in (b"\x84", b"\x85", b"\x8c", b"\xc1", b"\xc3") else None)


def decompress(source: Path, kind: str, target: Path) -> None:
    """``source`` (``kind``-compressed) decompressed into ``target``. SetupError when it cannot be tried
    (no tool, no end); any other exception says the file itself does not decompress."""
    if kind in PYTHON_DECOMPRESS:
        with PYTHON_DECOMPRESS[kind](source, "rb") as packed, open(target, "wb") as out:
            shutil.copyfileobj(packed, out, 1 << 20)
        return
    tool = shutil.which(TOOLS[kind][0])
    if tool is None:
        raise SetupError(f"{source} is {kind}-compressed and no `{TOOLS[kind][0]}` is installed to read it.",
                         f"Install {TOOLS[kind][0]} (Debian: apt-get install {TOOLS[kind][0]}).")
    done = run_to_file([tool, *TOOLS[kind][1:], source], target, timeout=300)
    if done.returncode is None:
        raise SetupError(f"Decompressing {source} did not finish in time: no verdict.")
    if done.returncode != 0:
        raise ValueError(done.stdout.strip()[:300] or f"{tool} exit {done.returncode}")
