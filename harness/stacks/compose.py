"""The compose stack: the same drills against PostgreSQL + Barman running in docker compose.

The stack brings its project up and down itself, through pytest-docker's own context manager
(``get_docker_services``), so the pytest plugin and bench/ share one lifecycle. Once up it drives
the services: the source over its published port on 127.0.0.1, Barman through `docker exec`, and
one scratch container per recovery.

Barman's home and the restore area are host directories mounted at the same path inside the
containers, so every path Barman prints is valid on the host too: the checks and faults of the
local stack work unchanged.
"""

from __future__ import annotations

import os
import shlex
import shutil
from pathlib import Path

from harness.barman.driver import Barman
from harness.drill.source import Source
from harness.errors import SetupError
from harness.postgres.binaries import PgBin, tool_version
from harness.postgres.server import Connection, ServerHandle
from harness.process.commands import run
from harness.process.progress import Progress
from harness.process.waiting import wait_until
from harness.stacks.base import StackBase
from harness.stacks.compose_project import (
    CONTAINER_BINDIR,
    SERVER_NAME,
    ComposePlan,
    EngineUnavailable,
    build_images,
    ensure_engine,
    plan,
)
from harness.stacks.scratch_container import ContainerServer

__all__ = ["ComposeStack", "EngineUnavailable", "ensure_engine"]

SERVICES = ("postgres", "barman")        # images were built (and cached) by build_images
# A stack kept up for manual work also runs the writer, and its containers take these names.
KEPT_UP_SERVICES = ("postgres", "barman", "app")
CLEANUP = ["--profile scratch down -v --remove-orphans --timeout 20"]


class ComposeBarman(Barman):
    """Barman inside the barman service: commands through `docker exec`, receive-wal in there too."""

    stoppable = False  # ending `docker exec` leaves the command running in the container: let it finish

    def __init__(self, container: str, plan_: ComposePlan, source: Source, progress: Progress):
        super().__init__("barman", Path("/etc/barman.conf"), plan_.server, plan_.run_dir / "barman", source, progress)
        self.container = container

    def barman_argv(self, *args) -> list[str]:
        return ["docker", "exec", self.container, "barman", "-c", str(self.config_path), *map(str, args)]

    def start_receive_wal(self) -> None:
        run(["docker", "exec", "-d", self.container, "barman", "receive-wal", self.server], timeout=60)
        # `exec -d` returns at once; Barman's check sees the process a moment later.
        wait_until(self.receiver_running, what="receive-wal to run in the barman service", timeout=60,
                   interval=0.5, logs=self.log_excerpt)

    def receiver_running(self) -> bool:
        # Barman's own view (the image has no procps): its check reports the receive-wal process.
        status, _ = self.check().checks.get("receive_wal_running", ("FAILED", ""))
        return status == "OK"

    def stop_receive_wal(self) -> None:
        self.command("terminate-process", self.server, "receive-wal", timeout=60, check=False)
        wait_until(lambda: not self.receiver_running(), what="receive-wal to stop in the barman service",
                   timeout=30, interval=0.3, logs=self.log_excerpt)


