"""The drill a post-backup hook runs: exactly Barman's new backup, on --stack existing, in its own process.

``pgbv-nightly --stack existing --barman-config $BARMAN_CONFIGURATION --barman-server $BARMAN_SERVER
--backups $BARMAN_BACKUP_ID`` plus the drill settings given on the hook's command line and any pytest
options after its ``--``. The drill process inherits the server's lock, so the lock is held for as
long as the drill runs, whatever happens to the hook.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import harness
from harness.barman.readonly import ExistingBarman
from harness.config import SETTINGS, ConfigError, DrillConfig
from harness.errors import CommandFailed
from harness.hook.event import WAITING, BackupEvent
from harness.hook.lock import safe_name
from harness.postgres.binaries import find_barman
from harness.process.commands import stop_process_group
from harness.process.progress import QUIET
from harness.process.redact import redact_file
from harness.process.waiting import wait_until

DRILLS = Path(harness.__file__).resolve().parent / "plugin" / "existing_drills.py"
FROM_BARMAN = ("stack", "barman_config", "barman_server", "backups")   # the hook takes these from Barman's call
PATHS = ("workdir", "metrics_file", "history", "pg_bindir")   # would resolve against the drill's cwd, not Barman's
STOP_GRACE = 120  # seconds a drill past its deadline gets to tear its scratch servers down


def given_settings(namespace) -> list[str]:
    """The drill settings given on the hook's command line, as flags again (reports dir excepted)."""
    argv = []
    for setting in SETTINGS:
        value = getattr(namespace, setting.name, None)
        if value is None or setting.name == "reports_dir":
            continue
        if setting.name in FROM_BARMAN:
            raise ConfigError(f"{setting.flag} cannot be given to the post-backup hook: it drills the backup Barman "
                              "names in its call (BARMAN_CONFIGURATION, BARMAN_SERVER, BARMAN_BACKUP_ID).",
                              f"Remove {setting.flag} from the hook's line in barman.conf.")
        if setting.boolean:
            argv.append(setting.flag if value else "--no-" + setting.flag[2:])
        else:
            argv += [setting.flag, str(value)]
    return argv


def require_absolute_paths(config: DrillConfig) -> None:
    """Refuse a relative path among the drill's settings (from the hook's line or a DRILL_* variable)."""
    for setting in SETTINGS:
        value = getattr(config, setting.name, None) if setting.name in PATHS else None
        if value is not None and not Path(value).is_absolute():
            given = setting.flag + (f" (or {setting.env})" if setting.env else "")
            raise ConfigError(f"The post-backup hook needs an absolute {given}, given: {value}. Barman starts hooks "
                              "in whatever directory it was started in, and the drill runs in <reports "
                              "dir>/post-backup: a relative path would name neither.",
                              f"Give {setting.flag} as an absolute path on the hook's line in barman.conf.")


def junit_path(reports_dir: Path, event: BackupEvent) -> Path:
    return reports_dir / f"junit-{safe_name(event.server)}-{safe_name(event.backup_id)}.xml"


def drill_argv(event: BackupEvent, reports_dir: Path, settings: list[str], extra: list[str]) -> list[str]:
    # The drills file named explicitly and an empty ini file: nothing is collected from wherever the
    # hook happens to run, and no project's pytest configuration applies.
    return [sys.executable, "-m", "harness.cli.nightly", str(DRILLS), "-c", "/dev/null", "--rootdir", str(reports_dir),
            "-p", "no:cacheprovider", "--junitxml", str(junit_path(reports_dir, event)),
            "--stack", "existing", "--barman-config", event.configuration, "--barman-server", event.server,
            "--backups", event.backup_id, "--reports-dir", str(reports_dir), *settings, *extra]


def catalogue_status(event: BackupEvent) -> str:
    """The backup's status in Barman's catalogue now (read-only: `barman list-backups`)."""
    barman = ExistingBarman(find_barman(), Path(event.configuration), event.server, QUIET,
                            allow_canary=False)
    listed = barman.json("list-backups", event.server).get(event.server, [])
    return next((str(item.get("status")) for item in listed
                 if isinstance(item, dict) and item.get("backup_id") == event.backup_id), "not in the catalogue")


def wait_while_waiting_for_wals(event: BackupEvent, timeout: float, interval: float = 3.0) -> str:
    """The backup's status once it is no longer WAITING_FOR_WALS; WaitTimedOut after ``timeout``."""
    def settled():
        status = catalogue_status(event)
        return status if status != WAITING else None
    return wait_until(settled, what=f"Barman to mark backup {event.backup_id} DONE (it is {WAITING})",
                      timeout=timeout, interval=interval, tolerate=(CommandFailed,))


def run_drill(argv: list[str], output: Path, timeout: float, cwd: Path, keep_fds: tuple[int, ...] = ()) -> int | None:
    """Run the drill with its console output appended to ``output``; its exit code, None past ``timeout``.
    The output is the drill's raw console: it is redacted once the drill has ended, however it ended."""
    try:
        return _run_drill(argv, output, timeout, cwd, keep_fds)
    finally:
        redact_file(output, [])


def _run_drill(argv: list[str], output: Path, timeout: float, cwd: Path, keep_fds: tuple[int, ...]) -> int | None:
    with open(output, "ab") as out:
        out.write(f"\n=== {' '.join(argv)}\n".encode())
        out.flush()
        # Its own session: a drill past its deadline is stopped with everything it started.
        proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, cwd=cwd,
                                start_new_session=True, pass_fds=keep_fds)
    try:
        return proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        stop_process_group(proc, timeout=STOP_GRACE)  # SIGTERM first: the drill tears its stack down
        return None
    except BaseException:
        stop_process_group(proc, timeout=STOP_GRACE)
        raise


def summary_line(output: Path) -> str:
    """pgbv-nightly's last line ("nightly: OK: VERIFIED: ..."), else the output's last line."""
    try:
        lines = [line for line in output.read_text(errors="replace").splitlines() if line.strip()]
    except OSError:
        return ""
    return next((line for line in reversed(lines) if line.startswith("nightly: ")), lines[-1] if lines else "")
