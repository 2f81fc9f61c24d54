"""Two backups with writes between them: each restores to its own targets."""


def test_each_backup_restores_to_its_own_target(source, barman, books, scratch, rows):
    books.insert(rows)
    first = barman.backup()
    first_commit = books.update(30)
    first_target = source.capture_target("xid", first_commit)
    at_first_target = source.fingerprint()

    books.insert(rows // 2)
    books.delete(25)
    second = barman.backup()
    second_commit = books.insert(100)
    second_target = source.capture_target("time", second_commit)
    at_second_target = source.fingerprint()

    books.update(40)                               # after both targets
    barman.archive_current_wal()

    assert first.backup_id != second.backup_id
    scratch.recover(first, first_target).assert_matches(at_first_target)
    scratch.recover(second, second_target).assert_matches(at_second_target)
    # The older backup replays across the newer one to the later target, just as exactly.
    scratch.recover(first, second_target).assert_matches(at_second_target)
