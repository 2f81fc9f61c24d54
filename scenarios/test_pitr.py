"""Point-in-time recovery to every kind of target, each exact by fingerprint.

Each drill writes changes after its target and archives their WAL before recovering: a restore
that replayed to the end of WAL would hold them, so a match proves recovery cut history exactly
at the target. The drills share one full backup, so each recovery also replays the other drills'
history up to its own target.
"""

import pytest

TARGETS = [
    pytest.param("immediate", True, id="immediate"),
    pytest.param("time", True, id="time-inclusive"),
    pytest.param("time", False, id="time-exclusive"),
    pytest.param("xid", True, id="xid-inclusive"),
    pytest.param("xid", False, id="xid-exclusive"),
    pytest.param("lsn", True, id="lsn"),
    pytest.param("name", True, id="restore-point"),
]


@pytest.fixture(scope="module")
def base_backup(source, barman, rows):
    """One full backup that every drill here restores; each drill writes its own history after it."""
    source.books(seed=rows).insert(rows)
    at_backup = source.fingerprint()
    return barman.backup(), at_backup


@pytest.mark.pitr
@pytest.mark.parametrize("kind, inclusive", TARGETS)
def test_pitr_restores_exact_state_at_target(source, barman, books, scratch, base_backup, kind, inclusive):
    backup, at_backup = base_backup

    books.insert(500)
    books.delete(10)
    before_commit = source.fingerprint()
    commit = books.update(20)                      # the transaction the target sits on
    after_commit = source.fingerprint()
    target = source.capture_target(kind, commit, inclusive)
    if kind == "immediate":
        expected = at_backup                       # consistency at the end of the backup
    else:
        expected = after_commit if inclusive else before_commit

    books.insert(300)                              # after the target: must NOT survive recovery
    books.delete(5)
    barman.archive_current_wal()

    restored = scratch.recover(backup, target)     # waits until the target is reached, or fails with the log
    restored.assert_matches(expected)
    assert restored.fingerprint() != source.fingerprint(), "the later writes must be absent"
