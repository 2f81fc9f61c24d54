"""Fixture factories, in the manner of pytest-postgresql: ``stack_fixture()`` makes a stack fixture.

    from harness.plugin.factories import stack_fixture
    stack = stack_fixture(min_pg_major=17, scope="module")   # this module's own stack, on 17+

The run's default ``stack`` fixture is ``stack_fixture()`` at session scope. ``source``, ``barman``
and ``scratch`` follow whichever ``stack`` a test sees, so a module that declares its own gets
them too.
"""

from __future__ import annotations

import pytest

from harness.errors import HarnessError
from harness.plugin.state import drill_config, run_state
from harness.plugin.versions import bindir_for
from harness.stacks import make_stack, stack_class


def stack_fixture(*, min_pg_major: int | None = None, scope: str = "session", kinds: tuple[str, ...] | None = None,
                  barman_settings: dict | None = None, name: str = "stack"):
    """A fixture that brings up a stack of the run's kind (``--stack``), on the run's PostgreSQL, or
    on the newest installed one of at least ``min_pg_major`` when the run named none; skipped with
    the reason when that cannot be had, or when the run's stack kind is not in ``kinds``.
    ``barman_settings`` (local stack only) add to Barman's server section, e.g. {"compression": "gzip"};
    ``name``: the fixture's name, for a second stack beside the run's ``stack``."""
    if barman_settings and kinds != ("local",):
        raise ValueError("barman_settings apply to the local stack only: pass kinds=('local',)")

    @pytest.fixture(scope=scope, name=name)
    def stack(request, pg_bindir):
        config = request.config
        drill = drill_config(config)
        if drill.stack == "existing":
            pytest.skip("this drill writes its own rows on a stack the harness builds; --stack existing drills the "
                        "backups of your Barman instead")
        if kinds is not None and drill.stack not in kinds:
            pytest.skip(f"these drills run on the {' or '.join(kinds)} stack only; this run is on --stack {drill.stack}")
        bindir = bindir_for(pg_bindir, min_pg_major)
        chosen = drill.replace(pg_bindir=bindir, pg_versions=())
        running = stack_class(chosen.stack)(chosen, barman_settings=barman_settings) if barman_settings \
            else make_stack(chosen)
        state = run_state(config)
        try:
            running.start()
        except HarnessError as exc:
            pytest.exit(f"The {drill.stack} stack could not be brought up, so no drill on it has a verdict.\n"
                        f"{exc.render()}", returncode=2)
        state.secrets += running.credentials.secrets()
        facts = state.record.facts
        for name, value in {"stack": running.kind, **running.versions()}.items():
            facts.setdefault(name, value)
        try:
            yield running
        finally:
            running.close()
            if drill.keep and running.run_dir:
                state.record.kept.append(str(running.run_dir))

    return stack
