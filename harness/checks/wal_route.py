"""The WAL a restore will read, segment by segment, across timeline switches: as PostgreSQL reads it.

Recovery replays from the backup's start. With recovery_target_timeline 'latest' (the default from
PostgreSQL 12 on, and what a restore to the end asks for when the archive holds a later timeline, a
failover after the backup) it follows the newest timeline whose history file is archived, counting up
from the backup's without a gap. That file says where history left each ancestor. For each segment,
recovery reads the file of the newest timeline begun at or before it (PostgreSQL's XLogFileReadAnyTLI):
the parent's segments before the one holding the switch, the child's from that one on. The checks read
exactly these files. A history file PostgreSQL would refuse, a newest timeline that does not descend
from the backup's, or later WAL without its history file, is named here: recovery could not follow it.
"""

from __future__ import annotations

import lzma
import subprocess
import zlib
from dataclasses import dataclass

from harness.barman.wal_catalogue import WalCatalogue
from harness.checks.wal_integrity import WalIntegrityFailed, backup_begin_lsn, backup_end_lsn
from harness.checks.wal_staging import unpacked
from harness.errors import VerificationFailed
from harness.evidence.records import RestoreRecord
from harness.postgres.timelines import HistoryDamaged, Switch, TimelineHistory, history_name, parse_history
from harness.postgres.wal import SEGMENT_SIZE, lsn_to_int, segment_name, segment_number

FOLLOWS_LATEST_SINCE = 120000  # recovery_target_timeline defaults to 'latest' from PostgreSQL 12 on
UNKNOWN_FROM = 1 << 64         # known_from when even the backup's start is unknown: no LSN


