"""The compose stack: the same drills against PostgreSQL + Barman running in docker compose.

Bringing the project up and down is the driver's job (pytest-docker in the plugin); this module
prepares what `up` needs (images, passwords, a generated barman.conf, bind mounts) and then drives
the running services: the source over its published port on 127.0.0.1, Barman through `docker
exec`, and one scratch container per recovery.

Barman's home and the restore area are host directories mounted at the same path inside the
containers, so every path Barman prints is valid on the host too: the checks and faults of the
local stack work unchanged.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import psycopg

from harness.process.accounts import Credentials
from harness.barman.driver import Barman, render_config
from harness.postgres.binaries import PgBin, tool_version
from harness.process.commands import run
from harness.errors import SetupError
from harness.process.ports import require_free
from harness.process.progress import QUIET, Progress
from harness.drill.recovery import Restore, recover
from harness.postgres.server import Connection, PostgresServer, ServerStartFailed
from harness.drill.books import INIT_SQL
from harness.drill.source import Source
from harness.process.waiting import wait_until

DOCKER_DIR = Path(__file__).resolve().parent / "docker"  # the compose project, shipped inside the package
HARNESS_PACKAGE = Path(__file__).resolve().parent.parent
COMPOSE_FILE = DOCKER_DIR / "compose.yaml"
SERVER_NAME = "pg"
CONTAINER_BINDIR = Path("/usr/lib/postgresql/15/bin")


class EngineUnavailable(SetupError):
    """No Docker engine answers and the project's setup cannot start one here."""


def compose_command() -> list[str]:
    """`docker compose` (v2) when it answers, else `docker-compose` (v1, what Debian ships)."""
    try:
        if subprocess.run(["docker", "compose", "version"], capture_output=True, timeout=30).returncode == 0:
            return ["docker", "compose"]
    except (OSError, subprocess.SubprocessError):
        pass
    if shutil.which("docker-compose"):
        return ["docker-compose"]
    raise SetupError("Neither `docker compose` nor `docker-compose` is installed.",
                     "Run docker/engine.sh as root (it installs Debian's docker.io and docker-compose).")


def ensure_engine(timeout: float = 300) -> str:
    """docker/engine.sh: an engine answers afterwards, or EngineUnavailable says why not."""
    done = run(["bash", DOCKER_DIR / "engine.sh"], timeout=timeout, check=False)
    if done.returncode == 3:
        raise EngineUnavailable("No Docker engine answers and this user is not root, so none can be started.",
                                "Start dockerd (or run the tests as root once), then run again.", done.stdout)
    if done.returncode != 0:
        raise EngineUnavailable(f"The Docker engine could not be brought up (docker/engine.sh exit {done.returncode}).",
                                "See the engine log named below.", done.stdout)
    return done.stdout


def build_images(progress: Progress = QUIET, timeout: float = 1800) -> str:
    """docker/build.sh (wheels, base image, images; cached after the first time): the base image."""
    with progress.step("build the compose images (cached after the first run)"):
        done = run(["bash", DOCKER_DIR / "build.sh"], timeout=timeout,
                   cause="Building the compose stack's images failed.")
    for line in reversed(done.stdout.splitlines()):
        if line.startswith("BASE_IMAGE="):
            return line.split("=", 1)[1].strip()
    raise SetupError("docker/build.sh did not name the base image it used.", details=done.stdout)


@dataclass
class ComposePlan:
    """Everything `compose up` needs for one run, and where the run keeps its files."""

    project: str
    command: list[str]
    run_dir: Path
    credentials: Credentials
    env: dict = field(default_factory=dict)

    def argv(self, *args) -> list[str]:
        return [*self.command, "-p", self.project, "-f", str(COMPOSE_FILE), *map(str, args)]

    def run(self, *args, timeout: float = 120, check: bool = True) -> subprocess.CompletedProcess:
        return run(self.argv(*args), env=self.env, timeout=timeout, check=check)


