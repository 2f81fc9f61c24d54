"""The WAL recovery reads across timeline switches: history files, Barman's catalogue, the route."""

import struct
from pathlib import Path
from types import SimpleNamespace

import pytest

from harness.barman.wal_catalogue import WalCatalogue, read_catalogue
from harness.checks import wal_integrity as wi
from harness.checks import wal_staging as ws
from harness.checks.wal_route import plan
from harness.errors import SetupError, VerificationFailed
from harness.evidence.records import RestoreRecord
from harness.postgres.timelines import HistoryDamaged, parse_history
from harness.postgres.wal import segment_name

SIZE = 16 * 1024 * 1024


def tl(timeline: int, number: int) -> str:
    return segment_name(timeline, number)


# -- history files --------------------------------------------------------------------------------

def test_a_history_file_as_postgresql_writes_it():
    history = parse_history("# written at promotion\n1\t0/70000E0\tno recovery target specified\n\n"
                            "2\t0/9000028\tbefore 2026-11-30 06:00:00+00\n", 3)
    assert history.timelines() == [1, 2, 3]
    assert history.begin(1) == 0 and history.begin(2) == 0x70000E0 and history.begin(3) == 0x9000028
    assert history.left(1) == "0/70000E0" and history.left(3) == ""


@pytest.mark.parametrize("text, timeline, named, postgres", [
    ("garbage\n", 2, "line 1 'garbage' does not start with a timeline ID", "syntax error"),
    ("\x17\xff\xfe binary\n", 2, "does not start with a timeline ID", "syntax error"),
    ("1\tnowhere\tno recovery target specified\n", 2, "has no switch point", "syntax error"),
    ("12/5000000\treason\n", 2, "line 1 '12/5000000\\treason' has no switch point", "syntax error"),
    ("1\t0 /5000000\treason\n", 2, "has no switch point", "syntax error"),
    ("2\t0/5000000\treason\n1\t0/6000000\treason\n", 3, "line 2 '1\\t0/6000000\\treason': timeline IDs must increase",
     "invalid data"),
    ("1\t0/5000000\treason\n1\t0/6000000\treason\n", 3, "timeline IDs must increase", "invalid data"),
    ("2\t0/5000000\treason\n", 2, "names timeline 2 as a parent of timeline 2", "invalid data"),
    # fgets() reads at most 1023 bytes: the rest of a longer line is parsed as a line of its own
    ("1\t0/5000000\t" + "x" * 1100 + "\n", 2, "line 1 'xxxx", "syntax error"),
])
def test_a_history_file_postgresql_would_refuse_is_named(text, timeline, named, postgres):
    with pytest.raises(HistoryDamaged) as damaged:
        parse_history(text, timeline)
    assert named in str(damaged.value) and damaged.value.postgres.startswith(postgres)


@pytest.mark.parametrize("text, timelines, begins", [
    # a point-in-time recovery of timeline 2 that ended before 2 began writes its switch point lower
    ("1\t0/7000000\treason\n2\t0/5000000\treason\n", [1, 2, 3], [0, 0x7000000, 0x5000000]),
    ("  1 0x0/0X70000e0 spaces, not tabs\n+2\t0/9000028\n", [1, 2, 3], [0, 0x70000E0, 0x9000028]),
    ("", [3], [0]),
    ("# only a comment\n\n", [3], [0]),
    ("\x00\x17\xff\xfe binary after a NUL: an empty C string\n", [3], [0]),
])
def test_a_history_file_postgresql_accepts_is_not_damage(text, timelines, begins):
    history = parse_history(text.encode("latin-1"), 3)
    assert history.timelines() == timelines
    assert [history.begin(tli) for tli in timelines] == begins


# -- Barman's WAL catalogue -----------------------------------------------------------------------

def archive(tmp_path: Path, files: dict[str, str], xlogdb: str | None = None) -> Path:
    """A wals directory with ``files`` (name -> content), listed in its xlog.db unless ``xlogdb`` says."""
    wals = tmp_path / "wals"
    wals.mkdir(exist_ok=True)
    for name, content in files.items():
        path = wals / name if name.endswith(".history") else wals / name[:16] / name
        path.parent.mkdir(exist_ok=True)
        path.write_text(content)
    lines = xlogdb if xlogdb is not None else "".join(f"{name}\t16777216\t1796021764.5\tNone\tNone\n" for name in files)
    (wals / "main-xlog.db").write_text(lines)
    return wals


