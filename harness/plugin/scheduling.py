"""How pytest-xdist (``pytest -n N``) deals the tests to its workers.

Without --dist, what shares a stack stays on one worker: a test file's tests (they share its
module-scoped stack and backups, which each worker would otherwise build again) and, on the existing
stack, a Barman server's drills (one restore at a time per server and archive). An explicit --dist is
the user's choice and kept. A drill whose worker died is not given to another worker (see
``NoRerunAfterCrash``): it is recorded once, as no verdict, by harness.plugin.parallel.
"""

from __future__ import annotations

import pytest

from harness.plugin.state import drill_config
from harness.test_ids import group_suffix

CHOSEN_DIST = pytest.StashKey[bool]()   # -n without --dist: the plugin chose how to schedule


@pytest.hookimpl(wrapper=True)  # before pytest-xdist turns "-n without --dist" into --dist load
def pytest_cmdline_main(config):
    if getattr(config.option, "numprocesses", None) and getattr(config.option, "dist", None) == "no":
        config.option.dist = "loadgroup"
        config.stash[CHOSEN_DIST] = True
    return (yield)


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config, log):
    """pytest-xdist's schedulers that deal tests in groups (loadscope, loadfile, loadgroup), without giving
    a dead worker's drill to another worker; under loadgroup, the groups named here: with -n and no
    --dist a test file's tests, and on the existing stack a server's drills. pytest-xdist's own groups
    come from appending '@group' to test ids, which pytest 9.2 no longer lets it do (pytest-xdist issue
    #1386: the groups are silently ignored), so the servers' groups are named from the plan of servers
    and backups, which the controller reads too."""
    from xdist.scheduler import LoadFileScheduling, LoadGroupScheduling, LoadScopeScheduling

    from harness.plugin.existing import existing_server

    dist = config.getoption("dist", "no")
    chosen = config.stash.get(CHOSEN_DIST, False)
    if dist == "loadgroup" and (chosen or drill_config(config).stack == "existing"):
        class Groups(NoRerunAfterCrash, LoadGroupScheduling):
            def _split_scope(self, nodeid: str) -> str:
                return group_of(nodeid, lambda test: existing_server(config, test), by_file=chosen)

        return Groups(config, log)
    kinds = {"loadscope": LoadScopeScheduling, "loadfile": LoadFileScheduling, "loadgroup": LoadGroupScheduling}
    if dist in kinds:
        return type(f"NoRerun{kinds[dist].__name__}", (NoRerunAfterCrash, kinds[dist]), {})(config, log)
    return None   # load, worksteal: pytest-xdist gives a dead worker's drill to no one


def group_of(nodeid: str, server_of, by_file: bool = False) -> str:
    """The scheduling group of a test id: pytest-xdist's '@group' where it is there, else the Barman
    server ``server_of(nodeid)`` names (an existing drill), else its file (``by_file``) or the test alone."""
    group = group_suffix(nodeid)
    if group is not None:
        return group
    server = server_of(nodeid)
    if server:
        return f"server:{server}"
    return nodeid.split("::")[0] if by_file else nodeid


class NoRerunAfterCrash:
    """For pytest-xdist's schedulers of work units (LoadScopeScheduling and its kinds): they give the test
    a worker was running when it died to another worker. A drill that brings its worker down (the OOM
    killer) would bring down one worker after another, and a drill would run twice. The test counts as
    done here; pytest-xdist still reports the crash, which the evidence records as no verdict."""

    def remove_node(self, node):
        work = self.assigned_work.get(node, {})
        crashed = next((nodeid for unit in work.values() for nodeid, done in unit.items() if not done), None)
        for unit in work.values():
            if crashed in unit:
                unit[crashed] = True
        super().remove_node(node)   # gives the worker's other unfinished tests to the other workers
        return crashed
