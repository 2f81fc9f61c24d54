"""A stack kept up for manual work: brought up, left running past this process, shown, taken down.

``keep_up`` brings up the local or compose stack as a drill would (its run directory on disk, under
/var/tmp unless --workdir names one: it may run for weeks, and RAM is no place for that), adds an
application login role (rights on ``books`` and nothing more), writes the env file and the state
file, and then detaches: no cleanup runs and the watchdog is released. If anything fails before
that, everything started is removed. ``take_down`` removes what the record names: compose's own
`down -v` first, then the ownership entries the watchdog would have reaped (servers, processes
naming the run directory, the compose project by label, the run directory); the record goes only
when nothing is left. One `up` or `down` per state directory at a time: each holds the state
directory's lock (``exclusive``) from its first look at the record to its last change.
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
from harness.process.cleanup import CleanupFailed
from harness.process.commands import run
from harness.process.reaping import processes_naming, reap
from harness.process.redact import redact
from harness.stacks.kept_state import KeptStack, exclusive, load, save, state_path, write_secrets
from harness.stacks.workdir import kept_up_workdir

SERVER = "postgres"             # the Barman server's name in a kept-up stack (unless --barman-server)
APP_ROLE = "books_app"
DB_NAME = "books_db"
KINDS = ("local", "compose")


class AlreadyUp(SetupError):
    """A stack is already recorded as up in this state directory."""


def keep_up(config: DrillConfig) -> KeptStack:
    """Bring the stack up and leave it running; return its record (already saved)."""
    path = state_path(config.state_dir)
    with exclusive(path, f"pgbv-stack up --stack {config.stack}"):
        return _keep_up(config, path)


def _keep_up(config: DrillConfig, path: Path) -> KeptStack:
    found = load(path)
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
    stack.start()  # a failed start removes what it started
    try:
        create_app_role(stack.source.server.conn, APP_ROLE, password)
        state = _record(stack)
        try:
            write_secrets(state, password)
            state.entries = stack.ownership.entries
            save(state, path)
        except OSError as exc:
            raise SetupError(f"The kept-up stack's files could not be written: {exc.filename or path}: "
                             f"{exc.strerror or exc}.", "Everything `pgbv-stack up` had started is removed. Free "
                             "space there, or choose another --state-dir or --workdir, and run it again.") from None
        stack.detach()
    except BaseException:
        path.unlink(missing_ok=True)
        try:
            stack.close()
        except CleanupFailed as cleanup:  # the failure of `up` is the news; the cleanup's goes with it
            stack.progress.say(cleanup.render())
        raise
    return state


def create_app_role(conn, role: str, password: str) -> None:
    """An application's login role: read and write ``books`` (and its id sequence), nothing more."""
    try:
        with conn.connect("postgres") as admin:
            admin.execute(sql.SQL("CREATE ROLE {} LOGIN PASSWORD {}").format(sql.Identifier(role),
                                                                             sql.Literal(password)))
        with conn.connect(DB_NAME) as admin:
            admin.execute(sql.SQL("GRANT SELECT, INSERT, UPDATE, DELETE ON books TO {}").format(sql.Identifier(role)))
            admin.execute(sql.SQL("GRANT USAGE, SELECT ON SEQUENCE books_id_seq TO {}").format(sql.Identifier(role)))
    except psycopg.Error as exc:
        said = redact(" ".join(str(exc).split()), [password]) or type(exc).__name__
        raise SetupError(f"The application login role {role} could not be created on the stack's PostgreSQL "
                         f"(port {conn.port}): {said}.", "Everything `pgbv-stack up` had started is removed. Run it "
                         "again; if it fails the same way, a drill run with --keep (`pytest --stack local --keep`) "
                         "leaves the server's log to read.") from None


