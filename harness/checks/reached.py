"""Checks that recovery really reached its target, from the server's own words.

`pg_ctl start -w` returns once the server accepts connections, which says nothing about where
recovery stopped. A point-in-time target counts as reached only when the server has left recovery
(the harness asks Barman for target action "promote") and its log holds the stop line matching
this target. A "latest" restore must have replayed through the newest archived segment: over a
gap PostgreSQL stops early without an error, so the redo end is checked against the archive.
Recovery that ends before the target, or a server that dies, fails at once with its log.
"""

from __future__ import annotations

import re

import psycopg

from harness.drill.targets import RecoveryTarget
from harness.errors import RecoveryFailed, VerificationFailed
from harness.evidence.records import RestoreRecord
from harness.postgres.wal import segment_number
from harness.process import logfiles
from harness.process.waiting import wait_until

EARLY_END = re.compile(r"recovery ended before configured recovery target was reached")
STOP_LINE = re.compile(r"recovery stopping .*")
REDO_DONE = re.compile(r"redo done at ([0-9A-F]+/[0-9A-F]+)")
RELEVANT = (r"FATAL|PANIC|ERROR|recovery stopping|redo done|selected new timeline|archive recovery complete|consistent"
            r"|invalid|incorrect|wrong size|checksum|unexpected pageaddr|contrecord|could not")
# Lines the server writes about WAL it could not use: always in a diagnosis, whatever else the log holds.
WAL_TROUBLE = r"invalid|incorrect|wrong size|checksum|unexpected pageaddr|contrecord|could not (open|read|restore)"


def target_reached(server, target: RecoveryTarget, record: RestoreRecord, route, timeout: float) -> str:
    """Wait until ``server`` has left recovery at exactly ``target``; record and return its stop line.
    For `latest`, redo must also have reached the newest archived segment of the ``route`` recovery
    takes (harness.checks.wal_route.WalRoute)."""
    try:
        record.stop_line = wait_until_target_reached(server, target, timeout=timeout, route=route)
    except VerificationFailed as exc:
        raise record.failed("target_reached", exc) from None
    if not target.is_pitr:
        _replayed_to_archive_end(server, target, record, route)
    record.passed("target_reached", record.stop_line)
    return record.stop_line


def start_failure(server, target: RecoveryTarget, record: RestoreRecord, details: str, route) -> RecoveryFailed:
    """The scratch server did not come up: say where redo stopped and why, or quote its FATAL line."""
    reason = early_end(server, route)
    if not reason:
        fatal = [line for line in logfiles.tail(server.log_path, 400) if "FATAL" in line or "PANIC" in line]
        reason = "the scratch server did not come up" + (f": {_message(fatal[-1])}" if fatal else "")
    return record.failed("target_reached", recovery_failed(server, target, reason, details + _trouble(server)))


def timeline_opened(server, target: RecoveryTarget, record: RestoreRecord, backup_timeline: int,
                    expected: int) -> int:
    """Promotion opens the timeline after the newest one archived (N+1 from a backup on timeline N
    without a later one); crash recovery to the end stays on the backup's: ``expected``."""
    record.timeline = server.timeline()
    if record.timeline != expected:
        raise record.failed("timeline", recovery_failed(
            server, target, f"the restore is on timeline {record.timeline}, expected {expected} "
            f"(backup on timeline {backup_timeline})"))
    record.passed("timeline", str(record.timeline))
    return record.timeline


def wait_until_target_reached(server, target: RecoveryTarget, timeout: float, route=None) -> str:
    """Return the log's stop line once the server has left recovery at exactly ``target``."""
    expected = re.compile(target.stop_pattern())

    def reached():
        early = early_end(server, route)
        if early:
            raise recovery_failed(server, target, early)
        log = "\n".join(logfiles.tail(server.log_path, 400))
        if not server.is_running():
            raise recovery_failed(server, target, "the scratch server exited during recovery")
        stops = STOP_LINE.findall(log) if target.is_pitr else REDO_DONE.findall(log)
        if target.is_pitr and stops and not any(expected.search(line) for line in stops):
            raise recovery_failed(server, target, f"recovery stopped elsewhere: {stops[-1]}")
        with server.conn.connect() as conn:
            if conn.execute("SELECT pg_is_in_recovery()").fetchone()[0]:
                return None
        if not stops:
            raise recovery_failed(server, target, "the server left recovery without reporting where it "
                                  "stopped" + (" (it replayed to the end of WAL instead)" if target.is_pitr else ""))
        return stops[-1] if target.is_pitr else f"redo done at {stops[-1]}"

    return wait_until(reached, what=f"recovery to reach {target.describe()} and leave recovery",
                      timeout=timeout, interval=0.1, tolerate=(psycopg.OperationalError,),
                      logs=lambda: server.log_excerpt(40, RELEVANT))


