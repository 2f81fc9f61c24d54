"""The hand-built production (scenarios/production.py) is what it claims: Barman checks all OK,
backups are catalogued, WAL streams and the server archives on its own, it can be held still for
byte comparisons, and nothing of it survives close(), also when building it fails halfway."""

import json
import re
import time

import production as production_module
import pytest
from production import build_production, processes_naming, production, table_digest, tree_digest

SEGMENT = re.compile(r"^[0-9A-F]{24}$")


@pytest.fixture(scope="module")
def prod():
    with production(rows=1000, backups=2) as built:
        yield built


def test_barman_check_is_all_ok(prod):
    report = json.loads(prod.barman("-f", "json", "check", prod.server).stdout)[prod.server]
    assert report and all(item["status"] == "OK" for item in report.values()), report


def test_two_done_backups_are_listed(prod):
    listed = json.loads(prod.barman("-f", "json", "list-backups", prod.server).stdout)[prod.server]
    assert sorted(item["backup_id"] for item in listed) == sorted(prod.backup_ids)
    assert len(prod.backup_ids) == 2 and all(item["status"] == "DONE" for item in listed), listed


def test_barman_streams_over_its_slot(prod):
    status = prod.barman("replication-status", prod.server).stdout
    assert "Number of streaming clients: 1" in status, status
    assert "barman_receive_wal" in status and "Replication slot: barman" in status, status


def test_server_archives_wal_with_its_own_archive_command(prod):
    segments = [path.name for path in prod.archive_dir.iterdir() if SEGMENT.match(path.name)]
    assert len(segments) >= 3, sorted(segments)


def test_barman_home_holds_still_while_streaming_is_stopped(prod):
    prod.stop_streaming()
    try:
        first = tree_digest(prod.barman_home)
        time.sleep(1)
        assert tree_digest(prod.barman_home) == first
        assert any(name.startswith(f"{prod.server}/base/") for name in first)
    finally:
        prod.start_streaming()


def test_table_digest_follows_writes(prod):
    before = table_digest(prod.dsn())
    assert before["public.books"].startswith("3000 rows, ")
    assert table_digest(prod.dsn()) == before
    prod.write_books(10, seed=99)
    after = table_digest(prod.dsn())
    assert after["public.books"].startswith("3010 rows, ") and after != before


def test_tree_digest_skips_excluded_names(tmp_path):
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "a.txt").write_text("a")
    (tmp_path / "b.lock").write_text("b")
    assert set(tree_digest(tmp_path)) == {"sub/a.txt", "b.lock"}
    assert set(tree_digest(tmp_path, exclude=("*.lock",))) == {"sub/a.txt"}


def test_a_build_failing_halfway_leaves_nothing(monkeypatch):
    roots = []

    def failing_backup(self):
        roots.append(self.root)
        raise RuntimeError("deliberate failure")

    monkeypatch.setattr(production_module.Production, "backup", failing_backup)
    with pytest.raises(RuntimeError, match="deliberate failure"):
        build_production(rows=10, backups=1)
    assert roots and not roots[0].exists()
    assert processes_naming(roots[0]) == []


# Last: it closes the module's production.
def test_close_leaves_nothing(prod):
    prod.close()
    prod.close()  # idempotent
    assert prod.close_errors == []
    assert processes_naming(prod.root) == []
    assert not prod.root.exists()
