"""Per-run credentials and their passfile."""

import os
import stat

import pytest

from harness.process.accounts import ROLES, Credentials


@pytest.fixture
def permissive_umask():
    old = os.umask(0)
    yield
    os.umask(old)


def parse_passfile(path):
    entries = {}
    for line in path.read_text().splitlines():
        fields = line.split(":")
        assert len(fields) == 5, line
        host, port, db, role, password = fields
        assert (host, port, db) == ("127.0.0.1", "*", "*")
        assert role not in entries
        entries[role] = password
    return entries


def test_passfile_is_0600_even_with_permissive_umask(tmp_path, permissive_umask):
    path = tmp_path / "passfile"
    Credentials.create(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_one_line_per_role_matching_passwords(tmp_path):
    path = tmp_path / "passfile"
    creds = Credentials.create(path)
    assert creds.passfile == path
    assert path.read_text().endswith("\n")
    assert len(path.read_text().splitlines()) == len(ROLES)
    assert parse_passfile(path) == creds.passwords
    assert set(creds.passwords) == set(ROLES)


def test_passwords_distinct_and_non_trivial(tmp_path):
    creds = Credentials.create(tmp_path / "passfile")
    passwords = list(creds.passwords.values())
    assert len(set(passwords)) == len(passwords)
    for role, password in creds.passwords.items():
        assert len(password) >= 20
        assert password != role
        assert len(set(password)) >= 8
        # No characters that .pgpass would need escaped.
        assert ":" not in password and "\\" not in password and not any(c.isspace() for c in password)
    assert sorted(creds.secrets()) == sorted(passwords)


def test_each_run_gets_new_passwords_and_rewrites_the_file(tmp_path):
    path = tmp_path / "passfile"
    first = Credentials.create(path)
    second = Credentials.create(path)
    assert set(first.passwords.values()).isdisjoint(second.passwords.values())
    assert parse_passfile(path) == second.passwords
