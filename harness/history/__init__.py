"""Write histories for property-based PITR drills.

A history (``steps``) is plain data, so a property test can draw and shrink it; ``run`` writes it
to the source while ``model`` keeps the table after every commit, so each recovery target of the
history has an exact expected state. Strategies that draw histories live in harness.plugin.strategies.
"""

from harness.history.model import CommitRecord, PlannedTarget, Point, TableModel, version_at
from harness.history.run import HistoryRun, ModelDiverged
from harness.history.steps import Delete, History, Insert, Pause, RestorePoint, Statement, Step, SwitchWal, Transaction, Update

__all__ = [
    "CommitRecord", "Delete", "History", "HistoryRun", "Insert", "ModelDiverged", "Pause", "PlannedTarget",
    "Point", "RestorePoint", "Statement", "Step", "SwitchWal", "TableModel", "Transaction", "Update", "version_at",
]
