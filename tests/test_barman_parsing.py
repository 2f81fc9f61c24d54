"""Barman configuration rendering and parsing of Barman's output."""

from pathlib import Path

import pytest

from harness.barman.catalog import CheckResult, backup_id_from_output, parse_check_json
from harness.barman.config import render_config
from harness.errors import HarnessError

CONNINFO = "host=127.0.0.1 port=54321 user=barman dbname=postgres passfile=/run/pgbv/passfile connect_timeout=5"
STREAMING = ("host=127.0.0.1 port=54321 user=streaming_barman dbname=postgres "
             "passfile=/run/pgbv/passfile connect_timeout=5")


def config_settings(text: str) -> dict:
    """section -> {key: value}, the way an INI reader sees it."""
    sections, current = {}, None
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("[") and line.endswith("]"):
            current = sections.setdefault(line[1:-1], {})
            continue
        key, _, value = line.partition("=")
        current[key.strip()] = value.strip()
    return sections


@pytest.fixture
def rendered():
    return render_config(home=Path("/run/pgbv/barman"), user="drill", server="source", conninfo=CONNINFO,
                         streaming_conninfo=STREAMING, bindir=Path("/usr/lib/postgresql/15/bin"), slot="barman_slot")


def test_render_config_streaming_settings(rendered):
    sections = config_settings(rendered)
    assert set(sections) == {"barman", "source"}
    server = sections["source"]
    assert server["backup_method"] == "postgres"
    assert server["streaming_archiver"] == "on"
    assert server["archiver"] == "off"
    assert server["slot_name"] == "barman_slot"
    assert server["immediate_checkpoint"] == "true"
    assert server["path_prefix"] == "/usr/lib/postgresql/15/bin"
    assert server["conninfo"] == CONNINFO
    assert server["streaming_conninfo"] == STREAMING
    glob = sections["barman"]
    assert glob["barman_user"] == "drill"
    assert glob["barman_home"] == "/run/pgbv/barman"
    assert glob["log_file"] == "/run/pgbv/barman/barman.log"


def test_render_config_default_slot():
    text = render_config(home=Path("/h"), user="u", server="s", conninfo="c", streaming_conninfo="sc",
                         bindir=Path("/b"))
    assert config_settings(text)["s"]["slot_name"] == "barman"


def test_render_config_has_no_password_and_no_ssh(rendered):
    lowered = rendered.lower()
    assert "password" not in lowered
    assert "ssh_command" not in lowered
    assert "archive_command" not in lowered


def test_render_config_parses_with_configparser(rendered):
    import configparser

    parser = configparser.ConfigParser()
    parser.read_string(rendered)
    assert parser.get("source", "backup_method") == "postgres"
    assert parser.getboolean("source", "immediate_checkpoint") is True


# -- barman check -----------------------------------------------------------------------------

def test_check_all_ok():
    data = {"source": {"PostgreSQL": {"status": "OK"}, "wal_level": {"status": "OK"},
                       "replication slot": {"status": "OK"}}}
    result = parse_check_json(data, "source")
    assert result.ok
    assert result.failures() == []
    assert set(result.checks) == {"PostgreSQL", "wal_level", "replication slot"}


def test_check_one_failed_is_named_with_its_hint():
    data = {"source": {"PostgreSQL": {"status": "OK"},
                       "WAL archive": {"status": "FAILED", "hint": "please make sure WAL shipping is setup"},
                       "minimum redundancy requirements": {"status": "OK", "hint": "have 0 backups, expected at least 0"}}}
    result = parse_check_json(data, "source")
    assert not result.ok
    assert result.failures() == ["WAL archive: FAILED (please make sure WAL shipping is setup)"]


def test_check_failure_without_hint():
    result = parse_check_json({"source": {"receive-wal running": {"status": "FAILED"}}}, "source")
    assert not result.ok
    assert result.failures() == ["receive-wal running: FAILED"]


def test_check_top_level_error_counts_as_failure():
    data = {"source": {"PostgreSQL": {"status": "OK"}}, "_ERROR": ["Unknown server 'sourc'"]}
    result = parse_check_json(data, "source")
    assert not result.ok
    failures = result.failures()
    assert len(failures) == 1
    assert "FAILED" in failures[0] and "Unknown server 'sourc'" in failures[0]


def test_check_only_errors_and_other_server():
    data = {"other": {"PostgreSQL": {"status": "OK"}}, "_ERROR": ["first", "second"]}
    result = parse_check_json(data, "source")
    assert not result.ok
    assert len(result.failures()) == 2
    assert any("first" in f for f in result.failures()) and any("second" in f for f in result.failures())


@pytest.mark.parametrize("data", [{}, {"source": {}}, {"source": None}])
def test_check_empty_is_not_ok(data):
    assert not parse_check_json(data, "source").ok


def test_check_result_empty_is_not_ok():
    assert not CheckResult({}).ok


# -- backup id --------------------------------------------------------------------------------

OUTPUT = """\
Starting backup using postgres method for server source in /tmp/pgbv-x1/barman/source/base/20261126T114501
Backup start at LSN: 0/4000028 (000000010000000000000004, 00000028)
Starting backup copy via pg_basebackup for 20261126T114501
Copy done (time: 1 second)
Finalising the backup.
Backup size: 30.2 MiB
Backup end at LSN: 0/6000100 (000000010000000000000006, 00000100)
Backup completed (start time: 2026-11-26 11:45:01.123456, elapsed time: 2 seconds)
"""


def testbackup_id_from_output():
    assert backup_id_from_output(OUTPUT) == "20261126T114501"


def test_backup_id_with_trailing_slash_and_whitespace():
    text = "WARNING: something\nStarting backup using postgres method for server s in /b/s/base/20260101T000000/  \n"
    assert backup_id_from_output(text) == "20260101T000000"


def test_backup_id_missing_raises_with_output_as_details():
    text = "ERROR: Impossible to start the backup. Check the log for more details."
    with pytest.raises(HarnessError) as info:
        backup_id_from_output(text)
    assert "backup's id" in info.value.cause
    assert text in info.value.details
