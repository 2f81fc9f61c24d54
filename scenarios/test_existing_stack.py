"""`--stack existing`: the backups of a Barman set up by hand, drilled without touching anything of it.

"Production" here is built the way an operator builds it (scenarios/production.py: bare initdb, a
hand-written barman.conf, production-style settings that would break a naive scratch: 1 GB of
shared_buffers, pg_stat_statements preloaded, an archive_command into a watched directory). The
harness runs against it in its own pytest process, as a user would run it.
"""

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
from junitparser import JUnitXml, Properties
from production import production, table_digest, tree_digest

from support import ROOT, open_workdir, start_inner_run

DRILLS = ROOT / "harness" / "plugin" / "existing_drills.py"


@pytest.fixture(scope="module")
def prod():
    with production(rows=2000, backups=2) as built:
        yield built


def drill(prod, tmp_path, *options, workdir=None):
    """Run the existing-stack drills against ``prod``; (exit code, output, {test name: properties})."""
    reports = tmp_path / "reports"
    with open_workdir() as own:
        proc = start_inner_run(DRILLS, workdir or own, reports, "--stack", "existing",
                               "--barman-config", str(prod.barman_conf), "--barman-server", prod.server, *options)
        output, _ = proc.communicate(timeout=900)
        left = list((workdir or own).iterdir())
    assert left == [], f"the run left {left} behind"
    cases = {}
    if (reports / "junit.xml").exists():
        for suite in JUnitXml.fromfile(str(reports / "junit.xml")):
            for case in suite:
                cases[case.name] = {p.name: p.value for group in case.iterchildren(Properties) for p in group}
    return proc.returncode, output, cases


def catalogue(prod) -> dict:
    """Barman's catalogue of the server: backup.info files, xlog.db, archived WAL, the backups' files
    (not the segment the user's own WAL receiver is writing: it is production's, and moves by itself)."""
    digest = tree_digest(prod.barman_home, exclude=("streaming",))
    assert any(name.endswith("xlog.db") for name in digest) and any("/meta/" in name for name in digest)
    return digest


def test_latest_backup_verified_and_nothing_of_production_touched(prod, tmp_path):
    prod.stop_streaming()          # a quiet production, so that any change would be the harness's
    try:
        before = (catalogue(prod), tree_digest(prod.archive_dir), table_digest(prod.dsn()), tree_digest(prod.tablespace_dir))
        rc, output, cases = drill(prod, tmp_path)
        after = (catalogue(prod), tree_digest(prod.archive_dir), table_digest(prod.dsn()), tree_digest(prod.tablespace_dir))
    finally:
        prod.start_streaming()
    assert rc == 0, output[-5000:]
    latest = prod.backup_ids[-1]
    assert set(cases) == {f"test_backup_restores_consistent_at_its_end[postgres-{latest}]",
                          f"test_backup_restores_through_the_newest_archived_wal[postgres-{latest}]"}, output[-3000:]
    for name, props in cases.items():
        assert props["backup_id"] == latest
        for check in ("backup_metadata", "verify_backup", "wal_continuity", "target_reached", "timeline", "amcheck",
                      "full_read"):
            assert props[f"check_{check}"].startswith("passed"), (name, check, props.get(f"check_{check}"))
        assert "books_db.public.books: " in props["restored_tables"]
        assert "books_db.public.old_books: " in props["restored_tables"]   # the table in the tablespace
        overrides = props["scratch_overrides"]
        for setting in ("archive_mode", "archive_command", "shared_buffers", "huge_pages", "port"):
            assert f"{setting}:" in overrides, (setting, overrides)
        assert "shared_buffers: '1024MB' -> '128MB'" in overrides
    through = cases[f"test_backup_restores_through_the_newest_archived_wal[postgres-{latest}]"]
    assert through["newest_commit"] and float(through["rpo_seconds"]) >= 0
    assert before[0] == after[0], "Barman's catalogue changed"
    assert before[1] == after[1], "the production archive_command's directory changed"
    assert before[2] == after[2], "production's data changed"
    assert before[3] == after[3], "production's tablespace directory changed"


