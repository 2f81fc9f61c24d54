"""The existing stack: a Barman this machine already runs, whose real backups the harness drills.

Nothing of that Barman is started, stopped or changed: the driver refuses every Barman command but
the read-only ones and `recover` (into a scratch directory of this run); `switch-wal` only for the
opt-in canary. Scratch instances restored from its backups start with production's dangerous settings
overridden (harness.postgres.foreign) and are reached over a private socket only.
"""

from __future__ import annotations

import configparser
import shutil
import time
from pathlib import Path

from harness.barman.catalog import Backup
from harness.barman.readonly import ExistingBarman
from harness.errors import HarnessError, SetupError
from harness.postgres import versions as pgversions
from harness.postgres.binaries import PgBin, find_barman, find_pg_bindir, require_rsync, tool_version
from harness.postgres.foreign import ForeignScratch
from harness.process.accounts import chown_to, server_runner
from harness.process.ports import free_port
from harness.stacks.base import StackBase

BARMAN_CONFIG_SEARCH = ("~/.barman.conf", "/etc/barman.conf", "/etc/barman/barman.conf")
ROOM_FACTOR = 1.2
IN_PROGRESS = ("STARTED", "WAITING_FOR_WALS", "SYNCING")  # a restore needs the backup's size plus the WAL it replays: a margin on top


