"""Timeline history files (`0000000N.history`), parsed as PostgreSQL parses them (readTimeLineHistory).

A promotion opens a new timeline and writes its history file: one line per ancestor, oldest first,
"parentTLI<TAB>switchpoint<TAB>reason", the switchpoint being the LSN where history left that parent.
PostgreSQL reads each line with sscanf("%u\t%X/%X") and skips blank lines and those starting with '#'.
It refuses a file only when a line does not start with a number, has no switch point after it, or
names a timeline not above the line before it, or when the last parent is not below the file's own
timeline; then it cannot follow the timeline, so such a file is damage, named with its line. Anything
else it takes as it is: switch points out of order (a point-in-time recovery ending before its
parent's switch writes them so), an empty file (a timeline without ancestors, which the route then
finds does not descend from the backup's).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from harness.postgres.wal import lsn_to_int

HISTORY_NAME = re.compile(r"^([0-9A-F]{8})\.history$")
# What sscanf("%u\t%X/%X") reads: C's whitespace, an optional sign, digits (hexadecimal: after an optional 0x).
SPACE = b" \t\n\v\f\r"
UNSIGNED = re.compile(rb"[ \t\n\v\f\r]*([+-]?)([0-9]+)")
HEX = re.compile(rb"[ \t\n\v\f\r]*([+-]?)(?:0[xX](?=[0-9A-Fa-f]))?([0-9A-Fa-f]+)")
LINE_BUFFER = 1024  # fgets() into MAXPGPATH bytes: a longer line is read, and parsed, in pieces


class HistoryDamaged(ValueError):
    """A history file PostgreSQL would refuse; the message says which line and why, ``postgres`` what
    PostgreSQL says."""

    def __init__(self, message: str, postgres: str):
        super().__init__(message)
        self.postgres = postgres


@dataclass(frozen=True)
class Switch:
    """History left ``timeline`` at ``lsn`` (the next timeline of the history begins there)."""

    timeline: int
    lsn: str


@dataclass(frozen=True)
class TimelineHistory:
    """Timeline ``timeline`` and its ancestry: where history left each parent, oldest first."""

    timeline: int
    switches: tuple[Switch, ...]

    def timelines(self) -> list[int]:
        return [switch.timeline for switch in self.switches] + [self.timeline]

    def begin(self, timeline: int) -> int:
        """The LSN (as a number) where ``timeline`` begins in this history: 0 for the oldest."""
        found = self.timelines().index(timeline)
        return lsn_to_int(self.switches[found - 1].lsn) if found else 0

    def left(self, timeline: int) -> str:
        """The LSN where history left ``timeline`` ("" for this history's own, which goes on)."""
        return next((switch.lsn for switch in self.switches if switch.timeline == timeline), "")


def history_name(timeline: int) -> str:
    return f"{timeline:08X}.history"


def parse_history(text: str | bytes, timeline: int) -> TimelineHistory:
    """The history of ``timeline`` from its file's content; HistoryDamaged when PostgreSQL would refuse it."""
    switches: list[Switch] = []
    data = text.encode() if isinstance(text, str) else text
    for number, line in _lines(data):
        if not line.lstrip(SPACE) or line.lstrip(SPACE).startswith(b"#"):
            continue
        shown = line.rstrip(b"\n").decode("utf-8", errors="replace")
        shown = repr(shown[:60]) + ("..." if len(shown) > 60 else "")
        fields, parent, switchpoint = _scan(line)
        if fields < 1:
            raise HistoryDamaged(f"line {number} {shown} does not start with a timeline ID",
                                 "syntax error in history file")
        if fields != 3:
            raise HistoryDamaged(f"line {number} {shown} has no switch point (an LSN such as 0/5000060) after its "
                                 "timeline ID", "syntax error in history file")
        if switches and parent <= switches[-1].timeline:
            raise HistoryDamaged(f"line {number} {shown}: timeline IDs must increase from line to line",
                                 "invalid data in history file")
        switches.append(Switch(parent, f"{switchpoint >> 32:X}/{switchpoint & 0xFFFFFFFF:X}"))
    if switches and switches[-1].timeline >= timeline:
        raise HistoryDamaged(f"it names timeline {switches[-1].timeline} as a parent of timeline {timeline}: "
                             "a parent's ID is always lower", "invalid data in history file")
    return TimelineHistory(timeline, tuple(switches))


def _lines(data: bytes):
    """(line number, line) as PostgreSQL's fgets() loop reads them: through a newline, at most
    LINE_BUFFER - 1 bytes at a time; each a C string, so ending at a NUL byte."""
    start, number = 0, 1
    while start < len(data):
        newline = data.find(b"\n", start, start + LINE_BUFFER - 1)
        end = newline + 1 if newline >= 0 else min(start + LINE_BUFFER - 1, len(data))
        yield number, data[start:end].split(b"\0", 1)[0]
        number += data[end - 1:end] == b"\n"
        start = end


def _scan(line: bytes) -> tuple[int, int, int]:
    """sscanf(line, "%u\t%X/%X"): how many fields it reads, the timeline ID and the switch point."""
    tli = UNSIGNED.match(line)
    if not tli:
        return 0, 0, 0
    high = HEX.match(line, tli.end())   # the "\t" of the format matches any whitespace, or none: HEX skips it
    if not high:
        return 1, _c_unsigned(tli), 0
    low = HEX.match(line, high.end() + 1) if line[high.end():high.end() + 1] == b"/" else None
    if not low:
        return 2, _c_unsigned(tli), 0
    return 3, _c_unsigned(tli), _c_unsigned(high, 16) << 32 | _c_unsigned(low, 16)


def _c_unsigned(found: re.Match, base: int = 10) -> int:
    """strtoul() of a sign and digits, stored in a 32-bit unsigned int: out of range saturates, a minus wraps."""
    value = int(found.group(2), base)
    value = 2**64 - 1 if value >= 2**64 else (-value) % 2**64 if found.group(1) == b"-" else value
    return value & 0xFFFFFFFF
