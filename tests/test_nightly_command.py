"""bin/nightly: exit code 2 and a one-line NO VERDICT summary when the stack cannot come up; 0 for a shard dealt
no drills."""

import json
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_no_stack_means_no_verdict(tmp_path):
    done = subprocess.run([str(ROOT / "bin" / "nightly"), f"--pg-bindir={tmp_path / 'missing'}",
                           f"--junitxml={tmp_path / 'junit.xml'}", f"--reports-dir={tmp_path}",
                           "-k", "full_backup_restores_to_immediate"],
                          cwd=ROOT, capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL)
    last_line = done.stdout.strip().splitlines()[-1]
    assert done.returncode == 2, done.stdout[-2000:]
    assert last_line.startswith("nightly: NO VERDICT"), last_line
    assert "PostgreSQL server binaries not found" in done.stdout + done.stderr


def test_nothing_verified_is_no_verdict_even_when_nothing_failed(tmp_path):
    # Every drill skipped (no PostgreSQL 99 here): pytest exits 0, yet nothing was verified.
    done = subprocess.run([str(ROOT / "bin" / "nightly"), f"--junitxml={tmp_path / 'junit.xml'}",
                           f"--reports-dir={tmp_path}", "--pg-versions", "99", "-k", "full_backup_restores_to_immediate"],
                          cwd=ROOT, capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL)
    last_line = done.stdout.strip().splitlines()[-1]
    assert done.returncode == 2, done.stdout[-2000:]
    assert last_line.startswith("nightly: NO VERDICT: NOT VERIFIED: 0/1 drills passed"), last_line


def test_a_shard_dealt_no_drills_did_its_part(tmp_path):
    # One drill selected, fourteen shards: shard 14 is dealt nothing (and brings no stack up).
    done = subprocess.run([str(ROOT / "bin" / "nightly"), "--shard=14/14", f"--junitxml={tmp_path / 'junit.xml'}",
                           f"--reports-dir={tmp_path}", "-k", "full_backup_restores_to_immediate"],
                          cwd=ROOT, capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL)
    last_line = done.stdout.strip().splitlines()[-1]
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert last_line.startswith("nightly: OK: shard 14/14 was dealt no drills (0 of 1 tests"), last_line
    [evidence] = tmp_path.glob("drill-*.json")
    assert json.loads(evidence.read_text())["run"]["shard_drills"] == "0"