def test_the_catalogue_lists_what_is_listed_and_on_disk_from_the_backup_on(tmp_path):
    wals = archive(tmp_path, {tl(1, 2): "", tl(1, 3): "", "00000002.history": "1\t0/50000E0\tx\n", tl(2, 5): ""},
                   xlogdb=f"{tl(1, 2)}\t16777216\t1.0\n{tl(1, 3)}\t16777216\t1.0\tNone\n"
                          f"00000002.history\t41\t1.0\tNone\tNone\n{tl(2, 5)}\t16777216\t1.0\tgzip\tgpg\n"
                          f"{tl(1, 5)}.partial\t16777216\t1.0\tNone\tNone\n{tl(1, 4)}\t16777216\t1.0\tNone\tNone\n"
                          f"{tl(2, 6)}\t1677")       # a line Barman is writing right now
    catalogue = read_catalogue(wals / "main-xlog.db", wals, tl(1, 3))
    assert catalogue.segments == {tl(1, 3), tl(2, 5)}, "before the backup, on disk only, no .partial"
    assert catalogue.histories == {2: wals / "00000002.history"}
    assert catalogue.encrypted(tl(2, 5)) is True and catalogue.encrypted("00000002.history") is False
    assert catalogue.encrypted(tl(1, 3)) is None, "an older catalogue line does not say"


def test_a_catalogue_that_cannot_be_read_is_no_verdict_and_says_where(tmp_path, monkeypatch):
    with pytest.raises(SetupError, match="WAL catalogue .*missing-xlog.db does not exist"):
        read_catalogue(tmp_path / "missing-xlog.db", tmp_path, tl(1, 3))
    (tmp_path / "dir-xlog.db").mkdir()
    with pytest.raises(SetupError, match="WAL archive cannot be read at .*dir-xlog.db: Is a directory"):
        read_catalogue(tmp_path / "dir-xlog.db", tmp_path, tl(1, 3))
    wals = archive(tmp_path, {tl(1, 3): ""})

    def no_entry(path):
        raise PermissionError(13, "Permission denied", str(path))
    monkeypatch.setattr(Path, "exists", no_entry)   # a WAL directory the harness may not enter (root ignores chmod)
    with pytest.raises(SetupError, match=r"WAL archive cannot be read at .*/wals/0000000100000000: Permission denied"):
        read_catalogue(wals / "main-xlog.db", wals, tl(1, 3))


# -- the route recovery takes ---------------------------------------------------------------------

def backup(timeline=1, begin=3, end=3, end_lsn="0/3000138", version=150018):
    return SimpleNamespace(backup_id="B1", timeline=timeline, begin_wal=tl(timeline, begin), end_wal=tl(timeline, end),
                           raw={"postgresql_version": version, "base_backup_information": {"end_lsn": end_lsn}})


def record() -> RestoreRecord:
    return RestoreRecord("B1", "", "xid", "1234", True)


def catalogue(tmp_path: Path, segments: list[str], histories: dict[int, str] | None = None) -> WalCatalogue:
    paths = {}
    for timeline, text in (histories or {}).items():
        paths[timeline] = tmp_path / f"{timeline:08X}.history"
        paths[timeline].write_text(text)
    return WalCatalogue(tmp_path / "main-xlog.db", frozenset(segments), paths)


def test_without_a_switch_the_route_stays_on_the_backups_timeline(tmp_path):
    route = plan(catalogue(tmp_path, [tl(1, n) for n in range(3, 7)]), backup(), "latest", record())
    assert not route.crosses and route.describe() == "" and route.promotes_to == 2
    assert route.through(tl(1, 3), tl(1, 6)) == [tl(1, n) for n in range(3, 7)] and route.newest() == tl(1, 6)