def plan(project: str, base_image: str, workdir: str | None = None, port: int | None = None) -> ComposePlan:
    """Make the run directory, passwords and barman.conf; return the environment for `up`."""
    run_dir = Path(tempfile.mkdtemp(prefix="pgbv-compose-", dir=workdir or tempfile.gettempdir()))
    os.chmod(run_dir, 0o755)
    credentials = Credentials.create(run_dir / "passfile")
    home = run_dir / "barman"
    for directory in (home, home / "conf.d", home / "locks", run_dir / "restore"):
        directory.mkdir(parents=True, exist_ok=True)
    config = render_config(
        home=home, user="root", server=SERVER_NAME,
        conninfo="host=postgres port=5432 user=barman dbname=postgres",
        streaming_conninfo="host=postgres port=5432 user=streaming_barman dbname=postgres",
        bindir=CONTAINER_BINDIR)
    (run_dir / "barman.conf").write_text(config)
    pw = credentials.passwords
    env = {
        "BASE_IMAGE": base_image,
        "POSTGRES_PASSWORD": pw["postgres"], "BARMAN_PASSWORD": pw["barman"],
        "STREAMING_BARMAN_PASSWORD": pw["streaming_barman"],
        "POSTGRES_PORT": str(require_free(port, "compose postgres service") if port else ""),
        "SCRATCH_PORT": "",
        "BARMAN_CONF": str(run_dir / "barman.conf"),
        "BARMAN_HOME_SOURCE": str(home), "BARMAN_HOME_PATH": str(home),
        "RESTORE_SOURCE": str(run_dir / "restore"), "RESTORE_PATH": str(run_dir / "restore"),
        "BARMAN_CRON": "0",
        "INIT_SQL": str(INIT_SQL), "HARNESS_PACKAGE": str(HARNESS_PACKAGE),
    }
    return ComposePlan(project, compose_command(), run_dir, credentials, env)


class ComposeBarman(Barman):
    """Barman inside the barman service: commands through `docker exec`, receive-wal in there too."""

    def __init__(self, container: str, plan_: ComposePlan, source: Source, progress: Progress):
        super().__init__("barman", Path("/etc/barman.conf"), SERVER_NAME, plan_.run_dir / "barman", source, progress)
        self.container = container

    def barman_argv(self, *args) -> list[str]:
        return ["docker", "exec", self.container, "barman", "-c", str(self.config_path), *map(str, args)]

    def start_receive_wal(self) -> None:
        run(["docker", "exec", "-d", self.container, "barman", "receive-wal", self.server], timeout=60)
        # `exec -d` returns at once; Barman's check sees the process a moment later.
        wait_until(self.receiver_running, what="receive-wal to run in the barman service", timeout=60,
                   interval=0.5, evidence=self.evidence)

    def receiver_running(self) -> bool:
        # Barman's own view (the image has no procps): its check reports the receive-wal process.
        status, _ = self.check().checks.get("receive_wal_running", ("FAILED", ""))
        return status == "OK"

    def stop_receive_wal(self) -> None:
        self.command("terminate-process", self.server, "receive-wal", timeout=60, check=False)
        wait_until(lambda: not self.receiver_running(), what="receive-wal to stop in the barman service",
                   timeout=30, interval=0.3, evidence=self.evidence)


class ComposeScratch(PostgresServer):
    """A scratch PostgreSQL container started on a data dir Barman recovered into the restore area."""

    def __init__(self, name: str, data_dir: Path, plan_: ComposePlan):
        super().__init__(name, None, data_dir, 0, data_dir.parent, plan_.credentials.passfile, run_as=None)
        self.plan = plan_
        self.container = f"{plan_.project}_{name}"
        self.log_path = data_dir / "log" / "server.log"

    def start(self, extra_options: dict | None = None, timeout: float = 60) -> None:
        # The server writes its log inside its data dir, which the host sees through the bind mount.
        options = {"hot_standby": "on", "fsync": "off", "logging_collector": "on", "log_directory": "log",
                   "log_filename": self.log_path.name, "log_file_mode": "0644", **(extra_options or {})}
        settings = [arg for key, value in options.items() if key != "archive_mode" for arg in ("-c", f"{key}={value}")]
        self.plan.run("run", "-d", "--no-deps", "--name", self.container, "-e", f"RESTORE_DIR={self.data_dir}",
                      "-p", "127.0.0.1::5432", "scratch", "scratch", *settings, timeout=120)

        def accepting():
            if not self.is_running():
                raise ServerStartFailed(f"The scratch container {self.container} exited while starting.",
                                        details=self.log_excerpt() + "\n" + self.container_logs())
            if not self.port:
                done = run(["docker", "port", self.container, "5432"], timeout=30, check=False)
                published = re.search(r":(\d+)\s*$", done.stdout.splitlines()[0] if done.returncode == 0 else "")
                if not published:
                    return False
                self.port = int(published.group(1))
                self.conn = Connection(self.port, self.conn.passfile)
            with self.conn.connect():
                return True
        wait_until(accepting, what=f"scratch container {self.container} to accept connections",
                   timeout=timeout, interval=0.2, tolerate=(psycopg.OperationalError,),
                   evidence=lambda: self.log_excerpt() + "\n" + self.container_logs())

    def container_logs(self, lines: int = 20) -> str:
        done = run(["docker", "logs", "--tail", lines, self.container], timeout=30, check=False)
        return "  container output:\n" + "\n".join("    " + line for line in done.stdout.splitlines())

    def is_running(self) -> bool:
        done = run(["docker", "inspect", "-f", "{{.State.Running}}", self.container], timeout=30, check=False)
        return done.stdout.strip() == "true"

    def stop(self, mode: str = "fast", timeout: float = 60) -> None:
        run(["docker", "rm", "-f", self.container], timeout=timeout, check=False)

    kill = stop


