"""What the run leaves for monitoring, from its RunRecord as the session ends (never per test, so a
run whose drills ran elsewhere, on xdist workers, is recorded once): the run history, the trends the
HTML page shows from it, the Prometheus metrics file.

None of them can cost a verdict: what could not be done is said on the terminal and in the run's
facts (``run_history``, ``metrics_file``), and the run goes on. ``guarded`` runs each step so that
even an error none of them expects (a bug of the harness) is a note, never a lost verdict or report.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from harness.config import DrillConfig
from harness.evidence.metrics import MetricsNotWritten, write_metrics
from harness.evidence.run_history import HistoryUnavailable, RunHistory, history_path
from harness.evidence.trends import ServerTrend, server_trends
from harness.plugin.state import RunState

T = TypeVar("T")


def guarded(state: RunState, what: str, fact: str | None, step: Callable[..., T], *args, fallback: T = None) -> T:
    """``step(*args)``; on an error it does not handle itself, ``fallback``, and what failed is said on the
    terminal and (``fact``) in the run's facts: the evidence is still written, the verdict stands."""
    try:
        return step(*args)
    except Exception as exc:  # whatever it is: monitoring never costs the verdict or the JSON and HTML
        error = f"{type(exc).__name__}: {exc}"
        if fact:
            state.record.facts[fact] = f"not written: the harness failed ({error})"
        state.notes.append(f"{what} (the verdict stands): the harness itself failed ({error}); this is a bug "
                           "of pgbv, please report it with this line")
        return fallback


def record_history(state: RunState, drill: DrillConfig, timeout: float = 10.0) -> RunHistory | None:
    """Append the run's drills to the history; None (and said so) when it cannot be written.
    ``timeout``: how long to wait for another run's lock on it."""
    facts = state.record.facts
    facts.setdefault("run_id", uuid.uuid4().hex)
    history = RunHistory(history_path(drill.history, drill.reports_dir), timeout=timeout)
    try:
        history.append(state.record, state.secrets)
    except HistoryUnavailable as exc:
        facts["run_history"] = f"not recorded: {exc.cause}"
        state.notes.append(f"run history NOT RECORDED (the verdict stands): {exc.render()}")
        return None
    facts["run_history"] = str(history.path)
    state.history = history
    return history


def history_trends(state: RunState, history: RunHistory | None) -> list[ServerTrend] | None:
    if history is None:
        return None
    try:
        return server_trends(history, state.record)
    except HistoryUnavailable as exc:
        state.notes.append(f"run history not read for the trends: {exc.render()}")
        return None


def write_metrics_file(state: RunState, drill: DrillConfig, history: RunHistory | None) -> list[Path]:
    """The metrics file with --metrics-file ([] without, or when it could not be written)."""
    if drill.metrics_file is None:
        return []
    try:
        notes = write_metrics(state.record, drill.metrics_file, history)
    except MetricsNotWritten as exc:
        state.record.facts["metrics_file"] = f"not written: {exc.cause}"
        state.notes.append(f"metrics NOT WRITTEN (the verdict stands): {exc.render()}")
        return []
    state.record.facts["metrics_file"] = str(drill.metrics_file)
    state.notes += [f"metrics: {note}" for note in notes]
    return [Path(drill.metrics_file)]
