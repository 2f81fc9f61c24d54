"""A drill option's value given after a space must not move pytest's rootdir away from the project."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from harness.config import joined_option_values

ROOT = Path(__file__).resolve().parents[1]


def test_value_taking_drill_options_are_joined_with_their_value():
    assert joined_option_values(["-m", "drill", "--barman-config", "/etc/barman.conf", "--canary", "-x",
                                 "--backups", "all"]) == \
        ["-m", "drill", "--barman-config=/etc/barman.conf", "--canary", "-x", "--backups=all"]
    assert joined_option_values(["--barman-config"]) == ["--barman-config"]  # left for pytest to refuse


def _collect(tmp_path, *args):
    return subprocess.run([sys.executable, "-m", "pytest", "--co", "-q", "-p", "no:cacheprovider", *args],
                          cwd=ROOT, capture_output=True, text=True, timeout=120)


def test_a_path_after_a_space_that_would_lose_the_projects_ini_is_refused_with_the_spelling(tmp_path):
    elsewhere = tmp_path / "barman.conf"
    elsewhere.write_text("[barman]\n")
    done = _collect(tmp_path, "--reports-dir", str(tmp_path))  # no test path: the ini's testpaths
    assert done.returncode == 4, done.stdout + done.stderr
    assert f"--reports-dir={tmp_path}" in done.stderr and "pytest.ini would not apply" in done.stderr
    joined = _collect(tmp_path, f"--reports-dir={tmp_path}", "-m", "not drill")
    assert joined.returncode == 0, joined.stdout + joined.stderr
    assert "tests/test_config.py::" in joined.stdout  # the ini's testpaths applied
