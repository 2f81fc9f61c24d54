"""pytest plugin of the verification harness: options, markers and fixtures over harness/.

Thin on purpose: everything that touches PostgreSQL or Barman lives in harness/, so a nightly
script can drive the same drills without pytest.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import random
import re
import shutil
import signal
import socket
import zlib
from pathlib import Path

import pytest
from hypothesis import HealthCheck, is_hypothesis_test
from hypothesis import settings as hypothesis_settings

from harness import __version__
from harness.stacks import compose
from harness.errors import HarnessError, SetupError
from harness.process.redact import redact, redact_tree
from harness.evidence.report import DrillResult, RunEvidence, utc_stamp, write_html, write_json
from harness.process.progress import Progress
from harness.drill.scratch import Scratch
from harness.stacks.local import LocalStack, StackOptions

# --pg-versions, the pg_bindir fixture, postgresql_version per drill, the incremental drills' stack.
pytest_plugins = ["pgversions_plugin"]

ROOT = Path(__file__).resolve().parent
REPORTS = ROOT / "reports"
STACKS = ("local", "compose")

# Hypothesis profiles. A property drill recovers a backup per drawn target (seconds each): "ci" runs
# few examples, the same ones every time; "nightly" explores. Chosen with --hypothesis-profile, else
# DRILL_HYPOTHESIS_PROFILE, else "ci". A profile applies to every hypothesis test of the run: the pure
# property tests under tests/ set their own max_examples.
_SLOW_EXAMPLES = dict(deadline=None, database=None, print_blob=True,
                      suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
hypothesis_settings.register_profile("ci", max_examples=5, derandomize=True, **_SLOW_EXAMPLES)
hypothesis_settings.register_profile("nightly", max_examples=50, **_SLOW_EXAMPLES)


def pytest_addoption(parser):
    group = parser.getgroup("drill", "backup verification drills")
    group.addoption("--stack", choices=STACKS, default="local",
                    help="which stack the drills run on (default: local, real processes on this machine)")
    group.addoption("--pg-bindir", default=os.environ.get("DRILL_PG_BINDIR"),
                    help="PostgreSQL bin dir (default: pg_config --bindir, else newest /usr/lib/postgresql/*/bin)")
    group.addoption("--server-user", default=None,
                    help="unprivileged user that runs PostgreSQL when the harness runs as root (default: postgres)")
    group.addoption("--source-port", type=int, default=None,
                    help="TCP port of the source server on 127.0.0.1 (default: a free one)")
    group.addoption("--rows", type=int, default=int(os.environ.get("DRILL_ROWS", "10000")),
                    help="book rows written before the first backup of a drill (default: 10000)")
    group.addoption("--data-seed", type=int, default=0,
                    help="mixed with each test's id into its data seed, to vary the data (default: 0)")
    group.addoption("--keep-on-failure", action=argparse.BooleanOptionalAction, default=True,
                    help="copy a failed drill's scratch data dir and logs under reports/kept/ (default: on)")
    group.addoption("--workdir", default=None,
                    help="where the run directory (data dirs, Barman home, logs) is made (default: /dev/shm when it "
                         "is a tmpfs with room to spare, else the system temp dir)")
    group.addoption("--reports-dir", default=str(REPORTS),
                    help="where kept evidence of failed drills goes (default: reports/)")
    group.addoption("--compose-project", default=None,
                    help="compose project name for --stack compose (default: pgbv<pid>, unique per run)")
    group.addoption("--keep", action="store_true", default=False,
                    help="keep everything: the run directory, every scratch instance, all logs")


@pytest.hookimpl(tryfirst=True)  # before hypothesis' plugin reads the profile and seed options
def pytest_configure(config):
    config._drill_reporter = DrillEvidenceReporter(config)
    config.pluginmanager.register(config._drill_reporter, "drill-evidence")
    if not config.getoption("hypothesis_profile", None):
        config.option.hypothesis_profile = os.environ.get("DRILL_HYPOTHESIS_PROFILE") or "ci"
    try:
        profile = hypothesis_settings.get_profile(config.option.hypothesis_profile)
    except Exception as exc:  # hypothesis' InvalidArgument
        raise pytest.UsageError(f"--hypothesis-profile / DRILL_HYPOTHESIS_PROFILE: {exc} (use ci or nightly)") from None
    if not profile.derandomize and config.getoption("hypothesis_seed", None) is None:
        # A seed of our own, so a failure can be rerun: hypothesis only reports its own in rare cases.
        config.option.hypothesis_seed = str(random.getrandbits(32))
    # CI ends a job with SIGTERM: turn it into Ctrl-C so fixtures tear the stack down.
    if hasattr(signal, "SIGTERM"):
        try:
            signal.signal(signal.SIGTERM, _interrupt)
        except ValueError:  # not the main thread
            pass


def _interrupt(signum, frame):
    raise KeyboardInterrupt(f"signal {signum}")


def pytest_collection_modifyitems(config, items):
    for item in items:
        # A drill is any test that needs the stack (directly or through another fixture).
        if "stack" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.drill)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    setattr(item, f"_drill_{report.when}", report)
    # A harness error explains itself in a paragraph: show that, not a traceback wall (but keep
    # the notes hypothesis attaches to it: the falsifying example).
    if call.excinfo is not None and isinstance(call.excinfo.value, HarnessError) and report.failed:
        where = item.location
        notes = "".join(f"\n{note}" for note in getattr(call.excinfo.value, "__notes__", ()))
        report.longrepr = f"{where[0]}:{(where[1] or 0) + 1}: {item.name}\n{call.excinfo.value.render()}{notes}"
    if report.when == "call" and report.failed and is_hypothesis_test(getattr(item, "obj", None)):
        _store_falsifying_example(item, report)


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
    stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    name = re.sub(r"[^A-Za-z0-9_.-]+", "-", item.name).strip("-")[:60]
    path = Path(config.getoption("reports_dir")) / f"hypothesis-{name}-{stamp}.txt"
    path.parent.mkdir(parents=True, exist_ok=True)
    reporter = config._drill_reporter
    path.write_text(redact(f"test: {item.nodeid}\nrerun: {rerun}\n\n{report.longreprtext}\n", reporter.secrets))
    item.user_properties.append(("hypothesis_report", str(path)))  # on the teardown report, as junit reads it
    reporter.evidence.kept.append(str(path))


# -- fixtures -------------------------------------------------------------------------------------

@pytest.fixture(scope="session")
def stack(request, record_testsuite_property, pg_bindir):
    """The running stack (source server + Barman streaming its WAL), one per test session."""
    config = request.config
    options = StackOptions(
        pg_bindir=pg_bindir,
        server_user=config.getoption("server_user"),
        port=config.getoption("source_port"),
        workdir=config.getoption("workdir"),
        rows=config.getoption("rows"),
        keep=config.getoption("keep"),
        progress=Progress.for_terminal(),
    )
    try:
        if config.getoption("stack") == "compose":
            running = request.getfixturevalue("compose_stack")
        else:
            running = LocalStack(options).start()
    except HarnessError as exc:
        pytest.exit(f"The {config.getoption('stack')} stack could not be brought up, so no drill has a "
                    f"verdict.\n{exc.render()}", returncode=2)
    evidence = config._drill_reporter.evidence
    evidence.facts.update({"harness_version": __version__, "stack": running.kind, **running.versions(),
                           "host": socket.gethostname(), "run_started_utc": _utc_now()})
    for name, value in evidence.facts.items():
        record_testsuite_property(name, value)
    config._drill_reporter.secrets += running.credentials.secrets()  # a run may start several stacks
    yield running
    running.close()
    evidence.facts["run_ended_utc"] = _utc_now()
    record_testsuite_property("run_ended_utc", evidence.facts["run_ended_utc"])
    if options.keep and running.run_dir:
        evidence.kept.append(str(running.run_dir))


# -- the compose stack, brought up and down by pytest-docker ---------------------------------------

@pytest.fixture(scope="session")
def compose_plan(request):
    """Engine, images, run dir, passwords and barman.conf for this run's compose project."""
    config = request.config
    progress = Progress.for_terminal()
    compose.ensure_engine()
    base_image = compose.build_images(progress)
    project = config.getoption("compose_project") or f"pgbv{os.getpid()}"
    plan = compose.plan(project, base_image, workdir=config.getoption("workdir"), port=config.getoption("source_port"))
    # pytest-docker runs compose through a shell that inherits this environment.
    os.environ.update(plan.env)
    yield plan
    if not config.getoption("keep"):
        shutil.rmtree(plan.run_dir, ignore_errors=True)  # also when the stack never came up


