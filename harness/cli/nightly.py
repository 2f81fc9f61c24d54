"""pgbv-nightly: the nightly recovery drill for cron or CI, ending in one summary line.

    pgbv-nightly [pytest options and test paths]

Runs every drill (``-m drill``; hypothesis profile ``nightly`` unless DRILL_HYPOTHESIS_PROFILE
says otherwise) through pytest in this process and exits with:
  0  every drill was verified (a shard, --shard K/N, dealt no drills: its part is done)
  1  at least one drill failed verification (a backup did not restore exactly)
  2  no verdict: the stack could not be brought up, the run was interrupted (SIGTERM, Ctrl-C) or
     could not start, a drill could not run or the harness itself failed
A server the run did not verify is named with, from the run history, since when it has not been.
"""

from __future__ import annotations

import os
import sys

import pytest

from harness.config import joined_option_values
from harness.evidence.run_history import HistoryUnavailable, unverified_servers
from harness.plugin.state import RUN


class _Verdict:
    """Reads the run's evidence as the session ends."""

    def __init__(self):
        self.summary = ""
        self.report = ""
        self.verified = False
        self.dealt_nothing = False       # a shard dealt no drills (--shard K/N, more shards than servers)
        self.unverified: list[str] = []  # per server not verified: since when (from the run history)

    @pytest.hookimpl(trylast=True)
    def pytest_sessionfinish(self, session):
        state = session.config.stash.get(RUN, None)
        if state is None:
            return
        html = [str(path) for path in state.written if str(path).endswith(".html")]
        self.report = html[0] if html else ""
        facts = state.record.facts
        if not state.record.drills and facts.get("shard") and facts.get("shard_drills") == "0" \
                and not state.record.interrupted:
            self.dealt_nothing = True   # its part of the run is done: pgbv-merge counts its report
            self.summary = (f"shard {facts['shard']} was dealt no drills ({facts.get('shard_tests', '0 of ?')} "
                            f"tests, plan {facts.get('shard_plan', '-')}): nothing to verify on this machine")
        if not state.record.drills:
            return
        self.summary = state.record.summary_line()
        self.verified = state.record.verified
        if state.history is not None and not self.verified:
            try:
                self.unverified = unverified_servers(state.history, state.record)
            except HistoryUnavailable as exc:
                self.unverified = [f"the run history could not be read ({exc.cause})"]
            except Exception as exc:  # a bug reading it must not turn a red into "pytest could not run"
                self.unverified = [f"the run history could not be read (the harness failed: {type(exc).__name__}: "
                                   f"{exc}; a bug of pgbv, please report it)"]


def main(argv: list[str] | None = None) -> int:
    # `--barman-config PATH` as `--barman-config=PATH`: pytest would take PATH for a test path while
    # choosing its rootdir, before it knows the drill options.
    args = joined_option_values(list(sys.argv[1:] if argv is None else argv))
    os.environ.setdefault("DRILL_HYPOTHESIS_PROFILE", "nightly")
    verdict = _Verdict()
    try:
        rc = int(pytest.main(["-m", "drill", *args], plugins=[verdict]))
    except BaseException as exc:  # pytest itself could not run
        print(f"nightly: NO VERDICT: {exc}", file=sys.stderr)
        return 2
    summary = "; ".join([verdict.summary or "no drill evidence written", *verdict.unverified])
    if verdict.report:
        summary += f"; report {verdict.report}"
    if rc == 0 and (verdict.verified or verdict.dealt_nothing):
        print(f"nightly: OK: {summary}")
        return 0
    if rc == 0:  # nothing failed, but nothing was verified either (every drill skipped, none selected)
        print(f"nightly: NO VERDICT: {summary}")
        return 2
    if rc == 1:
        print(f"nightly: FAILED VERIFICATION: {summary}")
        return 1
    print(f"nightly: NO VERDICT (pytest exit {rc}): {summary}")
    return 2


if __name__ == "__main__":
    sys.exit(main())
