"""The run's evidence as one JSON document: run facts, verdict, and per drill its flat properties
(as in JUnit) plus its restores as typed objects."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

from harness.evidence.files import redacted, write_text
from harness.evidence.properties import drill_properties
from harness.evidence.records import DrillRecord, RestoreRecord, RunRecord


def restore_document(record: RestoreRecord) -> dict:
    """Every field of the record (checks as {name, passed, detail}) plus its recovery seconds."""
    document = asdict(record)
    document["combined_backups"] = list(record.combined_backups)
    document["recovery_seconds"] = record.recovery_seconds
    return document


def drill_document(drill: DrillRecord) -> dict:
    return {"nodeid": drill.nodeid, "outcome": drill.outcome, "seconds": drill.seconds, "reason": drill.reason,
            "properties": drill_properties(drill),
            "restores": [restore_document(record) for record in drill.restores]}


def run_document(run: RunRecord) -> dict:
    return {"run": run.facts, "summary": run.summary_line(), "counts": run.counts(), "kept": run.kept,
            "drills": [drill_document(drill) for drill in run.drills]}


def write_json(run: RunRecord, path: Path, secrets: list[str]) -> Path:
    return write_text(path, json.dumps(run_document(redacted(run, secrets)), indent=2) + "\n")
