"""One PostgreSQL server (source or scratch): init, configure, start, stop, query, read its log."""

from __future__ import annotations

import os
import shlex
from dataclasses import dataclass
from pathlib import Path

import psycopg

from harness.errors import CommandFailed, HarnessError, SetupError
from harness.postgres.binaries import PgBin
from harness.process import logfiles, ports
from harness.process.accounts import chown_to
from harness.process.commands import RunAs, run
from harness.process.reaping import is_postmaster_of

# Every session pins what shapes a value's text, so the source and a restore print rows the same way.
SESSION_SETTINGS = {
    "TimeZone": "UTC",
    "DateStyle": "ISO, YMD",
    "IntervalStyle": "postgres",
    "extra_float_digits": "3",
    "bytea_output": "hex",
    "lc_monetary": "C",
    "search_path": "public",
}


UNIX_SOCKET_PATH_MAX = 107


class ServerStartFailed(HarnessError):
    """pg_ctl start failed or the postmaster exited while starting."""


@dataclass
class Connection:
    """How to reach a server: over TCP on 127.0.0.1 with the run's passfile, or (``host`` a directory)
    over a private Unix socket."""

    port: int
    passfile: Path | None
    user: str = "postgres"
    host: str = "127.0.0.1"

    def conninfo(self, dbname: str = "postgres", user: str | None = None) -> str:
        """A libpq conninfo without secrets (the password stays in the passfile)."""
        text = f"host={self.host} port={self.port} user={user or self.user} dbname={dbname} connect_timeout=5"
        return text + (f" passfile={self.passfile}" if self.passfile else "")

    def connect(self, dbname: str = "postgres", autocommit: bool = True) -> psycopg.Connection:
        options = " ".join(f"-c {key}={value.replace(' ', '')}" for key, value in SESSION_SETTINGS.items())
        return psycopg.connect(self.conninfo(dbname), autocommit=autocommit, options=options)


class ServerHandle:
    """What drills need of any PostgreSQL server, wherever it runs: a name, a connection, a log."""

    def __init__(self, name: str, conn: Connection, log_path: Path, description: str = ""):
        self.name = name
        self.conn = conn
        self.log_path = Path(log_path)
        self.description = description or name  # e.g. "PostgreSQL 15.18 at /usr/lib/postgresql/15/bin"

    # -- queries -----------------------------------------------------------------------------

    def query(self, sql: str, params=None, dbname: str = "books_db") -> list[tuple]:
        with self.conn.connect(dbname) as conn:
            return conn.execute(sql, params).fetchall()

    def scalar(self, sql: str, params=None, dbname: str = "books_db"):
        rows = self.query(sql, params, dbname)
        return rows[0][0] if rows else None

    def timeline(self) -> int:
        """The timeline the server is on now."""
        if self.scalar("SELECT pg_is_in_recovery()", dbname="postgres"):
            return int(self.scalar("SELECT timeline_id FROM pg_control_checkpoint()", dbname="postgres"))
        walfile = self.scalar("SELECT pg_walfile_name(pg_current_wal_lsn())", dbname="postgres")
        return int(walfile[:8], 16)

    def log_excerpt(self, lines: int = 30, pattern: str | None = None) -> str:
        return logfiles.excerpt(self.log_path, lines, pattern)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name} port={self.conn.port}>"



