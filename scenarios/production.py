"""A PostgreSQL + Barman set up by hand, the way an operator would, with none of the harness's code.

It stands in for a user's own production in tests of ``--stack existing``: a bare ``initdb``, a
hand-written postgresql.conf fragment, pg_hba.conf and barman.conf, a slot Barman creates,
``barman receive-wal`` in the background, and a few backups with writes between them. Everything
lives under one directory; ``close()`` stops what was started and removes it.
"""

from __future__ import annotations

import fnmatch
import getpass
import hashlib
import json
import os
import pwd
import random
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
from psycopg import sql

REPO = Path(__file__).resolve().parent.parent
INIT_SQL = REPO / "init.sql"
PG_BINDIR = Path("/usr/lib/postgresql/15/bin")
SERVER = "postgres"
SERVER_USER = "postgres"  # PostgreSQL refuses to run as root

# Session settings that fix how values print, so table_digest is the same wherever it runs.
TEXT_SETTINGS = "-c TimeZone=UTC -c DateStyle=ISO,YMD -c extra_float_digits=3 -c bytea_output=hex"


class ProductionError(RuntimeError):
    """The hand-built production could not be set up or driven."""


def _barman_executable() -> str:
    local = REPO / ".venv" / "bin" / "barman"
    return str(local) if local.exists() else (shutil.which("barman") or "barman")


def _tail(path: Path, lines: int = 20) -> str:
    try:
        text = path.read_text(errors="replace").splitlines()
    except OSError as exc:
        return f"  ({path}: {exc.strerror})"
    return f"  last lines of {path}:\n" + "\n".join("    " + line for line in text[-lines:])


def _env() -> dict:
    env = dict(os.environ, LC_ALL="C.UTF-8", LANG="C.UTF-8")
    env.pop("PGPASSWORD", None)
    return env


def _as_server_user() -> dict:
    """subprocess arguments that run a command as the server user when we are root."""
    if os.geteuid() != 0:
        return {}
    entry = pwd.getpwnam(SERVER_USER)
    return {"user": entry.pw_uid, "group": entry.pw_gid, "extra_groups": []}


def _chown_to_server_user(path: Path) -> None:
    if os.geteuid() == 0:
        entry = pwd.getpwnam(SERVER_USER)
        os.chown(path, entry.pw_uid, entry.pw_gid)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _base_dir() -> str:
    # A tmpfs makes initdb and backups fast; fall back to the temp dir when it is missing or small.
    shm = "/dev/shm"
    try:
        stats = os.statvfs(shm)
        if os.access(shm, os.W_OK | os.X_OK) and stats.f_bavail * stats.f_frsize > 4 * 2 ** 30:
            return shm
    except OSError:
        pass
    return tempfile.gettempdir()


