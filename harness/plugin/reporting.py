"""Evidence of the run: run facts as JUnit suite properties, one DrillRecord per drill, JSON and HTML
written at the end, failures shown as the harness's one-paragraph explanations."""

from __future__ import annotations

import datetime as dt
import re
import socket
from pathlib import Path

import pytest
from hypothesis import is_hypothesis_test

from harness import __version__
from harness.errors import HarnessError, SetupError
from harness.evidence.files import utc_stamp
from harness.evidence.properties import restore_properties
from harness.evidence.records import DrillRecord
from harness.evidence.report_html import write_html
from harness.evidence.report_json import write_json
from harness.plugin.monitoring import history_trends, record_history, write_metrics_file
from harness.plugin.parallel import plain_nodeid, send_drill, send_run
from harness.plugin.state import NO_VERDICT, REPORTS, RESTORES, drill_config, run_state
from harness.process.redact import redact

# The run's facts that become JUnit suite properties (harness.plugin.parallel adds them under -n too).
SUITE_FACTS = ("harness_version", "stack", "postgresql", "barman", "host", "run_started_utc", "run_ended_utc", "shard")


def _utc_now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")


@pytest.fixture(scope="session", autouse=True)
def _run_facts(request, record_testsuite_property):
    """Suite properties: the run's facts, once its stacks have named their versions."""
    facts = run_state(request.config).record.facts
    facts.update({"harness_version": __version__, "host": socket.gethostname(), "run_started_utc": _utc_now()})
    yield
    facts["run_ended_utc"] = _utc_now()
    for name in SUITE_FACTS:
        if name in facts:
            record_testsuite_property(name, facts[name])


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    item.stash.setdefault(REPORTS, {})[report.when] = report
    # A harness error explains itself in a paragraph: show that, not a traceback wall (but keep
    # the notes hypothesis attaches to it: the falsifying example).
    if call.excinfo is not None and isinstance(call.excinfo.value, SetupError) and report.failed:
        # Not a red: the drill could not be run (wrong binaries, no room, ...): no verdict.
        item.stash[NO_VERDICT] = call.excinfo.value.cause
        run_state(item.config).no_verdict.append(item.nodeid)
    if call.excinfo is not None and isinstance(call.excinfo.value, HarnessError) and report.failed:
        where = item.location
        notes = "".join(f"\n{note}" for note in getattr(call.excinfo.value, "__notes__", ()))
        report.longrepr = f"{where[0]}:{(where[1] or 0) + 1}: {item.name}\n{call.excinfo.value.render()}{notes}"
    if report.when == "call" and report.failed and is_hypothesis_test(getattr(item, "obj", None)):
        _store_falsifying_example(item, report)
    if report.when == "teardown" and "drill" in item.keywords:
        send_drill(item, report, _fold_drill(item))  # under pytest-xdist, to the controller


def _fold_drill(item) -> DrillRecord:
    reports = item.stash.get(REPORTS, {})
    outcome, reason, seconds = "passed", "", 0.0
    for when in ("setup", "call", "teardown"):
        report = reports.get(when)
        if report is None:
            continue
        seconds += report.duration
        if outcome == "passed" and report.failed:
            outcome, reason = ("failed" if when == "call" and NO_VERDICT not in item.stash else "error"), \
                _reason(report)
        elif outcome == "passed" and report.skipped:
            outcome, reason = "skipped", _reason(report)
    restores = item.stash.get(RESTORES, [])
    restore_names = {name for name, _ in restore_properties(restores)}
    facts = {name: str(value) for name, value in item.user_properties if name not in restore_names}
    drill = DrillRecord(plain_nodeid(item), outcome, round(seconds, 3), reason, list(restores), facts)
    run_state(item.config).record.drills.append(drill)
    return drill


def _reason(report) -> str:
    if report.skipped and isinstance(report.longrepr, tuple):
        return str(report.longrepr[2])
    text = getattr(report, "longreprtext", "") or str(report.longrepr or "")
    lines = [line for line in text.splitlines() if line.strip()]
    errors = [line[2:].strip() for line in lines if line.startswith("E ")]
    return "\n".join((errors or lines[:4])[:6])


def _hypothesis_rerun(config) -> str:
    profile = config.getoption("hypothesis_profile")
    seed = config.getoption("hypothesis_seed")
    if seed is None:
        return f"--hypothesis-profile={profile} (derandomized: the same examples every run)"
    return f"--hypothesis-profile={profile} --hypothesis-seed={seed}"


def _store_falsifying_example(item, report) -> None:
    """Print how to rerun a failed hypothesis test and store that with its falsifying example."""
    config = item.config
    rerun = f"pytest '{item.nodeid}' {_hypothesis_rerun(config)}"
    report.sections.append(("hypothesis", f"rerun: {rerun}"))
    name = re.sub(r"[^A-Za-z0-9_.-]+", "-", item.name).strip("-")[:60]
    path = Path(drill_config(config).reports_dir) / f"hypothesis-{name}-{utc_stamp()}.txt"
    path.parent.mkdir(parents=True, exist_ok=True)
    state = run_state(config)
    path.write_text(redact(f"test: {item.nodeid}\nrerun: {rerun}\n\n{report.longreprtext}\n", state.secrets))
    item.user_properties.append(("hypothesis_report", str(path)))  # on the teardown report, as junit reads it
    state.record.kept.append(str(path))


def pytest_sessionfinish(session, exitstatus):
    state = run_state(session.config)
    if send_run(session.config):
        return  # a pytest-xdist worker: the controller writes the evidence, once, for all workers
    reds = [drill for drill in state.record.drills if drill.outcome == "failed"]
    if state.no_verdict and not reds and session.exitstatus == pytest.ExitCode.TESTS_FAILED:
        session.exitstatus = 2  # nothing found broken, but some drills could not run: no verdict
    if not state.record.drills and "shard" not in state.record.facts:
        return  # (a shard with nothing to run still says so: the merge counts its shards)
    state.record.facts.setdefault("run_ended_utc", _utc_now())
    drill = drill_config(session.config)
    reports = Path(drill.reports_dir)
    stamp = utc_stamp()
    # History and metrics first, so that the JSON and HTML say whether they were written.
    history = record_history(state, drill)
    metrics = write_metrics_file(state, drill, history)
    state.written = [write_json(state.record, reports / f"drill-{stamp}.json", state.secrets),
                     write_html(state.record, reports / f"drill-{stamp}.html", state.secrets,
                                history_trends(state, history)), *metrics]


def pytest_terminal_summary(terminalreporter, config):
    state = run_state(config)
    for path in state.record.kept:
        terminalreporter.write_line(f"kept for inspection: {path}")
    for path in state.written:
        terminalreporter.write_line(f"drill evidence: {path}")
    for note in state.notes:
        terminalreporter.write_line(note)
    if state.record.drills:
        facts = state.record.facts
        terminalreporter.write_line(
            f"drill summary: {state.record.summary_line()} (PostgreSQL {facts.get('postgresql')}, "
            f"Barman {facts.get('barman')}, stack {facts.get('stack')})")
