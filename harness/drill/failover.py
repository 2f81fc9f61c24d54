"""The source fails over onto a new timeline, as a promoted standby does; Barman archives the switch.

The source stops cleanly, comes back as a standby of nothing (standby.signal: it replays its own WAL
and waits) and is promoted: PostgreSQL opens the next timeline at the end of its WAL and writes that
timeline's history file. Barman's WAL receiver lost its connection when the source stopped (where
`barman cron` runs, it restarts it); restarted here, it streams the old timeline up to the switch,
then the new one, and Barman archives the history file with the segments.
"""

from __future__ import annotations

from harness.postgres.timelines import history_name
from harness.process.accounts import chown_to
from harness.process.commands import run
from harness.process.waiting import wait_until


def promote_onto_a_new_timeline(stack, timeout: float = 60) -> int:
    """Fail the local stack's source over onto its next timeline; returns that timeline once Barman
    has archived its history file."""
    server, barman = stack.source.server, stack.barman
    server.stop()
    signal = server.data_dir / "standby.signal"
    signal.touch()
    chown_to(signal, server.run_as)
    server.start(timeout=timeout)
    run([server.pg.tool("pg_ctl"), "-D", server.data_dir, "-w", "-t", int(timeout), "promote"],
        run_as=server.run_as, timeout=timeout + 10, cause=f"`pg_ctl promote` of the {server.name} server failed.")
    timeline = server.timeline()
    barman.stop_receive_wal()
    barman.start_receive_wal()
    barman.wait_for_streaming()
    barman.archive_current_wal()  # Barman's archiver moves the history file in with the new segments
    history = barman.wals_directory / history_name(timeline)
    wait_until(history.exists, what=f"Barman to archive {history.name} after the promotion", timeout=timeout,
               interval=0.3, logs=barman.log_excerpt)
    return timeline
