"""Write histories the fault scenarios share: where a backup, its target and the segments around them fall."""

from __future__ import annotations

from dataclasses import dataclass

from harness.postgres.wal import segment_number, segment_of


@dataclass(frozen=True)
class AroundATarget:
    backup: object
    middle: str       # an archived segment strictly between the backup's end and the target's segment
    target: object    # an xid target
    expected: object  # the books table at the target
    after: str        # an archived segment after the target's


def around_a_target(source, barman, books, rows) -> AroundATarget:
    """A backup, a segment between it and an xid target, writes after the target archived over a
    segment of their own."""
    books.insert(rows)
    backup = barman.backup()
    books.update(20)
    middle = barman.archive_current_wal()
    commit = books.update(20)
    target = source.capture_target("xid", commit)
    expected = source.fingerprint()
    books.insert(100)
    barman.archive_current_wal()
    books.insert(100)
    after = barman.archive_current_wal()
    assert segment_number(backup.end_wal) < segment_number(middle) < segment_number(
        segment_of(target.at_lsn, backup.timeline)) < segment_number(after), \
        "the history needs segments between backup and target, and after the target"
    return AroundATarget(backup, middle, target, expected, after)