def test_all_or_listed_backups_each_verified(prod, tmp_path):
    rc, output, cases = drill(prod, tmp_path / "all", "--backups", "all")
    assert rc == 0, output[-5000:]
    assert {props["backup_id"] for props in cases.values()} == set(prod.backup_ids)
    assert len(cases) == 2 * len(prod.backup_ids)

    first = prod.backup_ids[0]
    rc, output, cases = drill(prod, tmp_path / "one", "--backups", first, "--barman-server", "all")
    assert rc == 0, output[-5000:]
    assert {props["backup_id"] for props in cases.values()} == {first} and len(cases) == 2
    assert {props["barman_server"] for props in cases.values()} == {"postgres"}   # every server of the file


def test_canary_proves_the_restore_point_exactly(prod, tmp_path):
    others = {name: digest for name, digest in table_digest(prod.dsn()).items() if not name.startswith("pgbv_canary.")}
    rc, output, cases = drill(prod, tmp_path, "--canary", "--backups", "latest")
    assert rc == 0, output[-5000:]
    [canary] = [props for name, props in cases.items() if "canary" in name]
    assert canary["target_kind"] == "name" and canary["check_canary"].startswith("passed")
    assert "recovery stopping at restore point" in canary["recovery_stop"]
    with prod.connect("postgres") as conn:
        tokens = conn.execute("SELECT count(*) FROM pgbv_canary.tokens").fetchone()[0]
    assert tokens == 2, "the canary writes two tokens, nothing else"
    assert {name: digest for name, digest in table_digest(prod.dsn()).items()
            if not name.startswith("pgbv_canary.")} == others, "the canary touched production's own tables"


def _segment_between(prod) -> Path:
    """An archived segment after the latest backup's end, before the newest one."""
    wals = sorted(path for path in (prod.barman_home / prod.server / "wals").rglob("0*") if len(path.name) == 24)
    info = json.loads(prod.barman("-f", "json", "show-backup", prod.server, prod.backup_ids[-1]).stdout)
    end_wal = info[prod.server]["base_backup_information"]["end_wal"]
    later = [path for path in wals if path.name > end_wal]
    assert len(later) >= 2, f"the fixture archives WAL after its last backup: {[p.name for p in wals]}"
    return later[0]


