"""--stack existing, the parts that need no Barman: choosing backups, the read-only guard, overrides."""

import time
from pathlib import Path
from types import SimpleNamespace

import pytest

from harness.barman.readonly import ExistingBarman
from harness.config import ConfigError, DrillConfig, parse_backups, parse_duration
from harness.errors import SetupError
from harness.postgres import foreign
from harness.postgres.binaries import find_pg_bindir
from harness.stacks.existing import ExistingStack, configured_servers, select

NOW = time.time()
DONE = [{"backup_id": f"2026110{day}T010000", "status": "DONE", "end_time_timestamp": str(NOW - (10 - day) * 86400)}
        for day in range(1, 10)]


@pytest.mark.parametrize("text, seconds", [("90", 90), ("90s", 90), ("30m", 1800), ("36h", 129600), ("7d", 604800),
                                           ("2w", 1209600)])
def test_durations(text, seconds):
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("bad", ["", "soon", "-5m", "0"])
def test_bad_durations_say_what_is_expected(bad):
    with pytest.raises(ValueError):
        parse_duration(bad)


def test_backups_setting_forms():
    assert parse_backups("latest") == ("latest",) and parse_backups("all") == ("all",)
    assert parse_backups("newer-than=2d") == ("newer-than", "172800.0")
    assert parse_backups("A, B") == ("A", "B")
    with pytest.raises(ConfigError, match="--backups"):
        DrillConfig.resolve({"backups": "newer-than=soon"}, env={})


def test_select_latest_all_newer_than_and_ids():
    assert [b["backup_id"] for b in select(DONE, ("latest",))] == [DONE[-1]["backup_id"]]
    assert select(DONE, ("all",)) == DONE
    assert [b["backup_id"] for b in select(DONE, ("newer-than", str(2.5 * 86400)))] == [b["backup_id"] for b in DONE[-2:]]
    assert [b["backup_id"] for b in select(DONE, (DONE[2]["backup_id"], DONE[0]["backup_id"]))] == \
        [DONE[2]["backup_id"], DONE[0]["backup_id"]]


def test_select_names_what_it_cannot_find():
    with pytest.raises(SetupError, match="No finished backup with id 19990101T000000"):
        select(DONE, ("19990101T000000",))
    with pytest.raises(SetupError, match="No backup finished within the last 1.0 h"):
        select(DONE, ("newer-than", "3600"))


@pytest.mark.parametrize("args, allowed", [
    (("-f", "json", "list-backups", "pg"), True), (("show-backup", "pg", "X"), True), (("--version",), True),
    (("recover", "--jobs", "2", "pg", "X", "/tmp/x"), True), (("verify-backup", "pg", "X"), True),
    (("backup", "pg"), False), (("delete", "pg", "X"), False), (("receive-wal", "pg"), False),
    (("cron",), False), (("switch-wal", "--archive", "pg"), False), (("archive-wal", "pg"), False),
])
def test_only_read_commands_reach_an_existing_barman(args, allowed):
    barman = ExistingBarman("barman", Path("/etc/barman.conf"), "pg", None, allow_canary=False)
    if allowed:
        assert barman.barman_argv(*args)[-len(args):] == list(args)
    else:
        with pytest.raises(SetupError, match="does not run `barman"):
            barman.barman_argv(*args)


def test_the_canary_alone_may_switch_wal():
    barman = ExistingBarman("barman", Path("/etc/barman.conf"), "pg", None, allow_canary=True)
    assert "switch-wal" in barman.barman_argv("switch-wal", "--archive", "pg")
    with pytest.raises(SetupError):
        barman.barman_argv("backup", "pg")


def test_servers_of_a_configuration_and_its_directory(tmp_path):
    extra = tmp_path / "barman.d"
    extra.mkdir()
    (extra / "pg2.conf").write_text("[pg2]\nconninfo = host=x\n")
    (extra / "ignored.txt").write_text("[nope]\n")
    config = tmp_path / "barman.conf"
    config.write_text(f"[barman]\nbarman_home = /var/lib/barman\nconfiguration_files_directory = {extra}\n\n"
                      "[main]\nconninfo = host=y\n")
    assert configured_servers(config) == ["main", "pg2"]


def test_no_room_is_no_verdict_before_any_copy(tmp_path, monkeypatch):
    stack = ExistingStack(DrillConfig(stack="existing"), "pg")
    stack.run_dir = tmp_path
    backup = SimpleNamespace(backup_id="B1", size_bytes=10 * 2**30,
                             raw={"base_backup_information": {"backup_size_with_wals_bytes": 10 * 2**30}})
    monkeypatch.setattr("shutil.disk_usage", lambda path: SimpleNamespace(free=5 * 2**30, total=0, used=0))
    with pytest.raises(SetupError, match="Not enough free space to restore backup B1: it needs about 12.0 GiB"):
        stack.require_room(backup)


@pytest.mark.parametrize("value, kilobytes", [("16384", 131072), ("128MB", 131072), ("1GB", 1048576), ("", 0),
                                              ("8kB", 8)])
def test_shared_buffers_as_the_server_prints_them(value, kilobytes):
    assert foreign._kilobytes(value) == kilobytes


@pytest.mark.parametrize("entry, name", [("pg_stat_statements", "pg_stat_statements"),
                                         ("$libdir/auto_explain", "auto_explain"), ("'/opt/x/timescaledb.so'", "timescaledb")])
def test_preloaded_library_names(entry, name):
    assert foreign._library_name(entry) == name


def test_installed_libraries_of_this_postgresql():
    try:
        pg = find_pg_bindir(None)
    except SetupError as exc:
        pytest.skip(exc.cause)
    libraries = foreign.installed_libraries(pg)
    assert "plpgsql" in libraries and "no_such_library" not in libraries


@pytest.mark.parametrize("line, named", [
    ('2026-11-30 05:00:00 UTC [1] FATAL:  could not access file "timescaledb": No such file or directory',
     'could not access file "timescaledb": No such file or directory'),
    ('2026-11-30 05:00:00 UTC [1] FATAL:  invalid value for parameter "lc_messages": "de_DE.UTF-8"',
     'invalid value for parameter "lc_messages": "de_DE.UTF-8"'),
])
def test_a_configuration_this_host_cannot_run_is_named(tmp_path, line, named):
    from harness.drill.existing import _setting_that_cannot_work_here

    log = tmp_path / "scratch.log"
    log.write_text("LOG:  starting PostgreSQL 15.18\n" + line + "\n")
    assert _setting_that_cannot_work_here(SimpleNamespace(log_path=log)) == named
    log.write_text("FATAL:  could not open file \"global/pg_control\": No such file or directory\n")
    assert _setting_that_cannot_work_here(SimpleNamespace(log_path=log)) == "", "damage is not a host problem"
