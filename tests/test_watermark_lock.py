"""The WAL watermark file shared by parallel runs: one server's advance never undoes another's."""

import subprocess
import sys
from pathlib import Path

from harness.drill.wal_watermark import Watermarks

ROOT = Path(__file__).resolve().parent.parent
ADVANCE = """
import sys
from harness.drill.wal_watermark import Watermarks
marks = Watermarks(sys.argv[1])
for n in range(1, 201):
    marks.advance(sys.argv[2], 1, f"{n:024X}")
"""


def test_two_processes_advancing_two_servers_keep_both(tmp_path):
    runs = [subprocess.Popen([sys.executable, "-c", ADVANCE, str(tmp_path), server], cwd=ROOT)
            for server in ("main", "billing")]
    assert [run.wait(timeout=60) for run in runs] == [0, 0]
    marks = Watermarks(tmp_path)
    assert marks.verified_through("main", 1) == marks.verified_through("billing", 1) == f"{200:024X}"
