"""Damaged WAL is named before the restore: the segment, the LSN of the first bad record, what is wrong.

Each scenario damages one archived segment (put back on exit) and asserts both the verdict and that
the cause names the damage class and the segment. Damage a restore does not read (after its target,
or older than its backup) must not turn it red; after the target it is reported as a warning.
"""

import gzip

import pytest
from histories import around_a_target

from harness.checks.wal_integrity import WalIntegrityFailed
from harness.drill import faults
from harness.plugin.factories import stack_fixture
from harness.postgres.wal import SEGMENT_RE, segment_number

pytestmark = pytest.mark.faults


@pytest.fixture
def history(source, barman, books, rows):
    """A backup, a segment strictly between it and an xid target, a segment after the target, all archived."""
    around = around_a_target(source, barman, books, rows)
    return around.backup, around.middle, around.target, around.expected, around.after


@pytest.mark.parametrize("damage, named", [
    ("bytes changed", "a record's CRC does not match"),
    ("cut short", "wrong size"),
    ("another segment's content", "a page belongs to another position"),
])
def test_damaged_segment_before_the_target_is_named_before_any_copy(stack, barman, scratch, history, damage, named):
    backup, middle, target, _, _ = history
    with faults.wal_segment_damaged(barman, middle, damage, pg=stack.pg) as done:
        with pytest.raises(WalIntegrityFailed) as red:
            scratch.recover(backup, target)
    message = str(red.value)
    assert f"segment {middle}" in message and named in message, message
    if damage != "cut short":
        assert "first bad record at " in message
    record = scratch.records[-1]
    assert record.check("wal_integrity").passed is False and record.check("target_accepted") is None, \
        "the restore must stop before `barman recover` copies anything"
    assert done.path.read_bytes() != b"", "the fault is put back on exit"


def test_a_long_read_beside_the_copy_names_the_damage_before_the_server_starts(stack, barman, scratch, history,
                                                                                monkeypatch):
    from harness.drill import recovery

    monkeypatch.setattr(recovery, "READ_BESIDE_THE_COPY_FROM", 1)  # this read goes beside the copy, as a long one does
    backup, middle, target, _, _ = history
    with faults.wal_segment_damaged(barman, middle, "bytes changed", pg=stack.pg):
        with pytest.raises(WalIntegrityFailed) as red:
            scratch.recover(backup, target)
    assert f"segment {middle}: first bad record at " in str(red.value)
    assert [check.name for check in scratch.records[-1].checks][-1] == "wal_integrity"
    assert not scratch.servers[-1].log_path.exists(), "the scratch server never started"


def test_damage_after_the_target_is_a_warning_not_a_red(stack, barman, scratch, history):
    backup, _, target, expected, after = history
    with faults.wal_segment_damaged(barman, after, "bytes changed", pg=stack.pg):
        restored = scratch.recover(backup, target)
        restored.assert_matches(expected)
    warning = restored.record.check("wal_after_target")
    assert warning.passed and warning.detail.startswith("WARNING") and after in warning.detail


def test_damage_older_than_the_backup_does_not_matter_to_it(stack, barman, scratch, history):
    backup, _, target, expected, _ = history
    older = sorted(path.name for path in barman.wals_directory.rglob("*") if SEGMENT_RE.match(path.name)
                   and segment_number(path.name) < segment_number(backup.begin_wal))
    assert older, "the archive holds WAL from before the backup"
    with faults.wal_segment_damaged(barman, older[-1], "bytes changed", pg=stack.pg):
        scratch.recover(backup, target).assert_matches(expected)


# Barman compressing the WAL it archives: a module stack of its own (local).
compressed_stack = stack_fixture(scope="module", kinds=("local",), barman_settings={"compression": "gzip"},
                                 name="compressed_stack")


@pytest.fixture(scope="module")
def gzip_barman(compressed_stack):
    return compressed_stack


def test_compressed_segment_that_no_longer_decompresses_is_named(gzip_barman):
    from harness.drill.scratch import Scratch

    stack = gzip_barman
    books = stack.source.books(seed=7)
    books.insert(1000)
    backup = stack.barman.backup()
    books.update(20)
    middle = stack.barman.archive_current_wal()
    commit = books.update(20)
    target = stack.source.capture_target("xid", commit)
    expected = stack.source.fingerprint()
    stack.barman.archive_current_wal()
    path = stack.barman.wal_path(middle)
    assert path.read_bytes()[:2] == b"\x1f\x8b", "Barman was asked to gzip the WAL it archives"
    drill = Scratch(stack, "compressed")
    try:
        drill.recover(backup, target).assert_matches(expected)   # compressed and sound: green
        with faults.wal_segment_damaged(stack.barman, middle, "compressed data cut"):
            with pytest.raises(WalIntegrityFailed) as red:
                drill.recover(backup, target)
        assert f"segment {middle} (gzip-compressed" in str(red.value) and "cannot be decompressed" in str(red.value)
        assert gzip.decompress(path.read_bytes()), "the fault is put back on exit"
    finally:
        drill.discard()
