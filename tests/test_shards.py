"""--shard K/N: parsing, and a split that is the same on every machine, whole per server, complete."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from harness.config import ConfigError, DrillConfig
from harness.shards import Shard, drills_digest, parse_shard, plan_digest, select


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
    # Another drill of the server (e.g. --canary on one machine only): another plan.
    assert plan_digest(one) != plan_digest(one + [("main", "y[main-20261129]")])
    assert plan_digest(two) == plan_digest(two + [("main", "x[main-20261131]")])


def test_the_drills_a_shard_was_dealt_have_one_digest_whatever_their_order():
    assert drills_digest(["a", "b", "b"]) == drills_digest(["b", "a"]) != drills_digest(["a"])


def plan_servers(plan):
    from harness.test_ids import server_in_plan
    return lambda nodeid: server_in_plan(nodeid, plan)


def test_existing_drills_are_scheduled_in_groups_by_server():
    from harness.plugin.scheduling import group_of
    servers = plan_servers([("main", "20261130T010000"), ("crm", "20261130T020000")])
    ids = ["e.py::test_end[main-20261130T010000]", "e.py::test_latest[main-20261130T010000]",
           "e.py::test_end[crm-20261130T020000]", "s/test_pitr.py::test_x[lsn]", "e.py::test_end[x-1]@legacy"]
    assert [group_of(nodeid, servers) for nodeid in ids] == [
        "server:main", "server:main", "server:crm", "s/test_pitr.py::test_x[lsn]", "legacy"]


def test_without_dist_a_test_file_stays_on_one_worker():
    from harness.plugin.scheduling import group_of
    assert group_of("scenarios/test_pitr.py::test_x[lsn]", plan_servers([]), by_file=True) == "scenarios/test_pitr.py"
    assert group_of("e.py::test_end[main-1]", plan_servers([("main", "1")]), by_file=True) == "server:main"


@pytest.mark.parametrize("nodeid, plain", [
    ("e.py::test_end[main-1]@main", "e.py::test_end[main-1]"), ("t.py::test_a@group", "t.py::test_a"),
    ("test_end[main-1]@main", "test_end[main-1]"),             # a JUnit case name
    ("t.py::test_a[x@y]", "t.py::test_a[x@y]"), ("d@x/t.py::test_a", "d@x/t.py::test_a"),
    ("t@x.py::test_a", "t@x.py::test_a"), ("t.py::test_a", "t.py::test_a")])
def test_one_reading_of_test_ids_for_evidence_shards_scheduling_and_junit(nodeid, plain):
    from harness.test_ids import params_of, server_in_plan, without_group, without_params
    assert without_group(nodeid) == plain
    assert without_params(nodeid) == plain.partition("[")[0]
    assert server_in_plan(nodeid, [("main", "1")]) == ("main" if params_of(nodeid) == "main-1" else None)


STAND_IN_STACK = '''
import types
import pytest

@pytest.fixture(scope="session")
def stack():
    return types.SimpleNamespace(barman=types.SimpleNamespace(server="source"), versions=lambda: {"postgresql": "15"})
'''


def run_shard(project: Path, reports: Path, *args: str) -> subprocess.CompletedProcess:
    """pytest with the installed plugin on a project of stand-in drills (no PostgreSQL needed)."""
    argv = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "--rootdir", str(project), "-c",
            str(project / "pytest.ini"), "--reports-dir", str(reports), "--junitxml", str(reports / "junit.xml"),
            *args, str(project)]
    env = {key: value for key, value in os.environ.items() if key not in ("CI", "DRILL_SHARD", "DRILL_SHARD_RUN")}
    return subprocess.run(argv, cwd=project, env=env, capture_output=True, text=True, timeout=120,
                          stdin=subprocess.DEVNULL)


@pytest.fixture
def project(tmp_path) -> Path:
    project = tmp_path / "project"
    project.mkdir()
    (project / "pytest.ini").write_text("[pytest]\n")
    (project / "conftest.py").write_text(STAND_IN_STACK)
    (project / "test_drills.py").write_text("def test_one(stack):\n    pass\n\ndef test_two(stack):\n    pass\n"
                                            "\ndef test_not_a_drill():\n    pass\n")
    return project


def test_a_shards_evidence_says_which_drills_it_was_dealt_and_of_which_run(project, tmp_path):
    from harness.cli.merge import main as merge_main
    for index in (1, 2, 3):
        done = run_shard(project, tmp_path / f"shard{index}", f"--shard={index}/3", "--shard-run=night-7")
        assert done.returncode == 0, done.stdout + done.stderr
    facts = [json.loads(next((tmp_path / f"shard{k}").glob("drill-*.json")).read_text())["run"] for k in (1, 2, 3)]
    assert [fact["shard_drills"] for fact in facts] == ["0", "1", "1"]   # units in id order: not_a_drill, one, two
    assert facts[1]["shard_drills_digest"] == drills_digest(["test_drills.py::test_one"])
    assert {fact["shard_run"] for fact in facts} == {"night-7"}
    assert merge_main([str(tmp_path / "merged"), *(str(tmp_path / f"shard{k}") for k in (1, 2, 3)),
                       "--shard-run", "night-7"]) == 0


def test_collect_only_writes_no_evidence(project, tmp_path):
    done = run_shard(project, tmp_path / "reports", "--collect-only", "--shard=1/1")
    assert done.returncode == 0, done.stdout + done.stderr
    assert list((tmp_path / "reports").glob("drill-*")) == [], "a shard that ran nothing would pass for complete"