@pytest.mark.faults
def test_damage_on_the_existing_barman_is_named(prod, tmp_path):
    for seed in (71, 72):              # at least two archived segments after the latest backup, whatever ran before
        prod.write_books(100, seed=seed)
        prod.archive_now()
    segment = _segment_between(prod)
    aside = tmp_path / segment.name
    shutil.move(segment, aside)
    try:
        rc, output, cases = drill(prod, tmp_path / "wal")
    finally:
        shutil.move(aside, segment)
    assert rc == 1, output[-5000:]
    latest = next(props for name, props in cases.items() if "newest_archived_wal" in name)
    assert latest["check_wal_continuity"].startswith("FAILED") and segment.name in latest["check_wal_continuity"]

    backup = prod.backup_ids[-1]
    heap = next(p for p in (prod.barman_home / prod.server / "base" / backup / "data" / "base").rglob("*")
                if p.is_file() and p.stat().st_size >= 8192 and p.name.isdigit())
    original = heap.read_bytes()
    heap.write_bytes(original[:4096] + bytes([original[4096] ^ 0xFF]) + original[4097:])
    try:
        rc, output, cases = drill(prod, tmp_path / "byte")
    finally:
        heap.write_bytes(original)
    assert rc == 1, output[-5000:]
    for props in cases.values():
        assert props["check_verify_backup"].startswith("FAILED") and "checksum mismatch" in props["check_verify_backup"]

    info = prod.barman_home / prod.server / "meta" / f"{backup}-backup.info"
    kept = info.read_bytes()
    # Cut after a whole line: cut inside one, Barman's own list-backups fails on the file (no verdict, not this case)
    info.write_bytes(kept[: kept.rfind(b"\n", 0, len(kept) // 3) + 1])
    try:
        rc, output, cases = drill(prod, tmp_path / "meta")
    finally:
        info.write_bytes(kept)
    # Barman lists the backup as EMPTY and `barman check` stays OK: the newest backup is unrestorable, a red.
    assert rc == 1, output[-5000:]
    red = [props for props in cases.values() if props["backup_id"] == backup]
    assert red and all(props["check_backup_metadata"].startswith("FAILED") and "damaged" in props["check_backup_metadata"]
                       for props in red), cases


@pytest.mark.parametrize("case", ["unknown server", "unreadable configuration", "no backup", "wrong major"])
def test_bad_input_is_no_verdict_with_one_clear_message(prod, tmp_path, case):
    options = {"unknown server": ["--barman-server", "nosuchserver"],
               "unreadable configuration": ["--barman-config", str(tmp_path / "missing.conf")],
               "no backup": ["--barman-config", str(_config_with_empty_server(prod, tmp_path)),
                             "--barman-server", "empty"],
               "wrong major": ["--pg-bindir", _other_major_bindir()]}[case]
    before = catalogue(prod) if case != "wrong major" else None
    rc, output, _ = drill(prod, tmp_path, *options)
    assert rc == 2, output[-4000:]
    assert "Traceback" not in output
    expected = {"unknown server": "has no server 'nosuchserver'", "unreadable configuration": "No Barman configuration",
                "no backup": "has no finished backup", "wrong major": "restores only with binaries of its own major"}
    assert expected[case] in output, output[-4000:]
    if before is not None:
        assert catalogue(prod) == before


def _config_with_empty_server(prod, tmp_path) -> Path:
    text = prod.barman_conf.read_text()
    section = text[text.index(f"[{prod.server}]"):]
    config = tmp_path / "barman.conf"
    config.write_text(text + "\n" + section.replace(f"[{prod.server}]", "[empty]")
                      .replace("slot_name = barman", "slot_name = barman_empty") + "\n")
    return config


def _other_major_bindir() -> str:
    from harness.postgres import versions
    other = [install for install in versions.installed() if install.major != 15]
    if not other:
        pytest.skip("only one PostgreSQL major is installed here")
    return str(other[0].pg.bindir)


def test_no_room_for_the_restore_is_no_verdict_before_any_copy(prod, tmp_path):
    with open_workdir() as reachable:   # a place the server user can reach, for the small file system
        _no_room(prod, tmp_path, reachable / "tiny")


def _no_room(prod, tmp_path, tiny):
    tiny.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m,mode=0755", "tmpfs", str(tiny)],
                             capture_output=True, text=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here: {mounted.stderr.strip()}")
    try:
        os.chmod(tiny, 0o755)
        rc, output, cases = drill(prod, tmp_path / "run", workdir=tiny)
    finally:
        subprocess.run(["umount", str(tiny)], capture_output=True)
    assert rc == 2, output[-4000:]
    assert "Not enough free space to restore backup" in output, output[-4000:]
    assert "Traceback" not in output


def test_a_nightly_reads_only_the_wal_that_is_new_since_the_last_run(prod, tmp_path):
    def latest(cases):
        return next(props for name, props in cases.items() if "newest_archived_wal" in name)

    rc, output, first = drill(prod, tmp_path)
    assert rc == 0, output[-4000:]
    assert latest(first)["check_wal_watermark"].startswith("passed: read from the backup's first segment")
    prod.write_books(200, seed=99)
    prod.archive_now()
    rc, output, second = drill(prod, tmp_path)                # the same reports dir: the same state file
    assert rc == 0, output[-4000:]
    watermark = latest(first)["check_wal_watermark"].split("verified through ")[1].split(" ")[0]
    assert f"earlier runs had verified WAL through {watermark}" in latest(second)["check_wal_watermark"]
    assert latest(second)["check_wal_integrity"].startswith(f"passed: {watermark}.."), latest(second)
    rc, output, full = drill(prod, tmp_path, "--full-wal-check")
    assert rc == 0, output[-4000:]
    assert not latest(full)["check_wal_integrity"].startswith(f"passed: {watermark}..")


def test_rpo_and_rto_limits_turn_into_verdicts(prod, tmp_path):
    rc, output, cases = drill(prod, tmp_path, "--max-rpo", "1", "--max-rto", "1h")
    assert rc == 1, output[-4000:]
    latest = next(props for name, props in cases.items() if "newest_archived_wal" in name)
    end = next(props for name, props in cases.items() if "consistent_at_its_end" in name)
    assert latest["check_rto"].startswith("passed") and end["check_rto"].startswith("passed")
    assert latest["check_rpo"].startswith("FAILED") and "over --max-rpo 1 s" in latest["check_rpo"]
    assert "check_rpo" not in end, "an RPO is measured on the restore through the archive only"
