"""A target Barman cannot reach from the chosen backup is refused, and reported as such."""

import pytest

from harness.errors import TargetRefused


def test_target_time_before_backup_end_is_refused(source, barman, books, scratch):
    commit = books.insert(100)
    too_early = source.capture_target("time", commit)
    backup = barman.backup()

    with pytest.raises(TargetRefused, match="before the backup end time") as refused:
        scratch.recover(backup, too_early)
    assert backup.backup_id in str(refused.value)