@dataclass(frozen=True)
class WalRoute:
    """Which archived file recovery reads for each segment position, from the backup's start on."""

    backup_timeline: int
    timeline: int                          # the timeline recovery follows to its end
    begins: tuple[tuple[int, int], ...]    # (timeline, first segment position read from it), ascending
    switches: tuple[Switch, ...] = ()      # the switches on the way, from the backup's timeline on
    promotes_to: int = 0                   # the timeline a promotion at the end opens
    catalogue: WalCatalogue | None = None  # what the archive holds
    history: str = ""                      # the history file followed ("" when none)
    known_from: int = 0                    # the LSN from which the backup's timeline is known in use

    @property
    def crosses(self) -> bool:
        return self.timeline != self.backup_timeline

    @property
    def archived(self) -> frozenset[str]:
        return self.catalogue.segments if self.catalogue else frozenset()

    def encrypted(self, name: str) -> bool | None:
        return self.catalogue.encrypted(name) if self.catalogue else None

    def segment(self, number: int) -> str:
        timeline = next(tli for tli, first in reversed(self.begins) if number >= first)
        return segment_name(timeline, number)

    def segment_of(self, lsn: str) -> str:
        return self.segment(lsn_to_int(lsn) // SEGMENT_SIZE)

    def through(self, first: str, last: str) -> list[str]:
        """The files recovery reads from position ``first`` through position ``last``."""
        return [self.segment(number) for number in range(segment_number(first), segment_number(last) + 1)]

    def page_timeline(self, lsn: int) -> int | None:
        """The timeline whose WAL lies at ``lsn``, which page headers there carry (PostgreSQL's
        tliOfPointInHistory): a child's first segment holds its parent's pages before the switch. None
        where the route does not know (before the backup's timeline is known to have begun)."""
        spans, begin = [], self.known_from
        for switch in self.switches:
            spans.append((switch.timeline, begin, lsn_to_int(switch.lsn)))
            begin = lsn_to_int(switch.lsn)
        spans.append((self.timeline, begin, None))
        return next((tli for tli, start, end in reversed(spans) if start <= lsn and (end is None or lsn < end)),
                    None)

    def newest(self) -> str:
        """The newest archived segment on the route ("" when none is)."""
        on_route = [name for name in self.archived if self.segment(segment_number(name)) == name]
        return max(on_route, key=segment_number, default="")

    def describe(self) -> str:
        """'timeline 1 to 2 at 0/70000E0 (00000002.history)', or "" when the route stays on one timeline."""
        if not self.crosses:
            return ""
        steps = [f"{switch.timeline} to {following} at {switch.lsn}" for switch, following in
                 zip(self.switches, [s.timeline for s in self.switches[1:]] + [self.timeline], strict=True)]
        return f"timeline {', '.join(steps)} ({self.history})"


def plan(catalogue: WalCatalogue, backup, target_kind: str, record: RestoreRecord) -> WalRoute:
    """The route recovery of ``backup`` to a target of ``target_kind`` takes through ``catalogue``."""
    newest = backup.timeline
    while newest + 1 in catalogue.histories:
        newest += 1
    version = int((getattr(backup, "raw", {}) or {}).get("postgresql_version") or 0)
    # A restore to the end follows the newest timeline (the harness asks for it); a point-in-time one
    # follows PostgreSQL's default.
    timeline = newest if target_kind == "latest" or not version or version >= FOLLOWS_LATEST_SINCE \
        else backup.timeline
    later = sorted(tli for tli in catalogue.timelines() if tli > newest)
    if later and target_kind != "immediate":
        raise record.failed("wal_continuity", VerificationFailed(
            f"The archive holds WAL of timeline {later[0]} after backup {backup.backup_id} (timeline "
            f"{backup.timeline}) but not the history file {history_name(newest + 1)}: recovery cannot follow the "
            f"switch to it, so a restore past timeline {newest}'s end would stop there without an error.",
            f"Find {history_name(newest + 1)} (it was written where the failover happened) and put it into "
            "Barman's archive, or drill a backup taken on the current timeline."))
    route = dict(backup_timeline=backup.timeline, timeline=timeline, promotes_to=newest + 1, catalogue=catalogue)
    if timeline == backup.timeline:
        # No history followed: the backup's timeline is known in use from the backup's start on.
        begin = backup_begin_lsn(backup)
        return WalRoute(begins=((timeline, 0),), known_from=lsn_to_int(begin) if begin else UNKNOWN_FROM, **route)
    history = _history(catalogue, backup, timeline, record)
    switches = tuple(switch for switch in history.switches if switch.timeline >= backup.timeline)
    begins = [(backup.timeline, 0)] + [(tli, history.begin(tli) // SEGMENT_SIZE)
                                       for tli in history.timelines() if tli > backup.timeline]
    return WalRoute(begins=tuple(begins), switches=switches, history=history_name(timeline),
                    known_from=history.begin(backup.timeline), **route)


def _history(catalogue: WalCatalogue, backup, timeline: int, record: RestoreRecord) -> TimelineHistory:
    """The history of ``timeline``, checked to descend from the backup after its end."""
    path = catalogue.histories[timeline]
    name = history_name(timeline)
    try:
        history = parse_history(unpacked(path, catalogue.encrypted(name)), timeline)
    except (HistoryDamaged, OSError, EOFError, ValueError, lzma.LZMAError, zlib.error,
            subprocess.SubprocessError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc) or type(exc).__name__
        # What PostgreSQL says of a file it refuses; one it cannot restore it takes for no history at all.
        said = f"PostgreSQL: {exc.postgres}" if isinstance(exc, HistoryDamaged) else \
            "PostgreSQL could not restore the file and would not follow the switch"
        raise record.failed("wal_integrity", WalIntegrityFailed(
            f"WAL needed by backup {backup.backup_id} is damaged: the timeline history file {name} ({path}) "
            f"cannot be used: {reason}. Recovery follows timeline {timeline} with it and would stop ({said}).",
            f"Restore {name} from another copy (the promoted server's pg_wal holds it), or drill a backup "
            f"taken on timeline {timeline}.")) from None
    left = history.left(backup.timeline)
    if backup.timeline not in history.timelines():
        ancestry = " -> ".join(map(str, history.timelines())) if history.switches else "it names no parent timeline"
        problem = (f"timeline {timeline}, the newest in the archive, does not descend from the backup's timeline "
                   f"{backup.timeline} (its history, {name}: {ancestry})")
    elif left and lsn_to_int(left) < lsn_to_int(backup_end_lsn(backup) or "0/0"):
        problem = (f"timeline {timeline} left the backup's timeline {backup.timeline} at {left}, before the "
                   f"backup ended at {backup_end_lsn(backup)} ({name})")
    else:
        return history
    raise record.failed("wal_integrity", WalIntegrityFailed(
        f"WAL after backup {backup.backup_id} cannot be followed: {problem}; recovery to timeline {timeline} "
        f"would fail (PostgreSQL: requested timeline {timeline} is not a child of this server's history).",
        "The archive's newest timeline branches off before this backup: drill a backup taken on it."))