@pytest.fixture(scope="session")
def docker_compose_command(compose_plan):
    return " ".join(compose_plan.command)


@pytest.fixture(scope="session")
def docker_compose_file():
    return str(compose.COMPOSE_FILE)


@pytest.fixture(scope="session")
def docker_compose_project_name(compose_plan):
    return compose_plan.project


@pytest.fixture(scope="session")
def docker_setup():
    return ["up -d postgres barman"]      # images were built (and cached) by compose_plan


@pytest.fixture(scope="session")
def docker_cleanup(request):
    if request.config.getoption("keep"):
        return []
    return ["--profile scratch down -v --remove-orphans --timeout 20"]


@pytest.fixture(scope="session")
def compose_stack(request, compose_plan):
    config = request.config
    try:
        request.getfixturevalue("docker_services")
    except Exception as exc:  # pytest-docker reports a failed `up` as a bare Exception with the output
        if isinstance(exc, HarnessError):
            raise
        raise SetupError(f"`compose up` of project {compose_plan.project} failed.", details=str(exc)[-3000:]) from None
    running = compose.ComposeStack(compose_plan, keep=config.getoption("keep"), progress=Progress.for_terminal())
    request.addfinalizer(running.close)
    return running.attach()


@pytest.fixture(scope="session")
def source(stack):
    return stack.source


