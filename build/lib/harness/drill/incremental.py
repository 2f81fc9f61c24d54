"""An incremental backup chain (PostgreSQL 17+): a full backup, an incremental on it, one on that,
with writes and a recovery target inside each link; and the chain's shape on disk.

Built the same way by the incremental drills and by bench/incremental.py, so the benchmark
measures the scenario's data.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from harness.barman.driver import Backup, Barman
from harness.drill.books import Books
from harness.drill.fingerprint import Fingerprint
from harness.drill.source import Source
from harness.drill.targets import RecoveryTarget

# The recovery target taken inside each link, in order: full, first incremental, second incremental.
TARGET_KINDS = ("xid", "time", "lsn")


@dataclass(frozen=True)
class Link:
    """One backup of the chain, and a target inside it: after this backup, before the next one."""

    backup: Backup
    target: RecoveryTarget
    expected: Fingerprint  # the books table at the target


@dataclass
class Chain:
    links: list[Link] = field(default_factory=list)  # the full backup first
    twin: Backup | None = None  # a full backup of the same data as the last incremental, when asked for

    @property
    def backups(self) -> list[Backup]:
        return [link.backup for link in self.links]

    @property
    def full(self) -> Backup:
        return self.links[0].backup


def vacuum_freeze(source: Source) -> None:
    """Freeze and set hint bits after a bulk load: with data checksums on, the first read of each
    page would otherwise write it again (a full-page image), and every such page would land in
    the next incremental backup."""
    with source.connect() as conn:
        conn.execute("VACUUM (FREEZE, ANALYZE)")


def write_link(books: Books, rows: int, source: Source, kind: str) -> tuple[RecoveryTarget, Fingerprint]:
    """One link's writes: updates, inserts and deletes, then the commit the target sits on.
    Returns the target and the books table's fingerprint there."""
    books.update(max(rows // 100, 1))
    books.insert(max(rows // 50, 1))
    books.delete(max(rows // 200, 1))
    commit = books.update(max(rows // 200, 1))
    target = source.capture_target(kind, commit)
    return target, source.fingerprint()


def write_after_target(books: Books, rows: int) -> None:
    """Writes after a link's target: recovery to that target must not hold them."""
    books.insert(max(rows // 100, 1))
    books.delete(max(rows // 400, 1))


def build_chain(source: Source, barman: Barman, books: Books, rows: int, twin: bool = False) -> Chain:
    """Load ``rows`` books, VACUUM (FREEZE), full backup, writes, incremental on the latest full,
    writes, incremental on the latest backup, writes; a recovery target inside every link.

    ``latest-full`` and ``latest`` are Barman's own names for the parents: on a Barman server
    whose only backups are this chain's they are the full and the first incremental. With
    ``twin``, a full backup is also taken right after the last incremental, of the same data.
    """
    books.insert(rows)
    vacuum_freeze(source)
    chain = Chain()
    parents = (None, "latest-full", "latest")
    for kind, parent in zip(TARGET_KINDS, parents):
        backup = barman.backup(incremental_from=parent)
        if twin and parent == parents[-1]:
            chain.twin = barman.backup()
        target, expected = write_link(books, rows, source, kind)
        write_after_target(books, rows)
        chain.links.append(Link(backup, target, expected))
    barman.archive_current_wal()
    return chain


@dataclass(frozen=True)
class LinkShape:
    backup_id: str
    backup_type: str
    parent_backup_id: str
    root_backup_id: str
    stored_bytes: int        # the backup's files on disk
    barman_size_bytes: int   # Barman's backup_size_bytes
    cluster_bytes: int       # the cluster's size when the backup was taken (Barman's estimate)


@dataclass(frozen=True)
class ChainShape:
    """Sizes of a chain on disk, measured on its files: what each link stores vs the full backup."""

    links: tuple[LinkShape, ...]

    @property
    def full_bytes(self) -> int:
        return self.links[0].stored_bytes

    @property
    def stored_bytes(self) -> int:
        return sum(link.stored_bytes for link in self.links)

    @property
    def as_fulls_bytes(self) -> int:
        """What a full backup at every link would store: the full's size for each link, plus the
        cluster's growth since the full (Barman's cluster size estimate)."""
        base = self.links[0].cluster_bytes
        return sum(self.full_bytes + max(link.cluster_bytes - base, 0) for link in self.links)

    @property
    def saved_bytes(self) -> int:
        return self.as_fulls_bytes - self.stored_bytes

    def ratio(self, link: LinkShape) -> float:
        return link.stored_bytes / self.full_bytes if self.full_bytes else 0.0

    def properties(self) -> dict:
        facts = {"chain_root": self.links[0].backup_id, "chain_links": str(len(self.links))}
        for index, link in enumerate(self.links):
            facts[f"chain_link{index}"] = (
                f"{link.backup_id} {link.backup_type}"
                + (f" parent {link.parent_backup_id} root {link.root_backup_id}" if link.parent_backup_id else "")
                + f", {link.stored_bytes} bytes stored ({self.ratio(link):.1%} of the full)")
        facts.update({
            "chain_stored_bytes": str(self.stored_bytes),
            "chain_as_full_backups_bytes": str(self.as_fulls_bytes),
            "chain_space_saved_bytes": str(self.saved_bytes),
            "chain_space_saved_percent": f"{self.saved_bytes / self.as_fulls_bytes:.1%}" if self.as_fulls_bytes else "",
        })
        return facts

    def render(self) -> str:
        lines = [f"{'backup':<18} {'type':<12} {'parent':<18} {'stored':>12} {'vs full':>8}"]
        for link in self.links:
            lines.append(f"{link.backup_id:<18} {link.backup_type:<12} {link.parent_backup_id or '-':<18} "
                         f"{_mb(link.stored_bytes):>12} {self.ratio(link):>8.1%}")
        lines.append(f"chain stores {_mb(self.stored_bytes)}; a full backup at every link would store "
                     f"{_mb(self.as_fulls_bytes)}: {_mb(self.saved_bytes)} saved "
                     f"({self.saved_bytes / self.as_fulls_bytes:.1%})" if self.as_fulls_bytes else "")
        return "\n".join(lines)


def chain_shape(barman: Barman, backups: list[Backup]) -> ChainShape:
    """The shape of ``backups`` (full first), with sizes measured on the stored files."""
    return ChainShape(tuple(
        LinkShape(backup.backup_id, backup.backup_type, backup.parent_backup_id, backup.root_backup_id,
                  stored_bytes(barman.backup_dir(backup.backup_id)), backup.size_bytes,
                  int(backup.raw.get("cluster_size_bytes", 0) or 0))
        for backup in backups))


def stored_bytes(directory: Path) -> int:
    total = 0
    for root, _dirs, files in os.walk(directory):
        for name in files:
            path = os.path.join(root, name)
            if not os.path.islink(path):
                total += os.path.getsize(path)
    return total


def _mb(size: int) -> str:
    return f"{size / 1024 / 1024:.2f} MB"
