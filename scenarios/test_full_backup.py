"""A full backup restores, on its own, to exactly what the source held when it was taken."""

from harness.drill.targets import RecoveryTarget


def test_full_backup_restores_to_immediate(source, barman, books, scratch, rows):
    books.insert(rows)
    books.update(50)
    expected = source.fingerprint()
    backup = barman.backup()

    books.insert(200)                              # after the backup: must not be restored
    barman.archive_current_wal()

    restored = scratch.recover(backup, RecoveryTarget("immediate"))
    restored.assert_matches(expected)
    assert restored.server.timeline() == backup.timeline + 1


def test_backup_restores_to_end_of_archived_wal(source, barman, books, scratch, rows):
    books.insert(rows)
    backup = barman.backup()
    books.update(30)
    books.delete(10)
    barman.archive_current_wal()
    expected = source.fingerprint()                # everything archived, nothing written since

    restored = scratch.recover(backup, source.capture_target("latest"))
    restored.assert_matches(expected)
