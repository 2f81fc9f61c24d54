"""The same hand-written README in the local stack's own words (no docker): a stack kept up by
`pgbv-stack up --stack local`, reached through the lines `pgbv-stack env` prints, driven with `barman -c
"$BARMAN_CONFIG" ...`, `pgbv-write-data`, `psql` and `pg_ctl`; a recovery to a time between two writer runs
holds exactly the first run's rows, the harness verifies the backup with `--stack existing`, and
`pgbv-stack down` leaves nothing (no server, no process, no directory, no record). An `up` cut short by
Ctrl-C or SIGKILL leaves nothing either.
"""

import os
import signal
import subprocess

import pytest
from by_hand import LIST_BACKUP_LINE, Terminal, finish, kept_up, reap_leftovers, wait_for_output
from support import open_workdir, processes_naming

from harness.postgres.binaries import find_pg_bindir
from harness.process.ports import free_port
from harness.process.waiting import wait_until

ROWS = "select count(*), md5(string_agg(b::text, ',' order by id)) from books b"   # the rows, exactly
B = 'barman -c "$BARMAN_CONFIG"'


def test_the_readme_in_the_local_stacks_words(tmp_path):
    with open_workdir() as workdir:
        term = Terminal.fresh(tmp_path, DRILL_STATE_DIR=str(tmp_path / "state"), DRILL_WORKDIR=str(workdir))
        with kept_up(term, "pgbv-stack up --stack local", workdir) as ending:
            assert "A stack is already up" in term.run("pgbv-stack up --stack local", rc=2)   # nothing started twice
            term.source("pgbv-stack env")
            stack_dir = term.env["PGBV_STACK_DIR"]
            assert "DB_PASSWORD" in term.env and "PGPASSWORD" not in term.env
            readme(term, tmp_path)
        assert "nothing of it is left" in ending.down, ending.down
        assert ending.left == [], f"pgbv-stack down left {ending.left}"
        assert not os.path.exists(stack_dir) and processes_naming(stack_dir) == []
    assert not (tmp_path / "state" / "stack.json").exists()
    assert "nothing to take down" in term.run("pgbv-stack down")