def processes_naming(path: Path) -> list[tuple[int, str]]:
    """Live processes (pid, command line) whose command line mentions ``path``."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if str(path) in cmdline:
            found.append((int(entry.name), cmdline.strip()))
    return found


@dataclass
class Production:
    root: Path
    data_dir: Path
    port: int
    barman_conf: Path
    barman_home: Path
    server: str
    archive_dir: Path
    superuser_password: str = field(repr=False)
    backup_ids: list[str] = field(default_factory=list)
    server_log: Path | None = None
    barman_log: Path | None = None
    receiver_log: Path | None = None
    close_errors: list[str] = field(default_factory=list)
    _receiver: subprocess.Popen | None = field(default=None, repr=False)
    _ticker: psycopg.Connection | None = field(default=None, repr=False)
    _last_backup_done: float = field(default=0.0, repr=False)
    _closed: bool = field(default=False, repr=False)

    # -- connections -------------------------------------------------------------------------

    @property
    def tablespace_dir(self) -> Path:
        """Where production keeps its tablespace archive_space (outside its data directory)."""
        return self.root / "tablespace"

    def dsn(self, dbname: str = "books_db") -> str:
        return (f"host=127.0.0.1 port={self.port} user=postgres password={self.superuser_password} "
                f"dbname={dbname} connect_timeout=5")

    def connect(self, dbname: str = "books_db") -> psycopg.Connection:
        return psycopg.connect(self.dsn(dbname), autocommit=True, options=TEXT_SETTINGS)

    def server_running(self) -> bool:
        try:
            pid = int((self.data_dir / "postmaster.pid").read_text().split("\n", 1)[0])
            os.kill(pid, 0)
        except (OSError, ValueError):
            return False
        return True

    # -- barman ------------------------------------------------------------------------------

    def barman_argv(self, *args) -> list[str]:
        return [_barman_executable(), "-c", str(self.barman_conf), *map(str, args)]

    def barman(self, *args, check: bool = True, timeout: float = 120) -> subprocess.CompletedProcess:
        argv = self.barman_argv(*args)
        try:
            done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, env=_env(),
                                  stdin=subprocess.DEVNULL)
        except subprocess.TimeoutExpired as exc:
            raise ProductionError(f"`{' '.join(argv)}` did not finish within {timeout} s\n"
                                  f"{exc.stdout or ''}{exc.stderr or ''}\n{self._logs()}") from None
        if check and done.returncode != 0:
            raise ProductionError(f"`{' '.join(argv)}` exited {done.returncode}\n{done.stdout}{done.stderr}\n"
                                  f"{self._logs()}")
        return done

    def barman_json(self, *args, timeout: float = 60) -> dict:
        done = self.barman("-f", "json", *args, timeout=timeout)
        try:
            return json.loads(done.stdout)
        except json.JSONDecodeError:
            raise ProductionError(f"barman {' '.join(args)} printed no JSON:\n{done.stdout}{done.stderr}") from None

    def check_failures(self) -> list[str]:
        """Failing lines of `barman check` (empty when all OK)."""
        done = self.barman("-f", "json", "check", self.server, check=False, timeout=60)
        try:
            data = json.loads(done.stdout)
        except json.JSONDecodeError:
            return [f"barman check printed no JSON (rc {done.returncode}): {(done.stdout + done.stderr)[-300:]}"]
        section = data.get(self.server) or {}
        failures = [f"{name}: {item.get('status')} {item.get('hint', '')}".rstrip()
                    for name, item in section.items() if isinstance(item, dict) and item.get("status") != "OK"]
        failures += [f"error: {error}" for error in data.get("_ERROR", [])]
        if not section:
            failures.append(f"no checks reported: {done.stdout[-300:]}")
        return failures

    def wait_until_check_ok(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while True:
            failures = self.check_failures()
            if not failures:
                return
            if time.monotonic() > deadline:
                raise ProductionError(f"`barman check {self.server}` not all OK after {timeout} s:\n  "
                                      + "\n  ".join(failures) + "\n" + self._logs())
            self.tick()
            time.sleep(0.5)

    def backup_list(self) -> list[dict]:
        listed = self.barman_json("list-backups", self.server).get(self.server, [])
        return [item for item in listed if isinstance(item, dict) and "backup_id" in item]

    def backup(self, timeout: float = 300) -> str:
        # A backup id is the second it starts in: two backups in one second would share an id.
        if self._last_backup_done:
            next_second = int(self._last_backup_done) + 1
            while time.time() < next_second:
                time.sleep(next_second - time.time())
        before = {item["backup_id"] for item in self.backup_list()}
        try:
            self._run_with_ticks(["backup", "--wait", "--wait-timeout", int(timeout), self.server], timeout)
        finally:
            self._last_backup_done = time.time()
        new = [item for item in self.backup_list() if item["backup_id"] not in before]
        if len(new) != 1 or new[0].get("status") != "DONE":
            raise ProductionError(f"expected one new DONE backup, Barman lists {new}\n{self._logs()}")
        backup_id = new[0]["backup_id"]
        self.backup_ids.append(backup_id)
        return backup_id

    def archive_now(self, timeout: float = 60) -> None:
        self._run_with_ticks(["switch-wal", "--force", "--archive", "--archive-timeout", int(timeout),
                              self.server], timeout)

    def tick(self) -> None:
        """A tiny WAL record: pg_receivewal closes a switched segment only when more WAL arrives."""
        try:
            if self._ticker is None or self._ticker.closed:
                self._ticker = self.connect("postgres")
            self._ticker.execute("SELECT pg_logical_emit_message(false, 't', 'x')")
        except psycopg.Error:
            self._drop_ticker()

    def _drop_ticker(self) -> None:
        ticker, self._ticker = self._ticker, None
        if ticker is not None:
            try:
                ticker.close()
            except Exception:
                pass

    def _run_with_ticks(self, args: list, timeout: float) -> str:
        argv = self.barman_argv(*args)
        proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                stdin=subprocess.DEVNULL, env=_env())
        deadline = time.monotonic() + timeout + 30
        try:
            while proc.poll() is None:
                if time.monotonic() > deadline:
                    proc.kill()
                    proc.wait(timeout=10)
                    raise ProductionError(f"`{' '.join(argv)}` did not finish within {timeout + 30} s\n"
                                          f"{self._logs()}")
                self.tick()
                try:
                    proc.wait(timeout=0.3)
                except subprocess.TimeoutExpired:
                    pass
        except BaseException:
            if proc.poll() is None:
                proc.kill()
                proc.wait(timeout=10)
            raise
        output = proc.communicate(timeout=10)[0]
        if proc.returncode != 0:
            raise ProductionError(f"`{' '.join(argv)}` exited {proc.returncode}\n{output}\n{self._logs()}")
        return output

    # -- WAL streaming -----------------------------------------------------------------------

    def streaming(self) -> bool:
        return self._receiver is not None and self._receiver.poll() is None

    def start_streaming(self, timeout: float = 30) -> None:
        if self.streaming():
            return
        log = open(self.receiver_log, "ab")
        try:
            # Its own session: the whole group (barman and its pg_receivewal) can be stopped together.
            self._receiver = subprocess.Popen(self.barman_argv("receive-wal", self.server), stdout=log,
                                              stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                              env=_env(), start_new_session=True)
        finally:
            log.close()
        deadline = time.monotonic() + timeout
        while not self._receiver_connected():
            if self._receiver.poll() is not None:
                raise ProductionError(f"`barman receive-wal {self.server}` exited "
                                      f"{self._receiver.returncode}\n{self._logs()}")
            if time.monotonic() > deadline:
                raise ProductionError(f"Barman's WAL receiver not streaming after {timeout} s\n{self._logs()}")
            time.sleep(0.2)

    def _receiver_connected(self) -> bool:
        try:
            with self.connect("postgres") as conn:
                return bool(conn.execute(
                    "SELECT 1 FROM pg_stat_replication WHERE state = 'streaming' "
                    "AND application_name = 'barman_receive_wal'").fetchone())
        except psycopg.Error:
            return False

    def stop_streaming(self, timeout: float = 15) -> None:
        proc, self._receiver = self._receiver, None
        if proc is None:
            return
        if proc.poll() is None:
            # The leader alone first, so barman stops its pg_receivewal cleanly.
            try:
                proc.terminate()
                proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=5)
        try:
            os.killpg(proc.pid, signal.SIGKILL)  # whatever of the group is left
        except (ProcessLookupError, PermissionError):
            pass
        deadline = time.monotonic() + timeout
        while _group_alive(proc.pid):
            if time.monotonic() > deadline:
                raise ProductionError(f"processes of receive-wal's group {proc.pid} still run after {timeout} s")
            time.sleep(0.05)

    # -- data --------------------------------------------------------------------------------

    def write_books(self, rows: int, seed: int) -> None:
        rng = random.Random(seed)
        values = [(rng.randint(1, 20), f"Book {seed}-{i} {rng.randrange(10 ** 6)}",
                   f"Author {rng.randrange(500)}", f"978{rng.randrange(10 ** 10):010d}",
                   rng.randint(1900, 2026)) for i in range(rows)]
        with self.connect() as conn, conn.transaction(), conn.cursor() as cur:
            cur.executemany("INSERT INTO books (category_id, title, author, isbn, year) "
                            "VALUES (%s, %s, %s, %s, %s)", values)
            cur.execute("SELECT 1 FROM pg_class WHERE relname = 'old_books'")
            if cur.fetchone():  # production_settings: some rows live in the tablespace too
                cur.execute("INSERT INTO old_books (category_id, title, author, isbn, year) "
                            "SELECT category_id, title, author, isbn, year FROM books ORDER BY id DESC LIMIT %s",
                            (max(rows // 10, 1),))

    # -- teardown ----------------------------------------------------------------------------

    def close(self) -> None:
        """Stop everything started under root and remove it; failures are kept in close_errors."""
        if self._closed:
            return
        self._closed = True
        steps = [("close the WAL tick connection", self._drop_ticker),
                 ("stop barman receive-wal", self.stop_streaming),
                 ("stop the PostgreSQL server", self._stop_server),
                 ("end processes naming the root", self._end_leftovers),
                 ("remove the root", self._remove_root)]
        for what, step in steps:
            try:
                step()
            except Exception as exc:  # each step must get its turn
                self.close_errors.append(f"{what}: {exc}")

    def _stop_server(self) -> None:
        if not self.server_running():
            return
        pg_ctl = str(PG_BINDIR / "pg_ctl")
        for mode, wait in (("fast", 30), ("immediate", 15)):
            try:
                subprocess.run([pg_ctl, "-D", str(self.data_dir), "-m", mode, "-w", "-t", str(wait), "stop"],
                               capture_output=True, timeout=wait + 10, env=_env(), cwd="/",
                               stdin=subprocess.DEVNULL, **_as_server_user())
            except subprocess.TimeoutExpired:
                pass
            if not self.server_running():
                return
        raise ProductionError(f"pg_ctl could not stop the server on {self.data_dir}")

    def _end_leftovers(self, timeout: float = 10) -> None:
        # The last resort for a server pg_ctl could not stop or a stray pg_receivewal: all name root.
        left = processes_naming(self.root)
        for pid, _ in left:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + timeout
        while processes_naming(self.root):
            if time.monotonic() > deadline:
                raise ProductionError(f"still running: {processes_naming(self.root)}")
            time.sleep(0.1)
        if left:
            raise ProductionError(f"had to kill {left}")

    def _remove_root(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)
        if self.root.exists():
            raise ProductionError(f"{self.root} could not be removed")

    def _logs(self) -> str:
        return "\n".join(_tail(path, 15) for path in (self.barman_log, self.receiver_log, self.server_log)
                         if path is not None)


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie leader keeps the group "alive" until it is reaped; pg_receivewal is reparented to init.
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if int(fields[2]) == pgid and fields[0] != "Z":
            return True
    return False


# -- building it --------------------------------------------------------------------------------

def _run_as_server_user(argv: list, timeout: float, what: str, log: Path | None = None) -> None:
    try:
        done = subprocess.run([str(a) for a in argv], capture_output=True, text=True, timeout=timeout,
                              env=_env(), cwd="/", stdin=subprocess.DEVNULL, **_as_server_user())
    except subprocess.TimeoutExpired:
        raise ProductionError(f"{what} did not finish within {timeout} s\n{_tail(log) if log else ''}") from None
    if done.returncode != 0:
        raise ProductionError(f"{what} failed (rc {done.returncode}):\n{done.stdout}{done.stderr}\n"
                              f"{_tail(log) if log else ''}")


def _postgresql_conf(prod: Production, production_settings: bool) -> str:
    text = f"""