class ComposeStack:
    """The compose project, once `up`: source, Barman and scratch containers."""

    kind = "compose"

    def __init__(self, plan_: ComposePlan, keep: bool = False, progress: Progress = QUIET):
        self.plan = plan_
        self.options = type("Options", (), {"keep": keep, "progress": progress})()
        self.run_dir = plan_.run_dir
        self.credentials = plan_.credentials
        self.scratch_servers: list[ComposeScratch] = []
        self.source: Source | None = None
        self.barman: ComposeBarman | None = None
        self.pg: PgBin | None = None
        self._closed = False

    def attach(self, timeout: float = 180) -> "ComposeStack":
        """Wait until postgres and barman are healthy (barman's healthcheck is `barman check` all OK)."""
        for service in ("postgres", "barman"):
            wait_until(lambda s=service: self.health(s) == "healthy", what=f"compose service '{service}' to be healthy",
                       timeout=timeout, interval=1, evidence=lambda s=service: self.service_logs(s))
        port = int(self.plan.run("port", "postgres", "5432").stdout.strip().rsplit(":", 1)[1])
        server = _ServiceView("postgres", Connection(port, self.credentials.passfile), self.run_dir / "postgres.log")
        self.source = Source(server, self.options.progress)
        self.barman = ComposeBarman(self.container_id("barman"), self.plan, self.source, self.options.progress)
        self.pg = PgBin(CONTAINER_BINDIR, tool_version(["docker", "exec", self.container_id("postgres"),
                                                        "postgres", "--version"]))
        self.barman.wait_for_streaming()
        self.barman.wait_until_check_ok()
        return self

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
        return f"  last lines of service '{service}':\n" + "\n".join("    " + l for l in done.stdout.splitlines()[-lines:])

    # -- drills -------------------------------------------------------------------------------

    def new_scratch(self, label: str) -> ComposeScratch:
        name = f"scratch-{len(self.scratch_servers) + 1}-{label}"[:60].rstrip("-_.")
        data_dir = self.run_dir / "restore" / name / "data"
        data_dir.parent.mkdir(parents=True)
        server = ComposeScratch(name, data_dir, self.plan)
        self.scratch_servers.append(server)
        return server

    def recover_into(self, restore: Restore, timeout: float = 300) -> Restore:
        # The scratch container's entrypoint gives the recovered files to its postgres user.
        with self.options.progress.step(f"recover backup {restore.backup.backup_id} to {restore.target.describe()}"):
            return recover(self.barman, restore, chown=lambda path: None, timeout=timeout)

    def discard_scratch(self, server: ComposeScratch) -> None:
        server.stop()
        shutil.rmtree(server.data_dir.parent, ignore_errors=True)
        if server in self.scratch_servers:
            self.scratch_servers.remove(server)

    def log_files(self) -> list[Path]:
        """Service logs written out now, plus Barman's own log."""
        paths = []
        for service in ("postgres", "barman"):
            path = self.run_dir / f"{service}.log"
            done = self.plan.run("logs", "--no-color", service, check=False, timeout=60)
            path.write_text(done.stdout)
            paths.append(path)
        return paths + [self.run_dir / "barman" / "barman.log"]

    def versions(self) -> dict:
        return {"postgresql": self.pg.version if self.pg else "unknown",
                "barman": tool_version(self.barman.barman_argv("--version")) if self.barman else "unknown"}

    def close(self) -> None:
        """Remove scratch containers and the run directory (the project itself goes with `down`)."""
        if self._closed:
            return
        self._closed = True
        for server in list(self.scratch_servers):
            server.stop()
        if not self.options.keep:
            shutil.rmtree(self.run_dir, ignore_errors=True)


@dataclass
class _ServiceView:
    """The source as Source needs it: a name, a connection, a log file."""

    name: str
    conn: Connection
    log_path: Path