def test_across_a_switch_the_parents_segments_then_the_childs_as_recovery_reads_them(tmp_path):
    # Timeline 2 began at 0/70000E0: the parent's files before segment 7, the child's from 7 on. The
    # parent's 7 and 8 (an old primary that went on writing) are not what recovery reads.
    archived = [tl(1, n) for n in range(3, 9)] + [tl(2, 7), tl(2, 8)]
    route = plan(catalogue(tmp_path, archived, {2: "1\t0/70000E0\tno recovery target specified\n"}),
                 backup(), "xid", record())
    assert route.crosses and route.timeline == 2 and route.promotes_to == 3
    assert route.through(tl(1, 3), tl(1, 8)) == [tl(1, 3), tl(1, 4), tl(1, 5), tl(1, 6), tl(2, 7), tl(2, 8)]
    assert route.segment_of("0/70000D0") == tl(2, 7), "the child's file holds the parent's records before the switch"
    assert route.newest() == tl(2, 8)
    assert route.describe() == "timeline 1 to 2 at 0/70000E0 (00000002.history)"


def test_two_switches_follow_the_newest_history(tmp_path):
    histories = {2: "1\t0/50000E0\tx\n", 3: "1\t0/50000E0\tx\n2\t0/8000028\ty\n"}
    archived = [tl(1, 3), tl(1, 4), tl(2, 5), tl(2, 6), tl(2, 7), tl(3, 8), tl(3, 9)]
    route = plan(catalogue(tmp_path, archived, histories), backup(), "latest", record())
    assert route.through(tl(1, 3), tl(1, 9)) == archived and route.promotes_to == 4
    assert route.describe() == "timeline 1 to 2 at 0/50000E0, 2 to 3 at 0/8000028 (00000003.history)"


def test_a_history_file_with_garbage_is_named_red(tmp_path):
    rec = record()
    with pytest.raises(wi.WalIntegrityFailed) as red:
        plan(catalogue(tmp_path, [tl(1, 3), tl(2, 5)], {2: "this is not a history file\n"}), backup(), "xid", rec)
    assert "the timeline history file 00000002.history" in red.value.cause
    assert "does not start with a timeline ID" in red.value.cause
    assert "(PostgreSQL: syntax error in history file)" in red.value.cause
    assert rec.check("wal_integrity").passed is False


def test_switch_points_out_of_order_are_followed_as_postgresql_follows_them(tmp_path):
    histories = {2: "1\t0/7000000\tx\n", 3: "1\t0/7000000\tx\n2\t0/5000000\ty\n"}
    archived = [tl(1, 3), tl(1, 4), tl(3, 5), tl(3, 6)]
    route = plan(catalogue(tmp_path, archived, histories), backup(), "latest", record())
    assert route.timeline == 3 and route.through(tl(1, 3), tl(1, 6)) == archived


def test_an_empty_history_file_leaves_a_timeline_without_ancestors_which_is_named(tmp_path):
    with pytest.raises(wi.WalIntegrityFailed, match="does not descend from the backup's timeline 1 .*names no parent"):
        plan(catalogue(tmp_path, [tl(1, 3), tl(2, 5)], {2: ""}), backup(), "latest", record())


def test_later_wal_without_its_history_file_is_named_red_past_the_backup(tmp_path):
    archived = [tl(1, 3), tl(1, 4), tl(2, 5), tl(2, 6)]
    rec = record()
    with pytest.raises(VerificationFailed, match="timeline 2 after backup B1 .* not the history file 00000002.history"):
        plan(catalogue(tmp_path, archived), backup(), "latest", rec)
    assert rec.check("wal_continuity").passed is False
    route = plan(catalogue(tmp_path, archived), backup(), "immediate", record())  # stops at the backup's end
    assert not route.crosses and route.through(tl(1, 3), tl(1, 3)) == [tl(1, 3)]


@pytest.mark.parametrize("history, archived, named", [
    ({2: "1\t0/40000A0\tx\n", 3: "1\t0/30000E0\tx\n"}, [tl(2, 4), tl(3, 6)],
     "does not descend from the backup's timeline 2"),
    ({2: "1\t0/3000100\tx\n"}, [tl(1, 3), tl(2, 3)],
     "left the backup's timeline 1 at 0/3000100, before the backup ended at 0/3000138"),
])
def test_a_newest_timeline_recovery_cannot_reach_from_the_backup_is_named(tmp_path, history, archived, named):
    timeline = int(archived[0][:8], 16)
    with pytest.raises(wi.WalIntegrityFailed, match=named):
        plan(catalogue(tmp_path, archived, history), backup(timeline=timeline), "latest", record())


def test_before_postgresql_12_a_point_in_time_restore_stays_on_the_backups_timeline(tmp_path):
    route = plan(catalogue(tmp_path, [tl(1, 3), tl(2, 5)], {2: "1\t0/50000E0\tx\n"}), backup(version=110022), "xid",
                 record())
    assert not route.crosses and route.promotes_to == 3


