"""The steps of a write history: plain, frozen data, so a history can be drawn, shrunk and printed."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Union


@dataclass(frozen=True)
class Insert:
    """Insert ``count`` Faker books."""

    count: int

    def __str__(self) -> str:
        return f"insert {self.count}"


@dataclass(frozen=True)
class Update:
    """Give existing rows a new title and year. Each pick counts back from the newest live row
    (0 is the newest, wrapping around), so small picks hit rows this history just wrote."""

    picks: tuple[int, ...]

    def __str__(self) -> str:
        return f"update picks {','.join(map(str, self.picks))}"


@dataclass(frozen=True)
class Delete:
    """Delete existing rows, picked as for ``Update``."""

    picks: tuple[int, ...]

    def __str__(self) -> str:
        return f"delete picks {','.join(map(str, self.picks))}"


Statement = Union[Insert, Update, Delete]


@dataclass(frozen=True)
class Transaction:
    """One transaction of one or more statements; ``commit=False`` rolls it back at the end."""

    statements: tuple[Statement, ...]
    commit: bool = True

    def __str__(self) -> str:
        return f"transaction [{'; '.join(map(str, self.statements))}] {'committed' if self.commit else 'rolled back'}"


@dataclass(frozen=True)
class RestorePoint:
    """pg_create_restore_point() with a fresh name: a target of kind name."""

    def __str__(self) -> str:
        return "restore point"


@dataclass(frozen=True)
class SwitchWal:
    """pg_switch_wal(): later WAL goes to the next segment, so recovery must cross segments."""

    def __str__(self) -> str:
        return "switch WAL"


@dataclass(frozen=True)
class Pause:
    """Wait a little, so commits spread over time."""

    seconds: float

    def __str__(self) -> str:
        return f"pause {self.seconds}s"


Step = Union[Transaction, RestorePoint, SwitchWal, Pause]


@dataclass(frozen=True)
class History:
    """Steps written to the source; the backup is taken just before ``steps[backup_at]``."""

    seed: int
    steps: tuple[Step, ...]
    backup_at: int = 0

    @property
    def before_backup(self) -> tuple[Step, ...]:
        return self.steps[:self.backup_at]

    @property
    def after_backup(self) -> tuple[Step, ...]:
        return self.steps[self.backup_at:]

    def describe(self) -> str:
        lines = [f"history (seed {self.seed}):"]
        for index, step in enumerate(self.steps):
            if index == self.backup_at:
                lines.append("  -- backup --")
            lines.append(f"  step {index}: {step}")
        return "\n".join(lines)
