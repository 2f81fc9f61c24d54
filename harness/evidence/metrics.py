"""Prometheus metrics of the runs, per Barman server, for node_exporter's textfile collector.

``write_metrics(record, path, history)`` is a pure function of a RunRecord and the state before it:
the previous metrics file (parsed with prometheus_client's own parser), else the run history. It
keeps every server of the previous file (one file can serve many runs: one per server, one per
backup), moves a server's last-success gauge only when that server's drills were verified, and
adds this run's drills to monotone counters. The file is written with prometheus_client's
``write_to_textfile`` (a temporary file renamed over it), under a lock so that two runs ending at
once cannot lose each other's servers. Labels are bounded: server, stack, a check's name, an
outcome, the versions, and the one backup id last verified per server.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from prometheus_client import CollectorRegistry, write_to_textfile
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, InfoMetricFamily
from prometheus_client.parser import text_string_to_metric_families

from harness.errors import HarnessError
from harness.evidence.records import RunRecord
from harness.evidence.run_history import HistoryUnavailable, RunHistory
from harness.evidence.servers import OUTCOMES, VERIFIED, ServerRun, run_time, server_runs
from harness.process.filelock import locked
from harness.process.waiting import WaitTimedOut

PREFIX = "pgbv"
LABELS = ("server", "stack")


class MetricsNotWritten(HarnessError):
    """The metrics file could not be written."""


@dataclass
class ServerMetrics:
    """Everything the file says of one (server, stack)."""

    last_run: float = 0.0
    last_run_verified: bool = False
    last_run_drills: dict[str, int] = field(default_factory=dict)
    last_success: float = 0.0                  # 0: never verified
    verified_backup_id: str = ""
    verified_backup_end: float | None = None
    rto: float | None = None
    rpo: float | None = None
    failed_checks: dict[str, int] = field(default_factory=dict)
    drills_total: dict[str, float] = field(default_factory=dict)
    versions: dict[str, str] = field(default_factory=dict)


State = dict[tuple[str, str], ServerMetrics]


def write_metrics(record: RunRecord, path: Path, history: RunHistory | None = None,
                  ended: dict[str, float] | None = None) -> list[str]:
    """Write the metrics after ``record`` to ``path``; returns notes for the person running it (the
    previous file or the history could not be read: counters restart, the last success may be older).
    ``ended``: per server, when its drills ended, where that is not the run's end (merged shards)."""
    path = Path(path)
    notes: list[str] = []
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with _locked(path):
            state = read_metrics(path, notes)
            _fill_from_history(state, history, record, notes)
            for group in server_runs(record):
                state[(group.server, group.stack)] = updated(state.get((group.server, group.stack)), group, record,
                                                             (ended or {}).get(group.server))
            registry = CollectorRegistry()
            registry.register(_Snapshot(state))
            write_to_textfile(str(path), registry)
    except (OSError, WaitTimedOut) as exc:
        raise MetricsNotWritten(f"The metrics file {path} could not be written: {exc}.",
                                "The run's verdict stands; the monitoring system will see its last-run gauge "
                                "grow stale.") from None
    return notes


def updated(before: ServerMetrics | None, group: ServerRun, record: RunRecord,
            when: float | None = None) -> ServerMetrics:
    """A server's metrics after this run (that ended at ``when``, default the run's end): a failed or
    no-verdict run keeps the last success as it was."""
    before = before or ServerMetrics()
    when, counts = run_time(record) if when is None else when, group.counts()
    after = ServerMetrics(last_run=when, last_run_verified=group.verdict == VERIFIED, last_run_drills=counts,
                          last_success=before.last_success, verified_backup_id=before.verified_backup_id,
                          verified_backup_end=before.verified_backup_end, rto=group.rto_seconds,
                          rpo=group.rpo_seconds, failed_checks=group.failed_checks(),
                          drills_total={o: before.drills_total.get(o, 0) + counts[o] for o in OUTCOMES},
                          versions={"harness": record.facts.get("harness_version", ""),
                                    "postgresql": group.postgresql(record), "barman": record.facts.get("barman", "")})
    verified = group.newest_backup(passed_only=True)
    if group.verdict == VERIFIED and when >= before.last_success:
        after.last_success = when
        if verified is not None:
            after.verified_backup_id, after.verified_backup_end = verified.backup_id, verified.end_time
    return after


