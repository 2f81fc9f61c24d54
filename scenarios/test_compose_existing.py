"""`--stack existing` run inside the compose stack's barman container, on that container's own Barman.

The compose stack is brought up with the harness's own API and takes two backups with writes between
them; then the existing-mode drills run in there, as an operator would run them on a Barman host
(`docker exec`, the harness mounted read-only, its packages and PostgreSQL 15's server in the image),
and must verify both backups, to `immediate` and to `latest`. Skipped with the reason when no Docker
engine can be had; nothing of the project is left afterwards.
"""

import uuid

from junitparser import Error, Failure, JUnitXml, Properties, Skipped
from test_compose_stack import engine, project_resources  # noqa: F401 (engine is a fixture)

from harness import DrillConfig, make_stack
from harness.process.commands import run

from support import open_workdir

DRILLS = "/opt/harness/harness/plugin/existing_drills.py"
CHECKS = ("backup_metadata", "verify_backup", "wal_continuity", "target_reached", "timeline", "amcheck", "full_read")


def existing_drills_in(container: str) -> tuple[int, str, JUnitXml]:
    """The existing-stack drills of every backup, run in ``container``; (exit code, output, junit)."""
    # /tmp is the container's own file system: restores and evidence stay in there.
    reports = "/tmp/reports"
    done = run(["docker", "exec", container,
                "python3", "-m", "pytest", "-p", "harness.plugin", "-p", "no:cacheprovider",
                "--stack", "existing", "--barman-config", "/etc/barman.conf", "--barman-server", "pg",
                "--backups", "all", "--workdir", "/tmp", "--reports-dir", reports,
                "--junitxml", f"{reports}/junit.xml", DRILLS], timeout=1200, check=False)
    junit = run(["docker", "exec", container, "cat", f"{reports}/junit.xml"], timeout=30, check=False)
    assert junit.returncode == 0, f"no junit.xml in the container:\n{done.stdout[-5000:]}\n{junit.stdout}"
    return done.returncode, done.stdout, JUnitXml.fromstring(junit.stdout)


def test_existing_drills_in_the_barman_container_verify_its_backups(engine, tmp_path):  # noqa: F811
    project = f"pgbvex{uuid.uuid4().hex[:8]}"
    with open_workdir() as workdir:
        config = DrillConfig(stack="compose", workdir=str(workdir), compose_project=project)
        with make_stack(config) as stack:
            books = stack.source.books(seed=7)
            books.insert(1000)
            first = stack.barman.backup()
            books.insert(500)
            books.update(50)
            books.delete(20)
            second = stack.barman.backup()
            books.insert(200)                  # after the newest backup: what `latest` replays
            stack.barman.archive_current_wal()
            rc, output, junit = existing_drills_in(stack.barman.container)
        assert list(workdir.iterdir()) == [], "the compose run left files in its work dir"
    assert project_resources(project) == [], output[-3000:]

    assert rc == 0, output[-6000:]
    assert "4 passed" in output, output[-3000:]
    cases = {}
    for suite in junit:
        for case in suite:
            assert not [r for r in case.result if isinstance(r, (Failure, Error, Skipped))], (case.name, output[-3000:])
            cases[case.name] = {p.name: p.value for group in case.iterchildren(Properties) for p in group}
    expected = {f"test_backup_restores_{what}[pg-{backup.backup_id}]"
                for backup in (first, second)
                for what in ("consistent_at_its_end", "through_the_newest_archived_wal")}
    assert set(cases) == expected, (sorted(cases), output[-3000:])
    for name, props in cases.items():
        for check in CHECKS:
            assert props.get(f"check_{check}", "").startswith("passed"), (name, check, props.get(f"check_{check}"))
        assert "books_db.public.books: " in props["restored_tables"], (name, props["restored_tables"])
