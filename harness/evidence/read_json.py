"""The run's JSON evidence (report_json.py) read back into typed records: for pgbv-merge, which folds
the shards' reports into one, and for the pytest-xdist controller, which receives each worker's drills.

Lenient about what it does not know (a field added by a newer harness is ignored, one missing takes
its default), strict about the shape: a document that is not a run raises ``EvidenceUnreadable``.
"""

from __future__ import annotations

import json
from dataclasses import MISSING, fields
from pathlib import Path

from harness.errors import HarnessError
from harness.evidence.properties import restore_properties
from harness.evidence.records import CheckOutcome, DrillRecord, RestoreRecord, RunRecord, TableFacts


class EvidenceUnreadable(HarnessError):
    """A JSON evidence file that cannot be read back into a run."""


def read_run(path: Path) -> RunRecord:
    try:
        document = json.loads(Path(path).read_text(encoding="utf-8"))
        return run_from_document(document)
    except OSError as exc:
        raise EvidenceUnreadable(f"The evidence file {path} cannot be read: {exc.strerror or exc}.") from None
    except (ValueError, TypeError, KeyError, AttributeError) as exc:
        raise EvidenceUnreadable(f"The evidence file {path} is not a run's JSON evidence: "
                                 f"{type(exc).__name__}: {exc}.",
                                 "Was it cut short while being copied? Compare it with the shard's own copy.") from None


def run_from_document(document: dict) -> RunRecord:
    if not isinstance(document, dict) or not isinstance(document.get("drills"), list):
        raise ValueError("no list of drills")
    return RunRecord(facts={str(k): str(v) for k, v in dict(document.get("run") or {}).items()},
                     drills=[drill_from_document(drill) for drill in document["drills"]],
                     kept=[str(path) for path in document.get("kept") or []])


def drill_from_document(document: dict) -> DrillRecord:
    restores = [restore_from_document(restore) for restore in document.get("restores") or []]
    # The document carries facts and restore properties flat, as JUnit does: the facts are the rest.
    restore_names = {name for name, _ in restore_properties(restores)}
    facts = {str(k): str(v) for k, v in dict(document.get("properties") or {}).items() if k not in restore_names}
    return DrillRecord(nodeid=str(document["nodeid"]), outcome=str(document["outcome"]),
                       seconds=float(document.get("seconds") or 0.0), reason=str(document.get("reason") or ""),
                       restores=restores, facts=facts)


def restore_from_document(document: dict) -> RestoreRecord:
    values = _known_fields(RestoreRecord, document)
    values["checks"] = [CheckOutcome(**_known_fields(CheckOutcome, check)) for check in values.get("checks", [])]
    values["tables"] = [TableFacts(**_known_fields(TableFacts, table)) for table in values.get("tables", [])]
    values["combined_backups"] = tuple(values.get("combined_backups", ()))
    values["overrides"] = list(values.get("overrides", []))
    return RestoreRecord(**values)


def _known_fields(cls, document: dict) -> dict:
    """The document's values for the dataclass's init fields; a required one missing raises KeyError."""
    values = {}
    for field in fields(cls):
        if not field.init:
            continue
        if field.name in document:
            values[field.name] = document[field.name]
        elif field.default is MISSING and field.default_factory is MISSING:
            raise KeyError(f"{cls.__name__}.{field.name}")
    return values
