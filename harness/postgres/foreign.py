"""Making a data directory restored from someone else's backup safe to start here.

A production backup carries production's postgresql.conf and postgresql.auto.conf: an archive_command
that would write into the production archive, a primary_conninfo that would connect out, a pid file
and socket paths of the production server on this very host, synchronous standbys a promoted scratch
would wait for forever, commands run at the end of recovery, memory sized for a big machine, preloaded
libraries that are not installed here. Every such setting is overridden on the scratch's command line
(which wins over both files) and every override is listed as evidence; the restored files themselves
are left as Barman wrote them. ``ForeignScratch`` is the scratch server that starts that way.
"""

from __future__ import annotations

import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from harness.barman.catalog import Backup
from harness.errors import SetupError
from harness.postgres.binaries import PgBin
from harness.postgres.server import Connection, PostgresServer
from harness.process.accounts import chown_to
from harness.process.commands import RunAs, run

SMALL_SHARED_BUFFERS_KB = 128 * 1024

# Always set, whatever the restored files say: (setting, value, why). Values are the scratch's own.
NEUTRAL = (
    ("archive_mode", "off", "a scratch must never archive into the production archive"),
    ("archive_command", "", "a scratch must never archive into the production archive"),
    ("primary_conninfo", "", "a scratch must never connect to production"),
    ("primary_slot_name", "", "a scratch must never hold a slot on production"),
    ("recovery_end_command", "", "production's commands are not run here"),
    ("archive_cleanup_command", "", "production's commands are not run here"),
    ("synchronous_standby_names", "", "a promoted scratch would wait for production's standbys forever"),
    ("external_pid_file", "", "production's pid file on this host must not be overwritten"),
    ("ssl", "off", "production's certificates are not here; the scratch is reached over a private socket"),
    ("huge_pages", "off", "sized for production's machine"),
    ("logging_collector", "off", "the scratch's log goes to its own file, where recovery is read from"),
    ("log_destination", "stderr", "the scratch's log goes to its own file, where recovery is read from"),
    ("hot_standby", "on", "the drill watches recovery through queries"),
    ("max_logical_replication_workers", "0", "a promoted scratch must not apply production's subscriptions"),
    ("fsync", "off", "a scratch is thrown away"),
)
ARCHIVE_LIBRARY_SINCE = 15   # archive_library exists from PostgreSQL 15 on
PROMOTE_TRIGGER_UNTIL = 15   # promote_trigger_file was removed in PostgreSQL 16
PRELOADS = ("shared_preload_libraries", "session_preload_libraries", "local_preload_libraries")
STATS_TEMP_UNTIL = 14        # stats_temp_directory was removed in PostgreSQL 15
# Libraries that act on their own once loaded (scheduled jobs, replication): never in a scratch.
AUTONOMOUS = {"pg_cron", "pglogical", "pg_partman_bgw", "pg_squeeze", "pg_background"}


@dataclass
class Neutralized:
    """The settings the scratch starts with, and what each changed from the restored files."""

    settings: dict[str, str] = field(default_factory=dict)
    overrides: list[str] = field(default_factory=list)   # "name: 'restored' -> 'scratch' (why)"


