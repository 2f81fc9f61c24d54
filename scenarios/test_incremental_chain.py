"""Incremental backup chains (PostgreSQL 17+, summarize_wal on): each link restores exactly.

The chain, built once for the module on a stack of its own: rows loaded, VACUUM (FREEZE), a full
backup, writes, an incremental on the latest full, writes, an incremental on the latest backup,
writes; inside every link a recovery target, and writes after it that must not survive. Barman
restores an incremental by combining it with every parent (pg_combinebackup): the target in the
full backup's link is restored from 1 backup, the next from 2, the last from 3.
"""

import pytest

from harness.checks import preflight
from harness.checks.preflight import describe_chain
from harness.drill import faults
from harness.drill.incremental import build_chain, chain_shape
from harness.errors import VerificationFailed
from harness.plugin.factories import stack_fixture
from harness.plugin.fixtures import data_seed_for
from harness.postgres.versions import INCREMENTAL_MIN_MAJOR

pytestmark = pytest.mark.incremental


# This module's own stack, on PostgreSQL 17+: its Barman catalogue holds only this chain, so
# `latest-full` and `latest` name the chain's backups, and damaging a link touches no other drill.
stack = stack_fixture(min_pg_major=INCREMENTAL_MIN_MAJOR, scope="module", kinds=("local",))


@pytest.fixture(scope="module")
def chain(request, source, barman, rows):
    return build_chain(source, barman, source.books(data_seed_for(request.config, request.node.nodeid)), rows)


@pytest.mark.pitr
@pytest.mark.parametrize("position", [0, 1, 2], ids=["in-full", "in-incremental-1", "in-incremental-2"])
def test_pitr_inside_each_link_restores_exact_state(chain, scratch, position):
    link = chain.links[position]
    restored = scratch.recover(link.backup, link.target)  # combines the backup with all its parents
    restored.assert_matches(link.expected)
    assert describe_chain(restored.chain) == " <- ".join(b.backup_id for b in chain.backups[:position + 1])


def test_every_backup_of_the_chain_passes_verify_backup(barman, chain, record_property):
    for backup in chain.backups:
        problem = preflight.verify_backup_problem(barman, backup.backup_id)
        assert problem is None, problem.render()
        record_property(f"verify_backup_{backup.backup_type}_{backup.backup_id}", "passed")


def test_chain_links_each_backup_to_its_parent_and_root(barman, chain, record_property):
    full, first, second = chain.backups
    assert (full.backup_type, full.parent_backup_id) == ("full", "")
    assert (first.backup_type, first.parent_backup_id, first.root_backup_id) == (
        "incremental", full.backup_id, full.backup_id), "`--incremental latest-full` must build on the full"
    assert (second.backup_type, second.parent_backup_id, second.root_backup_id) == (
        "incremental", first.backup_id, full.backup_id), "`--incremental latest` must build on the first"

    shape = chain_shape(barman, chain.backups)
    for name, value in shape.properties().items():
        record_property(name, value)
    for link in shape.links[1:]:
        assert link.stored_bytes < shape.full_bytes, f"incremental {link.backup_id} is not smaller than the full"


@pytest.mark.faults
def test_changed_byte_in_middle_incremental_is_named(source, barman, chain, scratch):
    full, middle, last = chain.backups
    incremental_file = faults.incremental_file_of(faults.heap_file_of(source, "books"))
    with faults.incremental_file_changed(barman, middle, faults.heap_file_of(source, "books")):
        damaged = preflight.verify_backup_problem(barman, middle.backup_id)
        with pytest.raises(VerificationFailed, match="chain is broken") as red:
            scratch.recover(last, chain.links[2].target)
    assert damaged is not None and f'checksum mismatch for file "{incremental_file}"' in damaged.cause
    assert middle.backup_id in damaged.cause
    # Restoring the newest backup names the damaged parent and its file, before any recovery runs.
    assert middle.backup_id in str(red.value) and incremental_file in str(red.value)
    assert preflight.verify_backup_problem(barman, middle.backup_id) is None, "the fault must be undone"


@pytest.mark.faults
def test_removed_middle_backup_is_named_as_missing_parent(barman, chain, scratch):
    full, middle, last = chain.backups
    with faults.backup_removed(barman, middle):
        with pytest.raises(VerificationFailed, match=f"parent backup {middle.backup_id} is missing") as red:
            scratch.recover(last, chain.links[2].target)
    assert last.backup_id in str(red.value) and full.backup_id in str(red.value)
