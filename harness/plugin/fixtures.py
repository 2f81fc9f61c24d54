"""The fixtures scenarios use: stack, source, barman, books, scratch, rows, data_seed."""

from __future__ import annotations

import datetime as dt
import zlib
from pathlib import Path

import pytest

from harness.drill.scratch import Scratch
from harness.evidence.properties import restore_properties
from harness.plugin.factories import stack_fixture
from harness.plugin.state import REPORTS, RESTORES, drill_config, run_state
from harness.process.redact import redact_tree
from harness.stacks import stack_class

# The run's stack, one per test session (per PostgreSQL version with --pg-versions).
stack = stack_fixture()


# Module scope: a module may declare a stack of its own (stack_fixture(scope="module")).
@pytest.fixture(scope="module")
def source(stack):
    return stack.source


@pytest.fixture(scope="module")
def barman(stack):
    return stack.barman


@pytest.fixture(autouse=True)
def _record_barman_server(request, record_property):
    """Every drill names the Barman server it ran on (metrics and the run history are per server), as
    the existing stack's drills do; recorded last, after the properties of release 0.1.0. A drill whose
    stack never came up names the server of the configuration instead (``configured_server``, through
    harness.plugin.reporting), so that it still counts against that server."""
    server = request.getfixturevalue("stack").barman.server if "stack" in request.fixturenames else None
    yield
    if server:
        record_property("barman_server", server)


def configured_server(config, nodeid: str) -> str | None:
    """The Barman server a drill runs on as the configuration says it, known before any stack is up (and
    on the pytest-xdist controller, which sees only test ids): an existing drill's from its parameter,
    any other's the one the run's kind of stack configures."""
    from harness.plugin.existing import existing_server  # a plugin of its own, registered after this one

    drill = drill_config(config)
    if drill.stack == "existing":
        return existing_server(config, nodeid)
    return stack_class(drill.stack).configured_server(drill)


@pytest.fixture(scope="session")
def rows(request) -> int:
    return drill_config(request.config).rows


def data_seed_for(config, nodeid: str) -> int:
    """A test's data seed, derived from its id: a failure reproduces on rerun."""
    return zlib.crc32(f"{drill_config(config).data_seed}:{nodeid}".encode())


@pytest.fixture
def data_seed(request, record_property) -> int:
    seed = data_seed_for(request.config, request.node.nodeid)
    record_property("data_seed", seed)
    return seed


@pytest.fixture
def books(source, data_seed):
    return source.books(data_seed)


@pytest.fixture
def scratch(request, stack, record_property):
    """Recoveries into scratch instances; their records are the drill's evidence, kept when it failed."""
    drill = Scratch(stack, request.node.name)
    yield drill
    finish_scratch(request, drill, stack, record_property)


def finish_scratch(request, drill, stack, record_property) -> None:
    """A drill's restores become its evidence; a failed drill's scratches and logs are kept."""
    request.node.stash[RESTORES] = list(drill.records)
    for name, value in restore_properties(drill.records):
        record_property(name, value)
    config = drill_config(request.config)
    reports = request.node.stash.get(REPORTS, {})
    failed = any(getattr(reports.get(when), "failed", False) for when in ("setup", "call"))
    if config.keep:
        return  # the whole run dir stays; its path is printed at the end
    if failed and config.keep_on_failure and drill.servers:
        stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
        kept = drill.keep(Path(config.reports_dir) / "kept" / f"{drill.label}-{stamp}")
        secrets = stack.credentials.secrets() if stack.credentials else []
        redact_tree(kept, secrets)
        record_property("kept_evidence", str(kept))
        run_state(request.config).record.kept.append(str(kept))
    drill.discard()
