"""Barman's WAL catalogue (`<server>-xlog.db`, `xlog.db` before Barman 3.11), read as a file.

Barman appends one line per archived file: name, size, time, compression, encryption (older catalogues
have fewer fields). `barman recover` copies what this file lists, so the checks read the same list:
without starting a Barman process per backup, as `list-files --target wal` would, and with what
`list-files` leaves out: WAL of later timelines and their history files, which recovery across a
timeline switch reads.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from harness.errors import SetupError
from harness.postgres.timelines import HISTORY_NAME
from harness.postgres.wal import SEGMENT_RE, segment_number

# Suffixes under which Barman may keep a compressed segment (it usually keeps the bare name).
SUFFIXES = ("", ".gz", ".bz2", ".xz", ".zst", ".lz4")


@dataclass(frozen=True)
class WalCatalogue:
    """The archive's WAL from a backup's first segment on: segments listed and on disk, history files."""

    path: Path                                   # the catalogue file read
    segments: frozenset[str]                     # listed, and present in the archive
    histories: dict[int, Path] = field(default_factory=dict)   # timeline -> its history file
    encryption: dict[str, str] = field(default_factory=dict)   # name -> what Barman encrypted it with

    def timelines(self) -> set[int]:
        return {int(name[:8], 16) for name in self.segments}

    def encrypted(self, name: str) -> bool | None:
        """Whether Barman recorded ``name`` as encrypted; None when the catalogue does not say."""
        value = self.encryption.get(name)
        return None if value is None else value != "None"


def read_catalogue(xlogdb: Path, wals_directory: Path, first: str) -> WalCatalogue:
    """Entries of ``xlogdb`` from segment ``first`` on (by position, any timeline), each checked on disk."""
    try:
        text = xlogdb.read_text(errors="replace")
    except FileNotFoundError:
        raise SetupError(f"Barman's WAL catalogue {xlogdb} does not exist, so what the archive holds is unknown: "
                         "no verdict.", "Check the server's wals_directory / xlogdb_directory in Barman's "
                         "configuration (`barman rebuild-xlogdb` recreates the file).") from None
    except OSError as exc:
        raise _unreadable(xlogdb, exc) from None
    since = segment_number(first)
    segments, histories, encryption = set(), {}, {}
    for line in text.splitlines():
        parts = line.split()
        if len(parts) < 3:  # a line Barman is writing right now, or not one of its lines
            continue
        name = parts[0]
        if len(parts) >= 5:
            encryption[name] = parts[4]
        history = HISTORY_NAME.match(name)
        if history and _on_disk(wals_directory / name):
            histories[int(history.group(1), 16)] = wals_directory / name
        elif SEGMENT_RE.match(name) and segment_number(name) >= since and \
                _on_disk(wals_directory / name[:16] / name):
            segments.add(name)
    return WalCatalogue(xlogdb, frozenset(segments), histories, encryption)


def _on_disk(path: Path) -> bool:
    try:
        return any(path.with_name(path.name + suffix).exists() for suffix in SUFFIXES)
    except OSError as exc:  # e.g. a directory of the archive the harness may not enter
        raise _unreadable(path.parent, exc) from None


def _unreadable(path: Path, exc: OSError) -> SetupError:
    return SetupError(f"Barman's WAL archive cannot be read at {path}: {exc.strerror or exc}. Whether the WAL a "
                      "restore needs is there and sound is unknown: no verdict.",
                      "Run the harness as a user that can read Barman's archive (its barman_user), or fix the "
                      "permissions of that directory.")
