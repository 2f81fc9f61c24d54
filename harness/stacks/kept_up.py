"""A stack kept up for manual work: brought up, left running past this process, shown.

``keep_up`` brings up the local or compose stack as a drill would (its run directory on disk, under
/var/tmp unless --workdir names one: it may run for weeks, and RAM is no place for that), adds an
application login role (rights on ``books`` and nothing more), writes the env file and the state
file, and then detaches: no cleanup runs and the watchdog is released. If anything fails before
that, everything started is removed; what could not be (a cleanup failed, the watchdog could not
reap it) is recorded as a failed `up`, which `pgbv-stack down` (kept_up_down) then removes: no later
`up` trips over it (a kept-up compose stack's containers take fixed names). One `up` or `down` per
state directory at a time: each holds the state directory's lock (``exclusive``) from its first
look at the record to its last change.
"""

from __future__ import annotations

import datetime
import os
import secrets
import subprocess
from pathlib import Path

import psycopg
from psycopg import sql

from harness.config import DrillConfig
from harness.errors import HarnessError, SetupError
from harness.postgres.roles import create_login_role
from harness.process.cleanup import CleanupFailed
from harness.process.redact import redact
from harness.stacks.kept_up_down import answer, leftovers
from harness.stacks.kept_up_state import KeptUpStack, exclusive, load, save, state_path, write_secrets
from harness.stacks.workdir import kept_up_workdir

SERVER = "postgres"             # the Barman server's name in a kept-up stack (unless --barman-server)
APP_ROLE = "books_app"
DB_NAME = "books_db"
KINDS = ("local", "compose")


class AlreadyUp(SetupError):
    """A stack (or what a failed `up` left) is already recorded in this state directory."""


def keep_up(config: DrillConfig) -> KeptUpStack:
    """Bring the stack up and leave it running; return its record (already saved)."""
    path = state_path(config.state_dir)
    with exclusive(path, f"pgbv-stack up --stack {config.stack}"):
        return _keep_up(config, path)


def _keep_up(config: DrillConfig, path: Path) -> KeptUpStack:
    found = load(path)
    if found is not None and found.failed_up:
        raise AlreadyUp(f"Not taken down yet: {found.where()} (recorded in {path}).",
                        "Nothing was started. Take it down first (`pgbv-stack down`), then run `up` again.")
    if found is not None:
        gone = "" if os.path.isdir(found.run_dir) else " Its run directory is gone (a reboot, a killed `up`?)."
        raise AlreadyUp(f"A stack is already up: {found.where()} (recorded in {path}).{gone}",
                        "Nothing was started. Use it (`pgbv-stack env`, `pgbv-stack status`) or take it down "
                        "first (`pgbv-stack down`, which also clears a record of a stack that is gone).")
    if config.stack not in KINDS:
        raise SetupError(f"pgbv-stack keeps a local or a compose stack up, not {config.stack!r}.",
                         "An existing Barman is already up: drill it with `pytest --stack existing`.")
    config = config.replace(barman_server=config.barman_server or SERVER, keep=False)
    workdir = None if config.workdir else kept_up_workdir()
    if workdir is not None:
        config = config.replace(workdir=workdir.path)
    password = secrets.token_urlsafe(18)
    if config.stack == "compose":
        from harness.stacks.compose import ComposeStack

        stack = ComposeStack(config, kept_up={"APP_DB_USER": APP_ROLE, "APP_DB_PASSWORD": password})
    else:
        from harness.stacks.local import LocalStack

        stack = LocalStack(config)
    if workdir is not None:
        stack.progress.say(f"run directory under {workdir.path}: {workdir.why} (--workdir to choose)")
    started = datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")
    try:
        stack.start()  # a failed start removes what it started
        create_app_role(stack.source.server.conn, APP_ROLE, password)
        state = _record(stack, started)
        try:
            write_secrets(state, password)
            state.entries = stack.ownership.entries
            save(state, path)
        except OSError as exc:
            raise SetupError(f"The kept-up stack's files could not be written: {exc.filename or path}: "
                             f"{exc.strerror or exc}.", "Everything `pgbv-stack up` had started is removed. Free "
                             "space there, or choose another --state-dir or --workdir, and run it again.") from None
        stack.detach()
    except BaseException as failure:
        path.unlink(missing_ok=True)
        _remove_failed_up(stack, path, started, failure)
        raise
    return state


class LeftByFailedUp(SetupError):
    """`up` failed and could not remove all it had started; what is left is recorded for `down`."""


