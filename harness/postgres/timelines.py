"""Timeline history files (`0000000N.history`), parsed by PostgreSQL's own rules.

A promotion opens a new timeline and writes its history file: one line per ancestor, oldest first,
"parentTLI<TAB>switchpoint<TAB>reason", the switchpoint being the LSN where history left that parent.
Blank lines and lines starting with '#' are skipped. PostgreSQL refuses a file that breaks these rules
("syntax error in history file") and cannot follow the timeline then, so such a file is damage, named
with its line.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from harness.postgres.wal import lsn_to_int

HISTORY_NAME = re.compile(r"^([0-9A-F]{8})\.history$")
LINE = re.compile(r"\s*(\d+)(?:\s+([0-9A-Fa-f]{1,8})/([0-9A-Fa-f]{1,8}))?")


class HistoryDamaged(ValueError):
    """A history file PostgreSQL would refuse; the message says which line and why."""


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


def parse_history(text: str, timeline: int) -> TimelineHistory:
    """The history of ``timeline`` from its file's text; HistoryDamaged when PostgreSQL would refuse it."""
    switches: list[Switch] = []
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.lstrip()
        if not line or line.startswith("#"):
            continue
        shown = repr(raw[:60]) + ("..." if len(raw) > 60 else "")
        found = LINE.match(line)
        if not found:
            raise HistoryDamaged(f"line {number} {shown} does not start with a timeline ID")
        if found.group(2) is None:
            raise HistoryDamaged(f"line {number} {shown} has no switch point (an LSN such as 0/5000060)")
        parent = int(found.group(1))
        if switches and parent <= switches[-1].timeline:
            raise HistoryDamaged(f"line {number} {shown}: timeline IDs must increase from line to line")
        switches.append(Switch(parent, f"{int(found.group(2), 16):X}/{int(found.group(3), 16):X}"))
        if lsn_to_int(switches[-1].lsn) < (lsn_to_int(switches[-2].lsn) if len(switches) > 1 else 0):
            raise HistoryDamaged(f"line {number} {shown}: its switch point lies before the previous line's")
    if not switches and timeline > 1:
        raise HistoryDamaged("it names no parent timeline (a timeline after the first always has one)")
    if switches and switches[-1].timeline >= timeline:
        raise HistoryDamaged(f"it names timeline {switches[-1].timeline} as a parent of timeline {timeline}: "
                             "a parent's ID is always lower")
    return TimelineHistory(timeline, tuple(switches))
