"""Broken chains must end red, with a diagnosis that names what is broken and where.

Each scenario damages one thing through harness.faults (put back on exit), runs the drill as
usual and asserts both that it failed and that the message names the injected cause.
"""

import pytest
from histories import around_a_target

from harness.checks.wal_integrity import WalIntegrityFailed
from harness.drill import faults
from harness.errors import RecoveryFailed, TargetRefused, VerificationFailed
from harness.postgres.wal import segment_of

pytestmark = pytest.mark.faults


@pytest.fixture
def segment_between(source, barman, books, rows):
    """A backup, an archived segment strictly between it and an xid target, later writes archived."""
    around = around_a_target(source, barman, books, rows)
    return around.backup, around.middle, around.target, around.expected


def test_deleted_wal_segment_is_named(barman, scratch, segment_between):
    backup, middle, target, _ = segment_between
    with faults.wal_segment_deleted(barman, middle):
        with pytest.raises(VerificationFailed, match="missing segment") as red:
            scratch.recover(backup, target)
    assert middle in str(red.value) and backup.backup_id in str(red.value)


def test_stopped_wal_streaming_is_detected(source, barman, books, scratch, rows):
    books.insert(rows)
    backup = barman.backup()
    with faults.wal_streaming_stopped(barman):
        commit = books.update(20)
        target = source.capture_target("xid", commit)
        books.insert(100)
        with pytest.raises(VerificationFailed, match="not in the archive") as red:
            scratch.recover(backup, target)
    assert segment_of(target.at_lsn, backup.timeline) in str(red.value)
    assert "receive-wal" in str(red.value) and "not running" in str(red.value)


def test_changed_byte_in_backup_is_found(source, barman, books, scratch, rows):
    books.insert(rows)
    backup = barman.backup()
    heap_file = faults.heap_file_of(source, "books")
    with faults.backup_byte_flipped(barman, backup, heap_file):
        with pytest.raises(VerificationFailed, match="verify-backup") as red:
            scratch.recover(backup, source.capture_target("immediate"))
    assert backup.backup_id in str(red.value)
    assert f'checksum mismatch for file "{heap_file}"' in str(red.value)


def test_target_after_last_archived_commit_fails_loudly(source, barman, books, scratch, rows):
    books.insert(rows)
    backup = barman.backup()
    books.update(10)
    barman.archive_current_wal()
    with pytest.raises(RecoveryFailed, match="recovery ended before the configured target was reached") as red:
        scratch.recover(backup, faults.target_after_last_commit(source))
    assert "FATAL" in red.value.details
    assert "the WAL ends there (the target is later than anything archived)" in str(red.value)


def test_target_before_backup_end_is_refused(source, barman, books, scratch):
    commit = books.insert(100)
    too_early = source.capture_target("time", commit)
    backup = barman.backup()
    with pytest.raises(TargetRefused, match="before the backup end time") as red:
        scratch.recover(backup, too_early)
    assert backup.backup_id in str(red.value)


@pytest.mark.parametrize("damage", ["deleted", "zeroed"])
def test_latest_over_wal_gap_is_noticed(source, barman, scratch, segment_between, damage):
    backup, middle, _, _ = segment_between
    fault = faults.wal_segment_deleted if damage == "deleted" else faults.wal_segment_zeroed
    with fault(barman, middle):
        with pytest.raises(VerificationFailed) as red:
            scratch.recover(backup, source.capture_target("latest"))
    message = str(red.value)
    assert middle in message
    if damage == "zeroed":   # the listing is intact: reading the WAL before the restore shows it
        assert isinstance(red.value, WalIntegrityFailed) and "page header" in message


@pytest.mark.parametrize("how", ["missing", "truncated"])
def test_damaged_backup_metadata_is_named(source, barman, books, scratch, how):
    books.insert(100)
    backup = barman.backup()
    with faults.backup_metadata_damaged(barman, backup, how):
        with pytest.raises(VerificationFailed, match="metadata") as red:
            scratch.recover(backup, source.capture_target("immediate"))
    assert backup.backup_id in str(red.value)
    assert str(barman.backup_info_path(backup.backup_id)) in str(red.value)


def test_row_changed_after_a_stale_fingerprint_is_seen(source, barman, books, scratch, rows):
    books.insert(rows)
    backup = barman.backup()
    stale = source.fingerprint()
    commit = books.update(1)                       # one row changes after the fingerprint was taken
    target = source.capture_target("xid", commit)
    barman.archive_current_wal()
    restored = scratch.recover(backup, target)
    with pytest.raises(VerificationFailed, match="same row count, different contents"):
        restored.assert_matches(stale)
    restored.assert_matches(source.fingerprint())  # the state at the target itself matches
