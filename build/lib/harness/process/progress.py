"""Progress of long steps for a person at a terminal; silent in CI logs."""

from __future__ import annotations

import os
import sys
import time
from contextlib import contextmanager


class Progress:
    """Prints "what... done in 1.2 s" lines and row counters, only when enabled."""

    def __init__(self, enabled: bool, stream=None):
        self.enabled = enabled
        self.stream = stream or sys.stderr

    @classmethod
    def for_terminal(cls) -> "Progress":
        """On when stderr is a terminal and CI is not set."""
        return cls(sys.stderr.isatty() and not os.environ.get("CI"))

    def say(self, message: str) -> None:
        if self.enabled:
            print(f"  [drill] {message}", file=self.stream, flush=True)

    @contextmanager
    def step(self, what: str):
        started = time.monotonic()
        self.say(f"{what} ...")
        yield
        self.say(f"{what}: done in {time.monotonic() - started:.1f} s")

    def rows(self, done: int, total: int) -> None:
        if self.enabled and total >= 50_000:
            end = "\n" if done >= total else ""
            print(f"\r  [drill] rows written: {done:,}/{total:,}", end=end, file=self.stream, flush=True)


QUIET = Progress(False)
