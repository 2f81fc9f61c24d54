"""A free port chosen by one harness process is reserved against the others until its server listens."""

import os
import subprocess
import sys
from pathlib import Path

from harness.process import ports

ROOT = Path(__file__).resolve().parent.parent


def test_a_reserved_port_is_not_handed_to_another_process():
    mine = ports.free_port()
    code = ("import sys; from harness.process import ports; "
            "ports._kernel_choice = lambda: int(sys.argv[1]); "
            "ports.ATTEMPTS = 3\ntry: ports.free_port()\nexcept Exception as exc: print(type(exc).__name__)")
    done = subprocess.run([sys.executable, "-c", code, str(mine)], capture_output=True, text=True, cwd=ROOT,
                          env={**os.environ})
    assert done.stdout.strip() == "SetupError", done.stdout + done.stderr
    code = "from harness.process import ports; import sys; ports._kernel_choice = lambda: int(sys.argv[1]); " \
           "print(ports.free_port())"
    other = 1 + max(mine, 1024) % 60000
    done = subprocess.run([sys.executable, "-c", code, str(other)], capture_output=True, text=True, cwd=ROOT)
    assert done.stdout.strip() == str(other), done.stderr


def taken_by_another_process(port: int) -> bool:
    """Whether another harness process, offered ``port`` by the kernel, finds it reserved."""
    code = ("import sys; from harness.process import ports; ports._kernel_choice = lambda: int(sys.argv[1]); "
            "ports.ATTEMPTS = 1\ntry: print(ports.free_port())\nexcept Exception as exc: print(type(exc).__name__)")
    done = subprocess.run([sys.executable, "-c", code, str(port)], capture_output=True, text=True, cwd=ROOT)
    assert done.stdout.strip() in ("SetupError", str(port)), done.stdout + done.stderr
    return done.stdout.strip() == "SetupError"


def test_a_reservation_outlasts_a_long_restore_until_it_is_released():
    port = ports.free_port()
    ports._held[port] -= 3 * 3600                       # verify-backup, WAL reads and a copy of three hours
    ports.free_port()                                   # another scratch of this process chooses a port
    assert taken_by_another_process(port)
    ports.release(port)                                 # its server listens on it, or it was discarded
    assert not taken_by_another_process(port)


def test_a_server_gives_its_reservation_up_when_it_stops(tmp_path):
    from harness.postgres.binaries import find_pg_bindir
    from harness.postgres.server import PostgresServer

    port = ports.free_port()
    server = PostgresServer("scratch-1", find_pg_bindir(None), tmp_path / "data", port, tmp_path,
                            tmp_path / "passfile", None)
    server.stop(mode="immediate")                       # never started (a restore that failed): discarded
    assert not taken_by_another_process(port)
