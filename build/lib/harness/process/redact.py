"""Keeping secrets out of reports and kept logs."""

from __future__ import annotations

import re
from pathlib import Path

PASSWORD_SETTING = re.compile(r"(password\s*=\s*)('[^']*'|\S+)", re.IGNORECASE)
PASSWORD_CLAUSE = re.compile(r"(PASSWORD\s+)('(?:[^']|'')*')", re.IGNORECASE)
MASK = "********"


def redact(text: str, secrets: list[str]) -> str:
    """Mask the run's known secrets and anything that looks like a password setting."""
    for secret in sorted((s for s in secrets if s), key=len, reverse=True):
        text = text.replace(secret, MASK)
    text = PASSWORD_SETTING.sub(lambda m: m.group(1) + MASK, text)
    return PASSWORD_CLAUSE.sub(lambda m: m.group(1) + MASK, text)


def redact_tree(root: Path, secrets: list[str]) -> None:
    """Redact every text file under ``root`` in place (binary files are left alone)."""
    for path in root.rglob("*"):
        if not path.is_file() or path.is_symlink() or path.stat().st_size > 50_000_000:
            continue
        try:
            text = path.read_text()
        except (UnicodeDecodeError, PermissionError):
            continue
        cleaned = redact(text, secrets)
        if cleaned != text:
            path.write_text(cleaned)
