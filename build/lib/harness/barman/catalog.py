"""What Barman reports, as records: a catalogued backup, the outcome of `barman check`."""

from __future__ import annotations

from dataclasses import dataclass, field

from harness.errors import HarnessError


@dataclass
class Backup:
    """A finished backup as Barman catalogues it."""

    backup_id: str
    begin_wal: str
    end_wal: str
    begin_time: str
    end_time: str
    timeline: int
    size_bytes: int = 0
    backup_type: str = ""      # "full", "incremental" (PostgreSQL 17+), "rsync", "snapshot"
    parent_backup_id: str = ""  # incremental only: the backup it is taken on
    root_backup_id: str = ""    # incremental only: the full backup its chain starts from
    raw: dict = field(default_factory=dict, repr=False)

    @property
    def is_incremental(self) -> bool:
        return self.backup_type == "incremental"


@dataclass
class CheckResult:
    """`barman check`: each check's status and hint."""

    checks: dict  # name -> (status, hint)

    @property
    def ok(self) -> bool:
        return bool(self.checks) and all(status == "OK" for status, _ in self.checks.values())

    def failures(self) -> list[str]:
        return [f"{name}: {status} ({hint})" if hint else f"{name}: {status}"
                for name, (status, hint) in self.checks.items() if status != "OK"]


def parse_check_json(data: dict, server: str) -> CheckResult:
    """`barman -f json check SERVER` -> CheckResult (errors outside the server count as failures)."""
    section = data.get(server) or {}
    checks = {name: (str(item.get("status", "")), str(item.get("hint", "")))
              for name, item in section.items() if isinstance(item, dict)}
    for error in data.get("_ERROR", []):
        checks[f"error {len(checks) + 1}"] = ("FAILED", str(error))
    return CheckResult(checks)


def backup_id_from_output(text: str) -> str:
    # "Starting backup using postgres method for server source in /.../base/20261126T114501"
    for line in text.splitlines():
        if "Starting backup" in line and "/base/" in line:
            return line.rstrip().rstrip("/").rsplit("/", 1)[-1]
    raise HarnessError("Could not find the new backup's id in Barman's output.", details=text)
