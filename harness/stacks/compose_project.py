"""What `compose up` needs for one run: an engine, the images, passwords, a barman.conf, mounts.

The compose files live in ``docker/`` inside this package (the repository's top-level docker/
links here), so an installed harness brings the same stack up as a checkout. Settings reach
compose through an env file in the run directory (0600), never through this process's
environment.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from harness.barman.config import render_config
from harness.drill.books import INIT_SQL
from harness.errors import SetupError
from harness.process.accounts import Credentials
from harness.process.commands import run
from harness.process.ports import require_free
from harness.process.progress import QUIET, Progress

DOCKER_DIR = Path(__file__).resolve().parent / "docker"  # the compose project, shipped inside the package
HARNESS_PACKAGE = Path(__file__).resolve().parent.parent
COMPOSE_FILE = DOCKER_DIR / "compose.yaml"
# Added for a stack kept up for manual work only: fixed container names, cron, the app's login role.
KEPT_UP_FILE = DOCKER_DIR / "compose.kept-up.yaml"
SERVER_NAME = "pg"  # the Barman server's name unless the config names one (--barman-server)
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
    server: str = SERVER_NAME
    files: tuple[Path, ...] = (COMPOSE_FILE,)
    env_file_name: str = "compose.env"

    @property
    def env_file(self) -> Path:
        return self.run_dir / self.env_file_name

    @property
    def base_command(self) -> list[str]:
        """The compose command with this run's settings, before `-f`/`-p` and a subcommand."""
        return [*self.command, "--env-file", str(self.env_file)]

    def argv(self, *args) -> list[str]:
        files = [arg for path in self.files for arg in ("-f", str(path))]
        return [*self.base_command, "-p", self.project, *files, *map(str, args)]

    def run(self, *args, timeout: float = 120, check: bool = True) -> subprocess.CompletedProcess:
        # env too: a variable of this process's environment would win over the env file.
        return run(self.argv(*args), env=self.env, timeout=timeout, check=check)


def plan(project: str, base_image: str, workdir: str | None = None, port: int | None = None,
         server: str = SERVER_NAME, kept_up: dict | None = None) -> ComposePlan:
    """Make the run directory, passwords and barman.conf; return the environment for `up`.

    ``kept_up`` (variables of compose.kept-up.yaml): a stack kept up for manual work. Its env file is
    then the run directory's ``.env`` and also names the project and the compose files, so that plain
    `docker-compose exec barman ...` works from that directory."""
    # Before anything is made: a taken port leaves nothing behind.
    postgres_port = str(require_free(port, "compose postgres service")) if port else ""
    run_dir = Path(tempfile.mkdtemp(prefix="pgbv-compose-", dir=workdir or tempfile.gettempdir()))
    os.chmod(run_dir, 0o755)
    credentials = Credentials.create(run_dir / "passfile")
    home = run_dir / "barman"
    for directory in (home, home / "conf.d", home / "locks", run_dir / "restore"):
        directory.mkdir(parents=True, exist_ok=True)
    config = render_config(
        home=home, user="root", server=server,
        conninfo="host=postgres port=5432 user=barman dbname=postgres",
        streaming_conninfo="host=postgres port=5432 user=streaming_barman dbname=postgres",
        bindir=CONTAINER_BINDIR)
    (run_dir / "barman.conf").write_text(config)
    pw = credentials.passwords
    env = {
        "BASE_IMAGE": base_image,
        "POSTGRES_PASSWORD": pw["postgres"], "BARMAN_PASSWORD": pw["barman"],
        "STREAMING_BARMAN_PASSWORD": pw["streaming_barman"],
        "POSTGRES_PORT": postgres_port,
        "SCRATCH_PORT": "",
        "BARMAN_CONF": str(run_dir / "barman.conf"),
        "BARMAN_HOME_SOURCE": str(home), "BARMAN_HOME_PATH": str(home),
        "RESTORE_SOURCE": str(run_dir / "restore"), "RESTORE_PATH": str(run_dir / "restore"),
        # 0: the harness drives archiving itself and must not have receive-wal restarted behind it;
        # a stack kept up for manual work runs cron as a Barman host does.
        "BARMAN_CRON": "1" if kept_up is not None else "0",
        "BARMAN_SERVER": server,
        "INIT_SQL": str(INIT_SQL), "HARNESS_PACKAGE": str(HARNESS_PACKAGE),
    }
    files, env_file, lines = (COMPOSE_FILE,), "compose.env", dict(env)
    if kept_up is not None:
        env.update(kept_up)
        files, env_file = (COMPOSE_FILE, KEPT_UP_FILE), ".env"
        # Read from the .env of the current directory when no -f or -p is given (docker-compose v1 and v2).
        lines = {"COMPOSE_PROJECT_NAME": project, "COMPOSE_FILE": os.pathsep.join(map(str, files)), **env}
        (run_dir / "init.sql").symlink_to(INIT_SQL)  # `psql ... < init.sql` from there, as by hand
    fd = os.open(run_dir / env_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write("".join(f"{key}={value}\n" for key, value in lines.items()))
    return ComposePlan(project, compose_command(), run_dir, credentials, env, server, files, env_file)


