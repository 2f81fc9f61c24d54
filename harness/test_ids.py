"""Test ids as pytest and pytest-xdist write them, and what the harness reads from them.

One place for it: the evidence, the shards, the scheduling of pytest-xdist and the JUnit merge all
name a test by its id, and must agree on which part is the '@group' pytest-xdist may append, which
the parameters, and which Barman server an existing drill's parameters name. Pytest-free: pgbv-merge
reads ids from JUnit files.
"""

from __future__ import annotations

from collections.abc import Iterable


def without_group(nodeid: str) -> str:
    """The id without the '@group' pytest-xdist appends under --dist loadgroup, so that evidence, shards
    and history name a test the same however it was scheduled. Only what follows the last '@' and holds
    no ']', '/' or '::' is a group: an '@' in a parameter or a path stays (works on a JUnit case name too)."""
    test, at, group = nodeid.rpartition("@")
    return test if at and test and not any(part in group for part in ("]", "/", "::")) else nodeid


def group_suffix(nodeid: str) -> str | None:
    """The '@group' pytest-xdist appended to the id (without the '@'), None when there is none."""
    test = without_group(nodeid)
    return nodeid[len(test) + 1:] if test != nodeid else None


def without_params(nodeid: str) -> str:
    """The test function's id: 'e.py::test_end' of 'e.py::test_end[main-20261130T010000]'."""
    return without_group(nodeid).partition("[")[0]


def params_of(nodeid: str) -> str:
    """The parameters' id: 'main-20261130T010000' of 'e.py::test_end[main-20261130T010000]'; '' for none."""
    test = without_group(nodeid)
    return test.partition("[")[2][:-1] if test.endswith("]") else ""


def existing_param(server: str, backup: str) -> str:
    """The parameters' id of an existing drill of one backup: the server's name, then the backup id."""
    return f"{server}-{backup}"


def server_in_plan(nodeid: str, plan: Iterable[tuple[str, str]]) -> str | None:
    """The Barman server an existing drill's id names, by the plan of (server, backup id) it was
    parametrized from; None for any other test."""
    param = params_of(nodeid)
    if not param:
        return None
    return next((server for server, backup in plan if existing_param(server, backup) == param), None)