def early_end(server, route=None) -> str:
    """Why recovery ended before its target, from the log: where redo stopped against what the archive
    holds on the ``route`` recovery takes, or "" when it did not end early."""
    log = logfiles.tail(server.log_path, 400)
    if not any(EARLY_END.search(line) for line in log):
        return ""
    reason = "WAL ran out before the target: recovery ended before the configured target was reached"
    stops = [found.group(1) for line in log if (found := REDO_DONE.search(line))]
    if stops and route is not None and route.newest():
        reason += "; " + why_redo_stopped(server, stops[-1], route)
    return reason


def why_redo_stopped(server, redo_end: str, route) -> str:
    """Redo stopped at ``redo_end``: the segment it could not go on to is missing, present but
    damaged, or beyond the end of the archive (the target is later than anything archived)."""
    redo_segment = route.segment_of(redo_end)
    newest = route.newest()
    held = f"redo stopped at {redo_end} in segment {redo_segment} while the archive holds WAL through {newest}"
    following = route.segment(segment_number(redo_segment) + 1)
    if segment_number(redo_segment) >= segment_number(newest):
        return f"{held}: the WAL ends there (the target is later than anything archived)"
    if following not in route.archived:
        return f"{held}: segment {following} is missing from the archive"
    troubles = [_message(line) for line in logfiles.tail(server.log_path, 400) if re.search(WAL_TROUBLE, line)]
    said = troubles[-1] if troubles else ""
    # The server names the segment, or the LSN of the bad record; else it is the one redo could not enter.
    named, at = re.search(r"segment ([0-9A-F]{24})", said), re.search(r"at ([0-9A-F]+/[0-9A-F]+)", said)
    damaged = named.group(1) if named else route.segment_of(at.group(1)) if at else following
    return (f"{held}: segment {damaged} is present but damaged"
            + (f" (the server: {said})" if said else " (the server replayed nothing more of it)"))


def _message(line: str) -> str:
    """A log line without its prefix (time, pid)."""
    return re.sub(r"^.*?\b(LOG|FATAL|PANIC|ERROR|WARNING|DETAIL):\s+", r"\1: ", line).strip()


def _trouble(server) -> str:
    lines = [line for line in logfiles.tail(server.log_path, 400) if re.search(WAL_TROUBLE, line)]
    return ("\n  the server about WAL it could not use:\n" + "\n".join("    " + line for line in lines[-8:])) if lines else ""


def _replayed_to_archive_end(server, target: RecoveryTarget, record: RestoreRecord, route) -> None:
    # Over a WAL gap, recovery to "latest" ends quietly at the gap: compare where redo ended
    # with the newest segment the archive holds on the route recovery takes.
    redo_end = record.stop_line.rsplit(" ", 1)[-1]
    redo_segment = route.segment_of(redo_end)
    newest = route.newest()
    if newest and segment_number(redo_segment) < segment_number(newest):
        raise record.failed("target_reached", recovery_failed(
            server, target,
            why_redo_stopped(server, redo_end, route).replace("redo stopped", "redo stopped early", 1)
            + f", so every change after {redo_end} is absent from the restore"))


def recovery_failed(server, target: RecoveryTarget, reason: str, details: str = "") -> RecoveryFailed:
    return RecoveryFailed(
        f"Recovery of {server.data_dir} to {target.describe()} failed: {reason}.",
        "Check that the WAL from the backup to the target is archived and sound (barman list-files --target wal).",
        details or (server.log_excerpt(25, RELEVANT) + _trouble(server)))