def _record(stack) -> KeptStack:
    started = datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")
    db = {"host": "127.0.0.1", "port": stack.source.server.conn.port, "name": DB_NAME, "user": APP_ROLE}
    barman = stack.barman
    if stack.kind == "compose":
        return KeptStack("compose", str(stack.run_dir), started, db, barman.server, str(barman.config_path),
                         ["docker", "exec", "barman", "barman"],
                         compose={"project": stack.plan.project, "argv": stack.plan.argv(),
                                  "env_file": str(stack.plan.env_file)})
    return KeptStack("local", str(stack.run_dir), started, db, barman.server, str(barman.config_path),
                     barman.barman_argv())


# -- status ---------------------------------------------------------------------------------------

def status(state: KeptStack) -> tuple[bool, str]:
    """(healthy, report): servers, `barman check`, backups, WAL streaming."""
    parts = [f"stack: {state.where()}"]
    healthy = True
    if state.compose:
        done = _run([*state.compose["argv"], "ps"])
        parts.append(_section("containers (docker-compose ps)", done))
    reachable, text = _server_status(state)
    healthy &= reachable
    parts.append(text)
    for title, args in (("barman check", ["check"]), ("backups (barman list-backup)", ["list-backup"]),
                        ("WAL streaming (barman replication-status)", ["replication-status"])):
        done = _run([*state.barman_argv, *args, state.barman_server])
        if args == ["check"]:
            healthy &= done.returncode == 0
        parts.append(_section(title, done))
    return healthy, "\n\n".join(parts)


def _server_status(state: KeptStack) -> tuple[bool, str]:
    import psycopg

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


def _run(argv) -> subprocess.CompletedProcess:
    try:
        return run(argv, timeout=90, check=False)
    except HarnessError as exc:  # the command could not be started at all
        return subprocess.CompletedProcess(argv, None, exc.cause)


# -- down -----------------------------------------------------------------------------------------

def take_down(config: DrillConfig) -> tuple[KeptStack | None, list[str]]:
    """Remove the recorded stack; (its record or None if none, what was done). Raises HarnessError,
    keeping the record, when something is left."""
    path = state_path(config.state_dir)
    with exclusive(path, "pgbv-stack down"):
        return _take_down(path)


def _take_down(path: Path) -> tuple[KeptStack | None, list[str]]:
    state = load(path)
    if state is None:
        return None, []
    done = []
    if state.compose and os.path.exists(state.compose["env_file"]):  # compose cannot read its file otherwise
        down = _run([*state.compose["argv"], "--profile", "scratch", "down", "-v", "--remove-orphans",
                     "--timeout", "20"])
        done.append(f"compose down -v of project {state.compose['project']}: "
                    + ("done" if down.returncode == 0 else f"exit {down.returncode}: {down.stdout.strip()[-500:]}"))
    done += reap({"entries": state.entries})
    left = leftovers(state)
    if left:
        raise HarnessError(f"The stack was not taken down completely: {'; '.join(left)}.",
                           f"The record stays in {path}: run `pgbv-stack down` again, or remove these by hand.",
                           "\n".join("    " + line for line in done))
    path.unlink(missing_ok=True)
    return state, done


def leftovers(state: KeptStack) -> list[str]:
    """What of the stack still exists: its run directory, processes naming it, compose resources."""
    left = []
    if os.path.lexists(state.run_dir):
        left.append(f"run directory {state.run_dir}")
    pids = processes_naming(os.path.abspath(state.run_dir))
    if pids:
        left.append(f"processes {', '.join(map(str, pids))} naming the run directory")
    if state.compose:
        label = f"label=com.docker.compose.project={state.compose['project']}"
        for noun, argv in (("containers", ["docker", "ps", "-aq"]), ("networks", ["docker", "network", "ls", "-q"]),
                           ("volumes", ["docker", "volume", "ls", "-q"])):
            listed = _run([*argv, "--filter", label])
            found = listed.stdout.split()
            if listed.returncode != 0:
                left.append(f"{noun} of compose project {state.compose['project']}: cannot tell "
                            f"({' '.join(found)[:200]})")
            elif found:
                left.append(f"{len(found)} {noun} of compose project {state.compose['project']}")
    return left