@pytest.fixture(scope="session")
def barman(stack):
    return stack.barman


@pytest.fixture
def data_seed(request, record_property) -> int:
    """Each test's data comes from a seed derived from its id: a failure reproduces on rerun."""
    seed = zlib.crc32(f"{request.config.getoption('data_seed')}:{request.node.nodeid}".encode())
    record_property("data_seed", seed)
    return seed


@pytest.fixture
def books(source, data_seed):
    return source.books(data_seed)


@pytest.fixture(scope="session")
def rows(request) -> int:
    return request.config.getoption("rows")


@pytest.fixture
def scratch(request, stack, record_property):
    """Recoveries into scratch instances; evidence recorded, kept when the drill failed."""
    drill = Scratch(stack, request.node.name)
    yield drill
    for name, value in drill.evidence():
        record_property(name, value)
    config = request.config
    failed = any(getattr(getattr(request.node, f"_drill_{when}", None), "failed", False)
                 for when in ("setup", "call"))
    if config.getoption("keep"):
        return  # the whole run dir stays; its path is printed at the end
    if failed and config.getoption("keep_on_failure") and drill.servers:
        stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
        kept = drill.keep(Path(config.getoption("reports_dir")) / "kept" / f"{drill.label}-{stamp}")
        redact_tree(kept, stack.credentials.secrets())
        record_property("kept_evidence", str(kept))
        config._drill_reporter.evidence.kept.append(str(kept))
    drill.discard()


# -- reporting -------------------------------------------------------------------------------------

def _utc_now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")


class DrillEvidenceReporter:
    """Folds each drill's reports into a DrillResult; writes the JSON and HTML evidence at the end."""

    def __init__(self, config):
        self.config = config
        self.evidence = RunEvidence()
        self.secrets: list[str] = []
        self.written: list[Path] = []
        self._phases: dict = {}

    def pytest_runtest_logreport(self, report):
        if "drill" not in report.keywords:
            return
        state = self._phases.setdefault(report.nodeid, {"outcome": "passed", "seconds": 0.0, "reason": ""})
        state["seconds"] += report.duration
        if report.failed and state["outcome"] == "passed":
            state["outcome"] = "failed" if report.when == "call" else "error"
            state["reason"] = _reason(report)
        elif report.skipped and state["outcome"] == "passed":
            state["outcome"] = "skipped"
            state["reason"] = _reason(report)
        if report.when == "teardown":
            self.evidence.drills.append(DrillResult(
                report.nodeid, state["outcome"], round(state["seconds"], 3), state["reason"],
                {name: str(value) for name, value in report.user_properties}))

    def pytest_sessionfinish(self, session, exitstatus):
        if not self.evidence.drills:
            return
        self.evidence.facts.setdefault("run_ended_utc", _utc_now())
        reports = Path(self.config.getoption("reports_dir"))
        stamp = utc_stamp()
        self.written = [write_json(self.evidence, reports / f"drill-{stamp}.json", self.secrets),
                        write_html(self.evidence, reports / f"drill-{stamp}.html", self.secrets)]

    def pytest_terminal_summary(self, terminalreporter):
        for path in self.evidence.kept:
            terminalreporter.write_line(f"kept for inspection: {path}")
        for path in self.written:
            terminalreporter.write_line(f"drill evidence: {path}")
        if self.evidence.drills:
            facts = self.evidence.facts
            terminalreporter.write_line(
                f"drill summary: {self.evidence.summary_line()} (PostgreSQL {facts.get('postgresql')}, "
                f"Barman {facts.get('barman')}, stack {facts.get('stack')})")


def _reason(report) -> str:
    if report.skipped and isinstance(report.longrepr, tuple):
        return str(report.longrepr[2])
    text = getattr(report, "longreprtext", "") or str(report.longrepr or "")
    lines = [line for line in text.splitlines() if line.strip()]
    errors = [line[2:].strip() for line in lines if line.startswith("E ")]
    return "\n".join((errors or lines[:4])[:6])
