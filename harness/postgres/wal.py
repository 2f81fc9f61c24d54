"""WAL positions and segment names: LSN arithmetic, continuity of an archived range, page headers."""

from __future__ import annotations

import re
import struct
from pathlib import Path

SEGMENT_SIZE = 16 * 1024 * 1024  # PostgreSQL's default wal_segment_size
SEGMENT_RE = re.compile(r"^[0-9A-F]{24}$")
# A segment's first page opens with a long page header: xlp_magic (2 bytes), xlp_info (2), xlp_tli (4), ...
# in the byte order of the server that wrote it (pg_waldump on this host reads the same order).
PAGE_HEADER_START = struct.Struct("=HHI")
XLP_LONG_HEADER, XLP_ALL_FLAGS = 0x0002, 0x000F   # XLP_FIRST_IS_OVERWRITE_CONTRECORD (0x8) since 14


def lsn_to_int(lsn: str) -> int:
    """'0/3000060' -> 50331744."""
    high, low = lsn.split("/")
    return (int(high, 16) << 32) | int(low, 16)


def segment_number(name: str, segment_size: int = SEGMENT_SIZE) -> int:
    """Position of a segment on its timeline: '000000010000000200000003' -> 2 * 256 + 3."""
    if not SEGMENT_RE.match(name):
        raise ValueError(f"not a WAL segment name: {name!r}")
    per_xlogid = 0x100000000 // segment_size
    return int(name[8:16], 16) * per_xlogid + int(name[16:24], 16)


def segment_name(timeline: int, number: int, segment_size: int = SEGMENT_SIZE) -> str:
    per_xlogid = 0x100000000 // segment_size
    return f"{timeline:08X}{number // per_xlogid:08X}{number % per_xlogid:08X}"


def segment_of(lsn: str, timeline: int, segment_size: int = SEGMENT_SIZE) -> str:
    return segment_name(timeline, lsn_to_int(lsn) // segment_size, segment_size)


def missing_segments(archived: list[str], first: str, last: str, segment_size: int = SEGMENT_SIZE) -> list[str]:
    """Segments of ``first``'s timeline from ``first`` to ``last`` (inclusive) absent from ``archived``."""
    timeline = int(first[:8], 16)
    have = {name for name in archived if SEGMENT_RE.match(name)}
    start, end = segment_number(first, segment_size), segment_number(last, segment_size)
    return [name for name in (segment_name(timeline, n, segment_size) for n in range(start, end + 1))
            if name not in have]


def first_page_timeline(path: Path) -> int | None:
    """The timeline that wrote the first page of the segment file ``path`` (its header's xlp_tli);
    None when that page has no WAL long page header (pg_waldump names what it is then)."""
    with open(path, "rb") as handle:
        head = handle.read(PAGE_HEADER_START.size)
    if len(head) < PAGE_HEADER_START.size:
        return None
    _magic, info, timeline = PAGE_HEADER_START.unpack(head)
    return timeline if info & XLP_LONG_HEADER and not info & ~XLP_ALL_FLAGS else None
