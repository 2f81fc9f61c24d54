"""Reading the end of server and tool logs for error messages and timeouts."""

from __future__ import annotations

import re
from pathlib import Path


def tail(path: Path, lines: int = 30, pattern: str | None = None, max_bytes: int = 256_000) -> list[str]:
    """The last ``lines`` lines of ``path`` (only those matching ``pattern``, if given)."""
    try:
        with open(path, "rb") as handle:
            handle.seek(0, 2)
            size = handle.tell()
            handle.seek(max(0, size - max_bytes))
            text = handle.read().decode("utf-8", "replace")
    except FileNotFoundError:
        return [f"({path} does not exist)"]
    found = text.splitlines()
    if pattern:
        regex = re.compile(pattern)
        found = [line for line in found if regex.search(line)]
    return found[-lines:]


def excerpt(path: Path, lines: int = 30, pattern: str | None = None) -> str:
    """``tail`` formatted for an error message: a header naming the file, lines indented."""
    body = tail(path, lines, pattern)
    return f"  last lines of {path}:\n" + "\n".join("    " + line for line in body)
