"""A restore across a timeline switch: the source failed over after the backup, Barman archived both
timelines and the history file; recovery follows the switch, and the WAL checks read what it reads.

The module has a stack of its own: the failover changes the source's timeline for every later drill.
"""

from dataclasses import dataclass

import pytest

from harness.checks.wal_integrity import WalIntegrityFailed
from harness.drill import failover, faults
from harness.drill.targets import RecoveryTarget
from harness.plugin.factories import stack_fixture
from harness.postgres.wal import segment_number

stack = stack_fixture(scope="module", kinds=("local",))


@dataclass(frozen=True)
class Switched:
    backup: object       # taken on timeline 1
    timeline: int        # the source's timeline after the failover
    after_switch: str    # a segment of the new timeline strictly after the one holding the switch
    target: object       # an xid target on the new timeline
    expected: object     # the books table at the target
    at_the_end: object   # the books table at the end of the archived WAL


@pytest.fixture(scope="module")
def switched(stack) -> Switched:
    books = stack.source.books(seed=20261130)
    books.insert(1000)
    backup = stack.barman.backup()
    books.update(20)
    stack.barman.archive_current_wal()
    timeline = failover.promote_onto_a_new_timeline(stack)
    books.update(20)
    switch_segment = stack.barman.archive_current_wal()
    books.update(20)
    after_switch = stack.barman.archive_current_wal()
    commit = books.update(20)
    target = stack.source.capture_target("xid", commit)
    expected = stack.source.fingerprint()
    books.insert(50)
    stack.barman.archive_current_wal()
    assert timeline == backup.timeline + 1 and int(after_switch[:8], 16) == timeline
    assert segment_number(switch_segment) < segment_number(after_switch)
    return Switched(backup, timeline, after_switch, target, expected, stack.source.fingerprint())


@pytest.mark.pitr
def test_a_restore_to_a_target_after_the_switch_follows_it(scratch, switched):
    restored = scratch.recover(switched.backup, switched.target)
    restored.assert_matches(switched.expected)
    record = restored.record
    read = record.check("wal_integrity").detail
    assert read.startswith(f"{switched.backup.begin_wal}..{switched.after_switch[:8]}"), read
    assert "following timeline 1 to 2 at " in read and "(00000002.history)" in read, read
    assert record.timeline == switched.timeline + 1, "promotion opens the timeline after the newest archived"


@pytest.mark.pitr
def test_a_restore_to_the_end_follows_the_switch_to_the_newest_wal(scratch, switched):
    restored = scratch.recover(switched.backup, RecoveryTarget("latest"))
    restored.assert_matches(switched.at_the_end)
    assert "following timeline 1 to 2 at " in restored.record.check("wal_integrity").detail
    assert restored.record.timeline == switched.timeline + 1


@pytest.mark.pitr
def test_a_restore_to_the_backups_end_opens_the_timeline_after_the_newest(scratch, switched):
    restored = scratch.recover(switched.backup, RecoveryTarget("immediate"))
    assert restored.record.stop_line.startswith("recovery stopping after reaching consistency")
    assert restored.record.timeline == switched.timeline + 1, "timeline 2 is taken: promotion opens 3"


@pytest.mark.faults
def test_damage_after_the_switch_is_named_before_any_copy(stack, scratch, switched):
    with faults.wal_segment_damaged(stack.barman, switched.after_switch, "bytes changed", pg=stack.pg):
        with pytest.raises(WalIntegrityFailed) as red:
            scratch.recover(switched.backup, switched.target)
    assert f"segment {switched.after_switch}: first bad record at " in str(red.value)
    assert "a record's CRC does not match" in str(red.value)
    assert scratch.records[-1].check("target_accepted") is None


@pytest.mark.faults
def test_a_history_file_with_garbage_is_named_before_any_copy(stack, scratch, switched):
    with faults.history_file_damaged(stack.barman, switched.timeline):
        with pytest.raises(WalIntegrityFailed) as red:
            scratch.recover(switched.backup, switched.target)
    assert "the timeline history file 00000002.history" in str(red.value)
    assert "does not start with a timeline ID" in str(red.value)
    assert scratch.records[-1].check("target_accepted") is None
