"""Errors that explain themselves: what failed, why, and what to do about it."""

from __future__ import annotations


class HarnessError(Exception):
    """A failure the harness can explain in one paragraph.

    ``cause`` says what is wrong, ``fix`` what the user can do, ``details`` carries evidence
    (command output, log lines) that is shown below the paragraph.
    """

    def __init__(self, cause: str, fix: str = "", details: str = ""):
        self.cause = cause
        self.fix = fix
        self.details = details
        super().__init__(self.render())

    def render(self) -> str:
        text = self.cause.rstrip()
        if self.fix:
            text += " " + self.fix.rstrip()
        if self.details:
            text += "\n" + self.details.rstrip()
        return text


class SetupError(HarnessError):
    """The stack could not be brought up: no verdict is possible."""


class CommandFailed(HarnessError):
    """An external command exited non-zero or ran past its deadline."""

    def __init__(self, argv, returncode, output, cause="", fix=""):
        self.argv = list(argv)
        self.returncode = returncode
        self.output = output
        cause = cause or f"`{' '.join(self.argv)}` failed with exit code {returncode}."
        super().__init__(cause, fix, details=_last_lines(output, 25))


class VerificationFailed(HarnessError):
    """The backup did not restore to what the source held: a red verdict."""


class RecoveryFailed(VerificationFailed):
    """Recovery did not reach its target (server died, stopped early or never got there)."""


class TargetRefused(VerificationFailed):
    """Barman refused the recovery target before any recovery ran."""


def _last_lines(text: str, count: int) -> str:
    lines = (text or "").rstrip().splitlines()
    if len(lines) > count:
        lines = [f"... ({len(lines) - count} earlier lines)"] + lines[-count:]
    return "\n".join("    " + line for line in lines)
