"""One way to wait: tenacity with a deadline, and a timeout that says what it waited for."""

from __future__ import annotations

from typing import Callable, TypeVar

import tenacity

from harness.errors import HarnessError

T = TypeVar("T")


class WaitTimedOut(HarnessError):
    """A condition did not come true before its deadline."""


def wait_until(probe: Callable[[], T], *, what: str, timeout: float, interval: float = 0.1,
               logs: Callable[[], str] | None = None, tolerate: tuple = ()) -> T:
    """Call ``probe`` until it returns a truthy value, and return that value.

    Exceptions in ``tolerate`` count as "not yet"; any other exception ends the wait at once (a
    probe raises when waiting longer cannot help: the server died, recovery ended). On timeout the
    error names ``what`` and carries ``logs()``: the log lines that show why.
    """
    def not_ready(value) -> bool:
        return not value

    retrying = tenacity.Retrying(
        stop=tenacity.stop_after_delay(timeout),
        wait=tenacity.wait_fixed(interval),
        retry=tenacity.retry_if_result(not_ready) | tenacity.retry_if_exception_type(tolerate),
        reraise=True,
    )
    try:
        return retrying(probe)
    except tenacity.RetryError as exc:
        last = exc.last_attempt
        detail = ""
        if last.failed:
            detail = f" Last error: {last.exception()}"
        raise WaitTimedOut(f"Timed out after {timeout:.0f} s waiting for {what}.{detail}",
                           details=logs() if logs else "") from None
    except tolerate as exc:
        # reraise=True hands back the last tolerated exception once the deadline passed.
        raise WaitTimedOut(f"Timed out after {timeout:.0f} s waiting for {what}. Last error: {exc}",
                           details=logs() if logs else "") from None
