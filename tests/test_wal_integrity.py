"""WAL integrity: what pg_waldump says becomes a named segment, an LSN and a damage class."""

import gzip
from pathlib import Path

import pytest

from harness.checks import wal_integrity as wi
from harness.checks import wal_staging as ws
from harness.postgres.binaries import PgBin

SIZE = 16 * 1024 * 1024


def fake_reader(tmp_path: Path, message: str, rc: int = 1) -> PgBin:
    """A pg_waldump that says ``message`` on stderr and exits ``rc``."""
    bindir = tmp_path / "bin"
    bindir.mkdir()
    tool = bindir / "pg_waldump"
    tool.write_text(f"#!/bin/sh\necho 'pg_waldump: error: {message}' >&2\nexit {rc}\n")
    tool.chmod(0o755)
    return PgBin(bindir, "15.18")


SEGMENTS = ["000000010000000000000003", "000000010000000000000004", "000000010000000000000005"]


@pytest.mark.parametrize("message, segment, lsn, named", [
    ("error in WAL record at 0/4000090: incorrect resource manager data checksum in record at 0/40000D0",
     "000000010000000000000004", "0/40000D0", "a record's CRC does not match"),
    ("error in WAL record at 0/3FFFF80: unexpected pageaddr 0/3000000 in log segment 000000010000000000000004, "
     "offset 0", "000000010000000000000004", "0/4000000", "another position"),
    ("error in WAL record at 0/3FFFF80: invalid magic number 0000 in WAL segment 000000010000000000000004, "
     "offset 8192", "000000010000000000000004", "0/4002000", "not a WAL page header"),
    ("error in WAL record at 0/4000A00: invalid record length at 0/4000A38: expected at least 24, got 0",
     "000000010000000000000004", "0/4000A38", "length is impossible"),
])
def test_damage_is_named_with_segment_lsn_and_class(tmp_path, message, segment, lsn, named):
    staging = tmp_path / "staging"
    staging.mkdir()
    for name in SEGMENTS:
        (staging / name).write_bytes(b"\1" * 64)  # not zeros: not a natural end
    damage, _ = wi._read(fake_reader(tmp_path, message), staging, SEGMENTS, "0/3000028", "", SIZE)
    assert damage.startswith(f"segment {segment}: first bad record at {lsn}: ") and named in damage, damage


def test_valid_wal_that_stops_inside_the_newest_segment_is_damage(tmp_path):
    # Barman archives whole segments: WAL that ends in zeros inside one lost its tail.
    staging = tmp_path / "staging"
    staging.mkdir()
    for name in SEGMENTS:
        (staging / name).write_bytes(b"\1" * 0x100 + b"\0" * (SIZE - 0x100))
    message = "error in WAL record at 0/5000080: invalid record length at 0/5000100: expected at least 24, got 0"
    damage, end = wi._read(fake_reader(tmp_path, message), staging, SEGMENTS, "0/3000028", "", SIZE)
    assert damage.startswith("segment 000000010000000000000005: first bad record at 0/5000100")


def test_compression_is_recognized_by_its_magic_bytes(tmp_path):
    samples = {"gzip": gzip.compress(b"wal"), "bzip2": b"BZh91AY&SY", "xz": b"\xfd7zXZ\x00\x00",
               "zstd": b"\x28\xb5\x2f\xfd\0", "lz4": b"\x04\x22\x4d\x18\0", "openpgp": b"\x85\x01\x0c",
               None: b"\x10\xd1\x06\x00"}   # a WAL page header is none of them
    for kind, data in samples.items():
        path = tmp_path / f"sample-{kind}"
        path.write_bytes(data)
        assert ws.compression_of(path) == kind


def test_ranges_and_positions():
    assert wi.segment_range(SEGMENTS[0], SEGMENTS[-1]) == SEGMENTS
    assert wi.segment_start("000000010000000100000002") == "1/2000000"


def test_bad_files_are_named_not_crashed_on(tmp_path):
    class Archive:
        def wal_path(self, segment):
            return tmp_path / "wals" / segment

    (tmp_path / "wals").mkdir()
    (tmp_path / "wals" / SEGMENTS[0]).write_bytes(b"")                      # empty
    staging = tmp_path / "staging"
    staging.mkdir()
    damage = ws.stage(Archive(), SEGMENTS[:1], staging, SIZE)
    assert damage.startswith(f"segment {SEGMENTS[0]} has the wrong size: 0 bytes instead of {SIZE} (cut short")
    (tmp_path / "staging2").mkdir()
    damage = ws.stage(Archive(), SEGMENTS[1:2], tmp_path / "staging2", SIZE)
    assert damage == f"segment {SEGMENTS[1]} is missing from the archive"
