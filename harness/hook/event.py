"""What Barman tells a backup hook, and what the hook does about it. Pure: no I/O here.

Barman runs ``post_backup_retry_script`` (and ``post_backup_script``) with the backup's facts in the
environment. A retry script is run again and again until it exits 0, 62 (ABORT_CONTINUE) or 63
(ABORT_STOP, which a post-backup hook treats as 62); the hook therefore only ever exits 0 or 62.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

EXIT_OK = 0           # the drill was launched (in the background), verified (--wait), or there is nothing to drill
ABORT_CONTINUE = 62   # the drill was red, had no verdict or could not run: Barman logs a warning and goes on

# The hooks this script is meant for (BARMAN_HOOK): a recovery or delete hook also gets a backup id.
BACKUP_HOOKS = ("backup_retry_script", "backup_script")
WAITING = "WAITING_FOR_WALS"


@dataclass(frozen=True)
class BackupEvent:
    """One call of the hook: Barman's BARMAN_* variables."""

    server: str
    backup_id: str
    status: str
    phase: str
    configuration: str
    hook: str = ""
    retry: str = ""
    error: str = ""
    barman_version: str = ""

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> BackupEvent:
        get = lambda name: (env.get(f"BARMAN_{name}") or "").strip()  # noqa: E731
        return cls(server=get("SERVER"), backup_id=get("BACKUP_ID"), status=get("STATUS"), phase=get("PHASE"),
                   configuration=get("CONFIGURATION"), hook=get("HOOK"), retry=get("RETRY"), error=get("ERROR"),
                   barman_version=get("VERSION"))

    def describe(self) -> str:
        hook = f"{self.phase}_{self.hook}" if self.phase and self.hook else (self.hook or "hook")
        text = (f"{hook} (retry {self.retry or '?'}, Barman {self.barman_version or '?'}): server "
                f"{self.server or '?'}, backup {self.backup_id or '?'}, status {self.status or '?'}, "
                f"configuration {self.configuration or '?'}")
        return text + (f", error: {self.error}" if self.error else "")


@dataclass(frozen=True)
class Decision:
    """``drill`` (DONE), ``wait`` (WAITING_FOR_WALS: drill once DONE), ``ignore`` (nothing to drill: exit 0)
    or ``refuse`` (the hook cannot act on this call: exit 62)."""

    action: str
    reason: str

    @property
    def exit_code(self) -> int:
        return ABORT_CONTINUE if self.action == "refuse" else EXIT_OK


def decide(event: BackupEvent) -> Decision:
    missing = [name for name, value in (("BARMAN_SERVER", event.server), ("BARMAN_BACKUP_ID", event.backup_id),
                                        ("BARMAN_STATUS", event.status), ("BARMAN_CONFIGURATION", event.configuration))
               if not value]
    if missing:
        return Decision("refuse", f"not called by Barman as a backup hook: {', '.join(missing)} not set. Name this "
                                  "command in barman.conf as post_backup_retry_script (or post_backup_script).")
    if event.hook and event.hook not in BACKUP_HOOKS:
        return Decision("ignore", f"called as {event.phase}_{event.hook}: only backup hooks start a drill.")
    if event.phase != "post":
        return Decision("ignore", f"phase '{event.phase or 'unset'}': a drill needs a finished backup, so only the "
                                  "post-backup phase starts one (configure post_backup_retry_script).")
    if event.status == "DONE":
        return Decision("drill", f"backup {event.backup_id} is DONE.")
    if event.status == WAITING:
        return Decision("wait", f"backup {event.backup_id} is {WAITING}: Barman has not yet archived all the WAL "
                                "it needs; it is drilled once Barman marks it DONE.")
    error = f" ({event.error})" if event.error else ""
    return Decision("ignore", f"backup {event.backup_id} is {event.status}{error}: there is nothing to restore, no "
                              "drill. Barman reports the failed backup itself (barman check, list-backups).")


def exit_code_of_drill(returncode: int | None) -> int:
    """pgbv-nightly's 0 (verified) stays 0; red (1), no verdict (2), killed or anything else is 62."""
    return EXIT_OK if returncode == 0 else ABORT_CONTINUE


def verdict_of_drill(returncode: int | None) -> str:
    return {0: "VERIFIED", 1: "RED (a drill failed verification)",
            2: "NO VERDICT (the drill could not run or finish)"}.get(
        returncode, f"NO VERDICT (the drill ended with {'a deadline' if returncode is None else f'exit {returncode}'})")
