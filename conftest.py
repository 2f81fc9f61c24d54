"""pytest plugin of the verification harness: options, markers and fixtures over harness/.

Thin on purpose: everything that touches PostgreSQL or Barman lives in harness/, so a nightly
script can drive the same drills without pytest.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import signal
import sys
import zlib
from pathlib import Path

import pytest

from harness import __version__
from harness.errors import HarnessError
from harness.scratch import Scratch
from harness.stack import LocalStack, StackOptions

ROOT = Path(__file__).resolve().parent
REPORTS = ROOT / "reports"
STACKS = ("local",)


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
                    help="where the run directory (data dirs, Barman home, logs) is made (default: system temp dir)")
    group.addoption("--reports-dir", default=str(REPORTS),
                    help="where kept evidence of failed drills goes (default: reports/)")
    group.addoption("--keep", action="store_true", default=False,
                    help="keep everything: the run directory, every scratch instance, all logs")


def pytest_configure(config):
    config._drill_kept = []
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
        if "scenarios" in Path(str(item.fspath)).parts:
            item.add_marker(pytest.mark.drill)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    setattr(item, f"_drill_{report.when}", report)
    # A harness error explains itself in a paragraph: show that, not a traceback wall.
    if call.excinfo is not None and isinstance(call.excinfo.value, HarnessError) and report.failed:
        where = item.location
        report.longrepr = f"{where[0]}:{(where[1] or 0) + 1}: {item.name}\n{call.excinfo.value.render()}"


# -- fixtures -------------------------------------------------------------------------------------

@pytest.fixture(scope="session")
def stack(request, record_testsuite_property):
    """The running stack (source server + Barman streaming its WAL), one per test session."""
    config = request.config
    options = StackOptions(
        pg_bindir=config.getoption("pg_bindir"),
        server_user=config.getoption("server_user"),
        port=config.getoption("source_port"),
        workdir=config.getoption("workdir"),
        keep=config.getoption("keep"),
        progress=_progress_printer(config),
    )
    running = LocalStack(options)
    try:
        running.start()
    except HarnessError as exc:
        pytest.exit(f"The {config.getoption('stack')} stack could not be brought up, so no drill has a "
                    f"verdict.\n{exc.render()}", returncode=2)
    facts = {"harness_version": __version__, "stack": running.kind, **running.versions(),
             "run_started_utc": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")}
    for name, value in facts.items():
        record_testsuite_property(name, value)
    config._drill_run_facts = facts
    yield running
    running.close()
    if options.keep and running.run_dir:
        config._drill_kept.append(str(running.run_dir))


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


@pytest.fixture
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
        record_property("kept_evidence", str(kept))
        config._drill_kept.append(str(kept))
    drill.discard()


# -- reporting -------------------------------------------------------------------------------------

def _progress_printer(config):
    # Progress for people at a terminal; CI logs stay quiet.
    if not sys.stderr.isatty() or os.environ.get("CI"):
        return lambda message: None
    reporter = config.pluginmanager.get_plugin("terminalreporter")

    def show(message: str) -> None:
        if reporter:
            reporter.write_line(f"[stack] {message}")
    return show


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    facts = getattr(config, "_drill_run_facts", None)
    if facts:
        terminalreporter.write_line(
            "drill stack: " + ", ".join(f"{key} {value}" for key, value in facts.items()))
    for path in getattr(config, "_drill_kept", []):
        terminalreporter.write_line(f"kept for inspection: {path}")
