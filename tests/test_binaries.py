"""Finding PostgreSQL, Barman and rsync, and the errors when they are missing."""

import os
import sys
from pathlib import Path

import pytest

from harness.errors import SetupError
from harness.postgres.binaries import SERVER_TOOLS, PgBin, _version_key, find_barman, find_pg_bindir, require_rsync


def make_executable(path: Path) -> Path:
    path.write_text("#!/bin/sh\nexit 99\n")  # never run by these tests
    path.chmod(0o755)
    return path


@pytest.fixture
def empty_path(tmp_path, monkeypatch):
    empty = tmp_path / "empty-bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    return empty


def test_requested_bindir_that_does_not_exist(tmp_path):
    missing = tmp_path / "no" / "such" / "bin"
    with pytest.raises(SetupError) as info:
        find_pg_bindir(str(missing))
    message = str(info.value)
    assert str(missing) in message
    assert "--pg-bindir" in message
    for tool in SERVER_TOOLS:
        assert tool in message


def test_requested_bindir_missing_some_tools_names_them(tmp_path):
    bindir = tmp_path / "bin"
    bindir.mkdir()
    for tool in ("initdb", "pg_ctl", "postgres"):
        make_executable(bindir / tool)
    (bindir / "pg_basebackup").write_text("")  # present but not executable
    with pytest.raises(SetupError) as info:
        find_pg_bindir(str(bindir))
    message = info.value.cause
    assert f"{bindir} (from --pg-bindir; missing pg_basebackup, pg_receivewal)" in message


def test_pgbin_major_and_tool():
    pg = PgBin(Path("/usr/lib/postgresql/15/bin"), "15.18")
    assert pg.major == 15
    assert pg.tool("pg_ctl") == "/usr/lib/postgresql/15/bin/pg_ctl"


def test_version_key_orders_numerically():
    paths = ["/usr/lib/postgresql/9/bin", "/usr/lib/postgresql/15/bin", "/usr/lib/postgresql/13/bin"]
    assert sorted(paths, key=_version_key, reverse=True)[0] == "/usr/lib/postgresql/15/bin"
    assert _version_key("/opt/pg/bin") == -1


def test_find_barman_missing_everywhere(tmp_path, monkeypatch, empty_path):
    venv_bin = tmp_path / "venv-bin"
    venv_bin.mkdir()
    monkeypatch.setattr(sys, "executable", str(venv_bin / "python"))
    with pytest.raises(SetupError) as info:
        find_barman()
    assert "Barman is not installed" in info.value.cause
    assert "setup.sh" in info.value.fix


def test_find_barman_prefers_the_one_beside_the_interpreter(tmp_path, monkeypatch):
    venv_bin = tmp_path / "venv-bin"
    venv_bin.mkdir()
    on_path = tmp_path / "path-bin"
    on_path.mkdir()
    beside = make_executable(venv_bin / "barman")
    make_executable(on_path / "barman")
    monkeypatch.setattr(sys, "executable", str(venv_bin / "python"))
    monkeypatch.setenv("PATH", str(on_path))
    assert find_barman() == str(beside)


def test_find_barman_falls_back_to_path(tmp_path, monkeypatch):
    venv_bin = tmp_path / "venv-bin"
    venv_bin.mkdir()
    (venv_bin / "barman").write_text("")  # not executable: does not count
    on_path = tmp_path / "path-bin"
    on_path.mkdir()
    found = make_executable(on_path / "barman")
    monkeypatch.setattr(sys, "executable", str(venv_bin / "python"))
    monkeypatch.setenv("PATH", str(on_path))
    assert find_barman() == str(found)


def test_require_rsync_missing(empty_path):
    with pytest.raises(SetupError) as info:
        require_rsync()
    assert "rsync is not installed" in info.value.cause
    assert "apt-get install -y rsync" in info.value.fix


def test_require_rsync_found_on_path(tmp_path, monkeypatch):
    bindir = tmp_path / "bin"
    bindir.mkdir()
    rsync = make_executable(bindir / "rsync")
    monkeypatch.setenv("PATH", os.pathsep.join([str(tmp_path / "nothing-here"), str(bindir)]))
    assert require_rsync() == str(rsync)