# -- reading across the switch: names back in the archive's own ------------------------------------

def test_pg_waldump_reads_staged_names_and_the_damage_is_named_by_the_archived_file(tmp_path):
    segments = [tl(1, 6), tl(2, 7), tl(2, 8)]
    assert ws.staged_names(segments) == [tl(2, 6), tl(2, 7), tl(2, 8)]
    bindir = tmp_path / "bin"
    bindir.mkdir()
    (bindir / "pg_waldump").write_text(
        "#!/bin/sh\necho \"$@\" > " + str(tmp_path / "argv") + "\necho 'pg_waldump: error: error in WAL record at "
        "0/5FFFF80: invalid magic number 0000 in WAL segment 000000020000000000000006, offset 8192' >&2\nexit 1\n")
    (bindir / "pg_waldump").chmod(0o755)
    staging = tmp_path / "staging"
    staging.mkdir()
    damage, lsn = wi._read(wi.PgBin(bindir, "15.18"), staging, segments, "0/6000028", "", SIZE)
    assert damage.startswith(f"segment {tl(1, 6)}: first bad record at 0/6002000: a page header is not a WAL page "
                             f"header (invalid magic number 0000 in WAL segment {tl(1, 6)}"), damage
    assert f"--timeline 2 --start 0/6000028 {tl(2, 6)} {tl(2, 8)}" in (tmp_path / "argv").read_text()


