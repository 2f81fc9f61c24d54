"""The local stack: a source PostgreSQL server and Barman streaming its WAL, on this machine.

Everything lives in one run directory (servers' data, Barman's home, logs, the passfile); every
process the stack starts is stopped by ``close()``, and by the watchdog if the harness dies.
"""

from __future__ import annotations

import getpass
import shutil
from pathlib import Path

from harness.barman.config import render_config
from harness.barman.driver import Barman
from harness.drill.books import INIT_SQL
from harness.drill.source import Source
from harness.errors import SetupError
from harness.postgres.binaries import PgBin, find_barman, find_pg_bindir, require_rsync, tool_version
from harness.postgres.roles import create_login_role
from harness.postgres.server import PostgresServer
from harness.postgres.versions import INCREMENTAL_MIN_MAJOR, readable_copy, unusable_by
from harness.process.accounts import Credentials, chown_to, server_runner
from harness.process.ports import free_port, require_free
from harness.stacks.base import StackBase

SERVER_NAME = "source"  # the Barman server's name unless the config names one (--barman-server)


SOURCE_SETTINGS = {
    "wal_level": "replica",
    "max_wal_senders": 10,
    "max_replication_slots": 10,
    # Commit timestamps let a time target sit exactly on a commit (inclusive vs exclusive).
    "track_commit_timestamp": True,
    "log_line_prefix": "%m [%p] ",
    "log_min_messages": "info",
    "fsync": False,  # the drills test WAL and backups, not durability across power loss
}


def source_settings(major: int) -> dict:
    """SOURCE_SETTINGS for this major version: 17+ also summarizes WAL, which incremental
    backups (pg_basebackup --incremental, through `barman backup --incremental`) need."""
    settings = dict(SOURCE_SETTINGS)
    if major >= INCREMENTAL_MIN_MAJOR:
        settings["summarize_wal"] = True
    return settings


class LocalStack(StackBase):
    """Source server + Barman on this machine."""

    kind = "local"
    default_server = SERVER_NAME

    def __init__(self, config, barman_settings: dict | None = None):
        super().__init__(config)
        self.pg: PgBin | None = None
        self.run_as = None
        self.server_name = SERVER_NAME
        self.barman_settings = dict(barman_settings or {})  # more of the server section, e.g. compression

    def _bring_up(self) -> None:
        config, say = self.config, self.progress.say
        self.server_name = self.barman_server_name(SERVER_NAME)
        self.pg = find_pg_bindir(config.pg_bindir)
        barman_exe = find_barman()
        require_rsync()
        self.run_as = server_runner(config.server_user)
        unusable = unusable_by(self.pg, self.run_as)
        copy = readable_copy(self.pg) if unusable else None
        if copy is not None and not unusable_by(copy, self.run_as):
            say(f"{self.pg.bindir} is closed to {self.run_as.user}: using a readable copy at {copy.bindir}")
            self.pg, unusable = copy, ""
        if unusable:
            raise SetupError(f"PostgreSQL {self.pg.version} at {self.pg.bindir} cannot be run by the server user: "
                             f"{unusable}", "Install it where that user can read it (a venv made from "
                             "/usr/bin/python3 under a world-readable directory), or name another --pg-bindir.")
        port = require_free(config.source_port, "source server") if config.source_port else free_port()
        self._make_run_dir(self.run_as)
        self.credentials = Credentials.create(self.run_dir / "passfile")
        say(f"initdb source cluster (PostgreSQL {self.pg.version}, port {port})")
        server = self._new_server("source", port)
        self.cleanups.add("stop the source server", lambda: server.stop(mode="fast"))
        server.initdb(self.credentials.passwords["postgres"])
        server.configure(source_settings(self.pg.major))
        server.write_hba()
        server.start()
        self.source = Source(server, self.progress)
        self._create_roles_and_schema()
        say("configure Barman, create the slot, start receive-wal")
        self.barman = self._configure_barman(barman_exe)
        self.barman.create_slot()
        self.cleanups.add("stop barman receive-wal", self.barman.stop_receive_wal)
        self.barman.start_receive_wal()
        self.barman.wait_for_streaming()
        self.barman.archive_current_wal()
        self.barman.wait_until_check_ok()
        say("barman check: all OK")

    def _new_server(self, name: str, port: int) -> PostgresServer:
        home = self.run_dir / name
        home.mkdir()
        chown_to(home, self.run_as)
        sockets = home / "sockets"
        sockets.mkdir()
        chown_to(sockets, self.run_as)
        server = PostgresServer(name, self.pg, home / "data", port, sockets, self.credentials.passfile, self.run_as)
        self.ownership.own_postgres(server.data_dir, f"the {name} server")
        return server

    def _create_roles_and_schema(self) -> None:
        pw = self.credentials.passwords
        server = self.source.server
        with server.conn.connect("postgres") as conn:
            for role, attrs in (("barman", "SUPERUSER"), ("streaming_barman", "REPLICATION")):
                create_login_role(conn, role, pw[role], attrs)
            conn.execute("CREATE DATABASE books_db")
        with server.conn.connect("books_db") as conn:
            conn.execute(INIT_SQL.read_text().encode())

    def _configure_barman(self, executable: str) -> Barman:
        home = self.run_dir / "barman"
        home.mkdir()
        (home / "conf.d").mkdir()
        (home / "locks").mkdir()
        server = self.source.server
        server_name = self.server_name
        config = render_config(
            home=home, user=getpass.getuser(), server=server_name,
            conninfo=server.conn.conninfo("postgres", user="barman"),
            streaming_conninfo=server.conn.conninfo("postgres", user="streaming_barman"),
            bindir=self.pg.bindir, extra=self.barman_settings)
        config_path = self.run_dir / "barman.conf"
        config_path.write_text(config)
        return Barman(executable, config_path, server_name, home, self.source, self.progress)

    # -- the contract's drill side ---------------------------------------------------------------

    def scratch_server(self, label: str) -> PostgresServer:
        """An empty scratch server slot (own dir, own port) for one recovery."""
        server = self._new_server(self._next_scratch_name(label), free_port())
        server.data_dir.mkdir(mode=0o700)
        chown_to(server.data_dir, self.run_as)
        self.cleanups.add(f"stop {server.name}", lambda: server.stop(mode="immediate"))
        return server

    def discard_scratch(self, server: PostgresServer) -> None:
        server.stop(mode="immediate")
        shutil.rmtree(server.data_dir.parent, ignore_errors=True)

    def log_files(self) -> list[Path]:
        """Logs worth keeping as evidence: the source's, Barman's and the WAL receiver's."""
        logs = []
        if self.source is not None:
            logs.append(self.source.server.log_path)
        if self.barman is not None:
            logs += [self.barman.log_path, self.barman.receiver_log]
        return logs

    def _read_versions(self) -> dict[str, str]:
        return {
            "postgresql": self.pg.version if self.pg else "unknown",
            "barman": tool_version([self.barman.executable, "--version"]) if self.barman else "unknown",
        }
