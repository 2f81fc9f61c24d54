"""The usual hand-written PostgreSQL + Barman README, run command by command on a compose stack kept up
by `pgbv-stack up --stack compose`, each step's output checked as the person typing it would read it.

The commands are the README's own (`docker-compose` where it says `docker compose`: only v1 is installed
here), in a terminal, from the stack's directory. Then a recovery to a time taken on the server between
two writer runs must hold exactly the first run's rows, the harness verifies the backup with `--stack
existing` inside the barman container, and `pgbv-stack down` must leave nothing. The project is named
on `up` (--compose-project), so that whatever `down` might leave is found by its label and removed:
its containers take the fixed names postgres, barman and app. Skipped with the reason when no Docker
engine can be had.
"""

import uuid

from by_hand import LIST_BACKUP_LINE, Terminal, finish, kept_up, wait_for_output
from support import open_workdir
from test_compose_stack import engine  # noqa: F401 (a fixture)

ROWS = "select count(*), md5(string_agg(b::text, ',' order by id)) from books b"   # the rows, exactly


def test_the_readme_works_as_written_on_a_kept_up_compose_stack(engine, tmp_path):  # noqa: F811
    project = f"pgbvkept{uuid.uuid4().hex[:8]}"
    with open_workdir() as workdir:
        term = Terminal.fresh(tmp_path, DRILL_STATE_DIR=str(tmp_path / "state"), DRILL_WORKDIR=str(workdir))
        with kept_up(term, f"pgbv-stack up --stack compose --compose-project {project} > exports.sh", workdir,
                     project) as ending:
            term.source("cat exports.sh")
            stack_dir = term.env["PGBV_STACK_DIR"]
            assert _project_of(stack_dir) == project     # plain docker-compose finds the project from there
            term.cwd = stack_dir                 # where the README's docker-compose commands run
            readme(term)
        assert "nothing of it is left" in ending.down, ending.down
        assert ending.left == [], f"pgbv-stack down left {ending.left}"
    assert not (tmp_path / "state" / "stack.json").exists()
    assert "No stack is up" in term.run("pgbv-stack status", rc=2, cwd=tmp_path)


def readme(term: Terminal) -> None:
    out = term.run("docker-compose up -d --build")
    assert all(f"{service} is up-to-date" in out for service in ("postgres", "barman", "app")), out
    out = term.run("PGPASSWORD=postgres docker exec -i postgres psql -U postgres -d books_db < init.sql")
    assert 'relation "books" already exists, skipping' in out, out          # up loaded it already
    out = term.run("docker-compose exec barman barman receive-wal --create-slot postgres", rc=1)
    assert "Replication slot 'barman' already exists" in out, out           # up created it already
    out = term.run("docker-compose exec barman barman switch-wal --archive --archive-timeout 60 postgres")
    assert "has been closed on server 'postgres'" in out, out
    out = term.run("docker-compose exec barman barman check postgres")
    checks = [line.strip() for line in out.splitlines() if ": " in line]
    assert len(checks) > 15 and all(": OK" in line for line in checks), out

    out = term.run("docker exec -it app python write_data.py 1000 --batch-size 100")
    assert "inserted 1000 rows" in out, out
    out = term.run("docker-compose exec barman barman backup postgres")
    assert "Backup completed" in out, out
    out = term.run("docker-compose exec barman barman list-backup postgres")
    listed = LIST_BACKUP_LINE.search(out)
    assert listed and listed["server"] == "postgres", out
    backup_id = listed["id"]

    term.run("""docker-compose exec barman bash -c "echo '0 0 * * * barman backup postgres' | crontab -" """)
    assert "0 0 * * * barman backup postgres" in term.run("docker-compose exec barman crontab -l")
    assert "barman" in term.run("docker-compose exec barman which -a barman")   # also on cron's PATH
    out = term.run("docker-compose exec barman barman cron")
    assert "Starting WAL archiving for server postgres" in out, out
    # `&`: cron keeps a WAL receiver running already, so this one says so and ends.
    still_running, out = finish(term.start("docker-compose exec barman barman receive-wal postgres"))
    assert still_running or "Another receive-wal process is already running for server postgres" in out, out
    out = term.run("docker-compose exec barman barman replication-status postgres")
    assert "Application name: barman_receive_wal" in out and "Current state   : streaming" in out, out
    assert "Current LSN on master: " in out and "Write LSN  : " in out and "Flush LSN  : " in out, out
    # DONE once a `barman cron` finds the backup's last WAL archived (the container's cron runs it each minute;
    # its archiver takes only segments receive-wal has closed): run it as a person would rather than wait
    out = wait_for_output(term, "docker-compose exec -T barman barman cron >/dev/null; "
                          "docker-compose exec barman barman show-backup postgres latest",
                          "Status                 : DONE", "the latest backup to be DONE", timeout=120)
    assert f"Backup {backup_id}:" in out, out

    # A time between two writer runs, taken on the server; the second run must not survive the recovery.
    when = term.run('docker exec postgres psql -U postgres -d books_db -XAtc "select clock_timestamp()"').strip()
    first_run = term.run(f'docker exec postgres psql -U postgres -d books_db -XAtc "{ROWS}"').strip()
    assert first_run.startswith("1000|"), first_run
    term.run("docker exec -it app python write_data.py 500 --batch-size 100")
    term.run("docker-compose exec barman barman switch-wal --archive --archive-timeout 60 postgres")
    out = term.run("docker-compose exec barman barman recover postgres latest /var/lib/postgresql/data "
                   f'--target-time "{when}"')
    assert f"using backup {backup_id}" in out and "successfully prepared for recovery" in out, out

    # Started on what barman recovered into /var/lib/postgresql/data (the volume it shares with `scratch`).
    term.run("docker-compose up -d scratch")
    psql = "docker-compose exec -T -u postgres scratch psql -d books_db -XAtc"
    wait_for_output(term, f'{psql} "select pg_get_wal_replay_pause_state()"', "paused",
                    "the recovered server to pause at the target time")
    restored = term.run(f'{psql} "{ROWS}"').strip()
    assert restored == first_run, f"restored {restored}, expected the first run's rows {first_run}"
    assert "recovery stopping before commit" in term.run("docker-compose logs --no-color scratch")

    out = term.run('docker exec barman python3 -m pytest -p harness.plugin -p no:cacheprovider --stack existing '
                   '--barman-config="$BARMAN_CONFIG" --barman-server="$BARMAN_SERVER" --workdir=/tmp '
                   "--reports-dir=/tmp/reports /opt/harness/harness/plugin/existing_drills.py", timeout=600)
    assert "2 passed" in out and "VERIFIED: 2/2 drills passed" in out, out[-4000:]


def _project_of(stack_dir: str) -> str:
    with open(f"{stack_dir}/.env") as env:
        return next(line.split("=", 1)[1].strip() for line in env if line.startswith("COMPOSE_PROJECT_NAME="))
