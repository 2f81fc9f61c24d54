"""Trends per server from the run history, as plain values for the HTML page: the last runs' verdicts,
RTO and RPO over time (a small SVG line chart), and drifts worth a look before they become a red:
a restore time well above its recent median, a backup whose size jumped.
"""

from __future__ import annotations

from dataclasses import dataclass
from statistics import median

from harness.evidence.records import RunRecord
from harness.evidence.run_history import RunHistory, RunSummary
from harness.evidence.servers import FAILED, VERIFIED, server_runs

RUNS_SHOWN = 10
DRIFT_FACTOR = 2.0   # a restore time over twice the median of the runs before it
SIZE_JUMP = 1.5      # a backup over 1.5 times (or under 1/1.5 of) the median size of the runs before it
MIN_POINTS = 3       # earlier runs with a value before a drift is called
RTO_COLOUR, RPO_COLOUR = "#1d4ed8", "#c2410c"
VERDICT_COLOURS = {VERIFIED: "#1f7a3a", FAILED: "#b3261e"}
NO_VERDICT_COLOUR = "#6b7280"


@dataclass
class ServerTrend:
    server: str
    stack: str
    rows: list[dict]          # one per run, oldest first: when, verdict, drills, rto, rpo, backup, size, flags
    drifts: list[str]         # what the latest run drifted in
    chart: dict | None


def server_trends(history: RunHistory, run: RunRecord, shown: int = RUNS_SHOWN) -> list[ServerTrend]:
    """For every server of ``run``: its last ``shown`` runs in the history (which holds this run)."""
    trends = []
    for group in server_runs(run):
        summaries = history.recent(group.server, group.stack, limit=2 * shown)
        flags = drift_flags(summaries, window=shown)
        rows = [_row(summary, flagged) for summary, flagged in zip(summaries, flags, strict=True)][-shown:]
        trends.append(ServerTrend(group.server, group.stack, rows, flags[-1] if flags else [],
                                  trend_chart(summaries[-shown:])))
    return trends


def drift_flags(runs: list[RunSummary], window: int = RUNS_SHOWN) -> list[list[str]]:
    """Per run, oldest first: its drifts against the (up to ``window``) runs before it."""
    flags = []
    for index, run in enumerate(runs):
        earlier = runs[max(0, index - window):index]
        found = []
        times = [r.rto_seconds for r in earlier if r.rto_seconds is not None]
        if run.rto_seconds is not None and len(times) >= MIN_POINTS and median(times) > 0:
            typical = median(times)
            if run.rto_seconds > DRIFT_FACTOR * typical:
                found.append(f"restore time {run.rto_seconds:.1f} s is {run.rto_seconds / typical:.1f}x the median "
                             f"{typical:.1f} s of the {len(times)} runs before")
        sizes = [r.backup_size_bytes for r in earlier if r.backup_size_bytes]
        if run.backup_size_bytes and len(sizes) >= MIN_POINTS:
            typical = median(sizes)
            ratio = run.backup_size_bytes / typical
            if ratio >= SIZE_JUMP or ratio <= 1 / SIZE_JUMP:
                found.append(f"backup size jumped to {_size(run.backup_size_bytes)} ({ratio:.2f}x the median "
                             f"{_size(typical)} of the {len(sizes)} runs before)")
        flags.append(found)
    return flags


def _row(run: RunSummary, flags: list[str]) -> dict:
    return {"when": run.run_utc, "verdict": run.verdict, "css": run.verdict.replace(" ", "-"),
            "drills": ", ".join(f"{count} {name}" for count, name in ((run.passed, "passed"), (run.failed, "failed"),
                                (run.errors, "no verdict"), (run.skipped, "skipped")) if count) or "none",
            "rto": "" if run.rto_seconds is None else f"{run.rto_seconds:.2f}",
            "rpo": "" if run.rpo_seconds is None else f"{run.rpo_seconds:.2f}",
            "backup": run.backup_id or "", "size": _size(run.backup_size_bytes) if run.backup_size_bytes else "",
            "flags": flags}


def _size(count: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if count < 1024 or unit == "GiB":
            return f"{count:.0f} {unit}" if unit == "B" else f"{count:.1f} {unit}"
        count /= 1024
    return ""


def trend_chart(runs: list[RunSummary]) -> dict | None:
    """SVG geometry: RTO and RPO per run as two lines, a dot per run in its verdict's colour."""
    values = [v for r in runs for v in (r.rto_seconds, r.rpo_seconds) if v is not None]
    if len(runs) < 2 or not values:
        return None
    width, height, left, top, bottom = 640, 150, 60, 12, 28
    span = (width - left - 20) / (len(runs) - 1)
    scale = (height - top - bottom) / (max(values) or 1.0)

    def point(index: int, value: float) -> tuple[float, float]:
        return left + index * span, height - bottom - value * scale

    def line(attribute: str) -> str:
        return " ".join(f"{x:.1f},{y:.1f}" for x, y in (point(i, getattr(r, attribute)) for i, r in enumerate(runs)
                                                        if getattr(r, attribute) is not None))

    dots = []
    for index, run in enumerate(runs):
        x, y = point(index, run.rto_seconds if run.rto_seconds is not None else 0.0)
        dots.append({"x": f"{x:.1f}", "y": f"{y:.1f}", "colour": VERDICT_COLOURS.get(run.verdict, NO_VERDICT_COLOUR),
                     "title": f"{run.run_utc}: {run.verdict}"})
    return {"width": width, "height": height, "rto": line("rto_seconds"), "rpo": line("rpo_seconds"),
            "rto_colour": RTO_COLOUR, "rpo_colour": RPO_COLOUR, "dots": dots, "axis_x": left - 6,
            "top_y": top + 4, "top": f"{max(values):.1f} s", "base_y": height - bottom, "label_y": height - 8,
            "first": runs[0].run_utc, "last": runs[-1].run_utc, "last_x": width - 20}
