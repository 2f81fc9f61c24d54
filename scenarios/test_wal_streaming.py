"""Barman streams the source's WAL over its replication slot, and the archive has no gaps."""

from harness.postgres.wal import lsn_to_int, segment_of


def test_wal_streams_over_the_slot_and_archive_is_complete(source, barman, books, rows):
    status = barman.replication_status()
    streamers = [client for client in status["clients"] if client["application_name"] == "barman_receive_wal"]
    assert len(streamers) == 1, f"expected Barman's WAL receiver among the streaming clients: {status}"
    receiver = streamers[0]
    assert receiver["current_state"] == "streaming"
    assert receiver["replication_slot"] == "barman"
    received_before = lsn_to_int(receiver["write_lsn"])

    backup = barman.backup()
    books.insert(rows)
    target = source.capture_target("lsn")
    barman.archive_current_wal()

    received_after = lsn_to_int(barman.wait_until_received(target.value)["clients"][0]["write_lsn"])
    assert received_after > lsn_to_int(target.value) > received_before
    assert barman.missing_wal(backup, segment_of(target.value, backup.timeline)) == []