# --- local additions ---
listen_addresses = '127.0.0.1'
port = {prod.port}
unix_socket_directories = '{prod.root / "sockets"}'
wal_level = replica
max_wal_senders = 10
max_replication_slots = 10
track_commit_timestamp = on
fsync = off                       # test machine: durability across power loss is not under test
log_line_prefix = '%m [%p] '
"""
    if production_settings:
        text += f"""shared_buffers = '1GB'
huge_pages = try
shared_preload_libraries = 'pg_stat_statements'
archive_mode = on
archive_command = 'test ! -f {prod.archive_dir}/%f && cp %p {prod.archive_dir}/%f'
max_connections = 200
ssl = off
"""
    return text


PG_HBA = """\
# TYPE  DATABASE     USER              ADDRESS         METHOD
local   all          postgres                          peer
host    all          all               127.0.0.1/32    scram-sha-256
host    replication  streaming_barman  127.0.0.1/32    scram-sha-256
"""


def _barman_conf(prod: Production, passfile: Path, logs: Path, locks: Path, conf_d: Path) -> str:
    conninfo = f"host=127.0.0.1 port={prod.port} dbname=postgres passfile={passfile} connect_timeout=10"
    return f"""\
[barman]
barman_home = {prod.barman_home}
barman_user = {getpass.getuser()}
log_file = {logs / "barman.log"}
log_level = INFO
barman_lock_directory = {locks}
configuration_files_directory = {conf_d}

