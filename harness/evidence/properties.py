"""JUnit property names and values of a drill, as auditors' tooling reads them.

The names and their order are those of release 0.1.0 (tests/data/junit-properties-0.1.0.json);
this is the only place they are spelled.
"""

from __future__ import annotations

from harness.evidence.records import DrillRecord, RestoreRecord


def _one_restore(record: RestoreRecord) -> list[tuple[str, str]]:
    return [
        ("backup_id", record.backup_id),
        ("backup_end_time", record.backup_end_time),
        ("target_kind", record.target_kind),
        ("target_value", record.target_value),
        ("target_inclusive", "true" if record.target_inclusive else "false"),
        ("recovery_stop", record.stop_line),
        ("timeline", str(record.timeline or "")),
        ("backups_combined", " <- ".join(record.combined_backups)),
        ("recovery_seconds", f"{record.recovery_seconds:.3f}"),
        ("rpo_seconds", "" if record.rpo_seconds is None else f"{record.rpo_seconds:.3f}"),
        ("expected_fingerprint", record.expected_fingerprint),
        ("actual_fingerprint", record.actual_fingerprint),
    ] + [(f"check_{check.name}", check.render()) for check in record.checks] + _foreign(record)


def _foreign(record: RestoreRecord) -> list[tuple[str, str]]:
    """What only restores of backups the harness did not take carry (after 0.1.0's names)."""
    pairs = []
    if record.newest_commit:
        pairs.append(("newest_commit", record.newest_commit))
    if record.tables:
        pairs.append(("restored_tables", "; ".join(table.render() for table in record.tables)))
    if record.overrides:
        pairs.append(("scratch_overrides", "; ".join(record.overrides)))
    return pairs


def restore_properties(records: list[RestoreRecord]) -> list[tuple[str, str]]:
    """(name, value) pairs of a drill's restores: unprefixed for one, ``restoreN_`` for several."""
    pairs: list[tuple[str, str]] = []
    for index, record in enumerate(records, start=1):
        prefix = f"restore{index}_" if len(records) > 1 else ""
        pairs += [(prefix + name, value) for name, value in _one_restore(record)]
    return pairs


def drill_properties(drill: DrillRecord) -> dict[str, str]:
    """The drill's facts then its restores' properties, flat, as one JUnit test case carries them."""
    return {**drill.facts, **dict(restore_properties(drill.restores))}
