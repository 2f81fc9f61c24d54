"""What every evidence file shares: the UTC stamp (and the run's id) in its name, and redaction of what goes
into it."""

from __future__ import annotations

import datetime as dt
from dataclasses import fields, is_dataclass, replace
from pathlib import Path

from harness.process.redact import redact


def utc_stamp(moment: dt.datetime | None = None) -> str:
    return (moment or dt.datetime.now(dt.timezone.utc)).strftime("%Y%m%dT%H%M%SZ")


def evidence_stem(run_id: str, moment: dt.datetime | None = None) -> str:
    """``drill-<UTC stamp>-<run id, 8 characters>``, the name of a run's JSON and HTML: in time order by
    name, and apart for two runs that end in one second into one reports dir (the hook's drills of
    several servers share one)."""
    return f"drill-{utc_stamp(moment)}-{run_id[:8]}"


def redacted(value, secrets: list[str]):
    """A copy of ``value`` (records, dicts, lists, strings) with every string redacted.

    Redacting values before they are encoded, not the encoded text: the password-setting pattern
    would otherwise swallow a closing quote or tag after the mask, and a secret spelled with
    escapes (JSON, HTML) would not be found.
    """
    if isinstance(value, str):
        return redact(value, secrets)
    if is_dataclass(value) and not isinstance(value, type):
        return replace(value, **{f.name: redacted(getattr(value, f.name), secrets) for f in fields(value) if f.init})
    if isinstance(value, dict):
        return {redacted(key, secrets): redacted(item, secrets) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(redacted(item, secrets) for item in value)
    return value


def write_text(path: Path, text: str) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path
