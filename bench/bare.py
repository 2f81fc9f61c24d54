"""One PITR drill as bare commands: the baseline the harness's drill is held against.

What a plain script has to do and no more: `barman backup --wait` (writing a tiny WAL record
every 0.3 s meanwhile, as the harness does, or an idle server keeps the backup waiting ~15 s for
its last segment), `barman recover` to an xid with promote, `pg_ctl start -w` as the server user,
then `psql` polling pg_is_in_recovery() every 0.1 s until it is false. No checks, no evidence.
"""

from __future__ import annotations

import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from harness.barman.driver import RECOVER_JOBS
from harness.process.ports import free_port

TICK_SQL = "SELECT pg_logical_emit_message(false, 'bench', 'tick')"


class BareCommandFailed(RuntimeError):
    pass


@dataclass
class BareRestore:
    recover_seconds: float   # barman recover + chown to the server user
    start_seconds: float     # pg_ctl start -w
    reach_seconds: float     # polling until the server has left recovery
    stop_line: str

    @property
    def seconds(self) -> float:
        return self.recover_seconds + self.start_seconds + self.reach_seconds


class BareDrill:
    """Backs up the stack's source and restores it with the raw tools, as root or as its user."""

    def __init__(self, stack):
        self.barman = [stack.barman.executable, "-c", str(stack.barman.config_path)]
        self.server = stack.barman.server
        self.pg = stack.pg
        self.owner = stack.run_as.user  # None when the harness runs as the server user itself
        self.as_owner = ["runuser", "-u", self.owner, "--"] if self.owner else []
        self.passfile = stack.credentials.passfile
        self.source_port = stack.source.server.port
        self.workdir = Path(stack.run_dir)
        self.running: list[Path] = []

    # -- the timed steps --------------------------------------------------------------------

    def backup(self, timeout: float = 600) -> float:
        started = time.perf_counter()
        proc = subprocess.Popen([*self.barman, "backup", "--wait", self.server], stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True, stdin=subprocess.DEVNULL, cwd=self.workdir)
        try:
            while proc.poll() is None:
                if time.perf_counter() - started > timeout:
                    raise BareCommandFailed(f"barman backup did not finish within {timeout:.0f} s")
                self.psql(self.source_port, TICK_SQL)
                try:
                    proc.wait(timeout=0.3)
                except subprocess.TimeoutExpired:
                    pass
            output = proc.communicate()[0]
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        if proc.returncode != 0:
            raise BareCommandFailed(f"barman backup failed (rc {proc.returncode}):\n{output[-2000:]}")
        return time.perf_counter() - started

    def recover_only(self, xid: str, backup_id: str, home: Path, timeout: float = 600) -> float:
        """Just `barman recover` of ``backup_id`` to ``xid`` into ``home``/data: seconds."""
        started = time.perf_counter()
        self.run([*self.barman, "recover", "--jobs", str(RECOVER_JOBS), "--target-xid", xid, "--target-action", "promote", self.server,
                  backup_id, home / "data"], timeout)
        return time.perf_counter() - started

    def restore(self, xid: str, home: Path, timeout: float = 600) -> BareRestore:
        """Recover the latest backup to ``xid`` into ``home``/data (made by ``prepare``), start it,
        wait until it has promoted."""
        data, log, port = home / "data", home / "postgres.log", free_port()
        t0 = time.perf_counter()
        self.run([*self.barman, "recover", "--jobs", str(RECOVER_JOBS), "--target-xid", xid, "--target-action", "promote", self.server,
                  "latest", data], timeout)
        if self.owner:
            self.run(["chown", "-R", f"{self.owner}:", data], timeout)
        t1 = time.perf_counter()
        options = (f"-c port={port} -c listen_addresses=127.0.0.1 -c unix_socket_directories={home / 'sockets'} "
                   "-c archive_mode=off -c hot_standby=on -c fsync=off")
        self.running.append(data)
        self.run([*self.as_owner, self.pg.tool("pg_ctl"), "-D", data, "-l", log, "-o", options, "-w",
                  "-t", str(int(timeout)), "start"], timeout + 15, cwd=home)
        t2 = time.perf_counter()
        while self.psql(port, "SELECT pg_is_in_recovery()") != "f":
            if time.perf_counter() - t2 > timeout:
                raise BareCommandFailed(f"the server in {data} did not leave recovery within {timeout:.0f} s")
            time.sleep(0.1)
        t3 = time.perf_counter()
        stops = [line for line in log.read_text(errors="replace").splitlines() if "recovery stopping" in line]
        if not stops or f"transaction {xid}" not in stops[-1]:
            raise BareCommandFailed(f"the bare restore in {data} did not stop at xid {xid}: {stops[-1:]}")
        return BareRestore(t1 - t0, t2 - t1, t3 - t2, stops[-1].split("  ")[-1])

    # -- untimed set-up and clean-up --------------------------------------------------------

    def prepare(self, name: str) -> Path:
        """An empty data dir (barman recover wants it to exist, owned by the server user)."""
        home = self.workdir / name
        (home / "data").mkdir(parents=True, mode=0o700)
        (home / "sockets").mkdir()
        if self.owner:
            self.run(["chown", "-R", f"{self.owner}:", home], 30)
        return home

    def discard(self, home: Path) -> None:
        self.stop(home / "data")
        shutil.rmtree(home, ignore_errors=True)

    def stop(self, data: Path) -> None:
        if data in self.running:
            self.running.remove(data)
            if (data / "postmaster.pid").exists():
                subprocess.run([*self.as_owner, self.pg.tool("pg_ctl"), "-D", str(data), "-m", "immediate", "-w",
                                "stop"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=60,
                               cwd=data.parent)

    def stop_all(self) -> None:
        for data in list(self.running):
            self.stop(data)

    # -- commands ---------------------------------------------------------------------------

    def psql(self, port: int, query: str) -> str:
        """One psql call over TCP with the run's passfile; "" when it could not connect (yet)."""
        conninfo = (f"host=127.0.0.1 port={port} user=postgres dbname=postgres passfile={self.passfile} "
                    "connect_timeout=5")
        done = subprocess.run([self.pg.tool("psql"), "-X", "-A", "-t", "-q", "-d", conninfo, "-c", query],
                              stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, timeout=30,
                              cwd=self.workdir)
        return done.stdout.strip() if done.returncode == 0 else ""

    def run(self, argv, timeout: float, cwd: Path | None = None) -> str:
        argv = [str(arg) for arg in argv]
        done = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=timeout,
                              stdin=subprocess.DEVNULL, cwd=cwd or self.workdir)
        if done.returncode != 0:
            raise BareCommandFailed(f"`{' '.join(argv)}` failed (rc {done.returncode}):\n{done.stdout[-2000:]}")
        return done.stdout