def readme(term: Terminal, tmp_path) -> None:
    out = term.run('psql -XAtc "select current_user, to_regclass(\'books\')"')   # init.sql: loaded by up
    assert out.strip() == "books_app|books", out
    out = term.run('psql -XAtc "create table mine (i int)"', rc=1)                # the role has rights on books only
    assert "permission denied for schema public" in out, out
    out = term.run(f'{B} receive-wal --create-slot "$BARMAN_SERVER"', rc=1)
    assert "Replication slot 'barman' already exists" in out, out
    out = term.run(f'{B} switch-wal --archive --archive-timeout 60 "$BARMAN_SERVER"')
    assert "has been closed on server 'postgres'" in out, out
    out = term.run(f'{B} check "$BARMAN_SERVER"')
    checks = [line.strip() for line in out.splitlines() if ": " in line]
    assert len(checks) > 15 and all(": OK" in line for line in checks), out

    assert "inserted 1000 rows" in term.run("pgbv-write-data 1000 --batch-size 100")   # DB_* from pgbv-stack env
    assert "Backup completed" in term.run(f'{B} backup "$BARMAN_SERVER"')
    listed = LIST_BACKUP_LINE.search(term.run(f'{B} list-backup "$BARMAN_SERVER"'))
    assert listed and listed["server"] == "postgres", listed
    assert "Starting WAL archiving for server postgres" in term.run(f'{B} cron')
    still_running, out = finish(term.start(f'{B} receive-wal "$BARMAN_SERVER"'))
    assert still_running or "Another receive-wal process is already running for server postgres" in out, out
    out = term.run(f'{B} replication-status "$BARMAN_SERVER"')
    assert "Application name: barman_receive_wal" in out and "Current LSN on master: " in out, out
    assert "Write LSN  : " in out and "Flush LSN  : " in out, out
    # DONE once a `barman cron` finds the backup's last WAL archived; its archiver runs in the background and
    # takes only segments receive-wal has closed, so (no cron daemon here) a person runs cron again until then
    out = wait_for_output(term, f'{B} cron >/dev/null; {B} show-backup "$BARMAN_SERVER" latest',
                          "Status                 : DONE", "the latest backup to be DONE")
    assert f"Backup {listed['id']}:" in out, out

    when = term.run('psql -XAtc "select clock_timestamp()"').strip()
    first_run = term.run(f'psql -XAtc "{ROWS}"').strip()
    assert first_run.startswith("1000|"), first_run
    term.run("pgbv-write-data 500 --batch-size 100 --seed 1")
    term.run(f'{B} switch-wal --archive --archive-timeout 60 "$BARMAN_SERVER"')
    out = term.run(f'{B} recover "$BARMAN_SERVER" latest "$PGBV_STACK_DIR/recovered" --target-time "{when}"')
    assert f"using backup {listed['id']}" in out and "successfully prepared for recovery" in out, out

    # PostgreSQL refuses root: as root, the server user (postgres) owns and runs the recovered copy.
    port, pg_ctl = free_port(), find_pg_bindir(None).tool("pg_ctl")
    as_server_user = ""
    if os.geteuid() == 0:
        as_server_user = 'chown -R postgres "$PGBV_STACK_DIR/recovered" && runuser -u postgres -- ' 
    term.run(f'{as_server_user}{pg_ctl} -D "$PGBV_STACK_DIR/recovered" -l "$PGBV_STACK_DIR/recovered/server.log" -w '
             f'-o "-p {port} -c listen_addresses=127.0.0.1 -c unix_socket_directories= -c archive_mode=off" start',
             cwd=term.env["PGBV_STACK_DIR"])
    restored = term.run(f'psql -p {port} -XAtc "select pg_get_wal_replay_pause_state(), {ROWS[7:]}"').strip()
    assert restored == f"paused|{first_run}", f"restored {restored}, expected the first run's rows {first_run}"

    out = term.run('pytest -p no:cacheprovider --stack existing --barman-config="$BARMAN_CONFIG" '
                   '--barman-server="$BARMAN_SERVER" --reports-dir=reports', timeout=600, cwd=tmp_path)
    assert "2 passed" in out and "VERIFIED: 2/2 drills passed" in out, out[-4000:]


@pytest.mark.parametrize("ending", ["interrupt", "sigkill"])
def test_up_cut_short_leaves_nothing(tmp_path, ending):
    """Ctrl-C or SIGKILL while `up` waits for Barman: no server, process, directory or record stays."""
    with open_workdir() as workdir:
        term = Terminal.fresh(tmp_path, DRILL_STATE_DIR=str(tmp_path / "state"), DRILL_WORKDIR=str(workdir))
        up = subprocess.Popen(["pgbv-stack", "up", "--stack", "local"], env=term.env, cwd=tmp_path,
                              stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        try:
            # barman.conf is written once the source server runs, before the slot, receive-wal and `barman check`
            wait_until(lambda: up.poll() is not None or list(workdir.glob("pgbv-*/barman.conf")),
                       what="pgbv-stack up to start the source server", timeout=120, interval=0.02)
            assert up.poll() is None, f"up ended before it could be cut short:\n{up.communicate()[0]}"
            run_dir = str(next(workdir.glob("pgbv-*")))
            up.send_signal(signal.SIGINT if ending == "interrupt" else signal.SIGKILL)
            output, _ = up.communicate(timeout=120)
            if ending == "interrupt":
                assert up.returncode == 2 and "interrupted; what had started was removed" in output, output
            # SIGKILL: the watchdog reaps within a second or so
            wait_until(lambda: not os.path.exists(run_dir) and not processes_naming(run_dir),
                       what="the cut-short stack to be removed", timeout=60, interval=0.5,
                       logs=lambda: "\n".join(processes_naming(run_dir)))
        finally:
            if up.poll() is None:
                up.kill()
                up.wait(timeout=30)
            left = reap_leftovers(workdir)    # a stack left running would outlive the test
        assert left == []
    assert not (tmp_path / "state" / "stack.json").exists()
    assert "No stack is up" in term.run("pgbv-stack status", rc=2)