class ExistingStack(StackBase):
    """The user's Barman, one server section of it; scratch servers of this run restore its backups."""

    kind = "existing"

    def __init__(self, config, server: str | None = None):
        super().__init__(config)
        self.server_name = server or config.barman_server
        self.config_path: Path | None = None
        self.pg: PgBin | None = None
        self.run_as = None
        self.server_section: dict = {}
        self.wal_from: dict[str, int] = {}   # backup id -> bytes of WAL Barman holds from it on

    # -- bring up: nothing is started, only read ---------------------------------------------------

    def _bring_up(self) -> None:
        self.config_path = find_barman_config(self.config.barman_config)
        servers = configured_servers(self.config_path)
        if not self.server_name or self.server_name == "all":
            raise SetupError("No Barman server named for --stack existing.",
                             f"Name one with --barman-server (this configuration has: {', '.join(servers) or 'none'}).")
        if self.server_name not in servers:
            raise SetupError(f"The Barman configuration {self.config_path} has no server '{self.server_name}'.",
                             f"Its servers: {', '.join(servers) or 'none'} (--barman-server NAME, or all).")
        require_rsync()
        self.barman = ExistingBarman(find_barman(), self.config_path, self.server_name, self.progress,
                                     allow_canary=self.config.canary)
        self.server_section = self.barman.use_directories_of_configuration()
        self.run_as = server_runner(self.config.server_user)
        self._make_run_dir(self.run_as)

    # -- what to drill ----------------------------------------------------------------------------

    def chosen_backups(self) -> list[Backup]:
        """The backups ``--backups`` names, oldest first; a Barman without any is no verdict."""
        listed = sorted((item for item in self.barman.json("list-backups", self.server_name).get(self.server_name, [])
                         if isinstance(item, dict) and item.get("backup_id")), key=lambda item: item["backup_id"])
        done = [item for item in listed if item.get("status") == "DONE"]
        if not done:
            raise SetupError(f"Barman server '{self.server_name}' has no finished backup to drill "
                             f"({len(listed)} listed, none DONE).", "Take a backup first (barman backup).")
        # WAL Barman holds from each backup on (its own and every later backup's): a restore to the end
        # copies all of it, which the room check must count.
        later = 0
        for item in reversed(listed):
            later += int(item.get("wal_size_bytes") or 0)
            self.wal_from[item["backup_id"]] = later
        chosen = select(done, self.config.backups)
        # The newest entry of the catalogue, when it is neither DONE nor still in progress, is a backup
        # that was meant to exist and cannot be restored (`barman check` stays OK): it is drilled, and red.
        newest = listed[-1]
        if newest.get("status") not in ("DONE", *IN_PROGRESS) and self.config.backups in (("latest",), ("all",)):
            chosen = [*([] if self.config.backups == ("latest",) else chosen), newest]
        return [self.catalogued(item["backup_id"], item.get("status", "")) for item in chosen]

    def catalogued(self, backup_id: str, status: str = "") -> Backup:
        """Barman's record of a backup; for one Barman cannot show, what is known: its id and status."""
        try:
            backup = self.barman.show_backup(backup_id)
        except HarnessError as exc:
            listed = status or next((item.get("status", "") for item in
                                     self.barman.json("list-backups", self.server_name).get(self.server_name, [])
                                     if isinstance(item, dict) and item.get("backup_id") == backup_id), "gone")
            if listed in ("DONE", "gone"):  # Barman's trouble, or retention removed it meanwhile: not a red
                raise SetupError(f"Barman cannot show backup {backup_id} of '{self.server_name}' ({listed}).",
                                 exc.fix, exc.details or exc.cause) from None
            return Backup(backup_id, "", "", "", "", 0, raw={"status": listed})
        if status and not backup.raw.get("status"):
            backup.raw["status"] = status
        return backup

    def binaries_for(self, backup: Backup) -> PgBin:
        """The PostgreSQL binaries of the backup's major version (--pg-bindir, else the installed one)."""
        version = int(backup.raw.get("postgresql_version") or 0)
        major = version // 10000 if version >= 100000 else version // 100
        if self.config.pg_bindir:
            pg = find_pg_bindir(self.config.pg_bindir)
            if major and pg.major != major:
                raise SetupError(f"Backup {backup.backup_id} is of PostgreSQL {major}, but --pg-bindir names "
                                 f"PostgreSQL {pg.version} ({pg.bindir}).",
                                 f"A backup restores only with binaries of its own major: give PostgreSQL {major}'s.")
            return pg
        found = pgversions.by_major(major) if major else None
        if found is None:
            raise SetupError(f"Backup {backup.backup_id} is of PostgreSQL {major or 'an unknown version'}, and no "
                             f"PostgreSQL {major} is installed here (found: {pgversions.describe_all()}).",
                             f"Install its server binaries ({pgversions.how_to_get(major)}) or name them with "
                             "--pg-bindir.")
        return found.pg

    def require_room(self, backup: Backup, to_the_end: bool = False) -> None:
        """Before any copy: the run dir's file system must hold the restore (and, restoring to the end of
        the archive, every WAL segment after the backup)."""
        need = int(backup.raw.get("base_backup_information", {}).get("backup_size_with_wals_bytes") or backup.size_bytes)
        if to_the_end:
            need += self.wal_from.get(backup.backup_id, 0)
        free = shutil.disk_usage(self.run_dir).free
        if need * ROOM_FACTOR > free:
            raise SetupError(f"Not enough free space to restore backup {backup.backup_id}: it needs about "
                             f"{need * ROOM_FACTOR / 2**30:.1f} GiB, {self.run_dir} has {free / 2**30:.1f} GiB free.",
                             "Free space there or choose a roomier --workdir.")

    # -- the contract's drill side ---------------------------------------------------------------

    def scratch_server(self, label: str, pg: PgBin | None = None) -> ForeignScratch:
        self.pg = pg or self.pg
        if self.pg is None:
            raise SetupError("No PostgreSQL binaries chosen for the scratch server.")
        # A short directory name: the scratch's socket path must stay within the kernel's 107 bytes.
        home = self.run_dir / self._next_scratch_name("")
        home.mkdir()
        chown_to(home, self.run_as)
        server = ForeignScratch(home.name, self.pg, home, free_port(), self.run_as, self.connect_as())
        for directory in (server.data_dir, server.socket_dir):
            directory.mkdir(mode=0o700)
            chown_to(directory, self.run_as)
        self.ownership.own_postgres(server.data_dir, f"scratch server {server.name}")
        self.cleanups.add(f"stop {server.name}", lambda: server.stop(mode="immediate"))
        return server

    def canary_barman(self, canary) -> ExistingBarman:
        """This server's Barman, allowed `switch-wal` and nudging WAL through the canary's connection."""
        barman = ExistingBarman(self.barman.executable, self.config_path, self.server_name, self.progress,
                                allow_canary=True, wal_source=canary)
        barman.use_directories_of_configuration()
        return barman

    def production_dsn(self) -> str:
        """Where the canary writes: --canary-dsn, else the Barman server's own conninfo."""
        dsn = self.config.canary_dsn or str(self.server_section.get("conninfo") or "")
        if not dsn:
            raise SetupError(f"Barman server '{self.server_name}' has no conninfo for the canary to connect with.",
                             "Give one with --canary-dsn.")
        return dsn

    def connect_as(self) -> list[str]:
        """Role names to try on a restored cluster: the users Barman connects to production as."""
        names = []
        for key in ("conninfo", "streaming_conninfo"):
            for word in str(self.server_section.get(key) or "").split():
                if word.startswith("user="):
                    names.append(word.split("=", 1)[1].strip("'\""))
        return names

    def discard_scratch(self, server: ForeignScratch) -> None:
        server.stop(mode="immediate")
        shutil.rmtree(server.home, ignore_errors=True)

    def log_files(self) -> list[Path]:
        return [self.barman.log_path] if self.barman is not None and self.barman.log_path.exists() else []

    def _read_versions(self) -> dict[str, str]:
        return {"postgresql": self.pg.version if self.pg else "unknown",
                "barman": tool_version([self.barman.executable, "--version"]) if self.barman else "unknown"}