def test_a_segment_that_is_not_wal_is_damage_even_when_it_looks_encrypted(tmp_path):
    class Archive:
        def wal_path(self, segment):
            return tmp_path / "wals" / segment

    (tmp_path / "wals").mkdir()
    (tmp_path / "wals" / tl(1, 3)).write_bytes(b"\x85" + b"not WAL " * (SIZE // 8 - 1) + b"\0" * 7)
    staging = tmp_path / "staging"
    staging.mkdir()
    damage = ws.stage(Archive(), [tl(1, 3)], staging, SIZE, encrypted=lambda name: False)
    assert damage is None and (staging / tl(1, 3)).is_symlink(), "staged for pg_waldump to judge, not 'encrypted'"
    with pytest.raises(SetupError, match="is encrypted"):
        ws.stage(Archive(), [tl(1, 3)], tmp_path / "other", SIZE)   # no catalogue to say otherwise


def test_a_segment_that_is_not_wal_is_named_by_postgresqls_reader(tmp_path):
    from harness.postgres.binaries import find_pg_bindir

    try:
        pg = find_pg_bindir(None)
    except SetupError as exc:
        pytest.skip(exc.cause)
    staging = tmp_path / "staging"
    staging.mkdir()
    (staging / tl(1, 3)).write_bytes(b"this is a text file, not WAL\n" * (SIZE // 29) + b"\n" * (SIZE % 29))
    damage, _ = wi._read(pg, staging, [tl(1, 3)], "", "", SIZE)
    assert damage.startswith(f"segment {tl(1, 3)}: it is not a WAL segment"), damage


# -- the timeline of each file's pages ------------------------------------------------------------

class Archive:
    """Barman's archive as the WAL checks see it: files under tmp_path/wals, no backup.info."""

    def __init__(self, root: Path):
        self.root = root

    def wal_path(self, segment):
        return self.root / "wals" / segment

    def backup_info_path(self, backup_id):
        return self.root / "no-backup.info"


def archived(root: Path, segment: str, page_timeline: int) -> None:
    """A segment whose first page has a long page header written on ``page_timeline`` (sparse after it)."""
    path = Archive(root).wal_path(segment)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as out:
        out.write(struct.pack("=HHI", 0xD10D, 0x0002, page_timeline))
        out.truncate(SIZE)


def reader(root: Path, says: str = "") -> wi.PgBin:
    """A pg_waldump that finds nothing wrong, or says ``says`` and fails."""
    bindir = root / "bin"
    bindir.mkdir(exist_ok=True)
    said = f"echo 'pg_waldump: error: {says}' >&2\nexit 1\n" if says else "exit 0\n"
    (bindir / "pg_waldump").write_text("#!/bin/sh\n" + said)
    (bindir / "pg_waldump").chmod(0o755)
    return wi.PgBin(bindir, "15.18")


def read(root: Path, route, segments, pg=None, **backup_fields):
    rec = record()
    (root / "work").mkdir(exist_ok=True)
    wi.wal_integrity(Archive(root), pg or reader(root), backup(**backup_fields), segments, rec, root / "work",
                     start_lsn="0/6000028", page_timeline=route.page_timeline)
    return rec


def switched_route(tmp_path):
    """Timeline 2 began at 0/70000E0: its first segment, 7, holds timeline 1's first page."""
    return plan(catalogue(tmp_path, [tl(1, 6), tl(2, 7), tl(2, 8)], {2: "1\t0/70000E0\tx\n"}), backup(), "latest",
                record())


def test_across_a_switch_the_parents_first_page_in_the_childs_first_segment_is_sound(tmp_path):
    route = switched_route(tmp_path)
    for segment, page in ((tl(1, 6), 1), (tl(2, 7), 1), (tl(2, 8), 2)):
        archived(tmp_path, segment, page)
    rec = read(tmp_path, route, route.through(tl(1, 6), tl(1, 8)))
    assert rec.check("wal_integrity").passed


def test_a_parents_segment_archived_under_the_childs_name_is_named_red(tmp_path):
    # pg_waldump reads the range as timeline 2's and only checks a page's timeline never goes down: it
    # cannot tell timeline 1's file archived as 000000020000000000000008.
    route = switched_route(tmp_path)
    for segment, page in ((tl(1, 6), 1), (tl(2, 7), 1), (tl(2, 8), 1)):
        archived(tmp_path, segment, page)
    with pytest.raises(wi.WalIntegrityFailed) as red:
        read(tmp_path, route, route.through(tl(1, 6), tl(1, 8)))
    assert red.value.cause.startswith(f"WAL needed by backup B1 is damaged: segment {tl(2, 8)}: its first page "
                                      "(0/8000000) belongs to timeline 1, not timeline 2, whose WAL recovery reads "
                                      "there (a file of another timeline archived under this name)"), red.value.cause


def test_a_later_timelines_segment_under_an_earlier_name_is_named_red(tmp_path):
    route = plan(catalogue(tmp_path, [tl(1, 6), tl(1, 7)]), backup(), "latest", record())
    archived(tmp_path, tl(1, 6), 1)
    archived(tmp_path, tl(1, 7), 2)
    with pytest.raises(wi.WalIntegrityFailed, match=f"segment {tl(1, 7)}: its first page .0/7000000. belongs to "
                                                    "timeline 2, later than timeline 1 of its name"):
        read(tmp_path, route, [tl(1, 6), tl(1, 7)])


def test_a_backup_taken_in_its_timelines_first_segment_reads_the_parents_page_there(tmp_path):
    # The backup began on timeline 2 inside the segment where 2 began: no history is followed, so
    # what lies before the backup's start is not known and only a later timeline there would be damage.
    fields = dict(timeline=2, begin=6, end=6, end_lsn="0/6000138")
    taken = backup(**fields)
    taken.raw["base_backup_information"]["begin_lsn"] = "0/6000028"
    route = plan(catalogue(tmp_path, [tl(2, 6), tl(2, 7)]), taken, "latest", record())
    archived(tmp_path, tl(2, 6), 1)
    archived(tmp_path, tl(2, 7), 2)
    assert route.page_timeline(0x6000000) is None and route.page_timeline(0x7000000) == 2
    rec = record()
    (tmp_path / "work").mkdir()
    wi.wal_integrity(Archive(tmp_path), reader(tmp_path), taken, [tl(2, 6), tl(2, 7)], rec, tmp_path / "work",
                     page_timeline=route.page_timeline)
    assert rec.check("wal_integrity").passed


def test_damage_pg_waldump_finds_first_is_the_one_named(tmp_path):
    route = switched_route(tmp_path)
    for segment, page in ((tl(1, 6), 1), (tl(2, 7), 1), (tl(2, 8), 1)):
        archived(tmp_path, segment, page)
    crc = "error in WAL record at 0/6000090: incorrect resource manager data checksum in record at 0/60000D0"
    with pytest.raises(wi.WalIntegrityFailed, match=f"segment {tl(1, 6)}: first bad record at 0/60000D0"):
        read(tmp_path, route, route.through(tl(1, 6), tl(1, 8)), pg=reader(tmp_path, crc))
