"""The hook's own log: one line per thing it did, appended to <state dir>/<server>.log.

Lines from several processes (the hook Barman ran, the drill process it left in the background, the
next backup's hook) go into one file: each is a single append, stamped with time and pid.
"""

from __future__ import annotations

import datetime as dt
import os
import sys
from pathlib import Path

from harness.hook.event import BackupEvent
from harness.process.redact import redact


class HookLog:
    def __init__(self, path: Path, event: BackupEvent, echo: bool = True):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.event = event
        self.echo = echo  # Barman shows what the hook printed when it exits non-zero

    def say(self, message: str) -> None:
        stamp = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
        line = redact(f"{stamp} pid {os.getpid()} {self.event.server or '?'} {self.event.backup_id or '?'}: "
                      f"{message}", [])
        line = " ".join(line.splitlines()) + "\n"
        with open(self.path, "a", encoding="utf-8") as handle:
            handle.write(line)
        if self.echo:
            print(f"pgbv-post-backup: {line.split(': ', 1)[1]}", end="", file=sys.stderr, flush=True)

    def end(self, code: int, message: str) -> int:
        self.say(f"exit {code}: {message}")
        return code
