"""WAL positions and segment names: LSN arithmetic and continuity of an archived range."""

from __future__ import annotations

import re

SEGMENT_SIZE = 16 * 1024 * 1024  # PostgreSQL's default wal_segment_size
SEGMENT_RE = re.compile(r"^[0-9A-F]{24}$")


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
