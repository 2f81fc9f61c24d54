"""Reading WAL record by record with PostgreSQL's own reader, pg_waldump."""

from __future__ import annotations

import re
from pathlib import Path

from harness.postgres.binaries import PgBin
from harness.postgres.wal import SEGMENT_RE
from harness.process.commands import run

COMMIT = re.compile(r"desc: COMMIT (\d{4}-\d\d-\d\d \d\d:\d\d:\d\d(?:\.\d+)?) UTC")


def newest_commit_in(pg: PgBin, wal_dir: Path, max_segments: int = 256) -> str:
    """Commit time (UTC, explicit offset) of the newest commit record in the WAL segments of ``wal_dir``,
    "" when none of the newest ``max_segments`` holds one. Read before a server starts on them: once it
    runs, it recycles old segments and writes its own commits."""
    segments = sorted((path.name for path in wal_dir.iterdir() if SEGMENT_RE.match(path.name)), reverse=True)
    for segment in segments[:max_segments]:
        # One segment at a time, newest first; pg_waldump stops with an error where valid WAL ends.
        done = run([pg.tool("pg_waldump"), "--rmgr=Transaction", "--path", wal_dir, segment, segment],
                   env={"TZ": "UTC"}, timeout=120, check=False)
        found = COMMIT.findall(done.stdout)
        if found:
            return max(found) + "+00:00"
    return ""
