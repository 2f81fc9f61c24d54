"""Checks of one restore that run beside each other and beside the copy, with evidence as if in sequence.

`barman verify-backup` reads the stored backup in a Barman process of its own; `barman recover` copies
it into the scratch. Neither needs the other, so a check can run while the copy goes on, as long as the
server does not start before every check passed. Each check writes into a record of its own; `settle()`
waits for all, moves their outcomes into the restore's record in the order the checks were started, and
raises the first failure in that order. `failure` is set the moment one fails, so the copy stops early;
`abandoned` when the restore ends before they settled (a failure elsewhere, Ctrl-C), so they stop too:
a check still queued never starts, and the outcomes of those that finished before are still recorded.
"""

from __future__ import annotations

import dataclasses
import threading
from concurrent.futures import Future, ThreadPoolExecutor

from harness.evidence.records import RestoreRecord


class ChecksAside:
    def __init__(self, record: RestoreRecord, workers: int = 2):
        self.record = record
        self.failure = threading.Event()
        self.abandoned = threading.Event()
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="check-aside")
        self._checks: list[tuple[RestoreRecord, Future]] = []

    def start(self, check, *args) -> Future:
        """Run ``check(record, *args)`` in a thread; its outcomes are recorded by ``settle()``."""
        own = dataclasses.replace(self.record, checks=[])
        future = self._pool.submit(check, own, *args)
        future.add_done_callback(lambda done: not done.cancelled() and done.exception() is not None
                                 and self.failure.set())
        self._checks.append((own, future))
        return future

    def run(self, check, *args):
        """Run ``check(record, *args)`` here and now, recorded after those started before it; when it
        fails, the checks before it settle first (an earlier failure is the one raised)."""
        own, future = dataclasses.replace(self.record, checks=[]), Future()
        try:
            future.set_result(check(own, *args))
        except BaseException as exc:  # recorded, then raised by settle() in its turn
            future.set_exception(exc)
            self.failure.set()
        self._checks.append((own, future))
        if future.exception() is not None:
            self.settle()
        return future.result()

    def settle(self) -> None:
        """Wait for every check; record their outcomes in order; raise the first failure."""
        while self._checks:
            own, future = self._checks[0]
            error = future.exception()  # waits; a Ctrl-C here leaves this check for __exit__ to record
            del self._checks[0]
            self.record.checks.extend(own.checks)
            if error is not None:
                self._checks.clear()  # the record stops at the first failure
                raise error

    def __enter__(self) -> ChecksAside:
        return self

    def __exit__(self, *exc_info) -> None:
        # The restore ended before settle() (an error in the copy, Ctrl-C): checks that had finished are
        # evidence and recorded; those still running are no longer, and are told to stop; queued ones
        # never start.
        finished = [(own, future) for own, future in self._checks if future.done()]
        self._pool.shutdown(wait=False, cancel_futures=True)
        self.failure.set()
        self.abandoned.set()
        self._pool.shutdown(wait=True)
        self._record_finished(finished)

    def _record_finished(self, finished: list[tuple[RestoreRecord, Future]]) -> None:
        """Outcomes of checks that ended before the restore did, in order, through the first failure;
        never raises (the restore's own exception is the one that goes on)."""
        self._checks.clear()
        for own, future in finished:
            self.record.checks.extend(own.checks)
            if future.exception() is not None:
                return