class PostgresServer(ServerHandle):
    """A PostgreSQL data directory on this machine and the server process running on it (pg_ctl)."""

    def __init__(self, name: str, pg: PgBin, data_dir: Path, port: int, socket_dir: Path,
                 passfile: Path, run_as: RunAs):
        super().__init__(name, Connection(port, passfile), Path(data_dir).parent / f"{name}.log",
                         f"PostgreSQL {pg.version} at {pg.bindir}")
        self.pg = pg
        self.data_dir = Path(data_dir)
        self.port = port
        self.socket_dir = Path(socket_dir)
        self.run_as = run_as

    # -- lifecycle ---------------------------------------------------------------------------

    def initdb(self, superuser_password: str) -> None:
        """A fresh cluster with data checksums and scram-sha-256 over TCP."""
        self.data_dir.mkdir(mode=0o700, parents=True)
        chown_to(self.data_dir, self.run_as)
        pwfile = self.data_dir.parent / f".{self.name}.pw"
        fd = os.open(pwfile, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(superuser_password + "\n")
        chown_to(pwfile, self.run_as)
        try:
            run([self.pg.tool("initdb"), "-D", self.data_dir, "-U", "postgres", "--data-checksums",
                 "--auth-local=peer", "--auth-host=scram-sha-256", f"--pwfile={pwfile}",
                 "--encoding=UTF8", "--no-locale", "--no-sync"],
                run_as=self.run_as, timeout=120, cause=f"initdb of the {self.name} cluster failed.")
        finally:
            pwfile.unlink(missing_ok=True)

    def configure(self, settings: dict) -> None:
        """Append settings to postgresql.conf (later lines win)."""
        lines = [f"{key} = {_conf_value(value)}" for key, value in settings.items()]
        with open(self.data_dir / "postgresql.conf", "a") as handle:
            handle.write("\n# set by the verification harness\n" + "\n".join(lines) + "\n")

    def write_hba(self) -> None:
        hba = ("# TCP on loopback only, passwords as scram-sha-256\n"
               "local   all          all                    peer\n"
               "host    all          all    127.0.0.1/32    scram-sha-256\n"
               "host    replication  all    127.0.0.1/32    scram-sha-256\n")
        (self.data_dir / "pg_hba.conf").write_text(hba)

    def start(self, extra_options: dict | None = None, timeout: float = 60) -> None:
        """Start the server and wait until it accepts connections (or has exited).

        Port and socket dir go on the command line because a restored postgresql.conf still
        names the source's. Accepting connections is not the end of a recovery: see harness.checks.reached.
        """
        # A socket path longer than the kernel's limit (107 bytes) would stop the server: the harness
        # itself connects over TCP only, so a deep run dir just means no Unix socket.
        fits = len(f"{self.socket_dir}/.s.PGSQL.{self.port}") <= UNIX_SOCKET_PATH_MAX
        options = {"port": self.port, "listen_addresses": "127.0.0.1",
                   "unix_socket_directories": str(self.socket_dir) if fits else ""}
        options.update(extra_options or {})
        # pg_ctl hands -o to a shell: each setting is quoted as one word.
        opt_text = " ".join(f"-c {shlex.quote(f'{key}={value}')}" for key, value in options.items())
        done = run([self.pg.tool("pg_ctl"), "-D", self.data_dir, "-l", self.log_path, "-o", opt_text,
                    "-w", "-t", int(timeout), "start"], run_as=self.run_as, timeout=timeout + 15, check=False)
        if done.returncode != 0 or not self.is_running():
            raise ServerStartFailed(
                f"The {self.name} server (port {self.port}, data {self.data_dir}) did not start.",
                details=done.stdout.strip() + "\n" + self.log_excerpt())
        ports.release(self.port)   # it listens: the kernel refuses the port to others from now on

    def stop(self, mode: str = "fast", timeout: float = 60) -> None:
        ports.release(self.port)   # stopped (or never started: a scratch discarded), the port is not needed
        if not self.is_running():
            return
        try:
            run([self.pg.tool("pg_ctl"), "-D", self.data_dir, "-m", mode, "-w", "-t", int(timeout), "stop"],
                run_as=self.run_as, timeout=timeout + 10, check=False)
        except CommandFailed:  # pg_ctl itself hung past its deadline: stop harder below
            pass
        if self.is_running():
            try:
                run([self.pg.tool("pg_ctl"), "-D", self.data_dir, "-m", "immediate", "-w", "stop"],
                    run_as=self.run_as, timeout=30, check=False)
            except CommandFailed:
                pass
        if self.is_running():
            self.kill()

    def adopt_restored_files(self) -> None:
        """Files `barman recover` wrote (as the harness's user) go to the user that runs the server."""
        chown_to(self.data_dir, self.run_as, recursive=True)

    def kill(self) -> None:
        """Stop without ceremony (used when cleaning up after an interruption)."""
        pid = self.postmaster_pid()
        if pid and is_postmaster_of(pid, str(self.data_dir)):  # a stale pid file may name another process
            try:
                os.kill(pid, 9)
            except ProcessLookupError:
                pass

    def postmaster_pid(self) -> int | None:
        try:
            return int((self.data_dir / "postmaster.pid").read_text().split("\n", 1)[0])
        except (FileNotFoundError, ValueError, PermissionError):
            return None

    def is_running(self) -> bool:
        pid = self.postmaster_pid()
        if not pid:
            return False
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            pass
        return is_postmaster_of(pid, str(self.data_dir))  # not some other process that got a stale pid

def _conf_value(value) -> str:
    if isinstance(value, bool):
        return "on" if value else "off"
    if isinstance(value, (int, float)):
        return str(value)
    return "'" + str(value).replace("'", "''") + "'"


def require_server_version(pg: PgBin, minimum: int) -> None:
    if pg.major < minimum:
        raise SetupError(f"PostgreSQL {pg.version} at {pg.bindir} is too old for this harness.",
                         f"Use PostgreSQL {minimum} or newer (--pg-bindir).")
