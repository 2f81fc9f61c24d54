"""pgbv-stack without a stack: the record, the export lines, secrets kept out of them, bad input, a failed
`up` that leaves something (recorded, and `down` removes it)."""

import base64
import errno
import hashlib
import hmac
import json
import os
import shlex
import stat
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import psycopg
import pytest

from harness.cli import stack as cli
from harness.drill.write_data import connection_parameters
from harness.postgres.roles import create_login_role
from harness.process.cleanup import CleanupFailed
from harness.process.filelock import FileLock
from harness.stacks.compose_project import EngineUnavailable
from harness.stacks.kept_up_state import LOCK_FILE, KeptUpStack, exports, load, save, state_path, write_secrets

ROOT = Path(__file__).resolve().parent.parent

PASSWORD = "s3cret:with\\odd-chars"


def kept_up(run_dir, compose=None) -> KeptUpStack:
    return KeptUpStack("local", str(run_dir), "2026-11-30T06:00:00+00:00",
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
    state = kept_up(tmp_path)
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
    state = kept_up(tmp_path)
    lines = exports(state, PASSWORD)
    assert exported(lines)["DB_PASSWORD"] == PASSWORD
    assert "PGPASSWORD" not in exported(lines)
    assert not any(line.startswith(". ") for line in lines)


def test_compose_lines_say_where_docker_compose_runs(tmp_path):
    state = kept_up(tmp_path, compose={"project": "pgbvstack1", "argv": ["docker-compose"], "env_file": "x"})
    assert any('cd "$PGBV_STACK_DIR"' in line for line in exports(state) if line.startswith("#"))


def test_the_record_is_private_and_survives_a_round_trip(tmp_path):
    path = state_path(str(tmp_path / "state"))
    state = kept_up(tmp_path)
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
    save(kept_up(tmp_path / "run"), state_path(str(tmp_path)))
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
    assert [p.name for p in tmp_path.iterdir()] == [LOCK_FILE]   # no record, no run directory (the lock stays)


def test_the_writer_takes_an_applications_variables():
    environ = {"DB_HOST": "db", "DB_PORT": "6432", "DB_NAME": "books_db", "DB_USER": "app", "DB_PASSWORD": "pw",
               "PGUSER": "postgres"}
    assert connection_parameters(environ) == {"host": "db", "port": "6432", "dbname": "books_db", "user": "app",
                                              "password": "pw"}
    assert connection_parameters({"DB_HOST": "", "PGHOST": "x"}) == {}   # unset or empty: libpq's PG* apply


def test_env_shows_the_password_only_when_asked(tmp_path, capsys):
    state = kept_up(tmp_path / "run")
    (tmp_path / "run").mkdir()
    write_secrets(state, PASSWORD)
    save(state, state_path(str(tmp_path)))
    assert cli.main(["env", "--state-dir", str(tmp_path)]) == 0
    assert PASSWORD not in capsys.readouterr().out
    assert cli.main(["env", "--show-secrets", "--state-dir", str(tmp_path)]) == 0
    assert exported(capsys.readouterr().out.splitlines())["DB_PASSWORD"] == PASSWORD


class FakeStack:
    """Stands in for LocalStack: `up`'s own steps run, no server starts. ``refuse`` makes its server
    refuse the application role, as a real server would refuse it."""

    made: list = []

    def __init__(self, config, refuse=None, stuck=False):
        self.config, self.refuse, self.closed, self.detached = config, refuse, False, False
        self.stuck = stuck   # its cleanup fails and leaves the run directory, as a hung cleanup would
        self.kind, self.run_dir, self.ownership = "local", None, None
        self.progress = SimpleNamespace(say=lambda text: print(text, file=sys.stderr))
        FakeStack.made.append(self)

    def start(self):
        self.run_dir = Path(self.config.workdir) / "pgbv-fake"
        conn = SimpleNamespace(port=54321, connect=self._connect)
        self.source = SimpleNamespace(server=SimpleNamespace(conn=conn))
        self.barman = SimpleNamespace(server="postgres", config_path=self.run_dir / "barman.conf",
                                      barman_argv=lambda: ["barman"])
        self.ownership = SimpleNamespace(entries=[{"kind": "path", "key": f"path:{self.run_dir}",
                                                   "what": "the run directory", "path": str(self.run_dir)}])
        if self.stuck:
            self.run_dir.mkdir()

    def _connect(self, dbname):
        raise self.refuse or AssertionError("no test here reaches the server")

    def detach(self):
        self.detached = True

    def close(self):
        self.closed = True
        if self.stuck:
            raise CleanupFailed("the local stack", [("remove the run directory", "timed out after 60 s")], 3)


@pytest.fixture
def fake_stack(monkeypatch):
    FakeStack.made = []

    def install(refuse=None, stuck=False):
        monkeypatch.setattr("harness.stacks.local.LocalStack", lambda config: FakeStack(config, refuse, stuck))
        return FakeStack.made
    return install


def test_a_role_the_server_refuses_is_one_paragraph_exit_2_and_removes_the_stack(tmp_path, capsys, fake_stack):
    made = fake_stack(psycopg.OperationalError("connection to server at 127.0.0.1 failed: FATAL: too many clients"))
    assert cli.main(["up", "--state-dir", str(tmp_path), "--workdir", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "The application login role books_app could not be created on the stack's PostgreSQL (port 54321): " \
           "connection to server at 127.0.0.1 failed: FATAL: too many clients." in err
    assert "Traceback" not in err and made[0].closed and not made[0].detached
    assert not state_path(str(tmp_path)).exists()


def test_a_record_that_cannot_be_written_is_one_paragraph_exit_2_and_removes_the_stack(tmp_path, capsys, fake_stack,
                                                                                       monkeypatch):
    made = fake_stack()
    monkeypatch.setattr("harness.stacks.kept_up.create_app_role", lambda conn, role, password: None)

    def full(state, path):
        raise OSError(errno.ENOSPC, "No space left on device", str(path))
    monkeypatch.setattr("harness.stacks.kept_up.save", full)
    assert cli.main(["up", "--state-dir", str(tmp_path), "--workdir", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert f"files could not be written: {state_path(str(tmp_path))}: No space left on device." in err
    assert "Traceback" not in err and made[0].closed


def test_env_of_a_stack_whose_env_file_is_gone_is_one_paragraph(tmp_path, capsys):
    save(kept_up(tmp_path / "gone"), state_path(str(tmp_path)))
    assert cli.main(["env", "--show-secrets", "--state-dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert f"The stack's env file {tmp_path}/gone/stack.env" in err and "Traceback" not in err


def test_a_kept_up_stack_lives_on_disk_unless_told(tmp_path, fake_stack, monkeypatch):
    made = fake_stack()
    monkeypatch.setattr("harness.stacks.kept_up.create_app_role", lambda conn, role, password: None)
    monkeypatch.setattr("harness.stacks.kept_up.write_secrets", lambda state, password: None)
    assert cli.main(["up", "--state-dir", str(tmp_path / "a")]) == 0
    assert made[-1].config.workdir == "/var/tmp"          # not /dev/shm: RAM, and gone at a reboot
    assert cli.main(["up", "--state-dir", str(tmp_path / "b"), "--workdir", str(tmp_path)]) == 0
    assert made[-1].config.workdir == str(tmp_path)


def test_a_failed_up_that_leaves_something_records_it_and_down_removes_it(tmp_path, capsys, fake_stack):
    made = fake_stack(psycopg.OperationalError("FATAL: too many clients"), stuck=True)
    state_dir = ["--state-dir", str(tmp_path / "state")]
    assert cli.main(["up", *state_dir, "--workdir", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    run_dir = made[0].run_dir
    assert "1 of 3 cleanups of the local stack did not complete: remove the run directory." in err
    assert f"could not all be removed: run directory {run_dir}. It is recorded in {tmp_path}/state/stack.json as " \
           "a failed `up`: `pgbv-stack down` removes what is left" in err, err
    assert "Traceback" not in err and run_dir.is_dir()
    assert "too many clients" in load(state_path(str(tmp_path / "state"))).failed_up

    assert cli.main(["status", *state_dir]) == 1
    out = capsys.readouterr().out
    assert "left of a local stack (local servers)" in out and f"left of it: run directory {run_dir}" in out
    assert cli.main(["env", *state_dir]) == 2
    assert "No stack is up: what a failed `pgbv-stack up`" in capsys.readouterr().err
    assert cli.main(["up", *state_dir, "--workdir", str(tmp_path)]) == 2 and len(made) == 1   # nothing started
    assert "Not taken down yet: what a failed `pgbv-stack up`" in capsys.readouterr().err

    assert cli.main(["down", *state_dir]) == 0
    assert "nothing of it is left" in capsys.readouterr().err
    assert not run_dir.exists() and not state_path(str(tmp_path / "state")).exists()


def test_a_failed_up_whose_cleanup_failed_but_left_nothing_records_nothing(tmp_path, capsys, fake_stack,
                                                                         monkeypatch):
    made = fake_stack(psycopg.OperationalError("FATAL: too many clients"), stuck=True)
    start = FakeStack.start

    def start_and_lose_the_dir(self):   # as if the abandoned watchdog had reaped it
        start(self)
        self.run_dir.rmdir()
    monkeypatch.setattr(FakeStack, "start", start_and_lose_the_dir)
    assert cli.main(["up", "--state-dir", str(tmp_path / "state"), "--workdir", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "too many clients" in err and "could not all be removed" not in err and made[0].closed
    assert not state_path(str(tmp_path / "state")).exists()


def test_down_that_cannot_remove_everything_exits_1_and_keeps_the_record(tmp_path, capsys, monkeypatch):
    (tmp_path / "run").mkdir()
    save(kept_up(tmp_path / "run"), state_path(str(tmp_path)))
    monkeypatch.setattr("harness.stacks.kept_up_down.reap", lambda record: ["the run directory: permission denied"])
    assert cli.main(["down", "--state-dir", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert f"The stack was not taken down completely: run directory {tmp_path / 'run'}." in err
    assert "run `pgbv-stack down` again" in err and state_path(str(tmp_path)).exists()
    monkeypatch.undo()
    assert cli.main(["down", "--state-dir", str(tmp_path)]) == 0
    assert not (tmp_path / "run").exists() and not state_path(str(tmp_path)).exists()


def test_down_with_a_state_dir_that_cannot_be_one_is_bad_input_exit_2(tmp_path, capsys):
    (tmp_path / "a-file").write_text("")
    for command in ("down", "up"):
        assert cli.main([command, "--state-dir", str(tmp_path / "a-file")]) == 2, command
        err = capsys.readouterr().err
        assert f"The state directory {tmp_path / 'a-file'} cannot hold the stack's lock" in err, err
        assert "Nothing was done" in err and "Traceback" not in err
    state_path(str(tmp_path / "s")).parent.mkdir()
    state_path(str(tmp_path / "s")).write_text("{not json")
    assert cli.main(["down", "--state-dir", str(tmp_path / "s")]) == 2     # nothing done: said, not "not down"
    assert "cannot be read" in capsys.readouterr().err


def test_a_login_role_is_created_with_a_scram_verifier_never_the_password():
    """PostgreSQL logs a failing CREATE ROLE whole: only the verifier of the password may be in it."""
    sent = []
    pgconn = psycopg.pq.PGconn.connect(b"host=/nonexistent dbname=x")   # libpq computes it without a server
    try:
        create_login_role(SimpleNamespace(pgconn=pgconn, execute=sent.append), "books app", PASSWORD, "REPLICATION")
    finally:
        pgconn.finish()
    statement = sent[0].as_string(None)
    assert PASSWORD not in statement and PASSWORD.replace("\\", "\\\\") not in statement
    head, verifier = statement.split(" PASSWORD ")
    assert head == 'CREATE ROLE "books app" LOGIN REPLICATION'
    # SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey>, of this very password (RFC 5802, 7677)
    iterations, salt, stored_key, _ = verifier.strip("'").removeprefix("SCRAM-SHA-256$").replace("$", ":").split(":")
    salted = hashlib.pbkdf2_hmac("sha256", PASSWORD.encode(), base64.b64decode(salt), int(iterations))
    client_key = hmac.new(salted, b"Client Key", "sha256").digest()
    assert base64.b64decode(stored_key) == hashlib.sha256(client_key).digest()


HOLD = """
import sys, time
from harness.process.filelock import FileLock
lock = FileLock(sys.argv[1])
assert lock.try_acquire("pgbv-stack up --stack local")
print("locked", flush=True)
time.sleep(120)
"""


def test_a_second_up_or_down_while_one_runs_names_it_and_does_nothing(tmp_path, capsys, monkeypatch):
    save(kept_up(tmp_path / "run"), state_path(str(tmp_path)))
    first = subprocess.Popen([sys.executable, "-c", HOLD, str(tmp_path / LOCK_FILE)], stdout=subprocess.PIPE,
                             text=True, cwd=ROOT)
    try:
        assert first.stdout.readline().strip() == "locked"
        monkeypatch.setattr("harness.stacks.base.StackBase.start", lambda self: pytest.fail("a stack was started"))
        monkeypatch.setattr("harness.stacks.kept_up_down.reap", lambda record: pytest.fail("something was taken down"))
        for command in ("up", "down"):
            assert cli.main([command, "--state-dir", str(tmp_path)]) == 2, command
            err = capsys.readouterr().err
            assert f"another pgbv-stack up or down holds the lock {tmp_path / LOCK_FILE} (pid {first.pid}, " \
                   "pgbv-stack up --stack local, since" in err, err
        assert load(state_path(str(tmp_path))) == kept_up(tmp_path / "run")   # the record is as it was
    finally:
        first.kill()
        first.wait(timeout=10)
    with FileLock(tmp_path / LOCK_FILE) as lock:    # released with its holder: nothing goes stale
        assert lock.try_acquire("check")