def find_barman_config(given: str | None) -> Path:
    """--barman-config, else Barman's own search order; unreadable or absent is no verdict."""
    candidates = [Path(given)] if given else [Path(p).expanduser() for p in BARMAN_CONFIG_SEARCH]
    for path in candidates:
        if path.is_file():
            try:
                path.read_text()
            except OSError as exc:
                raise SetupError(f"The Barman configuration {path} cannot be read: {exc.strerror}.",
                                 "Run as a user that can read it (usually barman or root).") from None
            return path
    raise SetupError(f"No Barman configuration found ({', '.join(map(str, candidates))}).",
                     "Name it with --barman-config (or DRILL_BARMAN_CONFIG).")


def configured_servers(config_path: Path) -> list[str]:
    """Server sections of a Barman configuration, including its configuration_files_directory."""
    parser = configparser.ConfigParser(interpolation=None, strict=False)
    try:
        parser.read(config_path)
    except configparser.Error as exc:
        raise SetupError(f"The Barman configuration {config_path} does not parse: {exc}.") from None
    servers = [name for name in parser.sections() if name != "barman"]
    extra = parser.get("barman", "configuration_files_directory", fallback="")
    if extra and Path(extra).is_dir():
        for path in sorted(Path(extra).glob("*.conf")):
            more = configparser.ConfigParser(interpolation=None, strict=False)
            try:
                more.read(path)
            except configparser.Error:
                continue
            servers += [name for name in more.sections() if name != "barman"]
    return list(dict.fromkeys(servers))


def select(done: list[dict], chosen: tuple[str, ...]) -> list[dict]:
    """Apply --backups to a server's DONE backups (oldest first)."""
    if chosen == ("latest",):
        return done[-1:]
    if chosen == ("all",):
        return done
    if chosen and chosen[0] == "newer-than":
        horizon = time.time() - float(chosen[1])
        picked = [item for item in done if float(item.get("end_time_timestamp") or 0) >= horizon]
        if not picked:
            raise SetupError(f"No backup finished within the last {float(chosen[1]) / 3600:.1f} h "
                             f"(newest: {done[-1]['backup_id']}).", "Widen --backups newer-than=... .")
        return picked
    by_id = {item["backup_id"]: item for item in done}
    unknown = [backup_id for backup_id in chosen if backup_id not in by_id]
    if unknown:
        raise SetupError(f"No finished backup with id {', '.join(unknown)} on this server.",
                         f"Its finished backups: {', '.join(by_id) or 'none'}.")
    return [by_id[backup_id] for backup_id in chosen]
