"""--shard K/N: parsing, and a split that is the same on every machine, whole per server, complete."""

import subprocess
import sys

import pytest
from hypothesis import given
from hypothesis import strategies as st

from harness.config import ConfigError, DrillConfig
from harness.shards import Shard, parse_shard, plan_digest, select


def test_parse_shard():
    assert parse_shard("2/3") == Shard(2, 3) and str(parse_shard(" 1 / 1 ")) == "1/1"


@pytest.mark.parametrize("text, says", [
    ("0/3", "count from 1"), ("4/3", "does not exist"), ("2", "expected K/N"), ("a/b", "expected K/N"),
    ("1/0", "must be 1 or more"), ("-1/3", "expected K/N")])
def test_bad_shards_are_one_clear_sentence(text, says):
    with pytest.raises(ConfigError) as failed:
        DrillConfig.resolve({}, env={"DRILL_SHARD": text})
    assert says in failed.value.render() and "DRILL_SHARD" in failed.value.render()


KEYS = st.lists(st.tuples(st.none() | st.sampled_from(["main", "billing", "crm"]),
                          st.text("abcxyz[]-_/:", min_size=1, max_size=12)), unique_by=lambda key: key[1], max_size=40)


@given(KEYS, st.integers(1, 6))
def test_every_test_lands_on_exactly_one_shard_and_a_server_on_one(keys, count):
    chosen = [select(keys, Shard(index, count)) for index in range(1, count + 1)]
    for position, key in enumerate(keys):
        assert sum(shard[position] for shard in chosen) == 1, key
    for server in {server for server, _ in keys if server}:
        owners = {index for index, shard in enumerate(chosen) for position, key in enumerate(keys)
                  if shard[position] and key[0] == server}
        assert len(owners) == 1, server


def test_servers_are_dealt_one_per_shard_before_anything_else():
    keys = [("crm", "d1"), ("main", "d2"), ("billing", "d3"), ("main", "d4")]
    assert [select(keys, Shard(k, 3)) for k in (1, 2, 3)] == [
        [False, False, True, False], [True, False, False, False], [False, True, False, True]]


def test_the_split_does_not_depend_on_order_or_on_the_process():
    keys = [(None, f"scenarios/test_pitr.py::test[{i}]") for i in range(7)] + [("main", "e::x[main-1]")]
    mine = dict(zip(keys, select(keys, Shard(2, 3)), strict=True))
    assert dict(zip(keys[::-1], select(keys[::-1], Shard(2, 3)), strict=True)) == mine
    # Another interpreter (another PYTHONHASHSEED) makes the same choice and the same plan digest.
    code = ("import sys; from harness.shards import *; keys=eval(sys.argv[1]); "
            "print(select(keys, Shard(2, 3)), plan_digest(keys))")
    out = subprocess.run([sys.executable, "-c", code, repr(keys)], capture_output=True, text=True,
                         env={"PYTHONHASHSEED": "12345"}, check=True).stdout.strip()
    assert out == f"{select(keys, Shard(2, 3))} {plan_digest(keys)}"


def test_the_plan_digest_ignores_a_servers_backups_but_not_its_tests():
    one = [("main", "x[main-20261129]"), (None, "t::a")]
    two = [("main", "x[main-20261129]"), ("main", "x[main-20261130]"), (None, "t::a")]
    assert plan_digest(one) == plan_digest(two)
    assert plan_digest(one) != plan_digest(one + [(None, "t::b")])


def test_existing_drills_are_scheduled_in_groups_by_server():
    from harness.plugin.parallel import group_of
    servers = {"main-20261130T010000": "main", "crm-20261130T020000": "crm"}.get
    ids = ["e.py::test_end[main-20261130T010000]", "e.py::test_latest[main-20261130T010000]",
           "e.py::test_end[crm-20261130T020000]", "s/test_pitr.py::test_x[lsn]", "e.py::test_end[x-1]@legacy"]
    assert [group_of(nodeid, servers) for nodeid in ids] == [
        "server:main", "server:main", "server:crm", "s/test_pitr.py::test_x[lsn]", "legacy"]


def test_without_dist_a_test_file_stays_on_one_worker():
    from harness.plugin.parallel import group_of
    none = {}.get
    assert group_of("scenarios/test_pitr.py::test_x[lsn]", none, by_file=True) == "scenarios/test_pitr.py"
    assert group_of("e.py::test_end[main-1]", {"main-1": "main"}.get, by_file=True) == "server:main"