def neutralize(pg: PgBin, data_dir: Path, run_as: RunAs, socket_dir: Path, port: int, hba_file: Path,
               ident_file: Path) -> Neutralized:
    """The command-line settings that make ``data_dir`` (restored, not yet started) harmless here."""
    result = Neutralized()
    config_file = data_dir / "postgresql.conf"
    if not config_file.exists():
        # A server configured outside its data directory (Debian's /etc/postgresql/...): a backup taken
        # with pg_basebackup holds no postgresql.conf; the scratch runs on defaults plus the overrides.
        config_file.write_text("# the harness's scratch: production's postgresql.conf was not in the backup\n")
        chown_to(config_file, run_as)
        result.overrides.append("postgresql.conf: absent from the backup (kept outside the data directory) -> an "
                                "empty one (the scratch runs on PostgreSQL's defaults and these overrides)")
    restored = _restored_settings(pg, data_dir, run_as)

    def put(name: str, value: str, why: str, before: str | None = None) -> None:
        result.settings[name] = value
        before = restored.get(name) if before is None else before
        if before is not None and before != value:
            result.overrides.append(f"{name}: {before!r} -> {value!r} ({why})")

    put("listen_addresses", "127.0.0.1", "a scratch listens on loopback only")
    put("port", str(port), "its own free port")
    put("unix_socket_directories", str(socket_dir), "a private socket directory of the run")
    put("unix_socket_permissions", "0700", "only the harness reaches the scratch")
    put("data_directory", str(data_dir), "the restored copy, never production's directory")
    put("hba_file", str(hba_file), "only the harness's own connections")
    put("ident_file", str(ident_file), "only the harness's own connections")
    for name, value, why in NEUTRAL:
        put(name, value, why)
    if pg.major >= ARCHIVE_LIBRARY_SINCE:
        put("archive_library", "", "a scratch must never archive into the production archive")
    if pg.major <= PROMOTE_TRIGGER_UNTIL:
        put("promote_trigger_file", "", "production's trigger files are not watched here")
    restored_buffers = _kilobytes(restored.get("shared_buffers", ""))
    if restored_buffers > SMALL_SHARED_BUFFERS_KB:
        put("shared_buffers", "128MB", "sized for production's machine", before=f"{restored_buffers // 1024}MB")
    if pg.major <= STATS_TEMP_UNTIL:
        stats_temp = socket_dir.parent / "stats_temp"
        stats_temp.mkdir(mode=0o700, exist_ok=True)
        chown_to(stats_temp, run_as)
        put("stats_temp_directory", str(stats_temp), "production's directory is not the scratch's")
    installed = installed_libraries(pg)
    for name in PRELOADS:
        wanted = [lib.strip() for lib in restored.get(name, "").split(",") if lib.strip()]
        autonomous = [lib for lib in wanted if _library_name(lib) in AUTONOMOUS]
        missing = [lib for lib in wanted if _library_name(lib) not in installed and lib not in autonomous]
        kept = [lib for lib in wanted if lib not in autonomous and lib not in missing]
        if kept != wanted:
            why = "; ".join(part for part in (f"not installed here: {', '.join(missing)}" if missing else "",
                                              f"acts on its own (jobs, replication): {', '.join(autonomous)}"
                                              if autonomous else "") if part)
            put(name, ",".join(kept), why)
    removed = _remove_replication_slots(data_dir)
    if removed:
        result.overrides.append(f"replication slots removed from the restore: {', '.join(removed)} "
                                "(a scratch must not keep WAL for production's clients)")
    return result


def write_private_hba(hba_file: Path, ident_file: Path) -> None:
    """Connections only over the run's private socket directory (0700, the server user's): trust there,
    nothing over TCP."""
    hba_file.write_text("# the harness's scratch: the private socket only\n"
                        "local   all   all                  trust\n"
                        "host    all   all   0.0.0.0/0      reject\n"
                        "host    all   all   ::/0           reject\n")
    ident_file.write_text("")


def installed_libraries(pg: PgBin) -> set[str]:
    """Shared libraries (by name, without .so) of this PostgreSQL's library directory."""
    names: set[str] = set()
    for directory in _library_dirs(pg):
        names.update(path.stem for path in directory.glob("*.so"))
    return names


def _library_dirs(pg: PgBin) -> list[Path]:
    pg_config = pg.bindir / "pg_config"
    if pg_config.exists():
        done = run([pg_config, "--pkglibdir"], timeout=30, check=False)
        if done.returncode == 0 and done.stdout.strip():
            return [Path(done.stdout.strip())]
    return [d for d in (pg.bindir.parent / "lib", pg.bindir.parent / "lib" / "postgresql") if d.is_dir()]


def _library_name(entry: str) -> str:
    # '$libdir/pg_stat_statements', 'pg_stat_statements', '/opt/x/auto_explain.so' -> the file's stem
    return Path(entry.strip().strip("'\"")).name.removesuffix(".so")


