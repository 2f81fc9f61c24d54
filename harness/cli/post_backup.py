"""pgbv-post-backup: a drill of every new backup, from Barman's post-backup hook.

In barman.conf, in a server's section (Barman runs the line through a shell):

    post_backup_retry_script = pgbv-post-backup --reports-dir /var/lib/pgbv [drill options] [-- pytest options]

It reads BARMAN_SERVER, BARMAN_BACKUP_ID, BARMAN_STATUS, BARMAN_PHASE and BARMAN_CONFIGURATION, and
drills exactly that backup on --stack existing. By default the drill runs in the background and the
hook returns at once (a backup should not wait for its drill); --wait runs it in the foreground.
A backup still WAITING_FOR_WALS is drilled once Barman marks it DONE (up to --wal-timeout); a FAILED
one is not drilled. One drill per server at a time: the next waits its turn (up to --queue-timeout).
What it did goes to <reports dir>/post-backup/<server>.log. --reports-dir and the drill's paths
(--workdir, --metrics-file, --history, --pg-bindir; also as DRILL_* variables) must be absolute.

Exit codes (Barman retries a retry script until it exits 0, 62 or 63; this one never exits anything else):
  0   the drill was started in the background; with --wait: verified; or there is nothing to drill
  62  with --wait: the drill was red or had no verdict; or the hook could not act (bad options, the
      backup never became DONE, another drill held the server past --queue-timeout, any crash).
      Barman logs a warning and goes on: the backup stays as it is (DONE).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import traceback
from dataclasses import dataclass, replace
from pathlib import Path

from harness.config import ConfigError, add_arguments, from_arguments, parse_duration
from harness.errors import HarnessError
from harness.hook.drill import (
    drill_argv,
    given_settings,
    junit_path,
    require_absolute_paths,
    run_drill,
    summary_line,
    wait_while_waiting_for_wals,
)
from harness.hook.event import (
    ABORT_CONTINUE,
    EXIT_OK,
    WAITING,
    BackupEvent,
    decide,
    exit_code_of_drill,
    verdict_of_drill,
)
from harness.hook.lock import LockBusy, ServerLock, lock_path, safe_name
from harness.hook.log import HookLog
from harness.process.redact import redact
from harness.process.waiting import WaitTimedOut

STATE = "post-backup"   # under the reports dir: the hook's log, the lock, each drill's console output


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # argparse would exit 2, which Barman would retry forever
        raise ConfigError(f"{message[:1].upper()}{message[1:]}.", "See pgbv-post-backup --help.")


def _duration(text: str) -> float:
    if str(text).strip() in ("0", "0s"):
        return 0.0
    try:
        return parse_duration(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="pgbv-post-backup", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    hook = parser.add_argument_group("the hook")
    hook.add_argument("--wait", action="store_true",
                      help="run the drill in the foreground: Barman's backup command waits for its verdict")
    hook.add_argument("--wal-timeout", type=_duration, default=3600.0,
                      help="how long to wait for a WAITING_FOR_WALS backup to become DONE (default 1h; 0: skip it)")
    hook.add_argument("--queue-timeout", type=_duration, default=7200.0,
                      help="how long to wait while another drill of the server runs (default 2h; 0: skip)")
    hook.add_argument("--drill-timeout", type=_duration, default=14400.0,
                      help="deadline of the drill itself; past it the drill is stopped, no verdict (default 4h)")
    hook.add_argument("--detached-child", action="store_true", help=argparse.SUPPRESS)
    add_arguments(parser.add_argument_group("drill options (passed on to the drill)"))
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        return run(argv, os.environ)
    except SystemExit as exc:  # --help
        return EXIT_OK if exc.code in (0, None) else ABORT_CONTINUE
    except HarnessError as exc:
        print(f"pgbv-post-backup: exit 62, no drill: {exc.render()}", file=sys.stderr)
        return ABORT_CONTINUE
    except BaseException:  # anything else: still an exit Barman does not retry
        print(f"pgbv-post-backup: exit 62, the hook crashed:\n{redact(traceback.format_exc(), [])}", file=sys.stderr)
        return ABORT_CONTINUE


@dataclass(frozen=True)
class Call:
    """One call of the hook: its command line split into its own options and pytest's, Barman's facts."""

    argv: list[str]
    options: argparse.Namespace
    extra: list[str]
    event: BackupEvent
    env: dict
    reports: Path

    @property
    def state(self) -> Path:
        return self.reports / STATE


def run(argv: list[str], env) -> int:
    own, extra = (argv[:argv.index("--")], argv[argv.index("--") + 1:]) if "--" in argv else (argv, [])
    options = parser().parse_args(own)
    event = BackupEvent.from_env(env)
    if event.configuration:  # `barman -c FILE` may name it relative to where Barman runs; the drill runs elsewhere
        event = replace(event, configuration=os.path.abspath(os.path.expanduser(event.configuration)))
    call = Call(argv, options, extra, event, {**env, "BARMAN_CONFIGURATION": event.configuration},
                _reports_dir(options, env))
    log = HookLog(call.state / f"{safe_name(event.server or 'no-server')}.log", event, echo=not options.detached_child)
    try:
        return _act(call, log)
    except HarnessError as exc:
        return log.end(ABORT_CONTINUE, f"no drill: {exc.render()}")
    except BaseException:
        return log.end(ABORT_CONTINUE, f"the hook crashed: {traceback.format_exc()}")


def _reports_dir(options, env) -> Path:
    given = options.reports_dir or env.get("DRILL_REPORTS_DIR")
    if not given or not Path(given).is_absolute():
        raise ConfigError("The post-backup hook needs an absolute --reports-dir (or DRILL_REPORTS_DIR): Barman runs "
                          f"hooks from whatever directory it was started in (given: {given or 'none'}).",
                          "Add --reports-dir /var/lib/pgbv (a directory the Barman user can write) to the hook's line.")
    return Path(given)


def _act(call: Call, log: HookLog) -> int:
    options, event = call.options, call.event
    log.say(("detached drill process: " if options.detached_child else "called: ") + event.describe())
    # A bad hook line is said at once, whatever the backup (a FAILED one, the pre phase): not only when
    # a backup is drilled at last.
    require_absolute_paths(from_arguments(options))
    settings = given_settings(options)
    decision = decide(event)
    if decision.action in ("ignore", "refuse"):
        return log.end(decision.exit_code, decision.reason)
    if not options.wait:
        pid = _detach(call, log.path)
        return log.end(EXIT_OK, f"{decision.reason} Its drill runs in the background (pid {pid}); the verdict "
                                 f"follows in {log.path}.")
    if decision.action == "wait":
        if options.wal_timeout <= 0:
            return log.end(ABORT_CONTINUE, f"skipped, no drill: backup {event.backup_id} is {WAITING} and "
                                           "--wal-timeout is 0.")
        log.say(f"waiting up to {options.wal_timeout:.0f} s for Barman to mark it DONE (barman cron does, once the "
                "backup's last WAL segment is archived" + (")" if options.detached_child else "; Barman's own check "
                "comes only after this hook returns: take backups with `barman backup --wait`, or leave out --wait)"))
        try:
            status = wait_while_waiting_for_wals(event, options.wal_timeout)
        except WaitTimedOut as exc:
            return log.end(ABORT_CONTINUE, f"skipped, no drill: {exc.cause} Is `barman cron` running and WAL "
                                           f"arriving? Drill it later with pgbv-nightly --backups {event.backup_id}.")
        if status != "DONE":
            return log.end(EXIT_OK, f"backup {event.backup_id} is now {status}: nothing to drill.")
        log.say(f"backup {event.backup_id} is now DONE")
    return _drill_under_lock(call, settings, log)


def _drill_under_lock(call: Call, settings: list[str], log: HookLog) -> int:
    event, options = call.event, call.options
    with ServerLock(lock_path(call.state, event.server)) as lock:
        holder = f"drill of backup {event.backup_id}"
        if not lock.try_acquire(holder):
            log.say(f"queued: another drill of server {event.server} runs ({lock.holder()}); waiting up to "
                    f"{options.queue_timeout:.0f} s")
            try:
                lock.acquire(holder, options.queue_timeout)
            except LockBusy as exc:
                return log.end(ABORT_CONTINUE, f"skipped, no drill: {exc.cause} Raise --queue-timeout, or drill it "
                                               f"later with pgbv-nightly --backups {event.backup_id}.")
        argv = drill_argv(event, call.reports, settings, call.extra)
        output = call.state / f"{safe_name(event.server)}-{safe_name(event.backup_id)}.out"
        log.say(f"drilling (lock {lock.path}, deadline {options.drill_timeout:.0f} s): {' '.join(argv)}")
        returncode = run_drill(argv, output, options.drill_timeout, cwd=call.state, keep_fds=(lock.fd,))
    return log.end(exit_code_of_drill(returncode),
                   f"{verdict_of_drill(returncode)}: {summary_line(output) or 'no summary'}; JUnit "
                   f"{junit_path(call.reports, event)}; console output {output}")


def _detach(call: Call, log_path: Path) -> int:
    """The same hook with --wait, in its own session, output into the hook's log, nothing inherited:
    Barman reads the hook's output until it closes, so the child must hold none of it."""
    child = [sys.executable, "-m", "harness.cli.post_backup", "--wait", "--detached-child", *call.argv]
    with open(log_path, "ab") as log:
        proc = subprocess.Popen(child, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, cwd=call.state,
                                env=call.env, start_new_session=True, close_fds=True)
    return proc.pid


if __name__ == "__main__":
    sys.exit(main())
