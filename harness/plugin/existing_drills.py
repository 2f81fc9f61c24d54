"""Drills of an existing Barman's backups (collected with --stack existing; see harness/plugin/existing.py).

Each chosen backup must restore consistent at its end and through the newest archived WAL, each restore
sound (amcheck) and readable whole (every row of every database); with --canary, restored exactly to a
restore point made on production just now.
"""

import pytest

from harness.drill.existing import canary_found
from harness.drill.targets import RecoveryTarget

pytestmark = pytest.mark.existing


def test_backup_restores_consistent_at_its_end(existing_drill):
    stack, backup, scratch = existing_drill
    scratch.recover(backup, RecoveryTarget("immediate"))


def test_backup_restores_through_the_newest_archived_wal(existing_drill):
    stack, backup, scratch = existing_drill
    scratch.recover(backup, RecoveryTarget("latest"))


@pytest.mark.canary
def test_backup_restores_exactly_to_a_canary_restore_point(existing_drill, existing_stacks):
    stack, backup, scratch = existing_drill
    point = existing_stacks.canary(stack.server_name)
    restored = scratch.recover(backup, RecoveryTarget("name", point.restore_point))
    canary_found(restored, point)
