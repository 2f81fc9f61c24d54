"""Evidence of the run: run facts as JUnit suite properties, one DrillRecord per drill, JSON and HTML
written at the end, failures shown as the harness's one-paragraph explanations."""

from __future__ import annotations

import datetime as dt
import re
import socket
import uuid
from pathlib import Path

import pytest
from hypothesis import is_hypothesis_test

from harness import __version__
from harness.errors import HarnessError, SetupError
from harness.evidence.files import evidence_stem, utc_stamp
from harness.evidence.properties import restore_properties
from harness.evidence.records import DrillRecord
from harness.evidence.report_html import write_html
from harness.evidence.report_json import write_json
from harness.plugin.fixtures import configured_server
from harness.plugin.monitoring import guarded, history_trends, record_history, write_metrics_file
from harness.plugin.parallel import send_drill, send_run
from harness.plugin.state import NO_VERDICT, REPORTS, RESTORES, drill_config, run_state
from harness.process.redact import redact
from harness.test_ids import without_group

# The run's facts that become JUnit suite properties (harness.plugin.parallel adds them under -n too).
SUITE_FACTS = ("harness_version", "stack", "postgresql", "barman", "host", "run_started_utc", "run_ended_utc", "shard",
               "shard_run")

# Python's own errors of a bug in the harness (a wrong type, a missing name or attribute, a module that does
# not import): no finding about the backup, so no verdict. Assertions, HarnessError and the database's own
# errors (psycopg.Error) stay red: they are what a drill found.
HARNESS_BUGS = (TypeError, AttributeError, NameError, ImportError, SyntaxError, NotImplementedError)

# pytest's exit statuses of a run that ended before every test it chose had run.
STOPPED_EARLY = (pytest.ExitCode.INTERRUPTED, pytest.ExitCode.INTERNAL_ERROR, pytest.ExitCode.USAGE_ERROR)


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


def pytest_configure(config):
    config.pluginmanager.register(_Interruption(config), "pgbv-interruption")


class _Interruption:
    """Why pytest stopped the run (SIGTERM or Ctrl-C, pytest.exit() when a stack could not come up): a
    run fact, so that no server of the run is verified by the drills that happened to finish."""

    def __init__(self, config):
        self.config = config

    def pytest_keyboard_interrupt(self, excinfo):
        error = excinfo.value
        lines = str(getattr(error, "msg", "") or error).strip().splitlines()
        reason = f"{type(error).__name__}: {lines[0]}" if lines else type(error).__name__
        run_state(self.config).record.facts.setdefault("run_interrupted", reason)


def harness_bug(error: BaseException) -> str:
    """The no-verdict cause to show when ``error`` is a bug of the harness itself (HARNESS_BUGS, every one of
    a group), else ""."""
    leaves = _leaves(error)
    if not all(isinstance(leaf, HARNESS_BUGS) for leaf in leaves):
        return ""
    named = "; ".join(f"{type(leaf).__name__}: {leaf}" for leaf in leaves[:3])
    return (f"no verdict: the harness itself failed ({named}); this is a bug of pgbv, not a finding about the "
            "backup: please report it with the drill's traceback")


def _leaves(error: BaseException) -> list[BaseException]:
    if isinstance(error, BaseExceptionGroup):   # hypothesis reports several distinct errors as a group
        return [leaf for inner in error.exceptions for leaf in _leaves(inner)]
    return [error]


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    if call.when == "teardown" and "drill" in item.keywords:
        _name_configured_server(item)
    outcome = yield
    report = outcome.get_result()
    item.stash.setdefault(REPORTS, {})[report.when] = report
    error = call.excinfo.value if call.excinfo is not None and report.failed else None
    # Not a red: the drill could not be run (wrong binaries, no room, ...), or the harness itself
    # broke: no verdict.
    cause = error.cause if isinstance(error, SetupError) else \
        harness_bug(error) if error is not None and "drill" in item.keywords else ""
    if cause:
        item.stash[NO_VERDICT] = cause
        run_state(item.config).no_verdict.append(item.nodeid)
        if not isinstance(error, HarnessError):
            report.sections.append(("no verdict", cause))
    # A harness error explains itself in a paragraph: show that, not a traceback wall (but keep
    # the notes hypothesis attaches to it: the falsifying example).
    if call.excinfo is not None and isinstance(call.excinfo.value, HarnessError) and report.failed:
        where = item.location
        notes = "".join(f"\n{note}" for note in getattr(call.excinfo.value, "__notes__", ()))
        report.longrepr = f"{where[0]}:{(where[1] or 0) + 1}: {item.name}\n{call.excinfo.value.render()}{notes}"
    if report.when == "call" and report.failed and is_hypothesis_test(getattr(item, "obj", None)):
        _store_falsifying_example(item, report)
    if report.when == "teardown" and "drill" in item.keywords:
        send_drill(item, report, _fold_drill(item))  # under pytest-xdist, to the controller