def _remove_failed_up(stack, path: Path, started: str, failure: BaseException) -> None:
    """Remove what the failed `up` had started; raise LeftByFailedUp, having recorded it as a failed
    `up`, if anything is left even so (a cleanup that failed, and a watchdog that could not reap it)."""
    try:
        stack.close()   # after a failed start: already done (and a failed cleanup already said)
    except CleanupFailed as cleanup:  # the failure of `up` is the news; the cleanup's goes with it
        stack.progress.say(cleanup.render())
    if stack.run_dir is None:     # nothing was made yet (no directory, no server, no container)
        return
    cause = failure.cause if isinstance(failure, HarnessError) else str(failure) or type(failure).__name__
    if isinstance(failure, KeyboardInterrupt):
        cause = "`pgbv-stack up` was interrupted."
    record = KeptUpStack(stack.kind, str(stack.run_dir), started, {}, stack.config.barman_server or SERVER, "",
                         [], entries=stack.ownership.entries, compose=_compose_of(stack),
                         failed_up=" ".join(cause.split()))
    left = leftovers(record)
    if not left:
        return
    try:
        save(record, path)
        fix = (f"It is recorded in {path} as a failed `up`: `pgbv-stack down` removes what is left (`pgbv-stack "
               "status` shows it); then run `up` again.")
    except OSError as exc:
        fix = f"It could not be recorded ({exc.filename or path}: {exc.strerror or exc}): remove it by hand."
    raise LeftByFailedUp(f"{record.failed_up.rstrip('.')}. What `pgbv-stack up` had started could not all be "
                         f"removed: {'; '.join(left)}.", fix,
                         failure.details if isinstance(failure, HarnessError) else "") from failure


def create_app_role(conn, role: str, password: str) -> None:
    """An application's login role: read and write ``books`` (and its id sequence), nothing more."""
    try:
        with conn.connect("postgres") as admin:
            create_login_role(admin, role, password)
        with conn.connect(DB_NAME) as admin:
            admin.execute(sql.SQL("GRANT SELECT, INSERT, UPDATE, DELETE ON books TO {}").format(sql.Identifier(role)))
            admin.execute(sql.SQL("GRANT USAGE, SELECT ON SEQUENCE books_id_seq TO {}").format(sql.Identifier(role)))
    except psycopg.Error as exc:
        said = redact(" ".join(str(exc).split()), [password]) or type(exc).__name__
        raise SetupError(f"The application login role {role} could not be created on the stack's PostgreSQL "
                         f"(port {conn.port}): {said}.", "Everything `pgbv-stack up` had started is removed. Run it "
                         "again; if it fails the same way, a drill run with --keep (`pytest --stack local --keep`) "
                         "leaves the server's log to read.") from None


def _record(stack, started: str) -> KeptUpStack:
    db = {"host": "127.0.0.1", "port": stack.source.server.conn.port, "name": DB_NAME, "user": APP_ROLE}
    barman = stack.barman
    argv = ["docker", "exec", "barman", "barman"] if stack.kind == "compose" else barman.barman_argv()
    return KeptUpStack(stack.kind, str(stack.run_dir), started, db, barman.server, str(barman.config_path), argv,
                       compose=_compose_of(stack))


def _compose_of(stack) -> dict | None:
    """The compose project, and the command that reaches it, of a compose stack (None: local)."""
    plan = getattr(stack, "plan", None)
    if stack.kind != "compose" or plan is None:
        return None
    return {"project": plan.project, "argv": plan.argv(), "env_file": str(plan.env_file)}


# -- status ---------------------------------------------------------------------------------------

def status(state: KeptUpStack) -> tuple[bool, str]:
    """(healthy, report): servers, `barman check`, backups, WAL streaming; of a failed `up`, what is left."""
    parts = [f"stack: {state.where()}"]
    if state.failed_up:
        left = leftovers(state)
        return False, "\n\n".join([*parts, f"left of it: {'; '.join(left) if left else 'nothing any more'}",
                                    "`pgbv-stack down` removes it and clears the record."])
    healthy = True
    if state.compose:
        done = answer([*state.compose["argv"], "ps"])
        parts.append(_section("containers (docker-compose ps)", done))
    reachable, text = _server_status(state)
    healthy &= reachable
    parts.append(text)
    for title, args in (("barman check", ["check"]), ("backups (barman list-backup)", ["list-backup"]),
                        ("WAL streaming (barman replication-status)", ["replication-status"])):
        done = answer([*state.barman_argv, *args, state.barman_server])
        if args == ["check"]:
            healthy &= done.returncode == 0
        parts.append(_section(title, done))
    return healthy, "\n\n".join(parts)


def _server_status(state: KeptUpStack) -> tuple[bool, str]:
    db = state.db
    try:
        with psycopg.connect(host=db["host"], port=db["port"], dbname=db["name"], user=db["user"],
                             passfile=str(state.passfile), connect_timeout=5) as conn:
            version = conn.execute("SHOW server_version").fetchone()[0]
            rows = conn.execute("SELECT count(*) FROM books").fetchone()[0]
        return True, f"PostgreSQL {version}: accepting connections on {db['host']}:{db['port']}, books: {rows} rows"
    except psycopg.Error as exc:
        return False, f"PostgreSQL on {db['host']}:{db['port']}: NOT reachable as {db['user']}: {str(exc).strip()}"


def _section(title: str, done: subprocess.CompletedProcess) -> str:
    rc = "" if done.returncode == 0 else f" (exit {done.returncode})"
    return f"{title}{rc}:\n" + "\n".join("  " + line for line in done.stdout.rstrip().splitlines())
