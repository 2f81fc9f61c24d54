"""One shard of a run (``--shard K/N``): the part of the collected tests this machine runs when N
machines share them.

The choice depends on the collected tests alone, so every machine makes the same one without talking
to the others. The drills of one Barman server form one unit (they share that server's stack and
must not read its archive from two machines at once); every other test is a unit of its own. Units
are ordered by server name, then by test id, and dealt out in turn: shard 1 takes the first, shard 2
the second, ... Plain string order, never Python's per-process salted ``hash()``; dealing rather
than hashing, so that three servers on three shards get one each. The plan's digest (of the units,
not of each server's backups, which may differ between machines started minutes apart) goes into
the evidence, so the merge can tell shards that did not collect the same units; a server's unit names
its drills' test functions, so shards that collected other drills of a server differ too.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

from harness.test_ids import without_params

_SHAPE = re.compile(r"^\s*(\d+)\s*/\s*(\d+)\s*$")


@dataclass(frozen=True)
class Shard:
    index: int   # 1..count
    count: int

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"


def parse_shard(text) -> Shard:
    """'2/3' -> Shard(2, 3); shards count from 1."""
    match = _SHAPE.match(str(text))
    if not match:
        raise ValueError(f"expected K/N, e.g. 2/3 for the second of three shards, not {str(text)!r}")
    index, count = int(match[1]), int(match[2])
    if count < 1:
        raise ValueError("N, the number of shards, must be 1 or more")
    if index == 0:
        raise ValueError("shards count from 1 (1/N .. N/N); Kubernetes' JOB_COMPLETION_INDEX counts from 0: "
                         "pass $((JOB_COMPLETION_INDEX + 1))/N")
    if index > count:
        raise ValueError(f"shard {index} of {count} does not exist (K must be 1..{count})")
    return Shard(index, count)


def _server_units(keys: list[tuple[str | None, str]]) -> dict[str, str]:
    """server -> its unit, in name order: the server and its drills' test functions (not their backups)."""
    functions: dict[str, set[str]] = {}
    for server, test_id in keys:
        if server is not None:
            functions.setdefault(server, set()).add(without_params(test_id))
    return {server: f"server:{server} {' '.join(sorted(names))}" for server, names in sorted(functions.items())}


def units(keys: list[tuple[str | None, str]]) -> list[str]:
    """The plan's units in dealing order: 'server:<name> <test functions>' for a server's drills, 'test:<id>'
    for the rest."""
    tests = sorted({test_id for server, test_id in keys if server is None})
    return list(_server_units(keys).values()) + [f"test:{test_id}" for test_id in tests]


def select(keys: list[tuple[str | None, str]], shard: Shard) -> list[bool]:
    """For each (server or None, test id): does ``shard`` run it?"""
    servers = _server_units(keys)
    order = {unit: position for position, unit in enumerate(units(keys))}
    return [order[servers[server] if server is not None else f"test:{test_id}"] % shard.count == shard.index - 1
            for server, test_id in keys]


def plan_digest(keys: list[tuple[str | None, str]]) -> str:
    """Short digest of the units: equal on every shard that collected the same plan."""
    return _digest(units(keys))


def drills_digest(test_ids) -> str:
    """Short digest of a set of test ids: what a shard was dealt, compared with what its report holds."""
    return _digest(sorted(set(test_ids)))


def _digest(lines: list[str]) -> str:
    return hashlib.sha256("\n".join(lines).encode()).hexdigest()[:16]
