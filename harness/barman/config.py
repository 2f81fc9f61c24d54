"""The barman.conf the harness writes for a stack it builds: one streaming-only server section."""

from __future__ import annotations

from pathlib import Path


def render_config(*, home: Path, user: str, server: str, conninfo: str, streaming_conninfo: str,
                  bindir: Path, slot: str = "barman", extra: dict | None = None) -> str:
    """The barman.conf for one run: a streaming-only server section (no ssh, no archive_command)."""
    return f"""\
[barman]
barman_home = {home}
barman_user = {user}
barman_lock_directory = {home}/locks
log_file = {home}/barman.log
log_level = INFO
configuration_files_directory = {home}/conf.d

[{server}]
description = "Source cluster of the verification harness"
conninfo = {conninfo}
streaming_conninfo = {streaming_conninfo}
backup_method = postgres
streaming_archiver = on
archiver = off
slot_name = {slot}
create_slot = manual
immediate_checkpoint = true
path_prefix = {bindir}
minimum_redundancy = 0
retention_policy =
""" + "".join(f"{key} = {value}\n" for key, value in (extra or {}).items())
