"""pgbv-stack: keep a local or compose stack up for manual work, show it, take it down.

    pgbv-stack up [--stack local|compose] [--source-port N] [--show-secrets] ...   then: eval "$(pgbv-stack env)"
    pgbv-stack env [--show-secrets]
    pgbv-stack status
    pgbv-stack down

`up` prints `export` lines on stdout (everything else goes to stderr), so `eval "$(pgbv-stack up)"`
works; passwords only with --show-secrets, otherwise the last line sources the stack's 0600 env file.
One stack per state directory (--state-dir). Exit codes:
  0  done: up, shown, healthy, taken down, or nothing was up to take down (`down` says so)
  1  `status`: the stack is recorded but unhealthy (server unreachable or `barman check` failing,
     or what a failed `up` left); `down`: something could not be removed (named; the record stays,
     run `down` again)
  2  nothing done: a stack is already up (`up`), none is (`env`, `status`), another `up` or `down`
     of the state directory is under way (`up`, `down`), bad input (a state directory that cannot
     be one, a state file that cannot be read), no Docker engine, a port taken, or the stack could
     not come up (whatever had started is removed; what could not be is recorded for `down`)
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys

from harness.config import add_arguments, from_arguments
from harness.errors import HarnessError
from harness.stacks.kept_up import KINDS, keep_up, status
from harness.stacks.kept_up_down import NotTakenDown, take_down
from harness.stacks.kept_up_state import exports, load, state_path

UP_SETTINGS = ("stack", "pg_bindir", "server_user", "source_port", "workdir", "compose_project", "barman_server",
               "state_dir")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="pgbv-stack", description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog=__doc__.split("\n\n", 1)[1])
    commands = parser.add_subparsers(dest="command", required=True, metavar="up|env|status|down")
    up = commands.add_parser("up", help="bring a stack up and leave it running; print how to reach it")
    add_arguments(up, UP_SETTINGS)
    env = commands.add_parser("env", help="print the kept-up stack's `export` lines")
    for sub in (up, env):
        sub.add_argument("--show-secrets", action="store_true", help="print the passwords too")
    for name, help_ in (("status", "servers, barman check, backups, WAL streaming"),
                        ("down", "stop and remove everything of the stack")):
        add_arguments(commands.add_parser(name, help=help_), ("state_dir",))
    add_arguments(env, ("state_dir",))
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        config = from_arguments(args, progress=True)
        if args.command == "up":
            return _up(config, args.show_secrets)
        if args.command == "down":
            return _down(config)
        state = load(state_path(config.state_dir))
        if state is None:
            _say(f"No stack is up (none recorded in {state_path(config.state_dir)}). Start one: pgbv-stack up "
                 f"--stack {'|'.join(KINDS)}")
            return 2
        if args.command == "env" and state.failed_up:
            _say(f"No stack is up: {state.where()}. `pgbv-stack down` removes what is left, then `up` again.")
            return 2
        if args.command == "env":
            print("\n".join(exports(state, _password(state) if args.show_secrets else None)))
            return 0
        healthy, report = status(state)
        print(report)
        print(f"\nstatus: {'OK' if healthy else 'NOT OK'}")
        return 0 if healthy else 1
    except HarnessError as exc:
        _say(exc.render())
        return 1 if isinstance(exc, NotTakenDown) else 2
    except KeyboardInterrupt:
        _say("interrupted" + ("; what had started was removed" if args.command == "up" else ""))
        return 2


def _up(config, show_secrets: bool) -> int:
    if config.stack == "compose" and not config.compose_project:
        config = config.replace(compose_project=f"pgbvstack{os.getpid()}")
    state = keep_up(config)
    path = state_path(config.state_dir)
    if state.compose:
        drill = (f"docker exec barman python3 -m pytest -p harness.plugin -p no:cacheprovider --stack existing "
                 f"--barman-config={state.barman_config} --barman-server={state.barman_server} --workdir=/tmp "
                 "--reports-dir=/tmp/reports /opt/harness/harness/plugin/existing_drills.py")
    else:
        drill = f"pytest --stack existing --barman-config={state.barman_config} --barman-server={state.barman_server}"
    _say(f"up: {state.where()}\n"
         f"  recorded in {path}; passwords in {state.env_file} (0600)\n"
         f"  drill it: {drill}\n"
         "  show it: pgbv-stack status; take it down: pgbv-stack down")
    print("\n".join(exports(state, _password(state) if show_secrets else None)))
    return 0


def _down(config) -> int:
    state, done = take_down(config)
    if state is None:
        _say(f"No stack is up (none recorded in {state_path(config.state_dir)}): nothing to take down.")
        return 0
    # (take_down raised NotTakenDown, keeping the record, had anything been left)
    _say(f"down: {state.where()}\n" + "\n".join(f"  {line}" for line in done) + "\n  nothing of it is left")
    return 0


def _password(state) -> str:
    """The application role's password, from the stack's env file."""
    try:
        text = state.env_file.read_text()
    except OSError as exc:
        raise HarnessError(f"The stack's env file {state.env_file}, which holds its password, cannot be read: "
                           f"{exc.strerror or exc}.", "Is its run directory gone (a reboot, removed by hand)? "
                           "`pgbv-stack status` shows what is left; `pgbv-stack down`, then `up`, makes a new "
                           "one.") from None
    for line in text.splitlines():
        if line.startswith("export DB_PASSWORD="):
            return shlex.split(line.split("=", 1)[1])[0]
    raise HarnessError(f"{state.env_file} holds no DB_PASSWORD.", "Take the stack down and bring it up again.")


def _say(text: str) -> None:
    print(f"pgbv-stack: {text}", file=sys.stderr, flush=True)


if __name__ == "__main__":
    sys.exit(main())