class ComposeStack(StackBase):
    """The compose project of one run: source, Barman, and scratch containers on demand."""

    kind = "compose"
    default_server = SERVER_NAME

    def __init__(self, config, kept_up: dict | None = None):
        super().__init__(config)
        self.plan: ComposePlan | None = None
        self.pg: PgBin | None = None
        # Variables of compose.kept-up.yaml: a stack kept up for manual work (pgbv-stack), whose
        # containers take fixed names. Test runs leave it out, so parallel runs keep unique names.
        self.kept_up = kept_up
        self.services = KEPT_UP_SERVICES if kept_up is not None else SERVICES

    def _bring_up(self, timeout: float = 180) -> None:
        server = self.barman_server_name(SERVER_NAME)
        ensure_engine()
        if self.kept_up is not None:
            _require_free_container_names(self.services)
        base_image = build_images(self.progress)
        project = self.config.compose_project or f"pgbv{os.getpid()}"
        self.plan = plan(project, base_image, workdir=self.config.workdir, port=self.config.source_port,
                         server=server, kept_up=self.kept_up)
        self.run_dir = run_dir = self.plan.run_dir
        self.credentials = self.plan.credentials
        if not self.config.keep:
            self.ownership.own_compose_project(project, f"compose project {project}")
            self.ownership.own_path(run_dir, "the run directory")
            self.cleanups.add("remove the run directory", lambda: shutil.rmtree(run_dir, ignore_errors=True))
        self._up()
        self.progress.say(f"compose project {project}: waiting for postgres and barman to be healthy")
        self._attach(timeout)

    def _up(self) -> None:
        # pytest-docker's own lifecycle: `up` on enter, `down` on exit (kept up with --keep).
        from pytest_docker.plugin import get_docker_services

        command = shlex.join(self.plan.base_command)
        setup = [f"up -d {' '.join(self.services)}"]
        # A kept-up stack must outlive this process: pytest-docker runs its cleanup also when its context
        # is merely garbage-collected, so it gets none and the stack's own cleanup runs `down` itself.
        kept_up = self.kept_up is not None
        services = get_docker_services(command, [str(path) for path in self.plan.files], self.plan.project, setup,
                                       [] if self.config.keep or kept_up else CLEANUP)
        entered = False

        def down() -> None:
            # pytest-docker's own exit once its `up` went through; a failed `up` may still have created
            # containers, a network and volumes, so then (and for a kept-up stack) `down` directly.
            if entered and not kept_up:
                services.__exit__(None, None, None)
            else:
                self.plan.run(*shlex.split(CLEANUP[0]), timeout=180)

        if kept_up or not self.config.keep:  # registered before `up`, which may fail half-way
            self.cleanups.add(f"compose down of project {self.plan.project}", down, timeout=200)
        try:
            services.__enter__()
            entered = True
        except Exception as exc:  # pytest-docker reports a failed command as a bare Exception with its output
            raise SetupError(f"`compose up` of project {self.plan.project} failed.",
                             "The output of the compose command is below.", str(exc)[-3000:]) from None

    def _attach(self, timeout: float) -> None:
        """Wait until postgres and barman are healthy (barman's healthcheck is `barman check` all OK)."""
        for service in ("postgres", "barman"):
            wait_until(lambda s=service: self.health(s) == "healthy", what=f"compose service '{service}' to be healthy",
                       timeout=timeout, interval=1, logs=lambda s=service: self.service_logs(s))
        port = int(self.plan.run("port", "postgres", "5432").stdout.strip().rsplit(":", 1)[1])
        server = ServerHandle("postgres", Connection(port, self.credentials.passfile), self.run_dir / "postgres.log",
                              "PostgreSQL in the compose service postgres")
        self.source = Source(server, self.progress)
        self.barman = ComposeBarman(self.container_id("barman"), self.plan, self.source, self.progress)
        self.pg = PgBin(CONTAINER_BINDIR, tool_version(["docker", "exec", self.container_id("postgres"),
                                                        "postgres", "--version"]))
        self.barman.wait_for_streaming()
        self.barman.wait_until_check_ok()

    def container_id(self, service: str) -> str:
        found = self.plan.run("ps", "-q", service).stdout.strip()
        if not found:
            raise SetupError(f"The compose service '{service}' has no container.", details=self.service_logs(service))
        return found.splitlines()[0]

    def health(self, service: str) -> str:
        container = self.plan.run("ps", "-q", service, check=False).stdout.strip()
        if not container:
            return "absent"
        done = run(["docker", "inspect", "-f", "{{.State.Status}} {{if .State.Health}}{{.State.Health.Status}}{{end}}",
                    container.splitlines()[0]], timeout=30, check=False)
        state, _, health = done.stdout.strip().partition(" ")
        if state in ("exited", "dead"):
            raise SetupError(f"The compose service '{service}' exited ({state}).", details=self.service_logs(service))
        return health or state

    def service_logs(self, service: str, lines: int = 30) -> str:
        done = self.plan.run("logs", "--no-color", "--tail", str(lines), service, check=False, timeout=60)
        tail = done.stdout.splitlines()[-lines:]
        return f"  last lines of service '{service}':\n" + "\n".join("    " + line for line in tail)

    # -- the contract's drill side ---------------------------------------------------------------

    def scratch_server(self, label: str) -> ContainerServer:
        name = self._next_scratch_name(label)
        data_dir = self.run_dir / "restore" / name / "data"
        data_dir.parent.mkdir(parents=True)
        server = ContainerServer(name, data_dir, self.plan, self.pg.version if self.pg else "")
        self.cleanups.add(f"remove container {server.container}", server.stop)
        return server

    def discard_scratch(self, server: ContainerServer) -> None:
        server.stop()
        shutil.rmtree(server.data_dir.parent, ignore_errors=True)

    def log_files(self) -> list[Path]:
        """Service logs written out now, plus Barman's own log."""
        paths = []
        for service in ("postgres", "barman"):
            path = self.run_dir / f"{service}.log"
            done = self.plan.run("logs", "--no-color", service, check=False, timeout=60)
            path.write_text(done.stdout)
            paths.append(path)
        return paths + [self.run_dir / "barman" / "barman.log"]

    def _read_versions(self) -> dict[str, str]:
        return {"postgresql": self.pg.version if self.pg else "unknown",
                "barman": tool_version(self.barman.barman_argv("--version")) if self.barman else "unknown"}


def _require_free_container_names(names) -> None:
    """Container names are one namespace per engine: say who holds one before `up` fails on it."""
    done = run(["docker", "ps", "-a", "--format", '{{.Names}}\t{{.Label "com.docker.compose.project"}}'], timeout=60)
    held = {name: project for name, _, project in (line.partition("\t") for line in done.stdout.splitlines())}
    taken = [f"{name} ({f'compose project {held[name]}' if held[name] else 'not from compose'})"
             for name in names if name in held]
    if taken:
        raise SetupError(f"Containers named {', '.join(taken)} already exist: a stack kept up for manual work "
                         f"needs the names {', '.join(names)}.",
                         "If it is a stack kept up earlier, take it down (`pgbv-stack down`); otherwise remove or "
                         "rename those containers (`docker rm -f NAME`).")
