"""--stack existing: the drills of a Barman this machine already runs, one per chosen backup.

The drills themselves are harness/plugin/existing_drills.py, collected whenever the run is on the
existing stack; they are parametrized here by (server, backup) from Barman's own catalogue, read at
collection. A configuration or server that cannot be read, or a server without any finished backup,
ends the run with no verdict (exit 2) before anything is restored.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.config import DrillConfig
from harness.drill.existing import Canary, CanaryPoint, ExistingScratch
from harness.errors import HarnessError
from harness.plugin.state import drill_config, run_state
from harness.stacks.existing import ExistingStack, configured_servers, find_barman_config
from harness.test_ids import existing_param, server_in_plan

DRILLS = Path(__file__).with_name("existing_drills.py")


PLAN = pytest.StashKey[list]()


def pytest_configure(config):
    if drill_config(config).stack == "existing" and not any(Path(arg).resolve() == DRILLS.resolve()
                                                            for arg in config.args if "::" not in arg):
        config.args.append(str(DRILLS))


def pytest_collection_modifyitems(config, items):
    # The canary writes on production: its drills exist only when asked for.
    if drill_config(config).canary:
        return
    dropped = [item for item in items if "canary" in item.keywords]
    if dropped:
        items[:] = [item for item in items if "canary" not in item.keywords]
        config.hook.pytest_deselected(items=dropped)


def servers_to_drill(drill: DrillConfig) -> list[str]:
    path = find_barman_config(drill.barman_config)
    if drill.barman_server in (None, "", "all"):
        servers = configured_servers(path)
        if not servers:
            raise HarnessError(f"The Barman configuration {path} has no server section.")
        return servers
    return [drill.barman_server]


class StackPool:
    """One ExistingStack per Barman server, brought up on first use, all closed at the end."""

    def __init__(self, drill: DrillConfig):
        self.drill = drill
        self.stacks: dict[str, ExistingStack] = {}
        self.canaries: dict[str, CanaryPoint] = {}
        self.plans: dict[str, list[str]] = {}

    def stack(self, server: str) -> ExistingStack:
        if server not in self.stacks:
            running = ExistingStack(self.drill, server)
            self.stacks[server] = running
            running.start()
        return self.stacks[server]

    def canary(self, server: str) -> CanaryPoint:
        """One canary per server and run, planted before the first drill that needs it."""
        if server not in self.canaries:
            running = self.stack(server)
            canary = Canary(running.production_dsn())
            self.canaries[server] = canary.plant(running.canary_barman(canary))
        return self.canaries[server]

    def close(self) -> None:
        for running in self.stacks.values():
            running.close()


def planned_backups(config) -> list[tuple[str, str]]:
    """(server, backup id) for every chosen backup, read from Barman at collection."""
    drill = drill_config(config)
    pool = StackPool(drill)
    plan = []
    try:
        for server in servers_to_drill(drill):
            running = pool.stack(server)
            plan += [(server, backup.backup_id) for backup in running.chosen_backups()]
    except HarnessError as exc:
        pytest.exit(f"--stack existing: no verdict, nothing was restored.\n{exc.render()}", returncode=2)
    finally:
        pool.close()
    return plan


@pytest.hookimpl(tryfirst=True)
def pytest_collection(session):
    # Before any module is collected, so that a bad configuration ends the run in one paragraph.
    if drill_config(session.config).stack == "existing":
        session.config.stash[PLAN] = planned_backups(session.config)


def existing_server(config, nodeid: str) -> str | None:
    """The Barman server an existing drill's test id names (None for any other test), from the run's plan:
    the pytest-xdist controller and the shards see only test ids."""
    return server_in_plan(nodeid, config.stash.get(PLAN, []))


def pytest_generate_tests(metafunc):
    if "existing_backup" in metafunc.fixturenames:
        plan = metafunc.config.stash.get(PLAN, [])
        # Under pytest-xdist a server's drills stay on one worker (one stack, one scratch at a time against
        # its archive); different servers spread over the workers (harness.plugin.parallel).
        metafunc.parametrize("existing_backup", [
            pytest.param((server, backup), id=existing_param(server, backup), marks=pytest.mark.xdist_group(server))
            for server, backup in plan])


@pytest.fixture(scope="session")
def existing_stacks(request):
    pool = StackPool(drill_config(request.config))
    state = run_state(request.config)
    yield pool
    pool.close()
    for running in pool.stacks.values():
        for name, value in {"stack": running.kind, **running.versions()}.items():
            state.record.facts.setdefault(name, value)


@pytest.fixture
def existing_drill(request, existing_stacks, existing_backup, record_property):
    """The stack of the backup's server, its backup record, and restores into harmless scratches."""
    from harness.plugin.fixtures import finish_scratch

    server, backup_id = existing_backup
    try:
        running = existing_stacks.stack(server)
        backup = running.catalogued(backup_id)
    except HarnessError as exc:
        pytest.exit(f"--stack existing: Barman server '{server}' could not be read, so no drill has a verdict.\n"
                    f"{exc.render()}", returncode=2)
    record_property("barman_server", server)
    drill = ExistingScratch(running, request.node.name)
    yield running, backup, drill
    finish_scratch(request, drill, running, record_property)
