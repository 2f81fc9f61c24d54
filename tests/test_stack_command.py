"""pgbv-stack without a stack: the record, the export lines, secrets kept out of them, bad input."""

import json
import os
import shlex
import stat

import pytest

from harness.cli import stack as cli
from harness.drill.write_data import connection_parameters
from harness.stacks.compose_project import EngineUnavailable
from harness.stacks.kept_state import KeptStack, exports, load, save, state_path, write_secrets

PASSWORD = "s3cret:with\\odd-chars"


def kept(run_dir, compose=None) -> KeptStack:
    return KeptStack("local", str(run_dir), "2026-11-30T06:00:00+00:00",
                     {"host": "127.0.0.1", "port": 54321, "name": "books_db", "user": "books_app"},
                     "postgres", f"{run_dir}/barman.conf", ["barman", "-c", f"{run_dir}/barman.conf"],
                     entries=[{"kind": "path", "key": f"path:{run_dir}", "what": "the run directory",
                               "path": str(run_dir)}],
                     compose=compose)


def exported(lines) -> dict:
    """What `eval` of the lines would export (sourcing lines and comments aside)."""
    values = {}
    for line in lines:
        if line.startswith("export "):
            name, _, value = line[len("export "):].partition("=")
            values[name] = shlex.split(value)[0]
    return values


def test_export_lines_name_the_stack_and_keep_the_password_in_the_env_file(tmp_path):
    state = kept(tmp_path)
    write_secrets(state, PASSWORD)
    lines = exports(state)
    values = exported(lines)
    assert values == {"DB_HOST": "127.0.0.1", "DB_PORT": "54321", "DB_NAME": "books_db", "DB_USER": "books_app",
                      "PGHOST": "127.0.0.1", "PGPORT": "54321", "PGDATABASE": "books_db", "PGUSER": "books_app",
                      "PGPASSFILE": str(state.passfile), "BARMAN_CONFIG": f"{tmp_path}/barman.conf",
                      "BARMAN_SERVER": "postgres", "PGBV_STACK_DIR": str(tmp_path)}
    assert PASSWORD not in "\n".join(lines)
    assert lines[-1].startswith(f". {state.env_file}")
    # The env file sets the password; PGPASSWORD would override Barman's own passfile, so never.
    secret_lines = state.env_file.read_text()
    assert exported(secret_lines.splitlines())["DB_PASSWORD"] == PASSWORD
    assert "PGPASSWORD" not in secret_lines
    for path in (state.env_file, state.passfile):
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o600, path
    # any port: a server recovered from the stack's backups holds the same role
    assert state.passfile.read_text() == "127.0.0.1:*:books_db:books_app:s3cret\\:with\\\\odd-chars\n"


def test_secrets_are_printed_only_when_asked_for(tmp_path):
    state = kept(tmp_path)
    lines = exports(state, PASSWORD)
    assert exported(lines)["DB_PASSWORD"] == PASSWORD
    assert "PGPASSWORD" not in exported(lines)
    assert not any(line.startswith(". ") for line in lines)


def test_compose_lines_say_where_docker_compose_runs(tmp_path):
    state = kept(tmp_path, compose={"project": "pgbvstack1", "argv": ["docker-compose"], "env_file": "x"})
    assert any('cd "$PGBV_STACK_DIR"' in line for line in exports(state) if line.startswith("#"))


def test_the_record_is_private_and_survives_a_round_trip(tmp_path):
    path = state_path(str(tmp_path / "state"))
    state = kept(tmp_path)
    save(state, path)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert load(path) == state
    assert load(tmp_path / "none.json") is None
    path.write_text("{not json")
    with pytest.raises(Exception, match="cannot be read"):
        load(path)


def test_default_state_dir_follows_xdg(monkeypatch, tmp_path):
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path))
    assert state_path(None) == tmp_path / "pgbv" / "stack.json"
    monkeypatch.delenv("XDG_STATE_HOME")
    assert state_path(None).parts[-4:] == (".local", "state", "pgbv", "stack.json")


def test_nothing_up(tmp_path, capsys):
    args = ["--state-dir", str(tmp_path)]
    assert cli.main(["status", *args]) == 2
    assert cli.main(["env", *args]) == 2
    assert "No stack is up" in capsys.readouterr().err
    assert cli.main(["down", *args]) == 0           # the end state holds already: said, not an error
    assert "nothing to take down" in capsys.readouterr().err


def test_up_when_one_is_up_says_where_and_starts_nothing(tmp_path, capsys, monkeypatch):
    save(kept(tmp_path / "run"), state_path(str(tmp_path)))
    monkeypatch.setattr("harness.stacks.base.StackBase.start", lambda self: pytest.fail("a stack was started"))
    assert cli.main(["up", "--stack", "local", "--state-dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "A stack is already up: local stack" in err and str(tmp_path / "run") in err
    assert json.loads(state_path(str(tmp_path)).read_text())["run_dir"] == str(tmp_path / "run")


def test_up_of_an_existing_barman_is_refused(tmp_path, capsys):
    assert cli.main(["up", "--stack", "existing", "--state-dir", str(tmp_path)]) == 2
    assert "not 'existing'" in capsys.readouterr().err


def test_no_engine_for_compose_is_one_message_and_leaves_nothing(tmp_path, capsys, monkeypatch):
    def no_engine():
        raise EngineUnavailable("No Docker engine answers and this user is not root, so none can be started.",
                                "Start dockerd (or run the tests as root once), then run again.")
    monkeypatch.setattr("harness.stacks.compose.ensure_engine", no_engine)
    assert cli.main(["up", "--stack", "compose", "--state-dir", str(tmp_path), "--workdir", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "No Docker engine answers" in err and "Traceback" not in err
    assert list(tmp_path.iterdir()) == []            # no record, no run directory


def test_the_writer_takes_an_applications_variables():
    environ = {"DB_HOST": "db", "DB_PORT": "6432", "DB_NAME": "books_db", "DB_USER": "app", "DB_PASSWORD": "pw",
               "PGUSER": "postgres"}
    assert connection_parameters(environ) == {"host": "db", "port": "6432", "dbname": "books_db", "user": "app",
                                              "password": "pw"}
    assert connection_parameters({"DB_HOST": "", "PGHOST": "x"}) == {}   # unset or empty: libpq's PG* apply


def test_env_shows_the_password_only_when_asked(tmp_path, capsys):
    state = kept(tmp_path / "run")
    (tmp_path / "run").mkdir()
    write_secrets(state, PASSWORD)
    save(state, state_path(str(tmp_path)))
    assert cli.main(["env", "--state-dir", str(tmp_path)]) == 0
    assert PASSWORD not in capsys.readouterr().out
    assert cli.main(["env", "--show-secrets", "--state-dir", str(tmp_path)]) == 0
    assert exported(capsys.readouterr().out.splitlines())["DB_PASSWORD"] == PASSWORD
