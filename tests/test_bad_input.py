"""Bad input ends in one clear paragraph and a meaningful exit code, never a traceback wall."""

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
A_DRILL = "scenarios/test_full_backup.py"


def run_pytest(tmp_path, *args):
    argv = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider",
            "--junitxml", str(tmp_path / "junit.xml"), *args]
    done = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=120)
    return done.returncode, done.stdout + done.stderr


def test_unknown_stack_is_a_usage_error(tmp_path):
    rc, output = run_pytest(tmp_path, "--stack", "nonsense", A_DRILL)
    assert rc == 4
    assert "invalid choice: 'nonsense'" in output
    assert "Traceback" not in output


def test_missing_postgresql_binaries_name_cause_and_fix(tmp_path):
    rc, output = run_pytest(tmp_path, "--pg-bindir", str(tmp_path / "no-such-bin"), A_DRILL)
    assert rc == 2
    assert "PostgreSQL server binaries not found" in output
    assert str(tmp_path / "no-such-bin") in output and "--pg-bindir" in output
    assert "Traceback" not in output
    assert (tmp_path / "junit.xml").exists(), "the report must still be written"


def test_port_in_use_names_the_port(tmp_path):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        rc, output = run_pytest(tmp_path, "--source-port", str(port), A_DRILL)
    assert rc == 2
    assert f"Port {port} on 127.0.0.1" in output and "already in use" in output
    assert "Traceback" not in output


@pytest.mark.skipif(os.geteuid() != 0, reason="the server user is only switched to when running as root")
def test_unknown_server_user_is_explained(tmp_path):
    rc, output = run_pytest(tmp_path, "--server-user", "no_such_user_xyz", A_DRILL)
    assert rc == 2
    assert "'no_such_user_xyz'" in output and "does not exist" in output
    assert "Traceback" not in output