def read_metrics(path: Path, notes: list[str] | None = None) -> State:
    """The state a metrics file holds (empty when there is none, or it cannot be parsed)."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        return {}
    state: State = {}
    left_out: list[str] = []   # samples of the file this harness cannot read (a label missing, NaN counts)
    try:
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                labels = dict(sample.labels)
                key = (labels.pop("server", None), labels.pop("stack", None))
                if key[0] is None or key[1] is None:
                    continue
                metrics = state.get(key) or ServerMetrics()
                try:
                    _read_sample(metrics, sample.name, labels, sample.value)
                except (KeyError, ValueError, OverflowError):
                    left_out.append(f"{sample.name}{dict(sample.labels)} {sample.value}")
                    continue
                state[key] = metrics
    except ValueError as exc:
        if notes is not None:
            notes.append(f"the previous metrics file {path} could not be parsed ({exc}): counters start again")
        return {}
    if left_out and notes is not None:
        notes.append(f"{len(left_out)} sample(s) of the previous metrics file {path} could not be read and are left "
                     f"out (e.g. {left_out[0]}): what they held starts again")
    return state


def _read_sample(metrics: ServerMetrics, name: str, labels: dict, value: float) -> None:
    name = name.removeprefix(PREFIX + "_")
    if name == "last_run_timestamp_seconds":
        metrics.last_run = value
    elif name == "last_run_verified":
        metrics.last_run_verified = value == 1
    elif name == "last_run_drills":
        metrics.last_run_drills[labels["outcome"]] = int(value)
    elif name == "last_success_timestamp_seconds":
        metrics.last_success = value
    elif name == "verified_backup_info":
        metrics.verified_backup_id = labels.get("backup_id", "")
    elif name == "verified_backup_end_timestamp_seconds":
        metrics.verified_backup_end = value
    elif name == "last_rto_seconds":
        metrics.rto = value
    elif name == "last_rpo_seconds":
        metrics.rpo = value
    elif name == "last_run_failed_checks":
        metrics.failed_checks[labels["check"]] = int(value)
    elif name == "drills_total":
        metrics.drills_total[labels["outcome"]] = value
    elif name == "versions_info":
        metrics.versions = labels


def _fill_from_history(state: State, history: RunHistory | None, record: RunRecord, notes: list[str]) -> None:
    """What the history knows and the file does not: a later last success; for a server of this run
    that the file does not have (a new or lost file), its counters and last success."""
    if history is None:
        return
    run_id = record.facts.get("run_id", "")
    try:
        successes, totals = history.last_successes(exclude_run=run_id), history.drill_totals(exclude_run=run_id)
    except HistoryUnavailable as exc:
        notes.append(f"the run history was not read for the metrics: {exc.cause}")
        return
    for group in server_runs(record):
        key = (group.server, group.stack)
        if key not in state:
            state[key] = ServerMetrics(drills_total=dict(totals.get(key, {})))
    for key, success in successes.items():
        metrics = state.get(key)
        if metrics is not None and success.run_time > metrics.last_success:
            metrics.last_success = success.run_time
            metrics.verified_backup_id = success.backup_id or ""
            metrics.verified_backup_end = success.backup_end_time


def _locked(path: Path, timeout: float = 60.0):
    """An exclusive lock beside the file, held through read, update and rename."""
    return locked(path.with_name(path.name + ".lock"), "a metrics update", timeout=timeout,
                  busy="another run writing its metrics")


class _Snapshot:
    """A collector that yields the whole state once, as prometheus_client's families."""

    def __init__(self, state: State):
        self.state = state

    def collect(self):
        def gauge(name, text, extra=()):
            return GaugeMetricFamily(f"{PREFIX}_{name}", text, labels=LABELS + tuple(extra))

        run = gauge("last_run_timestamp_seconds", "When the last run with drills of this server ended.")
        verified = gauge("last_run_verified", "1 if the last run verified this server (no drill red, none without "
                         "a verdict, at least one passed), else 0.")
        drills = gauge("last_run_drills", "Drills of this server in the last run, by outcome.", ["outcome"])
        success = gauge("last_success_timestamp_seconds", "When a run last verified this server (0: never); "
                        "failed and no-verdict runs leave it as it was. Alert when it grows stale.")
        backup = InfoMetricFamily(f"{PREFIX}_verified_backup", "The newest backup of this server the last "
                                  "successful verification restored.", labels=LABELS)
        backup_end = gauge("verified_backup_end_timestamp_seconds", "End time of that backup.")
        rto = gauge("last_rto_seconds", "The longest restore to a usable instance in the last run.")
        rpo = gauge("last_rpo_seconds", "The widest data-loss window a restore of the last run measured.")
        checks = gauge("last_run_failed_checks", "Restores of the last run in which this check failed (0: it ran "
                       "and passed everywhere).", ["check"])
        totals = CounterMetricFamily(f"{PREFIX}_drills", "Drills of this server ever run, by outcome.",
                                     labels=LABELS + ("outcome",))
        versions = InfoMetricFamily(f"{PREFIX}_versions", "Harness, PostgreSQL and Barman versions of the last run.",
                                    labels=LABELS)
        for (server, stack), m in sorted(self.state.items()):
            key = [server, stack]
            if m.last_run:
                run.add_metric(key, m.last_run)
                verified.add_metric(key, 1.0 if m.last_run_verified else 0.0)
            success.add_metric(key, m.last_success)
            for outcome, count in m.last_run_drills.items():
                drills.add_metric(key + [outcome], count)
            if m.verified_backup_id:
                backup.add_metric(key, {"backup_id": m.verified_backup_id})
            if m.verified_backup_end is not None:
                backup_end.add_metric(key, m.verified_backup_end)
            if m.rto is not None:
                rto.add_metric(key, m.rto)
            if m.rpo is not None:
                rpo.add_metric(key, m.rpo)
            for name, count in sorted(m.failed_checks.items()):
                checks.add_metric(key + [name], count)
            for outcome in OUTCOMES:
                totals.add_metric(key + [outcome], m.drills_total.get(outcome, 0))
            if m.versions:
                versions.add_metric(key, m.versions)
        yield from (run, verified, drills, success, backup, backup_end, rto, rpo, checks, totals, versions)