WANTED = ("shared_buffers", "listen_addresses", "port", "unix_socket_directories", "data_directory", "hba_file",
          "ident_file", *[name for name, _, _ in NEUTRAL], "archive_library", "promote_trigger_file",
          "stats_temp_directory", *PRELOADS)


def _restored_settings(pg: PgBin, data_dir: Path, run_as: RunAs) -> dict[str, str]:
    """What the restored configuration files set, as the server itself reads them (``postgres -C``,
    which evaluates includes and postgresql.auto.conf without starting anything)."""
    values = {}
    for name in WANTED:
        done = run([pg.tool("postgres"), "-D", data_dir, "-C", name], run_as=run_as, timeout=30, check=False)
        if done.returncode == 0:
            values[name] = done.stdout.strip()
    return values


def _kilobytes(value: str) -> int:
    # postgres -C prints shared_buffers in its unit (8kB pages) or with a unit suffix: normalize
    match = re.fullmatch(r"\s*(\d+)\s*(kB|MB|GB|TB)?\s*", value or "")
    if not match:
        return 0
    number, unit = int(match.group(1)), match.group(2)
    if unit is None:
        return number * 8  # pages of 8 kB
    return number * {"kB": 1, "MB": 1024, "GB": 1024 ** 2, "TB": 1024 ** 3}[unit]


def _remove_replication_slots(data_dir: Path) -> list[str]:
    slots = data_dir / "pg_replslot"
    removed = []
    if slots.is_dir():
        for slot in sorted(slots.iterdir()):
            shutil.rmtree(slot, ignore_errors=True)
            removed.append(slot.name)
    return removed


class ForeignScratch(PostgresServer):
    """A scratch server on a directory restored from a production backup: started harmless, reached
    over a socket in a private directory as the cluster's bootstrap superuser."""

    def __init__(self, name: str, pg: PgBin, home: Path, port: int, run_as, roles: list[str]):
        sockets = home / "sockets"
        super().__init__(name, pg, home / "data", port, sockets, None, run_as)
        self.conn = Connection(port, None, user="postgres", host=str(sockets))
        self.home = home
        self.roles = roles
        self.overrides: list[str] = []

    def recover_options(self, backup: Backup) -> tuple[str, ...]:
        """Tablespaces go to directories of the run, never to production's paths."""
        options = []
        for space in backup.raw.get("tablespaces") or []:
            name = space.get("name") if isinstance(space, dict) else None
            if name:
                location = self.home / "tablespaces" / name
                location.mkdir(parents=True, exist_ok=True)
                chown_to(location, self.run_as)
                options += ["--tablespace", f"{name}:{location}"]
        return tuple(options)

    def adopt_restored_files(self) -> None:
        """The data dir and the tablespaces mapped into the run go to the server user."""
        super().adopt_restored_files()
        spaces = self.home / "tablespaces"
        if spaces.is_dir():
            chown_to(spaces, self.run_as, recursive=True)

    def start(self, extra_options: dict | None = None, timeout: float = 60) -> None:
        hba, ident = self.home / "pg_hba.conf", self.home / "pg_ident.conf"
        write_private_hba(hba, ident)
        chown_to(hba, self.run_as)
        chown_to(ident, self.run_as)
        safe = neutralize(self.pg, self.data_dir, self.run_as, self.socket_dir, self.port, hba, ident)
        self.overrides = safe.overrides
        super().start({**(extra_options or {}), **safe.settings}, timeout=timeout)
        self.find_superuser(self.roles)

    def find_superuser(self, candidates: list[str]) -> str:
        """Connect as the cluster's bootstrap superuser (oid 10), whatever production named it."""
        import psycopg

        for user in dict.fromkeys([*candidates, "postgres"]):
            try:
                with Connection(self.port, None, user=user, host=str(self.socket_dir)).connect() as conn:
                    name = conn.execute("SELECT rolname FROM pg_roles WHERE oid = 10").fetchone()[0]
            except psycopg.OperationalError:
                continue
            self.conn = Connection(self.port, None, user=name, host=str(self.socket_dir))
            return name
        raise SetupError(f"No role to connect to the restored cluster as (tried {', '.join(candidates)}).",
                         "The backup's roles differ from the Barman configuration's users.")
