"""Stacks: a PostgreSQL source and a Barman that backs it up, as the drills need them.

``Stack`` is the contract every kind of stack keeps; ``STACKS`` says where each kind is built.
Adding a kind means one module with a class that keeps the contract (usually a ``StackBase``
subclass) and one line in ``STACKS``.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar, Protocol, runtime_checkable

if TYPE_CHECKING:
    from harness.barman.driver import Barman
    from harness.config import DrillConfig
    from harness.drill.source import Source
    from harness.postgres.server import Connection
    from harness.process.accounts import Credentials
    from harness.process.progress import Progress

# kind -> "module:class"; imported only when chosen (the compose stack needs Docker tooling).
STACKS = {
    "local": "harness.stacks.local:LocalStack",
    "compose": "harness.stacks.compose:ComposeStack",
    "existing": "harness.stacks.existing:ExistingStack",
}


@runtime_checkable
class ScratchServer(Protocol):
    """A server slot for one recovery: an empty data dir `barman recover` writes into, then started."""

    name: str
    data_dir: Path
    log_path: Path
    conn: "Connection"
    description: str

    def adopt_restored_files(self) -> None: ...
    def start(self, extra_options: dict | None = None, timeout: float = 60) -> None: ...
    def stop(self, mode: str = "fast", timeout: float = 60) -> None: ...
    def is_running(self) -> bool: ...
    def timeline(self) -> int: ...
    def log_excerpt(self, lines: int = 30, pattern: str | None = None) -> str: ...


@runtime_checkable
class Stack(Protocol):
    """A running source + Barman, scratch servers on demand, its logs and versions, one close()."""

    kind: ClassVar[str]
    config: "DrillConfig"
    progress: "Progress"
    source: "Source"
    barman: "Barman"
    credentials: "Credentials"
    run_dir: Path | None

    def start(self) -> "Stack": ...
    def scratch_server(self, label: str) -> ScratchServer: ...
    def discard_scratch(self, server: ScratchServer) -> None: ...
    def log_files(self) -> list[Path]: ...
    def versions(self) -> dict[str, str]: ...
    def close(self) -> None: ...


def stack_class(kind: str) -> type:
    try:
        module, _, name = STACKS[kind].partition(":")
    except KeyError:
        raise ValueError(f"unknown stack {kind!r}; known: {', '.join(STACKS)}") from None
    return getattr(importlib.import_module(module), name)


def make_stack(config: "DrillConfig") -> Stack:
    """The stack ``config`` names, not started yet (``start()`` or ``with`` brings it up)."""
    return stack_class(config.stack)(config)
