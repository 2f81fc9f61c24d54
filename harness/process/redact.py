"""Keeping secrets out of reports and kept logs."""

from __future__ import annotations

import os
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


def redact_file(path: Path, secrets: list[str]) -> None:
    """Redact one console output in place; a missing file stays missing, bytes that are not UTF-8 are kept."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8", errors="surrogateescape")
    except FileNotFoundError:
        return
    cleaned = redact(text, secrets)
    if cleaned != text:  # whole or not at all: a full disk leaves the file as it was, not half of it
        temporary = path.with_name(f".{path.name}.{os.getpid()}.redacting")
        try:
            temporary.write_text(cleaned, encoding="utf-8", errors="surrogateescape")
            os.replace(temporary, path)
        finally:
            temporary.unlink(missing_ok=True)
