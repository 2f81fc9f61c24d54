"""What the plugin shares across hooks and fixtures, kept in pytest's stashes (no private attributes)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pytest

from harness.config import DrillConfig
from harness.evidence.records import RestoreRecord, RunRecord
from harness.evidence.run_history import RunHistory


@dataclass
class RunState:
    """The run's evidence as it accumulates, the secrets to keep out of it, the files written."""

    record: RunRecord = field(default_factory=RunRecord)
    secrets: list[str] = field(default_factory=list)
    written: list[Path] = field(default_factory=list)
    no_verdict: list[str] = field(default_factory=list)  # drills that could not be run (SetupError)
    notes: list[str] = field(default_factory=list)       # what the run could not record (history, metrics)
    history: RunHistory | None = None                    # the run history, once this run is in it


CONFIG = pytest.StashKey[DrillConfig]()
RUN = pytest.StashKey[RunState]()
RESTORES = pytest.StashKey[list[RestoreRecord]]()   # per test item: its restores' records
REPORTS = pytest.StashKey[dict]()                   # per test item: its setup/call/teardown reports
NO_VERDICT = pytest.StashKey[str]()                 # per test item: why it could not be run, when so


def drill_config(config: pytest.Config) -> DrillConfig:
    return config.stash[CONFIG]


def run_state(config: pytest.Config) -> RunState:
    return config.stash[RUN]