[{prod.server}]
description = "Main PostgreSQL database"
conninfo = {conninfo} user=barman
streaming_conninfo = {conninfo} user=streaming_barman
backup_method = postgres
streaming_archiver = on
slot_name = barman
create_slot = manual
archiver = off
path_prefix = {PG_BINDIR}
immediate_checkpoint = true
minimum_redundancy = 0
"""


def _write_secret(path: Path, text: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(text)


def build_production(rows: int = 2000, backups: int = 2, production_settings: bool = True) -> Production:
    root = Path(tempfile.mkdtemp(prefix="prod-", dir=_base_dir()))
    os.chmod(root, 0o711)  # the server user must reach its data dir below
    pg_home = root / "pg"
    prod = Production(root=root, data_dir=pg_home / "data", port=_free_port(), barman_conf=root / "barman.conf",
                      barman_home=root / "barman", server=SERVER, archive_dir=root / "wal-archive",
                      superuser_password=secrets.token_hex(16), server_log=pg_home / "postgresql.log",
                      barman_log=root / "log" / "barman.log", receiver_log=root / "log" / "receive-wal.log")
    try:
        _build(prod, pg_home, rows, backups, production_settings)
    except BaseException:
        prod.close()
        raise
    return prod


def _build(prod: Production, pg_home: Path, rows: int, backups: int, production_settings: bool) -> None:
    root = prod.root
    for directory in (pg_home, root / "sockets", prod.archive_dir, prod.tablespace_dir):
        directory.mkdir(mode=0o700)
        _chown_to_server_user(directory)

    pwfile = pg_home / ".pwfile"
    _write_secret(pwfile, prod.superuser_password + "\n")
    _chown_to_server_user(pwfile)
    try:
        _run_as_server_user([PG_BINDIR / "initdb", "-D", prod.data_dir, "-U", "postgres", "--data-checksums",
                             "--auth-local=peer", "--auth-host=scram-sha-256", f"--pwfile={pwfile}",
                             "--encoding=UTF8", "--locale=C.UTF-8", "--no-sync"], 120, "initdb")
    finally:
        pwfile.unlink(missing_ok=True)
    with open(prod.data_dir / "postgresql.conf", "a") as handle:
        handle.write(_postgresql_conf(prod, production_settings))
    (prod.data_dir / "pg_hba.conf").write_text(PG_HBA)
    _run_as_server_user([PG_BINDIR / "pg_ctl", "-D", prod.data_dir, "-l", prod.server_log, "-w", "-t", 60,
                         "start"], 75, "pg_ctl start", prod.server_log)

    passwords = {role: secrets.token_hex(16) for role in ("barman", "streaming_barman")}
    with prod.connect("postgres") as conn:
        for role, attributes in (("barman", "SUPERUSER"), ("streaming_barman", "REPLICATION")):
            conn.execute(sql.SQL("CREATE ROLE {} LOGIN {} PASSWORD {}").format(
                sql.Identifier(role), sql.SQL(attributes), sql.Literal(passwords[role])))
        conn.execute("CREATE DATABASE books_db")
        if production_settings:
            conn.execute("CREATE EXTENSION pg_stat_statements")
    with prod.connect("books_db") as conn:
        conn.execute(INIT_SQL.read_bytes())
        if production_settings:
            # A tablespace outside the data directory, as production servers have: a restore that did
            # not map it would write into this directory.
            conn.execute(sql.SQL("CREATE TABLESPACE archive_space LOCATION {}").format(
                sql.Literal(str(prod.tablespace_dir))))
            conn.execute("CREATE TABLE old_books (LIKE books INCLUDING ALL) TABLESPACE archive_space")

    passfile = root / "barman.pgpass"
    _write_secret(passfile, "".join(f"127.0.0.1:{prod.port}:*:{role}:{password}\n"
                                    for role, password in passwords.items()))
    logs, locks, conf_d = root / "log", root / "locks", root / "barman.d"
    for directory in (prod.barman_home, logs, locks, conf_d):
        directory.mkdir()
    prod.barman_conf.write_text(_barman_conf(prod, passfile, logs, locks, conf_d))

    prod.barman("receive-wal", "--create-slot", prod.server, timeout=60)
    prod.start_streaming()
    prod.archive_now()
    prod.wait_until_check_ok()

    for number in range(backups):
        prod.write_books(rows, seed=number)
        prod.backup()
    prod.write_books(rows, seed=backups)
    prod.archive_now()


@contextmanager
def production(**kwargs):
    prod = build_production(**kwargs)
    try:
        yield prod
    finally:
        prod.close()


# -- comparing ----------------------------------------------------------------------------------

def tree_digest(path: Path, exclude: tuple[str, ...] = ()) -> dict[str, str]:
    """Relative path -> sha256 of every regular file under ``path`` (names matching ``exclude`` skipped)."""
    path = Path(path)

    def excluded(name: str, relative: str) -> bool:
        return any(fnmatch.fnmatch(name, pattern) or fnmatch.fnmatch(relative, pattern) for pattern in exclude)

    digests = {}
    for directory, dirs, files in os.walk(path):
        base = Path(directory)
        dirs[:] = [name for name in dirs if not excluded(name, (base / name).relative_to(path).as_posix())]
        for name in files:
            full = base / name
            relative = full.relative_to(path).as_posix()
            if excluded(name, relative) or full.is_symlink() or not full.is_file():
                continue
            digest = hashlib.sha256()
            with open(full, "rb") as handle:
                for chunk in iter(lambda: handle.read(1 << 20), b""):
                    digest.update(chunk)
            digests[relative] = digest.hexdigest()
    return digests


def table_digest(dsn: str) -> dict[str, str]:
    """"schema.table" -> "N rows, md5 X" for every user table: the logical content of the database."""
    result = {}
    with psycopg.connect(dsn, autocommit=True, options=TEXT_SETTINGS) as conn:
        tables = conn.execute(
            "SELECT n.nspname, c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE c.relkind = 'r' AND n.nspname NOT IN ('pg_catalog', 'information_schema') "
            "AND n.nspname NOT LIKE 'pg_toast%' ORDER BY 1, 2").fetchall()
        for schema, table in tables:
            count, md5 = conn.execute(sql.SQL(
                "SELECT count(*), md5(coalesce(string_agg(t::text, E'\\n' ORDER BY t::text COLLATE \"C\"), '')) "
                "FROM {} AS t").format(sql.Identifier(schema, table))).fetchone()
            result[f"{schema}.{table}"] = f"{count} rows, md5 {md5}"
    return result
