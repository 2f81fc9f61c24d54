"""A scratch PostgreSQL container of the compose stack: one per recovery, on a data dir Barman
recovered into the restore area (a host directory mounted at the same path in the containers)."""

from __future__ import annotations

import re
from pathlib import Path

import psycopg

from harness.postgres.server import Connection, ServerHandle, ServerStartFailed
from harness.process.commands import run
from harness.process.waiting import wait_until
from harness.stacks.compose_project import ComposePlan


class ContainerServer(ServerHandle):
    """A scratch PostgreSQL container started on a data dir Barman recovered into the restore area."""

    def __init__(self, name: str, data_dir: Path, plan_: ComposePlan, version: str):
        self.plan = plan_
        self.data_dir = data_dir
        self.container = f"{plan_.project}_{name}"
        # The server writes its log inside its data dir, which the host sees through the bind mount.
        super().__init__(name, Connection(0, plan_.credentials.passfile), data_dir / "log" / "server.log",
                         f"PostgreSQL {version} in container {self.container}")

    def adopt_restored_files(self) -> None:
        """Nothing to do: the scratch container's entrypoint gives the files to its postgres user."""

    def start(self, extra_options: dict | None = None, timeout: float = 60) -> None:
        options = {"hot_standby": "on", "fsync": "off", "logging_collector": "on", "log_directory": "log",
                   "log_filename": self.log_path.name, "log_file_mode": "0644", **(extra_options or {})}
        settings = [arg for key, value in options.items() if key != "archive_mode" for arg in ("-c", f"{key}={value}")]
        self.plan.run("run", "-d", "--no-deps", "--name", self.container, "-e", f"RESTORE_DIR={self.data_dir}",
                      "-p", "127.0.0.1::5432", "scratch", "scratch", *settings, timeout=120)

        def accepting():
            if not self.is_running():
                raise ServerStartFailed(f"The scratch container {self.container} exited while starting.",
                                        details=self.log_excerpt() + "\n" + self.container_logs())
            if not self.conn.port:
                done = run(["docker", "port", self.container, "5432"], timeout=30, check=False)
                published = re.search(r":(\d+)\s*$", done.stdout.splitlines()[0] if done.returncode == 0 else "")
                if not published:
                    return False
                self.conn = Connection(int(published.group(1)), self.conn.passfile)
            with self.conn.connect():
                return True
        wait_until(accepting, what=f"scratch container {self.container} to accept connections",
                   timeout=timeout, interval=0.2, tolerate=(psycopg.OperationalError,),
                   logs=lambda: self.log_excerpt() + "\n" + self.container_logs())

    def container_logs(self, lines: int = 20) -> str:
        done = run(["docker", "logs", "--tail", lines, self.container], timeout=30, check=False)
        return "  container output:\n" + "\n".join("    " + line for line in done.stdout.splitlines())

    def is_running(self) -> bool:
        done = run(["docker", "inspect", "-f", "{{.State.Running}}", self.container], timeout=30, check=False)
        return done.stdout.strip() == "true"

    def stop(self, mode: str = "fast", timeout: float = 60) -> None:
        run(["docker", "rm", "-f", self.container], timeout=timeout, check=False)

