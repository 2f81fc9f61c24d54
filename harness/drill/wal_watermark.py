"""What earlier runs already read of an existing Barman's WAL and found sound, per server and timeline.

A nightly drill of a server whose archive holds weeks of WAL would read all of it every night; with
the watermark it reads from the newest segment found sound before (re-read, for the continuity into
the next) onward. The state file lives under the reports directory; a damaged or unwritable one
costs a full read, never a verdict. Runs in parallel (pytest-xdist workers, two runs at once) share
it: each update reads, changes and replaces it under a lock, so one server's advance does not undo
another's.
"""

from __future__ import annotations

import datetime as dt
import json
import os
from pathlib import Path

from harness.process.filelock import locked
from harness.process.waiting import WaitTimedOut

STATE_FILE = "wal-integrity-state.json"


class Watermarks:
    def __init__(self, reports_dir: Path):
        self.path = Path(reports_dir) / STATE_FILE

    def _load(self) -> dict:
        try:
            data = json.loads(self.path.read_text())
            return data if isinstance(data, dict) else {}
        except (OSError, ValueError):
            return {}

    def verified_through(self, server: str, timeline: int) -> str:
        entry = self._load().get(server, {}).get(str(timeline), {})
        return str(entry.get("segment", "")) if isinstance(entry, dict) else ""

    def advance(self, server: str, timeline: int, segment: str) -> None:
        try:
            with self._locked():
                self._advance(server, timeline, segment)
        except (OSError, WaitTimedOut):   # not recorded: the next run reads that WAL again
            pass

    def _advance(self, server: str, timeline: int, segment: str) -> None:
        data = self._load()
        current = data.setdefault(server, {}).get(str(timeline), {})
        if isinstance(current, dict) and str(current.get("segment", "")) >= segment:
            return
        data[server][str(timeline)] = {"segment": segment,
                                       "verified_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds")}
        self.path.parent.mkdir(parents=True, exist_ok=True)
        temporary = self.path.with_name(self.path.name + f".{os.getpid()}.tmp")
        temporary.write_text(json.dumps(data, indent=1) + "\n")
        os.replace(temporary, self.path)   # whole or not at all: a reader never sees half a file

    def _locked(self):
        """An exclusive lock on a file beside the state (the state itself is replaced, not rewritten).
        Held by another run for a read and a rename: milliseconds, unless that run hangs."""
        return locked(self.path.with_name(self.path.name + ".lock"), "a WAL watermark update", timeout=10,
                      busy="another run updating the WAL watermarks", interval=0.1)