def _name_configured_server(item) -> None:
    """A drill that ran, or failed to, whose fixtures did not name its Barman server (its stack never came
    up) names the server of the configuration: it counts against that server, which is then not verified."""
    reports = item.stash.get(REPORTS, {}).values()
    if any(name == "barman_server" for name, _ in item.user_properties) or any(r.skipped for r in reports):
        return
    server = configured_server(item.config, without_group(item.nodeid))
    if server:
        item.user_properties.append(("barman_server", server))   # before the teardown report copies them


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
    cause = item.stash.get(NO_VERDICT, "")
    if outcome == "error" and cause not in reason:
        reason = f"{cause}\n{reason}"
    restores = item.stash.get(RESTORES, [])
    restore_names = {name for name, _ in restore_properties(restores)}
    facts = {name: str(value) for name, value in item.user_properties if name not in restore_names}
    drill = DrillRecord(without_group(item.nodeid), outcome, round(seconds, 3), reason, list(restores), facts)
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


def stopped_early(session, exitstatus) -> str:
    """Why the run ended before every test it chose had run, "" when it did not: -x / --maxfail, an
    interrupt (its reason comes from _Interruption), an internal or usage error."""
    if session.shouldfail or session.shouldstop:
        return str(session.shouldfail or session.shouldstop)
    if exitstatus in STOPPED_EARLY:
        return f"pytest ended {pytest.ExitCode(exitstatus).name} (exit {int(exitstatus)})"
    return ""


def pytest_sessionfinish(session, exitstatus):
    state = run_state(session.config)
    facts = state.record.facts
    stopped = stopped_early(session, exitstatus)
    if stopped:   # what finished may have passed; what it did not reach was not verified: no verdict
        facts.setdefault("run_interrupted", stopped)
    if send_run(session.config):
        return  # a pytest-xdist worker: the controller writes the evidence, once, for all workers
    reds = [drill for drill in state.record.drills if drill.outcome == "failed"]
    if state.no_verdict and not reds and session.exitstatus == pytest.ExitCode.TESTS_FAILED:
        session.exitstatus = 2  # nothing found broken, but some drills could not run: no verdict
    if session.config.getoption("collectonly", False) or (not state.record.drills and "shard" not in facts):
        return  # (a shard with nothing to run still says so: the merge counts its shards; --collect-only runs none)
    facts.setdefault("run_ended_utc", _utc_now())
    facts.setdefault("run_id", uuid.uuid4().hex)
    drill = drill_config(session.config)
    stem = Path(drill.reports_dir) / evidence_stem(facts["run_id"])
    # History and metrics first, so that the JSON and HTML say whether they were written. No step of
    # them may cost the verdict or the JSON and HTML: an error none expects becomes a note.
    history = guarded(state, "run history NOT RECORDED", "run_history", record_history, state, drill)
    metrics = guarded(state, "metrics NOT WRITTEN", "metrics_file", write_metrics_file, state, drill, history,
                      fallback=[])
    trends = guarded(state, "run history not read for the trends", None, history_trends, state, history)
    state.written = [write_json(state.record, Path(f"{stem}.json"), state.secrets)]
    page = guarded(state, "HTML report NOT WRITTEN", None, write_html, state.record, Path(f"{stem}.html"),
                   state.secrets, trends)
    state.written += ([page] if page else []) + metrics


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
